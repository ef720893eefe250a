"""Preview images: keypoints and the learned skeleton (maximum spanning tree of the adjacency) drawn
over orbit views; optionally the ground-truth skeleton beside them. Drawn during training and by
the evaluation (which sits above training and imports them from here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import Cameras, project_points


def learned_bones(keypoints: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    """(N-1, 2) edges of the maximum spanning tree of the learned adjacency (the rig builder's tree)."""
    from keydiff3d_addon.rigcore.skeleton import check_keypoints, clean_adjacency, maximum_spanning_tree

    points = check_keypoints(keypoints)
    return np.asarray(maximum_spanning_tree(clean_adjacency(adjacency, len(points)), points), np.int64).reshape(-1, 2)


@dataclass
class PreviewItem:
    """One object to draw. images (V, H, W, 3) in [0, 1]; points in the world frame."""

    images: np.ndarray
    cameras: Cameras
    keypoints: np.ndarray  # (N, 3)
    bones: np.ndarray  # (N-1, 2) learned tree
    gt_joints: np.ndarray | None = None  # (J, 3)
    gt_bones: np.ndarray | None = None  # (J-1, 2)
    title: str = ""


def draw_preview(items: list[PreviewItem], path: str | Path, max_views: int = 4) -> Path:
    """One row per item, one column per view (at most `max_views`): keypoints coloured by index,
    learned bones in white-outlined colour, ground-truth bones (if given) as thin black lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(max_views, max(len(it.images) for it in items))
    fig, axes = plt.subplots(len(items), cols, figsize=(2.2 * cols, 2.3 * len(items)), squeeze=False)
    colours = plt.get_cmap("hsv")
    for row, item in zip(axes, items):
        n = len(item.keypoints)
        for v, ax in enumerate(row):
            ax.set_axis_off()
            if v >= len(item.images):
                continue
            ax.imshow(np.clip(item.images[v], 0, 1), extent=(0, item.cameras.width, item.cameras.height, 0))
            P = item.cameras.P[v]
            if item.gt_joints is not None and item.gt_bones is not None:
                gt_uv, _ = project_points(P, np.asarray(item.gt_joints, np.float64))
                for a, b in item.gt_bones:
                    ax.plot(*gt_uv[[a, b]].T, color="black", lw=0.8, alpha=0.6)
            uv, _ = project_points(P, np.asarray(item.keypoints, np.float64))
            for a, b in item.bones:
                ax.plot(*uv[[a, b]].T, color="white", lw=2.4)
                ax.plot(*uv[[a, b]].T, color=colours(a / n), lw=1.2)
            ax.scatter(
                uv[:, 0],
                uv[:, 1],
                c=[colours(i / n) for i in range(n)],
                s=12,
                edgecolors="black",
                linewidths=0.4,
                zorder=3,
            )
            ax.set_xlim(0, item.cameras.width)
            ax.set_ylim(item.cameras.height, 0)
            if v == 0 and item.title:
                ax.set_title(item.title, fontsize=7, loc="left")
    fig.tight_layout(pad=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def draw_curves(history: dict[str, list[tuple[int, float]]], path: str | Path, title: str = "") -> Path:
    """Training curves: one line per scalar name, (step, value) pairs, log-scaled y when positive."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, points in sorted(history.items()):
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, label=name, lw=1)
    if all(v > 0 for pts in history.values() for _, v in pts) and any(history.values()):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
