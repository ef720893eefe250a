"""The add-on as a Blender tool, in the real bpy module: undo steps, defaults with one source, panels,
reasons on greyed-out buttons, all-or-nothing results, backend URLs, Recompute Weights' defaults and
choices (rigcore's methods from data, Blender's automatic weights), metres whatever the unit scale."""

from __future__ import annotations

import inspect
import threading
import time

import numpy as np
import pytest
from bpy_fixtures import addon, bpy, creature_mesh, make_chain_bundle  # noqa: F401  (fixtures)
from service_support import json_backend

from keydiff3d_addon.rigcore import compute_skin_weights, read_bundle
from keydiff3d_addon.rigcore.presets import PresetError, default_preset_name, list_presets
from keydiff3d_addon.rigcore.skinning import METHODS

pytestmark = pytest.mark.bpy

SCENE_CHANGING = {"import_bundle", "recompute_weights", "rig_image_remote", "rig_selected_mesh"}  # export: none


def operator_classes() -> list[type]:
    from keydiff3d_addon import backend_operators, operators

    return [cls for module in (operators, backend_operators) for cls in module.CLASSES]


def dense_weights(mesh_obj, names: list[str]) -> np.ndarray:
    column = {g.index: names.index(g.name) for g in mesh_obj.vertex_groups if g.name in names}
    out = np.zeros((len(mesh_obj.data.vertices), len(names)))
    for vertex in mesh_obj.data.vertices:
        for element in vertex.groups:
            if element.group in column:
                out[vertex.index, column[element.group]] = element.weight
    return out


def vertex_positions(mesh_obj) -> np.ndarray:
    co = np.empty(len(mesh_obj.data.vertices) * 3, np.float32)
    mesh_obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3).astype(np.float64)


# ------------------------------------------------------------------------------------------- undo


def test_every_scene_changing_operator_is_one_undo_step(addon):
    names = {cls.bl_idname.split(".")[1]: cls for cls in operator_classes()}
    assert SCENE_CHANGING | {"export_rig"} <= set(names)
    for name, cls in names.items():
        assert ("UNDO" in cls.bl_options) == (name in SCENE_CHANGING), name  # the others change no scene data
        assert "REGISTER" in cls.bl_options, name


def test_import_and_recompute_undo_in_one_step(addon, tmp_path):
    """Blender pushes an undo step after an operator with "UNDO"; the bpy module does so only when asked,
    so each operator here is followed by the push Blender would make."""
    bundle = make_chain_bundle(tmp_path / "bundle")
    bpy.ops.ed.undo_push(message="before import")
    assert bpy.ops.keydiff3d.import_bundle(filepath=str(bundle / "rig.json")) == {"FINISHED"}
    bpy.ops.ed.undo_push(message="Import Rig Bundle")
    assert len(bpy.data.objects) == 2
    bpy.ops.ed.undo()
    assert len(bpy.data.objects) == 0 and len(bpy.data.meshes) == 0 and len(bpy.data.armatures) == 0
    bpy.ops.ed.redo()
    mesh_name = next(o.name for o in bpy.data.objects if o.type == "MESH")  # undo replaces the objects
    names = read_bundle(bundle).skin.bone_names
    imported = dense_weights(bpy.data.objects[mesh_name], names)
    bpy.context.view_layer.objects.active = bpy.data.objects[mesh_name]
    assert bpy.ops.keydiff3d.recompute_weights(method="gaussian", params='{"sigma": 0.3}') == {"FINISHED"}
    bpy.ops.ed.undo_push(message="Recompute Weights")
    assert not np.allclose(dense_weights(bpy.data.objects[mesh_name], names), imported, atol=1e-3)
    bpy.ops.ed.undo()
    assert np.allclose(dense_weights(bpy.data.objects[mesh_name], names), imported, atol=1e-7)


# --------------------------------------------------------------------------------------- defaults


