"""Rig bundle: rig.json + mesh.ply + skin.npz in a directory (or the same files at a zip's root).

Numpy + stdlib only, so the Blender add-on reads bundles with this very code. A bundle is untrusted
input (docs/SERVICE.md, threat model): the reader checks the structure (types, shapes, finite values,
symmetric adjacency, parents forming a tree, weights summing to 1, unique names, earlier parents,
bounded skinning parameters) and the limits below before the work they bound - file sizes before
unpacking, counts before arrays are built - and raises `BundleError` (one sentence) for anything
else; no other exception leaves `read_bundle`. The backend additionally validates rig.json against
backend/rigging/schema/rig.schema.json (keydiff3d.rigging.io).
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .ply import MAX_FACES, MAX_VERTICES, PlyError, parse_ply, write_ply
from .skeleton import BONE_KINDS, Skeleton
from .skinning import MAX_INFLUENCES, METHODS, PARAMETER_RANGES, SkinWeights, parameter_problem

FORMAT_VERSION = 1
RIG_JSON, MESH_FILE, SKIN_FILE = "rig.json", "mesh.ply", "skin.npz"

# Limits of the reader (docs/BUNDLE.md). Meshes: rigcore.ply (MAX_VERTICES, MAX_FACES).
MAX_KEYPOINTS = 256
MAX_BONES = 2 * MAX_KEYPOINTS  # an edge bone per keypoint, a leaf bone per leaf, one root bone
MAX_SMOOTH_ITERATIONS = int(PARAMETER_RANGES["smooth_iterations"][1])  # the add-on reruns the skinning
MAX_RIG_JSON_BYTES = 8 * 1024 * 1024
MAX_FILE_BYTES = 256 * 1024 * 1024  # mesh.ply, skin.npz and each array in skin.npz, unpacked
MAX_BUNDLE_BYTES = 768 * 1024 * 1024  # everything one read unpacks, together
MAX_ZIP_ENTRIES = 4096
_FILE_NAME = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")  # portable: no drive, root, backslash
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError)
try:
    import lzma

    _ZIP_ERRORS += (lzma.LZMAError,)
except ImportError:  # a Python without lzma cannot unpack LZMA members at all (NotImplementedError)
    pass


class BundleError(ValueError):
    """A rig bundle that is missing files or breaks the format (one clear sentence)."""


@dataclass
class RigBundle:
    """Everything the add-on needs. vertices (V, 3) float32 and faces (F, 3) int32 in the bundle's
    frame (`up_axis`), colors (V, 4) uint8 or None, skeleton (keypoints/adjacency/bones), skin over
    the skeleton's deform bones. `views`, `timings`, `provenance` are copied to rig.json as given."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None
    skeleton: Skeleton
    skin: SkinWeights
    up_axis: str = "Z"
    units: str = "world"
    generator: str = "keydiff3d 0.1.0"
    views: dict | None = None
    timings: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The rig.json document."""
        doc = {
            "format_version": FORMAT_VERSION,
            "generator": self.generator,
            "up_axis": self.up_axis,
            "units": self.units,
            "mesh": {
                "file": MESH_FILE,
                "vertex_count": int(len(self.vertices)),
                "face_count": int(len(self.faces)),
                "has_colors": self.colors is not None,
            },
            "keypoints": np.asarray(self.skeleton.keypoints, float).tolist(),
            "adjacency": np.asarray(self.skeleton.adjacency, float).tolist(),
            "skeleton": self.skeleton.to_dict(),
            "skin": {
                "file": SKIN_FILE,
                "k": self.skin.k,
                "bones": list(self.skin.bone_names),
                "method": self.skin.method,
                "params": _jsonable(self.skin.params),
            },
            "timings": {str(k): float(v) for k, v in self.timings.items()},
            "provenance": _jsonable(self.provenance),
        }
        if self.skeleton.repairs:
            doc["provenance"] = {**doc["provenance"], "repairs": list(self.skeleton.repairs)}
        if self.views is not None:
            doc["views"] = self.views
        return doc


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def write_bundle(directory, bundle: RigBundle, files: dict[str, bytes] | None = None) -> Path:
    """Write rig.json, mesh.ply, skin.npz (+ `files`: relative path -> bytes, e.g. preview.png) into
    `directory` (created). The bundle is validated first, so nothing invalid is ever written.
    Returns the path of rig.json."""
    doc = bundle.to_json()
    validate_document(doc)
    _check_arrays(doc, bundle.vertices, bundle.faces, bundle.colors, bundle.skin.indices, bundle.skin.weights)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    write_ply(out / MESH_FILE, bundle.vertices, bundle.faces, bundle.colors)
    with open(out / SKIN_FILE, "wb") as fh:
        np.savez_compressed(
            fh, indices=bundle.skin.indices.astype(np.int32), weights=bundle.skin.weights.astype(np.float32)
        )
    for name, data in (files or {}).items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (out / RIG_JSON).write_text(json.dumps(doc, indent=1))
    return out / RIG_JSON


def zip_bundle(directory, zip_path) -> Path:
    """Zip a bundle directory with its files at the zip root."""
    directory, zip_path = Path(directory), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and path.resolve() != zip_path.resolve():
                zf.write(path, path.relative_to(directory).as_posix())
    return zip_path


def read_bundle_json(path) -> tuple[dict, "_Source"]:
    """rig.json as a dict plus an opener for the other files; path = directory, rig.json or .zip."""
    source = _Source(Path(path))
    raw = source.read(RIG_JSON, MAX_RIG_JSON_BYTES)
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as error:
        raise BundleError(f"rig.json is not valid JSON ({error.msg} at line {error.lineno})") from None
    except (ValueError, RecursionError) as error:  # not UTF-8, nested too deep, a number too long
        raise BundleError(f"rig.json is not valid JSON ({type(error).__name__}: {error})") from None
    return doc, source


def read_bundle(path) -> RigBundle:
    """Read and validate a bundle from a directory, its rig.json, or a zip with the files at its root.
    Raises BundleError, and nothing else, when it is not a valid bundle within the limits."""
    doc, source = read_bundle_json(path)
    validate_document(doc)
    mesh_file, skin_file = doc["mesh"]["file"], doc["skin"]["file"]
    try:
        vertices, faces, colors = parse_ply(source.read(mesh_file), mesh_file)
    except PlyError as error:
        raise BundleError(str(error)) from None
    indices, weights = _read_skin(source, skin_file)
    _check_arrays(doc, vertices, faces, colors, indices, weights)
    skin = SkinWeights(
        indices.astype(np.int32),
        weights.astype(np.float32),
        list(doc["skin"]["bones"]),
        doc["skin"].get("method", "gaussian"),
        dict(doc["skin"].get("params", {})),
    )
    skeleton = Skeleton.from_dict(doc["skeleton"], doc["keypoints"], doc["adjacency"])
    skeleton.repairs = list(doc.get("provenance", {}).get("repairs", []))
    return RigBundle(
        vertices=vertices,
        faces=faces,
        colors=colors,
        skeleton=skeleton,
        skin=skin,
        up_axis=doc["up_axis"],
        units=doc["units"],
        generator=doc.get("generator", ""),
        views=doc.get("views"),
        timings=dict(doc.get("timings", {})),
        provenance=dict(doc.get("provenance", {})),
    )


def _read_skin(source: _Source, name: str) -> tuple[np.ndarray, np.ndarray]:
    """skin.npz -> indices (V, k) of an integer type, weights (V, k) of a float type, each array's
    header checked before its data is read (no pickles, no shape the bytes do not hold)."""
    with _open_zip(io.BytesIO(source.read(name)), name) as npz:
        indices = _parse_npy(source.unpack(npz, "indices.npy", name, MAX_FILE_BYTES), f"{name} indices", "iu")
        weights = _parse_npy(source.unpack(npz, "weights.npy", name, MAX_FILE_BYTES), f"{name} weights", "f")
    return indices, weights


def _parse_npy(data: bytes, what: str, kinds: str) -> np.ndarray:
    """A 2-D .npy array of a numeric dtype whose kind is in `kinds`; BundleError otherwise."""
    fh = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy format version {version} is not supported")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(fh)
    except (ValueError, TypeError, SyntaxError, OverflowError, RecursionError) as error:
        raise BundleError(f"{what} is not a numpy array ({error})") from None
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None or len(shape) != 2:
        wanted = "integers" if kinds == "iu" else "floats"
        raise BundleError(f"{what} must be a 2-D array of {wanted}, got {dtype} {shape}")
    count = math.prod(shape)
    if count < 0 or count * dtype.itemsize != len(data) - fh.tell():
        raise BundleError(f"{what} holds {len(data) - fh.tell()} bytes, not the {shape} its header claims")
    array = np.frombuffer(data, dtype, count, fh.tell())
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


def _open_zip(fh, where: str) -> zipfile.ZipFile:
    """A zip opened for reading from a binary file object, its entry count checked before zipfile
    parses the central directory."""
    try:
        entries = _zip_entry_count(fh)
    except (OSError, struct.error):
        entries = 0
    if entries > MAX_ZIP_ENTRIES:
        raise BundleError(f"{where} holds {entries} entries; the limit is {MAX_ZIP_ENTRIES}")
    try:
        return zipfile.ZipFile(fh)
    except _ZIP_ERRORS + (struct.error,):
        raise BundleError(f"{where} is not a valid zip file") from None


def _zip_entry_count(fh) -> int:
    """The entry count in a zip's end-of-central-directory record (zip64 too), found as zipfile finds
    it; 0 when there is none (zipfile then reports the file as not a zip)."""
    size = fh.seek(0, io.SEEK_END)
    tail_start = max(0, size - (22 + 0xFFFF))
    fh.seek(tail_start)
    tail = fh.read()
    at = len(tail) - 22 if tail[-22:-18] == b"PK\x05\x06" else tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return 0
    entries = struct.unpack_from("<H", tail, at + 10)[0]
    locator = tail_start + at - 20
    if entries == 0xFFFF and locator >= 0:
        fh.seek(locator)
        found = fh.read(20)
        if found[:4] == b"PK\x06\x07":
            fh.seek(struct.unpack_from("<Q", found, 8)[0])
            record = fh.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                entries = struct.unpack_from("<Q", record, 32)[0]
    return entries


class _Source:
    """Reads bundle files by name from a directory or a zip: names must stay inside the bundle, each
    file within its limit and everything one read unpacks within MAX_BUNDLE_BYTES, checked before
    reading (the sizes in the zip's directory, which zipfile never reads past)."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise BundleError(f"no rig bundle at {path}")
        self.path = path
        self.is_zip = path.is_file() and path.suffix.lower() == ".zip"
        self.root = path if self.is_zip else (path.parent if path.is_file() else path)
        self.budget = MAX_BUNDLE_BYTES
        if self.is_zip:
            with self._zip():  # a broken zip is reported now, before rig.json is looked for
                pass

    def read(self, name: str, limit: int = MAX_FILE_BYTES) -> bytes:
        _check_file_name(name)
        if self.is_zip:
            with self._zip() as zf:
                return self.unpack(zf, name, self.path.name, limit)
        target = self.root / name
        try:
            resolved = target.resolve(strict=True)
        except (OSError, RuntimeError):
            raise BundleError(f"the bundle in {self.root} has no {name}") from None
        if not resolved.is_relative_to(self.root.resolve()):
            raise BundleError(f"{name} in the bundle {self.root} leads outside the bundle (a symbolic link?)")
        if not resolved.is_file():
            raise BundleError(f"the bundle in {self.root} has no {name}")
        size = resolved.stat().st_size
        self._reserve(size, name, limit)
        with open(resolved, "rb") as fh:
            data = fh.read(size + 1)
        if len(data) != size:
            raise BundleError(f"{name} changed while it was read")
        return data

    def unpack(self, zf: zipfile.ZipFile, member: str, where: str, limit: int) -> bytes:
        """One member of an open zip (the bundle or skin.npz), its unpacked size checked first."""
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise BundleError(f"{where} has no {member} at the zip root") from None
        self._reserve(info.file_size, f"{member} in {where}", limit)
        try:
            with zf.open(info) as fh:
                data = fh.read(info.file_size + 1)
        except _ZIP_ERRORS as error:
            raise BundleError(f"{member} in {where} is damaged ({type(error).__name__}: {error})") from None
        if len(data) != info.file_size:
            raise BundleError(f"{member} in {where} is damaged (it unpacks to another size than its entry says)")
        return data

    @contextmanager
    def _zip(self) -> Iterator[zipfile.ZipFile]:
        with open(self.path, "rb") as fh, _open_zip(fh, self.path.name) as zf:
            yield zf

    def _reserve(self, size: int, what: str, limit: int) -> None:
        if size > limit:
            raise BundleError(f"{what} holds {size} bytes unpacked; the limit is {limit} bytes")
        if size > self.budget:
            raise BundleError(f"the bundle unpacks to more than the limit of {MAX_BUNDLE_BYTES} bytes in all")
        self.budget -= size


# --------------------------------------------------------------------------- validation


def _fail(message: str):
    raise BundleError(message)


def _check_file_name(name) -> None:
    """A relative name inside the bundle under POSIX and Windows rules alike (no root, drive,
    backslash or '..'), so no reader on any system resolves it outside the bundle."""
    if not isinstance(name, str) or len(name) > 255 or not _FILE_NAME.fullmatch(name) or ".." in name.split("/"):
        _fail(f"bundle file name {name!r:.60} must be a relative path inside the bundle (letters, digits, _ - . /)")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """A finite JSON number (not a bool; an integer too large for a float is not finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _dict(value, name: str) -> dict:
    if not isinstance(value, dict):
        _fail(f"rig.json {name} must be a JSON object")
    return value


def _count(value, name: str, low: int, high: int) -> int:
    if not _is_int(value) or not low <= value <= high:
        _fail(f"rig.json {name} must be an integer from {low} to {high}, got {value!r:.40}")
    return value


def _array(value, name: str, shape: tuple) -> np.ndarray:
    try:
        a = np.asarray(value, np.float64)
    except (TypeError, ValueError, OverflowError):
        _fail(f"{name} must be a numeric array")
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        _fail(f"{name} must have shape {tuple('N' if s is None else s for s in shape)}, got {a.shape}")
    if not np.isfinite(a).all():
        _fail(f"{name} contains NaN or infinite values")
    return a


def validate_document(doc: dict) -> None:
    """Structural checks of a rig.json dict that need no other file: every value `read_bundle` uses
    is checked for type and range, and every count against its limit before arrays are built."""
    if not isinstance(doc, dict):
        _fail("rig.json must hold a JSON object")
    version = doc.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        _fail(f"rig.json format_version is {version!r:.40}; this reader supports {FORMAT_VERSION}")
    for key in ("up_axis", "units", "mesh", "keypoints", "adjacency", "skeleton", "skin"):
        if key not in doc:
            _fail(f"rig.json has no {key!r}")
    if doc["up_axis"] not in ("Z", "Y"):
        _fail(f"rig.json up_axis must be 'Z' or 'Y', got {doc['up_axis']!r:.40}")
    for key in ("units", "generator"):
        if key in doc and not isinstance(doc[key], str):
            _fail(f"rig.json {key} must be a string")
    _check_extras(doc)
    mesh = _dict(doc["mesh"], "mesh")
    for key in ("file", "vertex_count", "face_count"):
        if key not in mesh:
            _fail(f"rig.json mesh has no {key!r}")
    _check_file_name(mesh["file"])
    _count(mesh["vertex_count"], "mesh.vertex_count", 1, MAX_VERTICES)
    _count(mesh["face_count"], "mesh.face_count", 0, MAX_FACES)
    keypoints = doc["keypoints"]
    if isinstance(keypoints, list) and len(keypoints) > MAX_KEYPOINTS:
        _fail(f"the rig has {len(keypoints)} keypoints; the limit is {MAX_KEYPOINTS}")
    n = len(_array(keypoints, "keypoints", (None, 3)))
    if n < 2:
        _fail(f"a rig needs at least 2 keypoints, got {n}")
    a = _array(doc["adjacency"], "adjacency", (n, n))
    if not np.allclose(a, a.T, atol=1e-6):
        _fail("adjacency is not symmetric")
    if (a < 0).any():
        _fail("adjacency has negative weights")
    names = _check_skeleton(_dict(doc["skeleton"], "skeleton"), n)
    _check_skin(_dict(doc["skin"], "skin"), names)


def _check_extras(doc: dict) -> None:
    """The informational parts, as far as the reader keeps them: timings, provenance, views."""
    timings = _dict(doc.get("timings", {}), "timings")
    if not all(_is_number(v) for v in timings.values()):
        _fail("rig.json timings must map stage names to seconds")
    provenance = _dict(doc.get("provenance", {}), "provenance")
    repairs = provenance.get("repairs", [])
    if not isinstance(repairs, list) or not all(isinstance(r, str) for r in repairs):
        _fail("rig.json provenance.repairs must be a list of sentences")
    if doc.get("views") is not None:
        _dict(doc["views"], "views")


def _check_skeleton(sk: dict, n: int) -> set[str]:
    """Root, parents (a tree over the n keypoints) and bones; returns the bone names."""
    for key in ("root_keypoint", "parents", "bones"):
        if key not in sk:
            _fail(f"rig.json skeleton has no {key!r}")
    root, parents, bones = sk["root_keypoint"], sk["parents"], sk["bones"]
    if not _is_int(root) or not 0 <= root < n:
        _fail(f"skeleton root_keypoint {root!r:.40} is not a keypoint index below {n}")
    if not isinstance(parents, list) or len(parents) != n or any(not _is_int(p) or not -1 <= p < n for p in parents):
        _fail(f"skeleton parents must be {n} keypoint indices (-1 at the root)")
    if [i for i, p in enumerate(parents) if p == -1] != [root]:
        _fail("skeleton parents must hold -1 at the root keypoint and nowhere else")
    if not _is_tree(parents, root):
        _fail("skeleton parents form a cycle: every keypoint must reach the root through its parents")
    if not isinstance(bones, list) or len(bones) > MAX_BONES:
        _fail(f"skeleton bones must be a list of at most {MAX_BONES} bones")
    names: set[str] = set()
    for i, bone in enumerate(bones):
        if not isinstance(bone, dict):
            _fail(f"bone {i} must be a JSON object")
        for key in ("name", "head", "tail", "parent", "keypoint"):
            if key not in bone:
                _fail(f"bone {i} has no {key!r}")
        name = bone["name"]
        if not isinstance(name, str) or not name:
            _fail(f"bone {i} has no name")
        if name in names:
            _fail(f"bone name {name!r} is used twice")
        if bone["parent"] is not None and (not isinstance(bone["parent"], str) or bone["parent"] not in names):
            _fail(f"bone {name!r} has parent {bone['parent']!r:.40}, which is not an earlier bone")
        names.add(name)
        head, tail = (
            _array(bone["head"], f"bone {name!r} head", (3,)),
            _array(bone["tail"], f"bone {name!r} tail", (3,)),
        )
        if np.linalg.norm(tail - head) <= 0:
            _fail(f"bone {name!r} has zero length")
        kind = bone.get("kind", "edge")
        if not isinstance(kind, str) or kind not in BONE_KINDS:
            _fail(f"bone {name!r} has kind {kind!r:.40}; expected one of {', '.join(BONE_KINDS)}")
        if not _is_int(bone["keypoint"]) or not -1 <= bone["keypoint"] < n:
            _fail(f"bone {name!r} keypoint {bone['keypoint']!r:.40} is out of range")
        if not all(isinstance(bone.get(key, False), bool) for key in ("deform", "connected")):
            _fail(f"bone {name!r} deform and connected must be true or false")
        if not _is_number(bone.get("roll", 0.0)):
            _fail(f"bone {name!r} roll must be a finite number (radians)")
    return names


def _is_tree(parents: list[int], root: int) -> bool:
    """Whether every index reaches `root` by following `parents` (no cycle); O(n)."""
    reaches = [False] * len(parents)
    reaches[root] = True
    for start in range(len(parents)):
        path, i = [], start
        while not reaches[i]:
            if len(path) >= len(parents):
                return False
            path.append(i)
            i = parents[i]
        for j in path:
            reaches[j] = True
    return True


def _check_skin(skin: dict, names: set[str]) -> None:
    """File, bones, k, method and the skinning parameters the add-on reuses (bounded: it reruns them)."""
    for key in ("file", "k"):
        if key not in skin:
            _fail(f"rig.json skin has no {key!r}")
    _check_file_name(skin["file"])
    bones = skin.get("bones", [])
    if not isinstance(bones, list) or not bones or not all(isinstance(b, str) for b in bones):
        _fail("skin bones must be unique names of skeleton bones")
    if len(set(bones)) != len(bones) or not set(bones) <= names:
        _fail("skin bones must be unique names of skeleton bones")
    if not _is_int(skin["k"]) or not 1 <= skin["k"] <= MAX_INFLUENCES:
        _fail(f"skin k must be between 1 and {MAX_INFLUENCES}")
    method = skin.get("method", "gaussian")
    if not isinstance(method, str) or method not in METHODS:
        _fail(f"skin method {method!r:.40} is not one of {', '.join(METHODS)}")
    params = _dict(skin.get("params", {}), "skin.params")
    relative = params.get("relative", True)
    if not isinstance(relative, bool):
        _fail("skin.params.relative must be true or false")
    for key in PARAMETER_RANGES:  # the ranges compute_skin_weights enforces when the add-on reruns them
        if key in params and (problem := parameter_problem(key, params[key], relative=relative)) is not None:
            _fail(f"skin.params.{key} must be {problem}, got {params[key]!r:.40}")
    if "sigma_world" in params and not (_is_number(params["sigma_world"]) and params["sigma_world"] > 0):
        _fail("skin.params.sigma_world must be a positive number")


def _check_arrays(doc: dict, vertices, faces, colors, indices, weights) -> None:
    """Checks that need the mesh and skin arrays (indices and weights as stored, before any cast)."""
    mesh = doc["mesh"]
    v, f = np.asarray(vertices), np.asarray(faces)
    if len(v) == 0:
        _fail("the bundle's mesh has no vertices")
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        _fail("mesh vertices must be a finite V x 3 array")
    if len(v) != mesh["vertex_count"] or len(f) != mesh["face_count"]:
        _fail(
            f"mesh file has {len(v)} vertices / {len(f)} faces "
            f"but rig.json says {mesh['vertex_count']} / {mesh['face_count']}"
        )
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        _fail("mesh faces index vertices that do not exist")
    if colors is not None and len(colors) != len(v):
        _fail("mesh colours do not match the vertex count")
    i, w = np.asarray(indices), np.asarray(weights)
    k = doc["skin"]["k"]
    if i.shape != (len(v), k) or w.shape != (len(v), k):
        _fail(f"skin indices and weights must be {len(v)} x {k}, got {i.shape} and {w.shape}")
    if i.min() < 0 or i.max() >= len(doc["skin"]["bones"]):
        _fail("skin indices point past the skin's bone list")
    if not np.isfinite(w).all() or (w < 0).any():
        _fail("skin weights must be finite and non-negative")
    sums = w.sum(1, dtype=np.float64)
    if np.abs(sums - 1.0).max() > 1e-3:
        _fail(f"skin weights of {int((np.abs(sums - 1.0) > 1e-3).sum())} vertices do not sum to 1")
