"""End to end: the add-on's own job steps in the real Blender module against a real `keydiff3d serve`.

Timers and modal handlers never run in the bpy module, so the tests call the step functions the
modal operator calls (`start_*_job`, `RemoteJob.drain` via `wait`) - the same code path as the UI.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from bpy_fixtures import addon, bpy  # noqa: F401  (fixtures)
from pipeline_support import png_bytes, write_tiny_checkpoint
from service_support import Server, free_port, json_backend

pytestmark = [pytest.mark.bpy, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    checkpoint = write_tiny_checkpoint(root / "tiny.safetensors")
    server = Server(root / "data", root / "home", "--checkpoint", str(checkpoint)).start()
    yield server
    server.stop()


def creature_object(name: str = "Creature") -> bpy.types.Object:
    """A procedural quadruped as a Blender mesh object with a non-trivial world transform."""
    from keydiff3d.synthetic.creatures import generate_creature

    creature = generate_creature("quadruped", 4)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(creature.vertices.tolist(), [], creature.faces.tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.collection.objects.link(obj)
    obj.location = (2.0, -1.0, 0.5)
    obj.rotation_euler = (0.0, 0.0, np.radians(30.0))
    obj.scale = (1.5, 1.5, 1.5)
    bpy.context.view_layer.objects.active = obj
    bpy.context.view_layer.update()
    return obj


def world_vertices(obj, evaluated: bool = False) -> np.ndarray:
    if evaluated:
        obj = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    co = np.empty(len(obj.data.vertices) * 3, np.float64)
    obj.data.vertices.foreach_get("co", co)
    matrix = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def test_rig_selected_mesh_gives_a_posable_rig(server, addon):
    from keydiff3d_addon import remote

    addon.backend_url = server.url
    bpy.context.scene.keydiff3d.preset = "quadruped"
    obj = creature_object()
    rest = world_vertices(obj)
    job = remote.start_mesh_job(bpy.context, obj)
    bar, deadline = [], time.monotonic() + 180  # the progress bar over the job: backend, then the skinning here
    while not job.drain():
        bar.append(job.progress)
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert job.error is None, job.error
    assert bar == sorted(bar) and 0.0 <= bar[0] and bar[-1] <= 1.0  # never back to 0 when the skinning starts
    assert job.status.status == "done" and remote.active_job() is job
    armature = job.result[0]
    assert armature.type == "ARMATURE" and obj.parent == armature
    assert any(m.type == "ARMATURE" and m.object == armature for m in obj.modifiers)
    np.testing.assert_allclose(world_vertices(obj), rest, atol=1e-5)  # parenting did not move the mesh

    # the skeleton sits inside the mesh where Blender shows it (the GLB y-up round trip is exact)
    heads = np.array([b.head_local for b in armature.data.bones]) @ np.array(armature.matrix_world)[:3, :3].T
    lo, hi = rest.min(0), rest.max(0)
    margin = 0.05 * (hi - lo).max()
    assert ((heads >= lo - margin) & (heads <= hi + margin)).all()

    deform = [b.name for b in armature.data.bones if b.use_deform]
    assert len(deform) >= 5 and set(deform) <= set(obj.vertex_groups.keys())
    weights = np.zeros(len(obj.data.vertices))
    for vertex in obj.data.vertices:
        weights[vertex.index] = sum(g.weight for g in vertex.groups)
    np.testing.assert_allclose(weights, 1.0, atol=1e-3)

    # posable: turning the bone that drives most vertices moves them
    index_of = {g.index: g.name for g in obj.vertex_groups}
    major = np.array([index_of[max(v.groups, key=lambda g: g.weight).group] for v in obj.data.vertices])
    names, counts = np.unique(major, return_counts=True)
    bone = armature.pose.bones[str(names[counts.argmax()])]
    bone.rotation_mode = "XYZ"
    bone.rotation_euler = (np.radians(60.0), 0.0, 0.0)
    bpy.context.view_layer.update()
    moved = np.linalg.norm(world_vertices(obj, evaluated=True) - rest, axis=1)
    assert np.median(moved[major == bone.name]) > 1e-3


def test_renaming_the_mesh_during_the_job_keeps_the_result(server, addon):
    from keydiff3d_addon import remote

    addon.backend_url = server.url.removeprefix("http://")  # typed without the scheme
    obj = creature_object("Before")
    job = remote.start_mesh_job(bpy.context, obj)
    work_dir = job.work_dir
    assert work_dir.is_dir() and (work_dir / "Before.glb").is_file()
    obj.name = "After"  # while the backend works on it
    texts = []
    while not job.drain():
        texts.append(job.describe())
        time.sleep(0.05)
    assert job.error is None, job.error
    assert bpy.data.objects["After"].parent == job.result[0]
    assert not work_dir.exists()  # the upload and the downloaded zip are gone once the job ended
    # stage, percent, elapsed whenever the polls caught the job running (a fast job may finish between
    # two polls; the format itself is tested in test_addon_client.py)
    running = [t for t in texts if "%" in t]
    assert all(re.search(r" - \d+% \(\d+:\d\d\)$", t) for t in running)


def test_cancel_while_the_result_is_skinned_adds_nothing(server, addon):
    """The weights on the mesh's own vertices are solved on a worker thread after the download; Esc
    then (the job's cancel) stops that solve and the scene stays as it was."""
    from keydiff3d_addon import remote

    addon.backend_url = server.url
    obj = creature_object("Skinned")
    before = (sorted(bpy.data.objects.keys()), sorted(bpy.data.armatures.keys()))
    job = remote.start_mesh_job(bpy.context, obj)
    deadline = time.monotonic() + 180
    while job.importing is None and not job.drain():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job.importing is not None, job.error  # the backend's part is over, the solve has started
    assert job.describe().startswith("KeyDiff3D: skinning 'Skinned' - ")
    job.cancel()
    assert not job.wait(timeout=60)
    assert job.cancelled and job.error == "KeyDiff3D: the job was cancelled."
    assert (sorted(bpy.data.objects.keys()), sorted(bpy.data.armatures.keys())) == before
    assert obj.parent is None and not obj.vertex_groups and not job.work_dir.exists()


def test_a_mesh_deleted_during_the_job_gets_nothing(server, addon):
    from keydiff3d_addon import remote

    addon.backend_url = server.url
    obj = creature_object("Doomed")
    job = remote.start_mesh_job(bpy.context, obj)
    bpy.data.objects.remove(obj)
    before = (sorted(bpy.data.objects.keys()), sorted(bpy.data.armatures.keys()))
    assert not job.wait(timeout=180)
    assert job.error == "the mesh 'Doomed' was deleted while the backend rigged it; nothing was added"
    assert (sorted(bpy.data.objects.keys()), sorted(bpy.data.armatures.keys())) == before
    assert not job.work_dir.exists()


def test_rig_from_image_without_sv3d_weights_fails_with_a_sentence(server, addon, tmp_path):
    from keydiff3d_addon import remote

    addon.backend_url = server.url
    image = tmp_path / "creature.png"
    image.write_bytes(png_bytes(96, 96))
    objects_before = len(bpy.data.objects)
    job = remote.start_image_job(bpy.context, image)
    assert not job.wait(timeout=180)
    assert job.status.status == "failed"
    assert job.error.startswith("The backend could not rig this image:") and "sv3d_p.safetensors" in job.error
    assert len(bpy.data.objects) == objects_before  # nothing half-imported
    assert not job.work_dir.exists()
    assert remote.make_client(bpy.context).health()["status"] == "ok"  # the server keeps serving


def test_cancel_from_blender_cancels_on_the_server(server, addon):
    from keydiff3d_addon import remote

    addon.backend_url = server.url
    obj = creature_object("ToCancel")
    job = remote.start_mesh_job(bpy.context, obj)
    job.cancel()
    assert not job.wait(timeout=120)
    assert job.cancelled and job.error == "KeyDiff3D: the job was cancelled."
    assert not job.work_dir.exists()
    assert remote.make_client(bpy.context).status(job.status.id).status == "cancelled"
    assert not any(m.type == "ARMATURE" for m in obj.modifiers)


def test_no_backend_running_says_how_to_start_one(addon):
    from keydiff3d_addon import remote
    from keydiff3d_addon.client.health import BackendUnreachable

    url = f"http://127.0.0.1:{free_port()}"
    addon.backend_url = url
    obj = creature_object()
    with pytest.raises(BackendUnreachable, match="keydiff3d serve"):
        remote.start_mesh_job(bpy.context, obj)
    with pytest.raises(RuntimeError, match=f"No KeyDiff3D backend is reachable at {url}"):
        bpy.ops.keydiff3d.rig_selected_mesh()  # the operator reports the same sentence


def test_version_mismatch_is_reported(addon):
    """A server answering /v1/health with another API version (as an older backend would)."""
    from keydiff3d_addon import remote
    from keydiff3d_addon.client import VersionMismatch

    with json_backend({"status": "ok", "version": "0.0.1", "api_version": 0, "device": "cpu"}) as port:
        addon.backend_url = f"http://127.0.0.1:{port}"
        with pytest.raises(VersionMismatch, match="API version 0 .* needs version 1"):
            remote.start_mesh_job(bpy.context, creature_object())


def test_mesh_with_an_armature_is_refused(addon):
    from keydiff3d_addon import remote

    obj = creature_object()
    obj.modifiers.new("Armature", "ARMATURE")
    with pytest.raises(remote.RemoteError, match="already has an Armature modifier"):
        remote.start_mesh_job(bpy.context, obj)
