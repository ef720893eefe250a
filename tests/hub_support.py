"""A local HTTP server that serves files in the Hugging Face Hub's layout, for the download tests (not a
test module). huggingface_hub is pointed at it with its endpoint setting (`HF_ENDPOINT` / `endpoint=`).

It answers what `hf_hub_download` asks: HEAD and GET `/{repo_id}/resolve/{revision}/{path}` with the
Hub's headers (`X-Repo-Commit`, `ETag` = git blob sha1, or for LFS files `X-Linked-Etag` = sha256 and
`X-Linked-Size`), HTTP Range requests (resume), and the Hub's refusals (`X-Error-Code`: RepoNotFound,
EntryNotFound, GatedRepo without the right token). `interrupt` names files whose first full GET is cut
off after `CUT_AT` of its bytes (the connection closes), as a dropped connection would.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LFS_MIN_BYTES = 1024  # files this large are served as LFS files, as the Hub does for weights
CUT_AT = 0.8  # huggingface_hub keeps what it read in whole 10 MiB chunks: cut late enough to keep some


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class LocalHub:
    repos: dict[str, dict[str, bytes]]  # repo id -> {path in the repo: bytes}
    gated: dict[str, str] = field(default_factory=dict)  # repo id -> the token it accepts
    interrupt: set[tuple[str, str]] = field(default_factory=set)  # (repo id, path) cut off on the first GET
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self):  # noqa: N802 (http.server's names)
                hub._answer(self, body=False)

            def do_GET(self):  # noqa: N802
                hub._answer(self, body=True)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @classmethod
    def from_folders(cls, folders: dict[str, Path], **kwargs) -> "LocalHub":
        """Repositories made of the files under each folder (relative paths as the repo's paths)."""
        repos = {
            repo: {
                p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()
            }
            for repo, folder in folders.items()
        }
        return cls(repos, **kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "LocalHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def commit(self, repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def gets(self, path_suffix: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(path_suffix)]

    def _refuse(self, handler, status: int, code: str, message: str) -> None:
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", message)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.requests.append(
            Request(handler.command, handler.path, handler.headers.get("Range"), handler.headers.get("Authorization"))
        )
        parts = handler.path.split("?")[0].lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._refuse(handler, 404, "RepoNotFound", "not a resolve URL")
        repo, filename = f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
        if repo not in self.repos:
            return self._refuse(handler, 401, "RepoNotFound", f"Repository Not Found for url: {handler.path}")
        if repo in self.gated and handler.headers.get("Authorization") != f"Bearer {self.gated[repo]}":
            return self._refuse(
                handler, 401, "GatedRepo", f"Access to model {repo} is restricted. You must have access to it."
            )
        data = self.repos[repo].get(filename)
        if data is None:
            return self._refuse(handler, 404, "EntryNotFound", f"{filename} does not exist")
        start = 0
        if handler.headers.get("Range", "").startswith("bytes="):
            start = int(handler.headers["Range"][6:].split("-")[0])
        handler.send_response(206 if start else 200)
        handler.send_header("X-Repo-Commit", self.commit(repo))
        handler.send_header("Accept-Ranges", "bytes")
        if len(data) >= LFS_MIN_BYTES:
            sha256 = hashlib.sha256(data).hexdigest()
            handler.send_header("ETag", f'"{sha256}"')
            handler.send_header("X-Linked-Etag", f'"{sha256}"')
            handler.send_header("X-Linked-Size", str(len(data)))
        else:
            handler.send_header("ETag", f'"{git_blob_sha1(data)}"')
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.send_header("Content-Length", str(len(data) - start))
        handler.end_headers()
        if not body:
            return
        if (repo, filename) in self.interrupt and not start:
            self.interrupt.discard((repo, filename))
            handler.wfile.write(data[: int(len(data) * CUT_AT)])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)  # the client sees the body end early
            return
        handler.wfile.write(data[start:])
