# SPDX-License-Identifier: GPL-3.0-or-later
"""The Blender side of backend jobs: what the operators in `backend_operators.py` call, as plain
functions the tests call too (timers and modal handlers never run in the bpy module).

- `start_image_job` / `start_mesh_job` check the backend, write the upload into a fresh work folder
  and start a `client.RemoteJob`; `import_job_result` (given to `RemoteJob.drain`) builds the rig on
  the main thread. A mesh job holds its target by `session_uid`, which survives renaming.
- "Rig selected mesh" uploads the active mesh as GLB (y up, world transform and modifiers applied)
  and builds the returned skeleton onto that very object with `importer.build_rig(onto=...)`: the
  armature in world space, weights computed on the object's own vertices with the bundle's
  skinning method and parameters, on a worker thread (`AttachInBackground`, cancellable with the job).
- `start_local_backend` starts the preferences' command with a `client.BackendLauncher` that logs to
  the extension's user folder.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import bpy
import numpy as np

from . import importer
from .background import BackgroundTask, Cancelled
from .client import (
    BackendClient,
    BackendLauncher,
    BackendUnreachable,
    JobStatus,
    ModelsWatch,
    RemoteJob,
    ResultRejected,
    check_backend,
)
from .client.jobs import new_work_dir
from .preferences import allowed_backend_url, get_preferences
from .rigcore.bundle import RigBundle
from .rigcore.skinning import SkinningError, SkinWeights, compute_skin_weights
from .skin_methods import skin_kwargs
from .weights import mesh_arrays

_active: RemoteJob | None = None
_launcher: BackendLauncher | None = None
_models: dict = {}  # the latest GET /v1/models answer, drawn by the preferences
_models_watch: ModelsWatch | None = None


class RemoteError(RuntimeError):
    """A local problem before anything reaches the backend (nothing selected, export failed, ...)."""


def make_client(context: bpy.types.Context) -> BackendClient:
    """A client for the preferences' backend; refuses a remote URL while Blender is offline."""
    url = allowed_backend_url(context)
    prefs = get_preferences(context)
    return BackendClient(url, prefs.token, start_command=prefs.start_command)


def backend_health_message(context: bpy.types.Context) -> str:
    """One sentence about the configured backend; raises `BackendUnreachable` when there is none."""
    url = allowed_backend_url(context)
    prefs = get_preferences(context)
    health = check_backend(url, token=prefs.token, start_command=prefs.start_command)
    return f"KeyDiff3D backend at {health.url} is {health.status} (device {health.device})."


def job_options(context: bpy.types.Context) -> dict:
    return {"preset": context.scene.keydiff3d.preset}


def active_job() -> RemoteJob | None:
    """The job shown in the panel (the latest one started in this session)."""
    return _active


def job_running() -> bool:
    return _active is not None and not _active.finished


def _activate(job: RemoteJob) -> RemoteJob:
    global _active
    _active = job.start()
    return job


def start_image_job(context: bpy.types.Context, image_path: Path, client: BackendClient | None = None) -> RemoteJob:
    """Check the backend, then submit `image_path`; returns the running job (drain it on the main thread)."""
    if job_running():
        raise RemoteError("a KeyDiff3D job is already running; wait for it or cancel it first")
    client = client or make_client(context)
    client.health()
    image_path = Path(image_path)
    import_result = partial(_import_image_result, context.scene.keydiff3d.target_height, image_path.stem, client.url)
    return _activate(RemoteJob(client, "image", image_path, job_options(context), new_work_dir(), import_result))


def start_mesh_job(
    context: bpy.types.Context, mesh_obj: bpy.types.Object, client: BackendClient | None = None
) -> RemoteJob:
    """Check the backend, export `mesh_obj` as GLB and submit it; returns the running job."""
    if job_running():
        raise RemoteError("a KeyDiff3D job is already running; wait for it or cancel it first")
    check_mesh_to_rig(mesh_obj)
    client = client or make_client(context)
    client.health()
    work_dir = new_work_dir()
    try:
        upload = export_mesh_glb(context, mesh_obj, work_dir / f"{bpy.path.clean_name(mesh_obj.name)}.glb")
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    import_result = partial(_import_mesh_result, mesh_obj.session_uid, mesh_obj.name, client.url)
    return _activate(RemoteJob(client, "mesh", upload, job_options(context), work_dir, import_result))


