"""Binary little-endian PLY for triangle meshes with optional RGBA vertex colours (numpy only).

Written layout: vertex x y z float32 [+ red green blue alpha uchar]; face `list uchar int
vertex_indices`. The reader accepts any binary little-endian PLY whose faces are polygons (other
vertex properties are skipped; polygons with more than 3 corners are fan-triangulated) within the
limits below, which are the largest mesh the backend takes (2 M triangles, 3 vertices each).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "<i2",
    "int16": "<i2",
    "ushort": "<u2",
    "uint16": "<u2",
    "int": "<i4",
    "int32": "<i4",
    "uint": "<u4",
    "uint32": "<u4",
    "float": "<f4",
    "float32": "<f4",
    "double": "<f8",
    "float64": "<f8",
}
_INTEGER_TYPES = {name for name, t in _TYPES.items() if "i" in t or "u" in t}
MAX_FACES = 2_000_000  # triangles, after fan triangulation
MAX_VERTICES = 3 * MAX_FACES
MAX_HEADER_BYTES = 64 * 1024


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
    """`read_ply` on the file's bytes (e.g. from a zip); `source` is used in messages.

    Any file that is not a binary little-endian PLY of at most MAX_VERTICES vertices and
    MAX_FACES triangles raises PlyError. Counts are checked against the limits and the bytes
    present before any array is read, so the work is bounded by the file's size."""
    elements, offset = _parse_header(data, source)
    vertices = faces = colors = None
    for name, count, props in elements:
        if props and props[0][0] == "list":
            _, count_t, index_t, _ = props[0]
            block, offset = _read_polygons(data, offset, count, count_t, index_t, f"{source}: element {name}")
            if name == "face":
                faces = block
            continue
        dtype = np.dtype([(p[1], p[0]) for p in props])
        if len(data) - offset < dtype.itemsize * count:
            raise PlyError(f"{source} is truncated: element {name} needs {dtype.itemsize * count} bytes")
        table = np.frombuffer(data, dtype, count, offset)
        offset += dtype.itemsize * count
        if name == "vertex":
            if not {"x", "y", "z"} <= set(dtype.names):
                raise PlyError(f"{source}: the vertex element has no x, y and z properties")
            with np.errstate(over="ignore"):  # a double beyond float32 becomes inf: the bundle check refuses it
                vertices = np.stack([table["x"], table["y"], table["z"]], 1).astype(np.float32)
            if {"red", "green", "blue"} <= set(dtype.names):
                alpha = table["alpha"] if "alpha" in dtype.names else np.full(count, 255)
                colors = np.stack([table["red"], table["green"], table["blue"], alpha], 1).astype(np.uint8)
    if vertices is None:
        raise PlyError(f"{source} has no vertex element")
    faces = np.zeros((0, 3), np.int32) if faces is None else faces
    if len(faces) > MAX_FACES:
        raise PlyError(f"{source} has {len(faces)} triangles; the limit is {MAX_FACES}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise PlyError(f"{source}: faces index vertices that do not exist")
    return vertices, faces, colors


def _parse_header(data: bytes, source: str) -> tuple[list[tuple[str, int, list[tuple]]], int]:
    """-> elements [(name, count, properties)], the body's byte offset. A property is
    (numpy type, name) or ("list", count type, index type, name); every count within the limits."""
    end = data.find(b"end_header", 0, MAX_HEADER_BYTES)
    body_start = data.find(b"\n", end) + 1
    if not data.startswith(b"ply") or end < 0 or body_start == 0:
        raise PlyError(f"{source} is not a PLY file")
    lines = [line.split() for line in data[:end].decode("ascii", "replace").splitlines()]
    if ["format", "binary_little_endian", "1.0"] not in lines:
        raise PlyError(f"{source}: only binary little-endian PLY is supported")
    elements: list[tuple[str, int, list[tuple]]] = []
    for parts in lines:
        if parts[:1] == ["element"]:
            if len(parts) != 3 or not parts[2].isdigit():
                raise PlyError(f"{source}: bad element line {' '.join(parts)!r}")
            name, count = parts[1], int(parts[2])
            limit = MAX_VERTICES if name == "vertex" else MAX_FACES
            if count > limit:
                raise PlyError(f"{source} has {count} {name} entries; the limit is {limit}")
            elements.append((name, count, []))
        elif parts[:1] == ["property"]:
            if not elements:
                raise PlyError(f"{source}: a property comes before any element")
            elements[-1][2].append(_property(parts, source))
    for name, _, props in elements:
        names = [p[-1] for p in props]
        if len(set(names)) != len(names):
            raise PlyError(f"{source}: element {name} names a property twice")
        if any(p[0] == "list" for p in props) and len(props) != 1:
            raise PlyError(f"{source}: element {name} mixes list and scalar properties")
    return elements, body_start


def _property(parts: list[str], source: str) -> tuple:
    if len(parts) == 3 and parts[1] in _TYPES:
        return _TYPES[parts[1]], parts[2]
    if len(parts) == 5 and parts[1] == "list" and parts[2] in _INTEGER_TYPES and parts[3] in _INTEGER_TYPES:
        return "list", _TYPES[parts[2]], _TYPES[parts[3]], parts[4]
    raise PlyError(f"{source}: unsupported property line {' '.join(parts)!r}")


def _read_polygons(
    data: bytes, offset: int, count: int, count_t: str, index_t: str, what: str
) -> tuple[np.ndarray, int]:
    """Polygon lists -> fan-triangulated (T, 3) int32 and the offset after them. Vectorised when all
    polygons have the same corner count (all triangles: the writer's layout); otherwise one short
    step per polygon to find where the next one starts, then vectorised triangulation."""
    if count == 0:
        return np.zeros((0, 3), np.int32), offset
    c_size, i_size = np.dtype(count_t).itemsize, np.dtype(index_t).itemsize
    if len(data) - offset < c_size:
        raise PlyError(f"{what} is truncated")
    first = int(np.frombuffer(data, count_t, 1, offset)[0])
    uniform = np.dtype([("n", count_t), ("i", index_t, (max(first, 1),))])
    if first >= 3 and len(data) - offset >= uniform.itemsize * count:
        table = np.frombuffer(data, uniform, count, offset)
        if (table["n"] == first).all():
            end = offset + uniform.itemsize * count
            if first == 3:
                return table["i"].astype(np.int32), end
            return _fan(table["i"].reshape(-1), np.full(count, first), what), end
    counts = np.empty(count, np.int64)
    corners = bytearray()
    unpack_count = struct.Struct("<" + np.dtype(count_t).char).unpack_from
    for f in range(count):
        if len(data) - offset < c_size:
            raise PlyError(f"{what} is truncated at polygon {f}")
        n = unpack_count(data, offset)[0]
        end = offset + c_size + n * i_size
        if n < 3 or end > len(data):
            raise PlyError(f"{what}: polygon {f} has {n} corners" + ("" if n < 3 else " past the end of the file"))
        corners += data[offset + c_size : end]
        counts[f] = n
        offset = end
    return _fan(np.frombuffer(bytes(corners), index_t), counts, what), offset


def _fan(corners: np.ndarray, counts: np.ndarray, what: str) -> np.ndarray:
    """Flat corner indices of polygons with `counts` corners (each >= 3) -> fan triangles (T, 3) int32."""
    per_polygon = counts - 2
    if int(per_polygon.sum()) > MAX_FACES:
        raise PlyError(f"{what} triangulates to {int(per_polygon.sum())} triangles; the limit is {MAX_FACES}")
    starts = np.repeat(np.cumsum(counts) - counts, per_polygon)
    step = np.arange(len(starts)) - np.repeat(np.cumsum(per_polygon) - per_polygon, per_polygon) + 1
    index = corners.astype(np.int64)
    return np.stack([index[starts], index[starts + step], index[starts + step + 1]], 1).astype(np.int32)
