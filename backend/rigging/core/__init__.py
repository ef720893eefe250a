"""Rigging maths shared by the backend and the Blender add-on (numpy + stdlib only, relative imports).

The add-on imports this folder as `keydiff3d_addon.rigcore` (a link to backend/rigging/core), the
backend as `keydiff3d.rigging.core`. Nothing here may import scipy, networkx, trimesh or torch.
"""

from .bundle import FORMAT_VERSION, BundleError, RigBundle, read_bundle, read_bundle_json, validate_document, write_bundle, zip_bundle
from .ply import PlyError, parse_ply, read_ply, write_ply
from .presets import (
    CategoryPreset,
    ExportPreset,
    PresetError,
    SkeletonOptions,
    SkinningOptions,
    default_presets_dir,
    list_presets,
    load_category_preset,
    load_export_preset,
    load_preset,
)
from .skeleton import (
    Bone,
    Mirror,
    Naming,
    Skeleton,
    SkeletonError,
    bone_rest_z_axis,
    bone_roll,
    build_skeleton,
    clean_adjacency,
    find_mirror,
    maximum_spanning_tree,
    tree_center,
    tree_parents,
    volume_penalty,
)
from .skinning import METHODS, MAX_INFLUENCES, SkinningError, SkinWeights, compute_skin_weights, segment_distances, smooth_over_surface, top_k

__all__ = [
    "Bone",
    "BundleError",
    "CategoryPreset",
    "ExportPreset",
    "FORMAT_VERSION",
    "MAX_INFLUENCES",
    "METHODS",
    "Mirror",
    "Naming",
    "PlyError",
    "PresetError",
    "RigBundle",
    "Skeleton",
    "SkeletonError",
    "SkeletonOptions",
    "SkinWeights",
    "SkinningError",
    "SkinningOptions",
    "bone_rest_z_axis",
    "bone_roll",
    "build_skeleton",
    "clean_adjacency",
    "compute_skin_weights",
    "default_presets_dir",
    "find_mirror",
    "list_presets",
    "load_category_preset",
    "load_export_preset",
    "load_preset",
    "maximum_spanning_tree",
    "parse_ply",
    "read_bundle",
    "read_bundle_json",
    "read_ply",
    "segment_distances",
    "smooth_over_surface",
    "top_k",
    "tree_center",
    "tree_parents",
    "validate_document",
    "volume_penalty",
    "write_bundle",
    "write_ply",
    "zip_bundle",
]
