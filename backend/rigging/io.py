"""Backend bundle I/O: the core reader/writer plus JSON Schema validation, GLB and InputError messages."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from keydiff3d_addon.rigcore.bundle import (
    RIG_JSON,
    BundleError,
    RigBundle,
    read_bundle,
    read_bundle_json,
    validate_document,
    write_bundle,
)

from ..errors import InputError

SCHEMA_PATH = Path(__file__).parent / "schema" / "rig.schema.json"
GLB_FILE = "rig.glb"


@lru_cache(maxsize=1)
def rig_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def validate_schema(doc: dict) -> None:
    """Raise BundleError naming the first place where rig.json breaks the JSON Schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(rig_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise BundleError(f"rig.json breaks the schema at {where}: {error.message}")


def load_bundle(path) -> RigBundle:
    """Read a bundle (directory, rig.json or zip), validated by the structural checks (limits first)
    and the schema. Raises InputError, and nothing else, with one sentence when it is not a valid bundle."""
    try:
        doc, _ = read_bundle_json(path)
        validate_document(doc)  # bounded checks before the schema walks the whole document
        validate_schema(doc)
        return read_bundle(path)
    except BundleError as error:
        raise InputError(f"invalid rig bundle {path}: {error}") from None


def save_bundle(directory, bundle: RigBundle, *, glb: bool = True, files: dict[str, bytes] | None = None) -> Path:
    """Write the bundle (rig.json, mesh.ply, skin.npz, + rig.glb when `glb`) and check it against the
    schema. Returns the path of rig.json. A bundle the reader would refuse (over its limits, breaking
    the schema) raises InputError (one sentence) before anything is written."""
    try:
        validate_schema(bundle.to_json())
        path = write_bundle(directory, bundle, files)
    except BundleError as error:
        raise InputError(f"the rig cannot be saved as a bundle: {error}") from None
    if glb:
        from .glb import write_glb

        write_glb(Path(directory) / GLB_FILE, bundle)
    return path


__all__ = ["GLB_FILE", "RIG_JSON", "SCHEMA_PATH", "load_bundle", "rig_schema", "save_bundle", "validate_schema"]
