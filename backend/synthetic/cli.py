"""`keydiff3d synth`: write a synthetic multi-view data set of procedural creatures."""

from __future__ import annotations

import argparse

from .skeletons import CATEGORIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (an interrupted run with the same options resumes)")
    parser.add_argument("--n", type=int, required=True, help="number of creatures")
    parser.add_argument("--size", type=int, default=128, help="image size in pixels (default 128)")
    parser.add_argument("--views", type=int, default=21, help="views per creature (21 = the SV3D-p orbit)")
    parser.add_argument(
        "--categories", nargs="+", default=list(CATEGORIES), choices=CATEGORIES, help="creature categories (balanced)"
    )
    parser.add_argument("--seed", type=int, default=0, help="data set seed (sample i depends only on seed and i)")
    parser.add_argument(
        "--inconsistency", type=float, default=0.0, help="per-view lighting/colour/shape jitter, 0 = none, 1 = strong"
    )
    parser.add_argument("--supersample", type=int, default=1, help="anti-aliasing factor (renders s^2 more pixels)")
    parser.add_argument(
        "--detail", type=float, default=0.5, help="creature mesh density (0.5 suits 128 px, 1.0 suits 576 px)"
    )
    parser.add_argument("--shard-size", type=int, default=256, help="creatures per .npz shard")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")


def run(args: argparse.Namespace) -> int:
    import time

    from ..progress import tqdm_progress
    from .dataset import SynthConfig, write_dataset

    config = SynthConfig(
        n=args.n,
        size=args.size,
        categories=tuple(args.categories),
        seed=args.seed,
        inconsistency=args.inconsistency,
        num_views=args.views,
        supersample=args.supersample,
        detail=args.detail,
        shard_size=args.shard_size,
    )
    start = time.perf_counter()
    progress = tqdm_progress("synth")
    write_dataset(args.out, config, workers=args.workers, progress=progress.span(0.0, 1.0, "synth"))
    progress.update(1.0, "", stage="done")
    elapsed = time.perf_counter() - start
    print(f"wrote {config.n} creatures x {config.num_views} views at {config.size} px to {args.out} in {elapsed:.1f} s")
    return 0