def check_mesh_to_rig(mesh_obj: bpy.types.Object | None) -> None:
    """RemoteError unless `mesh_obj` is a mesh that Rig Selected Mesh can rig."""
    if mesh_obj is None or mesh_obj.type != "MESH":
        raise RemoteError("select the mesh to rig first (an object of type Mesh)")
    if any(m.type == "ARMATURE" for m in mesh_obj.modifiers):
        raise RemoteError(
            f"the mesh {mesh_obj.name!r} already has an Armature modifier; remove it to rig the mesh again"
        )


def object_by_uid(session_uid: int) -> bpy.types.Object | None:
    """The object with this `session_uid` (stable across renames within a session), if it still exists."""
    return next((obj for obj in bpy.data.objects if obj.session_uid == session_uid), None)


def _import_image_result(
    target_height: float, name: str, url: str, zip_path: Path, status: JobStatus
) -> list[bpy.types.Object]:
    bundle = read_result(zip_path)
    try:
        source = f"backend job {status.id} at {url}"
        rig = importer.build_rig(bundle, context=bpy.context, target_height=target_height, name=name, source=source)
    except importer.RigImportError as error:
        raise ResultRejected(str(error)) from error
    return [rig.armature, rig.mesh]


def _import_mesh_result(
    target_uid: int, target_name: str, url: str, zip_path: Path, status: JobStatus
) -> list[bpy.types.Object]:
    target = object_by_uid(target_uid)
    if target is None:
        raise ResultRejected(f"the mesh {target_name!r} was deleted while the backend rigged it; nothing was added")
    try:
        check_mesh_to_rig(target)
    except RemoteError as error:
        raise ResultRejected(f"{error} (it changed while the backend rigged it)") from None
    source = f"backend job {status.id} at {url}"
    return AttachInBackground(bpy.context, target, read_result(zip_path), source=source)


def read_result(zip_path: Path) -> RigBundle:
    """The job's result bundle, read and checked by the shared rigcore reader (its limits bound what
    `attach_rig` then reruns on the main thread); `ResultRejected` with one sentence otherwise."""
    try:
        return importer.read_rig_bundle(zip_path)
    except importer.RigImportError as error:
        raise ResultRejected(f"the backend's rig bundle could not be read: {error}") from error


def attach_rig(
    context: bpy.types.Context, mesh_obj: bpy.types.Object, bundle: RigBundle, *, source: str = "", progress=None
) -> bpy.types.Object:
    """Build the bundle's armature onto `mesh_obj` (bundle frame = Blender world, as uploaded) and skin
    the object's own vertices with the bundle's skinning method and parameters; returns the armature.
    All or nothing (`importer.build_rig`); failures are `ResultRejected`. Blocking (scripts and tests;
    the Rig Selected Mesh job solves the weights on a worker thread: `AttachInBackground`).
    progress: the skinning's `update(fraction, message)`."""
    vertices, triangles = _rest_arrays(context, mesh_obj)
    try:
        skin = _skin(bundle, vertices, triangles, progress)
    except SkinningError as error:
        raise _rejected(mesh_obj.name, error) from error
    return _build_onto(context, mesh_obj, bundle, skin, source)


class AttachInBackground:
    """`attach_rig` as a `client.ImportInProgress`: the object's vertices are read here (main thread),
    the weights are solved on a worker thread (`background.BackgroundTask`, cancellable at each
    progress report), and the `step()` that finds them done builds the rig on the main thread, unless
    the object was deleted or its vertices changed meanwhile (then nothing is added)."""

    def __init__(self, context, mesh_obj: bpy.types.Object, bundle: RigBundle, *, source: str = "") -> None:
        self.value: list[bpy.types.Object] | None = None
        self.message = f"skinning {mesh_obj.name!r}"
        self._uid, self._name, self._bundle, self._source = mesh_obj.session_uid, mesh_obj.name, bundle, source
        vertices, triangles = _rest_arrays(context, mesh_obj)
        self._vertex_count = len(vertices)
        self._task = BackgroundTask(lambda progress: _skin(bundle, vertices, triangles, progress)).start()

    @property
    def fraction(self) -> float:
        return self._task.progress.fraction

    def cancel(self) -> None:
        self._task.cancel()

    def step(self) -> bool:
        if not self._task.finished:
            return False
        try:
            skin = self._task.result()
        except Cancelled:
            raise ResultRejected("the weights were not solved (cancelled); nothing was added") from None
        except SkinningError as error:
            raise _rejected(self._name, error) from error
        _leave_edit_mode(bpy.context)  # before the check: leaving edit mode writes its changes to the mesh
        target = object_by_uid(self._uid)
        if target is None:
            raise ResultRejected(
                f"the mesh {self._name!r} was deleted while its weights were solved; nothing was added"
            )
        if len(target.data.vertices) != self._vertex_count:
            raise ResultRejected(
                f"the mesh {target.name!r} was edited while its weights were solved; nothing was added"
            )
        self.value = [_build_onto(bpy.context, target, self._bundle, skin, self._source)]
        return True