def test_defaults_come_from_the_preset_files(addon):
    settings = bpy.context.scene.keydiff3d
    assert default_preset_name("category") == "quadruped" and default_preset_name("export") == "unity"
    assert settings.preset == "quadruped"  # the rig buttons send what the presets mark as default
    assert (settings.export_target, settings.export_format) == ("unity", "FBX")
    settings.export_target = "godot"
    assert settings.export_format == "GLB"  # the godot preset prefers glTF
    settings.export_target = "unreal"
    assert settings.export_format == "FBX"
    assert settings.skin_method == "BUNDLE" and settings.target_height == 1.0


def test_cli_export_defaults_match_the_add_on():
    import argparse

    from keydiff3d.export import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    target = next(a for a in parser._actions if a.dest == "target")
    assert target.default == default_preset_name("export") and sorted(target.choices) == list_presets(kind="export")


def test_one_default_per_kind_is_required(tmp_path):
    from keydiff3d_addon.rigcore.presets import default_presets_dir

    for name in ("unity", "unreal"):
        (tmp_path / f"{name}.toml").write_text(
            (default_presets_dir() / f"{name}.toml").read_text().replace("default = true", "")
        )
    with pytest.raises(PresetError, match="exactly one export preset .* must have `default = true`.*not none"):
        default_preset_name("export", tmp_path)
    for name in ("unity", "unreal"):
        text = (tmp_path / f"{name}.toml").read_text().replace('kind = "export"', 'kind = "export"\ndefault = true')
        (tmp_path / f"{name}.toml").write_text(text)
    with pytest.raises(PresetError, match="not unity, unreal"):
        default_preset_name("export", tmp_path)


# ----------------------------------------------------------------------------- panels and polls


def test_five_separate_sidebar_panels(addon):
    from keydiff3d_addon import panels

    labels = [(cls.bl_label, cls.bl_order) for cls in panels.CLASSES]
    assert labels == [("Rig", 0), ("Import", 1), ("Weights", 2), ("Export", 3), ("Backend", 4)]
    for cls in panels.CLASSES:
        assert not getattr(cls, "bl_parent_id", ""), cls.bl_idname  # collapsing one hides no other
        assert (cls.bl_space_type, cls.bl_region_type, cls.bl_category) == ("VIEW_3D", "UI", "KeyDiff3D")


@pytest.mark.parametrize(
    "operator, reason",
    [
        ("rig_selected_mesh", "Select the mesh to rig first"),
        ("recompute_weights", "Select a rig first: select the rig's armature or its mesh first"),
        ("export_rig", "Select a rig first"),
        ("cancel_remote_job", "No KeyDiff3D job is running"),
        ("cancel_model_download", "No model download is running"),
    ],
)
def test_a_greyed_out_button_says_why(addon, operator, reason):
    with pytest.raises(RuntimeError, match=f"poll\\(\\) {reason}"):
        getattr(bpy.ops.keydiff3d, operator)()


