# SPDX-License-Identifier: GPL-3.0-or-later
"""One backend job from submission to its result, without Blender (bpy-free, stdlib only).

A `RemoteJob` owns one backend job. Its worker thread does all HTTP (submit, poll, cancel, download)
and only puts `JobStatus` answers and outcomes on a queue; `drain()` runs on the caller's thread
(Blender's main thread, from a modal operator's timer, or directly in scripts and tests) and calls
`import_result(zip_path, status)` there, so every bpy change stays on the main thread. An import
that needs long numpy work (Rig Selected Mesh solves the weights on the user's own vertices) returns
an `ImportInProgress` instead of its result: the work runs on a thread of its own, later drains step
it, show its progress and pass a cancel on, and its last step changes the scene on the main thread.
The job's work folder (`keydiff3d-job-*` in the temp folder: the upload, the downloaded zip) is
deleted when the job ends, whatever the outcome; `clean_stale_work_dirs` removes the folders that
a crashed session left behind.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .health import BackendUnreachable
from .http import BackendClient, BackendError, JobStatus

POLL_INTERVAL_S = 0.5  # how often the worker asks the backend for the job's state
WORK_DIR_PREFIX = "keydiff3d-job-"
CANCELLED_SENTENCE = "KeyDiff3D: the job was cancelled."
STALE_AFTER_S = 24 * 3600  # a work folder this old belongs to no running job (jobs take minutes)
CANCEL_DEADLINE_S = 60.0  # how long the worker waits for the backend to stop a cancelled job
IMPORT_SHARE = 0.1  # the end of the progress bar that an import in progress fills (the backend's job: the rest)


class ResultRejected(RuntimeError):
    """`import_result` could not use the job's result (one sentence; nothing was added to the scene)."""


@runtime_checkable
class ImportInProgress(Protocol):
    """What `import_result` returns for an import that goes on over several drains. `step()` runs on
    the caller's (main) thread: True once it is over, `value` then holds the result (ResultRejected:
    nothing was added). `cancel()` asks it to stop (its next step then raises ResultRejected);
    `fraction` (0-1) and `message` describe it meanwhile."""

    value: Any
    fraction: float
    message: str

    def step(self) -> bool: ...

    def cancel(self) -> None: ...


@dataclass
class _Outcome:
    kind: str  # "status" | "result" | "error"
    status: JobStatus | None = None
    path: Path | None = None
    message: str = ""
    last: bool = False  # the worker's last report: it touches neither the backend nor the work folder after it


def new_work_dir() -> Path:
    """A fresh `keydiff3d-job-*` folder in the temp folder (stale ones are cleaned first)."""
    clean_stale_work_dirs()
    return Path(tempfile.mkdtemp(prefix=WORK_DIR_PREFIX))


def clean_stale_work_dirs(older_than_s: float = STALE_AFTER_S, root: Path | None = None) -> list[Path]:
    """Delete `keydiff3d-job-*` folders not touched for `older_than_s` seconds; returns those removed."""
    root = Path(root or tempfile.gettempdir())
    cutoff = time.time() - older_than_s
    removed = []
    for folder in root.glob(f"{WORK_DIR_PREFIX}*"):
        try:
            if folder.is_dir() and not folder.is_symlink() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder)
                removed.append(folder)
        except OSError:
            continue  # another session's folder in use, or already gone
    return removed


