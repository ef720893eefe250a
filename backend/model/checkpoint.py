"""KeyDiff3D checkpoints: one safetensors file holding the weights and a self-describing header.

Format version 2 (written since the model layer owns checkpoints), the header's entries as JSON strings:
    format            "keydiff3d-checkpoint"
    format_version    "2"
    model_config      the model's complete KeyDiff3DConfig (`model.config.to_dict()`, the perceptual
                      loss resolved): what `KeyDiff3D.from_checkpoint` rebuilds
    training_config   the TrainConfig of the run that wrote it (optional; training/ reads it)
    metadata          feature source, perceptual-loss substitute, training command, step, eval numbers, ...
Format version 1 (backend/checkpoints/default and every `keydiff3d train` run before version 2) has
`config` = the TrainConfig instead of the two configs; its [model] table (the fields that differ from
KeyDiff3DConfig's defaults) rebuilds the architecture. Both versions are read; version 2 is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError
from ..paths import CHECKPOINTS_DIR
from .config import KeyDiff3DConfig

if TYPE_CHECKING:
    from .keydiff3d import KeyDiff3D

FORMAT = "keydiff3d-checkpoint"
FORMAT_VERSION = "2"
READABLE_VERSIONS = ("1", "2")
WEIGHTS_NAME = "model.safetensors"
DEFAULT_CHECKPOINT = CHECKPOINTS_DIR / "default" / WEIGHTS_NAME


@dataclass(frozen=True)
class CheckpointHeader:
    """What a checkpoint file says about itself. training_config: the raw TrainConfig table (None
    when the file was not written by a training run); keydiff3d.training.config rebuilds it."""

    path: Path
    format_version: str
    model_config: KeyDiff3DConfig
    metadata: dict[str, Any]
    training_config: dict[str, Any] | None


def checkpoint_file(checkpoint: str | Path | None) -> Path:
    """The file a checkpoint argument names: the file itself, `model.safetensors` in a folder, or
    (None) the shipped default. Not checked for existence (see `read_checkpoint`)."""
    if checkpoint is None:
        return DEFAULT_CHECKPOINT
    path = Path(checkpoint).expanduser().resolve()
    return path / WEIGHTS_NAME if path.is_dir() else path


def save_checkpoint(
    path: str | Path, model: KeyDiff3D, metadata: dict[str, Any], training_config: dict[str, Any] | None = None
) -> Path:
    """Write weights (fp32, contiguous, shared tensors cloned) and the version-2 header to one file,
    atomically (a half-written file never carries the real name)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": json.dumps(model.config.to_dict()),
        "metadata": json.dumps(metadata),
    }
    if training_config is not None:
        header["training_config"] = json.dumps(training_config)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=header)
    tmp.replace(path)
    return path


def read_checkpoint(checkpoint: str | Path | None) -> tuple[dict[str, torch.Tensor], CheckpointHeader]:
    """(state_dict, header) of a checkpoint file or folder (None = the shipped default); ConfigError
    with one sentence when it is missing, corrupt, not a KeyDiff3D checkpoint or of an unknown version."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = _existing(checkpoint_file(checkpoint))
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ConfigError(
            f"checkpoint {path} is corrupt or not a safetensors file ({error}); retrain it or restore the file"
        ) from None
    return state, _parse_header(path, header)


def load_weights(model: KeyDiff3D, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load `state` into `model`; ConfigError naming the first key that does not fit its architecture."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        if missing:
            detail = f"missing {missing[0]!r}"
        elif unexpected:
            detail = f"unexpected {unexpected[0]!r}"
        else:
            detail = (
                f"{wrong[0]!r} has shape {tuple(state[wrong[0]].shape)}, expected {tuple(expected[wrong[0]].shape)}"
            )
        raise ConfigError(
            f"checkpoint {path} does not match the model its config describes ({detail}); "
            "it was saved by incompatible code"
        )
    model.load_state_dict(state)


def _existing(path: Path) -> Path:
    if not path.is_file():
        hint = "train one with `keydiff3d train default`" if path == DEFAULT_CHECKPOINT else "check the path"
        raise ConfigError(f"no checkpoint file at {path}; {hint}")
    return path


def _parse_header(path: Path, header: dict[str, str]) -> CheckpointHeader:
    if header.get("format") != FORMAT:
        raise ConfigError(f"{path} is a safetensors file but not a KeyDiff3D checkpoint (no '{FORMAT}' header)")
    version = header.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ConfigError(
            f"checkpoint {path} has format version {version!r}; "
            f"this code reads versions {' and '.join(READABLE_VERSIONS)}"
        )
    source = f"checkpoint {path.name}"
    try:
        metadata = json.loads(header.get("metadata", "{}"))
        if version == "1":
            training_config = json.loads(header["config"])
            model_table = training_config.get("model", {}) if isinstance(training_config, dict) else None
        else:
            training_config = json.loads(header["training_config"]) if "training_config" in header else None
            model_table = json.loads(header["model_config"])
    except (KeyError, json.JSONDecodeError) as error:
        raise ConfigError(f"checkpoint {path} has an unreadable config header ({error})") from None
    model_config = KeyDiff3DConfig.from_dict(
        model_table, source=source, path="config.model" if version == "1" else "model_config"
    )
    return CheckpointHeader(path, version, model_config, metadata, training_config)
