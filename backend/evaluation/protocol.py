"""The paper's evaluation protocol on the synthetic world, plus skeleton metrics.

1. Predict keypoints (N, 3) for every item of the training split and of the held-out split (eval
   mode, fixed views: the input view plus evenly spaced orbit views, no augmentation).
2. Per category (each has a fixed joint set, synthetic/skeletons.py): fit a linear and a
   2-hidden-layer MLP regressor from predicted keypoints to ground-truth joints on the training
   split; report MPJPE, N-MPJPE (per-pose scale aligned) and P-MPJPE (per-pose Procrustes aligned)
   on the held-out split. "all" = the mean over held-out poses of all categories.
3. Skeleton metrics of the learned skeleton (maximum spanning tree of the learned adjacency over
   the predicted keypoints) against the ground-truth bones: CD-J2J and CD-J2B. Alignment: none -
   predicted keypoints and ground truth already share the generator's world frame (object centred,
   largest side 1), which is exactly what the rig builder uses, so no regressor or fitted transform
   may hide a misplaced skeleton.
4. The mean-pose baseline (per-category training mean of the joints) is reported alongside.

Units: "milli-extent" = 1/1000 of the object's largest bounding-box side (mm for a 1 m creature).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..progress import Progress
from .metrics import cd_j2b, cd_j2j, joint_errors, procrustes_align, scale_align
from .regressors import REGRESSORS

if TYPE_CHECKING:
    from ..training.config import TrainConfig
    from ..training.trainer import TrainResult

UNIT_SCALE = 1000.0  # world units -> milli-extent
UNIT = "milli-extent (1/1000 of the object's largest side)"


@dataclass
class Predictions:
    """Predicted keypoints of one split with the ground truth they are scored against."""

    keypoints: np.ndarray  # (I, N, 3) world frame
    joints: list[np.ndarray]  # I arrays (J_c, 3): joint count depends on the category
    bones: list[np.ndarray]  # I arrays (J_c - 1, 2)
    categories: np.ndarray  # (I,) str
    adjacency: np.ndarray  # (N, N) learned edge weights (shared by all items)

    def where(self, category: str) -> np.ndarray:
        return np.flatnonzero(self.categories == category)

    def joints_of(self, index: np.ndarray) -> np.ndarray:
        return np.stack([self.joints[i] for i in index])


@dataclass
class PoseScores:
    mpjpe: float
    n_mpjpe: float
    p_mpjpe: float
    count: int


@dataclass
class EvalReport:
    unit: str
    num_train: int
    num_test: int
    # regressor name ("linear", "mlp", "mean_pose") -> category (or "all") -> scores
    poses: dict[str, dict[str, PoseScores]] = field(default_factory=dict)
    skeleton: dict[str, dict[str, float]] = field(default_factory=dict)  # category/"all" -> cd_j2j, cd_j2b
    preview: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def headline(self, regressor: str = "mlp") -> dict[str, float]:
        s = self.poses[regressor]["all"]
        return {
            "mpjpe": s.mpjpe,
            "n_mpjpe": s.n_mpjpe,
            "p_mpjpe": s.p_mpjpe,
            "cd_j2j": self.skeleton["all"]["cd_j2j"],
            "cd_j2b": self.skeleton["all"]["cd_j2b"],
        }

    def table(self) -> str:
        lines = [f"{'regressor':<10} {'category':<10} {'MPJPE':>8} {'N-MPJPE':>8} {'P-MPJPE':>8} {'n':>5}"]
        for name, per_cat in self.poses.items():
            for cat, s in per_cat.items():
                lines.append(f"{name:<10} {cat:<10} {s.mpjpe:8.1f} {s.n_mpjpe:8.1f} {s.p_mpjpe:8.1f} {s.count:5d}")
        lines.append(f"{'skeleton':<10} {'category':<10} {'CD-J2J':>8} {'CD-J2B':>8}")
        for cat, s in self.skeleton.items():
            lines.append(f"{'mst':<10} {cat:<10} {s['cd_j2j']:8.1f} {s['cd_j2b']:8.1f}")
        return "\n".join(lines) + f"\n(units: {self.unit}; train {self.num_train}, held-out {self.num_test})"


def score_poses(
    train: Predictions,
    test: Predictions,
    regressors: tuple[str, ...] = ("linear", "mlp"),
    progress: Progress | None = None,
) -> dict[str, dict[str, PoseScores]]:
    """Fit each regressor per category on `train`, score on `test`; plus the mean-pose baseline.

    "all" pools the per-joint errors of every held-out pose (categories have different joint counts).
    """
    progress = progress or Progress()
    names = (*regressors, "mean_pose")
    results: dict[str, dict[str, PoseScores]] = {name: {} for name in names}
    pooled: dict[str, list[np.ndarray]] = {name: [] for name in names}  # (3, joints) errors per category
    categories = sorted(set(test.categories) & set(train.categories))
    if not categories:
        from ..errors import ConfigError

        raise ConfigError(
            "no category has items in both the regressors' training split and the held-out split; "
            "evaluate on more creatures or change held_out_fraction"
        )
    for c, category in enumerate(categories):
        progress.update(c / max(len(categories), 1), f"regressors for {category}")
        tr, te = train.where(category), test.where(category)
        gt_train, gt_test = train.joints_of(tr), test.joints_of(te)
        predictions = {"mean_pose": np.broadcast_to(gt_train.mean(0), gt_test.shape)}
        for name in regressors:
            predictions[name] = REGRESSORS[name]().fit(train.keypoints[tr], gt_train).predict(test.keypoints[te])
        for name, pred in predictions.items():
            errors = np.stack(
                [
                    joint_errors(pred, gt_test),
                    joint_errors(scale_align(pred, gt_test), gt_test),
                    joint_errors(procrustes_align(pred, gt_test), gt_test),
                ]
            )
            pooled[name].append(errors.reshape(3, -1))
            results[name][category] = PoseScores(*(UNIT_SCALE * errors.reshape(3, -1).mean(1)), count=len(te))
    for name in names:
        if pooled[name]:
            errors = np.concatenate(pooled[name], axis=1)
            results[name]["all"] = PoseScores(
                *(UNIT_SCALE * errors.mean(1)), count=sum(s.count for s in results[name].values())
            )
    progress.update(1.0, "regressors done")
    return results


def score_skeletons(test: Predictions) -> dict[str, dict[str, float]]:
    """CD-J2J / CD-J2B of each item's learned tree against its ground-truth bones (world frame)."""
    from ..training.preview import learned_bones

    per_item: dict[str, list[tuple[float, float]]] = {}
    for i in range(len(test.keypoints)):
        bones = learned_bones(test.keypoints[i], test.adjacency)
        j2j = cd_j2j(test.keypoints[i], test.joints[i])
        j2b = cd_j2b(test.keypoints[i], bones, test.joints[i], test.bones[i])
        per_item.setdefault(str(test.categories[i]), []).append((j2j, j2b))
    out = {
        c: {
            "cd_j2j": UNIT_SCALE * float(np.mean([v[0] for v in vals])),
            "cd_j2b": UNIT_SCALE * float(np.mean([v[1] for v in vals])),
        }
        for c, vals in sorted(per_item.items())
    }
    everything = [v for vals in per_item.values() for v in vals]
    out["all"] = {
        "cd_j2j": UNIT_SCALE * float(np.mean([v[0] for v in everything])),
        "cd_j2b": UNIT_SCALE * float(np.mean([v[1] for v in everything])),
    }
    return out


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    data,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> Predictions:
    """Keypoints of every item of `data` (training.data.TrainingData or CacheData) with the model in eval mode."""
    from ..model import collate

    progress = progress or Progress()
    model.eval()
    keypoints, weights = [], None
    for start in range(0, len(data), batch_size):
        progress.update(start / len(data), f"keypoints {start}/{len(data)}")
        batch = collate([data.sample(i).batch for i in range(start, min(start + batch_size, len(data)))])
        out = model(batch.to(device), compute_losses=False)
        keypoints.append(out.keypoints.double().cpu().numpy())
        weights = out.edge_weights.double().cpu().numpy()
    progress.update(1.0, "keypoints done")
    return Predictions(
        keypoints=np.concatenate(keypoints),
        joints=[data.joints(i) for i in range(len(data))],
        bones=[data.bones(i) for i in range(len(data))],
        categories=np.array([data.category(i) for i in range(len(data))]),
        adjacency=weights,
    )


