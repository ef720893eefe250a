"""Export to game engines (FBX / glTF presets) and `keydiff3d export`, checked by re-importing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bpy_fixtures import (  # noqa: F401  (fixtures)
    CREATURE_KEYPOINTS,
    bpy,
    chain_bundle,
    clean_scene,
    hierarchy,
    make_chain_bundle,
    world_positions,
)
from scipy.spatial import cKDTree

from keydiff3d.cli import main as cli_main
from keydiff3d_addon.exporter import RigExportError, export_rig
from keydiff3d_addon.importer import import_bundle
from keydiff3d_addon.rigcore import PresetError, read_bundle

pytestmark = pytest.mark.bpy


def weights_by_name(mesh_obj) -> tuple[np.ndarray, list[str]]:
    """(V, G) weights of all vertex groups, with the group names (sorted)."""
    names = sorted(group.name for group in mesh_obj.vertex_groups)
    column = {group.index: names.index(group.name) for group in mesh_obj.vertex_groups}
    dense = np.zeros((len(mesh_obj.data.vertices), len(names)))
    for vertex in mesh_obj.data.vertices:
        for element in vertex.groups:
            dense[vertex.index, column[element.group]] = element.weight
    return dense, names


def with_root(bones: dict[str, str | None]) -> dict[str, str | None]:
    """The hierarchy the engine presets write: one non-deforming "root" parenting every parentless bone."""
    return {"root": None, **{name: parent or "root" for name, parent in bones.items()}}


def reimport(path: Path) -> tuple[bpy.types.Object, bpy.types.Object]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if path.suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    else:
        bpy.ops.import_scene.gltf(filepath=str(path))
    armatures = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    meshes = [o for o in bpy.data.objects if o.type == "MESH" and o.vertex_groups]  # not bone-shape meshes
    assert len(armatures) == 1 and len(meshes) == 1
    return armatures[0], meshes[0]


@pytest.mark.parametrize("target", ["unreal", "unity"])
def test_fbx_round_trip_keeps_hierarchy_and_weights(clean_scene, chain_bundle, tmp_path, target):
    rig = import_bundle(chain_bundle, target_height=1.7)
    rig.armature.name = "creature_rig"
    before = hierarchy(rig.armature)
    result = export_rig(bpy.context, rig.armature, tmp_path / "rig.fbx", preset=target)
    expected_bones = with_root(before)
    expected_weights, expected_names = weights_by_name(rig.mesh)
    expected_positions = world_positions(rig.mesh)
    assert rig.armature.name == "creature_rig"  # the export-time rename is undone
    assert hierarchy(rig.armature) == before  # the root bone went into the file, not into the scene
    assert set(result.bones) == set(expected_bones)

    armature, mesh = reimport(result.path)
    assert armature.name == "Armature"
    bones = hierarchy(armature)
    assert bones == expected_bones  # same names and parents, no "_end" leaf bones
    roots = [b for b in armature.data.bones if b.parent is None]
    assert len(roots) == 1 and roots[0].name == "root"  # the engine presets ask for one root bone
    weights, names = weights_by_name(mesh)
    assert names == expected_names
    assert len(weights) == len(expected_weights)
    assert np.allclose(world_positions(mesh), expected_positions, atol=1e-4)  # scale applied, 1 unit = 1 m
    assert np.allclose(weights, expected_weights, atol=1e-5)
    assert (np.count_nonzero(weights, axis=1) <= 4).all()


def test_glb_round_trip_keeps_skeleton_and_weights(clean_scene, chain_bundle, tmp_path):
    rig = import_bundle(chain_bundle)
    result = export_rig(bpy.context, rig.armature, tmp_path / "rig.glb", preset="godot")
    assert result.format == "glb" and result.path.suffix == ".glb"
    expected_weights, expected_names = weights_by_name(rig.mesh)
    expected_positions = world_positions(rig.mesh)
    expected_bones = with_root(hierarchy(rig.armature))

    armature, mesh = reimport(result.path)
    assert hierarchy(armature) == expected_bones
    weights, names = weights_by_name(mesh)
    assert set(expected_names) <= set(names)  # the importer makes a (weightless) group per joint, root included
    extra = [names.index(n) for n in names if n not in expected_names]
    assert not weights[:, extra].any()
    weights = weights[:, [names.index(n) for n in expected_names]]
    # glTF may split or reorder vertices: match each imported vertex to the original at its position
    distance, index = cKDTree(expected_positions).query(world_positions(mesh))
    assert distance.max() < 1e-4
    assert np.allclose(weights, expected_weights[index], atol=2e-3)  # glTF stores weights quantised


def test_export_limits_influences_and_normalises(clean_scene, chain_bundle, tmp_path):
    rig = import_bundle(chain_bundle)
    mesh = rig.mesh
    # a hand-painted fifth influence on every vertex (as users do): the engine limit must hold
    extra = mesh.vertex_groups[rig.armature.data.bones[0].name]
    extra.add(list(range(len(mesh.data.vertices))), 0.3, "ADD")
    for group in list(mesh.vertex_groups)[1:]:
        group.add(list(range(len(mesh.data.vertices))), 0.05, "ADD")
    before, _ = weights_by_name(mesh)
    assert np.count_nonzero(before, axis=1).max() > 4 or not np.allclose(before.sum(1), 1.0)
    result = export_rig(bpy.context, rig.armature, tmp_path / "rig.fbx", preset="unity")
    _, mesh_back = reimport(result.path)
    weights, _ = weights_by_name(mesh_back)
    assert np.count_nonzero(weights > 1e-6, axis=1).max() <= 4
    assert np.allclose(weights.sum(1), 1.0, atol=1e-4)


def test_export_from_the_mesh_and_unknown_preset(clean_scene, chain_bundle, tmp_path):
    rig = import_bundle(chain_bundle)
    result = export_rig(bpy.context, rig.mesh, tmp_path / "from_mesh", preset="unity", fmt="fbx")
    assert result.path == tmp_path / "from_mesh.fbx" and result.path.is_file()
    with pytest.raises(PresetError, match="no preset named 'cryengine'"):
        export_rig(bpy.context, rig.armature, tmp_path / "x.fbx", preset="cryengine")
    bpy.ops.mesh.primitive_cube_add()
    with pytest.raises(RigExportError, match="Armature modifier"):
        export_rig(bpy.context, bpy.context.active_object, tmp_path / "cube.fbx")


def test_export_keeps_a_name_clash_intact(clean_scene, chain_bundle, tmp_path):
    other = bpy.data.objects.new("Armature", None)  # an unrelated object already called "Armature"
    bpy.context.collection.objects.link(other)
    rig = import_bundle(chain_bundle)
    export_rig(bpy.context, rig.armature, tmp_path / "rig.fbx", preset="unreal")
    assert other.name == "Armature" and rig.armature.name != "Armature"
    armature, _ = reimport(tmp_path / "rig.fbx")
    assert armature.name == "Armature"


def test_export_command_writes_fbx_glb_and_blend(tmp_path, capsys):
    bundle = make_chain_bundle(tmp_path / "bundle")
    out = tmp_path / "out"
    code = cli_main(
        [
            "export",
            str(bundle),
            "--fbx",
            str(out / "rig.fbx"),
            "--glb",
            str(out / "rig.glb"),
            "--blend",
            str(out / "rig.blend"),
            "--target",
            "unreal",
            "--height",
            "2",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out.splitlines()  # Blender's exporters print too: our lines are the paths
    assert [line for line in printed if line.startswith(str(out))] == [
        str(out / n) for n in ("rig.fbx", "rig.glb", "rig.blend")
    ]
    armature, mesh = reimport(out / "rig.fbx")
    deform = [b for b in armature.data.bones if b.name != "root"]
    assert len(deform) == len(CREATURE_KEYPOINTS) - 1
    assert np.ptp(world_positions(mesh)[:, 2]) == pytest.approx(2.0, rel=1e-4)
    bpy.ops.wm.open_mainfile(filepath=str(out / "rig.blend"))
    assert any(o.type == "ARMATURE" for o in bpy.data.objects)
    bpy.ops.wm.read_factory_settings(use_empty=True)


def test_export_command_errors_are_one_sentence(tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "missing"), "--fbx", str(tmp_path / "x.fbx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("keydiff3d export:") and "no rig bundle" in err and "\n" not in err
    broken = make_chain_bundle(tmp_path / "broken")
    (broken / "mesh.ply").write_bytes(b"ply\nformat ascii 1.0\nend_header\n")
    assert cli_main(["export", str(broken), "--fbx", str(tmp_path / "x.fbx")]) == 2
    err = capsys.readouterr().err  # after the progress bar's last frame: one line with the reason
    assert err.count("keydiff3d export:") == 1
    message = err.split("keydiff3d export:")[1].splitlines()[0]
    assert "mesh.ply" in message
    assert not (tmp_path / "x.fbx").exists()
    bundle = make_chain_bundle(tmp_path / "bundle")
    assert cli_main(["export", str(bundle)]) == 2
    assert "give at least one of --fbx, --glb or --blend" in capsys.readouterr().err


def test_import_only_timings(tmp_path, capsys):
    from keydiff3d.export import import_timings

    bundle = make_chain_bundle(tmp_path / "bundle")
    timings = import_timings(bundle, repeats=2)
    assert set(timings) == {"read", "mesh", "weights", "armature", "total", "evaluate"}
    assert all(v >= 0 for v in timings.values())
    assert timings["total"] >= timings["mesh"] + timings["weights"]
    assert len(bpy.data.objects) == 0  # leaves an empty scene behind
    vertices = read_bundle(bundle).vertices
    assert len(vertices) > 0
