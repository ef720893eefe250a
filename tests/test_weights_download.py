"""`keydiff3d weights --download` and `/v1/models` against a local server in the Hugging Face Hub's layout
(hub_support.py): gated repositories and tokens, resuming a dropped transfer, checksums, progress,
cancellation, and the backend endpoint the add-on's preferences use (a real `keydiff3d serve`)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import httpx
import pytest
from hub_support import CUT_AT, LocalHub
from service_support import Server, isolated_env

from keydiff3d import weights
from keydiff3d.errors import Cancelled, MissingWeightsError
from keydiff3d.multiview.sv3d.testing import write_tiny_sv3d_checkpoint
from keydiff3d.progress import Progress
from keydiff3d.weights_download import download

TOKEN = "hf_local_test_token"
SV3D_REPO, SVD_REPO = "stabilityai/sv3d", "stabilityai/stable-video-diffusion-img2vid-xt"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """A tiny SV3D-p file and SVD-xt folder in the real files' formats (they pass `weights` validation)."""
    root = tmp_path_factory.mktemp("tiny")
    return write_tiny_sv3d_checkpoint(root / "sv3d" / "sv3d_p.safetensors", svd_xt=root / "svd")


@pytest.fixture
def hub(tiny_files):
    """Both repositories gated, as on the Hub, with only the files the registry names."""
    svd_files = weights.SPECS["svd_xt"].download.files
    repos = {
        SV3D_REPO: {"sv3d_p.safetensors": tiny_files.sv3d.read_bytes(), "README.md": b"# SV3D\n"},
        SVD_REPO: {name: (tiny_files.svd_xt / name).read_bytes() for name in svd_files},
    }
    server = LocalHub(repos, gated={SV3D_REPO: TOKEN, SVD_REPO: TOKEN}).start()
    yield server
    server.stop()


def cli_env(tmp_path, hub) -> dict[str, str]:
    env = isolated_env(tmp_path / "home")
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf"),
        KEYDIFF3D_WEIGHTS_DIR=str(tmp_path / "weights"),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_TOKEN", None)
    return env