def format_elapsed(seconds: float) -> str:
    """ "0:07", "12:34", "1:02:03"."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RemoteJob:
    """One backend job. kind: "image" or "mesh"; upload: the file sent; work_dir: deleted when the job ends;
    import_result(zip_path, status): turns the downloaded bundle into the result (may raise `ResultRejected`),
    or returns an `ImportInProgress` that later drains step until it holds the result.

    After `drain` returned True: `result` holds what `import_result` returned, or `error` a sentence.
    """

    def __init__(
        self,
        client: BackendClient,
        kind: str,
        upload: Path,
        options: dict,
        work_dir: Path,
        import_result: Callable[[Path, JobStatus], Any],
    ) -> None:
        self.client, self.kind, self.upload, self.options, self.work_dir = client, kind, upload, options, work_dir
        self.import_result = import_result
        self.status: JobStatus | None = None
        self.error: str | None = None
        self.result: Any = None
        self.cancelled = False
        self.finished = False
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.importing: ImportInProgress | None = None
        self._outcomes: queue.Queue[_Outcome] = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._work, name="keydiff3d-remote-job", daemon=True)

    # -- caller's (main) thread ----------------------------------------------------------------
    def start(self) -> "RemoteJob":
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask for cancellation; the worker cancels the job on the backend and reports back (an import
        in progress stops at its next step, adding nothing)."""
        self._cancel.set()
        if self.importing is not None:
            self.importing.cancel()

    @property
    def progress(self) -> float:
        """0-1 over the whole job, never going back: the backend's job, then an import in progress."""
        if self.importing is not None:
            return 1.0 - IMPORT_SHARE + IMPORT_SHARE * self.importing.fraction
        return (1.0 - IMPORT_SHARE) * (self.status.progress if self.status is not None else 0.0)

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at

    def describe(self) -> str:
        """One line for the status bar and the panel: state, stage, percent and elapsed time."""
        if self.error:
            return self.error
        clock = format_elapsed(self.elapsed)
        if self.importing is not None:
            return f"KeyDiff3D: {self.importing.message} - {100 * self.importing.fraction:.0f}% ({clock})"
        if self.status is None:
            return f"KeyDiff3D: sending to the backend... ({clock})"
        if self.status.status == "queued":
            position = self.status.queue_position
            return f"KeyDiff3D: queued{'' if position is None else f' ({position} ahead)'} ({clock})"
        stage = self.status.stage or self.status.status
        detail = f": {self.status.message}" if self.status.message and self.status.message != stage else ""
        return f"KeyDiff3D: {stage}{detail} - {100 * self.status.progress:.0f}% ({clock})"

    def drain(self) -> bool:
        """Apply what the worker reported; on success call `import_result` (and step what it left in
        progress). True once the job is over; the work folder is gone by then."""
        if self.importing is not None and not self.finished:
            self._step_import()
        while not self.finished and self.importing is None:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                break
            if outcome.status is not None:
                self.status = outcome.status
            if outcome.kind == "error":
                self._finish(error=outcome.message)
            elif self._cancel.is_set():
                # after a cancel nothing is imported, even when the job finished first; the job ends on the
                # worker's last report, after which it writes nothing more into the work folder
                if outcome.last:
                    failed = outcome.status is not None and outcome.status.status == "failed"
                    self.cancelled = not failed
                    self._finish(error=failure_sentence(outcome.status, self.kind) if failed else CANCELLED_SENTENCE)
            elif outcome.kind == "result":
                self._import(lambda path=outcome.path, status=outcome.status: self.import_result(path, status))
            elif outcome.status is not None and outcome.status.status in ("failed", "cancelled"):
                self.cancelled = outcome.status.status == "cancelled"
                self._finish(error=failure_sentence(outcome.status, self.kind))
        return self.finished

    def _import(self, call: Callable[[], Any]) -> None:
        """Run one import call on this thread; finish the job unless it left an import in progress."""
        try:
            value = call()
        except ResultRejected as error:
            self.importing = None
            self._finish(error=CANCELLED_SENTENCE if self._cancel.is_set() else str(error))
            self.cancelled = self._cancel.is_set()
            return
        except BaseException:
            self.importing = None
            self._finish(error="KeyDiff3D: importing the result failed (see the console)")
            raise
        if isinstance(value, ImportInProgress):
            self.importing = value
            if self._cancel.is_set():
                value.cancel()
        else:
            self.importing = None
            self.result = value
            self._finish()

    def _step_import(self) -> None:
        importing = self.importing
        self._import(lambda: importing.value if importing.step() else importing)

    def wait(self, timeout: float = 300.0) -> bool:
        """Drain until the job is over, blocking (scripts and tests; the UI drains from a timer).
        True when it succeeded."""
        deadline = time.monotonic() + timeout
        while not self.drain():
            if time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"the backend job did not finish within {timeout:.0f} s")
            time.sleep(0.05)
        return self.error is None

    def _finish(self, error: str | None = None) -> None:
        self.error, self.finished, self.finished_at = error, True, time.monotonic()
        shutil.rmtree(self.work_dir, ignore_errors=True)  # the worker wrote its last file before reporting

    # -- worker thread: HTTP only ----------------------------------------------------------------
    def _work(self) -> None:
        try:
            status = self.client.submit(self.kind, self.upload, self.options)
            self._outcomes.put(_Outcome("status", status))
            while not status.finished:
                if self._cancel.wait(POLL_INTERVAL_S):
                    status = self.client.cancel(status.id)
                    self._outcomes.put(_Outcome("status", status))
                    deadline = time.monotonic() + CANCEL_DEADLINE_S
                    while not status.finished:  # a running job stops at its next cancellation point
                        if time.monotonic() > deadline:
                            message = (
                                f"KeyDiff3D: the backend did not stop the job within {CANCEL_DEADLINE_S:.0f} s; "
                                "it may still be running there."
                            )
                            self._outcomes.put(_Outcome("error", status, message=message, last=True))
                            return
                        time.sleep(POLL_INTERVAL_S)  # (the set event no longer paces the loop)
                        status = self.client.status(status.id)
                        self._outcomes.put(_Outcome("status", status))
                    break
                status = self.client.status(status.id)
                self._outcomes.put(_Outcome("status", status))
            if status.status == "done" and not self._cancel.is_set():  # done as the cancel arrived: not imported
                path = self.client.download_result(status.id, self.work_dir / f"{status.id}.zip")
                self._outcomes.put(_Outcome("result", status, path, last=True))
            else:
                self._outcomes.put(_Outcome("status", status, last=True))
        except (BackendError, BackendUnreachable, OSError) as error:
            self._outcomes.put(_Outcome("error", message=str(error), last=True))
        except Exception as error:  # a bug here must reach the user as a sentence, not a dead thread
            message = f"KeyDiff3D: unexpected error while talking to the backend ({type(error).__name__}: {error})"
            self._outcomes.put(_Outcome("error", message=message, last=True))


def failure_sentence(status: JobStatus, kind: str) -> str:
    if status.status == "cancelled":
        return CANCELLED_SENTENCE
    message = (status.error or {}).get("message", "no reason given")
    return f"The backend could not rig this {kind}: {message}"
