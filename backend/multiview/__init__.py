"""Multi-view generators: an image or a mesh -> orbit views, masks, cameras and per-layer features."""

from .base import MultiViewGenerator, MultiViewResult

__all__ = ["MultiViewGenerator", "MultiViewResult"]
