# SPDX-License-Identifier: GPL-3.0-or-later
"""Rig from image / Rig selected mesh through the backend, without freezing Blender.

A `RemoteJob` owns one backend job. Its worker thread does all HTTP (submit, poll, cancel, download)
and only puts `JobStatus` answers and outcomes on a queue; `RemoteJob.drain` runs on Blender's main
thread (from the modal operator's timer, or directly in scripts and tests, where timers never fire)
and makes every bpy change there: progress, stage text, importing the result. Esc or the Cancel
button set the job's cancel flag; the worker then cancels the job on the server too.

"Rig selected mesh" uploads the active mesh as GLB (y up, world transform and modifiers applied)
and builds the returned skeleton onto that very object: the armature in world space, skin weights
recomputed on the object's own vertices with the bundle's skinning method and parameters.
"""

from __future__ import annotations

import queue
import shlex
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from . import importer
from .client import BackendClient, BackendError, JobStatus
from .health import BackendUnreachable
from .preferences import allowed_backend_url, get_preferences
from .rigcore.bundle import read_bundle
from .rigcore.skinning import compute_skin_weights
from .weights import mesh_arrays

POLL_INTERVAL_S = 0.5  # how often the worker asks the backend for the job's state
TIMER_STEP_S = 0.1  # how often the modal operator drains the queue on the main thread
SKIN_PARAMS = ("sigma", "relative", "sharpness", "smooth_iterations", "smooth_step")

_active: "RemoteJob | None" = None
_backend_process: subprocess.Popen | None = None


class RemoteError(RuntimeError):
    """A local problem before anything reaches the backend (nothing selected, export failed, ...)."""


@dataclass
class _Outcome:
    kind: str  # "status" | "result" | "error"
    status: JobStatus | None = None
    path: Path | None = None
    message: str = ""


