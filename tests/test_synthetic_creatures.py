"""Procedural creatures: determinism, fixed joint sets, placement inside the voxel cube."""

import numpy as np
import pytest

from keydiff3d.errors import InputError
from keydiff3d.geometry import CUBE_HALF, OBJECT_EXTENT
from keydiff3d.synthetic import CATEGORIES, generate_creature
from keydiff3d.synthetic.creatures import creature_sdf, watertight_mesh
from keydiff3d.synthetic.skeletons import SKELETONS


@pytest.mark.parametrize("category", CATEGORIES)
def test_same_seed_same_creature_other_seed_other_creature(category):
    a, b, c = generate_creature(category, 11), generate_creature(category, 11), generate_creature(category, 12)
    for name in ("vertices", "faces", "vertex_colors", "joints", "bones", "parents"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.allclose(a.joints, c.joints)


@pytest.mark.parametrize("category", CATEGORIES)
def test_arrays_have_the_documented_types_and_shapes(category):
    c = generate_creature(category, 3)
    J = SKELETONS[category].num_joints
    assert c.vertices.dtype == np.float32 and c.vertices.shape[1] == 3
    assert c.faces.dtype == np.int32 and c.faces.max() < len(c.vertices)
    assert c.vertex_colors.shape == c.vertices.shape and 0 <= c.vertex_colors.min() and c.vertex_colors.max() <= 1
    assert c.joints.shape == (J, 3) and c.joint_names == list(SKELETONS[category].joint_names)
    assert c.parents[0] == -1 and all(0 <= p < j for j, p in enumerate(c.parents) if j > 0)
    assert c.bones.shape == (J - 1, 2)
    np.testing.assert_array_equal(c.bones[:, 0], c.parents[c.bones[:, 1]])


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_placed_in_world_frame_with_joints_inside_bbox_and_cube(category, seed):
    c = generate_creature(category, seed)
    lo, hi = c.vertices.min(0), c.vertices.max(0)
    assert np.isclose((hi - lo).max(), OBJECT_EXTENT, atol=1e-5)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-5)
    assert (c.joints >= lo - 1e-6).all() and (c.joints <= hi + 1e-6).all()
    assert (np.abs(c.joints) < CUBE_HALF).all()
    # every joint lies inside the body (on the axis of a part): negative signed distance
    assert (creature_sdf(c, c.joints) < 0).all()


def test_joint_set_is_fixed_per_category_while_proportions_vary():
    joints = [generate_creature("biped", s).joints for s in range(4)]
    assert len({j.shape for j in joints}) == 1
    spreads = np.std(np.stack(joints), axis=0).mean()
    assert spreads > 0.01  # proportions, pose and yaw differ


def test_detail_changes_mesh_density_only():
    coarse, fine = generate_creature("quadruped", 5, detail=0.5), generate_creature("quadruped", 5)
    assert len(coarse.faces) < 0.6 * len(fine.faces)
    np.testing.assert_allclose(coarse.joints, fine.joints, atol=1e-6)


def test_rest_pose_and_yaw_are_honoured():
    a = generate_creature("quadruped", 2, rest_pose=True, yaw_deg=0.0)
    head, tail = a.joints[a.joint_names.index("snout")], a.joints[a.joint_names.index("tail_tip")]
    assert head[0] > tail[0]  # facing +x with no yaw
    left = a.joints[a.joint_names.index("front_l_paw")]
    right = a.joints[a.joint_names.index("front_r_paw")]
    np.testing.assert_allclose(left[[0, 2]], right[[0, 2]], atol=1e-5)  # symmetric at rest
    assert left[1] > right[1]


def test_unknown_category_is_a_clear_error():
    with pytest.raises(InputError, match="unknown creature category"):
        generate_creature("dragon", 0)


def test_watertight_variant_is_closed_and_contains_the_joints():
    c = generate_creature("quadruped", 4)  # round sections: the SDF is a true distance there
    resolution = 56
    mesh = watertight_mesh(c, resolution=resolution)
    assert mesh.is_watertight and mesh.volume > 0
    # joints deeper than a grid step are inside; thinner tips may fall between grid samples
    grid_step = (OBJECT_EXTENT + 0.1) / (resolution - 1)
    deep = creature_sdf(c, c.joints) < -1.5 * grid_step
    assert deep.sum() >= 10
    assert mesh.contains(c.joints[deep]).all()
    assert mesh.visual.vertex_colors.shape[0] == len(mesh.vertices)


def test_bundled_sample_assets_are_small_consistent_and_reproducible():
    import json

    from PIL import Image

    from keydiff3d.demo import sample_mesh
    from keydiff3d.geometry import fit_to_world
    from keydiff3d.mesh_io import load_mesh
    from keydiff3d.paths import ASSETS_DIR
    from keydiff3d.synthetic import sample_assets as sa
    from keydiff3d_addon.rigcore.frames import Y_UP_TO_Z_UP

    files = [ASSETS_DIR / sa.SAMPLE_MESH, ASSETS_DIR / sa.SAMPLE_IMAGE, ASSETS_DIR / sa.SAMPLE_TRUTH]
    assert sum(f.stat().st_size for f in files) < 1_000_000
    truth = json.loads(files[2].read_text())
    again = generate_creature(truth["category"], truth["seed"], yaw_deg=truth["yaw_deg"], detail=0.75)
    np.testing.assert_allclose(truth["joints"], again.joints, atol=1e-5)
    stored = load_mesh(files[0], up_axis="Z")  # the file's coordinates as stored: y up, as glTF requires
    np.testing.assert_allclose(stored.vertices, again.vertices @ Y_UP_TO_Z_UP, atol=1e-6)
    mesh = load_mesh(files[0])  # glTF's default up axis turns it back into the world frame
    np.testing.assert_allclose(mesh.vertices, again.vertices, atol=1e-6)
    placed, category = sample_mesh()  # what the demo renders: the creature as fit_to_world places it
    np.testing.assert_allclose(placed.vertices, fit_to_world(again.vertices).to_world(again.vertices), atol=1e-6)
    assert category == sa.SAMPLE_CATEGORY
    image = Image.open(files[1])
    assert image.mode == "RGBA" and image.size == (576, 576)
    alpha = np.asarray(image)[..., 3]
    assert 0.05 < (alpha > 127).mean() < 0.6
