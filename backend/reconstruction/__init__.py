"""Mesh reconstruction from orbit views: a fast CPU visual hull, or Gaussian Frosting on CUDA.

from keydiff3d.reconstruction import reconstruct
result = reconstruct(views.images, views.masks, views.cameras, method="auto")
result.mesh          # trimesh.Trimesh, world frame, vertex colours (RGBA uint8)
result.gaussians     # FrostingGaussians bound to result.mesh (frosting only), else None
"""

from .api import METHODS, ReconstructionResult, reconstruct, resolve_method
from .hull import HullConfig, visual_hull

__all__ = ["METHODS", "ReconstructionResult", "reconstruct", "resolve_method", "HullConfig", "visual_hull"]
