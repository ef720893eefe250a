# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP client of the KeyDiff3D backend API, standard library only (Blender ships no requests/httpx).

Every call has a timeout. Reads (GET) and cancels (DELETE) are retried with a short back-off on
connection errors and 5xx answers; a submission (POST) is retried only when the connection was
refused, i.e. when the server cannot have received it, so a job is never submitted twice.
Errors become one-sentence exceptions the UI shows as they are.
"""

from __future__ import annotations

import json
import mimetypes
import socket
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .health import BackendUnreachable, check_backend
from .urls import normalise_backend_url

API_VERSION = 1  # the backend API this add-on speaks (GET /v1/health -> api_version)
DEFAULT_TIMEOUT_S = 10.0
TRANSFER_TIMEOUT_S = 120.0  # uploads and result downloads may be large


class BackendError(RuntimeError):
    """The backend answered with an error; `code` is its machine-readable error code."""

    def __init__(self, message: str, code: str = "error", status: int = 0) -> None:
        super().__init__(message)
        self.code, self.status = code, status


class VersionMismatch(BackendError):
    """The backend speaks another API version than this add-on."""


@dataclass
class JobStatus:
    """GET /v1/jobs/{id}: status is queued | running | done | failed | cancelled; progress 0..1."""

    id: str
    status: str
    stage: str = ""
    progress: float = 0.0
    message: str = ""
    error: dict | None = None
    queue_position: int | None = None
    timings: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    @classmethod
    def from_json(cls, data: dict) -> "JobStatus":
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            stage=str(data.get("stage", "")),
            progress=float(data.get("progress", 0.0)),
            message=str(data.get("message", "")),
            error=data.get("error"),
            queue_position=data.get("queue_position"),
            timings=dict(data.get("timings") or {}),
        )


def encode_multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """multipart/form-data body and its Content-Type. files: field -> (file name, bytes)."""
    boundary = f"keydiff3d-{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
        )
    for name, (filename, data) in files.items():
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{safe_name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class BackendClient:
    """One backend at `url` (e.g. http://127.0.0.1:8765 or 127.0.0.1:8765); `token` is sent as a Bearer token.
    A malformed URL raises `urls.BadBackendUrl`."""

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = 2,
        backoff: float = 0.5,
        start_command: str = "keydiff3d serve",
    ) -> None:
        self.url = normalise_backend_url(url)
        self.token = token
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.start_command = start_command

    # -- API -----------------------------------------------------------------------------------
    def health(self) -> dict:
        """The health answer, after checking the API version (BackendUnreachable, VersionMismatch)."""
        details = check_backend(
            self.url, token=self.token, start_command=self.start_command, timeout=min(self.timeout, 5.0)
        ).details
        version = details.get("api_version")
        if version != API_VERSION:
            raise VersionMismatch(
                f"The backend at {self.url} speaks API version {version} "
                f"(keydiff3d {details.get('version', '?')}) but this add-on "
                f"needs version {API_VERSION}; install matching versions of the add-on and the backend.",
                code="version_mismatch",
            )
        return details

    def submit(self, kind: str, path: str | Path, options: dict | None = None) -> JobStatus:
        """POST /v1/jobs with the file at `path` as field `kind` ("image" or "mesh")."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise BackendError(f"cannot read {path}: {error.strerror or error}", code="local_file") from error
        body, content_type = encode_multipart({"options": json.dumps(options or {})}, {kind: (path.name, data)})
        answer = self._request(
            "POST", "/v1/jobs", body, {"Content-Type": content_type}, timeout=TRANSFER_TIMEOUT_S, idempotent=False
        )
        return JobStatus.from_json(json.loads(answer))

    def status(self, job_id: str) -> JobStatus:
        return JobStatus.from_json(json.loads(self._request("GET", f"/v1/jobs/{job_id}")))

    def cancel(self, job_id: str) -> JobStatus:
        return JobStatus.from_json(json.loads(self._request("DELETE", f"/v1/jobs/{job_id}")))

    def download_result(self, job_id: str, target: str | Path) -> Path:
        """Save the finished job's bundle zip at `target` (written to a temporary name first)."""
        target = Path(target)
        data = self._request("GET", f"/v1/jobs/{job_id}/result", timeout=TRANSFER_TIMEOUT_S)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(data)
        partial.replace(target)
        return target

    def models(self) -> dict:
        """GET /v1/models: the weight files the backend has, and the state of their downloads."""
        return json.loads(self._request("GET", "/v1/models"))

    def start_model_download(self, name: str, hub_token: str = "") -> dict:
        """POST /v1/models/{name}/download; `hub_token` (Hugging Face) is needed for gated repositories."""
        body = json.dumps({"token": hub_token} if hub_token else {}).encode()
        answer = self._request(
            "POST", f"/v1/models/{name}/download", body, {"Content-Type": "application/json"}, idempotent=False
        )
        return json.loads(answer)

    def cancel_model_download(self, name: str) -> dict:
        return json.loads(self._request("DELETE", f"/v1/models/{name}/download"))

    # -- transport -----------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict | None = None,
        *,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> bytes:
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        attempt = 0
        while True:
            request = urllib.request.Request(f"{self.url}{path}", data=body, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as error:
                if error.code >= 500 and idempotent and attempt < self.retries:
                    attempt += 1
                    time.sleep(self.backoff * attempt)
                    continue
                raise _backend_error(error) from None
            except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as error:
                reason = getattr(error, "reason", error)
                refused = isinstance(reason, ConnectionRefusedError)
                if (idempotent or refused) and attempt < self.retries:
                    attempt += 1
                    time.sleep(self.backoff * attempt)
                    continue
                raise BackendUnreachable(
                    f"The KeyDiff3D backend at {self.url} did not answer ({reason}); "
                    f"start one with `{self.start_command}` "
                    "or check the backend URL in the add-on preferences."
                ) from None


def _backend_error(error: urllib.error.HTTPError) -> BackendError:
    """The backend's {"error": {"code", "message"}} as a BackendError (any other answer summarised)."""
    try:
        payload = json.loads(error.read().decode("utf-8"))
        code, message = payload["error"]["code"], payload["error"]["message"]
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message = "http_error", f"HTTP {error.code} {error.reason}"
    if error.code in (401, 403):
        message = f"{message} (set the token in the add-on preferences)"
    return BackendError(f"The backend refused the request: {message}", code=code, status=error.code)
