"""`keydiff3d bench skeleton`: the spanning tree's length and volume priors, measured.

The armature is the maximum spanning tree of the model's learned keypoint adjacency. That adjacency
is one matrix shared by every creature (AutoLink-style), trained on four categories with different
topologies, so for one creature it can prefer edges across the body. `build_skeleton` subtracts
from every edge score `length_weight` w x max(a) x |k_i - k_j| / keypoint extent and
`volume_weight` v x max(a) x (fraction of the edge outside the volume) (keydiff3d_addon/rigcore/skeleton.py,
`edge_penalty`). This benchmark predicts keypoints + adjacency with a checkpoint for synthetic
creatures and scores the trees of several settings against each creature's ground-truth skeleton:

  learned, w     the learned adjacency with length weight w (w = 0: the tree without the prior)
  euclidean      the Euclidean minimum spanning tree (adjacency ignored: uniform adjacency, w = 1)
  + volume v     with the volume penalty of weight v (no suffix: no volume penalty)

in two sweeps: the length sweep (every --weights w and the Euclidean tree, each without and with
the volume penalty at v = 1) and the volume sweep (w = 0, every --volume-weights v). Its inside test is
`pipeline.rig.silhouette_inside` on the creature's own masks of all 21 orbit views (the visual hull:
what the rig builder gets from the reconstructed hull mesh or from the silhouettes). A tree is built
by the same three calls as in `build_skeleton` (clean_adjacency, edge_penalty, maximum_spanning_tree)
over the predicted keypoints as they are (`rig-mesh` first moves keypoints outside a watertight mesh
just inside it; there is no mesh here).

Metrics per creature, world frame, no alignment (as evaluation/protocol.py's skeleton metrics):
CD-J2J (keypoints vs joints: the same for every tree), CD-J2B, CD-B2B (points every 0.01 along the
bones, both ways; unlike CD-J2B it sees a bone's whole length, so a long bone across the body
costs), all in milli-extent; mean and max bone length as a fraction of the creature's largest side
(1 in the data set's world frame) and the share of bones longer than the creature's longest true
bone. Means over creatures per category and over all; changes against the tree before
either sweep (w = 0 + volume 1) come with their paired standard error.

Choice, on the first --train-items training creatures by the lowest overall CD-B2B: w among the
`learned, w + volume 1` trees (the rig builder always has an inside test), v among the
`learned, w=0 + volume v` trees; each sweep holds the other weight at its value before this
benchmark (v = 1, w = 0), so the two choices are made independently. The held-out creatures
(first --test-items) are only reported, never used to choose.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keydiff3d.bench import machine_description

DEFAULT_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)
DEFAULT_VOLUME_WEIGHTS = (0.0, 1.0, 2.0, 5.0, 20.0)
LENGTH_SWEEP_VOLUME = 1.0  # the length sweep's volume weight (the presets' volume_weight before the volume sweep)
B2B_STEP = 0.01  # CD-B2B sample spacing, world units (1/100 of the creature's largest side)
UNIT_SCALE = 1000.0  # world units -> milli-extent
METRICS = ("cd_j2j", "cd_j2b", "cd_b2b", "mean_bone", "max_bone", "long_bones")
SELECT_METRIC = "cd_b2b"
GROUND_TRUTH = "ground truth"

Inside = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tree:
    """One spanning-tree setting. length_weight None = the Euclidean minimum spanning tree;
    volume_weight 0 = no volume penalty."""

    length_weight: float | None
    volume_weight: float = 0.0

    @property
    def label(self) -> str:
        base = "euclidean" if self.length_weight is None else f"learned, w={self.length_weight:g}"
        return f"{base} + volume {self.volume_weight:g}" if self.volume_weight else base


def trees_for(weights: Sequence[float], volume_weights: Sequence[float] = ()) -> list[Tree]:
    """The length sweep (every learned weight and the Euclidean tree, without and with the volume
    penalty at LENGTH_SWEEP_VOLUME), then the volume sweep (w = 0 at every volume weight not yet listed)."""
    trees = [Tree(w, v) for v in (0.0, LENGTH_SWEEP_VOLUME) for w in (*weights, None)]
    return trees + [t for t in (Tree(0.0, v) for v in volume_weights) if t not in trees]


def tree_edges(keypoints: np.ndarray, adjacency: np.ndarray, tree: Tree, inside: Inside | None) -> np.ndarray:
    """(N-1, 2) edges of `tree`'s spanning tree over keypoints (N, 3) with learned adjacency (N, N),
    as `build_skeleton` builds it; `inside` (points (M, 3) -> (M,) bool) is used when tree.volume_weight > 0."""
    from keydiff3d_addon.rigcore import (
        clean_adjacency,
        edge_penalty,
        maximum_spanning_tree,
    )

    n = len(keypoints)
    euclidean = tree.length_weight is None
    a = clean_adjacency(np.ones((n, n)) if euclidean else adjacency, n)
    penalty = edge_penalty(
        keypoints,
        a,
        inside=inside if tree.volume_weight else None,
        volume_weight=tree.volume_weight,
        length_weight=1.0 if euclidean else tree.length_weight,
    )
    return np.asarray(maximum_spanning_tree(a, keypoints, penalty), np.int64)


def score_tree(keypoints: np.ndarray, edges: np.ndarray, joints: np.ndarray, bones: np.ndarray) -> dict[str, float]:
    """Metrics of one tree (keypoints (N, 3), edges (N-1, 2)) against ground-truth joints (J, 3) and
    bones (J-1, 2): Chamfer distances in milli-extent; bone lengths in world units (= fraction of
    the creature's largest side); long_bones = fraction of the tree's bones longer than the longest
    ground-truth bone."""
    from keydiff3d.evaluation.metrics import cd_b2b, cd_j2b, cd_j2j

    lengths = np.linalg.norm(keypoints[edges[:, 0]] - keypoints[edges[:, 1]], axis=1)
    longest_true = np.linalg.norm(joints[bones[:, 0]] - joints[bones[:, 1]], axis=1).max()
    return {
        "cd_j2j": UNIT_SCALE * cd_j2j(keypoints, joints),
        "cd_j2b": UNIT_SCALE * cd_j2b(keypoints, edges, joints, bones),
        "cd_b2b": UNIT_SCALE * cd_b2b(keypoints, edges, joints, bones, step=B2B_STEP),
        "mean_bone": float(lengths.mean()),
        "max_bone": float(lengths.max()),
        "long_bones": float((lengths > longest_true + 1e-9).mean()),
    }


@dataclass
class SplitScores:
    """Per-creature metrics of one split. categories (I,); items: tree label -> metric -> (I,)."""

    categories: np.ndarray
    items: dict[str, dict[str, np.ndarray]]

    def mean(self, label: str, metric: str, category: str = "all") -> float:
        values = self.items[label][metric]
        return float(values.mean() if category == "all" else values[self.categories == category].mean())

    def change(self, label: str, baseline: str, metric: str) -> tuple[float, float]:
        """Mean over creatures of (label - baseline) and its standard error (paired: same creatures)."""
        diff = self.items[label][metric] - self.items[baseline][metric]
        error = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        return float(diff.mean()), float(error)

    def to_dict(self) -> dict:
        """tree label -> category (and "all") -> metric -> mean, plus the creature counts."""
        groups = [*sorted(set(self.categories)), "all"]
        counts = {c: int((self.categories == c).sum()) if c != "all" else len(self.categories) for c in groups}
        means = {label: {c: {m: self.mean(label, m, c) for m in METRICS} for c in groups} for label in self.items}
        return {"counts": counts, "means": means}


def score_split(predictions, insides: Sequence[Inside | None], trees: Sequence[Tree], progress=None) -> SplitScores:
    """Every tree of every creature of `predictions` (evaluation.protocol.Predictions) scored against
    its ground truth, plus "ground truth" (the true skeleton against itself: its bone lengths);
    insides[i] is creature i's inside test (used by the volume trees)."""
    rows: dict[str, list[dict[str, float]]] = {}
    count = len(predictions.categories)
    for i in range(count):
        if progress is not None and i % 20 == 0:
            progress.update(i / count, f"trees {i}/{count}")
        k, joints, bones = predictions.keypoints[i], predictions.joints[i], predictions.bones[i]
        rows.setdefault(GROUND_TRUTH, []).append(score_tree(joints, bones, joints, bones))
        for tree in trees:
            rows.setdefault(tree.label, []).append(
                score_tree(k, tree_edges(k, predictions.adjacency, tree, insides[i]), joints, bones)
            )
    items = {label: {m: np.array([r[m] for r in per_item]) for m in METRICS} for label, per_item in rows.items()}
    return SplitScores(np.asarray(predictions.categories).astype(str), items)


def choose_weight(scores: SplitScores, weights: Sequence[float]) -> float:
    """The length weight w whose `learned, w + volume 1` tree has the lowest mean SELECT_METRIC (ties -> smaller w)."""
    return min(weights, key=lambda w: (scores.mean(Tree(w, LENGTH_SWEEP_VOLUME).label, SELECT_METRIC), w))


def choose_volume_weight(scores: SplitScores, volume_weights: Sequence[float]) -> float:
    """The volume weight v whose `learned, w=0 + volume v` tree has the lowest mean SELECT_METRIC
    (ties -> smaller v)."""
    return min(volume_weights, key=lambda v: (scores.mean(Tree(0.0, v).label, SELECT_METRIC), v))


def silhouette_insides(data) -> list[Inside]:
    """Inside test of every creature of a TrainingData: its masks in all of its orbit views (21)."""
    from keydiff3d.multiview.base import MultiViewResult
    from keydiff3d.pipeline.rig import silhouette_inside
    from keydiff3d.synthetic.renderer import input_view_index

    insides = []
    for i in range(len(data)):
        item = data.dataset[i]
        views = MultiViewResult(
            images=item.images.astype(np.float32) / 255.0,
            masks=item.masks.astype(np.float32) / 255.0,
            cameras=item.cameras,
            input_view=input_view_index(item.cameras),
        )
        insides.append(silhouette_inside(views))
    return insides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from keydiff3d.paths import RIGGED_ASSETS_DIR

    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("synthetic", "real"),
        default=["synthetic", "real"],
        help="which parts to run (default both): synthetic creatures, real artist-rigged ones",
    )
    parser.add_argument(
        "--assets",
        default=str(RIGGED_ASSETS_DIR),
        help="folder of artist-rigged .glb/.gltf creatures for the real part (default: the dev set)",
    )
    parser.add_argument(
        "--asset-cache", default=None, type=Path, help="keep the loaded creatures here (.npz) between runs"
    )
    parser.add_argument(
        "--frames", type=int, default=8, help="clip frames per clip for the animation fit (evenly spaced)"
    )
    parser.add_argument(
        "--render",
        default=None,
        help="write rest/posed pictures per creature to this folder (e.g. docs/bench/skeleton_real)",
    )
    parser.add_argument(
        "--data", default=None, help="synthetic data set folder (default: the checkpoint's training data)"
    )
    parser.add_argument(
        "--curve-items",
        type=int,
        default=60,
        help="held-out synthetic creatures (their meshes) on which the curve-skeleton refinements are chosen",
    )
    parser.add_argument(
        "--checkpoint", default=None, help="KeyDiff3D checkpoint (default: the shipped backend/checkpoints/default)"
    )
    parser.add_argument(
        "--train-items", type=int, default=400, help="first training creatures, used to choose the weight"
    )
    parser.add_argument("--test-items", type=int, default=400, help="first held-out creatures, only reported")
    parser.add_argument(
        "--weights",
        type=float,
        nargs="+",
        default=list(DEFAULT_WEIGHTS),
        help="length weights to compare (0, the tree without the prior, is always included)",
    )
    parser.add_argument(
        "--volume-weights",
        type=float,
        nargs="+",
        default=list(DEFAULT_VOLUME_WEIGHTS),
        help="volume weights to compare at length weight 0 (0 and 1 are always included)",
    )
    parser.add_argument(
        "--report",
        default=None,
        help="write the markdown report here (e.g. docs/bench/skeleton.md; the means go beside it as .json)",
    )
    parser.add_argument("--plot", default=None, help="write the PNG plot here (e.g. docs/bench/skeleton.png)")


