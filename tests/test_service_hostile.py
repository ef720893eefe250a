"""The HTTP service under attack: a real `keydiff3d serve` process answers hostile requests with the
documented JSON error and a 4xx status, refuses what other web pages on the machine could send,
keeps its connection after a 500, and bounds its queue and the disk it fills. Issue 11, faults 3, 5,
6, 11, 12, 13, 15, 16, 17, 19, 21, 22 (queue and disk) and the keep-alive after a 500.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time

import httpx
import pytest
import trimesh
from hostile_inputs import EPS, glb_bytes, gltf_document, textured_quad_glb
from pipeline_support import creature_glb_bytes, png_bytes, write_tiny_checkpoint
from service_support import Server, isolated_env, wait_for
from test_pipeline_inputs import bomb_png
from test_service_api import assert_error

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny.safetensors")


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint):
    root = tmp_path_factory.mktemp("hostile")
    server = Server(
        root / "data", root / "home", "--checkpoint", str(checkpoint), "--max-upload-mb", "16", "--no-warm-up"
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


def error_message(response: httpx.Response, status: int, code: str) -> str:
    """`assert_error` (the documented JSON error with this status and code), then its message."""
    return assert_error(response, status, code)["message"]


def submit_mesh(client, data: bytes, name: str = "creature.glb", **kwargs) -> httpx.Response:
    return client.post("/v1/jobs", files={"mesh": (name, data, "model/gltf-binary")}, **kwargs)


def wait_idle(client, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = client.get("/v1/health").json()
        if health["queue_length"] == 0 and health["running"] is None:
            return
        time.sleep(0.1)
    raise AssertionError("the server did not become idle")


def http_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP/1.1 responses in `data`, in order: (status, headers, body) (bodies by Content-Length)."""
    found = []
    while data:
        head, separator, data = data.partition(b"\r\n\r\n")
        if not separator:
            break
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        found.append((int(lines[0].split()[1]), headers, data[:length]))
        data = data[length:]
    return found


def raw_request(port: int, payload: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Send raw bytes on one connection and read until the server closes it."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(payload)
        while chunk := sock.recv(65536):
            received += chunk
    return http_responses(received)


# --------------------------------------------------------------------------- uploads (faults 3, 5, 6, 13)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "build, status, code",
    [
        (lambda: textured_quad_glb(EPS), 415, "unsupported_format"),
        (lambda: textured_quad_glb(bomb_png(12000)), 413, "too_large"),
        (lambda: textured_quad_glb(png_bytes(64, 64)[:90]), 400, "bad_input"),
    ],
    ids=["fault3-eps-texture", "fault6-texture-pixels", "fault13-truncated-texture"],
)
def test_hostile_meshes_get_json_errors_and_the_server_survives(client, build, status, code):
    assert_error(submit_mesh(client, build()), status, code)
    assert client.get("/v1/health").status_code == 200


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM) in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the server's peak memory from /proc")
def test_fault5_instanced_mesh_is_refused_before_the_server_builds_it(client, server):
    sphere = trimesh.creation.icosphere(subdivisions=5)  # 20 480 faces, placed by 400 nodes: 8 M
    glb = glb_bytes(*gltf_document(sphere.vertices, sphere.faces, nodes=400))
    assert_error(submit_mesh(client, creature_glb_bytes()[:50]), 400, "bad_input")  # the upload path has run once
    before = peak_rss(server.process.pid)
    assert "400 mesh instances" in error_message(submit_mesh(client, glb), 413, "too_large")
    assert peak_rss(server.process.pid) - before < 64 * 1024 * 1024  # flattening them would take ~1 GB


# --------------------------------------------------------------------------- fault 11: other web pages


