"""`/v1/models`: which weight files the backend has, and downloading the missing ones from the Hub.

- `GET /v1/models` -> `{weights_dir, models: [row]}`; a row is `keydiff3d.weights.report`'s (name,
  title, present, valid, problem, path, size, source, licence, downloadable, gated, ...) plus
  `download`: the state of its latest download in this process (or null).
- `POST /v1/models/{name}/download` (optional JSON body `{"token": "hf_..."}` for gated repositories)
  -> 202 with the download state (status, progress, bytes_done of bytes_total, file, ...);
  starting a download that already runs returns its state.
- `DELETE /v1/models/{name}/download` -> the state; the transfer stops at its next chunk; the files
  already complete are kept, so the next download continues with the file it stopped in.

Downloads run one per entry on their own threads (`weights_download.download`, into the weights
folder the pipeline reads); the token is used for that download only, never stored or logged.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request

from .. import weights
from ..errors import Cancelled, KeyDiff3DError
from ..progress import Progress
from .errors import ApiError

MAX_TOKEN_CHARS = 512
MAX_BODY_BYTES = 4096


@dataclass
class Download:
    """One download's state; `public()` is what the API returns."""

    name: str
    status: str = "downloading"  # downloading | done | failed | cancelled
    progress: float = 0.0
    bytes_done: int = 0  # of all the entry's files (those already complete count as done)
    bytes_total: int = 0  # 0 until the Hub told the files' sizes
    file: str = ""
    message: str = ""
    error: dict | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def public(self) -> dict[str, Any]:
        keys = ("name", "status", "progress", "bytes_done", "bytes_total", "file", "message", "error")
        keys += ("started_at", "finished_at")
        return {key: getattr(self, key) for key in keys}


class Downloads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, Download] = {}

    def get(self, name: str) -> Download | None:
        return self._by_name.get(name)

    def start(self, name: str, token: str | None) -> Download:
        with self._lock:
            current = self._by_name.get(name)
            if current is not None and current.status == "downloading":
                return current
            state = self._by_name[name] = Download(name)
        threading.Thread(target=self._run, args=(state, token), name=f"keydiff3d-download-{name}", daemon=True).start()
        return state

    def _run(self, state: Download, token: str | None) -> None:
        from ..weights_download import download

        def report(stage: str, fraction: float, message: str) -> None:
            state.progress, state.file = round(fraction, 4), message

        def count(done: int, total: int) -> None:
            state.bytes_done, state.bytes_total = done, total

        try:
            path = download(state.name, token=token, progress=Progress(report, state.cancel), on_bytes=count)
            state.status, state.progress, state.message = "done", 1.0, str(path)
        except Cancelled:
            state.status, state.message = "cancelled", "cancelled; the next download keeps the files already complete"
        except KeyDiff3DError as error:
            state.status, state.error = "failed", {"code": error.code, "message": str(error)}
        except Exception as error:  # a bug must not leave the download "running" forever
            state.status, state.error = "failed", {"code": "internal", "message": f"{type(error).__name__}: {error}"}
        finally:
            state.finished_at = time.time()


def models_router() -> APIRouter:
    router = APIRouter()
    downloads = Downloads()

    def known(name: str) -> weights.WeightSpec:
        if name not in weights.SPECS:
            raise ApiError(404, "not_found", f"there is no model {name!r}; known: {', '.join(weights.SPECS)}")
        return weights.SPECS[name]

    @router.get("/v1/models", summary="Which model files the backend has, and the state of their downloads")
    def list_models() -> dict[str, Any]:
        rows = weights.report(checksums=False)
        for row in rows:
            state = downloads.get(row["name"])
            row["download"] = state.public() if state else None
        return {"weights_dir": str(weights.weights_dir()), "models": rows}

    @router.post("/v1/models/{name}/download", status_code=202, summary="Download a model from the Hugging Face Hub")
    async def start_download(name: str, request: Request) -> dict[str, Any]:
        spec = known(name)
        if spec.download is None:
            raise ApiError(
                400, "bad_request", f"{spec.title} is not on the Hugging Face Hub; get it from {spec.source}"
            )
        token = await _token(request)
        return downloads.start(name, token).public()

    @router.delete("/v1/models/{name}/download", summary="Stop a model download (resumable)")
    def cancel_download(name: str) -> dict[str, Any]:
        known(name)
        state = downloads.get(name)
        if state is None:
            raise ApiError(404, "not_found", f"no download of {name} was started on this backend")
        state.cancel.set()
        return state.public()

    return router


async def _token(request: Request) -> str | None:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "bad_request", 'the body must be JSON such as {"token": "hf_..."}') from None
    token = body.get("token") if isinstance(body, dict) else None
    if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS):
        raise ApiError(400, "bad_request", f"'token' must be a string of at most {MAX_TOKEN_CHARS} characters")
    return token or None