def run(args: argparse.Namespace) -> int:
    import torch

    from keydiff3d.progress import tqdm_progress

    torch.manual_seed(0)
    t_start = time.perf_counter()
    progress = tqdm_progress("bench skeleton")
    sections, results = [], {}
    if "synthetic" in args.parts:
        text, results["synthetic"], scores, plot = run_synthetic(args, progress.span(0.0, 0.5, "synthetic"))
        sections.append(text)
    if "real" in args.parts:
        text, results["real"] = run_real(args, progress.span(0.5, 1.0, "real"))
        sections.append(text)
    progress.update(1.0, "done", stage="done")
    header = [
        "# Skeleton benchmark (`keydiff3d bench skeleton`)",
        "",
        f"Command: `keydiff3d bench skeleton {' '.join(shlex.quote(a) for a in sys.argv[3:])}`  ",
        f"Machine: {machine_description()}; wall time {(time.perf_counter() - t_start) / 60:.1f} min.",
        "",
    ]
    report = "\n".join(header) + "\n" + "\n".join(sections)
    print("\n" + report)
    if args.report:
        path = Path(args.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report)
        path.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
    if args.plot and "synthetic" in args.parts:
        plot(Path(args.plot))
    return 0


def run_synthetic(args, progress):
    """The synthetic part: spanning-tree settings against the true skeletons; (markdown, results,
    scores, plot(path))."""
    from keydiff3d.evaluation.protocol import open_splits, predict
    from keydiff3d.training.checkpoint import load_model

    weights = sorted({0.0, *args.weights})
    volume_weights = sorted({0.0, LENGTH_SWEEP_VOLUME, *args.volume_weights})
    model, config, _ = load_model(args.checkpoint)
    train_data, test_data = open_splits(config, model.config, args.data, args.train_items, args.test_items)
    trees = trees_for(weights, volume_weights)
    scores: dict[str, SplitScores] = {}
    for s, (split, data) in enumerate((("train", train_data), ("test", test_data))):
        span = progress.span(0.4 * s, 0.4 * (s + 1), split)
        predictions = predict(model, data, progress=span.span(0.0, 0.5, f"predict {split}"))
        scores[split] = score_split(predictions, silhouette_insides(data), trees, span.span(0.5, 1.0, f"trees {split}"))
    chosen = choose_weight(scores["train"], weights)
    chosen_volume = choose_volume_weight(scores["train"], volume_weights)
    curves = score_curve_variants(test_data, predictions, args.curve_items, progress.span(0.8, 1.0, "curve skeletons"))
    text = (
        _markdown(scores, trees, chosen, chosen_volume, args, args.data or config.data.dir)
        + "\n"
        + _curve_markdown(curves)
    )
    results = {
        "chosen_length_weight": chosen,
        "weights": weights,
        "chosen_volume_weight": chosen_volume,
        "volume_weights": volume_weights,
        **{split: sc.to_dict() for split, sc in scores.items()},
        "curve_variants": {
            label: {m: float(np.mean(v)) for m, v in metrics.items()} for label, metrics in curves.items()
        },
    }
    return text, results, scores, lambda path: _plot(scores, weights, chosen, volume_weights, chosen_volume, path)