class RemoteJob:
    """One backend job from submission to the imported rig.

    kind: "image" or "mesh"; upload: the file sent; target: the mesh object a "mesh" job rigs.
    After `drain` returned True: `rig_objects` holds the created armature (and mesh), or `error` a sentence.
    """

    def __init__(self, client: BackendClient, kind: str, upload: Path, options: dict, work_dir: Path, *,
                 target: bpy.types.Object | None = None, target_height: float = 1.0) -> None:  # fmt: skip
        self.client, self.kind, self.upload, self.options, self.work_dir = client, kind, upload, options, work_dir
        self.target_name = target.name if target is not None else None
        self.target_height = target_height
        self.status: JobStatus | None = None
        self.error: str | None = None
        self.cancelled = False
        self.finished = False
        self.rig_objects: list[bpy.types.Object] = []
        self._outcomes: queue.Queue[_Outcome] = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._work, name="keydiff3d-remote-job", daemon=True)

    # -- main thread ---------------------------------------------------------------------------
    def start(self) -> "RemoteJob":
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask for cancellation; the worker cancels the job on the backend and reports back."""
        self._cancel.set()

    @property
    def progress(self) -> float:
        return self.status.progress if self.status is not None else 0.0

    def describe(self) -> str:
        """One line for the status bar and the panel."""
        if self.error:
            return self.error
        if self.status is None:
            return "KeyDiff3D: sending to the backend..."
        if self.status.status == "queued":
            position = self.status.queue_position
            return f"KeyDiff3D: queued{'' if position is None else f' ({position} ahead)'}"
        stage = self.status.message or self.status.stage
        return f"KeyDiff3D: {self.status.status} - {stage} ({100 * self.status.progress:.0f}%)"

    def drain(self, context: bpy.types.Context) -> bool:
        """Apply what the worker reported (all bpy changes happen here). True once the job is over."""
        while not self.finished:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                break
            if outcome.status is not None:
                self.status = outcome.status
            if outcome.kind == "error":
                self.error, self.finished = outcome.message, True
            elif outcome.kind == "result":
                self._import(context, outcome.path)
                self.finished = True
            elif outcome.status is not None and outcome.status.status in ("failed", "cancelled"):
                self.cancelled = outcome.status.status == "cancelled"
                self.error = failure_sentence(outcome.status, self.kind)
                self.finished = True
        return self.finished

    def wait(self, context: bpy.types.Context, timeout: float = 300.0) -> bool:
        """Drain until the job is over, blocking (scripts and tests; the UI uses the modal operator)."""
        import time

        deadline = time.monotonic() + timeout
        while not self.drain(context):
            if time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"the backend job did not finish within {timeout:.0f} s")
            time.sleep(0.05)
        return self.error is None

    def _import(self, context: bpy.types.Context, path: Path) -> None:
        try:
            if self.kind == "mesh":
                target = bpy.data.objects.get(self.target_name or "")
                if target is None:
                    raise RemoteError(f"the mesh {self.target_name!r} was deleted while the backend rigged it")
                self.rig_objects = [attach_rig(context, target, path)]
            else:
                rig = importer.import_bundle(path, context=context, target_height=self.target_height, name=self.upload.stem)
                self.rig_objects = [rig.armature, rig.mesh]
        except (RemoteError, importer.RigImportError) as error:
            self.error = str(error)

    # -- worker thread: HTTP only, never bpy ---------------------------------------------------
    def _work(self) -> None:
        try:
            status = self.client.submit(self.kind, self.upload, self.options)
            self._outcomes.put(_Outcome("status", status))
            while not status.finished:
                if self._cancel.wait(POLL_INTERVAL_S):
                    status = self.client.cancel(status.id)
                    self._outcomes.put(_Outcome("status", status))
                    while not status.finished:  # a running job stops at its next cancellation point
                        self._cancel.wait(POLL_INTERVAL_S / 2)
                        status = self.client.status(status.id)
                    break
                status = self.client.status(status.id)
                self._outcomes.put(_Outcome("status", status))
            if status.status == "done":
                path = self.client.download_result(status.id, self.work_dir / f"{status.id}.zip")
                self._outcomes.put(_Outcome("result", status, path))
            else:
                self._outcomes.put(_Outcome("status", status))
        except (BackendError, BackendUnreachable, OSError) as error:
            self._outcomes.put(_Outcome("error", message=str(error)))
        except Exception as error:  # a bug here must reach the user as a sentence, not a dead thread
            self._outcomes.put(_Outcome("error", message=f"KeyDiff3D: unexpected error while talking to the backend ({type(error).__name__}: {error})"))


def failure_sentence(status: JobStatus, kind: str) -> str:
    if status.status == "cancelled":
        return "KeyDiff3D: the job was cancelled."
    message = (status.error or {}).get("message", "no reason given")
    return f"The backend could not rig this {kind}: {message}"


# --------------------------------------------------------------------------- step functions


def make_client(context: bpy.types.Context) -> BackendClient:
    """A client for the preferences' backend; refuses a remote URL while Blender is offline."""
    url = allowed_backend_url(context)
    prefs = get_preferences(context)
    return BackendClient(url, prefs.token, start_command=prefs.start_command)


def job_options(context: bpy.types.Context) -> dict:
    return {"preset": context.scene.keydiff3d.preset}


def start_image_job(context: bpy.types.Context, image_path: Path, client: BackendClient | None = None) -> RemoteJob:
    """Check the backend, then submit `image_path`; returns the running job (drain it on the main thread)."""
    client = client or make_client(context)
    client.health()
    work_dir = Path(tempfile.mkdtemp(prefix="keydiff3d-job-"))
    job = RemoteJob(client, "image", Path(image_path), job_options(context), work_dir, target_height=context.scene.keydiff3d.target_height)
    return _activate(job.start())


def start_mesh_job(context: bpy.types.Context, mesh_obj: bpy.types.Object, client: BackendClient | None = None) -> RemoteJob:
    """Check the backend, export `mesh_obj` as GLB and submit it; returns the running job."""
    if mesh_obj is None or mesh_obj.type != "MESH":
        raise RemoteError("select the mesh to rig first (an object of type Mesh)")
    if any(m.type == "ARMATURE" for m in mesh_obj.modifiers):
        raise RemoteError(f"the mesh {mesh_obj.name!r} already has an Armature modifier; remove it to rig the mesh again")
    client = client or make_client(context)
    client.health()
    work_dir = Path(tempfile.mkdtemp(prefix="keydiff3d-job-"))
    upload = export_mesh_glb(context, mesh_obj, work_dir / f"{bpy.path.clean_name(mesh_obj.name)}.glb")
    job = RemoteJob(client, "mesh", upload, job_options(context), work_dir, target=mesh_obj)
    return _activate(job.start())


