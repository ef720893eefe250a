"""One worker thread behind a FIFO queue runs the jobs, one at a time (one GPU per process).

The worker is the only writer of a running job's progress; the API thread only reads the store and
sets cancellation events. Pipeline errors become the job's {"code", "message"}; anything unexpected
becomes an "internal" error with the traceback in the log, and the worker carries on.
"""

from __future__ import annotations

import logging
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from keydiff3d_addon.rigcore import zip_bundle

from ..errors import Cancelled, KeyDiff3DError
from ..progress import Progress
from .store import JobRecord, JobStore

log = logging.getLogger("keydiff3d.service")

# (record, input file, empty work folder, progress) -> folder holding the finished bundle
Runner = Callable[[JobRecord, Path, Path, Progress], Path]

PERSIST_EVERY_S = 0.5  # progress ticks are frequent; job.json is rewritten at most this often


def pipeline_runner(device: str = "auto", checkpoint: str | None = None) -> Runner:
    """The production runner: the mesh or image pipeline on the uploaded file, on the server's
    device and checkpoint (clients choose neither: they cannot make the server read arbitrary files)."""

    def run(record: JobRecord, input_path: Path, work_dir: Path, progress: Progress) -> Path:
        from ..errors import InputError
        from ..image_io import load_image
        from ..mesh_io import load_mesh
        from ..pipeline.options import PipelineOptions
        from ..pipeline.run import run_image_pipeline, run_mesh_pipeline

        options = PipelineOptions.from_dict({**record.options, "device": device, "checkpoint": checkpoint})
        if not input_path.is_file():
            raise InputError("the job's upload is gone from the server's data folder; submit it again")
        data = input_path.read_bytes()  # as bytes, exactly as checked at upload: nothing beside it is read
        if record.kind == "mesh":
            mesh = load_mesh(data, input_path.suffix.lstrip("."), up_axis=options.up_axis)
            return run_mesh_pipeline(mesh, options, progress, out_dir=work_dir).bundle_dir
        return run_image_pipeline(load_image(data), options, progress, out_dir=work_dir).bundle_dir

    return run


def write_result_zip(bundle_dir: Path, zip_path: Path) -> None:
    """Zip a bundle folder (files at the zip root, the bundle contract) under its final name atomically."""
    tmp = zip_bundle(bundle_dir, zip_path.with_suffix(".zip.tmp"))
    tmp.replace(zip_path)


