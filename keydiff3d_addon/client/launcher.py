# SPDX-License-Identifier: GPL-3.0-or-later
"""Start a local backend process and watch it until it answers or dies (bpy-free, stdlib only).

`BackendLauncher(command, url, log_path).start()` runs the command detached from Blender (its own
process session), with stdout and stderr appended to `log_path`. A watcher thread then polls the
process and `GET {url}/v1/health` until one of: the backend answers ("ready"), the process exits
("exited", with its exit code and the last lines of its log), or `timeout_s` passes ("timed_out":
the process is stopped, since a backend that does not answer at the URL is of no use). The caller
reads `state` (from a timer in Blender, or `wait()` in scripts and tests); nothing here blocks it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .health import BackendUnreachable, check_backend

START_TIMEOUT_S = 180.0  # importing torch and loading the model takes a while on a slow disk
POLL_S = 0.25
LOG_TAIL_LINES = 8
MAX_LOG_BYTES = 5 * 2**20  # a log grown past this is started afresh
STOP_GRACE_S = 15.0  # a terminated backend gets this long to shut down before it is killed


class LaunchError(RuntimeError):
    """The command could not be started at all (not found, not executable, unparsable)."""


@dataclass(frozen=True)
class LaunchState:
    phase: str  # "starting" | "ready" | "exited" | "timed_out"
    message: str
    log_tail: str = ""

    @property
    def finished(self) -> bool:
        return self.phase != "starting"


class BackendLauncher:
    def __init__(
        self, command: str, url: str, log_path: Path, *, token: str = "", timeout_s: float = START_TIMEOUT_S
    ) -> None:
        self.command, self.url, self.log_path, self.token, self.timeout_s = (
            command.strip(),
            url,
            Path(log_path),
            token,
            timeout_s,
        )
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self._log_offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="keydiff3d-backend-watch", daemon=True)
        self.state = LaunchState("starting", f"starting `{self.command}`")

    def start(self) -> "BackendLauncher":
        try:
            argv = shlex.split(self.command, posix=os.name != "nt")
        except ValueError as error:
            raise LaunchError(
                f"the start command `{self.command}` cannot be parsed ({error}); fix it in the add-on preferences"
            ) from None
        if not argv:
            raise LaunchError(
                "the start command is empty; set it in the add-on preferences (e.g. `keydiff3d serve --port 8765`)"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.is_file() and self.log_path.stat().st_size > MAX_LOG_BYTES:
            self.log_path.unlink()
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {self.command}\n".encode())
            self._log_offset = log.tell()
            try:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            except OSError as error:
                reason = error.strerror or str(error)
                raise LaunchError(
                    f"could not run `{self.command}` ({reason}); set the start command in the add-on preferences"
                ) from None
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at if self.started_at else 0.0

    def wait(self, timeout: float | None = None) -> LaunchState:
        """Block until the watch ends (scripts and tests); returns the final state."""
        self._thread.join(timeout)
        return self.state

    def stop(self) -> None:
        """Stop watching and terminate the process if it is still running; returns at once (Esc in
        Blender's main thread): a daemon thread reaps the process, killing it after `STOP_GRACE_S`."""
        self._stop.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            threading.Thread(target=_reap, args=(process,), name="keydiff3d-backend-reap", daemon=True).start()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines this start wrote to the log."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])

    def _watch(self) -> None:
        while not self._stop.is_set():
            code = self.process.poll()
            if code is not None:
                message = f"`{self.command}` exited with code {code} before the backend answered (log: {self.log_path})"
                self.state = LaunchState("exited", message, self.log_tail())
                return
            try:
                check_backend(self.url, token=self.token, start_command=self.command, timeout=1.0)
                self.state = LaunchState("ready", f"the backend started by `{self.command}` answers at {self.url}")
                return
            except BackendUnreachable:
                pass
            if self.elapsed > self.timeout_s:
                self.stop()
                message = (
                    f"`{self.command}` ran for {self.timeout_s:.0f} s without answering at {self.url}, "
                    "so it was stopped; "
                    f"check that its --port matches the backend URL (log: {self.log_path})"
                )
                self.state = LaunchState("timed_out", message, self.log_tail())
                return
            self._stop.wait(POLL_S)


def _reap(process: subprocess.Popen) -> None:
    """Wait for a terminated process to exit (so it leaves no zombie), killing it after `STOP_GRACE_S`."""
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
