"""Service robustness across processes: killed mid-job and restarted; tokens; refusing unsafe binds."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from pipeline_support import creature_glb_bytes, write_tiny_checkpoint
from service_support import Server, isolated_env, wait_for

pytestmark = pytest.mark.slow


def submit(client: httpx.Client, data: bytes) -> str:
    response = client.post("/v1/jobs", files={"mesh": ("creature.glb", data)})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_killed_mid_job_then_restarted(tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    args = ("--checkpoint", str(checkpoint), "--no-warm-up")
    server = Server(tmp_path / "data", tmp_path / "home", *args).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            finished = submit(client, creature_glb_bytes("bird", 5))
            assert wait_for(client, finished)["status"] == "done"
            result_before = client.get(f"/v1/jobs/{finished}/result").content
            interrupted = submit(client, creature_glb_bytes("quadruped", 6))
            waiting = submit(client, creature_glb_bytes("biped", 7))
            wait_for(client, interrupted, statuses=("running",), poll=0.02)
            server.kill()  # SIGKILL while the job runs: no shutdown code gets to tidy up
    finally:
        server.stop()

    restarted = Server(tmp_path / "data", tmp_path / "home", *args, port=server.port).start()
    try:
        with httpx.Client(base_url=restarted.url, timeout=30.0) as client:
            job = client.get(f"/v1/jobs/{interrupted}").json()
            assert job["status"] == "failed" and job["error"]["code"] == "interrupted"
            assert "submit it again" in job["error"]["message"]
            assert client.get(f"/v1/jobs/{finished}/result").content == result_before  # finished results intact
            assert wait_for(client, waiting)["status"] == "done"  # the queued job resumed after the restart
            again = submit(client, creature_glb_bytes("quadruped", 6))  # and the server takes new work
            assert wait_for(client, again)["status"] == "done"
    finally:
        restarted.stop()


def test_graceful_shutdown_mid_job_reports_the_job_interrupted(tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    args = ("--checkpoint", str(checkpoint), "--no-warm-up")
    server = Server(tmp_path / "data", tmp_path / "home", *args).start()
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        running = submit(client, creature_glb_bytes("quadruped", 8))
        waiting = submit(client, creature_glb_bytes("bird", 9))
        wait_for(client, running, statuses=("running",), poll=0.02)
    server.stop()  # SIGTERM: uvicorn shuts down, the worker stops the job at its next cancellation point
    assert (
        '"msg": "service stopped"' in server.log.read_text()
    )  # the lifespan's shutdown ran (uvicorn re-raises SIGTERM after it)
    restarted = Server(tmp_path / "data", tmp_path / "home", *args, port=server.port).start()
    try:
        with httpx.Client(base_url=restarted.url, timeout=30.0) as client:
            job = client.get(f"/v1/jobs/{running}").json()
            assert job["status"] == "failed" and job["error"]["code"] == "interrupted"
            assert "shut down" in job["error"]["message"]  # recorded by the stopping worker itself
            assert wait_for(client, waiting)["status"] == "done"  # not started before the shutdown, run after it
    finally:
        restarted.stop()


def test_token_is_required_when_set(tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    token = "s3cret-token-for-tests"
    server = Server(
        tmp_path / "data", tmp_path / "home", "--checkpoint", str(checkpoint), "--token", token, "--no-warm-up"
    )
    server.start(token=token)
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            for headers in ({}, {"Authorization": "Bearer wrong-token-xyz"}, {"Authorization": token}):
                answer = client.get("/v1/health", headers=headers)
                assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
            assert client.post("/v1/jobs", files={"mesh": ("a.glb", b"x")}).status_code == 401
            assert client.get("/v1/health", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        server.stop()


def test_non_loopback_bind_without_token_is_refused(tmp_path):
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keydiff3d.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=isolated_env(tmp_path / "home"),
    )
    assert done.returncode == 2
    assert "--token" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - began < 60
