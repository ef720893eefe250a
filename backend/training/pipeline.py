"""Train, then evaluate with the paper's protocol and store the numbers inside the checkpoint."""

from __future__ import annotations

import json

from ..progress import Progress
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .trainer import TrainResult, train


def train_and_evaluate(config: TrainConfig, *, resume: bool = False, cpu: bool = False, command: str | None = None,
                       progress: Progress | None = None, stop_after: int | None = None):
    """(TrainResult, EvalReport or None). Evaluation runs when `config.logging.eval_at_end` and the run finished."""
    progress = progress or Progress()
    if config.logging.eval_at_end:
        from ..evaluation.protocol import open_splits

        open_splits(config, config.model_config())  # an evaluation folder without joints fails now, not after training
    result = train(config, resume=resume, cpu=cpu, command=command, stop_after=stop_after,
                   progress=progress.span(0.0, 0.85 if config.logging.eval_at_end else 1.0, "train"))
    report = None
    if config.logging.eval_at_end and result.step >= config.optim.steps:
        report = evaluate_checkpoint_in_place(result, config, progress.span(0.85, 1.0, "eval"))
    progress.update(1.0, "done", stage="done")
    return result, report


def evaluate_checkpoint_in_place(result: TrainResult, config: TrainConfig, progress: Progress | None = None):
    """Evaluate the run's checkpoint; write eval.json + eval_preview.png; add the numbers to its metadata."""
    from ..evaluation.protocol import evaluate_model
    from .checkpoint import load_model

    model, _, metadata = load_model(result.checkpoint)
    report = evaluate_model(model, config, max_train_items=config.logging.eval_train_items,
                            max_test_items=config.logging.eval_test_items,
                            preview_path=result.run_dir / "eval_preview.png", progress=progress)
    (result.run_dir / "eval.json").write_text(json.dumps(report.to_dict(), indent=1))
    metadata["eval"] = {"unit": report.unit, "regressor": "mlp", **{k: round(v, 2) for k, v in report.headline().items()},
                        "linear_mpjpe": round(report.poses["linear"]["all"].mpjpe, 2),
                        "mean_pose_mpjpe": round(report.poses["mean_pose"]["all"].mpjpe, 2),
                        "num_train": report.num_train, "num_test": report.num_test}
    save_checkpoint(result.checkpoint, model, config, metadata)
    return report
