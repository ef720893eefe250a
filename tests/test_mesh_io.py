"""keydiff3d.mesh_io, the one mesh loader: formats, path or bytes, frames (glTF y-up -> z-up), colours,
limits and one-sentence errors."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image
from pipeline_support import creature_glb_bytes

from keydiff3d.errors import InputError, TooLargeError, UnsupportedFormatError
from keydiff3d.mesh_io import MESH_FORMATS, file_up_axis, load_mesh, load_placed_mesh, mesh_file_type, to_gltf_frame
from keydiff3d_addon.rigcore.frames import Y_UP_TO_Z_UP

# --------------------------------------------------------------------------- formats and frames


@pytest.mark.parametrize("file_type", MESH_FORMATS)
def test_every_format_reads_alike_from_a_path_and_from_bytes(tmp_path, file_type):
    box = trimesh.creation.box(extents=(0.1, 0.2, 0.4))
    path = tmp_path / f"box.{file_type}"
    box.export(path)
    from_path = load_mesh(path, up_axis="Z")
    assert len(from_path.faces) == 12
    np.testing.assert_allclose(np.ptp(from_path.vertices, axis=0), [0.1, 0.2, 0.4], atol=1e-6)
    if file_type != "gltf":  # a .gltf's buffers are files of their own, found only beside a path
        np.testing.assert_array_equal(load_mesh(path.read_bytes(), file_type, up_axis="Z").vertices, from_path.vertices)


def test_gltf_is_turned_z_up_and_other_formats_are_taken_as_z_up(tmp_path):
    box = trimesh.creation.box(extents=(0.1, 0.2, 0.4))  # tallest along z
    to_gltf_frame(box).export(tmp_path / "box.glb")
    box.export(tmp_path / "box.ply")
    for mesh in (
        load_mesh(tmp_path / "box.glb"),
        load_mesh((tmp_path / "box.glb").read_bytes(), "glb"),
        load_mesh(tmp_path / "box.ply"),
    ):
        np.testing.assert_allclose(np.ptp(mesh.vertices, axis=0), [0.1, 0.2, 0.4], atol=1e-6)
    stored = load_mesh(tmp_path / "box.glb", up_axis="Z")  # the file's coordinates as stored: y up
    np.testing.assert_allclose(np.ptp(stored.vertices, axis=0), [0.1, 0.4, 0.2], atol=1e-6)
    turned = load_mesh(tmp_path / "box.glb", up_axis="Y")
    np.testing.assert_array_equal(turned.vertices, stored.vertices @ Y_UP_TO_Z_UP.T)
    np.testing.assert_allclose(turned.normals, stored.normals @ Y_UP_TO_Z_UP.T, atol=1e-6)
    assert [file_up_axis(t) for t in ("glb", "gltf", "obj", "ply")] == ["Y", "Y", "Z", "Z"]
    assert file_up_axis("glb", "Z") == "Z" and file_up_axis("ply", "Y") == "Y"
    with pytest.raises(InputError, match="up axis"):
        load_mesh(tmp_path / "box.glb", up_axis="X")


def test_placed_mesh_is_centred_with_extent_one_and_maps_back(tmp_path):
    box = trimesh.creation.box(extents=(1.0, 2.0, 4.0))
    box.apply_translation([10.0, -3.0, 2.0])
    box.export(tmp_path / "box.ply")
    mesh, placement = load_placed_mesh(tmp_path / "box.ply")
    np.testing.assert_allclose(mesh.vertices.min(0), -mesh.vertices.max(0), atol=1e-6)
    assert np.ptp(mesh.vertices, axis=0).max() == pytest.approx(1.0)
    np.testing.assert_allclose(placement.to_own(mesh.vertices), load_mesh(tmp_path / "box.ply").vertices, atol=1e-5)


# --------------------------------------------------------------------------- colours


def test_creature_glb_round_trips_with_colours():
    mesh = load_mesh(creature_glb_bytes(), "glb")
    assert len(mesh.faces) > 1000 and mesh.colors.shape == (len(mesh.vertices), 3)
    assert np.ptp(mesh.colors, axis=0).max() > 0.1  # the creature's colours survived, not a grey default


def test_bundle_colours_are_the_files_own_or_none(tmp_path):
    box = trimesh.creation.box()
    box.export(tmp_path / "plain.ply")
    plain = load_mesh(tmp_path / "plain.ply")
    assert not plain.has_own_colors and plain.vertex_colors_rgba8() is None  # rendered grey, but no colours invented
    rgba = np.random.default_rng(0).integers(0, 256, (len(box.vertices), 4)).astype(np.uint8)
    rgba[:, 3] = 255
    box.visual = trimesh.visual.ColorVisuals(box, vertex_colors=rgba)
    box.export(tmp_path / "painted.ply")
    np.testing.assert_array_equal(load_mesh(tmp_path / "painted.ply").vertex_colors_rgba8(), rgba)


def test_bundle_colours_of_a_textured_mesh_are_its_texels(tmp_path):
    # a quad whose texture is red above, green below (image row 0 = top; uv v = 1 at the top)
    verts = np.array([[0, -0.4, -0.4], [0, 0.4, -0.4], [0, 0.4, 0.4], [0, -0.4, 0.4]], float)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    tex = np.zeros((16, 16, 3), np.uint8)
    tex[:8] = [255, 0, 0]
    tex[8:] = [0, 255, 0]
    quad = trimesh.Trimesh(verts, [[0, 1, 2], [0, 2, 3]], process=False)
    quad.visual = trimesh.visual.TextureVisuals(
        uv=uv, material=trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(tex))
    )
    to_gltf_frame(quad).export(tmp_path / "quad.glb")
    colors = load_mesh(tmp_path / "quad.glb").vertex_colors_rgba8()
    np.testing.assert_array_equal(colors, [[0, 255, 0, 255], [0, 255, 0, 255], [255, 0, 0, 255], [255, 0, 0, 255]])


# --------------------------------------------------------------------------- limits and errors


@pytest.mark.parametrize(
    "data, file_type, words",
    [
        (b"", "glb", "empty"),
        (b"glTF-not-really" * 20, "glb", "could not be parsed"),
        (b"ply\nformat nonsense\n", "ply", "could not be parsed|no triangles"),
    ],
    ids=["empty", "garbage-glb", "garbage-ply"],
)
def test_bad_meshes_raise_input_error(data, file_type, words):
    with pytest.raises(InputError, match=words):
        load_mesh(data, file_type)


def test_bad_mesh_files_raise_one_sentence(tmp_path):
    with pytest.raises(InputError, match="missing.glb does not exist"):
        load_mesh(tmp_path / "missing.glb")
    (tmp_path / "bad.obj").write_text("this is not a mesh\n")
    with pytest.raises(InputError, match="bad.obj"):
        load_mesh(tmp_path / "bad.obj")
    (tmp_path / "empty.ply").write_text("ply\nformat ascii 1.0\nelement vertex 0\nelement face 0\nend_header\n")
    with pytest.raises(InputError, match="empty.ply holds no triangles"):
        load_mesh(tmp_path / "empty.ply")
    (tmp_path / "rig.fbx").write_bytes(b"fbx")
    with pytest.raises(UnsupportedFormatError, match=".fbx"):
        load_mesh(tmp_path / "rig.fbx")
    with pytest.raises(UnsupportedFormatError, match="'fbx'"):
        load_mesh(b"fbx", "fbx")
    with pytest.raises(InputError, match="file type is unknown"):
        load_mesh(b"ply")


def test_running_out_of_memory_is_not_called_a_bad_file(monkeypatch):
    # the machine's state, not the file's fault: MemoryError must reach the caller as itself
    def out_of_memory(*args, **kwargs):
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(trimesh, "load", out_of_memory)
    with pytest.raises(MemoryError):
        load_mesh(creature_glb_bytes(), "glb")


def test_point_cloud_and_face_limit():
    cloud = trimesh.PointCloud(np.random.default_rng(0).normal(size=(50, 3))).export(file_type="ply")
    with pytest.raises(InputError, match="no triangles"):
        load_mesh(cloud, "ply")
    sphere = trimesh.creation.icosphere(subdivisions=3).export(file_type="ply")
    with pytest.raises(TooLargeError, match="1280 triangles"):
        load_mesh(sphere, "ply", max_faces=1000)


def test_mesh_file_type_from_name():
    assert mesh_file_type("Creature.GLB") == "glb"
    with pytest.raises(UnsupportedFormatError, match=".fbx"):
        mesh_file_type("rig.fbx")
