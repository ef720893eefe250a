"""The training loop: Hugging Face Accelerate, so one command trains on a CPU, one GPU or many (DDP).

    accelerate launch -m keydiff3d.cli train default      # DDP over the visible GPUs
    keydiff3d train default                               # one process (CPU or one GPU)

Exact resume. Everything random is a function of the saved state:
- model, optimizer, scheduler and the RNGs (python, numpy, torch, cuda) go through
  `Accelerator.save_state` / `load_state`;
- the data order is a pure function of (seed, step, process): batch s is `StepBatches[s]`, so a
  resumed run reads exactly the batches the uninterrupted run would have read;
- the step and the scalar history live in `trainer_state.json` beside the Accelerate files.

Run folder (config.run_dir):
    config.json            the resolved config (what was trained)
    states/step_XXXXXXX/   resumable states (the newest `keep_states` are kept)
    model.safetensors      model checkpoint (weights + configs + metadata; see model/checkpoint.py)
    tb/                    TensorBoard scalars
    previews/step_XXXXXXX.png, curve.png
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..device import cuda_available
from ..errors import ConfigError, KeyDiff3DError
from ..model.checkpoint import WEIGHTS_NAME
from ..progress import Progress
from .checkpoint import build_model, save_checkpoint
from .config import TrainConfig
from .data import StepBatches, open_data, training_split

log = logging.getLogger(__name__)
logging.getLogger("accelerate.checkpointing").setLevel(logging.WARNING)  # one INFO line per saved file otherwise

STATES_DIR = "states"
TRAINER_STATE = "trainer_state.json"


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    seconds: float = 0.0


def lr_lambda(optim) -> Any:
    """Multiplier of every group's base learning rate at a step: linear warm-up, then cosine or flat."""

    def factor(step: int) -> float:
        if optim.warmup_steps > 0 and step < optim.warmup_steps:
            return (step + 1) / optim.warmup_steps
        if optim.schedule == "constant":
            return 1.0
        span = max(optim.steps - optim.warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - optim.warmup_steps, span) / span))

    return factor


def latest_state(run_dir: Path) -> Path | None:
    states = sorted((run_dir / STATES_DIR).glob("step_*"))
    complete = [s for s in states if (s / TRAINER_STATE).is_file()]
    return complete[-1] if complete else None


