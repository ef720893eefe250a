"""Model checkpoints: one safetensors file holding the weights, the training config and metadata.

The safetensors header carries (as JSON strings):
    format          "keydiff3d-checkpoint"
    format_version  "1"
    config          the full TrainConfig (its [model] section rebuilds the architecture)
    metadata        feature source, perceptual-loss substitute, training command, step, eval numbers, ...
so a checkpoint file is self-describing. `load_model()` with no path loads the shipped default in
backend/checkpoints/default/. Resumable training state (optimizer, scheduler, RNG, step) is saved
separately by the trainer with Accelerate; this file is what inference and evaluation read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..paths import CHECKPOINTS_DIR
from .config import TrainConfig

FORMAT = "keydiff3d-checkpoint"
FORMAT_VERSION = "1"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_CHECKPOINT = CHECKPOINTS_DIR / "default" / WEIGHTS_NAME


def build_model(config: TrainConfig) -> torch.nn.Module:
    """The KeyDiff3D module described by `config.model` (random weights)."""
    from ..model import KeyDiff3D

    return KeyDiff3D(config.model_config())


def save_checkpoint(path: str | Path, model: torch.nn.Module, config: TrainConfig, metadata: dict[str, Any]) -> Path:
    """Write weights + config + metadata to one safetensors file (fp32, contiguous, shared tensors cloned)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(config.to_dict()),
        "metadata": json.dumps(metadata),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=header)
    tmp.replace(path)  # never leave a half-written checkpoint under the real name
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], TrainConfig, dict[str, Any]]:
    """(state_dict, config, metadata) of a checkpoint file; ConfigError with one sentence on any problem."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = _resolve(path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ConfigError(f"checkpoint {path} is corrupt or not a safetensors file ({error}); retrain it or restore the file") from None
    if header.get("format") != FORMAT:
        raise ConfigError(f"{path} is a safetensors file but not a KeyDiff3D checkpoint (no '{FORMAT}' header)")
    if header.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"checkpoint {path} has format version {header.get('format_version')!r}; this code reads version {FORMAT_VERSION}")
    try:
        config = TrainConfig.from_dict(json.loads(header["config"]), where=f"checkpoint {path.name}")
        metadata = json.loads(header.get("metadata", "{}"))
    except (KeyError, json.JSONDecodeError) as error:
        raise ConfigError(f"checkpoint {path} has an unreadable config header ({error})") from None
    return state, config, metadata


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, TrainConfig, dict[str, Any]]:
    """(model in eval mode on `device`, its TrainConfig, its metadata). None = the shipped default.

    Raises ConfigError when the file is missing, corrupt, not a KeyDiff3D checkpoint, or its weights
    do not fit the architecture its config describes.
    """
    state, config, metadata = read_checkpoint(DEFAULT_CHECKPOINT if path is None else path)
    model = build_model(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = (f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}" if unexpected
                  else f"{wrong[0]!r} has shape {tuple(state[wrong[0]].shape)}, expected {tuple(expected[wrong[0]].shape)}")
        raise ConfigError(f"checkpoint {path or DEFAULT_CHECKPOINT} does not match the model its config describes ({detail}); it was saved by incompatible code")
    model.load_state_dict(state)
    return model.to(device).eval(), config, metadata


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        hint = "train one with `keydiff3d train default`" if path == DEFAULT_CHECKPOINT else "check the path"
        raise ConfigError(f"no checkpoint file at {path}; {hint}")
    return path


def publish(checkpoint: str | Path, dest_dir: str | Path, notes: str = "") -> Path:
    """Copy a checkpoint into `dest_dir` (e.g. backend/checkpoints/default) with `config.json` and a
    README.md that states its training command and evaluation numbers, all read from the file itself."""
    import shutil

    _, config, metadata = read_checkpoint(checkpoint)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_resolve(checkpoint), dest / WEIGHTS_NAME)
    (dest / WEIGHTS_NAME).chmod(0o644)  # shipped with the repository: readable by everyone
    (dest / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    size_mb = (dest / WEIGHTS_NAME).stat().st_size / 2**20
    m = config.model
    lines = [
        f"# KeyDiff3D checkpoint `{dest.name}`",
        "",
        "Trained in the procedural synthetic world (no downloaded weights or data). Loaded by",
        "`keydiff3d.training.checkpoint.load_model()`; the config inside the file is authoritative,",
        "`config.json` is a readable copy.",
        "",
        f"- file: `{WEIGHTS_NAME}` ({size_mb:.1f} MB, fp32 safetensors with config + metadata in its header)",
        f"- model: N={m.get('num_keypoints', 18)} keypoints, K={metadata.get('num_views')} views, "
        f"lifting {metadata.get('lifting')}, image {m.get('image_size')} px, M={m.get('voxel_size')}, "
        f"features {metadata.get('feature_source')}",
        f"- perceptual loss: {metadata.get('perceptual_loss')} (`pyramid` = the documented CPU substitute for VGG16, docs/MODEL.md)",
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
            f"{evaluation['linear_mpjpe']:.1f} | {evaluation['mean_pose_mpjpe']:.1f} | {evaluation['cd_j2j']:.1f} | {evaluation['cd_j2b']:.1f} |",
        ]
    if notes:
        lines += ["", notes]
    (dest / "README.md").write_text("\n".join(lines) + "\n")
    return dest / WEIGHTS_NAME
