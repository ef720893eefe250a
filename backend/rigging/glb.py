"""Skinned binary glTF 2.0 (.glb) from a rig bundle: one mesh, one skin, one joint node per bone.

glTF is y-up (spec), so a z-up bundle is converted with (x, y, z) -> (x, z, -y) - the inverse of
what Blender's glTF importer applies, so the rig comes back where it was. Each joint node's rest
transform is its bone's Blender frame (origin at the head, +Y along the bone, Z set by the roll),
so engines and Blender's importer get the same bone axes; inverse bind matrices undo the rest
transforms. Vertex colours (sRGB bytes in the bundle) are written as linear float COLOR_0.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from keydiff3d_addon.rigcore.bundle import RigBundle
from keydiff3d_addon.rigcore.frames import Z_UP_TO_Y_UP, from_z_up, to_z_up
from keydiff3d_addon.rigcore.skeleton import Bone, bone_rest_z_axis

from .. import __version__
from ..geometry.mesh import vertex_normals

_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def bone_frame(bone: Bone, up_axis: str) -> np.ndarray:
    """(4, 4) world rest transform of a bone in glTF's y-up frame: columns = the bone's x, y, z axes
    (Blender's convention, y along the bone, z from the roll) and its head."""
    head, tail = to_z_up(bone.head, up_axis), to_z_up(bone.tail, up_axis)
    y = (tail - head) / np.linalg.norm(tail - head)
    z0 = bone_rest_z_axis(y)
    z = z0 * np.cos(bone.roll) + np.cross(y, z0) * np.sin(bone.roll) + y * (y @ z0) * (1 - np.cos(bone.roll))
    frame = np.eye(4)
    frame[:3, :3] = Z_UP_TO_Y_UP @ np.stack([np.cross(y, z), y, z], 1)
    frame[:3, 3] = Z_UP_TO_Y_UP @ head
    return frame


def quaternion_xyzw(rotation: np.ndarray) -> list[float]:
    """Unit quaternion [x, y, z, w] of a 3 x 3 rotation matrix (Shepperd's method)."""
    r = rotation
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = [0.0, 0.0, 0.0, (r[k, j] - r[j, k]) / s]
        q[i], q[j], q[k] = 0.25 * s, (r[j, i] + r[i, j]) / s, (r[k, i] + r[i, k]) / s
    q = np.asarray(q)
    return (q / np.linalg.norm(q)).tolist()


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


class _Buffer:
    """Accumulates binary data and the glTF bufferViews/accessors that describe it."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(
        self,
        array: np.ndarray,
        component: int,
        type_: str,
        target: int | None = None,
        minmax: bool = False,
        normalized: bool = False,
    ) -> int:
        data = np.ascontiguousarray(array).tobytes()
        view = {"buffer": 0, "byteOffset": self.size, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        pad = (-len(data)) % 4
        self.chunks.append(data + b"\0" * pad)
        self.size += len(data) + pad
        accessor = {
            "bufferView": len(self.views) - 1,
            "componentType": component,
            "count": int(len(array)),
            "type": type_,
        }
        if normalized:
            accessor["normalized"] = True
        if minmax:
            accessor["min"] = np.asarray(array).min(0).astype(float).tolist()
            accessor["max"] = np.asarray(array).max(0).astype(float).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def build_glb(bundle: RigBundle) -> bytes:
    """The .glb file's bytes for `bundle`."""
    convert = (lambda p: from_z_up(p, "Y")) if bundle.up_axis == "Z" else (lambda p: np.asarray(p, np.float64))
    vertices = convert(bundle.vertices).astype(np.float32)
    faces = np.asarray(bundle.faces, np.uint32).reshape(-1, 3)
    bones = bundle.skeleton.bones
    joint_of = {b.name: i for i, b in enumerate(bones)}
    frames = np.stack([bone_frame(b, bundle.up_axis) for b in bones])  # (J, 4, 4) world rest transforms

    # skin columns -> joint indices; pad to 4 influences
    skin = bundle.skin
    column_joint = np.array([joint_of[name] for name in skin.bone_names], np.uint16)
    joints = np.zeros((len(vertices), 4), np.uint16)
    weights = np.zeros((len(vertices), 4), np.float32)
    joints[:, : skin.k] = column_joint[skin.indices]
    weights[:, : skin.k] = skin.weights
    weights /= weights.sum(1, keepdims=True)

    buf = _Buffer()
    attributes = {
        "POSITION": buf.add(vertices, _FLOAT, "VEC3", _ARRAY_BUFFER, minmax=True),
        "NORMAL": buf.add(
            vertex_normals(vertices.astype(np.float64), faces.astype(np.int64)), _FLOAT, "VEC3", _ARRAY_BUFFER
        ),
        "JOINTS_0": buf.add(joints, _USHORT, "VEC4", _ARRAY_BUFFER),
        "WEIGHTS_0": buf.add(weights, _FLOAT, "VEC4", _ARRAY_BUFFER),
    }
    if bundle.colors is not None:
        rgba = np.asarray(bundle.colors, np.float64) / 255.0
        rgba[:, :3] = srgb_to_linear(rgba[:, :3])
        attributes["COLOR_0"] = buf.add(rgba.astype(np.float32), _FLOAT, "VEC4", _ARRAY_BUFFER)
    primitive = {"attributes": attributes, "mode": 4}
    if len(faces):
        primitive["indices"] = buf.add(faces.reshape(-1), _UINT, "SCALAR", _ELEMENT_ARRAY_BUFFER)
    inverse_bind = np.linalg.inv(frames).astype(np.float32)
    ibm = buf.add(inverse_bind.transpose(0, 2, 1).reshape(len(bones), 16), _FLOAT, "MAT4")  # column-major

    nodes = [{"name": "mesh", "mesh": 0, "skin": 0}]
    children: dict[int, list[int]] = {}
    for i, b in enumerate(bones):
        parent = joint_of.get(b.parent) if b.parent is not None else None
        local = frames[i] if parent is None else np.linalg.inv(frames[parent]) @ frames[i]
        nodes.append({"name": b.name, "translation": local[:3, 3].tolist(), "rotation": quaternion_xyzw(local[:3, :3])})
        if parent is not None:
            children.setdefault(parent + 1, []).append(i + 1)
    for node, kids in children.items():
        nodes[node]["children"] = kids
    roots = [i + 1 for i, b in enumerate(bones) if b.parent is None]
    document = {
        "asset": {"version": "2.0", "generator": f"keydiff3d {__version__}"},
        "scene": 0,
        "scenes": [{"name": "rig", "nodes": [0, *roots]}],
        "nodes": nodes,
        "meshes": [{"name": "mesh", "primitives": [primitive]}],
        "skins": [{"name": "Armature", "joints": list(range(1, len(bones) + 1)), "inverseBindMatrices": ibm}],
        "accessors": buf.accessors,
        "bufferViews": buf.views,
        "buffers": [{"byteLength": buf.size}],
    }
    if len(roots) == 1:
        document["skins"][0]["skeleton"] = roots[0]
    return _pack(document, b"".join(buf.chunks))


def _pack(document: dict, binary: bytes) -> bytes:
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 4)
    binary += b"\0" * ((-len(binary)) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(text), b"JSON")
        + text
        + struct.pack("<I4s", len(binary), b"BIN\0")
        + binary
    )


def write_glb(path, bundle: RigBundle) -> Path:
    path = Path(path)
    path.write_bytes(build_glb(bundle))
    return path
