"""`keydiff3d bench keypoints`: KeyDiff3D K=4 against its ablations, same data and budget, one run.

Variants (each trains from the `bench` preset, changing only the keys listed):
  (a) mean_pose      no model: the per-category mean training pose for every held-out creature
  (b) keydiff3d_k4   voxel lifting of K=4 views (the method)
  (c) k1             model.num_views = 1 (input view only)
  (d) triangulation  model.lifting = "triangulation" (2D soft-argmax per view + DLT)
  (e) supervised     model.supervision = "chamfer" on GT joints, no reconstruction/mask loss (upper bound)
Every model is scored with the paper's protocol (evaluation/protocol.py, 2-hidden-layer MLP
regressor as the headline, linear too). Targets: (b) MPJPE <= 0.8 x (c) and <= 0.95 x (d);
(b) P-MPJPE <= 1.5 x (e).

Seeds. One training seed moves MPJPE by several percent (the same variant measured 154.0 and 166.3
milli-extent at seeds 0 and 1), as much as the targets' margins, so `--seeds 0 1 2` trains every
variant once per seed and the table reports the mean and standard deviation over seeds; the targets
are checked on the means.

A finished variant is not retrained when the benchmark runs again (its run folder, `<variant>-seed<S>`,
is reused), so the table can be rebuilt cheaply; --retrain starts over. To train in parallel processes,
give each a share of --variants/--seeds with --train-only and OMP_NUM_THREADS=1 (two processes of
two threads each on two cores run several times slower than one at a time), then score all at once.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from keydiff3d.bench import machine_description

# The soft-argmax beta barely moves from its initial value during a bench-length run (learned
# log-beta), so it acts as a fixed hyper-parameter: each lifting gets the value measured best for it
# (bench preset: 8 for the 3D soft-argmax over M^3 voxels; 1 for the 2D one over h x w pixels).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "keydiff3d_k4": ("(b) KeyDiff3D voxel lifting, K=4", []),
    "k1": ("(c) K=1, input view only", ["model.num_views=1"]),
    "triangulation": (
        "(d) 2D keypoints + triangulation",
        ['model.lifting="triangulation"', "model.softargmax_beta=1.0"],
    ),
    "supervised": (
        "(e) supervised on GT 3D joints",
        ['model.supervision="chamfer"', "model.lambda_perceptual=0.0", "model.lambda_mask=0.0"],
    ),
}
MEAN_POSE = "mean_pose"
LABELS = {MEAN_POSE: "(a) mean-pose baseline", **{k: v[0] for k, v in VARIANTS.items()}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="data/synth", help="synthetic data set folder (keydiff3d synth)")
    parser.add_argument("--out", default="runs/bench_keypoints", help="run folders of the variants")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="training seeds per variant (mean and std reported)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the bench preset for every variant (e.g. optim.steps=200)",
    )
    parser.add_argument("--eval-train-items", type=int, default=800, help="training items the regressors are fitted on")
    parser.add_argument("--eval-test-items", type=int, default=400, help="held-out items scored (0 = all)")
    parser.add_argument("--retrain", action="store_true", help="train every variant again even if its run finished")
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="train the variants and stop (to train variants in parallel processes; a later run scores them)",
    )
    parser.add_argument("--report", default=None, help="write the markdown table here (e.g. docs/bench/keypoints.md)")
    parser.add_argument("--plot", default=None, help="write the bar plot PNG here (e.g. docs/bench/keypoints.png)")


def _config(args: argparse.Namespace, variant: str, seed: int):
    from keydiff3d.training.config import load_config

    overrides = [
        f'data.dir="{args.data}"',
        f'logging.out_dir="{args.out}"',
        f'name="{variant}-seed{seed}"',
        "logging.eval_at_end=false",
        *args.overrides,
        *VARIANTS[variant][1],
        f"seed={seed}",
    ]
    return load_config("bench", overrides)


def _train_variant(args: argparse.Namespace, variant: str, seed: int, progress) -> tuple[Path, float]:
    """Checkpoint of the variant at this seed (trained now unless a finished run exists) and its training seconds."""
    import shutil

    from keydiff3d.training.checkpoint import read_checkpoint
    from keydiff3d.training.trainer import latest_state, train

    config = _config(args, variant, seed)
    checkpoint = config.run_dir / "model.safetensors"
    if args.retrain and config.run_dir.exists():
        shutil.rmtree(config.run_dir)
    if checkpoint.is_file():
        _, saved, metadata = read_checkpoint(checkpoint)
        if metadata.get("step") == config.optim.steps and saved.to_dict() == config.to_dict():
            return checkpoint, float(metadata.get("train_seconds", 0.0))
    resume = latest_state(config.run_dir) is not None
    command = "keydiff3d bench keypoints " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    result = train(config, resume=resume, command=command, progress=progress)
    return result.checkpoint, result.seconds


def run(args: argparse.Namespace) -> int:
    import torch

    from keydiff3d.evaluation.protocol import evaluate_predictions, open_splits, predict
    from keydiff3d.progress import tqdm_progress
    from keydiff3d.training.checkpoint import load_model

    torch.manual_seed(0)
    progress = tqdm_progress("bench keypoints")
    runs: dict[str, list[dict]] = {}  # variant -> one row per seed
    reports = {}
    t_start = time.perf_counter()
    jobs = [(variant, seed) for variant in args.variants for seed in args.seeds]
    share = 1.0 / len(jobs)
    for j, (variant, seed) in enumerate(jobs):
        name = f"{variant}-seed{seed}"
        span = progress.span(j * share, (j + 1) * share, name)
        checkpoint, train_seconds = _train_variant(args, variant, seed, span.span(0.0, 0.8, f"train {name}"))
        if args.train_only:
            continue
        model, config, metadata = load_model(checkpoint)
        train_data, test_data = open_splits(config, model.config, None, args.eval_train_items, args.eval_test_items)
        t0 = time.perf_counter()
        train_pred = predict(model, train_data, progress=span.span(0.8, 0.9, f"predict {name}"))
        test_pred = predict(model, test_data, progress=span.span(0.9, 0.97, f"predict {name}"))
        predict_seconds = time.perf_counter() - t0
        report = evaluate_predictions(train_pred, test_pred)
        reports[name] = report
        runs.setdefault(variant, []).append(
            _row(report, "mlp")
            | {
                "linear_mpjpe": report.poses["linear"]["all"].mpjpe,
                "train_seconds": train_seconds,
                "predict_seconds": predict_seconds,
                "steps": config.optim.steps,
                "seed": seed,
            }
        )
        if MEAN_POSE not in runs:  # deterministic: the training split's mean pose, one "seed"
            runs[MEAN_POSE] = [
                _row(report, MEAN_POSE)
                | {
                    "linear_mpjpe": float("nan"),
                    "cd_j2j": float("nan"),
                    "cd_j2b": float("nan"),
                    "train_seconds": 0.0,
                    "predict_seconds": 0.0,
                    "steps": 0,
                    "seed": 0,
                }
            ]
        print(f"\n{LABELS[variant]}, seed {seed}\n{report.table()}", flush=True)
    progress.update(1.0, "done", stage="done")
    if args.train_only:
        return 0

    ordered = {k: _over_seeds(runs[k]) for k in [MEAN_POSE, *VARIANTS] if k in runs}
    any_report = next(iter(reports.values()))
    checks = _targets(ordered)
    table = _markdown(ordered, checks, any_report, args, time.perf_counter() - t_start)
    print("\n" + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(
            {"rows": ordered, "targets": checks, "reports": {k: r.to_dict() for k, r in reports.items()}}, indent=1
        )
    )
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(table)
    if args.plot:
        _plot(ordered, Path(args.plot), any_report.unit)
    return 0


def _row(report, regressor: str) -> dict:
    s = report.poses[regressor]["all"]
    row = {"mpjpe": s.mpjpe, "n_mpjpe": s.n_mpjpe, "p_mpjpe": s.p_mpjpe, "count": s.count}
    row["per_category_mpjpe"] = {c: sc.mpjpe for c, sc in report.poses[regressor].items() if c != "all"}
    row["cd_j2j"], row["cd_j2b"] = report.skeleton["all"]["cd_j2j"], report.skeleton["all"]["cd_j2b"]
    return row


METRICS = ("mpjpe", "n_mpjpe", "p_mpjpe", "linear_mpjpe", "cd_j2j", "cd_j2b", "train_seconds", "predict_seconds")


def _over_seeds(seed_rows: list[dict]) -> dict:
    """One variant's rows (one per seed) -> the row of means, with `std` (per metric, 0 for one seed),
    `seeds` and the per-seed MPJPE `by_seed`."""
    import numpy as np

    row = {key: float(np.mean([r[key] for r in seed_rows])) for key in METRICS}
    row["std"] = {key: float(np.std([r[key] for r in seed_rows])) for key in METRICS}
    categories = seed_rows[0]["per_category_mpjpe"]
    row["per_category_mpjpe"] = {c: float(np.mean([r["per_category_mpjpe"][c] for r in seed_rows])) for c in categories}
    row["seeds"] = [r["seed"] for r in seed_rows]
    row["by_seed"] = [r["mpjpe"] for r in seed_rows]
    row["steps"], row["count"] = seed_rows[0]["steps"], seed_rows[0]["count"]
    return row


def _targets(rows: dict[str, dict]) -> dict[str, dict]:
    """The issue's targets; a check whose variants were not run is left out."""
    checks = {}
    b = rows.get("keydiff3d_k4")
    if b is None:
        return checks
    if "k1" in rows:
        checks["(b) MPJPE <= 0.80 x (c)"] = {"ratio": b["mpjpe"] / rows["k1"]["mpjpe"], "limit": 0.80}
    if "triangulation" in rows:
        checks["(b) MPJPE <= 0.95 x (d)"] = {"ratio": b["mpjpe"] / rows["triangulation"]["mpjpe"], "limit": 0.95}
    if "supervised" in rows:
        checks["(b) P-MPJPE <= 1.5 x (e)"] = {"ratio": b["p_mpjpe"] / rows["supervised"]["p_mpjpe"], "limit": 1.5}
    for check in checks.values():
        check["met"] = bool(check["ratio"] <= check["limit"])
    return checks


