"""The KeyDiff3D keypoint model (docs/MODEL.md): features -> voxel lifting -> 3D keypoints + adjacency.

Public API:
    KeyDiff3DConfig, KeyDiff3D, KeyDiff3DOutput       the model (keydiff3d.py, config.py)
    KeyDiff3DBatch, batch_from_result, batch_from_arrays, collate, select_views   inputs (batch.py)
Building blocks live in one module each (features, aggregator, heads, lifting, volume_net,
softargmax, structure, triangulation, reconstruction, vgg, losses, augment).
"""

from .batch import KeyDiff3DBatch, batch_from_arrays, batch_from_result, collate, select_views
from .config import KeyDiff3DConfig
from .keydiff3d import KeyDiff3D, KeyDiff3DOutput

__all__ = [
    "KeyDiff3D",
    "KeyDiff3DBatch",
    "KeyDiff3DConfig",
    "KeyDiff3DOutput",
    "batch_from_arrays",
    "batch_from_result",
    "collate",
    "select_views",
]
