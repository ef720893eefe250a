"""The views folder: orbit views of one object on disk, shared by `render`, SV3D caching and reconstruction.

Layout of DIR:
  views/000.png ... views/{V-1:03d}.png   RGBA uint8; RGB composited on white, alpha = mask
  cameras.json                            `Cameras.save_json` (K, R, t, P, size, azimuth/elevation)
  depth.npy                               optional (V, H, W) float32 camera-space depth, 0 = background
  placement.json                          optional `Placement.to_dict` (mesh own frame <-> world)
  views.json                              {"format_version", "num_views", "input_view", "width", "height"}
Per-layer features are not stored here (the SV3D feature cache has its own format).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import Cameras, Placement
from .base import MultiViewResult

VIEWS_FORMAT_VERSION = 1


def save_views(directory: str | Path, result: MultiViewResult, placement: Placement | None = None) -> Path:
    """Write `result` (and the object's placement, if known) as a views folder; returns the folder."""
    from PIL import Image

    directory = Path(directory)
    views_dir = directory / "views"
    views_dir.mkdir(parents=True, exist_ok=True)
    for old in views_dir.glob("*.png"):  # a re-render with fewer views must not leave stale frames
        old.unlink()
    rgb = _to_uint8(result.images)
    alpha = _to_uint8(result.masks)
    for i in range(result.num_views):
        Image.fromarray(np.concatenate([rgb[i], alpha[i][..., None]], axis=-1), "RGBA").save(views_dir / f"{i:03d}.png")
    result.cameras.save_json(directory / "cameras.json")
    depth_path = directory / "depth.npy"
    if result.depth is not None:
        np.save(depth_path, result.depth.astype(np.float32))
    elif depth_path.exists():
        depth_path.unlink()
    placement_path = directory / "placement.json"
    if placement is not None:
        placement_path.write_text(json.dumps(placement.to_dict(), indent=1))
    elif placement_path.exists():
        placement_path.unlink()
    info = {
        "format_version": VIEWS_FORMAT_VERSION,
        "num_views": result.num_views,
        "input_view": result.input_view,
        "width": result.cameras.width,
        "height": result.cameras.height,
    }
    (directory / "views.json").write_text(json.dumps(info, indent=1))
    return directory


def load_views(directory: str | Path) -> tuple[MultiViewResult, Placement | None]:
    """Read a views folder back: images (V, H, W, 3) float32 in [0, 1] on white, masks from alpha."""
    from PIL import Image

    directory = Path(directory)
    views_dir = directory / "views"
    cameras_path = directory / "cameras.json"
    if not views_dir.is_dir() or not cameras_path.is_file():
        raise InputError(f"{directory} is not a views folder (it needs views/*.png and cameras.json)")
    try:
        cameras = Cameras.load_json(cameras_path)
    except (KeyError, ValueError, TypeError) as error:
        raise InputError(f"{cameras_path} is not a valid cameras file: {error}") from error
    files = sorted(views_dir.glob("*.png"))
    if len(files) != len(cameras):
        raise InputError(f"{directory} has {len(files)} views but {len(cameras)} cameras")
    rgba = []
    for f in files:
        with Image.open(f) as image:
            if image.size != (cameras.width, cameras.height):
                raise InputError(
                    f"{f.name} is {image.size[0]}x{image.size[1]} "
                    f"but the cameras expect {cameras.width}x{cameras.height}"
                )
            rgba.append(np.asarray(image.convert("RGBA")))
    stack = np.stack(rgba).astype(np.float32) / 255.0
    depth = np.load(directory / "depth.npy").astype(np.float32) if (directory / "depth.npy").is_file() else None
    if depth is not None and depth.shape != stack.shape[:3]:
        raise InputError(f"depth.npy has shape {depth.shape} but the views are {stack.shape[:3]}")
    placement = (
        Placement.from_dict(json.loads((directory / "placement.json").read_text()))
        if (directory / "placement.json").is_file()
        else None
    )
    info_path = directory / "views.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    input_view = int(info.get("input_view", len(cameras) - 1))
    result = MultiViewResult(
        images=stack[..., :3], masks=stack[..., 3], cameras=cameras, input_view=input_view, depth=depth
    )
    return result, placement


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
