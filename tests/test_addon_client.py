"""The add-on's bpy-free backend client (`keydiff3d_addon.client`): URLs, the job state machine's text and
work folders, and the local backend launcher with real processes. No bpy in this module."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from service_support import ScriptedJobs, free_port

from keydiff3d_addon.client import (
    BackendClient,
    BackendLauncher,
    BadBackendUrl,
    JobStatus,
    LaunchError,
    RemoteJob,
    normalise_backend_url,
)
from keydiff3d_addon.client.jobs import (
    POLL_INTERVAL_S,
    WORK_DIR_PREFIX,
    clean_stale_work_dirs,
    format_elapsed,
    new_work_dir,
)
from keydiff3d_addon.client.urls import is_loopback


@pytest.mark.parametrize(
    "typed, url",
    [
        ("127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("  http://127.0.0.1:8765/  ", "http://127.0.0.1:8765"),
        ("localhost:9000", "http://localhost:9000"),
        ("https://gpu.example.org/keydiff3d/", "https://gpu.example.org/keydiff3d"),
        ("[::1]:8765", "http://[::1]:8765"),
        ("HTTP://Example.org", "http://example.org"),
    ],
)
def test_backend_urls_are_normalised(typed, url):
    assert normalise_backend_url(typed) == url


@pytest.mark.parametrize(
    "typed, reason",
    [
        ("", "empty"),
        ("ftp://host:21", "http:// or https://"),
        ("127.0.0.1:port", "invalid port"),
        ("http://:8765", "no host"),
        ("http://host:1/?a=b", "query"),
    ],
)
def test_unusable_urls_say_why(typed, reason):
    with pytest.raises(BadBackendUrl, match=reason):
        normalise_backend_url(typed)


def test_loopback_urls():
    assert (
        is_loopback("http://127.0.0.1:8765") and is_loopback("http://localhost:1") and is_loopback("http://[::1]:8765")
    )
    assert not is_loopback("http://192.168.1.5:8765") and not is_loopback("https://gpu.example.org")
    assert BackendClient("127.0.0.1:8765").url == "http://127.0.0.1:8765"


def test_job_text_has_stage_percent_and_elapsed_time(tmp_path):
    job = RemoteJob(BackendClient("127.0.0.1:9"), "mesh", tmp_path / "x.glb", {}, tmp_path, lambda path, status: None)
    job.started_at = time.monotonic() - 75
    assert job.describe() == "KeyDiff3D: sending to the backend... (1:15)"
    job.status = JobStatus("a" * 32, "queued", queue_position=2)
    assert job.describe().startswith("KeyDiff3D: queued (2 ahead) (1:1")
    job.status = JobStatus("a" * 32, "running", stage="keypoints", progress=0.426, message="rendering views")
    assert job.describe().startswith("KeyDiff3D: keypoints: rendering views - 43% (1:1")
    assert format_elapsed(3725) == "1:02:05" and format_elapsed(7) == "0:07"


def test_stale_work_folders_are_removed_fresh_ones_kept(tmp_path):
    stale, fresh = tmp_path / f"{WORK_DIR_PREFIX}old", tmp_path / f"{WORK_DIR_PREFIX}new"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "upload.glb").write_bytes(b"glb")
    unrelated = tmp_path / "other-old"
    unrelated.mkdir()
    two_days_ago = time.time() - 2 * 24 * 3600
    for folder in (stale, unrelated):
        os.utime(folder, (two_days_ago, two_days_ago))
    assert clean_stale_work_dirs(root=tmp_path) == [stale]
    assert not stale.exists() and fresh.is_dir() and unrelated.is_dir()
    made = new_work_dir()
    assert made.name.startswith(WORK_DIR_PREFIX) and made.is_dir()
    made.rmdir()


def test_a_job_removes_its_work_folder_when_the_backend_is_unreachable(tmp_path):
    work = tmp_path / "keydiff3d-job-test"
    work.mkdir()
    (work / "upload.glb").write_bytes(b"glb")
    client = BackendClient(f"http://127.0.0.1:{free_port()}", retries=0)
    job = RemoteJob(client, "mesh", work / "upload.glb", {}, work, lambda path, status: None).start()
    assert not job.wait(timeout=30)
    assert "did not answer" in job.error and not work.exists()


def scripted_job(url: str, tmp_path: Path, imported: list) -> RemoteJob:
    work = tmp_path / "keydiff3d-job-test"
    work.mkdir()
    (work / "upload.glb").write_bytes(b"glb")
    client = BackendClient(url, retries=0)
    return RemoteJob(client, "mesh", work / "upload.glb", {}, work, lambda path, status: imported.append(path))


def test_after_a_cancel_the_job_is_polled_at_the_poll_interval(tmp_path):
    server = ScriptedJobs(after_cancel="running", final="cancelled", stop_after_s=2.0)
    with server as url:
        imported: list = []
        job = scripted_job(url, tmp_path, imported).start()
        time.sleep(0.2)
        job.cancel()
        assert not job.wait(timeout=30)
    assert job.cancelled and job.error == "KeyDiff3D: the job was cancelled." and not imported
    polls = server.count("GET", since=server.cancelled_at)
    # the job kept running for 2 s after the cancel: about one poll per interval, not a flood
    assert 2.0 / POLL_INTERVAL_S - 2 <= polls <= 2.0 / POLL_INTERVAL_S + 2, polls


def test_a_job_that_finishes_as_it_is_cancelled_is_not_imported(tmp_path):
    server = ScriptedJobs(after_cancel="done", final="done", stop_after_s=0.0)
    with server as url:
        imported: list = []
        job = scripted_job(url, tmp_path, imported).start()
        time.sleep(0.2)
        job.cancel()
        assert not job.wait(timeout=30)
    assert job.cancelled and job.error == "KeyDiff3D: the job was cancelled."
    assert imported == [] and server.count("GET", suffix="/result") == 0 and not job.work_dir.exists()


def test_a_cancel_during_the_download_leaves_no_file_behind(tmp_path):
    """The job is done and its result is downloading when Esc arrives: the job ends only once the
    worker has written its last file, so the work folder (with the zip) is gone afterwards."""
    server = ScriptedJobs(before_cancel="done", result_delay_s=1.0)
    with server as url:
        imported: list = []
        job = scripted_job(url, tmp_path, imported).start()
        assert server.downloading.wait(30)  # the worker has reported "done" and is downloading
        job.cancel()  # Esc, before the UI drained that "done"
        assert not job.wait(timeout=30)
        job._thread.join(30)
    assert job.cancelled and job.error == "KeyDiff3D: the job was cancelled." and not imported
    assert server.count("GET", suffix="/result") == 1 and not job.work_dir.exists()


def test_a_backend_that_does_not_stop_a_cancelled_job_is_given_up_on(tmp_path, monkeypatch):
    """After a cancel each status still reaches the caller (the UI does not freeze), and a job the
    backend does not stop ends after CANCEL_DEADLINE_S with one sentence."""
    from keydiff3d_addon.client import jobs

    monkeypatch.setattr(jobs, "CANCEL_DEADLINE_S", 2.0)
    server = ScriptedJobs(after_cancel="running", stop_after_s=3600.0)
    with server as url:
        job = scripted_job(url, tmp_path, []).start()
        time.sleep(0.2)
        job.cancel()
        job.drain()  # what was reported before the cancel
        seen, deadline = set(), time.monotonic() + 30
        while not job.drain():
            seen.add(id(job.status))
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert job.error == "KeyDiff3D: the backend did not stop the job within 2 s; it may still be running there."
    assert len(seen) >= 2.0 / POLL_INTERVAL_S  # a status per poll after the cancel, not one frozen status
    assert not job.work_dir.exists()


# ------------------------------------------------------------------------------- backend launcher


def python_command(code: str) -> str:
    return subprocess.list2cmdline([sys.executable, "-c", code]) if os.name == "nt" else f"{sys.executable} -c {code!r}"


def test_a_command_that_exits_at_once_is_reported_with_its_log(tmp_path):
    log = tmp_path / "logs" / "backend.log"
    command = python_command("import sys; print('loading'); sys.exit('error: unrecognized arguments: --bogus')")
    launcher = BackendLauncher(command, f"http://127.0.0.1:{free_port()}", log).start()
    state = launcher.wait(timeout=60)
    assert state.phase == "exited" and "exited with code 1" in state.message and str(log) in state.message
    assert state.log_tail.splitlines() == ["loading", "error: unrecognized arguments: --bogus"]
    assert "--- " in log.read_text() and "loading" in log.read_text()  # the log file keeps the output


def test_a_command_that_never_answers_is_stopped(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    launcher = BackendLauncher(python_command("import time; time.sleep(60)"), url, tmp_path / "b.log", timeout_s=1.5)
    state = launcher.start().wait(timeout=30)
    assert state.phase == "timed_out" and "--port matches the backend URL" in state.message
    assert launcher.process.wait(10) is not None  # stopped, not left running


def test_stop_returns_at_once_and_the_process_is_reaped_later(tmp_path):
    # a backend that takes 3 s to shut down after SIGTERM (saving state, say)
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (time.sleep(3), sys.exit(0)));"
    code += " print('up', flush=True); time.sleep(60)"
    log = tmp_path / "b.log"
    launcher = BackendLauncher(python_command(code), f"http://127.0.0.1:{free_port()}", log).start()
    deadline = time.monotonic() + 30
    while "up" not in launcher.log_tail() and time.monotonic() < deadline:  # its handler is installed
        time.sleep(0.05)
    started = time.monotonic()
    launcher.stop()
    assert time.monotonic() - started < 1.0  # Blender's main thread is not held for the shutdown
    assert launcher.process.poll() is None  # still shutting down
    assert launcher.wait(timeout=5).phase == "starting"  # the watch ended without a verdict
    assert launcher.process.wait(30) == 0  # it finished its shutdown and was reaped


def test_commands_that_cannot_run_are_one_sentence(tmp_path):
    with pytest.raises(LaunchError, match="could not run `no-such-keydiff3d-binary serve`"):
        BackendLauncher("no-such-keydiff3d-binary serve", "http://127.0.0.1:9", tmp_path / "b.log").start()
    with pytest.raises(LaunchError, match="empty"):
        BackendLauncher("   ", "http://127.0.0.1:9", tmp_path / "b.log").start()


@pytest.mark.slow
def test_a_real_backend_is_watched_until_it_answers(tmp_path):
    port = free_port()
    command = f"{sys.executable} -m keydiff3d.cli serve --port {port} --no-warm-up --data-dir {tmp_path / 'data'}"
    launcher = BackendLauncher(command, f"127.0.0.1:{port}", tmp_path / "backend.log").start()
    try:
        state = launcher.wait(timeout=180)
        assert state.phase == "ready", (state.message, state.log_tail)
        assert BackendClient(f"127.0.0.1:{port}").health()["status"] == "ok"
    finally:
        launcher.stop()
    assert launcher.process.wait(30) is not None


def test_client_package_imports_without_bpy():
    code = "import sys; import keydiff3d_addon.client, keydiff3d_addon.skin_methods; assert 'bpy' not in sys.modules"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent
    )
    assert result.returncode == 0, result.stderr
