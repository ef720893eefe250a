"""The real-asset loader (Blender's glTF importer + the file's own weights) on artist-rigged creatures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bpy_fixtures import bpy  # noqa: F401  (sets up the bpy module before the loader imports it)

from keydiff3d.errors import InputError
from keydiff3d.evaluation.deformation import linear_blend_skinning
from keydiff3d.evaluation.rigged_assets import RiggedAsset, asset_files, load_rigged_asset, manifest_categories, weld
from keydiff3d.paths import RIGGED_ASSETS_DIR

pytestmark = pytest.mark.bpy
MANIFEST = {e["file"]: e for e in json.loads((RIGGED_ASSETS_DIR / "MANIFEST.json").read_text())}


@pytest.mark.parametrize("name", ["Shark.glb", "Cat.glb", "Wasp.glb"])
def test_loader_reproduces_blender_and_the_manifest(name):
    asset = load_rigged_asset(RIGGED_ASSETS_DIR / name, max_frames_per_clip=6)
    entry = MANIFEST[name]
    assert len(asset.vertices) == entry["vertices_welded"]
    assert int(asset.deforming.sum()) == entry["joints_weighted"]
    assert len(asset.bone_names) == entry["joints"]
    assert len(asset.clips) == len(entry["animations"])
    # linear blend skinning with Blender's own vertex groups reproduces Blender's evaluated mesh
    assert asset.self_test_error < 1e-4
    np.testing.assert_allclose(asset.weights.sum(1), 1.0, atol=1e-6)
    assert asset.faces.min() >= 0 and asset.faces.max() < len(asset.vertices)
    assert len(np.unique(np.sort(asset.faces, 1), axis=0)) == len(asset.faces)
    for clip in asset.clips:
        assert clip.matrices.shape == (len(clip.frames), len(asset.bone_names), 4, 4)
        np.testing.assert_allclose(
            clip.matrices[:, :, 3], np.tile([0.0, 0.0, 0.0, 1.0], (*clip.matrices.shape[:2], 1)), atol=1e-9
        )
    # the clips move the creature: the posed mesh leaves the rest pose
    moved = np.linalg.norm(asset.posed() - asset.vertices, axis=-1).mean()
    assert moved > 1e-3 * asset.diagonal
    # parents come before their children
    assert all(p < i for i, p in enumerate(asset.parents) if p >= 0)


def test_duplicate_joint_weights_are_summed_as_gltf_says():
    """Wasp lists one joint twice in 87 vertices: Blender keeps one weight, the file means their sum."""
    asset = load_rigged_asset(RIGGED_ASSETS_DIR / "Wasp.glb", max_frames_per_clip=2)
    assert any("87 vertices list a joint twice" in note for note in asset.notes)


def test_rest_pose_is_independent_of_clip_order(tmp_path):
    """Each clip starts from the rest pose: its matrices do not depend on which clips came before."""
    asset = load_rigged_asset(RIGGED_ASSETS_DIR / "Cat.glb", max_frames_per_clip=4)
    again = load_rigged_asset(RIGGED_ASSETS_DIR / "Cat.glb", max_frames_per_clip=4)
    for a, b in zip(asset.clips, again.clips):
        np.testing.assert_allclose(a.matrices, b.matrices, atol=1e-9)
    idle = asset.clips[[c.name for c in asset.clips].index("Idle")]
    # no bone is left in another clip's pose: at least one bone keeps the rest transform in Idle
    still = np.all(np.abs(idle.matrices - np.eye(4)) < 1e-6, axis=(0, 2, 3))
    moving = ~still
    assert moving.any()


def test_cache_round_trip(tmp_path):
    first = load_rigged_asset(RIGGED_ASSETS_DIR / "Shark.glb", max_frames_per_clip=3, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("Shark-*.npz"))) == 1
    second = load_rigged_asset(RIGGED_ASSETS_DIR / "Shark.glb", max_frames_per_clip=3, cache_dir=tmp_path)
    assert second.bone_names == first.bone_names and second.notes == first.notes
    for key in ("vertices", "faces", "heads", "tails", "parents", "weights"):
        np.testing.assert_array_equal(getattr(second, key), getattr(first, key))
    np.testing.assert_array_equal(second.clips[0].matrices, first.clips[0].matrices)
    assert isinstance(RiggedAsset.load(next(tmp_path.glob("*.npz"))), RiggedAsset)


def test_folder_listing_and_bad_inputs(tmp_path):
    files = asset_files(RIGGED_ASSETS_DIR)
    assert len(files) == 9 and all(f.suffix == ".glb" for f in files)
    assert manifest_categories(RIGGED_ASSETS_DIR)["Horse.glb"] == "quadruped"
    with pytest.raises(InputError, match="no folder"):
        asset_files(tmp_path / "missing")
    with pytest.raises(InputError, match="no .glb"):
        asset_files(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_rigged_asset(tmp_path / "missing.glb")
    # a glTF without a skinned mesh is refused with a sentence, not a traceback
    import trimesh

    trimesh.creation.box().export(tmp_path / "box.glb")
    with pytest.raises(InputError, match="no mesh skinned"):
        load_rigged_asset(tmp_path / "box.glb")


def test_weld_merges_coincident_points_only():
    points = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 1e-9], [0, 1, 0]], float)
    unique, index = weld(points)
    assert len(unique) == 3
    np.testing.assert_array_equal(index, [0, 1, 0, 1, 2])  # numbered by first appearance
    np.testing.assert_allclose(unique[index], points, atol=1e-8)


def test_lbs_of_the_artist_weights_matches_posed():
    asset = load_rigged_asset(RIGGED_ASSETS_DIR / "Shark.glb", max_frames_per_clip=3)
    np.testing.assert_allclose(
        asset.posed(), linear_blend_skinning(asset.vertices, asset.weights, asset.all_matrices())
    )
