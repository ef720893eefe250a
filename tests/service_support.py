"""A real `keydiff3d serve` process on a free loopback port, for the service tests (not a test module)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(home: Path) -> dict[str, str]:
    """Environment of a server that finds no user weights: its own HOME, caches and config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYDIFF3D_")}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


class Server:
    """`keydiff3d serve` as a subprocess. `start()` waits until /v1/health answers and the worker is ready."""

    def __init__(
        self, data_dir: Path, home: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.data_dir, self.home, self.args, self.env = data_dir, home, args, env or {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = home / f"server-{self.port}.log"
        home.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 90.0, token: str | None = None) -> "Server":
        command = [
            sys.executable,
            "-m",
            "keydiff3d.cli",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, env={**isolated_env(self.home), **self.env}, stdout=log, stderr=subprocess.STDOUT
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log.read_text()[-3000:]}")
            try:
                health = httpx.get(f"{self.url}/v1/health", headers=headers, timeout=2.0)
                if health.status_code == 200 and health.json()["ready"]:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not become ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs (a crash or a power cut)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def wait_for(
    client: httpx.Client,
    job_id: str,
    statuses=("done", "failed", "cancelled"),
    timeout: float = 120.0,
    poll: float = 0.1,
) -> dict:
    """Poll GET /v1/jobs/{id} until its status is one of `statuses`; returns the last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(poll)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


@contextmanager
def json_backend(health: dict):
    """A loopback HTTP server answering GET /v1/health with `health` (other paths 404); yields its port.
    For the add-on's answers to backends that are not this version's `keydiff3d serve`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = json.dumps(health).encode()
            self.send_response(200 if self.path == "/v1/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class ScriptedJobs:
    """A loopback HTTP server speaking the jobs API (POST /v1/jobs, GET and DELETE /v1/jobs/{id},
    GET /v1/jobs/{id}/result) for one job whose life the test scripts: after DELETE it keeps answering
    `after_cancel` for `stop_after_s` seconds, then `final`; before it, `before_cancel`. The result takes
    `result_delay_s` to start arriving. Counts the requests it gets (`requests`: [(method, path,
    monotonic time)]). For client timing and races `keydiff3d serve` cannot be made to show."""

    def __init__(
        self,
        after_cancel: str = "running",
        final: str = "cancelled",
        stop_after_s: float = 2.0,
        *,
        before_cancel: str = "running",
        result_delay_s: float = 0.0,
    ) -> None:
        self.after_cancel, self.final, self.stop_after_s = after_cancel, final, stop_after_s
        self.before_cancel, self.result_delay_s = before_cancel, result_delay_s
        self.downloading = threading.Event()  # set when a GET of the result arrives
        self.cancelled_at: float | None = None
        self.requests: list[tuple[str, str, float]] = []
        self.result = b"PK\x05\x06" + bytes(18)  # an empty zip

    def state(self) -> str:
        if self.cancelled_at is None:
            return self.before_cancel
        return self.after_cancel if time.monotonic() - self.cancelled_at < self.stop_after_s else self.final

    def __enter__(self) -> str:
        jobs = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bytes, content_type: str = "application/json") -> None:
                jobs.requests.append((self.command, self.path, time.monotonic()))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _job(self) -> None:
                self._answer(json.dumps({"id": "job1", "status": jobs.state(), "progress": 0.5}).encode())

            def do_POST(self):  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._job()

            def do_DELETE(self):  # noqa: N802
                if jobs.cancelled_at is None:
                    jobs.cancelled_at = time.monotonic()
                self._job()

            def do_GET(self):  # noqa: N802
                if self.path.endswith("/result"):
                    jobs.downloading.set()
                    time.sleep(jobs.result_delay_s)
                    self._answer(jobs.result, "application/zip")
                else:
                    self._job()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, method: str, since: float = 0.0, suffix: str = "") -> int:
        return sum(1 for m, path, at in self.requests if m == method and at >= since and path.endswith(suffix))
