"""`keydiff3d bench service`: per-stage latency and jobs per minute of the mesh path, through the
HTTP service and, for comparison in the same run, the same pipeline called directly in-process.

The service side starts a real `keydiff3d serve` subprocess on a free loopback port, submits
`--jobs` procedural creatures (GLB, 4 categories, different seeds) at once and polls them; latency
= submit -> done as a client sees it, throughput = jobs / wall time of the whole batch (one worker).
The direct side runs `run_mesh_pipeline` on the same meshes in this process. The difference is the
service's overhead (upload + parsing + queue + zip + download). Writes service.json and service.png.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CATEGORIES = ("quadruped", "biped", "bird", "limbtree")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=8, help="mesh jobs per side (default 8)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="keypoint checkpoint (default: the shipped one, else a tiny random one)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="cpu", help="pipeline device (default cpu)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/bench"), help="folder for service.json and service.png")


def _creature_glbs(count: int) -> list[bytes]:
    from keydiff3d.mesh_io import to_gltf_frame
    from keydiff3d.synthetic.creatures import generate_creature

    glbs = []
    for i in range(count):
        mesh = generate_creature(CATEGORIES[i % len(CATEGORIES)], 100 + i).to_trimesh()
        glbs.append(to_gltf_frame(mesh).export(file_type="glb"))  # glTF is y up, as Blender exports it
    return glbs


def _checkpoint(path: Path | None, scratch: Path) -> tuple[str, str]:
    from keydiff3d.model.checkpoint import DEFAULT_CHECKPOINT
    from keydiff3d.training.checkpoint import build_model, save_checkpoint
    from keydiff3d.training.config import load_config

    if path is not None:
        return str(path.resolve()), "given"
    if DEFAULT_CHECKPOINT.is_file():
        return str(DEFAULT_CHECKPOINT), "shipped default"
    config = load_config("tiny")
    tiny = scratch / "tiny.safetensors"
    save_checkpoint(tiny, build_model(config), config, {"note": "random weights (benchmark fallback)"})
    return str(tiny), "tiny random (no shipped checkpoint found)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(checkpoint: str, device: str, scratch: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "keydiff3d.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(scratch / "data"),
        "--checkpoint",
        checkpoint,
        "--device",
        device,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).json().get("ready"):
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the benchmark server did not start")


def _service_side(url: str, glbs: list[bytes]) -> dict:
    import httpx

    with httpx.Client(base_url=url, timeout=120) as client:
        health_ms = []
        for _ in range(20):
            began = time.perf_counter()
            client.get("/v1/health")
            health_ms.append(1000 * (time.perf_counter() - began))
        began = time.perf_counter()
        submitted = {}
        for i, data in enumerate(glbs):
            job = client.post("/v1/jobs", files={"mesh": (f"creature{i}.glb", data)}).json()
            submitted[job["id"]] = time.perf_counter()
        done: dict[str, dict] = {}
        latencies = {}
        while len(done) < len(submitted):
            for job_id in submitted:
                if job_id in done:
                    continue
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("done", "failed", "cancelled"):
                    client.get(f"/v1/jobs/{job_id}/result")  # the download is part of what a client waits for
                    latencies[job_id] = time.perf_counter() - submitted[job_id]
                    done[job_id] = job
            time.sleep(0.05)
        wall = time.perf_counter() - began
    failed = [j["error"] for j in done.values() if j["status"] != "done"]
    if failed:
        raise RuntimeError(f"benchmark jobs failed: {failed[0]}")
    stages = _mean_stages([j["timings"] for j in done.values()])
    run_s = [j["finished_at"] - j["started_at"] for j in done.values()]
    return {
        "jobs": len(glbs),
        "wall_s": wall,
        "jobs_per_minute": 60 * len(glbs) / wall,
        "run_s_mean": float(np.mean(run_s)),
        "latency_s": {
            "first": min(latencies.values()),
            "median": float(np.median(list(latencies.values()))),
            "max": max(latencies.values()),
        },
        "stages_s": stages,
        "health_ms_median": float(np.median(health_ms)),
    }


def _direct_side(glbs: list[bytes], checkpoint: str, device: str, scratch: Path) -> dict:
    from keydiff3d.mesh_io import load_mesh
    from keydiff3d.pipeline.options import PipelineOptions
    from keydiff3d.pipeline.run import run_mesh_pipeline

    options = PipelineOptions(checkpoint=checkpoint, device=device)
    timings, began = [], time.perf_counter()
    for i, data in enumerate(glbs):
        result = run_mesh_pipeline(load_mesh(data, "glb"), options, out_dir=scratch / f"direct{i}")
        timings.append(result.timings)
    wall = time.perf_counter() - began
    return {
        "jobs": len(glbs),
        "wall_s": wall,
        "jobs_per_minute": 60 * len(glbs) / wall,
        "stages_s": _mean_stages(timings),
    }


def _mean_stages(timings: list[dict]) -> dict[str, float]:
    names = [k for k in timings[0]]
    return {name: float(np.mean([t.get(name, 0.0) for t in timings])) for name in names}


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    service, direct = result["service"], result["direct"]
    stages = list(direct["stages_s"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for x, (label, side) in enumerate((("direct", direct), ("service", service))):
        bottom = 0.0
        for i, stage in enumerate(stages):
            value = side["stages_s"].get(stage, 0.0)
            left.bar(x, value, bottom=bottom, color=f"C{i}", label=stage if x == 0 else None)
            bottom += value
        if label == "service":
            left.bar(
                x,
                service["run_s_mean"] - bottom,
                bottom=bottom,
                color="0.6",
                label="bundle files + zip + job bookkeeping",
            )
    left.set_xticks([0, 1], ["direct call", "through the service"])
    left.set_ylabel("seconds per mesh job (mean)")
    left.set_title("mesh path: per-stage time")
    left.legend(fontsize=8)
    right.bar([0, 1], [direct["jobs_per_minute"], service["jobs_per_minute"]], color=["C0", "C1"])
    right.set_xticks([0, 1], ["direct call", "service (1 worker)"])
    right.set_ylabel("jobs per minute")
    right.set_title(f"throughput, {service['jobs']} jobs, {result['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll would drown the result

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="keydiff3d-bench-service-") as tmp:
        scratch = Path(tmp)
        checkpoint, origin = _checkpoint(args.checkpoint, scratch)
        glbs = _creature_glbs(args.jobs)
        process, url = _serve(checkpoint, args.device, scratch)
        try:
            service = _service_side(url, glbs)
        finally:
            process.terminate()
            process.wait(30)
        direct = _direct_side(glbs, checkpoint, args.device, scratch)
    result = {
        "command": "keydiff3d bench service " + " ".join(sys.argv[3:]),
        "machine": f"{os.cpu_count()} CPU cores"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""),
        "device": args.device,
        "checkpoint": origin,
        "service": service,
        "direct": direct,
    }
    (args.out / "service.json").write_text(json.dumps(result, indent=1))
    _plot(result, args.out / "service.png")
    print(json.dumps(result, indent=1))
    return 0
