"""Shared fixtures for tests that run the real Blender module (bpy).

bpy loads once per process; every test starts from `read_factory_settings(use_empty=True)`.
Extensions installed by tests go to a temporary user folder (BLENDER_USER_EXTENSIONS must be set
before bpy is first imported; it is set here, at import of this module).
Import the fixtures by name into a test module: `from bpy_fixtures import bpy, clean_scene, ...`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

if "BLENDER_USER_EXTENSIONS" not in os.environ:
    os.environ["BLENDER_USER_EXTENSIONS"] = tempfile.mkdtemp(prefix="keydiff3d-bpy-ext-")
    atexit.register(shutil.rmtree, os.environ["BLENDER_USER_EXTENSIONS"], True)
import bpy  # noqa: E402  (after BLENDER_USER_EXTENSIONS is set)

from keydiff3d_addon.rigcore import RigBundle, build_skeleton, compute_skin_weights, write_bundle  # noqa: E402

# A standing "creature": a trunk of three segments (keypoints 0-1-2-3, bottom to top) with an arm
# leaving keypoint 2 sideways (2-4). z is up; heights in bundle units (about 1.6 tall).
CREATURE_KEYPOINTS = np.array(
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.0, 0.0, 1.0], [0.0, 0.0, 1.5], [0.6, 0.0, 1.0]], np.float64
)
CREATURE_ADJACENCY = np.array(
    [
        [0.0, 0.9, 0.1, 0.0, 0.0],
        [0.9, 0.0, 0.8, 0.1, 0.1],
        [0.1, 0.8, 0.0, 0.9, 0.7],
        [0.0, 0.1, 0.9, 0.0, 0.2],
        [0.0, 0.1, 0.7, 0.2, 0.0],
    ]
)


def creature_mesh(subdivisions: int = 2, radius: float = 0.12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capsules around the creature's tree edges, concatenated: vertices (V, 3) float32, faces
    (F, 3) int32, colours (V, 4) uint8 varying with height (so a lost colour attribute shows)."""
    import trimesh

    parts = []
    for a, b in [(0, 1), (1, 2), (2, 3), (2, 4)]:
        head, tail = CREATURE_KEYPOINTS[a], CREATURE_KEYPOINTS[b]
        length = float(np.linalg.norm(tail - head))
        capsule = trimesh.creation.capsule(height=length, radius=radius, count=[8 * subdivisions, 8 * subdivisions])
        capsule.apply_translation([0, 0, length / 2])  # base at the origin, along +z
        direction = (tail - head) / length
        capsule.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], direction))
        capsule.apply_translation(head)
        parts.append(capsule)
    mesh = trimesh.util.concatenate(parts)
    vertices = mesh.vertices.astype(np.float32)
    t = (vertices[:, 2] - vertices[:, 2].min()) / np.ptp(vertices[:, 2])
    colors = np.stack([255 * t, 128 + 0 * t, 255 * (1 - t), 255 + 0 * t], 1).astype(np.uint8)
    return vertices, mesh.faces.astype(np.int32), colors


def make_chain_bundle(
    directory: Path,
    *,
    root_bone: bool = False,
    leaf_bones: bool = False,
    subdivisions: int = 2,
    k: int = 4,
    skinning: dict | None = None,
) -> Path:
    """Write a creature bundle with the rigging core; returns the bundle directory.
    skinning: `compute_skin_weights` keyword arguments (default: Gaussian, sigma 0.05)."""
    vertices, faces, colors = creature_mesh(subdivisions)
    skeleton = build_skeleton(
        CREATURE_KEYPOINTS, CREATURE_ADJACENCY, root=0, root_bone=root_bone, leaf_bones=leaf_bones
    )
    skin = compute_skin_weights(vertices, skeleton, k=k, faces=faces, **(skinning or {"sigma": 0.05}))
    write_bundle(directory, RigBundle(vertices=vertices, faces=faces, colors=colors, skeleton=skeleton, skin=skin))
    return Path(directory)


def world_positions(mesh_obj) -> np.ndarray:
    """(V, 3) rest vertices of a mesh object in world space (the Armature modifier deforms a copy)."""
    co = np.empty(len(mesh_obj.data.vertices) * 3, np.float32)
    mesh_obj.data.vertices.foreach_get("co", co)
    matrix = np.array(mesh_obj.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def hierarchy(armature_obj) -> dict[str, str | None]:
    """{bone: parent bone or None}."""
    return {b.name: (b.parent.name if b.parent else None) for b in armature_obj.data.bones}


ADDON = "keydiff3d_addon"


@pytest.fixture
def addon():
    """The add-on enabled from the source tree in an empty factory scene; yields its preferences."""
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable(ADDON, default_set=True)
    yield bpy.context.preferences.addons[ADDON].preferences
    addon_utils.disable(ADDON, default_set=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def clean_scene():
    """An empty factory scene (no objects, default add-ons)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def chain_bundle(tmp_path) -> Path:
    return make_chain_bundle(tmp_path / "bundle")
