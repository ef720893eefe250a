"""Writing reconstruction outputs without ever leaving a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError

MESH_SUFFIXES = (".ply", ".glb", ".obj", ".stl", ".off")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_mesh_path(path: str | Path) -> Path:
    """The path, if its suffix is a mesh format we write; else an InputError (before any work)."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(
            f"cannot write a mesh as {path.suffix or 'a file without suffix'!r}; use one of {', '.join(MESH_SUFFIXES)}"
        )
    return path


def save_mesh(mesh, path: str | Path) -> Path:
    """Write a trimesh mesh (format from the suffix) atomically."""
    path = check_mesh_path(path)
    return atomic_write(path, lambda tmp: mesh.export(tmp, file_type=path.suffix.lower()[1:]))


def save_result(result, path: str | Path) -> list[Path]:
    """Write a ReconstructionResult: the mesh at `path` (the textured copy when there is one and the
    format carries textures), and for frosting the Gaussians as `<stem>_gaussians.ply` (3DGS format)
    and the base-mesh binding as `<stem>_frosting.npz`. Returns the files written."""
    path = Path(path)
    textured_ok = path.suffix.lower() in (".glb", ".obj")
    written = [save_mesh(result.textured if (result.textured is not None and textured_ok) else result.mesh, path)]
    if result.gaussians is not None:
        from .frosting.export import save_frosting, save_gaussians_ply

        written.append(
            atomic_write(
                path.with_name(f"{path.stem}_gaussians.ply"), lambda tmp: save_gaussians_ply(result.gaussians, tmp)
            )
        )
        written.append(
            atomic_write(path.with_name(f"{path.stem}_frosting.npz"), lambda tmp: save_frosting(result.gaussians, tmp))
        )
    return written
