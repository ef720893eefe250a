"""`keydiff3d bench model`: seconds per training step of the KeyDiff3D model across sizes.

One training step = forward + backward + AdamW update on random views (the cost does not depend on
the content), batch B objects x K views, N keypoints. Reports the median wall time and process CPU
time (robust on a shared machine: it does not count waiting for the cores) of `--steps` timed
steps after one warm-up, for every voxel size M in `--voxels` and map size in `--maps`, and the variants
(K=1, triangulation, supervised) at the first M / map size - the numbers the training budget of
`keydiff3d train` / `bench keypoints` is planned from. Writes a table (stdout + JSON) and a plot.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--voxels", type=int, nargs="+", default=[16, 24, 32], help="voxel sizes M to time")
    parser.add_argument("--maps", type=int, nargs="+", default=[32, 64], help="structure-map / reconstruction sizes")
    parser.add_argument("--keypoints", type=int, default=18)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench_model"), help="folder for results.json and the plot")


def _time_steps(config, batch_size: int, steps: int, device: str) -> tuple[float, float]:
    """Median (wall seconds, process CPU seconds) per training step."""
    import numpy as np
    import torch

    from keydiff3d.geometry import orbit_cameras
    from keydiff3d.model import KeyDiff3D, batch_from_arrays, collate, select_views

    torch.manual_seed(0)
    model = KeyDiff3D(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameter_groups())
    size = config.image_size
    cameras = orbit_cameras(size=size)
    rng = np.random.default_rng(0)
    images = rng.random((21, size, size, 3), dtype=np.float32)
    masks = (rng.random((21, size, size)) > 0.5).astype(np.float32)
    joints = rng.uniform(-0.4, 0.4, (config.num_keypoints, 3))
    batch = collate(
        [
            batch_from_arrays(
                images, masks, cameras, select_views(cameras, 20, config.num_views, rng), size, joints=joints
            )
            for _ in range(batch_size)
        ]
    ).to(device)
    wall, cpu = [], []
    for step in range(steps + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        out = model(batch)
        optimizer.zero_grad()
        out.losses["total"].backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step > 0:  # the first step pays one-time allocations
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def run(args: argparse.Namespace) -> int:
    import torch

    from keydiff3d.model import KeyDiff3DConfig
    from keydiff3d.progress import tqdm_progress

    torch.set_num_threads(args.threads)
    base = dict(num_keypoints=args.keypoints, image_size=args.image_size, perceptual_loss="pyramid")
    jobs = [(f"M={m} map={p}", dict(voxel_size=m, map_size=p)) for p in args.maps for m in args.voxels]
    first = dict(voxel_size=args.voxels[0], map_size=args.maps[0])
    jobs += [
        (f"K=1 M={first['voxel_size']} map={first['map_size']}", {**first, "num_views": 1}),
        (f"triangulation map={first['map_size']}", {**first, "lifting": "triangulation"}),
        (
            f"supervised M={first['voxel_size']}",
            {**first, "supervision": "joints", "lambda_perceptual": 0.0, "lambda_mask": 0.0},
        ),
    ]
    progress = tqdm_progress("bench model")
    rows = []
    for i, (name, changes) in enumerate(jobs):
        progress.update(i / len(jobs), name, stage="timing")
        config = KeyDiff3DConfig(**{**base, **changes})
        wall, cpu = _time_steps(config, args.batch, args.steps, args.device)
        rows.append(
            {"name": name, **changes, "seconds_per_step": round(wall, 3), "cpu_seconds_per_step": round(cpu, 3)}
        )
    progress.update(1.0, "done", stage="done")

    args.out.mkdir(parents=True, exist_ok=True)
    setup = {
        "device": args.device,
        "threads": args.threads,
        "batch": args.batch,
        "views": 4,
        "keypoints": args.keypoints,
        "image_size": args.image_size,
    }
    (args.out / "results.json").write_text(json.dumps({"setup": setup, "rows": rows}, indent=1))
    print(
        f"\nKeyDiff3D training step, B={args.batch}, K=4, N={args.keypoints}, image {args.image_size} px, "
        f"{args.threads} threads on {args.device}"
    )
    print(f"{'configuration':<28} {'wall s/step':>12} {'CPU s/step':>11}")
    for row in rows:
        print(f"{row['name']:<28} {row['seconds_per_step']:>12.3f} {row['cpu_seconds_per_step']:>11.3f}")
    _plot(rows, args)
    return 0


def _plot(rows: list[dict], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for map_size in args.maps:
        points = [
            (r["voxel_size"], r["cpu_seconds_per_step"])
            for r in rows
            if r["name"] == f"M={r['voxel_size']} map={map_size}"
        ]
        ax.plot(*zip(*points), marker="o", label=f"maps {map_size} px")
    ax.set_xlabel("voxel size M")
    ax.set_ylabel("CPU seconds per training step")
    ax.set_title(f"B={args.batch}, K=4, N={args.keypoints}, {args.threads} threads, {args.device}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "model_step_time.png", dpi=120)
    print(f"plot: {args.out / 'model_step_time.png'}")