def test_buttons_that_need_a_rig_or_a_plain_mesh_say_what_is_wrong(addon, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    with pytest.raises(RuntimeError, match="poll\\(\\) Select a rig first: the mesh 'Cube' has no Armature modifier"):
        bpy.ops.keydiff3d.recompute_weights()
    bpy.context.active_object.modifiers.new("Armature", "ARMATURE")
    with pytest.raises(RuntimeError, match="poll\\(\\) The mesh 'Cube' already has an Armature modifier"):
        bpy.ops.keydiff3d.rig_selected_mesh()


def test_buttons_wait_for_running_work_and_say_so(addon, tmp_path):
    from keydiff3d_addon import remote
    from keydiff3d_addon.client import BackendClient, BackendLauncher, JobStatus, ModelsWatch, RemoteJob

    client = BackendClient("127.0.0.1:9")
    job = RemoteJob(client, "image", tmp_path / "a.png", {}, tmp_path, lambda path, status: None)
    job.status = JobStatus("a" * 32, "running", stage="views", progress=0.25)
    launcher = BackendLauncher("keydiff3d serve", "127.0.0.1:9", tmp_path / "b.log")
    watch = ModelsWatch(client, "sv3d_p")
    watch.download = {"status": "downloading", "progress": 0.5}
    remote._active, remote._launcher, remote._models_watch = job, launcher, watch  # work started earlier, still running
    try:
        with pytest.raises(RuntimeError, match="poll\\(\\) A KeyDiff3D job is running \\(views - 25%"):
            bpy.ops.keydiff3d.rig_image_remote()
        with pytest.raises(RuntimeError, match="poll\\(\\) The backend is starting"):
            bpy.ops.keydiff3d.start_backend()
        with pytest.raises(RuntimeError, match="poll\\(\\) sv3d_p is downloading \\(50%\\)"):
            bpy.ops.keydiff3d.download_model(name="svd_xt")
    finally:
        remote._active = remote._launcher = remote._models_watch = None


# ------------------------------------------------------------------------------- all or nothing


def scene_state(mesh_obj) -> dict:
    return {
        "objects": sorted(bpy.data.objects.keys()),
        "armatures": sorted(bpy.data.armatures.keys()),
        "groups": sorted(g.name for g in mesh_obj.vertex_groups),
        "modifiers": [m.type for m in mesh_obj.modifiers],
        "parent": mesh_obj.parent,
        "world": [list(row) for row in mesh_obj.matrix_world],
    }


def mesh_object(name: str = "Creature") -> bpy.types.Object:
    vertices, faces, _ = creature_mesh()
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices.tolist(), [], faces.tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    return obj


def test_a_rig_that_fails_to_build_onto_a_mesh_leaves_it_untouched(addon, tmp_path):
    from keydiff3d_addon import remote
    from keydiff3d_addon.client import ResultRejected

    target = mesh_object()
    target.vertex_groups.new(name="painted")
    before = scene_state(target)
    bundle = read_bundle(make_chain_bundle(tmp_path / "bundle"))
    bundle.skeleton.bones[-1].tail = bundle.skeleton.bones[
        -1
    ].head.copy()  # dropped by Blender: fails after the armature exists
    with pytest.raises(ResultRejected, match="zero-length.*left unchanged|left unchanged.*zero-length"):
        remote.attach_rig(bpy.context, target, bundle)
    assert scene_state(target) == before

    good = read_bundle(make_chain_bundle(tmp_path / "good"))
    armature = remote.attach_rig(bpy.context, target, good)  # the same call with a sound bundle rigs it
    assert target.parent == armature and {b.name for b in good.skeleton.bones} <= set(target.vertex_groups.keys())


def test_the_job_result_goes_to_the_renamed_mesh_and_never_to_a_deleted_one(addon, tmp_path):
    from keydiff3d_addon import remote
    from keydiff3d_addon.client import JobStatus, ResultRejected
    from keydiff3d_addon.rigcore import zip_bundle

    result_zip = zip_bundle(make_chain_bundle(tmp_path / "bundle"), tmp_path / "result.zip")
    done = JobStatus("f" * 32, "done", progress=1.0)
    target = mesh_object("Creature")
    uid = target.session_uid
    target.name = "Renamed while rigging"  # the job holds the object by session_uid, not by name
    attaching = remote._import_mesh_result(uid, "Creature", "http://127.0.0.1:8765", result_zip, done)
    assert not bpy.data.armatures  # the weights are solved on a worker thread first
    while not attaching.step():
        time.sleep(0.01)
    (armature,) = attaching.value
    assert bpy.data.objects["Renamed while rigging"].parent == armature

    other = mesh_object("Doomed")
    uid, before = other.session_uid, sorted(bpy.data.objects.keys())
    bpy.data.objects.remove(other)
    with pytest.raises(ResultRejected, match="'Doomed' was deleted while the backend rigged it; nothing was added"):
        remote._import_mesh_result(uid, "Doomed", "http://127.0.0.1:8765", result_zip, done)
    assert sorted(bpy.data.objects.keys()) == [n for n in before if n != "Doomed"]


def test_the_weights_of_a_job_result_are_solved_off_the_main_thread_and_cancel_adds_nothing(addon, tmp_path):
    from keydiff3d_addon import remote
    from keydiff3d_addon.client import JobStatus, ResultRejected
    from keydiff3d_addon.rigcore import zip_bundle

    result_zip = zip_bundle(make_chain_bundle(tmp_path / "bundle"), tmp_path / "result.zip")
    done = JobStatus("f" * 32, "done", progress=1.0)
    before = (sorted(bpy.data.objects.keys()), sorted(bpy.data.armatures.keys()))

    cancelled = remote._import_mesh_result(mesh_object("Creature").session_uid, "Creature", "x", result_zip, done)
    cancelled.cancel()
    with pytest.raises(ResultRejected, match="cancelled"):
        while not cancelled.step():
            time.sleep(0.01)
    assert sorted(bpy.data.armatures.keys()) == before[1] and cancelled.value is None

    edited = mesh_object("Edited")
    attaching = remote._import_mesh_result(edited.session_uid, "Edited", "x", result_zip, done)
    edited.data.vertices.add(1)  # the mesh changed while its weights were solved
    with pytest.raises(ResultRejected, match="'Edited' was edited while its weights were solved"):
        while not attaching.step():
            time.sleep(0.01)
    assert sorted(bpy.data.armatures.keys()) == before[1]

    in_edit_mode = mesh_object("In edit mode")
    attaching = remote._import_mesh_result(in_edit_mode.session_uid, "In edit mode", "x", result_zip, done)
    edit_mode_delete_vertex(in_edit_mode)  # the mesh data changes only when edit mode is left
    with pytest.raises(ResultRejected, match="'In edit mode' was edited while its weights were solved"):
        while not attaching.step():
            time.sleep(0.01)
    assert sorted(bpy.data.armatures.keys()) == before[1] and not in_edit_mode.vertex_groups


# --------------------------------------------------------------------------------------- URLs


@pytest.fixture
def health_server():
    with json_backend({"status": "ok", "device": "cpu", "api_version": 1}) as port:
        yield port


def test_a_backend_url_without_scheme_works(addon, health_server):
    from keydiff3d_addon import remote

    addon.backend_url = f" 127.0.0.1:{health_server}/ "
    assert bpy.ops.keydiff3d.check_backend() == {"FINISHED"}
    assert remote.make_client(bpy.context).url == f"http://127.0.0.1:{health_server}"
    addon.backend_url = "127.0.0.1:notaport"
    with pytest.raises(RuntimeError, match="invalid port"):
        bpy.ops.keydiff3d.check_backend()


def test_start_local_backend_does_nothing_when_one_answers(addon, health_server):
    from keydiff3d_addon import remote

    addon.backend_url = f"127.0.0.1:{health_server}"
    addon.start_command = "no-such-command-would-run"
    assert remote.start_local_backend(bpy.context) is None
    assert bpy.ops.keydiff3d.start_backend() == {"FINISHED"}  # reported as "already answers", nothing started


# ---------------------------------------------------------------------------- Recompute Weights


def test_recompute_defaults_to_the_bundles_own_method_and_parameters(addon, tmp_path):
    from keydiff3d_addon.importer import import_bundle
    from keydiff3d_addon.weights import rest_bones

    own = {"method": "gaussian_scaled", "sharpness": 0.3, "smooth_iterations": 2, "smooth_step": 0.4}
    bundle_dir = make_chain_bundle(tmp_path / "bundle", skinning=own, k=3)
    bundle = read_bundle(bundle_dir)
    rig = import_bundle(bundle_dir, target_height=0)  # the bundle's own coordinates: its weights are the reference
    names = bundle.skin.bone_names
    imported = dense_weights(rig.mesh, names)
    assert bpy.ops.keydiff3d.recompute_weights() == {"FINISHED"}  # method "the rig's own"
    recomputed = dense_weights(rig.mesh, names)
    assert np.abs(recomputed - imported).max() < 1e-4  # the bundle's method and parameters, not gaussian/0.08
    assert (np.count_nonzero(recomputed, axis=1) <= 3).all()  # the bundle's k too

    settings = bpy.context.scene.keydiff3d
    bpy.context.view_layer.objects.active = rig.armature
    settings.skin_method = "gaussian_scaled"  # choosing the rig's method starts from the rig's values
    assert {p.name: round(p.value, 6) for p in settings.skin_params} == {
        "sharpness": 0.3,
        "smooth_iterations": 2,
        "smooth_step": 0.4,
    }
    settings.skin_params["sharpness"].value = 0.1
    settings.skin_k = 4
    from keydiff3d_addon.operators import recompute_arguments

    assert bpy.ops.keydiff3d.recompute_weights(**recompute_arguments(settings)) == {"FINISHED"}  # the button
    chosen = {"method": "gaussian_scaled", "sharpness": 0.1, "smooth_iterations": 2, "smooth_step": 0.4}
    expected = compute_skin_weights(
        vertex_positions(rig.mesh), rest_bones(rig.armature), k=4, faces=bundle.faces, **chosen
    )
    assert np.abs(dense_weights(rig.mesh, names) - expected.dense(len(names))).max() < 1e-5


def test_method_fields_are_built_from_rigcore(addon, tmp_path):
    """Every method rigcore lists gets the fields rigcore reports for it: a new method needs no UI change."""
    from keydiff3d_addon.rigcore.skinning import compute_skin_weights as skin
    from keydiff3d_addon.skin_methods import method_parameters

    settings = bpy.context.scene.keydiff3d
    items = [item.identifier for item in settings.bl_rna.properties["skin_method"].enum_items]
    assert items == ["BUNDLE", *METHODS, "BONE_HEAT"]
    signature = inspect.signature(skin).parameters
    for method in METHODS:
        settings.skin_method = method
        fields = {p.name: p.value for p in settings.skin_params}
        assert fields.keys() == method_parameters(method).keys() and fields, method
        assert all(signature[name].default == pytest.approx(value) for name, value in fields.items())
        vertices, faces, _ = creature_mesh(1)
        reported = skin(
            vertices, read_bundle(make_chain_bundle(tmp_path / method)).skeleton, method=method, faces=faces
        ).params
        assert set(fields) == set(reported) & set(signature)
    assert method_parameters("gaussian") == {"sigma": 0.08, "relative": True}
    assert method_parameters("gaussian_scaled") == {"sharpness": 0.2, "smooth_iterations": 0, "smooth_step": 0.5}


def test_parameter_fields_hold_rigcore_ranges(addon):
    """The Weights panel's fields refuse what compute_skin_weights would refuse: one range, rigcore's."""
    from keydiff3d_addon.properties import SkinParameter
    from keydiff3d_addon.rigcore.skinning import METHOD_PARAMETERS

    rna = SkinParameter.bl_rna.properties
    settings = bpy.context.scene.keydiff3d
    for method, parameters in METHOD_PARAMETERS.items():
        settings.skin_method = method
        for parameter in parameters:
            if parameter.minimum is None or parameter.name == "sigma":  # sigma: test_an_absolute_sigma_...
                continue
            field = rna[parameter.name]
            assert (field.hard_min, field.hard_max) == pytest.approx((parameter.minimum, parameter.maximum))
            item = settings.skin_params[parameter.name]
            item.value = parameter.maximum * 10  # typed past the end: Blender clamps to rigcore's maximum
            assert item.value == pytest.approx(parameter.maximum)
            item.value = -1
            assert item.value == pytest.approx(parameter.minimum)


def test_an_absolute_sigma_is_not_held_to_the_relative_range(addon, tmp_path):
    """Sigma's field takes any positive width (rigcore's relative range is its soft range); the
    operator checks the value against rigcore's range for a relative sigma only."""
    from keydiff3d_addon.importer import import_bundle
    from keydiff3d_addon.operators import recompute_arguments
    from keydiff3d_addon.properties import SkinParameter

    field = SkinParameter.bl_rna.properties["sigma"]
    assert (field.soft_min, field.soft_max) == pytest.approx((1e-4, 1.0)) and 0 < field.hard_min < 1e-6
    bundle_dir = make_chain_bundle(tmp_path / "bundle", skinning={"sigma": 5.0, "relative": False})
    rig = import_bundle(bundle_dir, target_height=0)
    names = read_bundle(bundle_dir).skin.bone_names
    imported = dense_weights(rig.mesh, names)
    settings = bpy.context.scene.keydiff3d
    settings.skin_method = "gaussian"  # the rig's own method: its fields start at the rig's values
    assert {p.name: p.value for p in settings.skin_params} == {"sigma": pytest.approx(5.0), "relative": False}
    assert bpy.ops.keydiff3d.recompute_weights(**recompute_arguments(settings)) == {"FINISHED"}
    assert np.abs(dense_weights(rig.mesh, names) - imported).max() < 1e-4  # sigma 5.0, not clamped to 1
    settings.skin_params["relative"].value = True  # 5 as a fraction of the mesh: out of rigcore's range
    with pytest.raises(RuntimeError, match="sigma must be between 0.0001 and 1, got 5"):
        bpy.ops.keydiff3d.recompute_weights(**recompute_arguments(settings))


def edit_mode_delete_vertex(mesh_obj) -> None:
    """What a user does during the solve: Edit Mode, delete a vertex (bmesh), stay in Edit Mode."""
    import bmesh

    bpy.context.view_layer.objects.active = mesh_obj
    bpy.ops.object.mode_set(mode="EDIT")
    edit = bmesh.from_edit_mesh(mesh_obj.data)
    edit.verts.ensure_lookup_table()
    bmesh.ops.delete(edit, geom=[edit.verts[0]], context="VERTS")
    bmesh.update_edit_mesh(mesh_obj.data)


def test_a_mesh_edited_in_edit_mode_during_the_solve_gets_nothing(addon, tmp_path):
    from keydiff3d_addon.background import BackgroundTask
    from keydiff3d_addon.importer import import_bundle
    from keydiff3d_addon.operators import finish_weights_task
    from keydiff3d_addon.weights import plan_weights

    rig = import_bundle(make_chain_bundle(tmp_path / "bundle"))
    before, attributes = group_weights(rig.mesh), sorted(rig.mesh.data.attributes.keys())
    plan = plan_weights(bpy.context, rig.mesh, method="gaussian", params={"sigma": 0.3})
    task = BackgroundTask(plan.solve).start()
    edit_mode_delete_vertex(rig.mesh)
    assert task.wait(30)
    ((level, message),) = finish_weights_task(bpy.context, plan, task)
    assert (level, message) == (
        "ERROR",
        f"the mesh {rig.mesh.name!r} changed while its weights were computed; nothing was changed",
    )
    assert bpy.context.mode == "OBJECT" and len(rig.mesh.data.vertices) == plan.vertex_count - 1
    after = group_weights(rig.mesh)  # the groups as before, less the deleted vertex (renumbered)
    assert len(after) == len(before) - sum(1 for vertex, _ in before if vertex == 0)
    assert sorted({name for _, name in after}) == sorted({name for _, name in before})
    assert sorted(rig.mesh.data.attributes.keys()) == attributes


def test_a_failed_write_of_the_groups_restores_the_previous_ones(addon, tmp_path):
    """All or nothing: a write that fails half way (here: weights for one vertex too few, which
    Blender refuses on the second bone) leaves every group and attribute as it was, and the finish
    path turns the unexpected exception into one sentence."""
    from keydiff3d_addon.background import BackgroundTask
    from keydiff3d_addon.importer import import_bundle
    from keydiff3d_addon.operators import finish_weights_task
    from keydiff3d_addon.rigcore.skinning import SkinWeights
    from keydiff3d_addon.weights import plan_weights

    rig = import_bundle(make_chain_bundle(tmp_path / "bundle"))
    groups = [g.name for g in rig.mesh.vertex_groups]
    before, attributes = group_weights(rig.mesh), sorted(rig.mesh.data.attributes.keys())
    plan = plan_weights(bpy.context, rig.mesh, method="gaussian", params={"sigma": 0.3})

    def solve_one_vertex_short(progress):
        skin = plan.solve(progress)
        return SkinWeights(skin.indices[:-1], skin.weights[:-1], skin.bone_names, skin.method, skin.params)

    task = BackgroundTask(solve_one_vertex_short).start()
    assert task.wait(30)
    ((level, message),) = finish_weights_task(bpy.context, plan, task)
    assert level == "ERROR" and message.startswith("Recompute Weights failed (RuntimeError: ")
    assert message.endswith("; the weights were left as they were")
    assert [g.name for g in rig.mesh.vertex_groups] == groups and group_weights(rig.mesh) == before
    assert sorted(rig.mesh.data.attributes.keys()) == attributes


def test_a_cancelled_modal_removes_its_timer_progress_and_status(addon, tmp_path):
    """What Blender calls when it ends the modal itself (file load, window closed): the solve is
    cancelled, the timer removed and the progress cursor and status text cleared."""
    from keydiff3d_addon.background import BackgroundTask
    from keydiff3d_addon.importer import import_bundle
    from keydiff3d_addon.operators import finish_weights_task, stop_weights_task
    from keydiff3d_addon.weights import plan_weights

    rig = import_bundle(make_chain_bundle(tmp_path / "bundle"))
    before = group_weights(rig.mesh)
    plan = plan_weights(bpy.context, rig.mesh, method="heat")
    started = threading.Event()

    def solve(progress):
        started.set()
        return plan.solve(progress)

    task = BackgroundTask(solve).start()
    wm = bpy.context.window_manager
    wm.progress_begin(0, 100)
    timer = wm.event_timer_add(10.0)
    assert started.wait(30)
    stop_weights_task(bpy.context, task, timer)
    assert task.wait(30) and finish_weights_task(bpy.context, plan, task)[0][0] == "WARNING"
    assert group_weights(rig.mesh) == before
    from keydiff3d_addon.operators import KEYDIFF3D_OT_recompute_weights

    assert "cancel" in KEYDIFF3D_OT_recompute_weights.__dict__  # Blender calls it: the class must define it


def group_weights(mesh_obj) -> dict:
    return {
        (vertex.index, mesh_obj.vertex_groups[element.group].name): element.weight
        for vertex in mesh_obj.data.vertices
        for element in vertex.groups
    }


def test_unknown_or_out_of_range_parameters_are_refused_in_one_sentence(addon, tmp_path):
    from keydiff3d_addon.importer import import_bundle

    rig = import_bundle(make_chain_bundle(tmp_path / "bundle"))
    before = group_weights(rig.mesh)
    with pytest.raises(RuntimeError, match="the gaussian skinning has no parameter 'sigm'; it takes sigma, relative"):
        bpy.ops.keydiff3d.recompute_weights(method="gaussian", params='{"sigm": 0.1}')
    with pytest.raises(RuntimeError, match="sigma must be between 0.0001 and 1, got 5"):
        bpy.ops.keydiff3d.recompute_weights(method="gaussian", params='{"sigma": 5}')
    with pytest.raises(RuntimeError, match="automatic weights take no parameters"):
        bpy.ops.keydiff3d.recompute_weights(method="BONE_HEAT", params='{"sigma": 0.1}')
    assert group_weights(rig.mesh) == before  # nothing was changed


def test_a_cancelled_recompute_leaves_the_previous_weights(addon, tmp_path):
    """The button's path (timers do not run in the bpy module, so the test takes the operator's steps):
    the heat solve runs on a thread, Esc cancels it at its next progress report, and the groups stay."""
    from keydiff3d_addon.background import BackgroundTask, CancellableProgress, Cancelled
    from keydiff3d_addon.importer import import_bundle
    from keydiff3d_addon.operators import finish_weights_task
    from keydiff3d_addon.weights import plan_weights, recompute_weights

    rig = import_bundle(make_chain_bundle(tmp_path / "bundle"))
    before = group_weights(rig.mesh)
    cancelled = CancellableProgress()
    cancelled.cancel()
    with pytest.raises(Cancelled):
        recompute_weights(bpy.context, rig.mesh, method="heat", progress=cancelled)
    assert group_weights(rig.mesh) == before

    plan = plan_weights(bpy.context, rig.mesh, method="gaussian", params={"sigma": 0.3})
    started = threading.Event()

    def solve_until_cancelled(progress):  # the real solve, held at its first report until Esc
        class HeldAtFirstReport:
            def update(self, fraction, message=""):
                started.set()
                while not progress.cancelled:
                    time.sleep(0.01)
                progress.update(fraction, message)

        return plan.solve(HeldAtFirstReport())

    task = BackgroundTask(solve_until_cancelled).start()
    assert started.wait(30)
    task.cancel()  # what Esc does
    assert task.wait(30)
    assert finish_weights_task(bpy.context, plan, task)[0][0] == "WARNING"
    assert group_weights(rig.mesh) == before  # the previous weights, untouched

    finished = BackgroundTask(plan.solve).start()  # not cancelled: the groups are replaced on the main thread
    assert finished.wait(30)
    level, message = finish_weights_task(bpy.context, plan, finished)[0]
    assert level == "INFO" and "gaussian (sigma 0.3" in message and group_weights(rig.mesh) != before


def test_blender_automatic_weights_as_parent_with_automatic_weights(addon, tmp_path):
    from keydiff3d_addon.importer import import_bundle

    rig = import_bundle(make_chain_bundle(tmp_path / "bundle", root_bone=True))
    deform = [b.name for b in rig.armature.data.bones if b.use_deform]
    assert bpy.ops.keydiff3d.recompute_weights(method="BONE_HEAT", k=3) == {"FINISHED"}
    heat = dense_weights(rig.mesh, deform)
    assert "root" not in rig.mesh.vertex_groups  # non-deforming bones get no group, as in Blender
    assert (np.count_nonzero(heat, axis=1) <= 3).all() and np.allclose(heat.sum(1), 1.0, atol=1e-5)
    assert [m.type for m in rig.mesh.modifiers] == ["ARMATURE"] and rig.mesh.parent == rig.armature

    # the same as Blender's own Parent > With Automatic Weights on a copy, limited to 3 and normalised
    copy = rig.mesh.copy()
    copy.data = rig.mesh.data.copy()
    bpy.context.collection.objects.link(copy)
    copy.vertex_groups.clear()
    copy.modifiers.clear()
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj in (copy, rig.armature))
    bpy.context.view_layer.objects.active = rig.armature
    bpy.ops.object.parent_set(type="ARMATURE_AUTO")
    bpy.context.view_layer.objects.active = copy
    bpy.ops.object.vertex_group_limit_total(group_select_mode="BONE_DEFORM", limit=3)
    bpy.ops.object.vertex_group_normalize_all(group_select_mode="BONE_DEFORM", lock_active=False)
    assert np.abs(dense_weights(copy, deform) - heat).max() < 1e-6


# -------------------------------------------------------------------------------- units, errors


def test_target_height_is_in_metres_whatever_the_unit_scale(addon, tmp_path):
    from keydiff3d_addon.importer import import_bundle

    bpy.context.scene.unit_settings.scale_length = 0.01  # 1 Blender unit = 1 cm
    rig = import_bundle(make_chain_bundle(tmp_path / "bundle"), target_height=1.5)
    assert np.ptp(vertex_positions(rig.mesh)[:, 2]) == pytest.approx(150.0, rel=1e-5)  # 150 cm = 1.5 m
    assert tuple(rig.armature.scale) == (1.0, 1.0, 1.0)


def test_a_truncated_mesh_file_is_named_in_the_error(addon, tmp_path):
    from keydiff3d_addon.importer import RigImportError, import_bundle

    bundle = make_chain_bundle(tmp_path / "bundle")
    data = (bundle / "mesh.ply").read_bytes()
    (bundle / "mesh.ply").write_bytes(data[: len(data) - 500])  # cut inside the face list
    with pytest.raises(
        RigImportError, match=r"cannot read the rig bundle .*bundle: mesh\.ply: .*past the end of the file"
    ):
        import_bundle(bundle)
    assert len(bpy.data.objects) == 0
