"""Jobs on disk: one folder per job holding job.json, the uploaded input and, when done, result.zip.

The in-memory table is the live truth; every state change is written through to job.json
(atomically), so a restarted server serves finished results and knows which jobs were interrupted.

    DATA_DIR/jobs/<id>/job.json      the JobRecord
    DATA_DIR/jobs/<id>/input.<ext>   the upload, exactly as received
    DATA_DIR/jobs/<id>/work/         the pipeline's bundle directory while running
    DATA_DIR/jobs/<id>/result.zip    the bundle (files at the zip root), once done
    DATA_DIR/quarantine/<id>/        a job folder whose job.json could not be trusted at a restart

Nothing read back from disk is trusted further than it is checked: the folder's name is the job's
id (job.json's own `id` must agree), the input is the store's own `input.<ext>` inside that folder,
and every field has its type and range. A folder that fails is quarantined and logged, never fatal.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..image_io import IMAGE_FORMATS
from ..mesh_io import MESH_FORMATS

log = logging.getLogger("keydiff3d.service")

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
# the only input names create() writes: input.<an image suffix or a mesh format>
INPUT_FILE = re.compile(rf"input\.({'|'.join([*IMAGE_FORMATS.values(), *MESH_FORMATS])})")


@dataclass
class JobRecord:
    """One job. `error` is {"code", "message"} for failed jobs; `progress` is 0..1 of the whole run."""

    id: str
    kind: str  # "image" | "mesh"
    input_file: str  # file name inside the job folder
    options: dict[str, Any]
    status: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    message: str = ""
    error: dict[str, str] | None = None
    cancel_requested: bool = False
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def public(self, queue_position: int | None = None) -> dict[str, Any]:
        """The JSON the API returns for GET /v1/jobs/{id}."""
        data = {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "stage": self.stage,
            "progress": round(self.progress, 4),
            "message": self.message,
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "timings": self.timings,
        }
        if queue_position is not None:
            data["queue_position"] = queue_position
        return data

    @classmethod
    def from_json(cls, job_id: str, data: Any) -> JobRecord:
        """The record of job folder `job_id` from its job.json, every field checked; ValueError names
        the first one that is wrong (the id must be the folder's, the input one of INPUT_FILE)."""
        if not isinstance(data, dict):
            raise ValueError("job.json does not hold a JSON object")
        if data.get("id") != job_id:
            raise ValueError(f"job.json names the job {data.get('id')!r:.40}, not its folder's id")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("kind", "input_file", "options"):
            if name not in values:
                raise ValueError(f"job.json has no {name!r}")
        for name, value in values.items():
            if not _FIELD_CHECKS[name](value):
                raise ValueError(f"job.json {name} is {value!r:.40}")
        return cls(**values)


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


ERROR_KEYS = ("code", "message")
_FIELD_CHECKS = {
    "id": lambda v: isinstance(v, str) and bool(JOB_ID.match(v)),
    "kind": lambda v: v in ("image", "mesh"),
    "input_file": lambda v: isinstance(v, str) and bool(INPUT_FILE.fullmatch(v)),
    "options": lambda v: isinstance(v, dict),
    "status": lambda v: v in ACTIVE + FINISHED,
    "stage": lambda v: isinstance(v, str),
    "progress": lambda v: _finite(v) and 0 <= v <= 1,
    "message": lambda v: isinstance(v, str),
    "error": lambda v: v is None or (isinstance(v, dict) and all(isinstance(v.get(k), str) for k in ERROR_KEYS)),
    "cancel_requested": lambda v: isinstance(v, bool),
    "created_at": _finite,
    "started_at": lambda v: v is None or _finite(v),
    "finished_at": lambda v: v is None or _finite(v),
    "timings": lambda v: isinstance(v, dict) and all(_finite(t) for t in v.values()),
}


class JobStore:
    """Thread-safe job table backed by DATA_DIR/jobs. Ids are uuid4 hex strings (nothing path-like)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir).resolve() / "jobs"
        self.quarantine = self.root.parent / "quarantine"
        self.root.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, JobRecord] = {}
        self._lock = threading.RLock()

    # -- paths ---------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):  # never build a path from an unchecked id
            raise KeyError(job_id)
        return self.root / job_id

    def input_path(self, record: JobRecord) -> Path:
        return self.job_dir(record.id) / record.input_file

    def result_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "result.zip"

    def work_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "work"

    # -- records -------------------------------------------------------------------------------
    def create(self, kind: str, input_suffix: str, data: bytes, options: dict[str, Any]) -> JobRecord:
        record = JobRecord(id=uuid.uuid4().hex, kind=kind, input_file=f"input.{input_suffix}", options=options)
        folder = self.job_dir(record.id)
        folder.mkdir()
        try:
            (folder / record.input_file).write_bytes(data)
            with self._lock:
                self._save(record)
                self._jobs[record.id] = record
        except BaseException:  # e.g. the disk filled up: leave no half-made job behind
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return record

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            record = self._jobs.get(job_id) if JOB_ID.match(job_id) else None
            return dataclasses.replace(record) if record else None

    def update(self, job_id: str, persist: bool = True, **changes: Any) -> JobRecord:
        """Apply `changes` to a job; `persist=False` skips the disk write (frequent progress ticks)."""
        with self._lock:
            record = self._jobs[job_id]
            for name, value in changes.items():
                setattr(record, name, value)
            if persist:
                self._save(record)
            return dataclasses.replace(record)

    def all(self) -> list[JobRecord]:
        with self._lock:
            return sorted((dataclasses.replace(r) for r in self._jobs.values()), key=lambda r: r.created_at)

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def _save(self, record: JobRecord) -> None:
        path = self.job_dir(record.id) / "job.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(record), indent=1))
        os.replace(tmp, path)  # atomic: a kill never leaves half a job.json

    # -- restart -------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Load every job from disk after a (re)start. Jobs that were running are marked failed;
        queued ones are returned, oldest first, to be queued again. Never fatal: a folder whose
        job.json is unreadable or fails `JobRecord.from_json` is quarantined and logged; a folder
        without job.json (a submission cut off before it was accepted: job.json is written before
        the 202) is removed, and so are half-written files (*.tmp) of a killed process."""
        requeue: list[str] = []
        for folder in sorted(self.root.iterdir()):
            if not JOB_ID.match(folder.name) or not folder.is_dir():
                log.warning("ignoring an entry that is not a job folder", extra={"path": str(folder)})
                continue
            for leftover in ("job.json.tmp", "result.zip.tmp"):
                (folder / leftover).unlink(missing_ok=True)
            path = folder / "job.json"
            if not path.is_file():
                log.warning("removing a job folder without job.json (never accepted)", extra={"job": folder.name})
                shutil.rmtree(folder, ignore_errors=True)
                continue
            try:
                record = JobRecord.from_json(folder.name, json.loads(path.read_bytes()))
            except (OSError, ValueError, RecursionError) as error:  # JSON and UTF-8 errors are ValueErrors
                self._quarantine(folder, f"{type(error).__name__}: {error}")
                continue
            if record.status == "running":
                record.status, record.stage, record.finished_at = "failed", "interrupted", time.time()
                record.error = {
                    "code": "interrupted",
                    "message": "the backend stopped while this job was running; submit it again",
                }
                shutil.rmtree(folder / "work", ignore_errors=True)
            elif record.status == "queued":
                requeue.append(record.id)
            with self._lock:
                self._jobs[record.id] = record
                self._save(record)
        requeue.sort(key=lambda job_id: self._jobs[job_id].created_at)
        return requeue

    def _quarantine(self, folder: Path, reason: str) -> None:
        """Move a job folder that cannot be trusted out of jobs/ for its owner to inspect."""
        self.quarantine.mkdir(exist_ok=True)
        target = self.quarantine / folder.name
        for n in range(1, 1000):
            if not target.exists():
                break
            target = self.quarantine / f"{folder.name}-{n}"
        try:
            folder.rename(target)
        except OSError as error:
            extra = {"job": folder.name, "reason": reason, "error": str(error)}
            log.error("could not quarantine a corrupt job folder", extra=extra)
            return
        extra = {"job": folder.name, "reason": reason, "moved_to": str(target)}
        log.warning("quarantined a corrupt job folder", extra=extra)

    def prune(self, keep: int) -> None:
        """Delete the oldest finished jobs beyond the newest `keep` finished ones (disk hygiene)."""
        finished = [r for r in self.all() if r.status in FINISHED]
        for record in finished[: max(0, len(finished) - keep)]:
            self.delete(record.id)
