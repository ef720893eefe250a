"""`keydiff3d eval --checkpoint CKPT [--data DIR] [--json]`: the paper's protocol on a checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..pipeline.options import DEVICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", default=None, help="model.safetensors or its folder (default: the shipped checkpoint)"
    )
    parser.add_argument(
        "--data", default=None, help="synthetic data set folder (default: the one the checkpoint was trained on)"
    )
    parser.add_argument(
        "--max-train-items",
        type=int,
        default=0,
        help="fit the regressors on at most this many training items (0 = all)",
    )
    parser.add_argument(
        "--max-test-items", type=int, default=0, help="score at most this many held-out items (0 = all)"
    )
    parser.add_argument("--preview", default=None, help="write the keypoint/skeleton preview PNG here")
    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help="auto (CUDA when present), cuda or cpu (default auto)"
    )
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")


def run(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..progress import tqdm_progress
    from ..training.checkpoint import load_model
    from .protocol import evaluate_model

    device = str(resolve_device(args.device))
    model, config, metadata = load_model(args.checkpoint, device=device)
    progress = None if args.json else tqdm_progress("eval")
    report = evaluate_model(
        model,
        config,
        args.data,
        max_train_items=args.max_train_items,
        max_test_items=args.max_test_items,
        device=device,
        preview_path=Path(args.preview) if args.preview else None,
        progress=progress,
    )
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint or "default"), **report.to_dict()}, indent=1))
    else:
        print(report.table())
        if report.preview:
            print(f"preview: {report.preview}")
    return 0