def _rest_arrays(context, mesh_obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) world-space vertices (the bundle's frame) and (T, 3) triangles of the object's own mesh."""
    _leave_edit_mode(context)
    return mesh_arrays(mesh_obj, np.eye(4))


def _leave_edit_mode(context) -> None:
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")  # edit-mode changes reach the mesh data


def _skin(bundle: RigBundle, vertices: np.ndarray, triangles: np.ndarray, progress) -> SkinWeights:
    """The bundle's skinning (method, parameters, k) rerun on these vertices: numpy only, any thread."""
    return compute_skin_weights(
        vertices,
        bundle.skeleton,
        k=bundle.skin.k,
        faces=triangles,
        progress=progress,
        **skin_kwargs(bundle.skin.method, bundle.skin.params),
    )


def _build_onto(context, mesh_obj, bundle: RigBundle, skin: SkinWeights, source: str) -> bpy.types.Object:
    try:
        return importer.build_rig(bundle, context=context, onto=mesh_obj, skin=skin, source=source).armature
    except importer.RigImportError as error:
        raise _rejected(mesh_obj.name, error) from error


def _rejected(name: str, error: Exception) -> ResultRejected:
    return ResultRejected(f"building the rig onto {name!r} failed and the scene was left unchanged: {error}")


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
                filepath=str(path),
                export_format="GLB",
                use_selection=True,
                export_yup=True,
                export_apply=True,
                export_skins=False,
                export_animations=False,
                export_morph=False,
            )
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


# --------------------------------------------------------------------------- models on the backend


def models_listing() -> dict:
    """The latest GET /v1/models answer ({} before the first refresh)."""
    if _models_watch is not None and _models_watch.listing:
        return _models_watch.listing
    return _models


def refresh_models(context: bpy.types.Context) -> dict:
    """Ask the backend which weight files it has (and which it can download)."""
    global _models
    _models = make_client(context).models()
    return _models


def models_watch() -> ModelsWatch | None:
    """The model download started from this session, if any."""
    return _models_watch


def start_model_download(context: bpy.types.Context, name: str, hub_token: str = "") -> ModelsWatch:
    """Start downloading weight entry `name` on the backend and watch it (see `client.models`)."""
    global _models_watch
    if _models_watch is not None and not _models_watch.finished:
        raise RemoteError(f"{_models_watch.name} is still downloading; wait for it or cancel it first")
    _models_watch = ModelsWatch(make_client(context), name, hub_token).start()
    return _models_watch


# --------------------------------------------------------------------------- local backend


def backend_log_path() -> Path:
    """backend.log in the extension's user folder (`bpy.utils.extension_path_user`); for the add-on
    run from the source tree (no extension), in Blender's user config folder."""
    from .preferences import ADDON_ID

    try:
        folder = bpy.utils.extension_path_user(ADDON_ID, path="logs", create=True)
    except ValueError:  # "The package does not name an extension"
        folder = bpy.utils.user_resource("CONFIG", path="keydiff3d_logs", create=True)
    return Path(folder) / "backend.log"


def backend_launcher() -> BackendLauncher | None:
    """The backend process started from this Blender session, if any."""
    return _launcher


def start_local_backend(context: bpy.types.Context) -> BackendLauncher | None:
    """Start the preferences' command, watched until `/v1/health` answers or the process exits.
    None when a backend already answers at the URL (nothing is started)."""
    global _launcher
    url = allowed_backend_url(context)
    prefs = get_preferences(context)
    if _launcher is not None and not _launcher.state.finished:
        raise RemoteError(f"the backend started {_launcher.elapsed:.0f} s ago is still starting")
    try:
        check_backend(url, token=prefs.token, start_command=prefs.start_command, timeout=1.0)
        return None
    except BackendUnreachable:
        pass
    _launcher = BackendLauncher(prefs.start_command, url, backend_log_path(), token=prefs.token).start()
    return _launcher