def _activate(job: RemoteJob) -> RemoteJob:
    global _active
    _active = job
    return job


def active_job() -> RemoteJob | None:
    """The job shown in the panel (the latest one started in this session)."""
    return _active


def export_mesh_glb(context: bpy.types.Context, mesh_obj: bpy.types.Object, path: Path) -> Path:
    """Write just `mesh_obj` as GLB: world transform and modifiers applied, materials kept, y up."""
    selected = [o for o in context.view_layer.objects if o.select_get()]
    active = context.view_layer.objects.active
    try:
        for obj in selected:
            obj.select_set(False)
        mesh_obj.select_set(True)
        context.view_layer.objects.active = mesh_obj
        with context.temp_override(active_object=mesh_obj, selected_objects=[mesh_obj]):
            bpy.ops.export_scene.gltf(
                filepath=str(path), export_format="GLB", use_selection=True, export_yup=True,
                export_apply=True, export_skins=False, export_animations=False, export_morph=False,
            )  # fmt: skip
    except RuntimeError as error:
        raise RemoteError(f"Blender could not export {mesh_obj.name!r} as glTF: {error}") from None
    finally:
        mesh_obj.select_set(False)
        for obj in selected:
            obj.select_set(True)
        context.view_layer.objects.active = active
    if not path.is_file():
        raise RemoteError(f"Blender wrote no glTF file for {mesh_obj.name!r}")
    return path


def attach_rig(context: bpy.types.Context, mesh_obj: bpy.types.Object, bundle_path: Path) -> bpy.types.Object:
    """Build the bundle's armature onto `mesh_obj` (bundle frame = Blender world, as uploaded) and
    skin the object's own vertices with the bundle's skinning; returns the armature object."""
    try:
        bundle = read_bundle(bundle_path)
    except Exception as error:  # any reader failure is the bundle's fault
        raise RemoteError(f"the backend's rig bundle could not be read: {error}") from error
    importer.check_names(bundle)
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    armature = bpy.data.armatures.new(f"{mesh_obj.name}_armature")
    armature_obj = bpy.data.objects.new(f"{mesh_obj.name}_rig", armature)
    armature_obj.show_in_front = True
    collection = mesh_obj.users_collection[0] if mesh_obj.users_collection else context.collection
    collection.objects.link(armature_obj)
    try:
        placement = importer.Placement.identity()
        importer.build_armature_bones(context, armature_obj, bundle.skeleton.bones, placement, bundle.up_axis)
        world = mesh_obj.matrix_world.copy()
        vertices, triangles = mesh_arrays(mesh_obj, np.eye(4))
        params = {k: v for k, v in bundle.skin.params.items() if k in SKIN_PARAMS}
        skin = compute_skin_weights(vertices, bundle.skeleton, k=bundle.skin.k, method=bundle.skin.method, faces=triangles, **params)
        importer.write_vertex_groups(context, mesh_obj, skin)
        mesh_obj.parent = armature_obj
        mesh_obj.matrix_world = world  # keep the mesh where it was (the armature sits at the origin)
        modifier = mesh_obj.modifiers.new("Armature", "ARMATURE")
        modifier.object = armature_obj
        modifier.use_deform_preserve_volume = False
        armature_obj[importer.PROP_RIG] = importer.rig_record(bundle, str(bundle_path), placement, bundle.up_axis)
    except Exception as error:
        bpy.data.objects.remove(armature_obj)
        bpy.data.armatures.remove(armature)
        if isinstance(error, (RemoteError, importer.RigImportError)):
            raise
        raise RemoteError(f"building the rig onto {mesh_obj.name!r} failed and the scene was left unchanged: {error}") from error
    context.view_layer.objects.active = armature_obj
    return armature_obj


