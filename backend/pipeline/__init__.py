"""The end-to-end pipeline: an image or a mesh -> views -> keypoints + adjacency -> mesh -> rig bundle.

Light on purpose: importing this package loads neither torch nor trimesh; the stage modules do.
Entry points: `run_mesh_pipeline`, `run_image_pipeline`, `run_views_pipeline` (keydiff3d.pipeline.run)
and `predict_keypoints` (keydiff3d.pipeline.mesh).
"""

from .options import PipelineOptions

__all__ = ["PipelineOptions"]
