"""Device selection for every stage: auto / cpu / cuda / cuda:N, with one sentence when CUDA is asked for and absent."""

from __future__ import annotations

import torch

from .errors import DeviceError


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(requested: str | torch.device = "auto") -> torch.device:
    """'auto' -> the first CUDA GPU when there is one, else the CPU; 'cpu', 'cuda' and 'cuda:N' as
    asked. A CUDA device on a machine without CUDA, or any other name, raises DeviceError."""
    if str(requested) == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device {str(requested)!r}; use auto, cuda or cpu")
    if device.type == "cuda" and not cuda_available():
        raise DeviceError(
            f"--device {requested} was asked for but this machine has no usable CUDA GPU; use --device auto or cpu"
        )
    return device
