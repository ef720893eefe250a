"""`keydiff3d serve`: run the HTTP backend with uvicorn (loopback by default)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .config import DEFAULT_PORT


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "keydiff3d" / "service"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other address needs --token)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help=f"job folders and results (default {default_data_dir()})"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("KEYDIFF3D_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' (default $KEYDIFF3D_TOKEN)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cuda", "cpu"), default="auto", help="device of the pipeline (default auto)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="keypoint checkpoint (default: the preset's [model] checkpoint)"
    )
    parser.add_argument("--max-upload-mb", type=float, default=64.0, help="largest accepted upload in MiB (default 64)")
    parser.add_argument(
        "--max-image-pixels", type=int, default=None, help="largest accepted image in pixels (default 4096*4096)"
    )
    parser.add_argument("--keep-jobs", type=int, default=100, help="finished jobs kept on disk (default 100)")
    queued_help = "jobs queued or running at once; more get 429 (default 32)"
    parser.add_argument("--max-queued-jobs", type=int, default=32, help=queued_help)
    free_help = "MiB kept free on the data folder's disk; an upload that leaves less gets 503 (default 1024)"
    parser.add_argument("--min-free-mb", type=float, default=1024.0, help=free_help)
    parser.add_argument(
        "--no-warm-up", action="store_true", help="do not load the default preset's keypoint model before the first job"
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .config import ServiceConfig
    from .logs import setup_json_logging
    from .protocol import JsonErrorH11Protocol

    limits = {} if args.max_image_pixels is None else {"max_image_pixels": args.max_image_pixels}
    config = ServiceConfig(
        data_dir=(args.data_dir or default_data_dir()).resolve(),
        host=args.host,
        port=args.port,
        token=args.token or None,
        device=args.device,
        checkpoint=str(args.checkpoint.resolve()) if args.checkpoint else None,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        keep_jobs=args.keep_jobs,
        max_queued_jobs=args.max_queued_jobs,
        min_free_bytes=int(args.min_free_mb * 1024 * 1024),
        warm_up=not args.no_warm_up,
        **limits,
    )
    setup_json_logging()
    app = create_app(config)
    uvicorn.run(app, host=config.host, port=config.port, http=JsonErrorH11Protocol, log_config=None, access_log=False)
    return 0
