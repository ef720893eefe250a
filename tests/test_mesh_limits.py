"""The mesh loader (`keydiff3d.mesh_io.load_mesh`) on hostile meshes: limits checked before the work
they bound, only PNG/JPEG/WebP textures decoded, no file outside the upload read, and every fault
an InputError (TooLargeError, UnsupportedFormatError). Issue 11, faults 3, 5, 6 and 13 (the service
answers to the same uploads are in test_service_hostile.py).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import trimesh
from hostile_inputs import EPS, QUAD, glb_bytes, gltf_document, gltf_text, peak_memory, textured_quad_glb
from PIL import EpsImagePlugin, Image
from test_pipeline_inputs import bomb_png

from keydiff3d.errors import InputError, TooLargeError, UnsupportedFormatError
from keydiff3d.mesh_io import MAX_MESH_FACES, MAX_TEXTURE_PIXELS, load_mesh


def triangle_gltf() -> tuple[dict, bytes]:
    return gltf_document(np.eye(3, dtype=np.float32), np.array([[0, 1, 2]], np.uint32))


def image_bytes(width: int, height: int, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 10)).save(buffer, format=fmt)
    return buffer.getvalue()


def test_png_jpeg_and_webp_textures_are_decoded():
    for fmt in ("PNG", "JPEG", "WEBP"):
        mesh = load_mesh(textured_quad_glb(image_bytes(16, 8, fmt)), "glb")
        assert mesh.textures[0].shape == (8, 16, 3) and abs(mesh.textures[0][..., 0].mean() - 200 / 255) < 0.05


def test_postscript_texture_is_refused_without_running_ghostscript(monkeypatch):
    decoded = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", lambda self, *a, **k: decoded.append(self))
    with pytest.raises(UnsupportedFormatError, match="texture in EPS format; use PNG, JPEG or WebP"):
        load_mesh(textured_quad_glb(EPS), "glb")
    assert decoded == []  # PIL's EPS decoder (which runs Ghostscript) was never called


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "GIF"])
def test_other_texture_formats_are_refused(fmt):
    with pytest.raises(UnsupportedFormatError, match=f"texture in {fmt} format"):
        load_mesh(textured_quad_glb(image_bytes(8, 8, fmt)), "glb")


def test_truncated_texture_is_an_input_error():
    with pytest.raises(InputError, match="PNG texture could not be decoded"):
        load_mesh(textured_quad_glb(image_bytes(64, 64)[:90]), "glb")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_texture_pixels_are_limited_from_the_header_before_decoding():
    limit = f"12000x12000\\); the limit is {MAX_TEXTURE_PIXELS}"
    with peak_memory() as peak, pytest.raises(TooLargeError, match=limit):
        load_mesh(textured_quad_glb(bomb_png(12000)), "glb")
    assert peak[0] < 64 * 1024 * 1024  # 12000^2 RGB floats would be 1.7 GB
    with pytest.raises(TooLargeError, match="textures have"):
        load_mesh(textured_quad_glb(image_bytes(64, 64)), "glb", max_texture_pixels=64 * 63)


def test_one_texture_placed_many_times_is_decoded_once():
    glb = glb_bytes(*gltf_document(*QUAD, image_bytes(64, 64), nodes=50))
    mesh = load_mesh(glb, "glb", max_texture_pixels=64 * 64)  # 50 decodes would be 50 x the limit
    assert len(mesh.textures) == 1 and len(mesh.faces) == 100 and set(mesh.face_texture.tolist()) == {0}


def test_gltf_instances_are_counted_before_they_are_built():
    sphere = trimesh.creation.icosphere(subdivisions=5)  # 20 480 faces; 200 placements: 4 M
    data = glb_bytes(*gltf_document(sphere.vertices, sphere.faces, nodes=200))
    assert len(data) < 512 * 1024
    with (
        peak_memory() as peak,
        pytest.raises(TooLargeError, match=f"4096000 triangles .* 200 mesh instances; the limit is {MAX_MESH_FACES}"),
    ):
        load_mesh(data, "glb")
    assert peak[0] < 16 * 1024 * 1024  # refused from the JSON: nothing was flattened
    assert len(load_mesh(glb_bytes(*gltf_document(sphere.vertices, sphere.faces, nodes=3)), "glb").faces) == 3 * 20480


@pytest.mark.parametrize(
    "children", [[[1], [0], []], [[1, 2], [2], []], [[0], [], []]], ids=["cycle", "two-parents", "self"]
)
def test_gltf_nodes_must_form_trees(children):
    doc, blob = gltf_document(np.eye(3, dtype=np.float32), np.array([[0, 1, 2]], np.uint32), nodes=3)
    for node, kids in zip(doc["nodes"], children):
        node["children"] = kids
    doc["scenes"][0]["nodes"] = [0]
    with pytest.raises(InputError, match="two parents or is in a cycle"):
        load_mesh(glb_bytes(doc, blob), "glb")
    doc["nodes"][0]["children"], doc["nodes"][1]["children"], doc["nodes"][2]["children"] = [1], [2], []
    assert len(load_mesh(glb_bytes(doc, blob), "glb").faces) == 3  # a chain of three placements


def test_gltf_accessor_data_is_limited():
    doc, blob = triangle_gltf()
    doc["accessors"].append({"componentType": 5126, "count": 10**8, "type": "MAT4"})  # no buffer: zeros
    with pytest.raises(TooLargeError, match="bytes of mesh data"):
        load_mesh(glb_bytes(doc, blob), "glb")


@pytest.mark.parametrize(
    "uri", ["../../../etc/passwd", "/etc/passwd", "job.json", "file:///etc/passwd", "C:/x.bin", "..%2F..%2Fx"]
)
def test_uploaded_gltf_may_not_refer_to_other_files(tmp_path, uri):
    doc, blob = triangle_gltf()
    with pytest.raises(InputError, match="must embed its data"):
        load_mesh(gltf_text(doc, blob, uri=uri), "gltf")
    (tmp_path / "model.gltf").write_bytes(gltf_text(doc, blob, uri=uri))
    if uri == "job.json":  # a file in its own folder is fine for a file on disk
        (tmp_path / "job.json").write_bytes(blob)
        assert len(load_mesh(tmp_path / "model.gltf").faces) == 1
    else:
        with pytest.raises(InputError, match="only refer to files in its own folder"):
            load_mesh(tmp_path / "model.gltf")


def test_embedded_gltf_upload_reads():
    assert len(load_mesh(gltf_text(*triangle_gltf()), "gltf").faces) == 1


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.__setitem__("nodes", {"0": {}}),
        lambda d: d["nodes"][0].__setitem__("mesh", 7),
        lambda d: d["nodes"][0].__setitem__("children", [99]),
        lambda d: d["meshes"][0]["primitives"][0].__setitem__("indices", "0"),
        lambda d: d["accessors"][0].__setitem__("count", -1),
        lambda d: d.__setitem__("scene", 3),
    ],
)
def test_broken_gltf_structure_is_an_input_error(edit):
    doc, blob = triangle_gltf()
    edit(doc)
    with pytest.raises(InputError):
        load_mesh(glb_bytes(doc, blob), "glb")
