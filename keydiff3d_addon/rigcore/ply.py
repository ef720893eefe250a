"""Binary little-endian PLY for triangle meshes with optional RGBA vertex colours (numpy only).

Written layout: vertex x y z float32 [+ red green blue alpha uchar]; face `list uchar int
vertex_indices`. The reader accepts any binary little-endian PLY whose faces are triangles (other
vertex properties are skipped; polygons with more corners are fan-triangulated).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}  # fmt: skip


class PlyError(ValueError):
    """A PLY file this reader cannot use (one clear sentence)."""


def write_ply(path, vertices, faces, colors=None) -> None:
    """vertices (V, 3) float, faces (F, 3) int, colors optional (V, 3|4) uint8 (alpha 255 added)."""
    v = np.asarray(vertices, np.float32)
    f = np.asarray(faces, np.int32).reshape(-1, 3)
    if v.ndim != 2 or v.shape[1] != 3:
        raise PlyError(f"vertices must be V x 3, got shape {v.shape}")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        c = np.asarray(colors)
        if c.shape[0] != len(v) or c.shape[1] not in (3, 4):
            raise PlyError(f"colors must be V x 3 or V x 4, got shape {c.shape}")
        if c.shape[1] == 3:
            c = np.concatenate([c, np.full((len(c), 1), 255, c.dtype)], 1)
        c = c.astype(np.uint8)
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    vertex = np.empty(len(v), dtype=fields)
    vertex["x"], vertex["y"], vertex["z"] = v[:, 0], v[:, 1], v[:, 2]
    if colors is not None:
        for i, name in enumerate(("red", "green", "blue", "alpha")):
            vertex[name] = c[:, i]
    face = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face["n"], face["i"] = 3, f
    header = ["ply", "format binary_little_endian 1.0", "comment keydiff3d", f"element vertex {len(v)}"]
    header += [f"property {'float' if t == '<f4' else 'uchar'} {name}" for name, t in fields]
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vertex.tobytes())
        fh.write(face.tobytes())


def read_ply(path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """-> vertices (V, 3) float32, faces (F, 3) int32, colors (V, 4) uint8 or None."""
    return parse_ply(Path(path).read_bytes(), Path(path).name)


def parse_ply(data: bytes, source: str = "mesh.ply") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`read_ply` on the file's bytes (e.g. from a zip); `name` is used in messages."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise PlyError(f"{source} is not a PLY file")
    body_start = data.index(b"\n", end) + 1
    lines = data[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in [line.strip() for line in lines]:
        raise PlyError(f"{source}: only binary little-endian PLY is supported")
    elements: list[tuple[str, int, list[list[str]]]] = []
    for line in lines:
        parts = line.split()
        if parts[:1] == ["element"]:
            elements.append((parts[1], int(parts[2]), []))
        elif parts[:1] == ["property"] and elements:
            elements[-1][2].append(parts[1:])
    offset = body_start
    vertices = faces = colors = None
    for name, count, props in elements:
        if any(p[0] == "list" for p in props):
            if len(props) != 1:
                raise PlyError(f"{source}: element {name} mixes list and scalar properties")
            _, count_t, index_t, _ = props[0]
            block, offset = _read_lists(data, offset, count, _TYPES[count_t], _TYPES[index_t])
            if name == "face":
                faces = block
            continue
        dtype = np.dtype([(p[1], _TYPES[p[0]]) for p in props])
        table = np.frombuffer(data, dtype, count, offset)
        offset += dtype.itemsize * count
        if name == "vertex":
            vertices = np.stack([table["x"], table["y"], table["z"]], 1).astype(np.float32)
            if {"red", "green", "blue"} <= set(dtype.names):
                alpha = table["alpha"] if "alpha" in dtype.names else np.full(count, 255)
                colors = np.stack([table["red"], table["green"], table["blue"], alpha], 1).astype(np.uint8)
    if vertices is None:
        raise PlyError(f"{source} has no vertex element")
    faces = np.zeros((0, 3), np.int32) if faces is None else faces
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise PlyError(f"{source}: faces index vertices that do not exist")
    return vertices, faces, colors


def _read_lists(data: bytes, offset: int, count: int, count_t: str, index_t: str) -> tuple[np.ndarray, int]:
    """Face lists: fast path when every face is a triangle, else a per-face walk + fan triangulation."""
    c_size, i_size = np.dtype(count_t).itemsize, np.dtype(index_t).itemsize
    tri = np.dtype([("n", count_t), ("i", index_t, (3,))])
    if count == 0:
        return np.zeros((0, 3), np.int32), offset
    if len(data) >= offset + tri.itemsize * count:
        table = np.frombuffer(data, tri, count, offset)
        if (table["n"] == 3).all():
            return table["i"].astype(np.int32), offset + tri.itemsize * count
    triangles = []
    for _ in range(count):
        n = int(np.frombuffer(data, count_t, 1, offset)[0])
        idx = np.frombuffer(data, index_t, n, offset + c_size)
        offset += c_size + n * i_size
        triangles += [(idx[0], idx[j], idx[j + 1]) for j in range(1, n - 1)]
    return np.asarray(triangles, np.int32).reshape(-1, 3), offset
