"""The add-on's model downloads (preferences): the backend lists its weight files and downloads a missing
one from the Hub; the add-on's steps in the bpy module against a real `keydiff3d serve` whose Hub is a
local server in the Hub's layout (hub_support.py)."""

from __future__ import annotations

import pytest
from bpy_fixtures import addon, bpy  # noqa: F401  (fixtures)
from hub_support import LocalHub
from service_support import Server

from keydiff3d import weights
from keydiff3d.multiview.sv3d.testing import write_tiny_svd_xt
from keydiff3d_addon.client import ModelsWatch

pytestmark = [pytest.mark.bpy, pytest.mark.slow]

TOKEN = "hf_local_test_token"
SVD_REPO = "stabilityai/stable-video-diffusion-img2vid-xt"


@pytest.fixture
def backend(tmp_path):
    folder = write_tiny_svd_xt(tmp_path / "svd")
    hub = LocalHub(
        {SVD_REPO: {name: (folder / name).read_bytes() for name in weights.SPECS["svd_xt"].download.files}},
        gated={SVD_REPO: TOKEN},
    )
    hub.start()
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "hf"),
        "KEYDIFF3D_WEIGHTS_DIR": str(tmp_path / "weights"),
    }
    server = Server(tmp_path / "data", tmp_path / "home", "--no-warm-up", env=env).start()
    yield server, tmp_path / "weights", hub
    server.stop()
    hub.stop()


def test_preferences_list_models_and_download_one_on_the_backend(backend, addon):
    from keydiff3d_addon import remote

    server, weights_dir, hub = backend
    addon.backend_url = server.url
    listing = remote.refresh_models(bpy.context)
    rows = {row["name"]: row for row in listing["models"]}
    assert listing["weights_dir"] == str(weights_dir) and set(rows) == set(weights.SPECS)
    assert not rows["svd_xt"]["present"] and rows["svd_xt"]["downloadable"] and rows["svd_xt"]["gated"]
    assert not rows["sam"]["downloadable"]  # published elsewhere: the preferences say where to get it

    refused = remote.start_model_download(bpy.context, "svd_xt")  # no token for the gated repository
    assert refused.wait(timeout=120) == "failed" and "gated" in refused.describe() and "token" in refused.describe()

    addon.hub_token = TOKEN
    with pytest.raises(RuntimeError, match="poll\\(\\) No model download is running"):
        bpy.ops.keydiff3d.cancel_model_download()
    watch = remote.start_model_download(bpy.context, "svd_xt", addon.hub_token)
    assert remote.models_watch() is watch
    assert watch.wait(timeout=120) == "done", watch.describe()
    assert watch.fraction == 1.0 and "downloaded and checked" in watch.describe()
    sizes = sum(len(data) for data in hub.repos[SVD_REPO].values())
    assert watch.download["bytes_done"] == watch.download["bytes_total"] == sizes  # the server's own counts
    # what the preferences showed while it ran, drawn from the server's fields as they were sent
    running = ModelsWatch(watch.client, "svd_xt")
    running.download = {**watch.download, "status": "downloading", "bytes_done": sizes // 2, "file": "vae"}
    assert f"{sizes // 2 / 2**20:.0f} of {sizes / 2**20:.0f} MiB" in running.describe()
    row = next(r for r in remote.models_listing()["models"] if r["name"] == "svd_xt")
    assert row["valid"] and row["path"] == str(weights_dir / "stable-video-diffusion-img2vid-xt")
    assert weights.validate_svd_xt(weights_dir / "stable-video-diffusion-img2vid-xt")
