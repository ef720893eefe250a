"""Restarting `keydiff3d serve` over corrupt or tampered job folders: the server always starts, never
trusts job.json's own `id` or `input_file`, quarantines what it cannot trust (logged), cleans what a
killed process left half-written, and keeps serving the good jobs. Issue 11, faults 1, 2, 4 (the
queued job's input file), 14 and 22 (leftovers). Each test restarts a real server on its own copy
of a real finished job.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import httpx
import pytest
from pipeline_support import creature_glb_bytes, write_tiny_checkpoint
from service_support import Server, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny.safetensors")


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory, checkpoint) -> Path:
    """The folder of a real finished job (job.json, input.glb, result.zip) of a stopped server."""
    root = tmp_path_factory.mktemp("finished")
    server = Server(root / "data", root / "home", "--checkpoint", str(checkpoint), "--no-warm-up").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            job_id = client.post("/v1/jobs", files={"mesh": ("creature.glb", creature_glb_bytes("bird", 2))}).json()[
                "id"
            ]
            assert wait_for(client, job_id)["status"] == "done"
    finally:
        server.stop()
    return root / "data" / "jobs" / job_id


class Restart:
    """A data folder holding a copy of the finished job, to tamper with, then a server started on it."""

    def __init__(self, tmp_path: Path, finished_job: Path, checkpoint: Path) -> None:
        self.tmp_path, self.checkpoint = tmp_path, checkpoint
        self.data = tmp_path / "data"
        self.good = finished_job.name
        shutil.copytree(finished_job, self.jobs / self.good)
        self.good_doc = json.loads((self.jobs / self.good / "job.json").read_text())
        self.server: Server | None = None

    @property
    def jobs(self) -> Path:
        return self.data / "jobs"

    def job_folder(self, job_id: str | None = None, doc=None, raw: bytes | None = None, **changes) -> str:
        """A job folder `job_id` (new by default) with job.json = raw bytes, `doc`, or the good job's
        record with `changes` (its id set to the folder's unless changed); returns the folder name."""
        job_id = job_id or uuid.uuid4().hex
        folder = self.jobs / job_id
        folder.mkdir(parents=True)
        if raw is None:
            doc = doc if doc is not None else {**self.good_doc, "id": job_id, **changes}
            raw = json.dumps(doc).encode()
        (folder / "job.json").write_bytes(raw)
        shutil.copy(self.jobs / self.good / "input.glb", folder / "input.glb")
        return job_id

    def start(self) -> httpx.Client:
        self.server = Server(
            self.data, self.tmp_path / "home", "--checkpoint", str(self.checkpoint), "--no-warm-up"
        ).start()
        return httpx.Client(base_url=self.server.url, timeout=60.0)

    def log(self) -> list[dict]:
        return [json.loads(line) for line in self.server.log.read_text().splitlines() if line.startswith("{")]

    def quarantined(self) -> set[str]:
        folder = self.data / "quarantine"
        return {p.name for p in folder.iterdir()} if folder.is_dir() else set()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def restart(tmp_path, finished_job, checkpoint):
    restart = Restart(tmp_path, finished_job, checkpoint)
    yield restart
    restart.stop()


def assert_good_job_intact(client: httpx.Client, restart: Restart, result: bytes) -> None:
    job = client.get(f"/v1/jobs/{restart.good}").json()
    assert job["status"] == "done" and job["error"] is None
    answer = client.get(f"/v1/jobs/{restart.good}/result")
    assert answer.status_code == 200 and answer.content == result


def test_fault1_a_job_json_copied_under_another_id_leaves_the_original_alone(restart):
    result = (restart.jobs / restart.good / "result.zip").read_bytes()
    original = (restart.jobs / restart.good / "job.json").read_bytes()
    copy = {**restart.good_doc, "status": "failed", "error": {"code": "internal", "message": "tampered"}}
    impostor = restart.job_folder("f" * 32, doc=copy)  # read after the original: it would overwrite it
    with restart.start() as client:
        assert_good_job_intact(client, restart, result)
        assert (restart.jobs / restart.good / "job.json").read_bytes() == original  # not rewritten from the copy
        assert client.get(f"/v1/jobs/{impostor}").status_code == 404
        assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]] == [restart.good]
    assert impostor in restart.quarantined() and not (restart.jobs / impostor).exists()
    warnings = [e for e in restart.log() if e["msg"] == "quarantined a corrupt job folder"]
    assert [w["job"] for w in warnings] == [impostor] and "not its folder's id" in warnings[0]["reason"]


