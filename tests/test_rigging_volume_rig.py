"""Skeletons on the mesh's own volume (keydiff3d.rigging.volume_rig) and the rig stage's [rig] methods."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from rig_support import toy_quadruped

from keydiff3d.errors import InputError
from keydiff3d.evaluation.rig_quality import bone_scores, mesh_inside, rig_bones
from keydiff3d.mesh_io import Y_UP_TO_Z_UP
from keydiff3d.pipeline.rig import MeshArrays, load_preset, rig_mesh
from keydiff3d.rigging.curve_skeleton import COARSEST_MAX_BONE
from keydiff3d.rigging.volume_rig import volume_skeleton
from keydiff3d_addon.rigcore import Naming, RigOptions, validate_document


@pytest.fixture(scope="module")
def toy():
    return toy_quadruped()


def test_curve_rig_is_inside_symmetric_and_named(toy):
    v, f = toy
    rig = volume_skeleton(v, f, RigOptions(method="curve"), naming=Naming(limb_other="leg"))
    names = rig.skeleton.bone_names()
    assert rig.symmetry == "mirrored" and rig.plane.asymmetry < 0.002
    legs = [n for n in names if n.startswith("leg")]
    assert len(legs) >= 8 and {n[-2:] for n in legs} == {".L", ".R"}
    assert sorted(n[:-2] for n in legs if n.endswith(".L")) == sorted(n[:-2] for n in legs if n.endswith(".R"))
    assert any(n.startswith("tail") for n in names) and any(n.startswith(("neck", "head")) for n in names)
    scores = bone_scores(rig_bones(rig.skeleton), mesh_inside(v, f), float(np.ptp(v, axis=0).max()))
    assert scores["inside_fraction"] > 0.97 and scores["long_bones"] == 0
    # the creature faces +x (its head): its own left is +y, whatever Blender's axes say
    left = [b for b in rig.skeleton.bones if b.name.endswith(".L")]
    assert all(b.tail[1] > 0 for b in left)


def test_a_y_up_mesh_gets_the_same_rig(toy):
    v, f = toy
    z_up = volume_skeleton(v, f, RigOptions(method="curve"))
    y_up = volume_skeleton(v @ np.linalg.inv(Y_UP_TO_Z_UP).T, f, RigOptions(method="curve"), up_axis="Y")
    assert y_up.skeleton.bone_names() == z_up.skeleton.bone_names()
    np.testing.assert_allclose(y_up.skeleton.keypoints @ Y_UP_TO_Z_UP.T, z_up.skeleton.keypoints, atol=1e-6)


def test_fused_rig_puts_joints_at_the_keypoints(toy):
    v, f = toy
    knees = np.array([[x, y, 0.26] for x in (-0.3, 0.3) for y in (-0.1, 0.1)])
    plain = volume_skeleton(v, f, RigOptions(method="curve", max_bone=0.0, limb_root=0.0))
    fused = volume_skeleton(v, f, RigOptions(method="fused", max_bone=0.0, limb_root=0.0), keypoints=knees)

    def near(s):
        return np.linalg.norm(s.skeleton.keypoints[None] - knees[:, None], axis=-1).min(1)

    assert near(fused).max() < 0.03 and near(fused).max() < near(plain).max()


def test_bad_requests_raise_one_sentence(toy):
    v, f = toy
    with pytest.raises(InputError, match="needs the learned keypoints"):
        volume_skeleton(v, f, RigOptions(method="fused"))
    with pytest.raises(InputError, match="'curve' or 'fused'"):
        volume_skeleton(v, f, RigOptions(method="chain"))


def test_the_rig_stage_builds_the_presets_method(toy):
    v, f = toy
    preset = load_preset("quadruped")
    keypoints = np.array([[0.0, 0.0, 0.5], [0.5, 0.0, 0.7], [-0.5, 0.0, 0.55], [0.3, 0.1, 0.1]])
    adjacency = np.ones((4, 4)) - np.eye(4)
    for method in ("chain", "curve", "fused"):
        bundle = rig_mesh(
            MeshArrays(v.astype(np.float32), f.astype(np.int32)),
            keypoints,
            adjacency,
            replace(preset, rig=replace(preset.rig, method=method)),
        )
        validate_document(bundle.to_json())
        deform = [b.name for b in bundle.skeleton.bones if b.deform]
        assert bundle.skin.bone_names == deform and set(bundle.timings) >= {"skeleton", "skinning"}
        if method == "chain":
            assert len(bundle.skeleton.keypoints) == 4
        else:
            assert len(bundle.skeleton.keypoints) > 10 and any(n.endswith(".L") for n in deform)


def test_a_posed_creature_gets_left_and_right_names_and_keeps_its_pose():
    from keydiff3d.synthetic import generate_creature

    creature = generate_creature("biped", 2)  # posed: arms and legs at different angles
    rig = volume_skeleton(
        creature.vertices, creature.faces, RigOptions(method="curve"), naming=Naming(limb_other="arm")
    )
    assert rig.symmetry == "paired"
    names = rig.skeleton.bone_names()
    for stem in ("arm", "leg"):
        left = sorted(n[:-2] for n in names if n.startswith(stem) and n.endswith(".L"))
        assert left and left == sorted(n[:-2] for n in names if n.startswith(stem) and n.endswith(".R"))
    # the pose stays: the two hands are not mirror images of each other
    tips = {b.name: b.tail for b in rig.skeleton.bones}
    last = max(n for n in names if n.startswith("arm") and n.endswith(".L"))
    assert np.linalg.norm(rig.plane.reflect(tips[last]) - tips[last[:-2] + ".R"]) > 0.02


def test_a_thin_slab_is_rigged_within_the_bundle_limits(tmp_path):
    """A 1 x 1 x 0.0001 slab thins to hundreds of medial branches (537 joints with the quadruped
    preset's settings): the skeleton is rebuilt coarser until it fits, and the bundle saves."""
    import trimesh

    from keydiff3d.rigging.io import load_bundle, save_bundle
    from keydiff3d_addon.rigcore.bundle import MAX_BONES, MAX_KEYPOINTS

    slab = trimesh.creation.box((1.0, 1.0, 0.0001))
    preset = load_preset("quadruped")
    keypoints = np.zeros((preset.keypoints, 3))
    bundle = rig_mesh(
        MeshArrays(slab.vertices.astype(np.float32), slab.faces.astype(np.int32)), keypoints, np.ones((20, 20)), preset
    )
    assert len(bundle.skeleton.keypoints) <= MAX_KEYPOINTS and len(bundle.skeleton.bones) <= MAX_BONES
    assert any("rebuilt" in r and "coarser" in r for r in bundle.skeleton.repairs)
    assert f"max_bone {COARSEST_MAX_BONE:g})" in bundle.skeleton.repairs[-1]  # 0.2 doubled twice, capped at 0.5
    save_bundle(tmp_path / "slab", bundle, glb=False)
    assert len(load_bundle(tmp_path / "slab").skeleton.bones) == len(bundle.skeleton.bones)


def test_each_coarser_rebuild_reports_progress_and_can_be_cancelled():
    """The slab needs coarser rebuilds; each one's thinning and pruning report (rising) progress, and a
    cancel asked for once a rebuild began stops it inside that rebuild."""
    import threading

    import trimesh

    from keydiff3d.errors import Cancelled
    from keydiff3d.progress import Progress

    slab = trimesh.creation.box((1.0, 1.0, 0.0001))
    rig, keypoints = load_preset("quadruped").rig, np.zeros((20, 3))
    reports = []
    volume_skeleton(
        slab.vertices, slab.faces, rig, keypoints=keypoints, progress=Progress(lambda *r: reports.append(r))
    )
    messages = [message for _, _, message in reports]
    rebuilds = sum(message.endswith("joints: coarser") for message in messages)
    assert rebuilds >= 1 and messages.count("pruning spurs") == 1 + rebuilds
    fractions = [fraction for _, fraction, _ in reports]
    assert fractions == sorted(fractions)

    cancel = threading.Event()
    seen = []

    def on_report(stage, fraction, message):
        seen.append(message)
        if message.endswith("joints: coarser"):
            cancel.set()  # the next cancellation point is inside the rebuild's medial_tree

    with pytest.raises(Cancelled):
        volume_skeleton(slab.vertices, slab.faces, rig, keypoints=keypoints, progress=Progress(on_report, cancel))
    assert seen[-1].endswith("joints: coarser")


def test_coarser_settings_double_but_keep_bones_at_most_half_the_size():
    from keydiff3d.rigging.curve_skeleton import CurveSkeletonOptions

    options = CurveSkeletonOptions(max_bone=0.2, bend_tolerance=0.01, min_branch=0.0)
    coarser = [options := options.coarser() for _ in range(4)]
    assert [o.max_bone for o in coarser] == [0.4, 0.5, 0.5, 0.5]
    assert [o.bend_tolerance for o in coarser] == [0.02, 0.04, 0.08, 0.16]
    assert coarser[0].min_branch == 0.04
    assert CurveSkeletonOptions(max_bone=0.0).coarser().max_bone == 0.0  # off stays off
    assert CurveSkeletonOptions(max_bone=0.7).coarser().max_bone == 0.7  # the caller's longer limit stays


def test_a_skeleton_that_never_fits_is_refused_before_skinning(monkeypatch):
    import trimesh

    from keydiff3d.rigging import volume_rig

    monkeypatch.setattr(volume_rig, "COARSER_TRIES", 0)  # no rebuilds: the slab's 537 joints stay
    slab = trimesh.creation.box((1.0, 1.0, 0.0001))
    preset = load_preset("quadruped")
    with pytest.raises(InputError, match="over the bundle's limit of 256"):
        volume_skeleton(slab.vertices, slab.faces, preset.rig, keypoints=np.zeros((20, 3)))


def test_an_over_limit_bundle_is_refused_by_save_bundle_as_input_error(toy, tmp_path):
    from dataclasses import replace as dc_replace

    from keydiff3d.rigging.io import save_bundle

    v, f = toy
    bundle = rig_mesh(
        MeshArrays(v.astype(np.float32), f.astype(np.int32)),
        np.zeros((2, 3)),
        np.ones((2, 2)),
        replace(load_preset("quadruped"), rig=RigOptions(method="curve", resolution=48)),
    )
    many = dc_replace(bundle.skeleton, keypoints=np.zeros((300, 3)))
    with pytest.raises(InputError, match="cannot be saved as a bundle"):
        save_bundle(tmp_path / "big", dc_replace(bundle, skeleton=many), glb=False)
    assert not (tmp_path / "big" / "rig.json").exists()


def test_every_preset_curve_setting_reaches_the_curve_skeleton_with_its_default():
    from dataclasses import fields

    from keydiff3d.rigging.curve_skeleton import CurveSkeletonOptions
    from keydiff3d.rigging.volume_rig import RIG_ONLY_FIELDS, curve_options

    curve = {f.name: f.default for f in fields(CurveSkeletonOptions)}
    for field in fields(RigOptions):
        if field.name not in RIG_ONLY_FIELDS:
            assert field.name in curve and curve[field.name] == field.default, field.name
    changed = RigOptions(resolution=40, spur_factor=2.5, min_branch=0.1, max_bone=0.3, anchor_spacing=0.07)
    options = curve_options(changed)
    for field in fields(RigOptions):
        if field.name not in RIG_ONLY_FIELDS:
            assert getattr(options, field.name) == getattr(changed, field.name), field.name