def _markdown(rows: dict[str, dict], checks: dict[str, dict], report, args: argparse.Namespace, seconds: float) -> str:
    config = _config(args, "keydiff3d_k4", args.seeds[0])
    m = config.model
    lines = [
        "# Keypoint benchmark (`keydiff3d bench keypoints`)",
        "",
        f"Command: `keydiff3d bench keypoints {' '.join(shlex.quote(a) for a in sys.argv[3:])}`  ",
        f"Machine: {machine_description()}; wall time of this run {seconds / 60:.1f} min "
        "(trainings of finished variants are reused).  ",
        f"Data: `{config.data.dir}`; regressors fitted on {report.num_train} training creatures, scored on "
        f"{report.num_test} held-out creatures (all categories).  ",
        f"Budget per variant: {config.optim.steps} steps x batch {config.optim.batch_size}, "
        f"N={m.get('num_keypoints')}, "
        f"image {m.get('image_size')} px, maps {m.get('map_size')} px, M={m.get('voxel_size')}; "
        f"training seeds {', '.join(map(str, args.seeds))} (mean +- std over seeds).  ",
        f"Units: {report.unit}. Regressor: 2-hidden-layer MLP (linear MPJPE beside it). "
        "CD-J2J / CD-J2B: learned spanning tree vs ground-truth bones, no alignment.",
        "",
        "| variant | MPJPE | N-MPJPE | P-MPJPE | linear MPJPE | CD-J2J | CD-J2B | MPJPE per seed | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for key, r in rows.items():
        cells = [_fmt(r[metric], r["std"][metric], len(r["seeds"])) for metric in METRICS[:6]]
        by_seed = " / ".join(f"{v:.1f}" for v in r["by_seed"]) if key != MEAN_POSE else "-"
        lines.append(f"| {LABELS[key]} | {' | '.join(cells)} | {by_seed} | {r['train_seconds']:.0f} |")
    lines += [
        "",
        "Per category MPJPE (MLP):",
        "",
        "| variant | " + " | ".join(sorted(next(iter(rows.values()))["per_category_mpjpe"])) + " |",
        "|---|" + "---:|" * len(next(iter(rows.values()))["per_category_mpjpe"]),
    ]
    for key, r in rows.items():
        lines.append(
            f"| {LABELS[key]} | "
            + " | ".join(f"{r['per_category_mpjpe'][c]:.1f}" for c in sorted(r["per_category_mpjpe"]))
            + " |"
        )
    lines += ["", "Targets:", ""]
    for name, c in checks.items():
        lines.append(f"- {name}: ratio {c['ratio']:.3f} (limit {c['limit']}) -> {'met' if c['met'] else 'NOT met'}")
    return "\n".join(lines) + "\n"


def _fmt(value: float, std: float = 0.0, seeds: int = 1) -> str:
    if value != value:
        return "-"
    return f"{value:.1f} +- {std:.1f}" if seeds > 1 else f"{value:.1f}"


def _plot(rows: dict[str, dict], path: Path, unit: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt
    import numpy as np

    names = list(rows)
    metrics = [("mpjpe", "MPJPE"), ("n_mpjpe", "N-MPJPE"), ("p_mpjpe", "P-MPJPE")]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for k, (key, label) in enumerate(metrics):
        ax.bar(
            x + (k - 1) * 0.27,
            [rows[n][key] for n in names],
            0.27,
            yerr=[rows[n]["std"][key] for n in names],
            capsize=2,
            label=label,
        )
    ax.set_xticks(x, [textwrap.fill(LABELS[n], 18) for n in names], fontsize=7)
    ax.set_ylabel(unit.split(" (")[0])
    ax.set_title("Keypoints -> GT joints (MLP regressor), held-out creatures; lower is better", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
