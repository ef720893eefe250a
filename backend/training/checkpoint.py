"""Training runs' checkpoints: the model layer's file (keydiff3d.model.checkpoint) plus the run's TrainConfig.

`keydiff3d train` writes the TrainConfig into the header next to the model config (format version 2,
docs in model/checkpoint.py); `read_checkpoint`/`load_model` return it rebuilt, so evaluation and
`publish` know the data a model was trained on. Inference needs none of this: it loads through
`KeyDiff3D.from_checkpoint`. Resumable training state (optimizer, scheduler, RNG, step) is saved
separately by the trainer with Accelerate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..model import KeyDiff3D
from ..model.checkpoint import WEIGHTS_NAME, CheckpointHeader, checkpoint_file
from ..model.checkpoint import read_checkpoint as read_model_checkpoint
from ..model.checkpoint import save_checkpoint as save_model_checkpoint
from .config import TrainConfig


def build_model(config: TrainConfig) -> KeyDiff3D:
    """The KeyDiff3D module described by `config.model` (random weights)."""
    return KeyDiff3D(config.model_config())


def save_checkpoint(path: str | Path, model: KeyDiff3D, config: TrainConfig, metadata: dict[str, Any]) -> Path:
    """Write weights + model config + `config` + metadata to one safetensors file (atomically)."""
    return save_model_checkpoint(path, model, metadata, training_config=config.to_dict())


def read_checkpoint(path: str | Path | None) -> tuple[dict[str, torch.Tensor], TrainConfig, dict[str, Any]]:
    """(state_dict, config, metadata) of a training run's checkpoint; ConfigError with one sentence on any problem."""
    state, header = read_model_checkpoint(path)
    return state, training_config(header), header.metadata


def load_model(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[KeyDiff3D, TrainConfig, dict[str, Any]]:
    """(model in eval mode on `device`, its TrainConfig, its metadata). None = the shipped default.

    Raises ConfigError when the file is missing, corrupt, not a KeyDiff3D checkpoint, its weights
    do not fit the architecture its config describes, or it holds no training config.
    """
    model = KeyDiff3D.from_checkpoint(path, device)
    return model, training_config(model.checkpoint), model.checkpoint.metadata


def training_config(header: CheckpointHeader) -> TrainConfig:
    """The TrainConfig stored in a checkpoint's header (ConfigError when it has none)."""
    if header.training_config is None:
        raise ConfigError(
            f"checkpoint {header.path} holds no training config (it was not written by `keydiff3d train`)"
        )
    return TrainConfig.from_dict(header.training_config, where=f"checkpoint {header.path.name}")


def publish(checkpoint: str | Path, dest_dir: str | Path, notes: str = "") -> Path:
    """Copy a checkpoint into `dest_dir` (e.g. backend/checkpoints/default) with `config.json` and a
    README.md that states its training command and evaluation numbers, all read from the file itself."""
    import shutil

    _, config, metadata = read_checkpoint(checkpoint)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint_file(checkpoint), dest / WEIGHTS_NAME)
    (dest / WEIGHTS_NAME).chmod(0o644)  # shipped with the repository: readable by everyone
    (dest / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    size_mb = (dest / WEIGHTS_NAME).stat().st_size / 2**20
    m = config.model
    lines = [
        f"# KeyDiff3D checkpoint `{dest.name}`",
        "",
        "Trained in the procedural synthetic world (no downloaded weights or data). Loaded by",
        "`KeyDiff3D.from_checkpoint()`; the configs inside the file are authoritative,",
        "`config.json` is a readable copy of the training config.",
        "",
        f"- file: `{WEIGHTS_NAME}` ({size_mb:.1f} MB, fp32 safetensors with config + metadata in its header)",
        f"- model: N={m.get('num_keypoints', 18)} keypoints, K={metadata.get('num_views')} views, "
        f"lifting {metadata.get('lifting')}, image {m.get('image_size')} px, M={m.get('voxel_size')}, "
        f"features {metadata.get('feature_source')}",
        f"- perceptual loss: {metadata.get('perceptual_loss')} "
        "(`pyramid` = the documented CPU substitute for VGG16, docs/MODEL.md)",
        f"- training: {metadata.get('step')} steps x batch {config.optim.batch_size}, "
        f"{metadata.get('train_seconds', 0) / 60:.0f} min wall time, torch {metadata.get('torch')}",
        f"- data: `{metadata.get('data_dir')}`",
        "",
        "Training command:",
        "",
        "```",
        metadata.get("training_command", "?"),
        "```",
    ]
    evaluation = metadata.get("eval")
    if evaluation:
        lines += [
            "",
            f"Evaluation (`keydiff3d eval`, paper protocol, {evaluation['num_train']} training / "
            f"{evaluation['num_test']} held-out creatures, units: {evaluation['unit']}):",
            "",
            "| MPJPE (MLP) | N-MPJPE | P-MPJPE | MPJPE (linear) | mean-pose MPJPE | CD-J2J | CD-J2B |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {evaluation['mpjpe']:.1f} | {evaluation['n_mpjpe']:.1f} | {evaluation['p_mpjpe']:.1f} | "
            f"{evaluation['linear_mpjpe']:.1f} | {evaluation['mean_pose_mpjpe']:.1f} | "
            f"{evaluation['cd_j2j']:.1f} | {evaluation['cd_j2b']:.1f} |",
        ]
    if notes:
        lines += ["", notes]
    (dest / "README.md").write_text("\n".join(lines) + "\n")
    return dest / WEIGHTS_NAME
