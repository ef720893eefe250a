"""`keydiff3d rig-mesh`: end to end on a small mesh, and one-sentence failures for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keydiff3d.cli import main
from keydiff3d.rigging.io import load_bundle


@pytest.fixture
def creature(tmp_path):
    """A T-shaped creature mesh (PLY, offset far from the origin to prove own coordinates) + KP.json."""
    import trimesh

    offset = np.array([10.0, -5.0, 3.0])
    keypoints = np.array([[0, 0, 0], [0, 0, 0.6], [0, 0, 1.2], [0.5, 0, 1.0], [-0.5, 0, 1.0]]) + offset
    edges = [(0, 1), (1, 2), (1, 3), (1, 4)]
    parts = [trimesh.creation.capsule(height=1.0, radius=0.1, count=[10, 10]) for _ in edges]
    for (i, j), part in zip(edges, parts):
        length = np.linalg.norm(keypoints[j] - keypoints[i])
        part.apply_scale([1, 1, length / 1.0])
        transform = trimesh.geometry.align_vectors([0, 0, 1], (keypoints[j] - keypoints[i]) / length)
        part.apply_transform(transform)
        part.apply_translation((keypoints[i] + keypoints[j]) / 2)
    mesh = trimesh.util.concatenate(parts)
    mesh.visual.vertex_colors = np.tile([10, 20, 30, 255], (len(mesh.vertices), 1)).astype(np.uint8)
    mesh.export(tmp_path / "creature.ply")
    a = np.full((5, 5), 0.1) - 0.1 * np.eye(5)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    (tmp_path / "kp.json").write_text(json.dumps({"keypoints": keypoints.tolist(), "adjacency": a.tolist()}))
    return tmp_path, mesh, keypoints


def test_rig_mesh_writes_a_valid_bundle_in_own_coordinates(creature):
    tmp_path, mesh, keypoints = creature
    out = tmp_path / "out"
    assert (
        main(
            [
                "rig-mesh",
                str(tmp_path / "creature.ply"),
                "--keypoints",
                str(tmp_path / "kp.json"),
                "--out",
                str(out),
                "--preset",
                "biped",
                "--zip",
            ]
        )
        == 0
    )
    assert {p.name for p in out.iterdir()} >= {"rig.json", "mesh.ply", "skin.npz", "rig.glb"}
    assert (tmp_path / "out.zip").is_file()
    bundle = load_bundle(out)
    np.testing.assert_allclose(bundle.vertices, mesh.vertices, atol=1e-5)
    assert bundle.colors is not None and (bundle.colors[:, :3] == [10, 20, 30]).all()
    assert len(bundle.skeleton.deform_bones()) >= 4
    np.testing.assert_allclose(bundle.skeleton.keypoints, keypoints, atol=0.1)  # inside the mesh already
    assert {frozenset(e) for e in bundle.skeleton.edges()} == {frozenset(e) for e in [(0, 1), (1, 2), (1, 3), (1, 4)]}
    doc = json.loads((out / "rig.json").read_text())
    assert doc["provenance"]["preset"] == "biped" and set(doc["timings"]) >= {"skeleton", "skinning"}
    names = bundle.skeleton.bone_names()
    assert any(n.endswith(".L") for n in names) and any(n.endswith(".R") for n in names)


def test_rig_mesh_of_a_gltf_keeps_its_y_up_coordinates(creature):
    from keydiff3d.mesh_io import to_gltf_frame
    from keydiff3d_addon.rigcore.frames import Y_UP_TO_Z_UP

    tmp_path, mesh, keypoints = creature
    stored = to_gltf_frame(mesh)  # as glTF requires: y up
    stored.export(tmp_path / "creature.glb")
    stored_keypoints = keypoints @ Y_UP_TO_Z_UP  # the same turn, on row vectors
    adjacency = json.loads((tmp_path / "kp.json").read_text())["adjacency"]
    (tmp_path / "kp_y.json").write_text(json.dumps({"keypoints": stored_keypoints.tolist(), "adjacency": adjacency}))
    out = tmp_path / "gltf"
    assert (
        main(
            [
                "rig-mesh",
                str(tmp_path / "creature.glb"),
                "--keypoints",
                str(tmp_path / "kp_y.json"),
                "--out",
                str(out),
                "--preset",
                "biped",
                "--no-glb",
            ]
        )
        == 0
    )
    bundle = load_bundle(out)
    assert bundle.up_axis == "Y"  # the file's own coordinates, as stored
    np.testing.assert_allclose(bundle.vertices, stored.vertices, atol=1e-5)
    assert bundle.colors is not None and (bundle.colors[:, :3] == [10, 20, 30]).all()
    np.testing.assert_allclose(bundle.skeleton.keypoints, stored_keypoints, atol=0.1)


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "does not exist"),
        ("{not json", "not valid JSON"),
        ('{"keypoints": [[0, 0, 0]]}', '"adjacency"'),
        ('{"keypoints": [[0, 0], [1, 1]], "adjacency": [[0, 1], [1, 0]]}', "N x 3"),
        ('{"keypoints": [[0, 0, 0], [0, 0, 1]], "adjacency": [[0, 1]]}', "2 x 2"),
        ('{"keypoints": [[0, 0, 0], [0, 0, 1]], "adjacency": [[0, "a"], [1, 0]]}', "numbers"),
        ('{"keypoints": [[0, 0, 0]], "adjacency": [[0]]}', "at least 2 keypoints"),
        (json.dumps({"keypoints": [[0, 0, i] for i in range(257)], "adjacency": np.eye(257).tolist()}), "at most 256"),
    ],
)
def test_bad_keypoints_file_is_one_sentence(creature, capsys, content, message):
    tmp_path, _, _ = creature
    kp = tmp_path / "bad.json"
    if content is not None:
        kp.write_text(content)
    code = main(["rig-mesh", str(tmp_path / "creature.ply"), "--keypoints", str(kp), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert err.count("keydiff3d rig-mesh:") == 1


def test_bad_mesh_and_preset(creature, capsys):
    tmp_path, _, _ = creature
    (tmp_path / "empty.ply").write_text("ply\nformat ascii 1.0\nelement vertex 0\nelement face 0\nend_header\n")
    assert main(["rig-mesh", str(tmp_path / "empty.ply"), "--keypoints", str(tmp_path / "kp.json")]) == 2
    assert "no triangles" in capsys.readouterr().err
    assert main(["rig-mesh", str(tmp_path / "missing.obj"), "--keypoints", str(tmp_path / "kp.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(
            ["rig-mesh", str(tmp_path / "creature.ply"), "--keypoints", str(tmp_path / "kp.json"), "--preset", "dragon"]
        )
        == 2
    )
    assert "no preset named 'dragon'" in capsys.readouterr().err


def test_rig_mesh_without_keypoints_predicts_them_with_the_shipped_model(creature):
    tmp_path, mesh, _ = creature
    out = tmp_path / "predicted"
    assert main(["rig-mesh", str(tmp_path / "creature.ply"), "--out", str(out), "--no-glb"]) == 0
    bundle = load_bundle(out)
    n = len(bundle.skeleton.keypoints)
    assert n >= 2 and len([b for b in bundle.skeleton.deform_bones() if b.kind == "edge"]) == n - 1
    lo, hi = mesh.bounds  # predictions come back in the mesh's own (offset) frame
    margin = 0.1 * (hi - lo).max()
    assert ((bundle.skeleton.keypoints > lo - margin) & (bundle.skeleton.keypoints < hi + margin)).all()
    np.testing.assert_allclose(bundle.skin.weights.sum(1), 1.0, atol=1e-5)


def test_rig_mesh_and_the_service_run_one_path(creature):
    """`rig-mesh` without keypoints and a service mesh job are the same run: same skeleton and skin,
    and the CLI now also writes the views, the preview and every stage's timing."""
    from keydiff3d.mesh_io import load_mesh
    from keydiff3d.pipeline.options import PipelineOptions
    from keydiff3d.pipeline.run import MESH_STAGES, run_mesh_pipeline

    tmp_path, _, _ = creature
    out = tmp_path / "cli"
    assert (
        main(["rig-mesh", str(tmp_path / "creature.ply"), "--out", str(out), "--preset", "quadruped", "--no-glb"]) == 0
    )
    service = run_mesh_pipeline(
        load_mesh(tmp_path / "creature.ply"),
        PipelineOptions(preset="quadruped", export_glb=False),
        out_dir=tmp_path / "service",
    ).bundle
    cli = load_bundle(out)
    np.testing.assert_allclose(cli.skeleton.keypoints, service.skeleton.keypoints, atol=1e-6)
    assert [b.name for b in cli.skeleton.bones] == [b.name for b in service.skeleton.bones]
    np.testing.assert_array_equal(cli.skin.indices, service.skin.indices)
    for name in ("preview.png", "cameras.json", "views/020.png"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "rig.json").read_text())
    assert set(doc["timings"]) >= (set(MESH_STAGES) - {"bundle"}) | {"skeleton", "skinning"}
    assert doc["provenance"]["keypoints"] == "predicted" and doc["provenance"]["source_mesh"] == "creature.ply"