def test_tokenless_backend_answers_only_loopback_host_names(client, server):
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.nip.io", "", "[::1"):
        message = error_message(client.get("/v1/jobs", headers={"Host": host}), 403, "forbidden")
        assert "--token" in message
    assert_error(submit_mesh(client, creature_glb_bytes(), headers={"Host": "evil.example"}), 403, "forbidden")
    for host in (
        f"127.0.0.1:{server.port}",
        f"localhost:{server.port}",
        f"[::1]:{server.port}",
        "127.0.0.2",
        "localhost",
    ):
        assert client.get("/v1/jobs", headers={"Host": host}).status_code == 200


def test_cross_origin_browser_requests_are_refused(client, server):
    glb = creature_glb_bytes()
    for origin in ("http://evil.example", "http://localhost:3000", f"https://127.0.0.1:{server.port}.evil", "null"):
        assert_error(submit_mesh(client, glb, headers={"Origin": origin}), 403, "forbidden")
        assert_error(client.get("/v1/jobs", headers={"Origin": origin}), 403, "forbidden")
    assert_error(client.get("/v1/jobs", headers={"Sec-Fetch-Site": "cross-site"}), 403, "forbidden")
    assert_error(client.get("/v1/jobs", headers={"Sec-Fetch-Site": "same-site"}), 403, "forbidden")
    same = {"Origin": f"http://127.0.0.1:{server.port}", "Sec-Fetch-Site": "same-origin"}  # the /docs page itself
    assert client.get("/v1/jobs", headers=same).status_code == 200


def test_token_backend_answers_other_host_names_but_not_other_pages(tmp_path, checkpoint):
    token = "t0ken-for-the-hostile-tests-0123456789"
    server = Server(
        tmp_path / "data", tmp_path / "home", "--checkpoint", str(checkpoint), "--token", token, "--no-warm-up"
    ).start(token=token)
    try:
        with httpx.Client(base_url=server.url, timeout=30.0, headers={"Authorization": f"Bearer {token}"}) as client:
            assert client.get("/v1/health", headers={"Host": "gpu.example.com"}).status_code == 200  # behind a proxy
            assert_error(client.get("/v1/jobs", headers={"Origin": "http://evil.example"}), 403, "forbidden")
    finally:
        server.stop()


# --------------------------------------------------------------------------- form and options (12, 15, 16, 19)


def test_deeply_nested_options_are_a_bad_input(client):
    nested = "[" * 5000 + "]" * 5000
    response = client.post("/v1/jobs", files={"mesh": ("a.glb", creature_glb_bytes())}, data={"options": nested})
    assert "RecursionError" in error_message(response, 400, "bad_input")
    nested_object = '{"preset": ' + "[" * 5000 + "]" * 5000 + "}"
    response = client.post("/v1/jobs", files={"mesh": ("a.glb", creature_glb_bytes())}, data={"options": nested_object})
    assert_error(response, 400, "bad_input")


def test_a_field_sent_twice_is_refused(client):
    image = ("a.png", png_bytes(64, 64), "image/png")
    assert "'image' is sent more than once" in error_message(
        client.post("/v1/jobs", files=[("image", image), ("image", image)]), 400, "bad_request"
    )
    fields = {"options": ['{"preset": "biped"}', '{"preset": "bird"}']}
    assert_error(
        client.post("/v1/jobs", files={"mesh": ("a.glb", creature_glb_bytes())}, data=fields), 400, "bad_request"
    )


def test_oversized_options_field_is_413_too_large(client):
    options = json.dumps({"preset": "x" * (10 * 1024 * 1024)})
    message = error_message(
        client.post("/v1/jobs", files={"mesh": ("a.glb", creature_glb_bytes())}, data={"options": options}),
        413,
        "too_large",
    )
    assert "options" in message


@pytest.mark.parametrize("preset", ["dragon", "unity", "godot"])
def test_unknown_or_export_presets_are_refused_at_submission(client, preset):
    response = client.post(
        "/v1/jobs", files={"mesh": ("a.glb", creature_glb_bytes())}, data={"options": json.dumps({"preset": preset})}
    )
    assert preset in error_message(response, 400, "bad_input")


# --------------------------------------------------------------------------- fault 17: malformed HTTP


@pytest.mark.parametrize("length", ["-1", "abc", "1" + "0" * 23, "1, 2"])
def test_bad_content_length_gets_the_json_error(server, length):
    payload = (
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {length}\r\n\r\n--x--\r\n"
    )
    (status, headers, body), *_ = raw_request(server.port, payload.encode())
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_content_length_shorter_than_the_body_gets_json_errors_only(server):
    body = b'--x\r\nContent-Disposition: form-data; name="options"\r\n\r\n{}\r\n--x--\r\n'
    payload = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: 5\r\n\r\n" + body
    )
    responses = raw_request(server.port, payload)
    assert len(responses) == 2  # the 5-byte request, then the rest of the bytes as a malformed one
    for status, headers, data in responses:
        assert 400 <= status < 500 and headers["content-type"] == "application/json"
        assert set(json.loads(data)["error"]) == {"code", "message"}


# --------------------------------------------------------------------------- keep-alive after a 500


