# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators that talk to the backend: Rig from Image, Rig Selected Mesh, Cancel, Check Backend,
Start Local Backend, and the model downloads of the preferences. Thin shells over `remote.py`.

Long work never freezes Blender: a modal operator's window timer watches a worker (a `RemoteJob`,
a `BackendLauncher` or a `ModelsWatch`) and shows its stage, percent and elapsed time on the
progress bar and in the status bar; Esc cancels (on the backend too). Only the two rig operators
change the scene, each as one undo step (pushed when the job finishes: a failed or cancelled job
adds nothing). A button that cannot run says why (`poll_message_set`).
"""

from pathlib import Path

import bpy

from . import remote
from .client import BackendError, BackendUnreachable, BadBackendUrl, LaunchError
from .client.jobs import clean_stale_work_dirs, format_elapsed
from .modal import show_progress, start_watching, stop_watching
from .preferences import get_preferences


def selected_image_path(context: bpy.types.Context) -> Path:
    """The image file chosen in the sidebar (a path, or the file behind an image loaded in Blender)."""
    settings = context.scene.keydiff3d
    if settings.image_source == "LOADED":
        image = settings.image
        if image is None:
            raise ValueError("choose an image loaded in Blender, or switch the image source to File")
        raw = image.filepath_from_user() if image.filepath else ""
        if not raw or not Path(bpy.path.abspath(raw)).is_file():
            raise ValueError(f"the image {image.name!r} has no file on disk; save it first or pick a file")
        return Path(bpy.path.abspath(raw))
    if not settings.image_path:
        raise ValueError("choose an image file first")
    path = Path(bpy.path.abspath(settings.image_path))
    if not path.is_file():
        raise ValueError(f"the image file {path} does not exist")
    return path


def _no_job_running(cls) -> bool:
    job = remote.active_job()
    if job is not None and not job.finished:
        cls.poll_message_set(
            f"A KeyDiff3D job is running ({job.describe().removeprefix('KeyDiff3D: ')}); cancel it or wait"
        )
        return False
    return True


def _redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


class _Watching:
    """Modal loop over a worker: subclasses set `self._worker` in `_begin` and implement `_done`,
    `_cancel`, `_fraction`, `_text` and `_finish_report` (-> (level, message))."""

    _timer = None

    def invoke(self, context, event):
        return self._run(context)

    def execute(self, context):
        return self._run(context)

    def _run(self, context) -> set[str]:
        try:
            self._begin(context)
        except (remote.RemoteError, BackendError, BackendUnreachable, BadBackendUrl, LaunchError, ValueError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if self._done():  # finished at once (e.g. a backend already answers)
            return self._end(context)
        self._timer = start_watching(self, context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            finished = self._done()
        except BaseException:
            self._stop_timer(context)
            raise
        show_progress(context, self._fraction(), self._text())
        _redraw(context)
        if not finished:
            return {"PASS_THROUGH"}
        self._stop_timer(context)
        return self._end(context)

    def _stop_timer(self, context) -> None:
        stop_watching(context, self._timer)
        self._timer = None

    def _end(self, context) -> set[str]:
        level, message = self._finish_report()
        self.report({level}, message)
        _redraw(context)
        return {"FINISHED"} if level == "INFO" else {"CANCELLED"}


class _JobOperator(_Watching):
    """Rig from Image / Rig Selected Mesh: the worker is a `RemoteJob`; the undo step is pushed when it ends well."""

    def _done(self) -> bool:
        return self._job.drain()

    def _cancel(self) -> None:
        self._job.cancel()

    def _fraction(self) -> float:
        return self._job.progress

    def _text(self) -> str:
        return self._job.describe()

    def _finish_report(self) -> tuple[str, str]:
        job = self._job
        if job.error:
            return ("WARNING" if job.cancelled else "ERROR"), job.error
        return "INFO", f"KeyDiff3D: rigged {', '.join(o.name for o in job.result)} in {format_elapsed(job.elapsed)}"


class KEYDIFF3D_OT_rig_image_remote(_JobOperator, bpy.types.Operator):
    """Send the chosen image to the KeyDiff3D backend and import the rig it returns (Esc cancels)"""

    bl_idname = "keydiff3d.rig_image_remote"
    bl_label = "Rig from Image"
    bl_options = {"REGISTER", "UNDO"}

    poll = classmethod(lambda cls, context: _no_job_running(cls))

    def _begin(self, context) -> None:
        self._job = remote.start_image_job(context, selected_image_path(context))


class KEYDIFF3D_OT_rig_selected_mesh(_JobOperator, bpy.types.Operator):
    """Rig the active mesh: the backend renders it, predicts keypoints and returns a skeleton for it (Esc cancels)"""

    bl_idname = "keydiff3d.rig_selected_mesh"
    bl_label = "Rig Selected Mesh"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        try:
            remote.check_mesh_to_rig(context.active_object)
        except remote.RemoteError as error:
            cls.poll_message_set(str(error)[0].upper() + str(error)[1:])
            return False
        return _no_job_running(cls)

    def _begin(self, context) -> None:
        self._job = remote.start_mesh_job(context, context.active_object)


class KEYDIFF3D_OT_cancel_remote_job(bpy.types.Operator):
    """Cancel the running KeyDiff3D job, on the backend too"""

    bl_idname = "keydiff3d.cancel_remote_job"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        if not remote.job_running():
            cls.poll_message_set("No KeyDiff3D job is running")
            return False
        return True

    def execute(self, context):
        remote.active_job().cancel()
        self.report({"INFO"}, "KeyDiff3D: cancelling the job...")
        return {"FINISHED"}


class KEYDIFF3D_OT_check_backend(bpy.types.Operator):
    """Check that the KeyDiff3D backend set in the add-on preferences answers"""

    bl_idname = "keydiff3d.check_backend"
    bl_label = "Check Backend"
    bl_options = {"REGISTER"}

    def execute(self, context):
        try:
            message = remote.backend_health_message(context)
        except (BackendUnreachable, RuntimeError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


class KEYDIFF3D_OT_start_backend(_Watching, bpy.types.Operator):
    """Start a local KeyDiff3D backend with the preferences' command and watch it until it answers (Esc stops it)"""

    bl_idname = "keydiff3d.start_backend"
    bl_label = "Start Local Backend"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        launcher = remote.backend_launcher()
        if launcher is not None and not launcher.state.finished:
            cls.poll_message_set(f"The backend is starting ({launcher.elapsed:.0f} s)")
            return False
        return True

    def _begin(self, context) -> None:
        self._launcher = remote.start_local_backend(context)

    def _done(self) -> bool:
        return self._launcher is None or self._launcher.state.finished

    def _cancel(self) -> None:
        self._launcher.stop()

    def _fraction(self) -> float:
        return min(self._launcher.elapsed / self._launcher.timeout_s, 1.0)

    def _text(self) -> str:
        return f"KeyDiff3D: starting the backend... ({format_elapsed(self._launcher.elapsed)})"

    def _finish_report(self) -> tuple[str, str]:
        if self._launcher is None:
            return "INFO", "KeyDiff3D: a backend already answers at the backend URL; nothing was started"
        state = self._launcher.state
        if state.phase == "ready":
            return "INFO", f"KeyDiff3D: {state.message} after {format_elapsed(self._launcher.elapsed)}"
        tail = " | ".join(state.log_tail.splitlines()[-3:])
        return "ERROR", f"KeyDiff3D: {state.message}{'; last lines: ' + tail if tail else ''}"