def test_predicted_rig_of_a_gltf_has_y_up_cameras_that_see_what_the_upright_ones_see(creature):
    """A glTF keeps its y-up coordinates; its bundle's cameras project a y-up point exactly where the
    z-up bundle's cameras project the same point of the upright mesh."""
    from keydiff3d.geometry import Cameras, project_points
    from keydiff3d.mesh_io import to_gltf_frame
    from keydiff3d_addon.rigcore.frames import Y_UP_TO_Z_UP

    tmp_path, mesh, _ = creature
    to_gltf_frame(mesh).export(tmp_path / "creature.glb")
    runs = {}
    for name in ("creature.glb", "creature.ply"):
        out = tmp_path / f"predicted_{name}"
        assert main(["rig-mesh", str(tmp_path / name), "--out", str(out), "--no-glb"]) == 0
        runs[name] = (load_bundle(out), Cameras.from_dict(json.loads((out / "cameras.json").read_text())))
    (y_bundle, y_cameras), (z_bundle, z_cameras) = runs["creature.glb"], runs["creature.ply"]
    assert y_bundle.up_axis == "Y" and z_bundle.up_axis == "Z"
    points_z = np.asarray(mesh.vertices, np.float64)
    uv_z, depth_z = project_points(z_cameras.P, points_z)
    uv_y, depth_y = project_points(y_cameras.P, points_z @ Y_UP_TO_Z_UP)
    np.testing.assert_allclose(uv_y, uv_z, atol=1e-3)
    assert (depth_z > 0).all()
    np.testing.assert_allclose(y_bundle.skeleton.keypoints, z_bundle.skeleton.keypoints @ Y_UP_TO_Z_UP, atol=1e-3)


def test_a_broken_presets_folder_is_one_sentence_even_for_help(tmp_path):
    """A real `keydiff3d` process whose add-on package holds a presets/ folder with two defaults."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import keydiff3d_addon

    addon = tmp_path / "keydiff3d_addon"
    shutil.copytree(Path(keydiff3d_addon.__file__).parent, addon)
    shutil.copytree(Path(keydiff3d_addon.__file__).parent.parent / "presets", addon / "presets")
    toml = (addon / "presets" / "bird.toml").read_text().replace("[preset]\n", "[preset]\ndefault = true\n", 1)
    (addon / "presets" / "bird.toml").write_text(toml)
    for command in (["rig-mesh", "--help"], ["rig", "--help"]):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from keydiff3d.cli import main; sys.exit(main(sys.argv[1:]))",
                *command,
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,  # the copy, not the source tree's keydiff3d_addon, comes first on sys.path
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "must have `default = true`" in done.stderr
        assert done.stderr.startswith(f"keydiff3d {command[0]}: exactly one")
        assert "None" not in done.stderr
