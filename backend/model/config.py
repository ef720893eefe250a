"""`KeyDiff3DConfig`: every hyper-parameter of the keypoint model as plain, serialisable data.

The config travels inside checkpoints (`to_dict`/`from_dict`), so a model can always be rebuilt
exactly; unknown or ill-typed keys raise `ConfigError` with one sentence.

Sizes are chosen for CPU training in the synthetic world; the paper's values are noted where they
differ (M=72, 4 views, SV3D decoder features 1280/1280/640/320 channels at 9/18/36/72).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import ConfigError
from ..geometry.placement import CUBE_HALF

FEATURE_SOURCES = ("cnn", "external")
LIFTINGS = ("voxel", "triangulation")
SUPERVISIONS = ("none", "joints", "chamfer")
PERCEPTUAL_LOSSES = ("auto", "vgg16", "pyramid")


@dataclass
class KeyDiff3DConfig:
    # --- keypoints and views
    num_keypoints: int = 18
    num_views: int = 4  # K views per sample: view 0 is the input view, the others generated (paper: 4)
    image_size: int = 128  # views are resized to image_size^2 before the feature CNN / appearance branch
    map_size: int = 64  # resolution of structure maps, reconstructions and the losses

    # --- features: "cnn" = the project's small trainable CNN on the images; "external" = tapped
    # generator features (e.g. SV3D decoder layers) given with the batch
    feature_source: str = "cnn"
    cnn_channels: tuple[int, ...] = (32, 64, 96)  # FeatureCNN widths at /2, /4, /8 (taps come coarse -> fine)
    external_channels: tuple[int, ...] = ()  # C_l of each external layer, e.g. (1280, 1280, 640, 320)
    aggregated_channels: int = 64  # C' of the Hyperfeatures aggregator (paper-style: 384)
    feature_size: int = 0  # side of the aggregated map; 0 = the finest tapped layer's size
    lifted_channels: int = 32  # C'' of the keypoint head = channels lifted into the volume

    # --- lifting and 3D keypoints
    lifting: str = "voxel"  # "voxel" (the method) or "triangulation" (2D soft-argmax + DLT; ablation)
    voxel_size: int = 32  # M (paper: 72)
    cube_half: float = CUBE_HALF  # the voxel cube spans [-cube_half, cube_half]^3 in world units
    volume_channels: tuple[int, ...] = (16, 32, 64, 64)  # 3D CNN widths per pooling level
    volume_coords: bool = True  # append normalised voxel xyz to the lifted volume (lets K=1 learn depth priors)
    voxel_chunk: int = 0  # unproject this many voxels at a time (0 = all at once); bounds peak memory
    softargmax_beta: float = 1.0  # initial inverse temperature of the 3D (and 2D) soft-argmax
    learnable_beta: bool = True

    # --- structure maps (sizes are fractions of map_size, so they do not depend on resolution)
    heatmap_sigma: float = 0.03  # Gaussian keypoint heatmaps
    edge_sigma: float = 0.04  # soft edge maps L_ij = w_ij exp(-d^2 / 2 sigma^2)
    adjacency_multiplier: float = 512.0  # w_ij = softplus(multiplier * A_ij) (AutoLink); see structure.py
    adjacency_init: float = -4.0  # A_ij starts at (adjacency_init + noise) / multiplier: w ~ 0.018

    # --- reconstruction network
    reconstruction_channels: tuple[int, ...] = (32, 64, 128, 128)
    appearance_dim: int = 64  # global appearance code of the input view
    patch_mask_ratio: float = 0.8  # fraction of 16x16-grid patches hidden in the input appearance (0 = off)
    patch_grid: int = 16

    # --- augmentation (training only, see augment.py): random affine of the input view, applied to
    # its image, features and projection matrix alike; colour jitter of the feature branch
    augment: bool = True
    augment_rotation_deg: float = 10.0
    augment_scale: float = 0.1  # scale drawn from [1 - s, 1 + s]
    augment_translate: float = 0.05  # fraction of the image size
    augment_color: float = 0.15  # foreground colour jitter of every view's features input (0 = off)

    # --- losses
    perceptual_loss: str = "auto"  # "vgg16" needs a weights file; "pyramid" is the CPU substitute; "auto" picks
    vgg16_path: str = ""  # torchvision vgg16 state dict; empty = $KEYDIFF3D_VGG16
    lambda_perceptual: float = 1.0
    lambda_mask: float = 0.5
    supervision: str = "none"  # "joints": L1 to GT joints (N == J); "chamfer": to a joint set of any size
    lambda_joints: float = 1.0

    # --- optimisation (used by parameter_groups; the trainer owns the rest)
    lr: float = 1e-4
    lr_reconstruction: float = 1e-3
    weight_decay: float = 1e-3

    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. training provenance)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(self.num_keypoints >= 2, f"num_keypoints must be at least 2, got {self.num_keypoints}")
        need(self.num_views >= 1, f"num_views must be at least 1, got {self.num_views}")
        need(self.image_size >= 16 and self.map_size >= 16, "image_size and map_size must be at least 16 pixels")
        need(self.feature_source in FEATURE_SOURCES, f"feature_source must be one of {FEATURE_SOURCES}, got {self.feature_source!r}")
        need(
            self.feature_source != "external" or len(self.external_channels) > 0,
            "feature_source 'external' needs external_channels (one channel count per tapped layer)",
        )
        need(len(self.cnn_channels) >= 1, "cnn_channels needs at least one width")
        need(self.lifting in LIFTINGS, f"lifting must be one of {LIFTINGS}, got {self.lifting!r}")
        need(self.voxel_size >= 4, f"voxel_size must be at least 4, got {self.voxel_size}")
        need(self.cube_half > 0, "cube_half must be positive")
        need(self.supervision in SUPERVISIONS, f"supervision must be one of {SUPERVISIONS}, got {self.supervision!r}")
        need(
            self.perceptual_loss in PERCEPTUAL_LOSSES,
            f"perceptual_loss must be one of {PERCEPTUAL_LOSSES}, got {self.perceptual_loss!r}",
        )
        need(0.0 <= self.patch_mask_ratio < 1.0, "patch_mask_ratio must be in [0, 1)")
        need(0.0 <= self.augment_color < 1.0, "augment_color must be in [0, 1)")
        need(self.heatmap_sigma > 0 and self.edge_sigma > 0, "heatmap_sigma and edge_sigma must be positive")
        need(self.map_size % 8 == 0, f"map_size must be a multiple of 8 (U-Net levels), got {self.map_size}")

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of each layer the aggregator receives, coarse to fine (CNN taps or external layers)."""
        return tuple(reversed(self.cnn_channels)) if self.feature_source == "cnn" else tuple(self.external_channels)

    @property
    def needs_reconstruction(self) -> bool:
        """Whether the reconstruction network is built and run (not in purely supervised runs)."""
        return self.lambda_perceptual > 0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "KeyDiff3DConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown model config key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = getattr(cls, name, None) if name != "extra" else {}
            if isinstance(default, tuple):
                if not isinstance(value, (list, tuple)):
                    raise ConfigError(f"model config key {name!r} must be a list, got {value!r}")
                value = tuple(int(v) for v in value)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"model config key {name!r} must be true or false, got {value!r}")
            elif isinstance(default, (int, float)) and not isinstance(default, bool):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"model config key {name!r} must be a number, got {value!r}")
                if isinstance(default, int) and value != int(value):
                    raise ConfigError(f"model config key {name!r} must be a whole number, got {value!r}")
                value = type(default)(value)
            values[name] = value
        return cls(**values)

    def replace(self, **changes: Any) -> "KeyDiff3DConfig":
        return dataclasses.replace(self, **changes)