def _write_config(config: TrainConfig, path: Path) -> None:
    path.write_text(json.dumps(config.to_dict(), indent=1))


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: Progress | None = None,
    command: str | None = None,
    cpu: bool = False,
) -> TrainResult:
    """Train `config` (resuming from the newest state in its run folder when `resume`).

    stop_after: end the run after this global step (as if interrupted) without changing the schedule
    - used to test exact resume. Returns where the checkpoint went and the scalar history.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    progress = progress or Progress()
    run_dir = config.run_dir
    previous = latest_state(run_dir) if resume else None
    if not resume and (run_dir / STATES_DIR).exists():
        raise ConfigError(
            f"run folder {run_dir} already holds a training run; pass --resume to continue it or pick another name"
        )
    if resume and previous is None:
        raise ConfigError(f"nothing to resume in {run_dir}: it has no saved training state")

    # without CUDA, cpu=True is what makes Accelerate join a torchrun process group (multi-CPU DDP)
    accelerator = Accelerator(cpu=cpu or not cuda_available(), mixed_precision=config.optim.mixed_precision)
    set_seed(config.seed)  # model init is a function of the seed on every process
    model_config = config.model_config()
    data = open_data(config.data, model_config, training_split(config.data))
    batches = StepBatches(
        data, config.optim.batch_size, config.seed, accelerator.process_index, accelerator.num_processes
    )

    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameter_groups())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config.optim))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    unwrapped = accelerator.unwrap_model(model)

    history: dict[str, list[tuple[int, float]]] = {}
    start, seconds_before = 0, 0.0
    if previous is not None:
        accelerator.load_state(str(previous))
        saved = json.loads((previous / TRAINER_STATE).read_text())
        start, history = int(saved["step"]), {k: [tuple(p) for p in v] for k, v in saved["history"].items()}
        seconds_before = float(saved.get("seconds", 0.0))
        log.info("resumed %s at step %d", run_dir, start)

    main = accelerator.is_main_process
    writer = None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_config(config, run_dir / "config.json")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"), purge_step=start if start else None)
    preview = data.preview_samples(2) if main else None
    command = command or " ".join(shlex.quote(a) for a in ["keydiff3d", *sys.argv[1:]])

    # own generator: creating the iterator draws a worker seed, which must not consume the global
    # RNG (a resumed run creates its iterator at a different point of the RNG stream)
    loader = torch.utils.data.DataLoader(
        batches,
        sampler=range(start, config.optim.steps),
        batch_size=None,
        collate_fn=_as_is,
        num_workers=config.data.workers,
        generator=torch.Generator().manual_seed(config.seed),
    )
    end = config.optim.steps if stop_after is None else min(stop_after, config.optim.steps)
    t0 = time.perf_counter()
    step = start
    model.train()
    span = progress.span(0.0, 1.0, "train")
    for batch in loader:
        if step >= end:
            break
        with accelerator.autocast():
            losses = model(batch.to(accelerator.device)).losses
        if not torch.isfinite(losses["total"]):
            raise KeyDiff3DError(
                f"training diverged at step {step + 1} (the loss is not finite); "
                "lower [model] lr or resume from an earlier state"
            )
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(losses["total"])
        if config.optim.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1

        if step % config.logging.log_every == 0 or step == end:
            scalars = {k: float(accelerator.reduce(v.detach(), "mean")) for k, v in losses.items()}
            scalars["lr"] = scheduler.get_last_lr()[0]
            for name, value in scalars.items():
                history.setdefault(name, []).append((step, value))
                if writer is not None:
                    writer.add_scalar(f"train/{name}", value, step)
        if main and (step % config.logging.preview_every == 0 or step == end):
            _preview(unwrapped, preview, run_dir / "previews" / f"step_{step:07d}.png", step)
        if step % config.logging.checkpoint_every == 0 or step == end:
            seconds = seconds_before + time.perf_counter() - t0
            _save_state(accelerator, run_dir, step, history, seconds, config.logging.keep_states)
            if main:
                save_checkpoint(
                    run_dir / WEIGHTS_NAME, unwrapped, config, _metadata(unwrapped, config, command, step, seconds)
                )
        span.update(
            (step - start) / max(end - start, 1),
            f"step {step}/{config.optim.steps} loss {float(losses['total'].detach()):.4f}",
        )

    accelerator.wait_for_everyone()
    if main:
        from .preview import draw_curves

        draw_curves(
            {k: v for k, v in history.items() if k != "lr"},
            run_dir / "curve.png",
            title=f"{config.name}: training losses",
        )
        writer.close()
    return TrainResult(run_dir, run_dir / WEIGHTS_NAME, step, history, seconds_before + time.perf_counter() - t0)


def _as_is(batch):
    return batch


def _save_state(accelerator, run_dir: Path, step: int, history: dict, seconds: float, keep: int) -> None:
    target = run_dir / STATES_DIR / f"step_{step:07d}"
    accelerator.save_state(str(target))
    if accelerator.is_main_process:
        # written last: a state folder counts as complete only once this file exists
        (target / TRAINER_STATE).write_text(json.dumps({"step": step, "history": history, "seconds": seconds}))
        states = sorted((run_dir / STATES_DIR).glob("step_*"))
        for old in states[: max(len(states) - keep, 0)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _metadata(model, config: TrainConfig, command: str, step: int, seconds: float) -> dict[str, Any]:
    """What a checkpoint says about itself (eval numbers are added by the CLI after evaluation)."""
    resolved = model.config  # the model resolves "auto" choices (e.g. the perceptual loss) when built
    return {
        "step": step,
        "train_seconds": round(seconds, 1),
        "training_command": command,
        "data_dir": config.data.dir,
        "data_source": config.data.source,
        "feature_source": resolved.feature_source,
        "perceptual_loss": resolved.perceptual_loss,
        "lifting": resolved.lifting,
        "num_views": resolved.num_views,
        "supervision": resolved.supervision,
        "torch": torch.__version__,
    }


def _preview(model, samples, path: Path, step: int) -> None:
    """Keypoints + learned skeleton over the preview items' views; the RNG is left untouched (exact resume)."""
    if not samples:
        return
    from ..model import collate
    from .preview import PreviewItem, draw_preview, learned_bones

    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        was_training = model.training
        model.eval()
        output = model(collate([s.batch for s in samples]).to(device), compute_losses=False)
        model.train(was_training)
    keypoints = output.keypoints.double().cpu().numpy()
    adjacency = output.edge_weights.double().cpu().numpy()
    items = [
        PreviewItem(
            images=s.batch.images[0].permute(0, 2, 3, 1).numpy(),
            cameras=s.cameras,
            keypoints=keypoints[b],
            bones=learned_bones(keypoints[b], adjacency),
            gt_joints=s.joints,
            gt_bones=s.bones,
            title=f"step {step} {s.category}",
        )
        for b, s in enumerate(samples)
    ]
    draw_preview(items, path)
