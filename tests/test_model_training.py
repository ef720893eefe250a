"""A tiny KeyDiff3D overfits a tiny synthetic set: the loss falls and keypoints spread over the creatures."""

import numpy as np
import pytest
import torch

from keydiff3d.model import KeyDiff3D, KeyDiff3DConfig, batch_from_result, collate, select_views
from keydiff3d.model.losses import chamfer_loss
from keydiff3d.multiview.render_generator import RenderGenerator
from keydiff3d.synthetic.creatures import generate_creature

torch.set_num_threads(1)

SIZE, MAP = 48, 32


def measure(model, data):
    """(total loss, Chamfer to GT joints, fraction of projected keypoints on the mask (within 1.5 map
    pixels of a mask pixel: thin limbs are 1-2 px wide at 32 px), mean distance in map pixels from
    mask pixels to the nearest projected keypoint)."""
    model.eval()
    with torch.no_grad():
        batch = collate(
            [batch_from_result(r, select_views(r.cameras, r.input_view, 4), SIZE, joints=c.joints) for r, c in data]
        )
        out = model(batch)
    model.train()
    B, K = batch.images.shape[:2]
    masks = (
        torch.nn.functional.interpolate(batch.masks.flatten(0, 1)[:, None], size=(MAP, MAP), mode="area")[:, 0] > 0.5
    )
    uv = out.keypoints_2d.flatten(0, 1)  # (B*K, N, 2)
    on_mask, coverage = [], []
    rows, cols = torch.nonzero(torch.ones(MAP, MAP), as_tuple=True)
    pixels = torch.stack([cols, rows], -1).float() + 0.5
    for view in range(B * K):
        distance = torch.cdist(pixels[masks[view].flatten()], uv[view])  # (mask pixels, N)
        on_mask.append((distance.amin(0) <= 1.5).float().mean())
        coverage.append(distance.amin(1).mean())
    chamfer = chamfer_loss(out.keypoints, batch.joints, batch.joints_valid)
    return (
        float(out.losses["total"]),
        float(chamfer),
        float(torch.stack(on_mask).mean()),
        float(torch.stack(coverage).mean()),
    )


@pytest.mark.slow
def test_tiny_model_overfits_tiny_synthetic_set():
    torch.manual_seed(0)
    generator = RenderGenerator(size=SIZE)
    data = []
    for seed, category in enumerate(["quadruped", "biped", "bird", "limbtree"]):
        creature = generate_creature(category, seed)
        data.append((generator.from_mesh(creature), creature))
    config = KeyDiff3DConfig(
        num_keypoints=8,
        image_size=SIZE,
        map_size=MAP,
        voxel_size=16,
        cnn_channels=(16, 32, 32),
        aggregated_channels=32,
        lifted_channels=16,
        volume_channels=(8, 16, 16),
        reconstruction_channels=(16, 32, 32, 32),
        appearance_dim=16,
        edge_sigma=0.05,
        lr=2e-3,
        lr_reconstruction=1e-3,
        augment=False,
        patch_mask_ratio=0.5,
        perceptual_loss="pyramid",
    )
    model = KeyDiff3D(config).train()
    optimizer = torch.optim.AdamW(model.parameter_groups())
    rng = np.random.default_rng(0)
    loss0, chamfer0, _, coverage0 = measure(model, data)
    for _ in range(80):
        batch = collate(
            [
                batch_from_result(r, select_views(r.cameras, r.input_view, 4, rng), SIZE, joints=c.joints)
                for r, c in data
            ]
        )
        out = model(batch)
        optimizer.zero_grad()
        out.losses["total"].backward()
        optimizer.step()
    loss1, chamfer1, on_mask1, coverage1 = measure(model, data)
    assert loss1 < 0.7 * loss0, (loss0, loss1)
    assert chamfer1 < 0.85 * chamfer0, (chamfer0, chamfer1)  # keypoints moved towards the (unseen) joints
    assert coverage1 < 0.8 * coverage0, (coverage0, coverage1)  # ... spreading over the creature
    assert on_mask1 > 0.9, on_mask1  # ... and staying on it
    assert out.edge_weights.max() > 0.5  # some edges switched on (they start at 0.018)
