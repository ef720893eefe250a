"""What the model eats: `KeyDiff3DBatch` (torch tensors), built from a `MultiViewResult` or raw arrays.

View order convention: in every batch view 0 is the input view; views 1..K-1 are the other
(generated / rendered) views. `select_views` picks them from a full orbit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.nn import functional as F

from ..geometry import Cameras
from ..multiview.base import MultiViewResult


@dataclass
class KeyDiff3DBatch:
    """A batch of B objects seen in K views (view 0 = the input view).

    images:      (B, K, 3, H, W) float in [0, 1], on white.
    masks:       (B, K, H, W) float in [0, 1].
    projections: (B, K, 3, 4) P = K[R|t] for H x W images (keydiff3d.geometry pixel convention).
    features:    per tapped layer (B, K, C_l, h_l, w_l) - only for feature_source "external".
    joints:      optional (B, J, 3) GT joints in the world frame (supervised mode, evaluation).
    joints_valid: optional (B, J) bool, False for padding in joint sets of different sizes.
    """

    images: torch.Tensor
    masks: torch.Tensor
    projections: torch.Tensor
    features: list[torch.Tensor] = field(default_factory=list)
    joints: torch.Tensor | None = None
    joints_valid: torch.Tensor | None = None

    def __post_init__(self) -> None:
        B, K, C, H, W = self.images.shape
        if C != 3:
            raise ValueError(f"images must be (B, K, 3, H, W), got {tuple(self.images.shape)}")
        if tuple(self.masks.shape) != (B, K, H, W):
            raise ValueError(f"masks {tuple(self.masks.shape)} do not match images {tuple(self.images.shape)}")
        if tuple(self.projections.shape) != (B, K, 3, 4):
            raise ValueError(f"projections must be (B, K, 3, 4) = {(B, K, 3, 4)}, got {tuple(self.projections.shape)}")
        for layer in self.features:
            if tuple(layer.shape[:2]) != (B, K):
                raise ValueError(
                    f"feature layers must be (B, K, C, h, w) with B, K = {B}, {K}; got {tuple(layer.shape)}"
                )

    @property
    def batch_size(self) -> int:
        return self.images.shape[0]

    @property
    def num_views(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the images the projections refer to."""
        return self.images.shape[-1], self.images.shape[-2]

    def to(self, device: torch.device | str) -> "KeyDiff3DBatch":
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return replace(
            self,
            images=move(self.images),
            masks=move(self.masks),
            projections=move(self.projections),
            features=[move(f) for f in self.features],
            joints=move(self.joints),
            joints_valid=move(self.joints_valid),
        )


def select_views(
    cameras: Cameras, input_view: int, num_views: int, rng: np.random.Generator | None = None
) -> list[int]:
    """Indices of K views: the input view first, then K-1 others.

    With `rng`: others drawn at random without replacement (training). Without: the views whose
    azimuths are closest to evenly spaced offsets from the input view (inference, deterministic;
    K=4 on the SV3D-p orbit gives ~90, 180, 270 deg).
    """
    total = len(cameras)
    if not 1 <= num_views <= total:
        raise ValueError(f"cannot select {num_views} views out of {total}")
    others = [i for i in range(total) if i != input_view]
    if num_views == 1:
        return [input_view]
    if rng is not None:
        return [input_view] + [int(i) for i in rng.choice(others, size=num_views - 1, replace=False)]
    azimuth = np.asarray(cameras.azimuth_deg, np.float64)
    chosen: list[int] = []
    for step in range(1, num_views):
        target = (azimuth[input_view] + step * 360.0 / num_views) % 360.0
        gap = np.abs((azimuth[others] - target + 180.0) % 360.0 - 180.0)
        for candidate in np.argsort(gap, kind="stable"):
            if others[candidate] not in chosen:
                chosen.append(others[candidate])
                break
    return [input_view] + chosen


def _resize(t: torch.Tensor, size: int) -> torch.Tensor:
    if t.shape[-2:] == (size, size):
        return t
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def batch_from_arrays(
    images: np.ndarray,
    masks: np.ndarray,
    cameras: Cameras,
    views: Sequence[int],
    image_size: int,
    features: Sequence[np.ndarray] = (),
    joints: np.ndarray | None = None,
) -> KeyDiff3DBatch:
    """One object (B = 1) from full-orbit arrays, keeping `views` (view 0 must be the input view).

    images (V, H, W, 3) float [0, 1] or uint8; masks (V, H, W) float or uint8; cameras for H x W;
    features: per layer (V, C_l, h_l, w_l). Images and masks are resized to image_size^2 and the
    projection matrices follow (`Cameras.resized`), so non-square inputs are handled exactly.
    """
    views = list(views)
    img = torch.as_tensor(np.asarray(images)[views])
    msk = torch.as_tensor(np.asarray(masks)[views])
    if img.dtype == torch.uint8:
        img = img.float() / 255.0
    if msk.dtype == torch.uint8:
        msk = msk.float() / 255.0
    img = _resize(img.float().permute(0, 3, 1, 2), image_size).clamp(0, 1)
    msk = _resize(msk.float()[:, None], image_size)[:, 0].clamp(0, 1)
    P = torch.as_tensor(cameras.subset(views).resized(image_size, image_size).P, dtype=torch.float32)
    feats = [torch.as_tensor(np.asarray(layer)[views])[None] for layer in features]
    gt = None if joints is None else torch.as_tensor(np.asarray(joints), dtype=torch.float32)[None]
    return KeyDiff3DBatch(img[None], msk[None], P[None], feats, gt)


def batch_from_result(
    result: MultiViewResult, views: Sequence[int], image_size: int, joints: np.ndarray | None = None
) -> KeyDiff3DBatch:
    """`batch_from_arrays` for a generator's `MultiViewResult` (features included when it has them)."""
    return batch_from_arrays(result.images, result.masks, result.cameras, views, image_size, result.features, joints)


def collate(samples: Sequence[KeyDiff3DBatch]) -> KeyDiff3DBatch:
    """Concatenate batches along B. Joint sets of different sizes are padded; joints_valid marks real ones."""
    if not samples:
        raise ValueError("nothing to collate")
    joints = joints_valid = None
    if all(s.joints is not None for s in samples):
        longest = max(s.joints.shape[1] for s in samples)
        padded, valid = [], []
        for s in samples:
            J = s.joints.shape[1]
            padded.append(F.pad(s.joints, (0, 0, 0, longest - J)))
            own = s.joints_valid if s.joints_valid is not None else torch.ones(s.joints.shape[:2], dtype=torch.bool)
            valid.append(F.pad(own, (0, longest - J), value=False))
        joints, joints_valid = torch.cat(padded), torch.cat(valid)
    return KeyDiff3DBatch(
        images=torch.cat([s.images for s in samples]),
        masks=torch.cat([s.masks for s in samples]),
        projections=torch.cat([s.projections for s in samples]),
        features=[torch.cat(layers) for layers in zip(*(s.features for s in samples))],
        joints=joints,
        joints_valid=joints_valid,
    )
