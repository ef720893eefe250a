"""`keydiff3d_addon.health.check_backend` against real local HTTP servers (stdlib only, no bpy)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from keydiff3d_addon.client.health import BackendUnreachable, check_backend


def serve(status: int, body: bytes):
    """A one-route server answering every GET with `status` and `body`; returns (server, url, paths)."""
    paths: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            paths.append((self.path, self.headers.get("Authorization")))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/", paths


@pytest.fixture
def servers():
    started = []
    yield lambda status, body: started.append(serve(status, body)) or started[-1]
    for server, _, _ in started:
        server.shutdown()
        server.server_close()


def test_healthy_backend(servers):
    _, url, paths = servers(200, json.dumps({"status": "ok", "device": "cuda:0", "models": {"sv3d": True}}).encode())
    health = check_backend(url, token="secret")
    assert (health.status, health.device) == ("ok", "cuda:0") and health.details["models"] == {"sv3d": True}
    assert health.url == url.rstrip("/")
    assert paths == [("/v1/health", "Bearer secret")]


def test_no_backend_says_where_and_how_to_start_one():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BackendUnreachable) as raised:
        check_backend(f"http://127.0.0.1:{port}", start_command="keydiff3d serve --port 9")
    message = str(raised.value)
    assert f"No KeyDiff3D backend is reachable at http://127.0.0.1:{port}" in message
    assert "`keydiff3d serve --port 9`" in message and message.count(". ") == 0


@pytest.mark.parametrize("status, hint", [(401, "token"), (403, "token"), (500, "backend URL")])
def test_http_errors_name_the_fix(servers, status, hint):
    _, url, _ = servers(status, b"{}")
    with pytest.raises(BackendUnreachable, match=f"HTTP {status}.*{hint}"):
        check_backend(url)


def test_something_else_on_the_port(servers):
    _, url, _ = servers(200, b"<html>not json</html>")
    with pytest.raises(BackendUnreachable, match="did not answer like a KeyDiff3D backend"):
        check_backend(url)
    _, url, _ = servers(200, b"[1, 2]")
    with pytest.raises(BackendUnreachable, match="did not answer like a KeyDiff3D backend"):
        check_backend(url)


def test_bad_url_is_a_sentence_not_a_crash(servers):
    _, url, _ = servers(200, json.dumps({"status": "ok", "device": "cpu"}).encode())
    assert check_backend(url.removeprefix("http://")).status == "ok"  # no scheme: http:// is assumed
    with pytest.raises(BackendUnreachable, match="No KeyDiff3D backend can be reached: the backend URL is empty"):
        check_backend("")
    with pytest.raises(BackendUnreachable, match="must start with http:// or https://"):
        check_backend("ftp://127.0.0.1:8765")
