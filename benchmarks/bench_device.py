"""`keydiff3d bench device`: the device check - one prepared run on one H100/H200, nothing downloaded.

Steps, each in its own process with its own timeout (a failing or timed-out step does not stop the rest;
what it measured before it stopped is kept):

  gsplat    gsplat's CUDA kernels load: from a prebuilt wheel (benchmarks/device_wheels.sh), else
            JIT-compiled now. Timed, and kept outside the budget.
  pytest    `pytest -m cuda`: every CUDA test of tests/ (the one gate is tests/conftest.py).
  sv3d      SV3D-p at full size with random weights (time and memory do not depend on the weights), fp16,
            21 views at 576 px from a creature's input view: seconds per step, total, peak memory and the
            feature taps, for 25 and 50 steps, with and without CPU offload.
  frosting  `keydiff3d bench reconstruction` on one synthetic creature, 21 x 576 px views: Gaussian Frosting
            (gsplat) and the visual hull against the ground-truth mesh - time, peak memory, Chamfer, PSNR.
  train     `keydiff3d train sv3d` (K=4, SV3D-p decoder layers through the aggregator, M=72, 128 px) from
            a feature cache of SV3D-p's layer shapes (random values: a step's cost does not depend on
            them): steps/s and peak memory over 200 steps.
  rig       image -> rig bundle through `keydiff3d rig`'s pipeline (run_image_pipeline) with the
            random-weight SV3D-p loaded as the service keeps it: total and per-stage seconds, twice
            (the first pays one-time costs); target <= 30 s. Loading real weights from disk is not included.

The budget (default 480 s) counts from the end of the gsplat step; a step gets at most the time left.
`--cpu-dry-run` runs the same steps at toy size on the CPU (tests/test_bench_device.py, in CI).
Writes results.json, results.md, steps.log and pytest_cuda.xml to --out and prints a one-screen summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

STEPS = ("gsplat", "pytest", "sv3d", "frosting", "train", "rig")
OUTSIDE_BUDGET = ("gsplat",)
RIG_TARGET_S = 30.0
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Profile:
    """Sizes and time limits of one kind of run: `FULL` on a GPU, `TOY` for the CPU dry run."""

    name: str
    device: str
    budget_s: float
    timeouts: dict[str, float]
    sv3d_full: bool  # the released architecture (else the tiny test widths)
    sv3d_size: int
    sv3d_steps: tuple[int, ...]
    sv3d_dtype: str
    reconstruction: tuple[str, ...]  # arguments of `bench reconstruction`
    train_overrides: tuple[str, ...]  # on top of the `sv3d` preset
    train_steps: int
    cache_items: int
    cache_size: int  # view size of the training cache (features scale with it, SV3D-p: 576)
    rig_steps: int


FULL = Profile(
    name="full",
    device="cuda",
    budget_s=480.0,
    timeouts={"gsplat": 420.0, "pytest": 120.0, "sv3d": 170.0, "frosting": 120.0, "train": 110.0, "rig": 120.0},
    sv3d_full=True,
    sv3d_size=576,
    sv3d_steps=(25, 50),
    sv3d_dtype="fp16",
    reconstruction=("--categories", "quadruped", "--seeds", "1", "--size", "576", "--preset", "short"),
    train_overrides=(),
    train_steps=200,
    cache_items=8,
    cache_size=576,
    rig_steps=50,
)
TOY = Profile(
    name="cpu-dry-run",
    device="cpu",
    budget_s=600.0,  # ~50 s on 2 idle cores; the limits leave room for a loaded CI machine
    timeouts={"gsplat": 60.0, "pytest": 150.0, "sv3d": 120.0, "frosting": 120.0, "train": 120.0, "rig": 150.0},
    sv3d_full=False,
    sv3d_size=64,
    sv3d_steps=(2, 3),
    sv3d_dtype="fp32",
    reconstruction=(
        "--categories",
        "quadruped",
        "--seeds",
        "1",
        "--size",
        "48",
        "--resolution",
        "32",
        "--faces",
        "2000",
    ),
    train_overrides=(
        "model.num_keypoints=6",
        "model.image_size=32",
        "model.map_size=16",
        "model.voxel_size=8",
        "model.external_channels=[64, 64, 32, 32]",
        "model.aggregated_channels=16",
        "model.lifted_channels=8",
        "model.volume_channels=[8, 8]",
        "model.reconstruction_channels=[8, 8]",
        "model.appearance_dim=8",
        'model.perceptual_loss="pyramid"',
        "data.workers=0",
        "optim.batch_size=2",
        'optim.mixed_precision="no"',
    ),
    train_steps=6,
    cache_items=3,
    cache_size=64,
    rig_steps=2,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpu-dry-run", action="store_true", help="the same steps at toy size on the CPU (CI)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("OUT", "out/device")),
        help="folder for results.json, results.md, steps.log (default: $OUT, else out/device)",
    )
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {', '.join(STEPS)}")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds for all steps after gsplat (default: 480; dry run 600)"
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a fresh one under /tmp)")
    parser.add_argument("--step", choices=STEPS, default=None, help=argparse.SUPPRESS)  # child process: run one step


# --------------------------------------------------------------------------- the orchestrating process


@dataclass
class StepResult:
    status: str  # ok | failed | timeout | skipped
    seconds: float = 0.0
    note: str = ""
    metrics: dict = field(default_factory=dict)


def run(args: argparse.Namespace) -> int:
    profile = TOY if args.cpu_dry_run else FULL
    work = args.work or Path(os.environ.get("TMPDIR", "/tmp")) / f"keydiff3d-device-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    if args.step:
        return _child(args.step, profile, work)
    import torch

    from keydiff3d.errors import DeviceError, InputError

    if profile.device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("this machine has no CUDA device; run with --cpu-dry-run for the toy-size check on the CPU")
    chosen = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(chosen) - set(STEPS))
    if unknown:
        raise InputError(f"unknown step {unknown[0]!r}; choose from {', '.join(STEPS)}")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    budget = profile.budget_s if args.budget is None else args.budget
    report = {"profile": profile.name, "budget_s": budget, "environment": environment(), "steps": {}}
    log_path = out / "steps.log"
    log_path.write_text("")
    budget_start = None
    for name in [s for s in STEPS if s in chosen]:
        timeout = profile.timeouts[name]
        if name not in OUTSIDE_BUDGET:
            budget_start = budget_start or time.perf_counter()
            left = budget - (time.perf_counter() - budget_start)
            if left < 1.0:
                report["steps"][name] = asdict(StepResult("skipped", note="no time left in the budget"))
                continue
            timeout = min(timeout, left)
        print(f"[device check] {name} (timeout {timeout:.0f} s) ...", flush=True)
        result = _spawn(name, profile, work, out, timeout, log_path)
        report["steps"][name] = asdict(result)
        report["budget_used_s"] = round(time.perf_counter() - budget_start, 1) if budget_start else 0.0
        _write(report, out)
    _write(report, out)
    print(summary(report))
    return 0 if all(s["status"] in ("ok", "skipped") for s in report["steps"].values()) else 1


def _spawn(name: str, profile: Profile, work: Path, out: Path, timeout: float, log_path: Path) -> StepResult:
    """Run one step in its own process group (so its workers die with it); read what it recorded."""
    if name == "pytest":
        xml = out / "pytest_cuda.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "cuda",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            "--continue-on-collection-errors",
            f"--junitxml={xml}",
            str(REPO / "tests"),
        ]
    else:
        command = [sys.executable, "-m", "keydiff3d.cli", "bench", "device", "--step", name, "--work", str(work)]
        command += ["--cpu-dry-run"] if profile is TOY else []
    record_path = work / f"{name}.json"
    record_path.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(log_path, "a") as log:
        log.write(f"\n===== {name}: {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
            status = "ok" if code == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code, status = None, "timeout"
    seconds = round(time.perf_counter() - start, 1)
    if name == "pytest":
        metrics = pytest_outcome(out / "pytest_cuda.xml")
        if status != "timeout":
            status = (
                "ok" if metrics.get("failed", 1) == 0 and not metrics.get("cuda_modules_not_collected") else "failed"
            )
    else:
        metrics = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if metrics.get("skip_reason") and status == "ok":
        status, metrics["note"] = "skipped", metrics.pop("skip_reason")
    note = metrics.pop("note", "") or (
        "" if code == 0 else f"exit code {code}" if code is not None else f"stopped after {timeout:.0f} s"
    )
    return StepResult(status, seconds, note, metrics)


def pytest_outcome(xml: Path) -> dict:
    """Counts of a `pytest -m cuda` run from its JUnit XML; modules that did not import are listed, and
    those holding CUDA tests separately (their tests were never selected: the check fails)."""
    if not xml.is_file():
        return {"note": "pytest wrote no report"}
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    not_collected: dict[str, str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None and not case.get("classname"):  # a module that failed to import
            errors = [line[1:].strip() for line in (problem.text or "").splitlines() if line.startswith("E ")]
            not_collected[case.get("name", "").split(".")[-1]] = (errors[-1] if errors else problem.get("message", ""))[
                :160
            ]
        elif problem is not None:
            counts["failed"] += 1
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    cuda_modules = sorted(m for m in not_collected if "mark.cuda" in _read(REPO / "tests" / f"{m}.py"))
    return {**counts, "not_collected": not_collected, "cuda_modules_not_collected": cuda_modules}


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _write(report: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(report, indent=1))
    (out / "results.md").write_text(markdown(report))


def environment() -> dict:
    import platform

    import numpy
    import torch

    from keydiff3d.bench import machine_description

    versions = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    for package in ("diffusers", "transformers", "accelerate", "gsplat", "trimesh"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:  # noqa: BLE001 - a missing package is reported, not fatal
            versions[package] = None
    return {"machine": machine_description(), "versions": versions}


# --------------------------------------------------------------------------- report


def headline(name: str, step: dict) -> str:
    """One line of what a step measured (empty when it measured nothing)."""
    m = step.get("metrics", {})
    if name == "gsplat" and m:
        return f"kernels {'prebuilt' if m.get('prebuilt') else 'JIT-compiled'}, loaded in {m.get('load_s', 0):.1f} s"
    if name == "pytest" and "passed" in m:
        line = f"{m['passed']} passed, {m['failed']} failed, {m['skipped']} skipped"
        if m.get("cuda_modules_not_collected"):
            line += f"; CUDA test modules that did not import: {', '.join(m['cuda_modules_not_collected'])}"
        return line + (f"; {len(m['not_collected'])} other modules not collected" if m.get("not_collected") else "")
    if name == "sv3d" and m.get("runs"):
        return "; ".join(
            f"{r['steps']} steps{' offload' if r['offload'] else ''}: {r['per_step_s']:.3f} s/step, "
            f"{r['total_s']:.1f} s, {_gib(r['peak_gib'])}"
            for r in m["runs"]
        )
    if name == "frosting" and m.get("rows"):
        return "; ".join(
            f"{r['method']}: "
            + (
                r["note"]
                if "note" in r
                else f"{r['wall_s']:.1f} s, Chamfer {r['chamfer_pct']:.2f} %, PSNR {r['psnr']:.1f} dB"
                + (f", {_gib(r['peak_gpu_gib'])}" if "peak_gpu_gib" in r else "")
            )
            for r in m["rows"]
        )
    if name == "train" and "steps_per_s" in m:
        setting = f"batch {m['batch_size']}, M={m['voxel_size']}"
        return f"{m['steps_per_s']:.2f} steps/s over {m['timed_steps']} steps ({setting}), {_gib(m['peak_gib'])}"
    if name == "rig" and m.get("runs"):
        runs = ", ".join(f"{r['total_s']:.1f} s" for r in m["runs"])
        return f"image -> bundle {runs} (target <= {RIG_TARGET_S:.0f} s); stages of the last: " + ", ".join(
            f"{k} {v:.1f}" for k, v in m["runs"][-1]["timings"].items()
        )
    return ""


def _gib(value) -> str:
    return f"peak {value:.1f} GiB" if isinstance(value, (int, float)) else "peak n/a (CPU)"


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"# Device check ({report['profile']})",
        "",
        f"Machine: {env['machine']}",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        "",
        f"Budget {report['budget_s']:.0f} s (gsplat outside it), used {report.get('budget_used_s', 0):.0f} s.",
        "",
        "| step | status | seconds | measured |",
        "|---|---|---:|---|",
    ]
    for name, step in report["steps"].items():
        text = headline(name, step) or step["note"]
        if step["note"] and text != step["note"]:
            text += f" ({step['note']})"
        lines.append(f"| {name} | {step['status']} | {step['seconds']:.1f} | {text} |")
    return "\n".join(lines) + "\n"


def summary(report: dict) -> str:
    """The one-screen summary printed at the end."""
    lines = [f"device check ({report['profile']}) on {report['environment']['machine']}"]
    for name, step in report["steps"].items():
        text = headline(name, step) or step["note"]
        lines.append(f"  {name:9s} {step['status']:8s} {step['seconds']:6.1f} s  {text}"[:400])
    lines.append(f"  budget: {report.get('budget_used_s', 0):.0f} of {report['budget_s']:.0f} s (gsplat outside it)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the steps (child processes)


def _child(name: str, profile: Profile, work: Path) -> int:
    path = work / f"{name}.json"
    recorded: dict = {}

    def record(**values) -> None:
        """Keep what was measured so far (a step stopped by its timeout still reports it)."""
        recorded.update(values)
        path.write_text(json.dumps(recorded, indent=1))

    import torch

    torch.manual_seed(0)
    STEP_FUNCTIONS[name](profile, work, record)
    return 0


def step_gsplat(profile: Profile, work: Path, record: Callable) -> None:
    if profile.device != "cuda":
        record(skip_reason="gsplat's kernels need CUDA")
        return
    import importlib.util

    prebuilt = importlib.util.find_spec("gsplat.csrc") is not None
    start = time.perf_counter()
    from gsplat.cuda._backend import _C

    record(prebuilt=prebuilt, load_s=time.perf_counter() - start, loaded=_C is not None)
    if _C is None:
        raise RuntimeError("gsplat's CUDA extension did not load (no nvcc, or the build failed)")


def _sv3d_generator(profile: Profile, models, steps: int, offload: bool = False):
    from keydiff3d.multiview.sv3d.generator import RuntimeOptions, SV3DConfig, SV3DGenerator

    config = SV3DConfig(size=profile.sv3d_size, num_steps=steps, decode_chunk=7 if profile.sv3d_full else 21)
    runtime = RuntimeOptions(device=profile.device, dtype=profile.sv3d_dtype, offload=offload)
    return SV3DGenerator(models, config, runtime)


def _creature_image(size: int):
    from keydiff3d.multiview.cache_cli import render_creature_input
    from keydiff3d.multiview.sv3d import SV3DConfig

    return render_creature_input("quadruped", 0, SV3DConfig(size=size))[0]


def step_sv3d(profile: Profile, work: Path, record: Callable) -> None:
    from keydiff3d.bench import _load
    from keydiff3d.multiview.sv3d.generator import DTYPES
    from keydiff3d.multiview.sv3d.testing import random_sv3d_models

    measure = _load("sv3d").measure
    start = time.perf_counter()
    models = random_sv3d_models(profile.sv3d_full, profile.device, DTYPES[profile.sv3d_dtype])
    record(build_s=time.perf_counter() - start, size=profile.sv3d_size, frames=21, dtype=profile.sv3d_dtype, runs=[])
    image = _creature_image(profile.sv3d_size)
    runs = []
    for offload in (False, True):
        for steps in profile.sv3d_steps:
            measured = measure(_sv3d_generator(profile, models, steps, offload), image)
            per_step = measured["step_s"][1:] or measured["step_s"]  # the first step pays one-time costs
            runs.append(
                {
                    "steps": steps,
                    "offload": offload,
                    "per_step_s": sum(per_step) / len(per_step),
                    **{
                        k: measured[k]
                        for k in (
                            "total_s",
                            "decode_s",
                            "peak_gib",
                            "feature_shapes",
                            "feature_dtype",
                            "features_finite",
                            "views_finite",
                        )
                    },
                }
            )
            record(runs=runs)
            if not (measured["features_finite"] and measured["views_finite"]):
                raise RuntimeError(f"non-finite SV3D-p output at {steps} steps (offload {offload})")


def step_frosting(profile: Profile, work: Path, record: Callable) -> None:
    out = work / "reconstruction"
    command = [
        sys.executable,
        "-m",
        "keydiff3d.cli",
        "bench",
        "reconstruction",
        *profile.reconstruction,
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True, cwd=REPO)
    rows = json.loads((out / "results.json").read_text())
    keep = (
        "method",
        "note",
        "wall_s",
        "chamfer_pct",
        "volume_iou",
        "psnr",
        "psnr_gaussians",
        "peak_gpu_gib",
        "gaussians",
        "stages_s",
    )
    record(
        rows=[
            {k: r[k] for k in keep if k in r}
            for r in rows
            if r["method"] == "hull" or r["method"].startswith("frosting")
        ]
    )


def write_training_cache(root: Path, items: int, size: int, channels, seed: int = 0) -> None:
    """A feature cache with SV3D-p's layout: views and masks of rendered creatures, decoder layers of
    `channels` (coarse to fine) at SV3D-p's sizes for `size` px views (9/18/36/72 at 576) filled with
    random fp16 values, features for the input + 7 frames. The cost of a training step is that of
    real features."""
    import numpy as np

    from keydiff3d.multiview.base import MultiViewResult
    from keydiff3d.multiview.sv3d.cache import item_key, open_cache, write_item
    from keydiff3d.synthetic.creatures import generate_creature
    from keydiff3d.synthetic.renderer import orbit_views, render_multiview

    open_cache(root, {"device_check": {"size": size, "channels": list(channels)}})
    rng = np.random.default_rng(seed)
    frames = [20, 2, 5, 8, 11, 14, 17, 19]
    sides = [size // 64 * 2**level for level in range(len(channels))]  # 576 px: 9, 18, 36, 72
    names = [f"up_blocks.{level}.resnets.2" for level in range(len(channels))]
    for i in range(items):
        views = render_multiview(
            generate_creature(("quadruped", "biped", "bird", "limbtree")[i % 4], i), orbit_views(size=size)
        )
        features = [
            rng.standard_normal((21, c, s, s), dtype=np.float32).astype(np.float16) for c, s in zip(channels, sides)
        ]
        result = MultiViewResult(views.images, views.masks, views.cameras, views.input_view, features, names)
        write_item(root, item_key(f"creature-{i}"), f"creature-{i}", result, frames)


def step_train(profile: Profile, work: Path, record: Callable) -> None:
    import torch

    from keydiff3d.progress import Progress
    from keydiff3d.training.config import load_config
    from keydiff3d.training.trainer import train

    cache = work / "train-cache"
    overrides = [
        f'data.dir="{cache}"',
        'data.eval_dir=""',
        f"optim.steps={profile.train_steps}",
        "optim.warmup_steps=1",
        f'logging.out_dir="{work / "runs"}"',
        "logging.eval_at_end=false",
        f"logging.checkpoint_every={profile.train_steps}",
        f"logging.preview_every={profile.train_steps}",
        "logging.log_every=10",
        *profile.train_overrides,
    ]
    config = load_config("sv3d", overrides)
    model = config.model_config()
    start = time.perf_counter()
    write_training_cache(cache, profile.cache_items, profile.cache_size, model.external_channels)
    record(
        cache_s=time.perf_counter() - start,
        voxel_size=model.voxel_size,
        image_size=model.image_size,
        num_views=model.num_views,
        batch_size=config.optim.batch_size,
        mixed_precision=config.optim.mixed_precision,
    )
    cuda = profile.device == "cuda"
    marks: list[tuple[int, float]] = []

    def throughput() -> dict:
        """Steps/s after the warm-up steps (allocations, cudnn autotuning, loader workers starting)."""
        skip = min(10, len(marks) // 4)
        (first_step, first_t), (last_step, last_t) = marks[skip], marks[-1]
        return {
            "timed_steps": last_step - first_step,
            "steps_per_s": (last_step - first_step) / max(last_t - first_t, 1e-9),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        }

    def on_progress(stage: str, fraction: float, message: str) -> None:
        found = re.match(r"step (\d+)/", message)
        if found:
            marks.append((int(found.group(1)), time.perf_counter()))
            if len(marks) % 20 == 0:  # a step stopped by its timeout keeps what it measured
                record(**throughput())

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = train(config, progress=Progress(on_progress), cpu=not cuda)
    marks.pop()  # the last step's mark includes saving the state, checkpoint and preview
    record(steps=result.step, train_s=result.seconds, **throughput())


class RenderedViewsSV3D:
    """The rig step's view generator: `from_image` runs the random-weight SV3D-p in full (encoding,
    sampling with feature taps, decoding: the cost measured) and returns its cameras and features with
    the views of the known creature rendered at those cameras instead of its own - random weights
    generate noise, on which reconstruction (rightly) refuses to work. Stages after it then do the work
    they do on real views."""

    name = "sv3d"

    def __init__(self, generator, mesh) -> None:
        from keydiff3d.synthetic.renderer import render_multiview

        self.generator = generator
        self.views = render_multiview(mesh, generator.cameras())

    @property
    def config(self):
        return self.generator.config

    @config.setter
    def config(self, value) -> None:  # the pipeline sets each run's seed
        self.generator.config = value

    def from_image(self, image_rgba, progress=None):
        from keydiff3d.multiview.base import MultiViewResult

        generated = self.generator.from_image(image_rgba, progress)
        return MultiViewResult(
            self.views.images,
            self.views.masks,
            generated.cameras,
            generated.input_view,
            generated.features,
            generated.feature_names,
        )


def step_rig(profile: Profile, work: Path, record: Callable) -> None:
    from keydiff3d.multiview.cache_cli import render_creature_input, sv3d_placed_creature
    from keydiff3d.multiview.sv3d.generator import DTYPES
    from keydiff3d.multiview.sv3d.testing import random_sv3d_models
    from keydiff3d.pipeline.models import MODELS
    from keydiff3d.pipeline.options import PipelineOptions
    from keydiff3d.pipeline.run import run_image_pipeline

    start = time.perf_counter()
    models = random_sv3d_models(profile.sv3d_full, profile.device, DTYPES[profile.sv3d_dtype])
    sv3d = _sv3d_generator(profile, models, profile.rig_steps)
    mesh, _ = sv3d_placed_creature("quadruped", 0, sv3d.config)
    MODELS.get(("sv3d", profile.device), lambda: RenderedViewsSV3D(sv3d, mesh))  # kept warm, as `keydiff3d serve` does
    record(build_s=time.perf_counter() - start, sv3d_steps=profile.rig_steps, runs=[])
    image, _ = render_creature_input("quadruped", 0, type(sv3d.config)(size=256))
    runs = []
    for attempt in range(2):
        start = time.perf_counter()
        options = PipelineOptions(device=profile.device, posed_preview=False)  # no bpy on the device
        result = run_image_pipeline(image, options, out_dir=work / f"rig-{attempt}")
        runs.append(
            {
                "total_s": time.perf_counter() - start,
                "timings": result.timings,
                "bones": len(result.bundle.skeleton.bones),
                "bundle": sorted(p.name for p in result.bundle_dir.iterdir()),
            }
        )
        record(runs=runs, met_target=runs[-1]["total_s"] <= RIG_TARGET_S)


STEP_FUNCTIONS = {
    "gsplat": step_gsplat,
    "sv3d": step_sv3d,
    "frosting": step_frosting,
    "train": step_train,
    "rig": step_rig,
}
