"""`KeyDiff3DConfig`: every hyper-parameter of the keypoint model as plain, serialisable data.

The config travels inside checkpoints (`to_dict`/`from_dict`), so a model can always be rebuilt
exactly. Types, choices and ranges are declared on the fields and checked by the one config loader
(`keydiff3d_addon.rigcore.config`), on loading and on direct construction alike; unknown or
ill-typed keys raise `ConfigError` with one sentence naming the source and the key.

Sizes are chosen for CPU training in the synthetic world; the paper's values are noted where they
differ (M=72, 4 views, SV3D decoder features 1280/1280/640/320 channels at 9/18/36/72).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from keydiff3d_addon.rigcore.config import at_least, in_interval, load, multiple_of, non_empty, positive, validate

from ..errors import ConfigError
from ..geometry.placement import CUBE_HALF

FEATURE_SOURCES = ("cnn", "external")
LIFTINGS = ("voxel", "triangulation")
SUPERVISIONS = ("none", "joints", "chamfer")
PERCEPTUAL_LOSSES = ("auto", "vgg16", "pyramid")
SOURCE = "model config"  # how messages name a config built in code


@dataclass(frozen=True)
class KeyDiff3DConfig:
    # --- keypoints and views
    num_keypoints: Annotated[int, at_least(2)] = 18
    num_views: Annotated[int, at_least(1)] = (
        4  # K views per sample: view 0 is the input view, the others generated (paper: 4)
    )
    image_size: Annotated[int, at_least(16)] = (
        128  # views are resized to image_size^2 before the feature CNN / appearance branch
    )
    map_size: Annotated[int, at_least(16), multiple_of(8)] = (
        64  # structure maps, reconstructions, losses (U-Net levels: /8)
    )

    # --- features: "cnn" = the project's small trainable CNN on the images; "external" = tapped
    # generator features (e.g. SV3D decoder layers) given with the batch
    feature_source: Literal[FEATURE_SOURCES] = "cnn"
    cnn_channels: Annotated[tuple[int, ...], non_empty] = (
        32,
        64,
        96,
    )  # FeatureCNN widths at /2, /4, /8 (taps coarse -> fine)
    external_channels: tuple[int, ...] = ()  # C_l of each external layer, e.g. (1280, 1280, 640, 320)
    aggregated_channels: int = 64  # C' of the Hyperfeatures aggregator (paper-style: 384)
    feature_size: int = 0  # side of the aggregated map; 0 = the finest tapped layer's size
    lifted_channels: int = 32  # C'' of the keypoint head = channels lifted into the volume

    # --- lifting and 3D keypoints
    lifting: Literal[LIFTINGS] = "voxel"  # "voxel" (the method) or "triangulation" (2D soft-argmax + DLT; ablation)
    voxel_size: Annotated[int, at_least(4)] = 32  # M (paper: 72)
    cube_half: Annotated[float, positive] = CUBE_HALF  # the voxel cube spans [-cube_half, cube_half]^3 in world units
    volume_channels: tuple[int, ...] = (16, 32, 64, 64)  # 3D CNN widths per pooling level
    volume_coords: bool = True  # append normalised voxel xyz to the lifted volume (lets K=1 learn depth priors)
    voxel_chunk: int = 0  # unproject this many voxels at a time (0 = all at once); bounds peak memory
    softargmax_beta: float = 1.0  # initial inverse temperature of the 3D (and 2D) soft-argmax
    learnable_beta: bool = True

    # --- structure maps (sizes are fractions of map_size, so they do not depend on resolution)
    heatmap_sigma: Annotated[float, positive] = 0.03  # Gaussian keypoint heatmaps
    edge_sigma: Annotated[float, positive] = 0.04  # soft edge maps L_ij = w_ij exp(-d^2 / 2 sigma^2)
    adjacency_multiplier: float = 512.0  # w_ij = softplus(multiplier * A_ij) (AutoLink); see structure.py
    adjacency_init: float = -4.0  # A_ij starts at (adjacency_init + noise) / multiplier: w ~ 0.018

    # --- reconstruction network
    reconstruction_channels: tuple[int, ...] = (32, 64, 128, 128)
    appearance_dim: int = 64  # global appearance code of the input view
    patch_mask_ratio: Annotated[float, in_interval(0, 1, high_open=True)] = (
        0.8  # share of 16x16-grid patches hidden (0 = off)
    )
    patch_grid: int = 16

    # --- augmentation (training only, see augment.py): random affine of the input view, applied to
    # its image, features and projection matrix alike; colour jitter of the feature branch
    augment: bool = True
    augment_rotation_deg: float = 10.0
    augment_scale: float = 0.1  # scale drawn from [1 - s, 1 + s]
    augment_translate: float = 0.05  # fraction of the image size
    augment_color: Annotated[float, in_interval(0, 1, high_open=True)] = (
        0.15  # colour jitter of the features input (0 = off)
    )

    # --- losses
    perceptual_loss: Literal[PERCEPTUAL_LOSSES] = "auto"  # "vgg16" needs a weights file; "pyramid" = CPU substitute
    vgg16_path: str = ""  # torchvision vgg16 state dict; empty = $KEYDIFF3D_VGG16
    lambda_perceptual: float = 1.0
    lambda_mask: float = 0.5
    supervision: Literal[SUPERVISIONS] = (
        "none"  # "joints": L1 to GT joints (N == J); "chamfer": to a joint set of any size
    )
    lambda_joints: float = 1.0

    # --- optimisation (used by parameter_groups; the trainer owns the rest)
    lr: float = 1e-4
    lr_reconstruction: float = 1e-3
    weight_decay: float = 1e-3

    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. training provenance)

    def __post_init__(self) -> None:
        validate(self, source=SOURCE, error=ConfigError)
        if self.feature_source == "external" and not self.external_channels:
            raise ConfigError("feature_source 'external' needs external_channels (one channel count per tapped layer)")

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
    def from_dict(cls, data: dict[str, Any], source: str = SOURCE, path: str = "") -> KeyDiff3DConfig:
        """The config of a table of (some of) its fields; `source`/`path` name it in messages
        ("t.toml", "model": `t.toml: model.voxel_size must be int, got 'big'`)."""
        return load(cls, data, source=source, error=ConfigError, path=path)

    def replace(self, **changes: Any) -> KeyDiff3DConfig:
        return dataclasses.replace(self, **changes)