class JobWorker:
    def __init__(
        self, store: JobStore, runner: Runner, keep_jobs: int = 100, warmup: Callable[[], None] | None = None
    ) -> None:
        self.store = store
        self.runner = runner
        self.keep_jobs = keep_jobs
        self.warmup = warmup
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._order: list[str] = []  # queued ids in FIFO order, for queue positions
        self._lock = threading.Lock()
        self._cancel: dict[str, threading.Event] = {}
        self._thread = threading.Thread(target=self._loop, name="keydiff3d-worker", daemon=True)
        self.current: str | None = None
        self.ready = threading.Event()  # set once warm-up finished (models loaded)
        self._stopping = False

    # -- API side ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after cancelling the running job; queued jobs stay queued on disk for the next start."""
        self._stopping = True
        self._queue.put(None)
        current = self.current
        if current is not None and current in self._cancel:
            self._cancel[current].set()
        self._thread.join(timeout)

    def submit(self, job_id: str) -> None:
        with self._lock:
            self._cancel[job_id] = threading.Event()
            self._order.append(job_id)
        self._queue.put(job_id)

    def queue_position(self, job_id: str) -> int | None:
        """0-based position among the queued jobs; None when not queued."""
        with self._lock:
            return self._order.index(job_id) if job_id in self._order else None

    def queue_length(self) -> int:
        with self._lock:
            return len(self._order)

    def active_count(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return len(self._order) + (self.current is not None)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job at once, or ask a running one to stop at its next cancellation point."""
        with self._lock:
            record = self.store.get(job_id)
            if record is None or record.status not in ("queued", "running"):
                return record
            if record.status == "queued":
                self._order.remove(job_id)
                self._cancel.pop(job_id, None)
                return self.store.update(
                    job_id, status="cancelled", stage="cancelled", cancel_requested=True, finished_at=time.time()
                )
            event = self._cancel.get(job_id)
            if event is not None:
                event.set()
            return self.store.update(job_id, cancel_requested=True)

    # -- worker thread -------------------------------------------------------------------------
    def _loop(self) -> None:
        if self.warmup is not None:
            try:
                self.warmup()
            except Exception:  # a failed warm-up must not kill the worker; jobs report the real error
                log.exception("warm-up failed")
        self.ready.set()
        while True:
            job_id = self._queue.get()
            if job_id is None or self._stopping:  # queued jobs stay queued on disk for the next start
                return
            with self._lock:
                if job_id not in self._order:  # cancelled while queued
                    continue
                self._order.remove(job_id)
                self.current = job_id
                self.store.update(job_id, status="running", stage="starting", started_at=time.time())
            try:
                self._run(job_id)
            finally:
                self.current = None
                self._cancel.pop(job_id, None)
                self.store.prune(self.keep_jobs)

    def _run(self, job_id: str) -> None:
        record = self.store.get(job_id)
        work_dir = self.store.work_dir(job_id)
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)
        last_write = [0.0, ""]

        def on_progress(stage: str, fraction: float, message: str) -> None:
            now = time.monotonic()
            persist = stage != last_write[1] or now - last_write[0] > PERSIST_EVERY_S
            if persist:
                last_write[:] = [now, stage]
            self.store.update(job_id, persist=persist, stage=stage, progress=fraction, message=message)

        progress = Progress(on_progress, self._cancel[job_id])
        log.info("job started", extra={"job": job_id, "kind": record.kind})
        began = time.perf_counter()
        try:
            bundle_dir = self.runner(record, self.store.input_path(record), work_dir, progress)
            progress.check()  # a cancel that arrived during the last stage still wins
            write_result_zip(bundle_dir, self.store.result_path(job_id))
            timings = _read_timings(bundle_dir)
            self.store.update(
                job_id, status="done", stage="done", progress=1.0, message="", timings=timings, finished_at=time.time()
            )
            log.info("job done", extra={"job": job_id, "seconds": round(time.perf_counter() - began, 3)})
        except Cancelled:
            if self._stopping and not self.store.get(job_id).cancel_requested:
                self._fail(
                    job_id, "interrupted", "the backend was shut down while this job was running; submit it again"
                )
            else:
                self.store.update(job_id, status="cancelled", stage="cancelled", finished_at=time.time())
                log.info("job cancelled", extra={"job": job_id})
        except KeyDiff3DError as error:
            self._fail(job_id, error.code, str(error))
        except Exception as error:  # any bug must fail this job only, never the server
            if _out_of_memory(error):
                log.warning("job ran out of memory", extra={"job": job_id})
                self._fail(
                    job_id,
                    "out_of_memory",
                    "the backend ran out of (GPU) memory on this input; try a smaller image or mesh, or free the GPU",
                )
            else:
                log.exception("job crashed", extra={"job": job_id})
                self._fail(
                    job_id,
                    "internal",
                    f"the backend hit an internal error ({type(error).__name__}: {error}); see the server log",
                )
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _fail(self, job_id: str, code: str, message: str) -> None:
        self.store.update(
            job_id, status="failed", stage="failed", error={"code": code, "message": message}, finished_at=time.time()
        )
        log.info("job failed", extra={"job": job_id, "code": code, "error": message})


def _out_of_memory(error: Exception) -> bool:
    """MemoryError or torch's CUDA out-of-memory error (torch is only consulted when already loaded)."""
    torch = sys.modules.get("torch")
    return isinstance(error, MemoryError) or (torch is not None and isinstance(error, torch.cuda.OutOfMemoryError))


def _read_timings(bundle_dir: Path) -> dict[str, float]:
    import json

    try:
        return dict(json.loads((bundle_dir / "rig.json").read_text()).get("timings", {}))
    except (OSError, ValueError):
        return {}
