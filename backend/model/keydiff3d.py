"""The KeyDiff3D keypoint model: multi-view features -> 3D keypoints + adjacency, trained by reconstruction.

forward(batch):
  features  per view: FeatureCNN taps (feature_source "cnn") or the batch's external taps
            -> HyperfeatureAggregator -> KeypointHead                          (B*K, C'', h, w)
  lifting   "voxel": unproject with P (softmax over views) [+ xyz channels] -> VolumeNet
            -> SoftArgmax3D                                                     keypoints (B, N, 3)
            "triangulation": KeypointHead -> SoftArgmax2D per view -> DLT     keypoints (B, N, 3)
  structure project into all K views (original P) -> Gaussian heatmaps + soft edge maps at map_size
  recon     ReconstructionNet(masked input appearance, structure of view k) -> view k
  losses    1.0 perceptual + 0.5 mask (+ joints in supervised mode), means over views

Variants for the benchmark share all pieces: num_views=1 (input view only), lifting="triangulation",
supervision="joints"/"chamfer" (with lambda_perceptual=0 the reconstruction net is not built).
Augmentation (training mode only: affine of the input view, colour jitter of the feature branch)
is documented in augment.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from ..multiview.base import MultiViewResult
from .aggregator import HyperfeatureAggregator
from .augment import color_jitter, random_affine, warp
from .batch import KeyDiff3DBatch, batch_from_result, select_views
from .checkpoint import CheckpointHeader, load_weights, read_checkpoint
from .config import KeyDiff3DConfig
from .features import FeatureCNN
from .heads import KeypointHead
from .lifting import coordinate_channels, scale_projections, unproject
from .losses import chamfer_loss, joint_loss, make_perceptual_loss, mask_loss, resolve_perceptual_loss
from .reconstruction import ReconstructionNet, patch_mask
from .softargmax import SoftArgmax2D, SoftArgmax3D
from .structure import Adjacency, project_keypoints, structure_maps
from .triangulation import triangulate
from .volume_net import VolumeNet


@dataclass
class KeyDiff3DOutput:
    """Everything one forward pass produces (B objects, K views, N keypoints, maps of size m x m).

    keypoints:      (B, N, 3) world frame.
    heatmaps:       (B, N, M, M, M) voxel probabilities (voxel lifting) or (B, K, N, h, w) per-view
                    2D probabilities (triangulation).
    edge_weights:   (N, N) learned adjacency w = softplus(512 A), symmetric, zero diagonal.
    keypoints_2d:   (B, K, N, 2) projections in pixels of the m x m maps (centres at +0.5).
    depth:          (B, K, N) camera-space depth of the keypoints.
    keypoint_maps:  (B, K, N, m, m) Gaussian heatmaps; edge_maps: (B, K, m, m); None if not computed.
    reconstructions: (B, K, 3, m, m) predicted views, None if not computed.
    losses:         {"total", "perceptual", "mask", "joints"} scalars (present terms only).
    """

    keypoints: torch.Tensor
    heatmaps: torch.Tensor
    edge_weights: torch.Tensor
    keypoints_2d: torch.Tensor
    depth: torch.Tensor
    keypoint_maps: torch.Tensor | None = None
    edge_maps: torch.Tensor | None = None
    reconstructions: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


class KeyDiff3D(nn.Module):
    """The model. Build from a `KeyDiff3DConfig` (the config, with the perceptual loss resolved, is
    `self.config`) or load one with `KeyDiff3D.from_checkpoint` (its file's header is `self.checkpoint`)."""

    def __init__(self, config: KeyDiff3DConfig | None = None) -> None:
        super().__init__()
        config = config or KeyDiff3DConfig()
        config = config.replace(perceptual_loss=resolve_perceptual_loss(config.perceptual_loss, config.vgg16_path))
        self.config = config
        c = config
        if c.feature_source == "cnn":
            self.backbone: FeatureCNN | None = FeatureCNN(c.cnn_channels)
        else:
            self.backbone = None
        self.aggregator = HyperfeatureAggregator(c.feature_channels, c.aggregated_channels, c.feature_size or None)
        self.keypoint_head = KeypointHead(c.aggregated_channels, c.lifted_channels)
        if c.lifting == "voxel":
            in_channels = c.lifted_channels + (3 if c.volume_coords else 0)
            self.volume_net: VolumeNet | None = VolumeNet(in_channels, c.num_keypoints, c.voxel_size, c.volume_channels)
            self.softargmax: nn.Module = SoftArgmax3D(c.voxel_size, c.cube_half, c.softargmax_beta, c.learnable_beta)
            self.heatmap_head: KeypointHead | None = None
        else:
            self.volume_net = None
            self.heatmap_head = KeypointHead(c.lifted_channels, c.num_keypoints)
            self.softargmax = SoftArgmax2D(c.softargmax_beta, c.learnable_beta)
        self.adjacency = Adjacency(c.num_keypoints, c.adjacency_multiplier, c.adjacency_init)
        self.reconstructor = (
            ReconstructionNet(c.num_keypoints + 1, c.reconstruction_channels, c.appearance_dim)
            if c.needs_reconstruction
            else None
        )
        self._criterion: list[nn.Module] = []  # built on first use; a list keeps it out of state_dict
        self.checkpoint: CheckpointHeader | None = None  # set by from_checkpoint

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> KeyDiff3D:
        """The model saved in `path` (a checkpoint file or its folder; None = the shipped default), in
        eval mode on `device`, its header (config, metadata, training config) as `model.checkpoint`.

        Raises ConfigError (one sentence) when the file is missing, corrupt, not a KeyDiff3D
        checkpoint, of an unknown format version, or its weights do not fit the config in its header.
        """
        state, header = read_checkpoint(path)
        model = cls(header.model_config)
        load_weights(model, state, header.path)
        model.checkpoint = header
        return model.to(device).eval()

    # ------------------------------------------------------------------ pieces
    def perceptual(self) -> nn.Module:
        """The perceptual loss module (VGG16 or the pyramid substitute), not part of the state dict."""
        if not self._criterion:
            self._criterion.append(make_perceptual_loss(self.config.perceptual_loss, self.config.vgg16_path))
        return self._criterion[0]

    def view_features(self, images: torch.Tensor, external: list[torch.Tensor]) -> torch.Tensor:
        """images (B, K, 3, H, W), external [(B, K, C_l, h_l, w_l)] -> keypoint features (B, K, C'', h, w)."""
        B, K = images.shape[:2]
        if self.backbone is not None:
            layers = self.backbone(images.flatten(0, 1))
        else:
            if len(external) != len(self.config.external_channels):
                raise InputError(
                    f"the model expects {len(self.config.external_channels)} external feature layers, "
                    f"the batch has {len(external)}"
                )
            layers = [layer.flatten(0, 1) for layer in external]
        features = self.keypoint_head(self.aggregator(layers))
        return features.reshape(B, K, *features.shape[1:])

    def augment_input(
        self, batch: KeyDiff3DBatch
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Random affine on view 0: (images, masks, external features, projections) with P_0 <- H P_0."""
        c = self.config
        B = batch.batch_size
        size = batch.image_size
        H = random_affine(
            B, size, c.augment_rotation_deg, c.augment_scale, c.augment_translate, device=batch.images.device
        )
        images = batch.images.clone()
        images[:, 0] = warp(batch.images[:, 0], H, size, fill=1.0)
        masks = batch.masks.clone()
        masks[:, 0] = warp(batch.masks[:, 0, None], H, size)[:, 0]
        features = []
        for layer in batch.features:
            layer = layer.clone()
            layer[:, 0] = warp(layer[:, 0].float(), H, size).to(layer.dtype)
            features.append(layer)
        P = batch.projections.clone()
        P[:, 0] = H.to(P.dtype) @ batch.projections[:, 0]
        return images, masks, features, P

    def locate(
        self, features: torch.Tensor, P: torch.Tensor, image_size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-view features (B, K, C'', h, w) + P for image_size -> (keypoints (B, N, 3), heatmaps)."""
        c = self.config
        B, K = features.shape[:2]
        if self.volume_net is not None:
            volume = unproject(features, P, image_size, c.voxel_size, c.cube_half, c.voxel_chunk)
            if c.volume_coords:
                coords = coordinate_channels(c.voxel_size, c.cube_half, B, device=volume.device, dtype=volume.dtype)
                volume = torch.cat([volume, coords], dim=1)
            return self.softargmax(self.volume_net(volume))
        logits = self.heatmap_head(features.flatten(0, 1))
        logits = logits.reshape(B, K, *logits.shape[1:])
        uv, probs = self.softargmax(logits)  # pixels of the h x w feature maps
        h, w = logits.shape[-2:]
        P_maps = scale_projections(P.to(uv.dtype), image_size, (w, h))
        return triangulate(P_maps, uv), probs

    # ------------------------------------------------------------------ forward
    def forward(
        self, batch: KeyDiff3DBatch, compute_losses: bool = True, render_maps: bool | None = None
    ) -> KeyDiff3DOutput:
        """Run the model. render_maps: compute structure maps/reconstructions (default: = compute_losses)."""
        c = self.config
        render_maps = compute_losses if render_maps is None else render_maps
        if self.training and c.augment:
            images, masks, external, P_in = self.augment_input(batch)
            feature_images = color_jitter(images, masks, c.augment_color)
        else:
            images, external, P_in = batch.images, batch.features, batch.projections
            feature_images = images
        features = self.view_features(feature_images, external)
        keypoints, heatmaps = self.locate(features, P_in, batch.image_size)

        m = c.map_size
        P_maps = scale_projections(batch.projections.to(keypoints.dtype), batch.image_size, (m, m))
        uv, depth = project_keypoints(P_maps, keypoints)
        weights = self.adjacency()
        out = KeyDiff3DOutput(keypoints, heatmaps, weights, uv, depth)
        if not render_maps and not compute_losses:
            return out

        need_maps = self.reconstructor is not None or c.lambda_mask > 0
        if need_maps:
            out.keypoint_maps, out.edge_maps = structure_maps(
                uv, weights, (m, m), c.heatmap_sigma * m, c.edge_sigma * m
            )
        if self.reconstructor is not None:
            appearance = images[:, 0]
            if self.training:
                appearance = patch_mask(appearance, c.patch_mask_ratio, c.patch_grid)
            structure = torch.cat([out.keypoint_maps, out.edge_maps[:, :, None]], dim=2)
            out.reconstructions = self.reconstructor(appearance, structure)
        if compute_losses:
            out.losses = self.losses(batch, out)
        return out

    def losses(self, batch: KeyDiff3DBatch, out: KeyDiff3DOutput) -> dict[str, torch.Tensor]:
        c = self.config
        m = c.map_size
        terms: dict[str, torch.Tensor] = {}
        total = out.keypoints.new_zeros(())
        if out.reconstructions is not None:
            target = F.interpolate(
                batch.images.flatten(0, 1), size=(m, m), mode="bilinear", align_corners=False, antialias=True
            )
            terms["perceptual"] = self.perceptual().to(target.device)(out.reconstructions.flatten(0, 1), target)
            total = total + c.lambda_perceptual * terms["perceptual"]
        if c.lambda_mask > 0 and out.edge_maps is not None:
            masks = F.interpolate(
                batch.masks.flatten(0, 1)[:, None], size=(m, m), mode="bilinear", align_corners=False, antialias=True
            )
            terms["mask"] = mask_loss(out.edge_maps, masks.reshape(out.edge_maps.shape))
            total = total + c.lambda_mask * terms["mask"]
        if c.supervision != "none":
            if batch.joints is None:
                raise InputError(f"supervision {c.supervision!r} needs GT joints in the batch")
            if c.supervision == "joints":
                if batch.joints.shape[1] != c.num_keypoints:
                    raise InputError(
                        f"supervision 'joints' needs {c.num_keypoints} joints per object, "
                        f"got {batch.joints.shape[1]}; use 'chamfer'"
                    )
                terms["joints"] = joint_loss(out.keypoints, batch.joints.to(out.keypoints.dtype), batch.joints_valid)
            else:
                terms["joints"] = chamfer_loss(out.keypoints, batch.joints.to(out.keypoints.dtype), batch.joints_valid)
            total = total + c.lambda_joints * terms["joints"]
        terms["total"] = total
        return terms

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, result: MultiViewResult, views: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (N, 3) in the generator's world frame and adjacency (N, N) for one object.

        views: indices into `result` (first = the input view); default: the input view plus
        num_views-1 views evenly spaced in azimuth (`select_views`).
        """
        c = self.config
        if c.feature_source == "external" and not result.features:
            raise InputError(
                "this checkpoint needs generator features (e.g. SV3D taps), but the views came without any"
            )
        if views is None:
            views = select_views(result.cameras, result.input_view, min(c.num_views, result.num_views))
        device = next(self.parameters()).device
        batch = batch_from_result(result, views, c.image_size).to(device)
        was_training = self.training
        self.eval()
        try:
            out = self.forward(batch, compute_losses=False)
        finally:
            self.train(was_training)
        return out.keypoints[0].double().cpu().numpy(), out.edge_weights.double().cpu().numpy()

    # ------------------------------------------------------------------ optimisation
    def parameter_groups(self) -> list[dict]:
        """AdamW parameter groups: "model" (lr), "reconstruction" (lr_reconstruction), "adjacency".

        The adjacency gets the model's learning rate and no weight decay: its 512x speed-up comes
        from the parametrisation w = softplus(512 A) (see structure.py), not from the optimiser.
        """
        c = self.config
        adjacency = list(self.adjacency.parameters())
        reconstruction = list(self.reconstructor.parameters()) if self.reconstructor is not None else []
        special = {id(p) for p in adjacency + reconstruction}
        model = [p for p in self.parameters() if id(p) not in special]
        groups = [
            {"name": "model", "params": model, "lr": c.lr, "weight_decay": c.weight_decay},
            {"name": "adjacency", "params": adjacency, "lr": c.lr, "weight_decay": 0.0},
        ]
        if reconstruction:
            groups.append(
                {
                    "name": "reconstruction",
                    "params": reconstruction,
                    "lr": c.lr_reconstruction,
                    "weight_decay": c.weight_decay,
                }
            )
        return groups
