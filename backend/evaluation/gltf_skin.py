"""A glTF node's skin as the file states it (pygltflib): positions, JOINTS_n / WEIGHTS_n, joint names.

Used by `rigged_assets` to read the artist's weights without Blender's one-weight-per-joint
simplification. Frame: the mesh's own glTF coordinates (y up), primitives concatenated in order.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


@lru_cache(maxsize=4)
def _document(path: str):
    from pygltflib import GLTF2, BufferFormat

    gltf = GLTF2().load(path)
    gltf.convert_buffers(BufferFormat.BINARYBLOB)  # external or data-URI buffers -> one blob
    return gltf, gltf.binary_blob()


def read_accessor(gltf, blob: bytes, index: int) -> np.ndarray:
    """(count, width) array of accessor `index`; normalised integers scaled to [0, 1]."""
    accessor = gltf.accessors[index]
    if accessor.sparse is not None:
        raise ValueError("sparse accessors are not supported")
    dtype = np.dtype(_COMPONENTS[accessor.componentType])
    width = _WIDTH[accessor.type]
    view = gltf.bufferViews[accessor.bufferView]
    stride = view.byteStride or width * dtype.itemsize
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    rows = np.ndarray((accessor.count, width), dtype, buffer=blob, offset=start, strides=(stride, dtype.itemsize))
    out = rows.astype(np.float64 if dtype.kind == "f" or accessor.normalized else np.int64)
    if accessor.normalized and dtype.kind != "f":
        out /= np.iinfo(dtype).max
    return out


def file_skin(path: Path, node_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
    """(positions (N, 3), joints (N, 4k) int, weights (N, 4k), joint node names) of the skinned node
    called `node_name` (Blender's ".001" suffix of a repeated name ignored), or None when absent."""
    gltf, blob = _document(str(path))
    candidates = [node_name, node_name.rsplit(".", 1)[0]]
    node = next(
        (n for name in candidates for n in gltf.nodes if n.name == name and n.mesh is not None and n.skin is not None),
        None,
    )
    if node is None:
        return None
    positions, joints, weights = [], [], []
    for primitive in gltf.meshes[node.mesh].primitives:
        attributes = primitive.attributes
        positions.append(read_accessor(gltf, blob, attributes.POSITION))
        sets = [(getattr(attributes, f"JOINTS_{i}", None), getattr(attributes, f"WEIGHTS_{i}", None)) for i in range(4)]
        sets = [(j, w) for j, w in sets if j is not None and w is not None]
        joints.append(np.concatenate([read_accessor(gltf, blob, j) for j, _ in sets], 1).astype(np.int64))
        weights.append(np.concatenate([read_accessor(gltf, blob, w) for _, w in sets], 1))
    skin = gltf.skins[node.skin]
    names = [gltf.nodes[j].name or f"joint{j}" for j in skin.joints]
    return np.concatenate(positions), np.concatenate(joints), np.concatenate(weights), names
