"""The HTTP API (ARCHITECTURE.md "Contract: HTTP API"); OpenAPI docs at /docs.

Every error answer is {"error": {"code", "message"}}: 4xx for the client's faults (bad or oversized
upload, unknown job, missing token), 5xx only for the server's, and the server keeps serving - on
the same keep-alive connection too, after a 500 as after a 4xx (requests too malformed for the app
get the same JSON from `protocol.JsonErrorH11Protocol`). Uploads are bounded before they are parsed:
the body by bytes (a streaming limit, not only Content-Length), images by their header's pixel
count, meshes by faces (glTF instances counted first) and texture pixels; formats are checked by
decoding, never by the declared content type. Browsers' requests from other pages are refused
(Origin), and without a token only loopback Host names are answered (DNS rebinding). The queue
and the data folder's free disk space are bounded (429, 503). Threat model: docs/SERVICE.md.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import InputError
from ..image_io import IMAGE_FORMATS, load_image
from ..mesh_io import MESH_FORMATS, load_mesh, mesh_file_type
from ..pipeline.options import PipelineOptions
from .config import API_VERSION, ServiceConfig, is_loopback
from .errors import ApiError, error_response
from .store import FINISHED, JobStore
from .worker import JobWorker, Runner, pipeline_runner

log = logging.getLogger("keydiff3d.service")

_STATUS_OF_CODE = {"too_large": 413, "unsupported_format": 415}
SERVER_OPTIONS = {"device", "checkpoint"}  # pipeline options a request may not set
MESH_FORMATS_TEXT = ", ".join(f".{suffix}" for suffix in MESH_FORMATS[:-1]) + f" or .{MESH_FORMATS[-1]}"


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Rejects request bodies over `limit` bytes: at once by Content-Length, else while streaming."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = error_response(
                413, "too_large", f"the upload is {int(declared)} bytes; the limit is {self.limit} bytes"
            )
            return await response(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge()
            return message

        await self.app(scope, limited_receive, send)


class BrowserGuardMiddleware:
    """Refuses (403 `forbidden`) what a web page in the user's browser could send on its own:
    cross-origin requests (an Origin other than this server as addressed, or a cross-site
    Sec-Fetch-Site) and, when `loopback_host_only` (no token), requests whose Host is not a loopback
    name - a page on evil.example whose name was rebound to 127.0.0.1 sends Host: evil.example."""

    def __init__(self, app, loopback_host_only: bool) -> None:
        self.app, self.loopback_host_only = app, loopback_host_only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        problem = browser_request_problem(Headers(scope=scope), self.loopback_host_only)
        if problem is not None:
            return await error_response(403, "forbidden", problem)(scope, receive, send)
        await self.app(scope, receive, send)


def browser_request_problem(headers: Headers, loopback_host_only: bool) -> str | None:
    """Why a request is refused by `BrowserGuardMiddleware`, or None."""
    host = headers.get("host", "")
    if loopback_host_only:
        try:
            name = urlsplit(f"//{host}").hostname
        except ValueError:
            name = None
        if not name or not is_loopback(name):
            return (
                f"this backend answers only requests to 127.0.0.1, localhost or [::1], not Host {host!r:.60}; "
                "to serve other names start it with --token"
            )
    origin = headers.get("origin")
    if origin is not None:
        try:
            origin_host = urlsplit(origin).netloc.lower()
        except ValueError:
            origin_host = ""
        if not origin_host or origin_host != host.lower():
            return f"requests from another web page (Origin {origin!r:.60}) are refused; use the add-on or a script"
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return "requests a browser sends for another site (Sec-Fetch-Site) are refused; use the add-on or a script"
    return None


class InternalErrorMiddleware:
    """Answers an unexpected exception with the JSON 500 and lets it go no further, so uvicorn keeps
    the keep-alive connection (Starlette's own error handler re-raises after answering, and uvicorn
    then drops the connection: the client's next request on it was reset)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as error:  # a bug must cost one request, never the server or the connection
            log.exception("request failed", extra={"path": scope.get("path")})
            if started:  # half an answer is out: closing the connection is all that is left
                raise
            message = f"the backend hit an internal error ({type(error).__name__}); see the server log"
            await error_response(500, "internal", message)(scope, receive, send)


def _job_not_found(job_id: str) -> ApiError:
    shown = job_id if len(job_id) <= 64 else job_id[:64] + "..."
    return ApiError(404, "not_found", f"there is no job {shown!r} on this backend (old finished jobs are pruned)")


def create_app(config: ServiceConfig, runner: Runner | None = None) -> FastAPI:
    """The FastAPI app with its job store and worker (started and stopped with the app's lifespan).
    runner: what a job runs (default: the pipeline on the server's device and checkpoint)."""
    store = JobStore(config.data_dir)
    runner = runner or pipeline_runner(config.device, config.checkpoint)

    def warm_up() -> None:  # on the worker thread, before the first job
        from ..pipeline.run import warm_up

        app.state.device = warm_up(config.device, config.checkpoint)

    worker = JobWorker(store, runner, keep_jobs=config.keep_jobs, warmup=warm_up if config.warm_up else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        requeued = store.recover()
        worker.start()
        for job_id in requeued:
            worker.submit(job_id)
        log.info(
            "service started",
            extra={
                "host": config.host,
                "port": config.port,
                "data_dir": str(config.data_dir),
                "requeued": len(requeued),
            },
        )
        yield
        worker.stop()
        log.info("service stopped")

    app = FastAPI(
        title="KeyDiff3D backend",
        version=__version__,
        description=(
            "Rig a creature from one image or an unrigged mesh. Submit a job, poll it, download the rig bundle (zip)."
        ),
        lifespan=lifespan,
    )
    app.state.device = config.device
    app.state.store, app.state.worker, app.state.config = store, worker, config
    # outermost last: request log -> internal errors -> browser guard -> body limit -> routes
    app.add_middleware(BodyLimitMiddleware, limit=config.max_upload_bytes)
    app.add_middleware(BrowserGuardMiddleware, loopback_host_only=config.token is None)
    app.add_middleware(InternalErrorMiddleware)
    _install_error_handlers(app)
    _install_request_log(app)

    def require_token(request: Request) -> None:
        if config.token is None:
            return
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {config.token}".encode()):
            raise ApiError(
                401, "unauthorized", "this backend needs a token: send the header 'Authorization: Bearer <token>'"
            )

    auth = [Depends(require_token)]

    @app.get("/v1/health", dependencies=auth, summary="Backend status, version, device and loaded models")
    def health() -> dict[str, Any]:
        from ..pipeline.models import MODELS

        return {
            "status": "ok",
            "service": "keydiff3d",
            "version": __version__,
            "api_version": API_VERSION,
            "device": app.state.device,
            "ready": worker.ready.is_set(),
            "models_loaded": MODELS.loaded(),
            "queue_length": worker.queue_length(),
            "running": worker.current,
        }

    @app.post(
        "/v1/jobs",
        status_code=202,
        dependencies=auth,
        summary="Submit an image or a mesh to rig",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "image": {"type": "string", "format": "binary", "description": "PNG, JPEG or WebP"},
                                "mesh": {
                                    "type": "string",
                                    "format": "binary",
                                    "description": MESH_FORMATS_TEXT,
                                },
                                "options": {
                                    "type": "string",
                                    "description": 'JSON object of pipeline options, e.g. {"preset": "quadruped"}',
                                },
                            },
                        }
                    }
                },
            }
        },
    )
    async def submit(request: Request) -> JSONResponse:
        check_capacity(0)  # before reading a large upload, then again with its size
        kind, data, suffix, options = await _parse_submission(request, config)
        with reserved_capacity(len(data)):  # held while the upload is written: others count it
            record = await run_in_threadpool(store.create, kind, suffix, data, options)  # up to 64 MiB to disk
            status = record.status  # "queued": the worker may start (and change) the record at once
            worker.submit(record.id)
        log.info("job queued", extra={"job": record.id, "kind": kind, "bytes": len(data)})
        body = {"id": record.id, "status": status, "queue_position": worker.queue_position(record.id)}
        return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{record.id}"})

    # uploads that passed the capacity check and are not the worker's yet (their record is being
    # written): counted by the check, so concurrent uploads cannot all take the last slot or the same bytes
    reserved = {"jobs": 0, "bytes": 0}
    reserved_lock = threading.Lock()

    @contextmanager
    def reserved_capacity(upload_bytes: int) -> Iterator[None]:
        """check_capacity and, in the same lock, one queue slot and `upload_bytes` of disk held until
        the block ends (the job handed to the worker, its bytes on disk; or a failure)."""
        with reserved_lock:
            check_capacity(upload_bytes)
            reserved["jobs"] += 1
            reserved["bytes"] += upload_bytes
        try:
            yield
        finally:
            with reserved_lock:
                reserved["jobs"] -= 1
                reserved["bytes"] -= upload_bytes

    def check_capacity(upload_bytes: int) -> None:
        """429 when max_queued_jobs are queued, running or being written; 503 when the upload would
        leave less than min_free_bytes free on the data folder's disk, uploads being written counted."""
        active = worker.active_count() + reserved["jobs"]
        if active >= config.max_queued_jobs:
            message = f"{active} jobs are queued or running and the limit is {config.max_queued_jobs}; try again later"
            raise ApiError(429, "queue_full", message, headers={"Retry-After": "30"})
        free = shutil.disk_usage(store.root).free - reserved["bytes"]
        if free - upload_bytes < config.min_free_bytes:
            message = (
                f"the server's data folder has {free // 2**20} MiB free and keeps at least "
                f"{config.min_free_bytes // 2**20} MiB free (--min-free-mb); free disk space there"
            )
            raise ApiError(503, "insufficient_storage", message, headers={"Retry-After": "60"})

    @app.get("/v1/jobs", dependencies=auth, summary="All known jobs, oldest first")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": [r.public(worker.queue_position(r.id)) for r in store.all()]}

    @app.get("/v1/jobs/{job_id}", dependencies=auth, summary="A job's status, stage and progress")
    def job_status(job_id: str) -> dict[str, Any]:
        record = store.get(job_id)
        if record is None:
            raise _job_not_found(job_id)
        return record.public(worker.queue_position(job_id))

    @app.get(
        "/v1/jobs/{job_id}/result",
        dependencies=auth,
        summary="The finished rig bundle as a zip",
        response_class=FileResponse,
    )
    def job_result(job_id: str):
        record = store.get(job_id)
        if record is None:
            raise _job_not_found(job_id)
        if record.status == "failed":
            raise ApiError(409, "job_failed", f"job {job_id} failed: {record.error['message']}")
        if record.status != "done":
            raise ApiError(409, "not_ready", f"job {job_id} is {record.status}; its result exists once it is done")
        path = store.result_path(job_id)
        if not path.is_file():
            raise ApiError(410, "gone", f"the result of job {job_id} was removed from the server's data folder")
        return FileResponse(path, media_type="application/zip", filename=f"keydiff3d-{job_id}.zip")

    @app.delete("/v1/jobs/{job_id}", dependencies=auth, summary="Cancel a queued or running job")
    def cancel_job(job_id: str) -> JSONResponse:
        record = store.get(job_id)
        if record is None:
            raise _job_not_found(job_id)
        if record.status not in FINISHED:
            record = worker.cancel(job_id)
            log.info("job cancel requested", extra={"job": job_id, "status": record.status})
        code = 200 if record.status in FINISHED else 202
        return JSONResponse(record.public(worker.queue_position(job_id)), status_code=code)

    from .models import models_router  # model files and their downloads (docs/SERVICE.md)

    app.include_router(models_router(), dependencies=auth)
    return app


