"""`keydiff3d weights [--json] [--no-checksums]`: every expected weight file, where it was looked for
and whether it is the right file; `keydiff3d weights --download NAME...` fetches the entries their
publishers host on the Hugging Face Hub (the catalogue and checks: `keydiff3d.weights`; the
download: `keydiff3d.weights_download`).
"""

from __future__ import annotations

import argparse
import json

from .weights import SPECS, config_file, report, weights_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--no-checksums", action="store_true", help="skip sha256 (hashing large files takes a while the first time)"
    )
    downloadable = [name for name, spec in SPECS.items() if spec.download is not None]
    parser.add_argument(
        "--download",
        nargs="+",
        metavar="NAME",
        choices=[*downloadable, "all"],
        help=f"download entries from the Hugging Face Hub into the weights folder ({', '.join(downloadable)} "
        "or all); resumable",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="Hugging Face token for gated repositories (default: $HF_TOKEN or the saved login)",
    )
    parser.add_argument(
        "--endpoint", default=None, help="the Hub's address (default: $HF_ENDPOINT or https://huggingface.co)"
    )


def run(args: argparse.Namespace) -> int:
    if args.download:
        from .progress import tqdm_progress
        from .weights_download import download

        names = (
            [n for n, spec in SPECS.items() if spec.download is not None] if "all" in args.download else args.download
        )
        for name in dict.fromkeys(names):
            path = download(name, token=args.token, endpoint=args.endpoint, progress=tqdm_progress(f"download {name}"))
            print(f"{name}: {path}")
        return 0
    rows = report(checksums=not args.no_checksums)
    if args.json:
        print(
            json.dumps(
                {"config_file": str(config_file()), "weights_dir": str(weights_dir()), "weights": rows}, indent=1
            )
        )
        return 0
    print(f"config file: {config_file()}\nweights folder: {weights_dir()}\n")
    for row in rows:
        mark = "ok" if row["valid"] else ("WRONG" if row["present"] else "missing")
        print(f"[{mark:7}] {row['name']:15} {row['title']}")
        if row["present"]:
            detail = f", {row['detail']}" if row["detail"] else ""
            print(f"          {row['path']} ({row['origin']}, {row['size'] / 2**20:.1f} MiB{detail})")
            if row["sha256"]:
                print(f"          sha256 {row['sha256']}")
            if row["problem"]:
                print(f"          problem: {row['problem']}")
        else:
            print(f"          looked in: {', '.join(row['searched'][:3])}{' ...' if len(row['searched']) > 3 else ''}")
            print(f"          get it from {row['source']} ({row['licence']}); or set {row['env']}")
    return 0
