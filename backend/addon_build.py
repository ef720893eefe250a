"""`keydiff3d build-addon [--out DIR]`: the installable Blender extension zip.

Zip layout (what Blender's extension installer expects): `blender_manifest.toml` beside the
package's `__init__.py` at the zip root, the add-on modules (with `rigcore/`, the numpy-only rigging
core the backend imports too) and `presets/` copied from the top-level `presets/` folder. No
`__pycache__`, no `*.pyc`.
"""

from __future__ import annotations

import argparse
import os
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError
from .paths import ADDON_DIR, PRESETS_DIR, REPO_ROOT

MANIFEST_PATH = REPO_ROOT / "blender_manifest.toml"
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo", ".blend1"}


def read_manifest(path: Path = MANIFEST_PATH) -> dict:
    """The parsed manifest, with the fields the build relies on checked."""
    try:
        manifest = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read the extension manifest {path}: {error}") from error
    for key in ("schema_version", "id", "version", "name", "tagline", "type", "blender_version_min", "license"):
        if key not in manifest:
            raise ConfigError(f"the extension manifest {path} lacks the required field {key!r}")
    tagline = manifest["tagline"]
    if len(tagline) > 64 or tagline[-1:] in ".!?,;:":
        raise ConfigError(
            f"the manifest tagline must be at most 64 characters without trailing punctuation: {tagline!r}"
        )
    return manifest


def _files(root: Path) -> Iterator[Path]:
    """Files under `root`, caches skipped, sorted."""
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            if Path(name).suffix not in _SKIP_SUFFIXES:
                yield Path(directory) / name


def addon_files(addon_dir: Path = ADDON_DIR, presets_dir: Path = PRESETS_DIR) -> list[tuple[Path, str]]:
    """(source file, name inside the zip) pairs, in zip order."""
    if not (addon_dir / "__init__.py").is_file():
        raise ConfigError(f"no add-on package at {addon_dir} (expected {addon_dir / '__init__.py'})")
    entries: list[tuple[Path, str]] = []
    for path in _files(addon_dir):
        name = path.relative_to(addon_dir).as_posix()
        if name.startswith("presets/"):
            continue  # the top-level presets are copied below; they win over a stale copy
        entries.append((path, name))
    if presets_dir.is_dir():
        entries += [(path, "presets/" + path.relative_to(presets_dir).as_posix()) for path in _files(presets_dir)]
    return entries


def build_addon(out_dir: Path | str = REPO_ROOT / "dist") -> Path:
    """Write `<out_dir>/keydiff3d-<version>.zip` and return its path."""
    manifest = read_manifest()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    entries = [(MANIFEST_PATH, "blender_manifest.toml")] + addon_files()
    tmp_path = zip_path.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for source, name in entries:
            archive.write(source, name)
    tmp_path.replace(zip_path)  # never leave a half-written zip under the final name
    return zip_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist", help="output folder (default: dist/)")


def run(args: argparse.Namespace) -> int:
    zip_path = build_addon(args.out)
    print(zip_path)
    return 0
