"""Saving Gaussians: the 3DGS .ply layout that splat viewers read, and the frosting binding (.npz).

3DGS .ply (binary little endian, one float per property): x y z, nx ny nz (zero), f_dc_0..2 (the
degree-0 spherical-harmonic coefficient: rgb = 0.5 + C0 * f_dc), opacity (logit), scale_0..2
(log), rot_0..3 (quaternion w x y z, unnormalised).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from ...errors import InputError
from .gaussians import GaussianParams
from .layer import FrostingGaussians

SH_C0 = 0.28209479177387814
PLY_PROPERTIES = (
    "x",
    "y",
    "z",
    "nx",
    "ny",
    "nz",
    "f_dc_0",
    "f_dc_1",
    "f_dc_2",
    "opacity",
    "scale_0",
    "scale_1",
    "scale_2",
    "rot_0",
    "rot_1",
    "rot_2",
    "rot_3",
)


def _as_params(gaussians: GaussianParams | FrostingGaussians) -> GaussianParams:
    return gaussians.world() if isinstance(gaussians, FrostingGaussians) else gaussians


def save_gaussians_ply(gaussians: GaussianParams | FrostingGaussians, path: str | Path) -> None:
    """Write Gaussians (free, or a frosting layer in its rest pose) as a 3DGS .ply."""
    g = _as_params(gaussians)
    with torch.no_grad():
        cols = [
            g.means,
            torch.zeros_like(g.means),
            (g.colors - 0.5) / SH_C0,
            g.opacity_logits[:, None],
            g.log_scales,
            g.quats,
        ]
        data = torch.cat([c.float().cpu() for c in cols], 1).numpy().astype("<f4")
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(data)}\n"
    header += "".join(f"property float {name}\n" for name in PLY_PROPERTIES) + "end_header\n"
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(np.ascontiguousarray(data).tobytes())


def load_gaussians_ply(path: str | Path) -> GaussianParams:
    """Read a 3DGS .ply written by `save_gaussians_ply` (or any with these float properties)."""
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply") or end < 0:
        raise InputError(f"{path} is not a PLY file")
    lines = raw[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise InputError(f"{path}: only binary little-endian 3DGS .ply files are supported")
    count = next(int(line.split()[2]) for line in lines if line.startswith("element vertex"))
    names = [line.split()[2] for line in lines if line.startswith("property float")]
    if len(names) != sum(line.startswith("property") for line in lines) or not set(PLY_PROPERTIES) <= set(names):
        raise InputError(f"{path} is not a 3DGS .ply (expected float properties {', '.join(PLY_PROPERTIES)})")
    data = np.frombuffer(raw, dtype="<f4", count=count * len(names), offset=end + len(b"end_header\n"))
    table = torch.as_tensor(data.reshape(count, len(names)).copy())
    col = {name: table[:, i] for i, name in enumerate(names)}
    stack = lambda *keys: torch.stack([col[k] for k in keys], 1)  # noqa: E731
    rgb = (0.5 + SH_C0 * stack("f_dc_0", "f_dc_1", "f_dc_2")).clamp(1e-4, 1 - 1e-4)
    return GaussianParams(
        means=stack("x", "y", "z"),
        quats=stack("rot_0", "rot_1", "rot_2", "rot_3"),
        log_scales=stack("scale_0", "scale_1", "scale_2"),
        opacity_logits=col["opacity"].clone(),
        color_logits=torch.log(rgb / (1 - rgb)),
    )


def save_frosting(frosting: FrostingGaussians, path: str | Path) -> None:
    """The whole binding (base mesh, shells, prism coordinates, appearance) as one .npz."""
    with open(path, "wb") as f:
        np.savez_compressed(
            f, **{fl.name: getattr(frosting, fl.name).detach().cpu().numpy() for fl in fields(frosting)}
        )


def load_frosting(path: str | Path) -> FrostingGaussians:
    with np.load(path) as data:
        missing = {fl.name for fl in fields(FrostingGaussians)} - set(data.files)
        if missing:
            raise InputError(f"{path} is not a frosting file (missing {', '.join(sorted(missing))})")
        return FrostingGaussians(**{fl.name: torch.as_tensor(data[fl.name]) for fl in fields(FrostingGaussians)})
