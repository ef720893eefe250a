"""Rig bundle: rig.json + mesh.ply + skin.npz in a directory (or the same files at a zip's root).

Numpy + stdlib only, so the Blender add-on reads bundles with this very code. The reader checks the
structure (shapes, finite values, symmetric adjacency, weights summing to 1, unique names, existing
parents) and raises `BundleError` with one sentence naming the problem; the backend additionally
validates rig.json against backend/rigging/schema/rig.schema.json (keydiff3d.rigging.io).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .ply import PlyError, parse_ply, write_ply
from .skeleton import BONE_KINDS, Skeleton
from .skinning import MAX_INFLUENCES, SkinWeights

FORMAT_VERSION = 1
RIG_JSON, MESH_FILE, SKIN_FILE = "rig.json", "mesh.ply", "skin.npz"


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
    _check_arrays(doc, bundle.vertices, bundle.faces, bundle.colors, bundle.skin)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    write_ply(out / MESH_FILE, bundle.vertices, bundle.faces, bundle.colors)
    with open(out / SKIN_FILE, "wb") as fh:
        np.savez_compressed(fh, indices=bundle.skin.indices.astype(np.int32), weights=bundle.skin.weights.astype(np.float32))
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
    try:
        doc = json.loads(source.read(RIG_JSON))
    except json.JSONDecodeError as error:
        raise BundleError(f"rig.json is not valid JSON ({error.msg} at line {error.lineno})") from None
    return doc, source


def read_bundle(path) -> RigBundle:
    """Read and validate a bundle from a directory, its rig.json, or a zip with the files at its root."""
    doc, source = read_bundle_json(path)
    validate_document(doc)
    try:
        vertices, faces, colors = parse_ply(source.read(doc["mesh"]["file"]), doc["mesh"]["file"])
    except PlyError as error:
        raise BundleError(str(error)) from None
    try:
        with np.load(io.BytesIO(source.read(doc["skin"]["file"]))) as npz:
            indices, weights = npz["indices"], npz["weights"]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise BundleError(f"{doc['skin']['file']} is not a skin file with 'indices' and 'weights' ({error})") from None
    skin = SkinWeights(indices.astype(np.int32), weights.astype(np.float32), list(doc["skin"]["bones"]),
                       doc["skin"].get("method", "gaussian"), dict(doc["skin"].get("params", {})))
    _check_arrays(doc, vertices, faces, colors, skin)
    skeleton = Skeleton.from_dict(doc["skeleton"], doc["keypoints"], doc["adjacency"])
    skeleton.repairs = list(doc.get("provenance", {}).get("repairs", []))
    return RigBundle(
        vertices=vertices, faces=faces, colors=colors, skeleton=skeleton, skin=skin,
        up_axis=doc["up_axis"], units=doc["units"], generator=doc.get("generator", ""),
        views=doc.get("views"), timings=dict(doc.get("timings", {})), provenance=dict(doc.get("provenance", {})),
    )  # fmt: skip


class _Source:
    """Reads bundle files by name from a directory or a zip."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise BundleError(f"no rig bundle at {path}")
        self.zip = None
        if path.is_file() and path.suffix.lower() == ".zip":
            try:
                self.zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise BundleError(f"{path.name} is not a valid zip file") from None
            self.root = path
        else:
            self.root = path.parent if path.is_file() else path

    def read(self, name: str) -> bytes:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(f"bundle file name {name!r} must be relative to the bundle")
        if self.zip is not None:
            try:
                return self.zip.read(name)
            except KeyError:
                raise BundleError(f"{self.root.name} has no {name} at the zip root") from None
        target = self.root / name
        if not target.is_file():
            raise BundleError(f"the bundle in {self.root} has no {name}")
        return target.read_bytes()


# --------------------------------------------------------------------------- validation


def _fail(message: str):
    raise BundleError(message)


def _array(value, name: str, shape: tuple) -> np.ndarray:
    try:
        a = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        _fail(f"{name} must be a numeric array")
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        _fail(f"{name} must have shape {tuple('N' if s is None else s for s in shape)}, got {a.shape}")
    if not np.isfinite(a).all():
        _fail(f"{name} contains NaN or infinite values")
    return a


