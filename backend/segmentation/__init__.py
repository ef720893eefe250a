"""Foreground extraction (alpha, box + SAM, Grounded SAM) and SV3D's input preprocessing."""

from .foreground import ForegroundExtractor, ForegroundOptions, segment_foreground
from .preprocess import SV3DInput, prepare_sv3d_input

__all__ = ["ForegroundExtractor", "ForegroundOptions", "SV3DInput", "prepare_sv3d_input", "segment_foreground"]