async def _parse_submission(request: Request, config: ServiceConfig) -> tuple[str, bytes, str, dict[str, Any]]:
    """-> (kind, raw bytes, file suffix, options dict), all checked; ApiError otherwise."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send multipart/form-data with a file field 'image' or 'mesh' and an optional 'options' JSON field",
        )
    # parts as large as the whole body may be: the body limit bounds them, the options limit is ours (413)
    form = await request.form(max_files=2, max_fields=4, max_part_size=config.max_upload_bytes)
    unknown = sorted(set(form.keys()) - {"image", "mesh", "options"})
    if unknown:
        raise ApiError(
            400, "bad_request", f"unknown form field {unknown[0]!r}; send 'image' or 'mesh' and optionally 'options'"
        )
    repeated = sorted(name for name, times in Counter(name for name, _ in form.multi_items()).items() if times > 1)
    if repeated:
        raise ApiError(400, "bad_request", f"the field {repeated[0]!r} is sent more than once; send it once")
    uploads = [name for name in ("image", "mesh") if name in form]
    if len(uploads) != 1:
        raise ApiError(
            400,
            "bad_request",
            f"send exactly one file field: 'image' (PNG/JPEG/WebP) or 'mesh' (.{'/.'.join(MESH_FORMATS)})",
        )
    kind = uploads[0]
    upload = form[kind]
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "bad_request", f"the field {kind!r} must be a file upload, not a text value")
    options = _parse_options(form.get("options"), config)
    data = await upload.read()
    try:
        if kind == "image":
            await run_in_threadpool(load_image, data, max_pixels=config.max_image_pixels)
            suffix = IMAGE_FORMATS[_image_format(data)]
        else:
            suffix = mesh_file_type(upload.filename or "")
            await run_in_threadpool(
                load_mesh, data, suffix, up_axis=options.get("up_axis", "auto"), max_faces=config.max_mesh_faces
            )
    except InputError as error:
        raise ApiError(_STATUS_OF_CODE.get(error.code, 400), error.code, str(error)) from None
    return kind, data, suffix, options


def _parse_options(raw: Any, config: ServiceConfig) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, UploadFile):
        raise ApiError(400, "bad_request", "the field 'options' must be a JSON text value, not a file")
    if len(raw.encode()) > config.max_options_bytes:
        raise ApiError(
            413,
            "too_large",
            f"the options are {len(raw.encode())} bytes; the limit is {config.max_options_bytes} bytes",
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:  # RecursionError: arrays or objects nested too deep
        raise ApiError(400, "bad_input", f"the options are not valid JSON ({type(error).__name__}: {error})") from None
    if isinstance(data, dict):
        chosen_by_server = sorted(set(data) & SERVER_OPTIONS)
        if chosen_by_server:
            name = chosen_by_server[0]
            raise ApiError(
                400,
                "bad_input",
                f"option {name!r} is chosen by the server (keydiff3d serve --{name}), not by the request",
            )
    try:
        options = PipelineOptions.from_dict(data).to_dict()
    except InputError as error:
        raise ApiError(400, error.code, str(error)) from None
    return {k: v for k, v in options.items() if k not in SERVER_OPTIONS}


def _image_format(data: bytes) -> str:
    from PIL import Image

    return Image.open(io.BytesIO(data)).format


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(_BodyTooLarge)
    async def body_too_large(request: Request, error: _BodyTooLarge) -> JSONResponse:
        limit = app.state.config.max_upload_bytes
        return error_response(413, "too_large", f"the upload is larger than the limit of {limit} bytes")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = error.detail if isinstance(error.detail, str) else "bad request"
        if error.status_code == 404:
            message = f"no endpoint {request.method} {request.url.path}; see /docs"
        return error_response(
            error.status_code, codes.get(error.status_code, "bad_request"), message, getattr(error, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(422, "bad_request", f"invalid request at {where}: {first.get('msg', 'invalid')}")


def _install_request_log(app: FastAPI) -> None:
    @app.middleware("http")
    async def request_log(request: Request, call_next):
        began = time.perf_counter()
        response = await call_next(request)
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "ms": round(1000 * (time.perf_counter() - began), 1),
            },
        )
        return response
