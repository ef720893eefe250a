"""Device selection: auto / cuda / cpu, with one clear sentence when CUDA is asked for and absent."""

from __future__ import annotations

import torch

from ..errors import DeviceError


def resolve_device(requested: str = "auto") -> torch.device:
    """'auto' -> the first CUDA GPU when there is one, else the CPU; 'cuda' without CUDA raises DeviceError."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for but this machine has no usable CUDA GPU; use --device auto or cpu")
    if requested not in ("cuda", "cpu"):
        raise DeviceError(f"unknown device {requested!r}; use auto, cuda or cpu")
    return torch.device(requested)


def require_cuda(stage: str, device: torch.device) -> None:
    """Raise DeviceError when a CUDA-only `stage` would run on `device`."""
    if device.type != "cuda":
        raise DeviceError(
            f"the {stage} stage needs a CUDA GPU but the pipeline runs on {device.type}; "
            "run on a machine with CUDA or choose the CPU alternative (e.g. reconstruction 'hull')"
        )