def test_fault2_job_files_that_are_not_records_are_quarantined_not_fatal(restart):
    result = (restart.jobs / restart.good / "result.zip").read_bytes()
    bad = [
        restart.job_folder(raw=b"[]"),
        restart.job_folder(raw=b"null"),
        restart.job_folder(raw=b'"x"'),
        restart.job_folder(raw=b'{"id": "trunc'),
        restart.job_folder(raw=b"\xff\xfe not text"),
        restart.job_folder(raw=b"[" * 100_000),
        restart.job_folder(id="../../x"),
        restart.job_folder(id=uuid.uuid4().hex),  # the id of a folder that does not exist
        restart.job_folder(id=None),
        restart.job_folder(doc={"id": "0" * 32}),
    ]
    with restart.start() as client:  # before: the server exited (code 3) on the first of these
        assert_good_job_intact(client, restart, result)
        assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]] == [restart.good]
        for job_id in bad:
            assert client.get(f"/v1/jobs/{job_id}").status_code == 404
        assert (
            client.post("/v1/jobs", files={"mesh": ("c.glb", creature_glb_bytes())}).status_code == 202
        )  # and takes work
    assert restart.quarantined() == set(bad)
    assert {e["job"] for e in restart.log() if e["msg"] == "quarantined a corrupt job folder"} == set(bad)


def test_fault14_records_with_wrong_field_types_are_quarantined(restart):
    result = (restart.jobs / restart.good / "result.zip").read_bytes()
    bad = [
        restart.job_folder(created_at="yesterday"),
        restart.job_folder(progress="high"),
        restart.job_folder(progress=7.5),
        restart.job_folder(status="exploded"),
        restart.job_folder(timings={"views": "slow"}),
        restart.job_folder(error="oops"),
        restart.job_folder(kind="video"),
        restart.job_folder(options=[]),
        restart.job_folder(started_at=10**400),
    ]
    with restart.start() as client:
        listing = client.get("/v1/jobs")  # before: a permanent 500 here and on GET /v1/jobs/{id}
        assert listing.status_code == 200 and [j["id"] for j in listing.json()["jobs"]] == [restart.good]
        for job_id in bad:
            assert client.get(f"/v1/jobs/{job_id}").status_code == 404
        assert_good_job_intact(client, restart, result)
    assert restart.quarantined() == set(bad)


def test_fault4_a_queued_job_never_reads_an_input_outside_its_folder(restart):
    outside = restart.data / "outside.glb"
    outside.write_bytes(creature_glb_bytes("quadruped", 5))  # a valid mesh: reading it would "work"
    queued = {
        "status": "queued",
        "stage": "queued",
        "progress": 0.0,
        "started_at": None,
        "finished_at": None,
        "timings": {},
    }
    escapes = [
        restart.job_folder(**queued, input_file="../../outside.glb"),
        restart.job_folder(**queued, input_file=str(outside)),
        restart.job_folder(**queued, input_file="job.json"),
    ]
    fine = restart.job_folder(**queued)
    with restart.start() as client:
        assert wait_for(client, fine)["status"] == "done"  # a queued job of its own resumes
        for job_id in escapes:
            assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert restart.quarantined() == set(escapes)
    assert not any("job started" == e["msg"] and e.get("job") in escapes for e in restart.log())


def test_fault22_half_written_leftovers_are_cleaned_at_start(restart):
    result = (restart.jobs / restart.good / "result.zip").read_bytes()
    (restart.jobs / restart.good / "result.zip.tmp").write_bytes(result[:100])  # killed while zipping
    (restart.jobs / restart.good / "job.json.tmp").write_text("{")  # killed while saving
    unaccepted = uuid.uuid4().hex  # killed between writing the upload and its job.json: never answered 202
    (restart.jobs / unaccepted).mkdir()
    (restart.jobs / unaccepted / "input.glb").write_bytes(creature_glb_bytes())
    (restart.jobs / "notes.txt").write_text("the owner's own file")
    with restart.start() as client:
        assert_good_job_intact(client, restart, result)
    assert sorted(p.name for p in (restart.jobs / restart.good).iterdir()) == ["input.glb", "job.json", "result.zip"]
    assert not (restart.jobs / unaccepted).exists()
    assert (restart.jobs / "notes.txt").read_text() == "the owner's own file"  # not a job folder: left alone
    assert restart.quarantined() == set()
