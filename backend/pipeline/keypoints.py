"""The keypoint stage: orbit views -> N 3D keypoints + the learned adjacency, with a warm model cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..model import KeyDiff3D
from ..model.checkpoint import checkpoint_file
from ..multiview.base import MultiViewResult
from ..progress import Progress
from .models import MODELS

log = logging.getLogger(__name__)


@dataclass
class KeypointPrediction:
    """keypoints (N, 3) in the views' world frame; adjacency (N, N) symmetric, >= 0, zero diagonal;
    checkpoint: the file the model came from; metadata: the checkpoint's own metadata."""

    keypoints: np.ndarray
    adjacency: np.ndarray
    checkpoint: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    """A KeyDiff3D model in eval mode, its checkpoint's metadata and the file it came from."""

    model: KeyDiff3D
    metadata: dict[str, Any]
    path: str


def named_checkpoint(name: str) -> Path:
    """A preset's [model] checkpoint: a folder name under backend/checkpoints ("default", "quadruped",
    ...) or a path to a checkpoint file or folder."""
    from ..paths import CHECKPOINTS_DIR

    return CHECKPOINTS_DIR / name if (CHECKPOINTS_DIR / name).is_dir() else Path(name).expanduser()


def preset_model(preset, checkpoint: str | Path | None, device: torch.device) -> LoadedModel:
    """The keypoint model a category preset (rigcore CategoryPreset) runs: its [model] checkpoint,
    which must predict the preset's [model] keypoints (ConfigError otherwise: a preset cannot get
    another count than it says), or `checkpoint` when the caller names one (the caller's choice of
    model: its own count is used and logged when it differs)."""
    if checkpoint is not None:
        model = load_keypoint_model(checkpoint, device)
        count = int(model.model.config.num_keypoints)
        if count != preset.keypoints:
            log.warning(
                "checkpoint %s predicts %d keypoints; preset %r says %d",
                model.path,
                count,
                preset.name,
                preset.keypoints,
            )
        return model
    model = load_keypoint_model(named_checkpoint(preset.checkpoint), device)
    count = int(model.model.config.num_keypoints)
    if count != preset.keypoints:
        raise ConfigError(
            f"preset {preset.name!r} asks for {preset.keypoints} keypoints but its checkpoint {model.path} predicts "
            f"{count}; point [model] checkpoint at a model trained with {preset.keypoints} keypoints or set "
            f"[model] keypoints = {count}"
        )
    return model


def load_keypoint_model(checkpoint: str | Path | None, device: torch.device) -> LoadedModel:
    """The KeyDiff3D model of `checkpoint` (a file, its folder or None = the shipped default) on
    `device`, loaded once per process (ConfigError if unusable)."""
    path = checkpoint_file(checkpoint)

    def load() -> LoadedModel:
        model = KeyDiff3D.from_checkpoint(path, device)
        return LoadedModel(model, model.checkpoint.metadata, str(path))

    return MODELS.get(("keydiff3d", str(path), str(device)), load)


def predict_from_views(
    views: MultiViewResult, model: LoadedModel, progress: Progress | None = None
) -> KeypointPrediction:
    """Run the model on the input view plus the config's K-1 evenly spaced views."""
    progress = progress or Progress()
    progress.update(0.0, "predicting keypoints")
    with torch.inference_mode():
        keypoints, adjacency = model.model.predict(views)
    progress.update(1.0, "keypoints predicted")
    adjacency = (adjacency + adjacency.T) / 2  # exact symmetry for the bundle's validation
    np.fill_diagonal(adjacency, 0.0)
    return KeypointPrediction(keypoints, np.maximum(adjacency, 0.0), model.path, model.metadata)
