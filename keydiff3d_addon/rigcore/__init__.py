"""Rigging maths shared by the backend and the Blender add-on (numpy + stdlib only, relative imports).

One package under one name: the add-on imports it as `.rigcore`, the backend as
`keydiff3d_addon.rigcore` (importing `keydiff3d_addon` does not import bpy). It is the lowest layer
both sides share, so nothing here may import bpy, scipy, networkx, trimesh, torch or `keydiff3d`.
"""

from .bundle import FORMAT_VERSION, BundleError, RigBundle, read_bundle, read_bundle_json, validate_document, write_bundle, zip_bundle
from .ply import PlyError, parse_ply, read_ply, write_ply
from .presets import (
    CategoryPreset,
    ExportPreset,
    PresetError,
    RigOptions,
    SkeletonOptions,
    SkinningOptions,
    default_presets_dir,
    list_presets,
    load_category_preset,
    load_export_preset,
    load_preset,
)
from .naming import Mirror, Naming, chain_names, find_mirror
from .skeleton import (
    Bone,
    Skeleton,
    SkeletonError,
    bone_rest_z_axis,
    bone_roll,
    build_skeleton,
    clean_adjacency,
    edge_penalty,
    length_penalty,
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
    "RigOptions",
    "Skeleton",
    "SkeletonError",
    "SkeletonOptions",
    "SkinWeights",
    "SkinningError",
    "SkinningOptions",
    "bone_rest_z_axis",
    "bone_roll",
    "build_skeleton",
    "chain_names",
    "clean_adjacency",
    "compute_skin_weights",
    "default_presets_dir",
    "edge_penalty",
    "find_mirror",
    "length_penalty",
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
