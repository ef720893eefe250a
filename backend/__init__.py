"""KeyDiff3D backend: multi-view features -> 3D keypoints + adjacency -> mesh -> rig bundle."""

__version__ = "0.1.0"