def evaluate_predictions(
    train: Predictions,
    test: Predictions,
    regressors: tuple[str, ...] = ("linear", "mlp"),
    progress: Progress | None = None,
) -> EvalReport:
    return EvalReport(
        unit=UNIT,
        num_train=len(train.keypoints),
        num_test=len(test.keypoints),
        poses=score_poses(train, test, regressors, progress),
        skeleton=score_skeletons(test),
    )


def evaluate(
    model: torch.nn.Module,
    train_data,
    test_data,
    *,
    device: str | torch.device = "cpu",
    regressors: tuple[str, ...] = ("linear", "mlp"),
    preview_path: str | Path | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """The whole protocol for one model on a training and a held-out split (training.data.open_data)."""
    progress = progress or Progress()
    train = predict(model, train_data, device=device, progress=progress.span(0.0, 0.45, "predict train"))
    test = predict(model, test_data, device=device, progress=progress.span(0.45, 0.9, "predict held-out"))
    report = evaluate_predictions(train, test, regressors, progress.span(0.9, 1.0, "regressors"))
    if preview_path is not None:
        report.preview = str(draw_eval_preview(test_data, test, preview_path))
    return report


def draw_eval_preview(data, test: Predictions, path: str | Path, per_category: int = 1) -> Path:
    """One held-out item per category: predicted keypoints + learned tree, ground-truth bones in black."""
    from ..training.preview import PreviewItem, draw_preview, learned_bones

    items = []
    for category in sorted(set(test.categories)):
        for i in test.where(category)[:per_category]:
            sample = data.sample(int(i))
            items.append(
                PreviewItem(
                    images=sample.batch.images[0].permute(0, 2, 3, 1).numpy(),
                    cameras=sample.cameras,
                    keypoints=test.keypoints[i],
                    bones=learned_bones(test.keypoints[i], test.adjacency),
                    gt_joints=test.joints[i],
                    gt_bones=test.bones[i],
                    title=category,
                )
            )
    return draw_preview(items, path)


def open_splits(
    config, model_config, data_dir: str | Path | None = None, max_train_items: int = 0, max_test_items: int = 0
):
    """(train, held-out) splits of a TrainConfig's evaluation folder: `data_dir` if given, else
    `[data] eval_dir`, else `[data] dir` (a synthetic data set or a feature cache of rendered
    creatures: evaluation needs ground-truth joints). ConfigError when the folder has none."""
    from dataclasses import replace

    from ..errors import ConfigError
    from ..training.data import open_data

    folder = data_dir or config.data.eval_dir or None
    train = open_data(replace(config.data, max_items=max_train_items), model_config, "train", folder)
    test = open_data(replace(config.data, max_items=max_test_items), model_config, "test", folder)
    if not (train.has_ground_truth and test.has_ground_truth):
        raise ConfigError(
            f"evaluation needs ground-truth joints but {folder or config.data.dir} holds photos; set [data] eval_dir "
            "(or --data) to a feature cache of rendered creatures (`keydiff3d cache --creatures N`) or a synthetic "
            "data set, or train with logging.eval_at_end = false"
        )
    return train, test


def evaluate_model(
    model: torch.nn.Module,
    config,
    data_dir: str | Path | None = None,
    *,
    max_train_items: int = 0,
    max_test_items: int = 0,
    device: str | torch.device = "cpu",
    preview_path: str | Path | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """The protocol on the training and held-out splits of a TrainConfig's data set (0 = all items)."""
    train, test = open_splits(config, model.config, data_dir, max_train_items, max_test_items)
    return evaluate(model.to(device), train, test, device=device, preview_path=preview_path, progress=progress)


def train_and_evaluate(
    config: TrainConfig,
    *,
    resume: bool = False,
    cpu: bool = False,
    command: str | None = None,
    progress: Progress | None = None,
    stop_after: int | None = None,
) -> tuple[TrainResult, EvalReport | None]:
    """`keydiff3d train`: (TrainResult, EvalReport or None). Evaluation runs when
    `config.logging.eval_at_end` and the run finished; its numbers go into the checkpoint."""
    from ..training.trainer import train

    progress = progress or Progress()
    if config.logging.eval_at_end:
        open_splits(config, config.model_config())  # an evaluation folder without joints fails now, not after training
    result = train(
        config,
        resume=resume,
        cpu=cpu,
        command=command,
        stop_after=stop_after,
        progress=progress.span(0.0, 0.85 if config.logging.eval_at_end else 1.0, "train"),
    )
    report = None
    if config.logging.eval_at_end and result.step >= config.optim.steps:
        report = evaluate_checkpoint_in_place(result, config, progress.span(0.85, 1.0, "eval"))
    progress.update(1.0, "done", stage="done")
    return result, report


def evaluate_checkpoint_in_place(
    result: TrainResult, config: TrainConfig, progress: Progress | None = None
) -> EvalReport:
    """Evaluate a training run's checkpoint; write eval.json + eval_preview.png; add the numbers to its metadata."""
    from ..training.checkpoint import load_model, save_checkpoint

    model, _, metadata = load_model(result.checkpoint)
    report = evaluate_model(
        model,
        config,
        max_train_items=config.logging.eval_train_items,
        max_test_items=config.logging.eval_test_items,
        preview_path=result.run_dir / "eval_preview.png",
        progress=progress,
    )
    (result.run_dir / "eval.json").write_text(json.dumps(report.to_dict(), indent=1))
    metadata["eval"] = {
        "unit": report.unit,
        "regressor": "mlp",
        **{k: round(v, 2) for k, v in report.headline().items()},
        "linear_mpjpe": round(report.poses["linear"]["all"].mpjpe, 2),
        "mean_pose_mpjpe": round(report.poses["mean_pose"]["all"].mpjpe, 2),
        "num_train": report.num_train,
        "num_test": report.num_test,
    }
    save_checkpoint(result.checkpoint, model, config, metadata)
    return report
