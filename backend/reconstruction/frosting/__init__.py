"""Gaussian Frosting on gsplat (CUDA), with a dense torch reference rasteriser for CPU tests.

Importing this package does not import gsplat; only rendering on CUDA does.
"""

from .export import load_frosting, load_gaussians_ply, save_frosting, save_gaussians_ply
from .gaussians import GaussianParams
from .layer import FrostingGaussians
from .pipeline import FrostingConfig, FrostingOutput, run_frosting
from .pose import pose_gaussians, skin_vertices

__all__ = [
    "FrostingConfig",
    "FrostingGaussians",
    "FrostingOutput",
    "GaussianParams",
    "load_frosting",
    "load_gaussians_ply",
    "pose_gaussians",
    "run_frosting",
    "save_frosting",
    "save_gaussians_ply",
    "skin_vertices",
]
