"""Synthetic world throughput: creatures per second for `keydiff3d synth`, render time per view.

Measures, in one run on this machine:
  1. generate + render one creature (21 views, --size px) in-process, per category (CPU seconds);
  2. `write_dataset` end to end (generate, render, uint8, compressed shards) with 1 and --workers
     processes: creatures per second of wall time;
  3. render time per view against image size (plot), and, as the comparison, trimesh's pure-numpy
     ray caster on the same mesh and view (what a renderer without rasterisation would cost).
Writes synthetic.json and synthetic_render.png to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=128, help="data set image size (default 128)")
    parser.add_argument("--n", type=int, default=48, help="creatures for the end-to-end synth timing")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the parallel run")
    parser.add_argument("--out", default="docs/bench", help="folder for synthetic.json and synthetic_render.png")


def _cpu_all() -> float:
    """CPU seconds of this process plus its finished child processes (the synth workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _cpu(fn, repeat: int = 1) -> float:
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat


def run(args: argparse.Namespace) -> int:
    from keydiff3d.geometry import orbit_cameras
    from keydiff3d.synthetic import CATEGORIES, generate_creature
    from keydiff3d.synthetic.dataset import SynthConfig, write_dataset
    from keydiff3d.synthetic.renderer import render_multiview

    results: dict = {"size": args.size, "views": 21}
    cams = orbit_cameras(size=args.size)
    per_category = {}
    for category in CATEGORIES:
        creatures = [generate_creature(category, s, detail=0.5) for s in range(4)]
        gen = _cpu(lambda: [generate_creature(category, s, detail=0.5) for s in range(4)]) / 4
        render = sum(_cpu(lambda c=c: render_multiview(c, cams)) for c in creatures) / 4
        per_category[category] = {
            "generate_s": gen,
            "render_21_views_s": render,
            "triangles": int(np.mean([len(c.faces) for c in creatures])),
        }
        print(
            f"{category:10s} generate {gen * 1e3:6.1f} ms  render 21 views {render * 1e3:6.1f} ms "
            f"({render / 21 * 1e3:.1f} ms/view)  {per_category[category]['triangles']} triangles"
        )
    results["per_category_cpu"] = per_category

    synth = {}
    for workers in sorted({1, args.workers}):
        with tempfile.TemporaryDirectory() as tmp:
            config = SynthConfig(n=args.n, size=args.size, seed=123)
            start, cpu0 = time.perf_counter(), _cpu_all()
            write_dataset(tmp, config, workers=workers)
            wall, cpu = time.perf_counter() - start, _cpu_all() - cpu0
            size_mb = sum(f.stat().st_size for f in Path(tmp).glob("*.npz")) / 1e6
        synth[workers] = {
            "creatures_per_s": args.n / wall,
            "wall_s": wall,
            "cpu_s_per_creature": cpu / args.n,
            "mb_per_creature": size_mb / args.n,
        }
        print(
            f"synth --workers {workers}: {args.n / wall:.1f} creatures/s ({wall:.1f} s wall for {args.n}), "
            f"{cpu / args.n * 1e3:.0f} ms CPU per creature, {size_mb / args.n:.2f} MB per creature on disk"
        )
    results["load_average_1min"] = os.getloadavg()[0]
    print(f"load average during the run: {results['load_average_1min']:.1f} (other processes share the cores)")
    results["synth"] = synth

    sizes = [64, 128, 256, 576]
    creature = generate_creature("quadruped", 0)
    ms_per_view = []
    for size in sizes:
        c = orbit_cameras(size=size)
        ms_per_view.append(_cpu(lambda: render_multiview(creature, c)) / 21 * 1e3)
        print(f"render {size:4d} px: {ms_per_view[-1]:.1f} ms per view ({len(creature.faces)} triangles, detail 1.0)")
    results["render_ms_per_view_by_size"] = dict(zip(map(str, sizes), ms_per_view))
    results["render_triangles"] = len(creature.faces)

    ray_ms = _ray_cast_ms(creature, 64)
    raster_ms = _cpu(lambda: render_multiview(creature, orbit_cameras(np.array([0.0]), size=64)), repeat=3) * 1e3
    results["one_view_64px_ms"] = {"rasteriser": raster_ms, "trimesh_ray_caster": ray_ms}
    print(
        f"one view at 64 px: rasteriser {raster_ms:.1f} ms vs trimesh ray caster {ray_ms:.0f} ms "
        f"({ray_ms / raster_ms:.0f}x)"
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "synthetic.json").write_text(json.dumps(results, indent=1))
    _plot(out / "synthetic_render.png", sizes, ms_per_view, results)
    print(f"wrote {out / 'synthetic.json'} and {out / 'synthetic_render.png'}")
    return 0


def _ray_cast_ms(creature, size: int) -> float:
    """One view with trimesh's numpy ray/triangle intersector (first hit per pixel centre)."""
    import trimesh

    from keydiff3d.geometry import orbit_cameras

    cams = orbit_cameras(np.array([0.0]), size=size)
    K, R, t = cams.K[0], cams.R[0], cams.t[0]
    j, i = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    d = np.stack([j.ravel(), i.ravel(), np.ones(j.size)], 1) @ np.linalg.inv(K).T @ R
    origins = np.broadcast_to(-R.T @ t, d.shape)
    caster = trimesh.ray.ray_triangle.RayMeshIntersector(creature.to_trimesh())
    return _cpu(lambda: caster.intersects_location(origins, d, multiple_hits=False)) * 1e3


def _plot(path: Path, sizes, ms_per_view, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(sizes, ms_per_view, "o-")
    a.set_xlabel("image size (px)")
    a.set_ylabel("CPU ms per view")
    a.set_title(f"render time per view ({results['render_triangles']}-triangle creature)")
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.grid(True, which="both", alpha=0.3)
    workers = list(results["synth"])
    x = np.arange(len(workers))
    wall = [results["synth"][w]["creatures_per_s"] for w in workers]
    ideal = [w / results["synth"][w]["cpu_s_per_creature"] for w in workers]  # CPU cost on w idle cores
    b.bar(x - 0.2, wall, 0.4, label="measured (shared machine)")
    b.bar(x + 0.2, ideal, 0.4, label="from CPU time, idle cores")
    b.set_xticks(x, [f"{w} worker(s)" for w in workers])
    b.set_ylabel("creatures / s (21 views)")
    b.set_title(f"keydiff3d synth at {results['size']} px (load {results['load_average_1min']:.1f})")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
