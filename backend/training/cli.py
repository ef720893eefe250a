"""`keydiff3d train CONFIG`: train KeyDiff3D from a preset name or a .toml/.json config file.

The same command runs on a CPU, one GPU, or many GPUs with `accelerate launch -m keydiff3d.cli train CONFIG`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .config import preset_names

    parser.add_argument("config", help=f"preset name ({', '.join(preset_names())}) or a .toml/.json file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set optim.steps=500 --set data.dir=data/synth (repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run from its newest saved state")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is visible")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.protocol import train_and_evaluate
    from ..progress import tqdm_progress
    from .config import load_config

    config = load_config(args.config, [*args.overrides, *(["logging.eval_at_end=false"] if args.no_eval else [])])
    command = " ".join(shlex.quote(a) for a in ["keydiff3d", *sys.argv[1:]])
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun / accelerate launch only rank 0 draws a bar
    progress = tqdm_progress("train") if main_process else None
    result, report = train_and_evaluate(config, resume=args.resume, cpu=args.cpu, command=command, progress=progress)
    if not main_process:
        return 0
    print(f"checkpoint: {result.checkpoint} (step {result.step}, {result.seconds:.0f} s)")
    if report is not None:
        print(report.table())
        print(json.dumps(report.headline(), indent=1))
    return 0
