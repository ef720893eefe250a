# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on's side of the KeyDiff3D backend, without Blender: importable and tested without bpy
(as Blender's glTF add-on keeps `io/` apart from `blender/`). Standard library only.

- `urls`: backend URLs as users type them -> one normalised form, loopback test.
- `health`: `GET /v1/health` with a short timeout -> `Health` or `BackendUnreachable`.
- `http`: `BackendClient` (jobs, results, models), `JobStatus`, errors.
- `jobs`: `RemoteJob`, the job state machine (worker thread + queue, drained on the caller's thread),
  its work folders and their cleanup.
- `launcher`: `BackendLauncher`, a local backend process watched until it answers or exits.
- `models`: `ModelsWatch`, a model download on the backend watched until it ends.

The Blender side (`remote.py`, `backend_operators.py`, `panels.py`) turns these into operators.
"""

from .health import BackendUnreachable, Health, check_backend
from .http import BackendClient, BackendError, JobStatus, VersionMismatch
from .jobs import ImportInProgress, RemoteJob, ResultRejected, clean_stale_work_dirs, new_work_dir
from .launcher import BackendLauncher, LaunchError, LaunchState
from .models import ModelsWatch
from .urls import BadBackendUrl, is_loopback, normalise_backend_url

__all__ = [
    "BackendClient",
    "BackendError",
    "BackendLauncher",
    "BackendUnreachable",
    "BadBackendUrl",
    "Health",
    "ImportInProgress",
    "JobStatus",
    "LaunchError",
    "LaunchState",
    "ModelsWatch",
    "RemoteJob",
    "ResultRejected",
    "VersionMismatch",
    "check_backend",
    "clean_stale_work_dirs",
    "is_loopback",
    "new_work_dir",
    "normalise_backend_url",
]