def test_the_connection_survives_a_500(client, server):
    wait_idle(client)
    jobs = server.data_dir / "jobs"
    request = client.build_request("POST", "/v1/jobs", files={"mesh": ("a.glb", creature_glb_bytes())})
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        jobs.rename(jobs.with_name("jobs.away"))  # the server's own state breaks: a 500, its fault, not the client's
        try:
            connection.request("POST", "/v1/jobs", body=request.read(), headers=dict(request.headers))
            answer = connection.getresponse()
            error = json.loads(answer.read())["error"]
        finally:
            jobs.with_name("jobs.away").rename(jobs)
        assert answer.status == 500 and error["code"] == "internal" and "server log" in error["message"]
        sock = connection.sock
        assert sock is not None and answer.getheader("connection") != "close"
        connection.request("GET", "/v1/health")
        health = connection.getresponse()
        assert health.status == 200 and json.loads(health.read())["status"] == "ok"
        assert connection.sock is sock  # the same keep-alive connection answered
    finally:
        connection.close()
    assert '"status": 500' in server.log.read_text()  # the request log has the 500 too


# --------------------------------------------------------------------------- fault 21: tokens


@pytest.mark.parametrize("token", ["                    ", "short", "has spaces inside of it"])
def test_unusable_tokens_are_refused_at_start_with_how_to_make_one(tmp_path, token):
    env = isolated_env(tmp_path / "home")
    for args, extra_env in ((["--token", token], {}), ([], {"KEYDIFF3D_TOKEN": token})):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "keydiff3d.cli",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(tmp_path / "data"),
                *args,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, **extra_env},
        )
        assert done.returncode == 2, done.stderr
        assert "at least 16 characters" in done.stderr and "secrets.token_urlsafe" in done.stderr
        assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- fault 22: queue and disk


def test_the_queue_is_capped_with_429(tmp_path, checkpoint):
    server = Server(
        tmp_path / "data", tmp_path / "home", "--checkpoint", str(checkpoint), "--max-queued-jobs", "1"
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            glb = creature_glb_bytes("bird", 3)
            answers = [submit_mesh(client, glb) for _ in range(4)]  # faster than one job runs
            refusals = [a for a in answers if a.status_code == 429]
            assert refusals and answers[0].status_code == 202
            assert "limit is 1" in error_message(refusals[0], 429, "queue_full") and refusals[0].headers["retry-after"]
            for accepted in (a for a in answers if a.status_code == 202):
                assert wait_for(client, accepted.json()["id"])["status"] == "done"
            assert submit_mesh(client, glb).status_code == 202  # room again once the queue drained
    finally:
        server.stop()


def test_concurrent_uploads_cannot_overshoot_the_queue_limit(tmp_path, checkpoint):
    """Uploads arriving together: each one passing the capacity check holds its slot while its record
    is written, so no more than --max-queued-jobs are accepted beyond those that finished meanwhile."""
    import threading

    limit, senders = 2, 8
    server = Server(
        tmp_path / "data", tmp_path / "home", "--checkpoint", str(checkpoint), "--max-queued-jobs", str(limit)
    ).start()
    try:
        glb = creature_glb_bytes("bird", 3)
        start, answers = threading.Barrier(senders), []

        def send() -> None:
            with httpx.Client(base_url=server.url, timeout=60.0) as client:
                start.wait()
                answers.append(submit_mesh(client, glb))

        threads = [threading.Thread(target=send) for _ in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        burst_end = time.time()
        assert sorted({a.status_code for a in answers}) == [202, 429] and len(answers) == senders
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            accepted = [client.get(f"/v1/jobs/{a.json()['id']}").json() for a in answers if a.status_code == 202]
            finished_meanwhile = sum(1 for job in accepted if (job["finished_at"] or burst_end) < burst_end)
            assert len(accepted) <= limit + finished_meanwhile
            for refusal in (a for a in answers if a.status_code == 429):
                assert f"limit is {limit}" in error_message(refusal, 429, "queue_full")
            for job in accepted:
                assert wait_for(client, job["id"])["status"] == "done"
    finally:
        server.stop()


def test_uploads_are_refused_with_503_when_the_disk_is_nearly_full(tmp_path):
    server = Server(tmp_path / "data", tmp_path / "home", "--min-free-mb", str(10**12), "--no-warm-up").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            message = error_message(submit_mesh(client, creature_glb_bytes()), 503, "insufficient_storage")
            assert "--min-free-mb" in message
            assert client.get("/v1/jobs").json()["jobs"] == [] and not any((server.data_dir / "jobs").iterdir())
    finally:
        server.stop()
