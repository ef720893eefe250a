"""The bundled sample creature (backend/assets/): a mesh, its input-view image and its ground truth.

Regenerate with `python -m keydiff3d.synthetic.sample_assets` (deterministic). Files:
  sample_creature.glb        the creature in the world frame, vertex colours (triangle soup); a proper
                             y-up glTF (`mesh_io.to_gltf_frame`): `mesh_io.load_mesh` reads it back z-up
  sample_creature.png        the input view (azimuth 0, elevation 10), 576 px RGBA, alpha = mask
  sample_creature.json       category, seed, joints (J, 3) in the world frame, joint names, parents, bones
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..geometry import SV3D_ELEVATION_DEG, orbit_cameras
from ..mesh_io import to_gltf_frame
from ..paths import ASSETS_DIR
from .creatures import generate_creature
from .renderer import RenderOptions, render_multiview

SAMPLE_CATEGORY, SAMPLE_SEED, SAMPLE_YAW_DEG = "quadruped", 3, 120.0
SAMPLE_MESH = "sample_creature.glb"
SAMPLE_IMAGE = "sample_creature.png"
SAMPLE_TRUTH = "sample_creature.json"


def write_sample_assets(directory: str | Path = ASSETS_DIR, size: int = 576) -> Path:
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    creature = generate_creature(SAMPLE_CATEGORY, SAMPLE_SEED, yaw_deg=SAMPLE_YAW_DEG, detail=0.75)
    to_gltf_frame(creature.to_trimesh()).export(directory / SAMPLE_MESH)
    view = render_multiview(
        creature, orbit_cameras(np.array([0.0]), SV3D_ELEVATION_DEG, size=size), options=RenderOptions(supersample=2)
    )
    rgba = np.concatenate([view.images[0], view.masks[0][..., None]], -1)
    Image.fromarray((np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8), "RGBA").save(
        directory / SAMPLE_IMAGE, optimize=True
    )
    truth = {
        "category": creature.category,
        "seed": creature.seed,
        "yaw_deg": SAMPLE_YAW_DEG,
        "frame": "world (z up, centred, largest bbox side 1); the GLB stores it y-up, as glTF requires",
        "joints": creature.joints.round(6).tolist(),
        "joint_names": creature.joint_names,
        "parents": creature.parents.tolist(),
        "bones": creature.bones.tolist(),
    }
    (directory / SAMPLE_TRUTH).write_text(json.dumps(truth, indent=1))
    return directory


if __name__ == "__main__":
    print(write_sample_assets())
