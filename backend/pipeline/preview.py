"""preview.png: the keypoints and the skeleton drawn over a few orbit views, side by side."""

from __future__ import annotations

import io

import numpy as np

from keydiff3d_addon.rigcore import Skeleton

from ..geometry import project_points
from ..multiview.base import MultiViewResult

TILE = 256
BONE_RGB = (30, 110, 255)
KEYPOINT_RGB = (255, 60, 40)
ROOT_RGB = (255, 200, 0)


def preview_views(views: MultiViewResult, count: int = 4) -> list[int]:
    """`count` views evenly spaced around the orbit, starting at the input view."""
    V = views.num_views
    step = V / count
    return [int(views.input_view + round(i * step)) % V for i in range(count)]


def draw_preview(views: MultiViewResult, skeleton: Skeleton, count: int = 4) -> bytes:
    """PNG bytes: `count` views (TILE px each) with bones as lines and keypoints as dots (root in yellow)."""
    from PIL import Image, ImageDraw

    chosen = preview_views(views, count)
    cams = views.cameras.subset(chosen).resized(TILE, TILE)
    sheet = Image.new("RGB", (TILE * len(chosen), TILE), "white")
    for slot, view in enumerate(chosen):
        tile = Image.fromarray((np.clip(views.images[view], 0, 1) * 255).astype(np.uint8)).resize(
            (TILE, TILE), Image.LANCZOS
        )
        draw = ImageDraw.Draw(tile)
        P = cams.P[slot]
        for bone in skeleton.bones:
            (head, tail), _ = project_points(P, np.stack([bone.head, bone.tail]))
            width = 3 if bone.deform else 1
            draw.line([tuple(head), tuple(tail)], fill=BONE_RGB, width=width)
        uv, _ = project_points(P, skeleton.keypoints)
        for index, (u, v) in enumerate(uv):
            r = 5 if index == skeleton.root else 3.5
            draw.ellipse(
                [u - r, v - r, u + r, v + r], fill=ROOT_RGB if index == skeleton.root else KEYPOINT_RGB, outline="black"
            )
        sheet.paste(tile, (slot * TILE, 0))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def view_files(views: MultiViewResult) -> dict[str, bytes]:
    """The bundle's optional view files: views/NNN.png (RGBA, mask as alpha) and cameras.json."""
    import json

    from PIL import Image

    files = {}
    for i in range(views.num_views):
        rgba = np.concatenate([views.images[i], views.masks[i][..., None]], axis=-1)
        buffer = io.BytesIO()
        Image.fromarray((np.clip(rgba, 0, 1) * 255).astype(np.uint8), "RGBA").save(buffer, format="PNG")
        files[f"views/{i:03d}.png"] = buffer.getvalue()
    files["cameras.json"] = json.dumps(views.cameras.to_dict(), indent=1).encode()
    return files


def views_section(views: MultiViewResult) -> dict:
    """rig.json's "views" entry for the files of `view_files`."""
    return {
        "cameras": "cameras.json",
        "images": [f"views/{i:03d}.png" for i in range(views.num_views)],
        "preview": "preview.png",
        "input_view": int(views.input_view),
    }