def validate_document(doc: dict) -> None:
    """Structural checks of a rig.json dict that need no other file."""
    if not isinstance(doc, dict):
        _fail("rig.json must hold a JSON object")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        _fail(f"rig.json format_version is {version!r}; this reader supports {FORMAT_VERSION}")
    for key in ("up_axis", "units", "mesh", "keypoints", "adjacency", "skeleton", "skin"):
        if key not in doc:
            _fail(f"rig.json has no {key!r}")
    if doc["up_axis"] not in ("Z", "Y"):
        _fail(f"rig.json up_axis must be 'Z' or 'Y', got {doc['up_axis']!r}")
    k = _array(doc["keypoints"], "keypoints", (None, 3))
    n = len(k)
    if n < 2:
        _fail(f"a rig needs at least 2 keypoints, got {n}")
    a = _array(doc["adjacency"], "adjacency", (n, n))
    if not np.allclose(a, a.T, atol=1e-6):
        _fail("adjacency is not symmetric")
    if (a < 0).any():
        _fail("adjacency has negative weights")
    sk = doc["skeleton"]
    for key in ("root_keypoint", "parents", "bones"):
        if key not in sk:
            _fail(f"rig.json skeleton has no {key!r}")
    root = sk["root_keypoint"]
    parents = sk["parents"]
    if not isinstance(root, int) or not 0 <= root < n:
        _fail(f"skeleton root_keypoint {root!r} is not a keypoint index below {n}")
    if len(parents) != n or any(not isinstance(p, int) or not -1 <= p < n for p in parents):
        _fail(f"skeleton parents must be {n} keypoint indices (-1 at the root)")
    if [i for i, p in enumerate(parents) if p == -1] != [root]:
        _fail("skeleton parents must hold -1 at the root keypoint and nowhere else")
    names: set[str] = set()
    for i, bone in enumerate(sk["bones"]):
        for key in ("name", "head", "tail", "parent", "keypoint"):
            if key not in bone:
                _fail(f"bone {i} has no {key!r}")
        name = bone["name"]
        if not isinstance(name, str) or not name:
            _fail(f"bone {i} has no name")
        if name in names:
            _fail(f"bone name {name!r} is used twice")
        if bone["parent"] is not None and bone["parent"] not in names:
            _fail(f"bone {name!r} has parent {bone['parent']!r}, which is not an earlier bone")
        names.add(name)
        head, tail = _array(bone["head"], f"bone {name!r} head", (3,)), _array(bone["tail"], f"bone {name!r} tail", (3,))
        if np.linalg.norm(tail - head) <= 0:
            _fail(f"bone {name!r} has zero length")
        if bone.get("kind", "edge") not in BONE_KINDS:
            _fail(f"bone {name!r} has kind {bone.get('kind')!r}; expected one of {', '.join(BONE_KINDS)}")
        if not isinstance(bone["keypoint"], int) or not -1 <= bone["keypoint"] < n:
            _fail(f"bone {name!r} keypoint {bone['keypoint']!r} is out of range")
    skin = doc["skin"]
    bones = skin.get("bones", [])
    if not bones or len(set(bones)) != len(bones) or not set(bones) <= names:
        _fail("skin bones must be unique names of skeleton bones")
    if not isinstance(skin.get("k"), int) or not 1 <= skin["k"] <= MAX_INFLUENCES:
        _fail(f"skin k must be between 1 and {MAX_INFLUENCES}")


def _check_arrays(doc: dict, vertices, faces, colors, skin: SkinWeights) -> None:
    """Checks that need the mesh and skin arrays."""
    mesh = doc["mesh"]
    v, f = np.asarray(vertices), np.asarray(faces)
    if len(v) == 0:
        _fail("the bundle's mesh has no vertices")
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        _fail("mesh vertices must be a finite V x 3 array")
    if len(v) != mesh["vertex_count"] or len(f) != mesh["face_count"]:
        _fail(f"mesh file has {len(v)} vertices / {len(f)} faces but rig.json says {mesh['vertex_count']} / {mesh['face_count']}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        _fail("mesh faces index vertices that do not exist")
    if colors is not None and len(colors) != len(v):
        _fail("mesh colours do not match the vertex count")
    i, w = np.asarray(skin.indices), np.asarray(skin.weights)
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
