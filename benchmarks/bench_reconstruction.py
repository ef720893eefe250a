"""`keydiff3d bench reconstruction`: visual hull vs Gaussian Frosting on synthetic creatures.

For each creature (known geometry): render the 21 SV3D-p orbit views, reconstruct with each
method, and score against the ground-truth surface (Chamfer % of the bbox diagonal, volume IoU,
normal consistency, PSNR of re-rendered views). Also strict carving (tolerance 0) against soft
voting (tolerance 1, the default), on clean masks and with one corrupted mask. On a machine without CUDA the frosting
rows say "needs CUDA". Writes results.json, a Markdown table and a PNG plot to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--categories", default="quadruped,biped,bird,limbtree")
    parser.add_argument("--seeds", type=int, default=1, help="creatures per category")
    parser.add_argument("--size", type=int, default=576, help="view size in pixels")
    parser.add_argument("--resolution", type=int, default=160, help="hull voxels per side")
    parser.add_argument("--faces", type=int, default=20_000)
    parser.add_argument("--preset", default="short", choices=("short", "medium", "long"))
    parser.add_argument("--methods", default="hull,frosting")
    parser.add_argument("--out", default="bench_reconstruction", help="folder for results.json, table.md, plot.png")


def _time(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _corrupt(masks: np.ndarray, view: int) -> np.ndarray:
    """One view loses the lower half of its mask (a generated view that dropped the legs)."""
    bad = masks.copy()
    bad[view, masks.shape[1] // 2 :] = 0.0
    return bad


def _gaussian_psnr(gaussians, views) -> float:
    import torch

    from keydiff3d.reconstruction.frosting.render import camera_tensors, rasterize_gsplat
    from keydiff3d.reconstruction.metrics import psnr

    g = gaussians.to("cuda").world()
    viewmats, Ks = camera_tensors(views.cameras, "cuda")
    images = []
    with torch.no_grad():
        for v in range(len(views.cameras)):
            render, _, _ = rasterize_gsplat(
                g.means,
                g.quats,
                g.scales,
                g.opacities,
                g.colors,
                viewmats[v : v + 1],
                Ks[v : v + 1],
                views.cameras.width,
                views.cameras.height,
                backgrounds=torch.ones(1, 3, device="cuda"),
            )
            images.append(render[0, ..., :3].cpu().numpy())
    return psnr(np.stack(images), views.images, views.masks)


def run(args: argparse.Namespace) -> int:
    import torch

    from keydiff3d.geometry import orbit_cameras
    from keydiff3d.reconstruction import HullConfig, reconstruct
    from keydiff3d.reconstruction.metrics import evaluate, rerender_psnr
    from keydiff3d.synthetic.creatures import generate_creature, watertight_mesh
    from keydiff3d.synthetic.renderer import render_multiview

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    methods = args.methods.split(",")
    hull = HullConfig(resolution=args.resolution, target_faces=args.faces)
    rows: list[dict] = []
    for category in args.categories.split(","):
        for seed in range(args.seeds):
            creature = generate_creature(category, seed)
            views = render_multiview(creature, orbit_cameras(size=args.size))
            truth = watertight_mesh(creature, resolution=128)
            name = f"{category}-{seed}"
            strict = HullConfig(**{**hull.__dict__, "tolerance": 0})
            cases = [("hull", views.masks, hull), ("hull, tolerance 0", views.masks, strict)]
            cases += [("hull, 1 bad mask, tolerance 0", _corrupt(views.masks, 5), strict)]
            cases += [("hull, 1 bad mask, tolerance 1", _corrupt(views.masks, 5), hull)]
            for label, masks, config in cases if "hull" in methods else []:
                result, wall, cpu = _time(lambda: reconstruct(views.images, masks, views.cameras, "hull", hull=config))
                quality = evaluate(result.mesh, truth)
                quality.psnr = rerender_psnr(result.mesh, views.images, views.masks, views.cameras)
                rows.append(
                    {
                        "creature": name,
                        "method": label,
                        "wall_s": wall,
                        "cpu_s": cpu,
                        **quality.to_dict(),
                        "watertight": result.report.watertight,
                        "faces": len(result.mesh.faces),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
            if "frosting" in methods:
                if not cuda:
                    rows.append({"creature": name, "method": f"frosting ({args.preset})", "note": "needs CUDA"})
                    print(json.dumps(rows[-1]), flush=True)
                    continue
                torch.cuda.reset_peak_memory_stats()
                result, wall, cpu = _time(
                    lambda: reconstruct(
                        views.images,
                        views.masks,
                        views.cameras,
                        "frosting",
                        preset=args.preset,
                        target_faces=args.faces,
                    )
                )
                quality = evaluate(result.mesh, truth)
                quality.psnr = rerender_psnr(result.mesh, views.images, views.masks, views.cameras)
                rows.append(
                    {
                        "creature": name,
                        "method": f"frosting ({args.preset})",
                        "wall_s": wall,
                        "cpu_s": cpu,
                        **quality.to_dict(),
                        "psnr_gaussians": _gaussian_psnr(result.gaussians, views),
                        "gaussians": len(result.gaussians),
                        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30,
                        "stages_s": result.timings,
                        "watertight": result.report.watertight,
                        "faces": len(result.mesh.faces),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    table = _table(rows)
    (out / "table.md").write_text(table)
    print(table)
    _plot(rows, out / "plot.png")
    return 0


def _table(rows: list[dict]) -> str:
    lines = [
        "| creature | method | wall s | CPU s | Chamfer % diag | volume IoU | normal cons. | PSNR dB | watertight |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "note" in r:
            lines.append(f"| {r['creature']} | {r['method']} | {r['note']} | | | | | | |")
            continue
        psnr = f"{r['psnr']:.1f}" + (f" (splats {r['psnr_gaussians']:.1f})" if "psnr_gaussians" in r else "")
        lines.append(
            f"| {r['creature']} | {r['method']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['chamfer_pct']:.2f} | "
            f"{r['volume_iou']:.3f} | {r['normal_consistency']:.3f} | {psnr} | {r['watertight']} |"
        )
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in rows if "note" not in r]
    if not scored:
        return
    creatures = sorted({r["creature"] for r in scored})
    methods = list(dict.fromkeys(r["method"] for r in scored))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    width = 0.8 / len(methods)
    for m, method in enumerate(methods):
        for ax, key in zip(axes, ("chamfer_pct", "volume_iou", "wall_s")):
            values = [
                next((r[key] for r in scored if r["creature"] == c and r["method"] == method), np.nan)
                for c in creatures
            ]
            ax.bar(np.arange(len(creatures)) + m * width, values, width, label=method)
    for ax, title in zip(
        axes, ("Chamfer (% of bbox diagonal, lower is better)", "volume IoU (higher is better)", "wall time (s)")
    ):
        ax.set_title(title)
        ax.set_xticks(np.arange(len(creatures)) + 0.4 - width / 2, creatures, rotation=20)
    axes[0].axhline(1.5, color="k", linestyle="--", linewidth=0.8)
    axes[2].axhline(10, color="k", linestyle="--", linewidth=0.8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
