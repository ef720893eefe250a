"""`keydiff3d bench sv3d`: SV3D-p sampling with feature taps - seconds per step, total time, peak memory.

On CUDA: the full-size architecture with random weights (speed and memory do not depend on the
weights) at 576 px and 21 frames, for each dtype (fp16, bf16) and attention (SDPA, classic), timing
`--timed-steps` denoising steps and extrapolating to the official 50-step schedule, plus one full
50-step run (features + 21 decoded views) of the first setting. On the CPU it runs the tiny
architecture and says that the full size needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtypes", default="fp16,bf16", help="comma-separated: fp16, bf16, fp32")
    parser.add_argument("--attention", default="sdpa,classic", help="comma-separated: sdpa, classic")
    parser.add_argument("--timed-steps", type=int, default=5, help="steps timed per setting (after one warm-up step)")
    parser.add_argument("--schedule-steps", type=int, default=50, help="the schedule to extrapolate to (official: 50)")
    parser.add_argument("--no-full-run", action="store_true", help="skip the complete 50-step run")
    parser.add_argument("--tiny", action="store_true", help="tiny architecture even on CUDA")
    parser.add_argument("--out", type=Path, default=Path("out/bench/sv3d"), help="folder for results.json and plot.png")


def _image(size: int = 256):
    import numpy as np

    rgba = np.zeros((size, size, 4), np.float32)
    rgba[size // 6 : -size // 6, size // 4 : -size // 4] = [0.7, 0.4, 0.2, 1.0]
    return rgba


def measure(generator, image=None) -> dict:
    """Run `generator.from_image` once (default image: a flat box); per-step times come from the progress
    events. Also used by `bench device`."""
    import numpy as np
    import torch

    from keydiff3d.progress import Progress

    marks: list[tuple[float, str]] = []
    cuda = generator.device.type == "cuda"

    def on_progress(stage: str, fraction: float, message: str) -> None:
        if cuda:
            torch.cuda.synchronize()
        marks.append((time.perf_counter(), message))

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = generator.from_image(_image() if image is None else image, Progress(on_progress))
    total = time.perf_counter() - start
    step_marks = [t for t, m in marks if m.startswith("denoising step")] + [
        next(t for t, m in marks if m == "denoised")
    ]
    step_times = [b - a for a, b in zip(step_marks, step_marks[1:])]
    decode = next(t for t, m in marks if m == "decoded") - step_marks[-1]
    return {
        "total_s": total,
        "step_s": step_times,
        "decode_s": decode,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "feature_shapes": [list(f.shape) for f in result.features],
        "feature_dtype": str(result.features[0].dtype) if result.features else None,
        "features_finite": all(bool(np.isfinite(f.astype(np.float32)).all()) for f in result.features),
        "views_finite": bool(np.isfinite(result.images).all()),
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from keydiff3d.multiview.sv3d.generator import DTYPES, RuntimeOptions, SV3DConfig, SV3DGenerator
    from keydiff3d.multiview.sv3d.testing import random_sv3d_models

    cuda = torch.cuda.is_available()
    full = cuda and not args.tiny
    device = "cuda" if cuda else "cpu"
    if not full:
        print(
            "CUDA is needed for the full-size SV3D-p (1.5 B U-Net, 576 px, 21 frames); "
            "running the tiny architecture at 64 px on the CPU"
        )
    size = 576 if full else 64
    dtypes = [d for d in args.dtypes.split(",") if d] if cuda else ["fp32"]
    attentions = [a for a in args.attention.split(",") if a]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for dtype in dtypes:
        for attention in attentions:
            models = random_sv3d_models(full, device, DTYPES[dtype])
            config = SV3DConfig(size=size, num_steps=args.timed_steps + 1, decode_chunk=7 if full else 21)
            generator = SV3DGenerator(models, config, RuntimeOptions(device=device, dtype=dtype, attention=attention))
            try:
                measured = measure(generator)
            except torch.OutOfMemoryError:
                rows.append({"dtype": dtype, "attention": attention, "error": "out of memory"})
                print(f"{dtype:5} {attention:8} out of memory")
                continue
            finally:
                del generator, models
                if cuda:
                    torch.cuda.empty_cache()
            per_step = sum(measured["step_s"][1:]) / max(1, len(measured["step_s"]) - 1)  # first step = warm-up
            row = {
                "dtype": dtype,
                "attention": attention,
                "size": size,
                "frames": 21,
                "per_step_s": per_step,
                "estimated_total_s": per_step * args.schedule_steps + measured["decode_s"],
                "decode_s": measured["decode_s"],
                "peak_gib": measured["peak_gib"],
                "feature_shapes": measured["feature_shapes"],
            }
            rows.append(row)
            print(
                f"{dtype:5} {attention:8} {per_step:7.3f} s/step  decode {measured['decode_s']:6.2f} s  "
                f"est. {args.schedule_steps} steps {row['estimated_total_s']:7.1f} s  peak "
                + (f"{row['peak_gib']:.1f} GiB" if cuda else "n/a")
            )
    full_run = None
    if not args.no_full_run and rows and "error" not in rows[0]:
        first = rows[0]
        models = random_sv3d_models(full, device, DTYPES[first["dtype"]])
        config = SV3DConfig(size=size, num_steps=args.schedule_steps, decode_chunk=7 if full else 21)
        generator = SV3DGenerator(
            models, config, RuntimeOptions(device=device, dtype=first["dtype"], attention=first["attention"])
        )
        measured = measure(generator)
        full_run = {
            "dtype": first["dtype"],
            "attention": first["attention"],
            "steps": args.schedule_steps,
            **{k: measured[k] for k in ("total_s", "decode_s", "peak_gib")},
        }
        print(
            f"full {args.schedule_steps}-step run ({first['dtype']}, {first['attention']}): "
            f"features + 21 views in {measured['total_s']:.1f} s"
        )
    device_name = torch.cuda.get_device_name() if cuda else "CPU"
    (args.out / "results.json").write_text(
        json.dumps({"device": device_name, "full_size": full, "settings": rows, "full_run": full_run}, indent=1)
    )
    _plot(rows, args.out / "plot.png", device_name, full)
    print(f"results in {args.out}")
    return 0


def _plot(rows: list[dict], path: Path, device: str, full: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "error" not in r]
    if not ok:
        return
    labels = [f"{r['dtype']}\n{r['attention']}" for r in ok]
    fig, axes = plt.subplots(1, 2 if full else 1, figsize=(9 if full else 5, 3.5), squeeze=False)
    axes[0][0].bar(labels, [r["per_step_s"] for r in ok], color="tab:blue")
    axes[0][0].set_ylabel("seconds per step (CFG batch of 2 x 21 frames)")
    if full:
        axes[0][1].bar(labels, [r["peak_gib"] for r in ok], color="tab:orange")
        axes[0][1].set_ylabel("peak GPU memory (GiB)")
    fig.suptitle(f"SV3D-p sampling, {'576 px' if full else 'tiny, 64 px'}, {device}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