def keydiff3d(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keydiff3d.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_cli_downloads_a_gated_model_resuming_a_dropped_transfer(tmp_path, hub, tiny_files):
    env = cli_env(tmp_path, hub)
    refused = keydiff3d(env, "weights", "--download", "sv3d_p")
    assert refused.returncode == 2
    assert refused.stderr.count("keydiff3d weights:") == 1  # after the progress bar's last frame: one sentence
    message = refused.stderr.split("keydiff3d weights:")[1].splitlines()[0]
    assert "gated" in message and f"https://huggingface.co/{SV3D_REPO}" in message
    assert "--token" in message and not (tmp_path / "weights" / "sv3d_p.safetensors").exists()

    hub.interrupt.add((SV3D_REPO, "sv3d_p.safetensors"))  # the first transfer breaks off halfway
    done = keydiff3d(env, "weights", "--download", "sv3d_p", "--token", TOKEN)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "weights" / "sv3d_p.safetensors"
    assert done.stdout.strip().splitlines()[-1] == f"sv3d_p: {target}"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(tiny_files.sv3d.read_bytes()).hexdigest()
    gets = hub.gets("/sv3d_p.safetensors")
    size = tiny_files.sv3d.stat().st_size
    assert len(gets) == 2 and gets[0].range is None and gets[1].range.startswith("bytes=")
    assert 0 < int(gets[1].range[6:-1]) <= CUT_AT * size  # resumed from what arrived before the drop
    assert all(g.authorization == f"Bearer {TOKEN}" for g in gets)
    assert not hub.gets("README.md")  # only the files the registry names

    report = json.loads(keydiff3d(env, "weights", "--json", "--no-checksums").stdout)
    row = next(r for r in report["weights"] if r["name"] == "sv3d_p")
    assert row["valid"] and row["origin"] == "weights folder" and row["downloadable"] and row["gated"]

    again = keydiff3d(env, "weights", "--download", "sv3d_p", "--token", TOKEN)
    assert again.returncode == 0 and len(hub.gets("/sv3d_p.safetensors")) == 2  # already there: not fetched again


def test_a_file_that_does_not_match_its_checksum_is_removed(tmp_path, hub, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # conftest keeps tests offline
    good = hub.repos[SVD_REPO]["vae/diffusion_pytorch_model.safetensors"]
    served = bytearray(good)
    served[-1] ^= 0xFF  # same size, one byte off: only the checksum can tell
    original_answer = hub._answer

    def corrupt(handler, body):
        if body and handler.path.endswith("vae/diffusion_pytorch_model.safetensors"):
            hub.repos[SVD_REPO]["vae/diffusion_pytorch_model.safetensors"] = bytes(served)
            try:
                return original_answer(handler, body)
            finally:
                hub.repos[SVD_REPO]["vae/diffusion_pytorch_model.safetensors"] = good
        return original_answer(handler, body)

    hub._answer = corrupt
    with pytest.raises(MissingWeightsError, match="does not match the checksum"):
        download("svd_xt", token=TOKEN, endpoint=hub.url, target_root=tmp_path / "weights")
    assert not (
        tmp_path / "weights" / "stable-video-diffusion-img2vid-xt" / "vae" / "diffusion_pytorch_model.safetensors"
    ).exists()
    hub._answer = original_answer
    path = download("svd_xt", token=TOKEN, endpoint=hub.url, target_root=tmp_path / "weights")
    assert weights.validate_svd_xt(path)  # a real SVD-xt folder once the right bytes arrived


def test_download_reports_progress_and_a_cancelled_one_keeps_finished_files(tmp_path, hub, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    seen = []

    names = weights.SPECS["svd_xt"].download.files

    def cancel_before_the_last_file(stage, fraction, message):
        seen.append((stage, fraction, message))
        if message == "image_encoder/config.json":
            progress.cancel()  # the next update (the last file's first chunk) raises Cancelled

    progress = Progress(cancel_before_the_last_file)
    counted = []
    with pytest.raises(Cancelled):
        download(
            "svd_xt",
            token=TOKEN,
            endpoint=hub.url,
            target_root=tmp_path / "weights",
            progress=progress,
            on_bytes=lambda done, total: counted.append((done, total)),
        )
    total = sum(len(hub.repos[SVD_REPO][name]) for name in names)
    assert counted[0] == (0, total) and {t for _, t in counted} == {total}  # the entry's size, known up front
    assert all(a[0] <= b[0] for a, b in zip(counted, counted[1:]))  # bytes only grow
    finished = sum(len(hub.repos[SVD_REPO][name]) for name in names[:3])
    assert finished < max(done for done, _ in counted) <= total  # three files and the last one's first chunk
    files = [m for _, _, m in seen if m in names]
    assert list(dict.fromkeys(files)) == list(names[:3])  # byte progress per file, in order
    assert all(a[1] <= b[1] for a, b in zip(seen, seen[1:]))
    folder = tmp_path / "weights" / "stable-video-diffusion-img2vid-xt"
    assert (folder / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    assert not (folder / "image_encoder" / "model.safetensors").exists()  # no half file under the final name

    seen.clear()
    before = {name: len(hub.gets(name)) for name in names}
    again = Progress(lambda *report: seen.append(report))
    path = download("svd_xt", token=TOKEN, endpoint=hub.url, target_root=tmp_path / "weights", progress=again)
    assert seen[-1][0] == "done" and seen[-1][1] == 1.0 and weights.validate_svd_xt(path)
    fetched = {name for name, count in before.items() if len(hub.gets(name)) > count}
    assert fetched == {"image_encoder/model.safetensors"}  # the finished files were kept


def test_entries_not_on_the_hub_are_refused_clearly():
    from keydiff3d.errors import ConfigError

    assert {n for n, s in weights.SPECS.items() if s.download} == {"sv3d_p", "svd_xt", "grounding_dino"}
    with pytest.raises(
        ConfigError, match="not published on the Hugging Face Hub; get it from https://github.com/facebookresearch"
    ):
        download("sam")
    for spec in weights.SPECS.values():  # the downloaded files land where `locate` looks first
        if spec.download is not None:
            assert (spec.download.folder or spec.download.files[0]) == spec.candidates[0]


@pytest.mark.slow
def test_backend_models_endpoint_downloads_and_reports(tmp_path, hub, tiny_files):
    """GET /v1/models and POST/DELETE /v1/models/{name}/download on a real `keydiff3d serve`."""
    env = {k: v for k, v in cli_env(tmp_path, hub).items() if k.startswith(("HF_", "KEYDIFF3D_"))}
    server = Server(tmp_path / "data", tmp_path / "home", "--no-warm-up", env={**env, "HF_HUB_OFFLINE": "0"}).start()
    try:
        client = httpx.Client(base_url=server.url, timeout=10)
        listing = client.get("/v1/models").json()
        assert listing["weights_dir"] == str(tmp_path / "weights")
        rows = {r["name"]: r for r in listing["models"]}
        assert not rows["sv3d_p"]["present"] and rows["sv3d_p"]["gated"] and rows["sv3d_p"]["download"] is None
        assert client.post("/v1/models/nope/download").json()["error"]["code"] == "not_found"
        assert client.post("/v1/models/sam/download").status_code == 400

        failed = client.post("/v1/models/sv3d_p/download")  # no token: the gated repository refuses
        assert failed.status_code == 202
        state = wait_download(client, "sv3d_p")
        assert state["status"] == "failed" and "gated" in state["error"]["message"]

        started = client.post("/v1/models/sv3d_p/download", json={"token": TOKEN})
        assert started.status_code == 202 and started.json()["status"] == "downloading"
        state = wait_download(client, "sv3d_p")
        assert state["status"] == "done" and state["progress"] == 1.0
        size = tiny_files.sv3d.stat().st_size  # the bytes the Hub sent, as the add-on shows them (MiB)
        assert state["bytes_done"] == state["bytes_total"] == size
        row = next(r for r in client.get("/v1/models").json()["models"] if r["name"] == "sv3d_p")
        assert row["valid"] and row["path"] == str(tmp_path / "weights" / "sv3d_p.safetensors")
        assert TOKEN not in server.log.read_text()  # the token is never logged
    finally:
        server.stop()


def wait_download(client: httpx.Client, name: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = next(r for r in client.get("/v1/models").json()["models"] if r["name"] == name)
        if row["download"] and row["download"]["status"] != "downloading":
            return row["download"]
        time.sleep(0.1)
    raise AssertionError(f"the download of {name} did not end within {timeout} s")
