"""Rig bundle write/read (directory, rig.json, zip), PLY, JSON Schema and corrupt-bundle messages."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from keydiff3d.errors import InputError
from keydiff3d.rigging.io import load_bundle, save_bundle, validate_schema
from keydiff3d_addon.rigcore import (
    BundleError,
    PlyError,
    RigBundle,
    build_skeleton,
    compute_skin_weights,
    read_bundle,
    read_ply,
    write_bundle,
    write_ply,
    zip_bundle,
)


def _mesh():
    import trimesh

    mesh = trimesh.creation.capsule(height=2.0, radius=0.3, count=[12, 12])
    mesh.apply_translation([0, 0, 1.0])
    v = mesh.vertices.astype(np.float32)
    colors = np.stack(
        [np.arange(len(v)) % 256, np.full(len(v), 7), np.full(len(v), 200), np.full(len(v), 255)], 1
    ).astype(np.uint8)
    return v, mesh.faces.astype(np.int32), colors


def _bundle(colors=True, **skeleton_kwargs) -> RigBundle:
    v, f, c = _mesh()
    keypoints = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 2], [0.2, 0, 1.5]], float)
    a = np.array([[0, 1, 0, 0], [1, 0, 1, 0.5], [0, 1, 0, 0.6], [0, 0.5, 0.6, 0.0]])
    skeleton = build_skeleton(keypoints, a, root=0, **skeleton_kwargs)
    skin = compute_skin_weights(v, skeleton, faces=f)
    return RigBundle(
        v, f, c if colors else None, skeleton, skin, timings={"skinning": 0.01}, provenance={"preset": "generic"}
    )


def _assert_same(a: RigBundle, b: RigBundle) -> None:
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    assert (a.colors is None) == (b.colors is None)
    if a.colors is not None:
        np.testing.assert_array_equal(a.colors, b.colors)
    np.testing.assert_array_equal(a.skin.indices, b.skin.indices)
    np.testing.assert_array_equal(a.skin.weights, b.skin.weights)
    assert a.skin.bone_names == b.skin.bone_names
    assert a.skeleton.to_dict() == b.skeleton.to_dict()
    np.testing.assert_allclose(a.skeleton.keypoints, b.skeleton.keypoints)
    np.testing.assert_allclose(a.skeleton.adjacency, b.skeleton.adjacency)


def test_ply_round_trip(tmp_path):
    v, f, c = _mesh()
    write_ply(tmp_path / "a.ply", v, f, c)
    v2, f2, c2 = read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(v, v2)
    np.testing.assert_array_equal(f, f2)
    np.testing.assert_array_equal(c, c2)
    write_ply(tmp_path / "b.ply", v, f)
    assert read_ply(tmp_path / "b.ply")[2] is None


def test_ply_reads_other_writers_and_quads(tmp_path):
    import trimesh

    v, f, c = _mesh()
    trimesh.Trimesh(v, f, vertex_colors=c, process=False).export(tmp_path / "t.ply")
    v2, f2, c2 = read_ply(tmp_path / "t.ply")
    np.testing.assert_allclose(v2, v)
    np.testing.assert_array_equal(f2, f)
    np.testing.assert_array_equal(c2, c)
    header = (
        "ply\nformat binary_little_endian 1.0\nelement vertex 4\n"
        "property double x\nproperty double y\nproperty double z\n"
        "element face 1\nproperty list uchar uint vertex_indices\nend_header\n"
    )
    body = np.arange(12, dtype="<f8").tobytes() + bytes([4]) + np.arange(4, dtype="<u4").tobytes()
    (tmp_path / "q.ply").write_bytes(header.encode() + body)
    _, quads, _ = read_ply(tmp_path / "q.ply")
    assert quads.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_ply_rejects_ascii_and_garbage(tmp_path):
    (tmp_path / "a.ply").write_text("ply\nformat ascii 1.0\nelement vertex 0\nend_header\n")
    with pytest.raises(PlyError, match="binary little-endian"):
        read_ply(tmp_path / "a.ply")
    (tmp_path / "b.ply").write_bytes(b"solid x")
    with pytest.raises(PlyError, match="not a PLY"):
        read_ply(tmp_path / "b.ply")


@pytest.mark.parametrize("colors", [True, False])
def test_bundle_round_trip_directory_json_and_zip(tmp_path, colors):
    bundle = _bundle(colors, leaf_bones=True, root_bone=True)
    rig_json = write_bundle(tmp_path / "b", bundle, files={"preview.png": b"png", "views/000.png": b"v"})
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "mesh.ply",
        "preview.png",
        "rig.json",
        "skin.npz",
        "views",
    ]
    for source in (tmp_path / "b", rig_json, zip_bundle(tmp_path / "b", tmp_path / "b.zip")):
        _assert_same(bundle, read_bundle(source))
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        assert "rig.json" in zf.namelist() and "views/000.png" in zf.namelist()
    doc = json.loads(rig_json.read_text())
    validate_schema(doc)
    assert doc["mesh"] == {
        "file": "mesh.ply",
        "vertex_count": len(bundle.vertices),
        "face_count": len(bundle.faces),
        "has_colors": colors,
    }
    assert doc["skin"]["bones"] == bundle.skeleton.bone_names(deform_only=True) and doc["skin"]["k"] == 4
    assert doc["skeleton"]["parents"][doc["skeleton"]["root_keypoint"]] == -1


def test_save_and_load_bundle_with_schema_and_glb(tmp_path):
    bundle = _bundle()
    save_bundle(tmp_path / "b", bundle)
    assert (tmp_path / "b" / "rig.glb").stat().st_size > 0
    _assert_same(bundle, load_bundle(tmp_path / "b"))


def _corrupt(tmp_path, edit) -> str:
    path = write_bundle(tmp_path / "b", _bundle())
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(BundleError) as error:
        read_bundle(path)
    with pytest.raises(InputError):
        load_bundle(path)
    return str(error.value)


def _set(path, value):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "edit,message",
    [
        (_set(["format_version"], 2), "format_version"),
        (_set(["keypoints", 0], [0, 0]), "keypoints must"),
        (_set(["keypoints"], [[0, 0, 0], [1, 1, float("nan")], [0, 0, 2], [0, 0, 3]]), "NaN"),
        (_set(["adjacency", 0, 1], 7.0), "not symmetric"),
        (
            lambda d: d["adjacency"].__setitem__(1, [-1.0, 0, 1, 0.5]) or d["adjacency"][0].__setitem__(1, -1.0),
            "negative",
        ),
        (_set(["skeleton", "parents", 0], 0), "-1 at the root"),
        (lambda d: d["skeleton"]["bones"][1].__setitem__("name", d["skeleton"]["bones"][0]["name"]), "used twice"),
        (_set(["skeleton", "bones", 0, "parent"], "nope"), "not an earlier bone"),
        (_set(["skeleton", "bones", 0, "tail"], None), "bone"),
        (_set(["skin", "bones"], ["nope"]), "skin bones"),
        (_set(["mesh", "vertex_count"], 3), "rig.json says"),
        (_set(["mesh", "file"], "../mesh.ply"), "relative"),
        (_set(["up_axis"], "X"), "up_axis"),
    ],
)
def test_corrupt_rig_json_gives_a_clear_error(tmp_path, edit, message):
    assert message in _corrupt(tmp_path, edit)


def test_weights_that_do_not_sum_to_one_are_rejected(tmp_path):
    path = write_bundle(tmp_path / "b", _bundle())
    with np.load(tmp_path / "b" / "skin.npz") as npz:
        indices, weights = npz["indices"], npz["weights"] * 0.5
    np.savez(tmp_path / "b" / "skin.npz", indices=indices, weights=weights)
    with pytest.raises(BundleError, match="do not sum to 1"):
        read_bundle(path)


def test_missing_files_and_bad_zip(tmp_path):
    with pytest.raises(BundleError, match="no rig bundle"):
        read_bundle(tmp_path / "nothing")
    write_bundle(tmp_path / "b", _bundle())
    (tmp_path / "b" / "skin.npz").unlink()
    with pytest.raises(BundleError, match="skin.npz"):
        read_bundle(tmp_path / "b")
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a valid zip"):
        read_bundle(tmp_path / "x.zip")
    (tmp_path / "b" / "rig.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle(tmp_path / "b")


def test_writer_refuses_invalid_bundles(tmp_path):
    bundle = _bundle()
    bundle.skin.weights[:] = 0.1
    with pytest.raises(BundleError, match="sum to 1"):
        write_bundle(tmp_path / "b", bundle)
    assert not (tmp_path / "b").exists()


def test_schema_rejects_unknown_top_level_keys(tmp_path):
    doc = _bundle().to_json()
    doc["surprise"] = 1
    with pytest.raises(BundleError, match="schema"):
        validate_schema(doc)
