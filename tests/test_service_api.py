"""The HTTP service as a client sees it: a real `keydiff3d serve` process on a loopback port.

Jobs run the real pipeline (mesh path) with a tiny random-weight checkpoint. Every bad request must
get the documented JSON error with a 4xx status, and the server must keep serving afterwards.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile

import httpx
import numpy as np
import pytest
from pipeline_support import creature_glb_bytes, png_bytes, write_tiny_checkpoint
from service_support import Server, wait_for
from test_pipeline_inputs import bomb_png

from keydiff3d import __version__
from keydiff3d.mesh_io import MESH_FORMATS, load_mesh
from keydiff3d.service import API_VERSION
from keydiff3d_addon.rigcore import read_bundle

pytestmark = pytest.mark.slow

UPLOAD_LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("service")
    checkpoint = write_tiny_checkpoint(root / "tiny.safetensors")
    server = Server(root / "data", root / "home", "--checkpoint", str(checkpoint), "--max-upload-mb", "2").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client


def submit_mesh(
    client: httpx.Client, data: bytes, options: dict | None = None, name: str = "creature.glb"
) -> httpx.Response:
    fields = {"options": json.dumps(options)} if options is not None else {}
    return client.post("/v1/jobs", files={"mesh": (name, data, "model/gltf-binary")}, data=fields)


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


def test_health_reports_version_device_and_models(client):
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["version"] == __version__ and health["api_version"] == API_VERSION
    assert health["device"] in ("cpu", "cuda") and health["ready"] is True
    assert any(name.endswith("tiny.safetensors:cpu") or "tiny.safetensors" in name for name in health["models_loaded"])


def test_openapi_documents_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/health", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result"} <= set(paths)
    form = paths["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    described = form["schema"]["properties"]["mesh"]["description"]
    assert all(f".{suffix}" in described for suffix in MESH_FORMATS), described  # .off too
    assert client.get("/docs").status_code == 200


def test_mesh_job_end_to_end(client, tmp_path):
    data = creature_glb_bytes("biped", 3)
    response = submit_mesh(client, data, {"preset": "biped"})
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued" and response.headers["location"] == f"/v1/jobs/{job['id']}"
    final = wait_for(client, job["id"])
    assert final["status"] == "done" and final["progress"] == 1.0 and final["error"] is None
    assert {"views", "keypoints", "rig"} <= set(final["timings"])
    result = client.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(result.content))
    assert {"rig.json", "mesh.ply", "skin.npz", "rig.glb", "preview.png"} <= set(archive.namelist())
    bundle = read_bundle(save(result.content, tmp_path / "bundle.zip"))
    uploaded = load_mesh(data, "glb")
    np.testing.assert_allclose(bundle.vertices, uploaded.vertices, atol=1e-5)
    assert bundle.provenance["preset"] == "biped"


def save(content: bytes, path):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "field, payload, status, code",
    [
        ("image", (b"\x00\x01garbage" * 64, "image/png"), 415, "unsupported_format"),
        ("image", (b"", "image/png"), 400, "bad_input"),
        ("image", (png_bytes(64, 64)[:150], "image/png"), 400, "bad_input"),
        ("image", (png_bytes(1, 1), "image/png"), 400, "bad_input"),
        ("image", (bomb_png(20000), "image/png"), 413, "too_large"),
        ("mesh", (b"not a mesh at all" * 10, "model/gltf-binary"), 400, "bad_input"),
        ("mesh", (b"", "model/gltf-binary"), 400, "bad_input"),
    ],
    ids=["garbage", "empty-image", "truncated-png", "1x1", "bomb-20000x20000", "garbage-mesh", "empty-mesh"],
)
def test_bad_uploads_get_json_errors_and_the_server_survives(client, field, payload, status, code):
    data, content_type = payload
    name = "upload.glb" if field == "mesh" else "upload.png"
    assert_error(client.post("/v1/jobs", files={field: (name, data, content_type)}), status, code)
    assert client.get("/v1/health").status_code == 200


def test_wrong_content_type_and_form_shape(client):
    assert_error(client.post("/v1/jobs", json={"image": "x"}), 415, "unsupported_media_type")
    assert_error(
        client.post("/v1/jobs", content=b"raw", headers={"content-type": "image/png"}), 415, "unsupported_media_type"
    )
    glb = creature_glb_bytes()
    assert_error(
        client.post("/v1/jobs", files={"mesh": ("a.glb", glb), "image": ("a.png", png_bytes(64, 64))}),
        400,
        "bad_request",
    )
    assert_error(client.post("/v1/jobs", files={"picture": ("a.png", png_bytes(64, 64))}), 400, "bad_request")
    assert_error(client.post("/v1/jobs", data={"mesh": "not a file"}, files={"x": ("", b"")}), 400, "bad_request")
    assert_error(client.post("/v1/jobs", files={"mesh": ("creature.fbx", glb)}), 415, "unsupported_format")


def test_bad_options(client):
    glb = creature_glb_bytes()
    assert_error(submit_mesh(client, glb, {"preset": "x" * 20000}), 413, "too_large")
    assert_error(
        client.post("/v1/jobs", files={"mesh": ("a.glb", glb)}, data={"options": "{not json"}), 400, "bad_input"
    )
    assert_error(submit_mesh(client, glb, {"colour": "red"}), 400, "bad_input")
    assert_error(submit_mesh(client, glb, {"seed": "seven"}), 400, "bad_input")
    error = assert_error(submit_mesh(client, glb, {"checkpoint": "/etc/passwd"}), 400, "bad_input")
    assert "chosen by the server" in error["message"]


def test_oversized_bodies_are_refused_declared_or_streamed(client, server):
    big = b"\x00" * (UPLOAD_LIMIT + 1000)
    assert_error(client.post("/v1/jobs", files={"image": ("big.png", big)}), 413, "too_large")

    def chunks():  # a valid multipart body without Content-Length: the limit must hold while streaming
        yield (
            b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        )
        for _ in range(UPLOAD_LIMIT // 65536 + 8):
            yield b"\x00" * 65536
        yield b"\r\n--xyz--\r\n"

    headers = {"content-type": "multipart/form-data; boundary=xyz"}
    assert_error(client.post("/v1/jobs", content=chunks(), headers=headers), 413, "too_large")
    assert client.get("/v1/health").status_code == 200


@pytest.mark.parametrize(
    "job_id", ["0" * 32, "abc", "..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "a" * 5000, "0" * 31 + "g"]
)
def test_unknown_and_path_like_ids_are_404(client, job_id):
    for method, path in (
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/result"),
        ("DELETE", f"/v1/jobs/{job_id}"),
    ):
        response = client.request(method, path)
        assert_error(response, 404, "not_found")


def test_unknown_endpoint_and_method(client):
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    assert_error(client.put("/v1/jobs"), 405, "method_not_allowed")


def test_concurrent_submissions_keep_order_and_results_apart(client, tmp_path):
    inputs = [creature_glb_bytes(category, seed) for category, seed in (("quadruped", 11), ("bird", 12), ("biped", 13))]
    ids: list[str | None] = [None] * len(inputs)
    barrier = threading.Barrier(len(inputs))

    def send(i: int) -> None:
        barrier.wait()
        with httpx.Client(base_url=client.base_url, timeout=30.0) as own:
            ids[i] = submit_mesh(own, inputs[i]).json()["id"]

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    jobs = [wait_for(client, job_id) for job_id in ids]
    assert [job["status"] for job in jobs] == ["done"] * len(inputs)
    by_creation = sorted(jobs, key=lambda job: job["created_at"])
    starts = [job["started_at"] for job in by_creation]
    assert starts == sorted(starts)  # FIFO: started in the order they were accepted
    for job, data in zip(jobs, inputs):  # each result is the rig of its own upload
        bundle = read_bundle(save(client.get(f"/v1/jobs/{job['id']}/result").content, tmp_path / f"{job['id']}.zip"))
        np.testing.assert_allclose(bundle.vertices, load_mesh(data, "glb").vertices, atol=1e-5)


def test_cancel_queued_and_running_jobs(client):
    glb = creature_glb_bytes("quadruped", 21)
    running = submit_mesh(client, glb).json()["id"]
    queued = submit_mesh(client, glb).json()["id"]
    wait_for(client, running, statuses=("running",), poll=0.02)
    answer = client.delete(f"/v1/jobs/{queued}")
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    answer = client.delete(f"/v1/jobs/{running}")
    assert answer.status_code in (200, 202) and answer.json()["cancel_requested"] is True
    assert wait_for(client, running)["status"] == "cancelled"
    assert_error(client.get(f"/v1/jobs/{running}/result"), 409, "not_ready")
    again = client.delete(f"/v1/jobs/{running}")  # cancelling a finished job changes nothing
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_image_job_without_sv3d_weights_fails_cleanly(client):
    job = client.post("/v1/jobs", files={"image": ("creature.png", png_bytes(96, 96))}).json()
    final = wait_for(client, job["id"])
    assert final["status"] == "failed"
    assert final["error"]["code"] == "missing_weights" and "sv3d_p.safetensors" in final["error"]["message"]
    error = assert_error(client.get(f"/v1/jobs/{job['id']}/result"), 409, "job_failed")
    assert "sv3d" in error["message"].lower()
    assert client.get("/v1/health").json()["status"] == "ok"
