"""Builders of hostile and corrupt inputs for the reliability tests (not a test module): glTF files
assembled by hand (instancing, textures of any bytes, external references), rig bundles to corrupt,
zip bombs. Each builder writes real files in the real formats; nothing here stands in for a reader.
"""

from __future__ import annotations

import base64
import json
import struct
import tracemalloc
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from keydiff3d_addon.rigcore import RigBundle, build_skeleton, compute_skin_weights, write_bundle

QUAD = (
    np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32),
    np.array([[0, 1, 2], [0, 2, 3]], np.uint32),
    np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32),
)
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n"


def gltf_document(positions, faces, uv=None, image: bytes | None = None, nodes: int = 1) -> tuple[dict, bytes]:
    """A glTF 2.0 document and its binary buffer: one mesh (positions, triangles, optional uv and a
    base-colour texture whose bytes are `image`, whatever they are), placed by `nodes` nodes."""
    blob = bytearray()
    views, accessors = [], []

    def add_view(data: bytes) -> int:
        blob.extend(b"\0" * (-len(blob) % 4))
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)})
        blob.extend(data)
        return len(views) - 1

    def add_accessor(array: np.ndarray, component: int, kind: str) -> int:
        accessor = {
            "bufferView": add_view(array.tobytes()),
            "componentType": component,
            "count": len(array),
            "type": kind,
        }
        if kind == "VEC3":
            accessor.update(min=array.min(0).tolist(), max=array.max(0).tolist())
        accessors.append(accessor)
        return len(accessors) - 1

    primitive = {
        "attributes": {"POSITION": add_accessor(np.asarray(positions, np.float32), 5126, "VEC3")},
        "indices": add_accessor(np.asarray(faces, np.uint32).reshape(-1), 5125, "SCALAR"),
    }
    doc: dict = {"asset": {"version": "2.0"}}
    if uv is not None:
        primitive["attributes"]["TEXCOORD_0"] = add_accessor(np.asarray(uv, np.float32), 5126, "VEC2")
    if image is not None:
        doc["images"] = [{"bufferView": add_view(image), "mimeType": "image/png"}]
        doc["textures"] = [{"source": 0}]
        doc["materials"] = [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}]
        primitive["material"] = 0
    blob.extend(b"\0" * (-len(blob) % 4))
    doc.update(
        buffers=[{"byteLength": len(blob)}],
        bufferViews=views,
        accessors=accessors,
        meshes=[{"primitives": [primitive]}],
        nodes=[{"mesh": 0, "translation": [0.01 * i, 0.0, 0.0]} for i in range(nodes)],
        scenes=[{"nodes": list(range(nodes))}],
        scene=0,
    )
    return doc, bytes(blob)


def glb_bytes(doc: dict, blob: bytes) -> bytes:
    """A .glb file: the JSON chunk and the binary chunk."""
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return (
        struct.pack("<III", 0x46546C67, 2, total)
        + struct.pack("<II", len(text), 0x4E4F534A)
        + text
        + struct.pack("<II", len(blob), 0x004E4942)
        + blob
    )


def gltf_text(doc: dict, blob: bytes, uri: str | None = None) -> bytes:
    """A .gltf file whose buffer is embedded as a data: URI, or refers to `uri` when given."""
    doc = json.loads(json.dumps(doc))
    doc["buffers"][0]["uri"] = uri or "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    return json.dumps(doc).encode()


def textured_quad_glb(image: bytes) -> bytes:
    positions, faces, uv = QUAD
    return glb_bytes(*gltf_document(positions, faces, uv, image))


def small_bundle(directory: Path, keypoints: int = 4) -> Path:
    """A valid bundle (rig.json, mesh.ply, skin.npz) of a capsule with a chain skeleton."""
    import trimesh

    mesh = trimesh.creation.capsule(height=2.0, radius=0.3, count=[8, 8])
    mesh.apply_translation([0, 0, 1.0])
    vertices, faces = mesh.vertices.astype(np.float32), mesh.faces.astype(np.int32)
    points = np.stack([np.zeros(keypoints), np.zeros(keypoints), np.linspace(0, 2, keypoints)], 1)
    adjacency = np.eye(keypoints, k=1) + np.eye(keypoints, k=-1)
    skeleton = build_skeleton(points, adjacency, root=0)
    colors = np.full((len(vertices), 4), 200, np.uint8)
    skin = compute_skin_weights(vertices, skeleton, faces=faces, method="gaussian_scaled", smooth_iterations=2)
    write_bundle(directory, RigBundle(vertices, faces, colors, skeleton, skin, provenance={"preset": "generic"}))
    return Path(directory)


def edit_rig_json(bundle_dir: Path, edit) -> Path:
    """Apply `edit(doc)` to a bundle's rig.json in place; returns the rig.json path."""
    path = Path(bundle_dir) / "rig.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return path


def add_chain_bones(doc: dict, count: int) -> None:
    """Append `count` non-deforming bones, each the child of the one before, to a rig.json."""
    bones = doc["skeleton"]["bones"]
    parent = bones[-1]["name"]
    for i in range(count):
        head = [0.0, 0.0, 0.001 * i]
        tail = [0.0, 0.1, 0.001 * i]
        bone = {"name": f"extra_{i:06d}", "head": head, "tail": tail, "parent": parent, "keypoint": 0}
        bones.append({**bone, "deform": False, "roll": 0.0, "kind": "edge", "connected": False})
        parent = bones[-1]["name"]


def zip_of_directory(directory: Path, zip_path: Path, replace: dict[str, bytes | int] | None = None) -> Path:
    """Zip a bundle folder (files at the root); `replace` maps a member name to its bytes or to a
    size in bytes of zeros (streamed: a zip bomb is made without holding it in memory)."""
    replace = replace or {}
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(Path(directory).iterdir()):
            if path.name not in replace:
                zf.write(path, path.name)
        for name, content in replace.items():
            if isinstance(content, bytes):
                zf.writestr(name, content)
                continue
            with zf.open(name, "w", force_zip64=True) as member:
                chunk = b"\0" * (1 << 20)
                for start in range(0, content, len(chunk)):
                    member.write(chunk[: content - start])
    return zip_path


@contextmanager
def peak_memory():
    """The peak of Python-allocated memory (numpy arrays included) inside the block:
    `with peak_memory() as peak: ...`, then `peak[0]` is in bytes."""
    peak = [0]
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