class KEYDIFF3D_OT_refresh_models(bpy.types.Operator):
    """Ask the backend which model files it has and which it can download"""

    bl_idname = "keydiff3d.refresh_models"
    bl_label = "Refresh"
    bl_options = {"REGISTER"}

    def execute(self, context):
        try:
            remote.refresh_models(context)
        except (BackendError, BackendUnreachable, BadBackendUrl) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return {"FINISHED"}


class KEYDIFF3D_OT_download_model(_Watching, bpy.types.Operator):
    """Download this model into the backend's weights folder from the Hugging Face Hub (Esc cancels; resumable)"""

    bl_idname = "keydiff3d.download_model"
    bl_label = "Download"
    bl_options = {"REGISTER"}

    name: bpy.props.StringProperty(name="Model", description="The weight entry to download (e.g. sv3d_p)")

    @classmethod
    def poll(cls, context):
        watch = remote.models_watch()
        if watch is not None and not watch.finished:
            cls.poll_message_set(f"{watch.name} is downloading ({100 * watch.fraction:.0f}%)")
            return False
        return True

    def _begin(self, context) -> None:
        self._watch = remote.start_model_download(context, self.name, get_preferences(context).hub_token)

    def _done(self) -> bool:
        return self._watch.finished

    def _cancel(self) -> None:
        self._watch.cancel()

    def _fraction(self) -> float:
        return self._watch.fraction

    def _text(self) -> str:
        return f"KeyDiff3D: {self._watch.describe()}"

    def _finish_report(self) -> tuple[str, str]:
        watch = self._watch
        if watch.status == "done":
            return "INFO", f"KeyDiff3D: {watch.describe()}"
        return ("WARNING" if watch.status == "cancelled" else "ERROR"), f"KeyDiff3D: {watch.describe()}"


class KEYDIFF3D_OT_cancel_model_download(bpy.types.Operator):
    """Stop the running model download (the part already downloaded is kept and resumed next time)"""

    bl_idname = "keydiff3d.cancel_model_download"
    bl_label = "Cancel Download"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        watch = remote.models_watch()
        if watch is None or watch.finished:
            cls.poll_message_set("No model download is running")
            return False
        return True

    def execute(self, context):
        remote.models_watch().cancel()
        return {"FINISHED"}


def register_extra() -> None:
    clean_stale_work_dirs()  # job folders a crashed session left behind


def unregister_extra() -> None:
    job = remote.active_job()
    if job is not None and not job.finished:
        job.cancel()  # on the backend too; nothing will import its result any more


CLASSES = (
    KEYDIFF3D_OT_rig_image_remote,
    KEYDIFF3D_OT_rig_selected_mesh,
    KEYDIFF3D_OT_cancel_remote_job,
    KEYDIFF3D_OT_check_backend,
    KEYDIFF3D_OT_start_backend,
    KEYDIFF3D_OT_refresh_models,
    KEYDIFF3D_OT_download_model,
    KEYDIFF3D_OT_cancel_model_download,
)