def start_local_backend(context: bpy.types.Context) -> str:
    """Start the preferences' backend command as a detached process; returns a sentence for the user."""
    global _backend_process
    command = get_preferences(context).start_command.strip()
    if _backend_process is not None and _backend_process.poll() is None:
        return f"A backend started from Blender is already running (process {_backend_process.pid})."
    try:
        _backend_process = subprocess.Popen(shlex.split(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except (OSError, ValueError) as error:
        raise RemoteError(f"could not run `{command}` ({error}); set the start command in the add-on preferences") from None
    return f"Started `{command}` (process {_backend_process.pid}); it is ready once Check backend reports it."


# --------------------------------------------------------------------------- operators


class _RemoteJobOperator:
    """Shared modal loop: a window timer drains the job; Esc cancels it (on the server too)."""

    _timer = None
    _job: RemoteJob | None = None

    def _run(self, context, start) -> set[str]:
        try:
            self._job = start()
        except (RemoteError, BackendError, BackendUnreachable, ValueError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(TIMER_STEP_S, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        finished = job.drain(context)
        context.window_manager.progress_update(int(100 * job.progress))
        if context.workspace is not None:
            context.workspace.status_text_set(job.describe())
        for area in context.screen.areas if context.screen else ():
            if area.type == "VIEW_3D":
                area.tag_redraw()
        if not finished:
            return {"PASS_THROUGH"}
        self._finish(context)
        if job.error:
            self.report({"WARNING"} if job.cancelled else {"ERROR"}, job.error)
            return {"CANCELLED"}
        self.report({"INFO"}, f"KeyDiff3D: rigged {', '.join(o.name for o in job.rig_objects)}")
        return {"FINISHED"}

    def _finish(self, context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)


class KEYDIFF3D_OT_rig_image_remote(_RemoteJobOperator, bpy.types.Operator):
    """Send the chosen image to the KeyDiff3D backend and import the rig it returns (Esc cancels)"""

    bl_idname = "keydiff3d.rig_image_remote"
    bl_label = "Rig from Image"

    def invoke(self, context, event):
        from .operators import selected_image_path

        return self._run(context, lambda: start_image_job(context, selected_image_path(context)))

    def execute(self, context):
        return self.invoke(context, None)


class KEYDIFF3D_OT_rig_selected_mesh(_RemoteJobOperator, bpy.types.Operator):
    """Rig the active mesh: the backend renders it, predicts keypoints and returns a skeleton for it (Esc cancels)"""

    bl_idname = "keydiff3d.rig_selected_mesh"
    bl_label = "Rig Selected Mesh"

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type == "MESH"

    def invoke(self, context, event):
        return self._run(context, lambda: start_mesh_job(context, context.active_object))

    def execute(self, context):
        return self.invoke(context, None)


class KEYDIFF3D_OT_cancel_remote_job(bpy.types.Operator):
    """Cancel the running KeyDiff3D job, on the backend too"""

    bl_idname = "keydiff3d.cancel_remote_job"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _active is not None and not _active.finished

    def execute(self, context):
        _active.cancel()
        self.report({"INFO"}, "KeyDiff3D: cancelling the job...")
        return {"FINISHED"}


class KEYDIFF3D_OT_start_backend(bpy.types.Operator):
    """Start a local KeyDiff3D backend with the command set in the add-on preferences"""

    bl_idname = "keydiff3d.start_backend"
    bl_label = "Start Local Backend"

    def execute(self, context):
        try:
            self.report({"INFO"}, start_local_backend(context))
        except (RemoteError, RuntimeError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return {"FINISHED"}


def draw_job_status(layout: bpy.types.UILayout) -> None:
    """The panel's job box: progress bar + stage text and a Cancel button while a job runs."""
    job = _active
    if job is None:
        return
    box = layout.box()
    if job.finished:
        box.label(text=job.error or "KeyDiff3D: rig imported", icon="ERROR" if job.error and not job.cancelled else "CHECKMARK")
        return
    box.progress(factor=job.progress, type="BAR", text=job.describe().removeprefix("KeyDiff3D: "))
    box.operator(KEYDIFF3D_OT_cancel_remote_job.bl_idname, icon="CANCEL")


CLASSES = (KEYDIFF3D_OT_rig_image_remote, KEYDIFF3D_OT_rig_selected_mesh, KEYDIFF3D_OT_cancel_remote_job, KEYDIFF3D_OT_start_backend)