BASELINE = Tree(0.0, LENGTH_SWEEP_VOLUME).label  # the tree the rig builder made before either sweep (w = 0, v = 1)
COLUMNS = (
    ("cd_j2b", "CD-J2B"),
    ("cd_b2b", "CD-B2B"),
    ("mean_bone", "mean bone"),
    ("max_bone", "max bone"),
    ("long_bones", "bones > longest true bone"),
)


def _markdown(
    scores: dict[str, SplitScores],
    trees: Sequence[Tree],
    chosen: float,
    chosen_volume: float,
    args: argparse.Namespace,
    data_dir: str,
) -> str:
    train, test = scores["train"], scores["test"]
    categories = sorted(set(test.categories))
    labels = [GROUND_TRUTH, *(t.label for t in trees)]
    bold = {Tree(chosen, LENGTH_SWEEP_VOLUME).label, Tree(0.0, chosen_volume).label}
    lines = [
        "## Synthetic creatures: the spanning tree's length and volume priors",
        "",
        f"Checkpoint: `{args.checkpoint or 'backend/checkpoints/default'}`; data: `{data_dir}`; the first "
        f"{len(train.categories)} training creatures choose the weights, the first {len(test.categories)} held-out "
        "creatures are only reported.  ",
        "Trees: `learned, w` = maximum spanning tree of the learned adjacency with length weight w (w=0: "
        "without the prior); `euclidean` = Euclidean minimum spanning tree (adjacency ignored); `+ volume` = "
        "with the volume penalty of weight v (inside = the creature's silhouettes in its 21 orbit views); "
        f"`ground truth` = the true skeleton. Length sweep: every w and `euclidean`, without and with volume "
        f"{LENGTH_SWEEP_VOLUME:g}; volume sweep: `learned, w=0 + volume v`, the rows after `euclidean + volume "
        f"{LENGTH_SWEEP_VOLUME:g}` (v = 0 and {LENGTH_SWEEP_VOLUME:g} are the rows `learned, w=0` and "
        "`learned, w=0 + volume "
        f"{LENGTH_SWEEP_VOLUME:g}`).  ",
        f"Units: CD-J2B / CD-B2B in milli-extent, no alignment (CD-B2B: bone points every {B2B_STEP:g}, both ways); "
        "bone lengths as a fraction of the creature's largest side, mean over creatures of each tree's mean / "
        "max; `bones > longest true bone` = share of the tree's bones longer than the creature's longest true "
        "bone. Lower CD is better.",
        "",
        f"### Choice on the training split: length_weight = {chosen:g}, volume_weight = {chosen_volume:g}",
        "",
        f"Rule: the lowest mean {_name(SELECT_METRIC)} among the `learned, w + volume {LENGTH_SWEEP_VOLUME:g}` trees "
        f"for w (the rig builder always has an inside test) and among the `learned, w=0 + volume v` trees for v. "
        "Chosen rows in bold.",
        "",
        *_overall_table(train, labels, bold),
        "",
        "### Held-out split",
        "",
        f"Change = mean over creatures of (tree - `{BASELINE}`), +- its paired standard error, milli-extent.",
        "",
        *_overall_table(test, labels, bold, with_change=True),
        "",
    ]
    for metric in ("cd_j2b", "cd_b2b", "max_bone"):
        lines += [
            f"Held-out {_name(metric)} per category:",
            "",
            "| tree | " + " | ".join(categories) + " | all |",
            "|---|" + "---:|" * (len(categories) + 1),
        ]
        for label in labels:
            cells = " | ".join(_cell(test.mean(label, metric, c), metric) for c in [*categories, "all"])
            lines.append(f"| {label} | {cells} |")
        lines.append("")
    j2j = ", ".join(f"{c} {test.mean(BASELINE, 'cd_j2j', c):.1f}" for c in [*categories, "all"])
    lines.append(f"Held-out CD-J2J (keypoints vs joints: the same for every tree), milli-extent: {j2j}.")
    return "\n".join(lines) + "\n"


def _overall_table(split: SplitScores, labels: Sequence[str], bold: set[str], with_change: bool = False) -> list[str]:
    header = "| tree | " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    if with_change:
        header += " CD-J2B change | CD-B2B change |"
        rule += "---:|---:|"
    lines = [header, rule]
    for label in labels:
        cells = [_cell(split.mean(label, metric), metric) for metric, _ in COLUMNS]
        if with_change:
            cells += [_change(split, label, metric) for metric in ("cd_j2b", "cd_b2b")]
        name = f"**{label}**" if label in bold else label
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _change(split: SplitScores, label: str, metric: str) -> str:
    if label in (GROUND_TRUTH, BASELINE):
        return "-" if label == GROUND_TRUTH else "reference"
    return "%+.1f +- %.1f" % split.change(label, BASELINE, metric)


def _name(metric: str) -> str:
    return dict(COLUMNS).get(metric, metric)


def _cell(value: float, metric: str) -> str:
    return f"{value:.1f}" if metric.startswith("cd_") else f"{value:.3f}"


def _plot(
    scores: dict[str, SplitScores],
    weights: Sequence[float],
    chosen: float,
    volume_weights: Sequence[float],
    chosen_volume: float,
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("cd_j2b", "CD-J2B (milli-extent)"),
        ("cd_b2b", "CD-B2B (milli-extent)"),
        ("max_bone", "max bone / creature size"),
    ]
    fig, axes = plt.subplots(2, len(panels), figsize=(11, 6.4))
    v1 = LENGTH_SWEEP_VOLUME
    for row, (ticks, chosen_at, xlabel) in enumerate(
        (
            (
                [f"{w:g}" for w in weights] + ["eucl."],
                list(weights).index(chosen),
                "length weight w (eucl. = Euclidean MST)",
            ),
            (
                [f"{v:g}" for v in volume_weights],
                list(volume_weights).index(chosen_volume),
                "volume weight v (length weight 0)",
            ),
        )
    ):
        x = np.arange(len(ticks))
        for ax, (metric, title) in zip(axes[row], panels):
            for split, style in (("train", ":"), ("test", "-")):
                if row == 0:
                    for v, colour in ((0.0, "tab:blue"), (v1, "tab:orange")):
                        values = [scores[split].mean(Tree(w, v).label, metric) for w in (*weights, None)]
                        ax.plot(
                            x,
                            values,
                            style,
                            marker="o",
                            color=colour,
                            label=f"{split}{f' + volume {v1:g}' if v else ''}",
                        )
                else:
                    values = [scores[split].mean(Tree(0.0, v).label, metric) for v in volume_weights]
                    ax.plot(x, values, style, marker="o", color="tab:green", label=f"{split}, w=0")
            if metric == "max_bone":
                ax.axhline(
                    scores["test"].mean(GROUND_TRUTH, metric), color="black", lw=0.8, label="ground truth (test)"
                )
            ax.axvline(chosen_at, color="grey", lw=0.8, ls="--")
            ax.set_xticks(x, ticks)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
        axes[row][0].legend(fontsize=7)
        axes[row][-1].legend(fontsize=7)
    fig.suptitle(
        "Spanning trees vs ground-truth skeletons: length sweep (top), volume sweep (bottom); "
        "dotted: training split, solid: held-out; dashed line: chosen weight",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# =========================================================================== curve skeletons on synthetic creatures

CURVE_METRICS = ("cd_j2j_ratio", "cd_j2b_ratio", "cd_b2b_ratio", "cd_j2j", "cd_b2b", "bones")


def curve_variants() -> dict[str, object]:
    """label -> rigcore RigOptions: the volume rigs of the real part (no predicted chain, no artist)."""
    return {rig.label: rig.rig for rig in real_rigs() if rig.kind == "predicted" and rig.rig.method != "chain"}


def score_curve_variants(data, predictions, count: int, progress=None) -> dict[str, dict[str, np.ndarray]]:
    """label -> metric -> (I,) over the first `count` creatures of `data` (a TrainingData): each
    creature's mesh regenerated from its seed, every volume-rig variant built on it (the predicted
    keypoints of `predictions` for the fused ones) and scored against its true skeleton (ratios:
    over the structure-free baselines with the true joint count, as in the real part)."""
    from keydiff3d.evaluation import rig_quality
    from keydiff3d.rigging.curve_skeleton import voxelise
    from keydiff3d.rigging.symmetry import surface_mirror, surface_samples
    from keydiff3d.rigging.volume_rig import curve_options, volume_skeleton
    from keydiff3d.synthetic.creatures import generate_creature

    detail = float(data.dataset.meta.get("config", {}).get("detail", 0.5))
    variants = curve_variants()
    out: dict[str, dict[str, list]] = {label: {m: [] for m in CURVE_METRICS} for label in variants}
    count = min(count, len(data))
    for i in range(count):
        if progress is not None:
            progress.update(i / max(count, 1), f"curve skeletons {i}/{count}")
        sample = data.dataset[i]
        creature = generate_creature(sample.category, sample.seed, detail=detail)
        v, f = np.asarray(creature.vertices, np.float64), np.asarray(creature.faces, np.int64)
        joints, bones = np.asarray(sample.joints, np.float64), np.asarray(sample.bones, np.int64)
        truth = rig_quality.Bones(joints[bones[:, 0]], joints[bones[:, 1]], np.full(len(bones), -1), [])
        reference = rig_quality.ArtistSkeleton(truth, np.arange(len(bones)), joints, bones)
        size = float(np.ptp(v, axis=0).max())
        surface, plane = surface_samples(v, f), surface_mirror(v, f)
        grids = {}
        for label, rig in variants.items():
            resolution = curve_options(rig).resolution
            grid = grids.setdefault(resolution, voxelise(v, f, resolution))
            built = volume_skeleton(
                v, f, rig, keypoints=predictions.keypoints[i] if rig.method == "fused" else None, grid=grid, plane=plane
            )
            j, e = rig_quality.rig_bones(built.skeleton).graph(1e-6 * size)
            scores = {**rig_quality.structure_scores(j, e, reference, surface, size), "bones": len(e)}
            for m in CURVE_METRICS:
                out[label][m].append(scores[m])
    return {label: {m: np.array(v) for m, v in metrics.items()} for label, metrics in out.items()}


KEYPOINTS_OFF = "refined (curve only)"  # the fused rig without the learned keypoints


CHOICE_ERRORS = 2.0  # a designed default changes only when the change exceeds this many standard errors


def curve_choices(curves: dict[str, dict[str, np.ndarray]]) -> dict[str, tuple[float, float, bool]]:
    """variant row ("fused, no X": X switched off; the curve-only rig: the keypoints switched off;
    "fused, X ...": an option switched on) -> (change of the mean CD-J2J ratio + CD-B2B ratio against
    `refined (fused)`, its paired standard error, whether the designed setting stays: it does unless
    the variant lowers the sum by more than CHOICE_ERRORS standard errors)."""
    reference = "refined (fused)"
    base = curves[reference]["cd_j2j_ratio"] + curves[reference]["cd_b2b_ratio"]
    out = {}
    for label, metrics in curves.items():
        if label.startswith("fused, ") or label == KEYPOINTS_OFF:
            diff = metrics["cd_j2j_ratio"] + metrics["cd_b2b_ratio"] - base
            error = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
            out[label] = (float(diff.mean()), error, bool(diff.mean() >= -CHOICE_ERRORS * error))
    return out


def _curve_markdown(curves: dict[str, dict[str, np.ndarray]]) -> str:
    count = len(next(iter(curves.values()))["bones"]) if curves else 0
    lines = [
        "## Synthetic creatures: the curve-skeleton refinements",
        "",
        f"The volume rigs of the real part below, built on the meshes of the first {count} held-out creatures "
        "(regenerated from their seeds; the fused ones with the checkpoint's keypoints) and scored against their true "
        "skeletons; ratios over the structure-free baselines with the true joint count (farthest-point surface "
        "samples, their Euclidean MST), CD in milli-extent. This is where the refinements are chosen (the real "
        "creatures are only "
        f"reported): a designed setting stays unless the variant lowers the mean CD-J2J + CD-B2B ratio by more "
        f"than {CHOICE_ERRORS:g} paired standard errors.",
        "",
        "| rig | CD-J2J / baseline | CD-J2B / baseline | CD-B2B / baseline | CD-J2J | CD-B2B | bones |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, metrics in curves.items():
        cells = [f"{metrics[m].mean():.3f}" for m in ("cd_j2j_ratio", "cd_j2b_ratio", "cd_b2b_ratio")]
        cells += [f"{metrics[m].mean():.1f}" for m in ("cd_j2j", "cd_b2b", "bones")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Against `refined (fused)`: change of the mean CD-J2J + CD-B2B ratio (+- paired s.e.) -> choice:", ""]
    for label, (change, error, stays) in curve_choices(curves).items():
        switched_off = label.startswith("fused, no ") or label == KEYPOINTS_OFF
        if stays:
            verdict = "keep it on" if switched_off else "keep it off"
        else:
            verdict = "off is better" if switched_off else "on is better"
        lines.append(f"- {label}: {change:+.3f} +- {error:.3f} -> {verdict}")
    return "\n".join(lines) + "\n"


# =========================================================================== real creatures

REAL_COLUMNS = (
    ("cd_j2j_ratio", "CD-J2J / baseline"),
    ("cd_j2b_ratio", "CD-J2B / baseline"),
    ("cd_b2b_ratio", "CD-B2B / baseline"),
    ("inside_fraction", "bone length inside"),
    ("long_bones", "bones > half size"),
    ("bones", "bones"),
    ("animation_fit", "animation fit"),
    ("posability", "posability (torn)"),
    ("sided_fraction", ".L/.R bones"),
)
PRESET_OF_CATEGORY = {"quadruped": "quadruped", "biped": "biped", "bird": "bird"}  # any other category: generic
REAL_TILE = 200


@dataclass(frozen=True)
class RealRig:
    """One rig of the real part. kind: "predicted" (the rig stage, pipeline.rig.rig_mesh, on the
    predicted keypoints with the preset's [rig] replaced by `rig`, a rigcore RigOptions), "artist
    joints" (the rig stage on the artist's joints and links, chain method, no volume penalty) or
    "artist" (the artist's bones and weights)."""

    label: str
    kind: str
    rig: object = None
    render: str = ""  # the skinning pictured ("" = not pictured)


def real_rigs() -> list[RealRig]:
    """The main rows, then the shipped refinement with one refinement switched off per row."""
    from dataclasses import replace

    from keydiff3d_addon.rigcore import RigOptions

    fused = RigOptions(method="fused")
    baseline = RigOptions(
        method="curve", mirror=False, min_branch=0.0, extend_ends=False, merge_factor=0.0, max_bone=0.0, limb_root=0.0
    )
    rows = [
        RealRig("predicted chain", "predicted", RigOptions(method="chain"), render="preset"),
        RealRig("refined (fused)", "predicted", fused, render="preset"),
        RealRig("refined (curve only)", "predicted", RigOptions(method="curve")),
        RealRig("curve baseline", "predicted", baseline, render="bone heat"),
        RealRig("project on artist joints", "artist joints", RigOptions(method="chain")),
        RealRig("artist", "artist", render="artist"),
    ]
    off = {
        "mirror": False,
        "extend_ends": False,
        "merge_factor": 0.0,
        "max_bone": 0.0,
        "limb_root": 0.0,
        "min_branch": 0.0,
    }
    rows += [
        RealRig(f"fused, no {key.replace('_', ' ')}", "predicted", replace(fused, **{key: value}))
        for key, value in off.items()
    ]
    rows.append(RealRig("fused, anchored spurs kept", "predicted", replace(fused, keep_anchored_spurs=True)))
    return rows


@dataclass
class RealCreature:
    """What every rig of one creature is measured against (evaluation.rigged_assets.RiggedAsset in
    its world frame, z up): its preset, size, inside test, surface samples, mirror plane, the
    artist's skeleton, whether it is bilateral, and the predicted keypoints + adjacency."""

    asset: object
    preset: object
    size: float
    inside: Callable
    surface: np.ndarray
    plane: object
    reference: object
    bilateral: bool
    keypoints: np.ndarray
    adjacency: np.ndarray


def real_creature(path: Path, asset, checkpoint=None) -> RealCreature:
    """The creature's context; keypoints from the rig-mesh path's prediction (the preset's
    checkpoint unless `checkpoint` is given) on the rest mesh as the add-on sends it (welded
    vertices, the file's colours at the nearest vertex)."""
    from scipy.spatial import cKDTree

    from keydiff3d.evaluation import rig_quality
    from keydiff3d.mesh_io import load_mesh
    from keydiff3d.pipeline.keypoints import named_checkpoint
    from keydiff3d.pipeline.mesh import predict_keypoints
    from keydiff3d.pipeline.rig import load_preset
    from keydiff3d.rigging.symmetry import surface_mirror, surface_samples
    from keydiff3d.synthetic.renderer import RenderMesh

    preset = load_preset(PRESET_OF_CATEGORY.get(asset.category, "generic"))
    own = load_mesh(path)
    colours = own.colors[cKDTree(own.vertices).query(asset.vertices)[1]] if own.has_own_colors else None
    keypoints, adjacency, _ = predict_keypoints(
        RenderMesh.from_arrays(asset.vertices, asset.faces, colours),
        up_axis="Z",
        checkpoint=checkpoint or named_checkpoint(preset.checkpoint),
    )
    size = float(np.ptp(asset.vertices, axis=0).max())
    reference = rig_quality.artist_skeleton(asset)
    plane = surface_mirror(asset.vertices, asset.faces)
    return RealCreature(
        asset,
        preset,
        size,
        rig_quality.mesh_inside(asset.vertices, asset.faces),
        surface_samples(asset.vertices, asset.faces),
        plane,
        reference,
        rig_quality.bilateral_pairs(reference, plane, size) > 0,
        keypoints,
        adjacency,
    )


def build_real_rig(creature: RealCreature, rig: RealRig):
    """(evaluation.rig_quality.Bones, skinning -> dense weights (V, B)) of one rig."""
    from dataclasses import replace

    from keydiff3d.evaluation.bone_heat import blender_bone_heat
    from keydiff3d.evaluation.rig_quality import rig_bones
    from keydiff3d.pipeline.rig import MeshArrays, rig_mesh

    asset = creature.asset
    if rig.kind == "artist":
        bones = creature.reference.bones
        weights = {"artist": asset.weights[:, creature.reference.columns]}
    else:
        preset = replace(creature.preset, rig=rig.rig)
        keypoints, adjacency = creature.keypoints, creature.adjacency
        if rig.kind == "artist joints":
            keypoints, adjacency = creature.reference.joints, _link_adjacency(creature.reference)
            preset = replace(preset, skeleton=replace(preset.skeleton, volume_weight=0.0))
        bundle = rig_mesh(MeshArrays(asset.vertices, asset.faces), keypoints, adjacency, preset, up_axis="Z")
        bones = rig_bones(bundle.skeleton)
        column = {n: i for i, n in enumerate(bundle.skin.bone_names)}
        weights = {"preset": bundle.skin.dense()[:, [column[n] for n in bones.names]]}
    weights["bone heat"] = blender_bone_heat(
        asset.vertices, asset.faces, bones.heads, bones.tails, bones.parents
    ).weights
    return bones, weights


def _link_adjacency(reference) -> np.ndarray:
    adjacency = np.zeros((len(reference.joints),) * 2)
    adjacency[reference.edges[:, 0], reference.edges[:, 1]] = adjacency[
        reference.edges[:, 1], reference.edges[:, 0]
    ] = 1.0
    return adjacency


def score_real_rig(creature: RealCreature, bones, weights: dict, artist: bool = False) -> dict[str, dict[str, float]]:
    """skinning -> metrics: structure, bones and names (the same for every skinning) and deformation.
    The artist's rig is its own reference skeleton (structure 0 by definition)."""
    from keydiff3d.evaluation import rig_quality

    joints, edges = (
        (creature.reference.joints, creature.reference.edges) if artist else bones.graph(1e-6 * creature.size)
    )
    common = {
        **rig_quality.structure_scores(joints, edges, creature.reference, creature.surface, creature.size),
        **rig_quality.bone_scores(bones, creature.inside, creature.size),
        **rig_quality.name_scores(bones, creature.plane, creature.size),
    }
    return {
        skinning: {**common, **rig_quality.deformation_scores(creature.asset, w, bones)}
        for skinning, w in weights.items()
    }


def score_real_asset(path: Path, category: str, rigs: Sequence[RealRig], args, render_dir: Path | None) -> dict:
    """label -> skinning -> metrics for one creature (and its picture when render_dir is given)."""
    from keydiff3d.evaluation.rigged_assets import load_rigged_asset
    from keydiff3d.pipeline.posed_preview import PreviewRig, write_posed_preview

    asset = load_rigged_asset(path, max_frames_per_clip=args.frames, category=category, cache_dir=args.asset_cache)
    creature = real_creature(path, asset, args.checkpoint)
    results, pictured = {"_bilateral": creature.bilateral, "_preset": creature.preset.name}, []
    for rig in rigs:
        t0 = time.perf_counter()
        bones, weights = build_real_rig(creature, rig)
        results[rig.label] = score_real_rig(creature, bones, weights, artist=rig.kind == "artist")
        results[rig.label]["_seconds"] = time.perf_counter() - t0
        if rig.render:
            pictured.append(
                PreviewRig(
                    asset.vertices,
                    asset.faces,
                    weights[rig.render],
                    bones.heads,
                    bones.tails,
                    bones.parents,
                    bones.names,
                    f"{rig.label} ({rig.render})",
                )
            )
    if render_dir is not None:
        pictured.sort(key=lambda p: not p.title.startswith("artist"))
        write_posed_preview(pictured, render_dir / f"{asset.name}.png", tile=REAL_TILE)
    return results


def run_real(args, progress) -> tuple[str, dict]:
    """The real-asset part: every rig of every creature of args.assets; (markdown, results)."""
    from keydiff3d.evaluation.rigged_assets import asset_files, manifest_categories

    files = asset_files(Path(args.assets))
    categories = manifest_categories(Path(args.assets))
    rigs = real_rigs()
    per_asset = {}
    for i, path in enumerate(files):
        progress.update(i / len(files), f"real {path.stem}", stage="real")
        per_asset[path.stem] = score_real_asset(
            path, categories.get(path.name, ""), rigs, args, Path(args.render) if args.render else None
        )
    return _real_markdown(per_asset, rigs, args), per_asset


def _real_mean(per_asset: dict, label: str, skinning: str, metric: str, only=None) -> float:
    values = [
        r[label][skinning][metric]
        for name, r in per_asset.items()
        if (only is None or only(r)) and skinning in r[label]
    ]
    return float(np.mean(values)) if values else float("nan")


def _real_rows(rigs) -> list[tuple[str, str]]:
    """(label, skinning) rows: built rigs with both skinnings, the artist's with its weights and bone heat."""
    rows = []
    for rig in rigs:
        rows += (
            [(rig.label, "artist"), (rig.label, "bone heat")]
            if rig.kind == "artist"
            else [(rig.label, "preset"), (rig.label, "bone heat")]
        )
    return rows


def real_targets(per_asset: dict, refined: str, skinning: str) -> list[tuple[str, float, float, bool]]:
    """(target, value, limit, met) of the issue's targets for one rig row, on the mean over creatures."""

    def mean(label, s, m):
        return _real_mean(per_asset, label, s, m)

    artist_fit, artist_torn = mean("artist", "artist", "animation_fit"), mean("artist", "artist", "posability")

    def base(m):
        return mean("curve baseline", "bone heat", m)

    fit = mean(refined, skinning, "animation_fit")
    bilateral = [r for r in per_asset.values() if r["_bilateral"]]
    named = sum(r[refined][skinning]["sided_fraction"] > 0 for r in bilateral)
    longest = max(r[refined][skinning]["long_bones"] for r in per_asset.values())
    out = [
        ("animation fit / artist's", fit / artist_fit, 2.0, fit <= 2.0 * artist_fit),
        ("animation fit / curve baseline's", fit / base("animation_fit"), 1.0, fit < base("animation_fit")),
        ("CD-J2J / baseline", mean(refined, skinning, "cd_j2j_ratio"), min(0.6, base("cd_j2j_ratio")), None),
        ("CD-B2B / baseline", mean(refined, skinning, "cd_b2b_ratio"), min(0.45, base("cd_b2b_ratio")), None),
        (
            "bone length inside",
            mean(refined, skinning, "inside_fraction"),
            0.95,
            mean(refined, skinning, "inside_fraction") >= 0.95,
        ),
        ("bones longer than half the creature (most on one creature)", longest, 0, longest == 0),
        (
            "posability / artist's",
            mean(refined, skinning, "posability") / artist_torn,
            2.0,
            mean(refined, skinning, "posability") <= 2 * artist_torn,
        ),
        (".L/.R names on bilateral creatures", named, len(bilateral), named == len(bilateral)),
    ]
    return [(t, v, lim, v <= lim if met is None else bool(met)) for t, v, lim, met in out]


def _real_markdown(per_asset: dict, rigs, args) -> str:
    rows = _real_rows(rigs)
    names = list(per_asset)
    bilateral = [n for n in names if per_asset[n]["_bilateral"]]
    listed = ", ".join(f"{n} ({per_asset[n]['_preset']})" for n in names)
    lines = [
        "## Real artist-rigged creatures",
        "",
        f"Assets: `{args.assets}` ({len(names)} creatures and their presets: {listed}); "
        f"clip frames: up to {args.frames} per clip; bilateral (the artist's skeleton has mirror pairs in the plane "
        f"found on the rest surface): {', '.join(bilateral) or 'none'}.  ",
        "Rigs: `predicted chain` = `rig-mesh` without --keypoints (orbit views of the rest mesh -> keypoint model -> "
        "learned spanning tree, category preset); `refined (fused)` = the mesh's curve skeleton with the predicted "
        "keypoints as joints, mirrored in the plane found on the rest surface, chain names (rigging.volume_rig, "
        '[rig] method = "fused"); `refined (curve only)` = the same without the keypoints; `curve baseline` = the '
        "plain geometric curve skeleton (voxelised interior, skeletonise, prune spurs, joints at branches, ends and "
        "bends; no refinement); `project on artist joints` = the preset's rig builder given the artist's joints and "
        "links; `artist` = the artist's bones. `fused, no X` = the refined rig with one refinement switched off.  ",
        "Skinning: `preset` = the category preset's skinning (the project's default), `bone heat` = Blender's "
        "automatic "
        "weights, `artist` = the file's own weights.  ",
        "Units: CD ratios = the rig's CD over the structure-free baseline's (farthest-point surface samples with the "
        "artist's joint count, and their Euclidean MST), per creature; animation fit = mean vertex error / diagonal "
        "after the best rigid motion per weight column for each clip frame; posability = mean fraction of edges "
        "torn (stretched past 2x or under 0.5x) when each bone bends 35 degrees; `.L/.R bones` = share of bones named "
        "with a side. Means over creatures (`.L/.R bones`: over the bilateral ones).",
        "",
        "| rig | skinning | " + " | ".join(title for _, title in REAL_COLUMNS) + " |",
        "|---|---|" + "---:|" * len(REAL_COLUMNS),
    ]
    for label, skinning in rows:
        cells = []
        for metric, _ in REAL_COLUMNS:
            only = (lambda r: r["_bilateral"]) if metric == "sided_fraction" else None
            cells.append(_real_cell(_real_mean(per_asset, label, skinning, metric, only), metric))
        lines.append(f"| {label} | {skinning} | " + " | ".join(cells) + " |")
    for refined in (rigs[1].label, rigs[2].label):
        for skinning in ("preset", "bone heat"):
            lines += ["", f"Targets for `{refined}` with `{skinning}` skinning (means over creatures):", ""]
            for target, value, limit, met in real_targets(per_asset, refined, skinning):
                lines.append(f"- {target}: {_fmt(value)} (limit {_fmt(limit)}) -> {'met' if met else 'NOT met'}")
    main = [r.label for r in rigs if r.kind != "volume" or r.label in (rigs[1].label, rigs[2].label, rigs[3].label)]
    for metric, title in (
        ("cd_j2j_ratio", "CD-J2J / baseline"),
        ("cd_b2b_ratio", "CD-B2B / baseline"),
        ("animation_fit", "animation fit (x 1000)"),
        ("posability", "posability (torn edges, x 1000)"),
        ("inside_fraction", "bone length inside"),
        ("long_bones", "bones longer than half the creature"),
        ("sided_fraction", ".L/.R bones"),
    ):
        lines += [
            "",
            f"Per creature, {title} (built rigs: preset skinning; artist: its weights):",
            "",
            "| rig | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for label in main:
            skinning = "artist" if label == "artist" else "preset"
            scale = 1000.0 if metric in ("animation_fit", "posability") else 1.0
            cells = [_real_cell(scale * per_asset[n][label][skinning][metric], metric) for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    seconds = sum(r[label]["_seconds"] for r in per_asset.values() for label in r if not label.startswith("_"))
    lines += ["", f"Rig building + scoring: {seconds:.0f} s in all."]
    if args.render:
        lines += [
            "",
            "Pictures (Workbench, rest and posed: a leg, the neck and the tail bent 40 degrees, bones over the mesh): "
            + ", ".join(f"[{n}]({Path(args.render).name}/{n}.png)" for n in names),
        ]
    return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _real_cell(value: float, metric: str) -> str:
    if not np.isfinite(value):
        return "-"
    if metric in ("long_bones", "bones"):
        return f"{value:.1f}"
    if metric == "animation_fit":
        return f"{value:.5f}" if value < 1 else f"{value:.2f}"
    if metric == "posability":
        return f"{value:.5f}" if value < 1 else f"{value:.2f}"
    return f"{value:.3f}"
