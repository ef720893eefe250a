"""`keydiff3d` command line. Each command lives in its stage's module, imported only when used.

A command module provides `add_arguments(parser)` and `run(args) -> int | None`. Heavy imports
(torch, bpy) stay inside `run`, so `keydiff3d --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import __version__
from .errors import Cancelled, KeyDiff3DError

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("keydiff3d.demo", "Run the embedded default on the bundled sample (CPU, no downloads)."),
    "rig": ("keydiff3d.pipeline.cli", "Rig a creature from one image (SV3D-p + KeyDiff3D + reconstruction)."),
    "rig-mesh": ("keydiff3d.pipeline.mesh_cli", "Rig an existing mesh from given or predicted keypoints."),
    "export": ("keydiff3d.export", "Build the Blender scene from a rig bundle and export FBX / .blend."),
    "build-addon": ("keydiff3d.addon_build", "Build the installable Blender extension zip."),
    "synth": ("keydiff3d.synthetic.cli", "Write a synthetic multi-view data set of procedural creatures."),
    "render": ("keydiff3d.synthetic.render_cli", "Render a mesh's orbit views, masks, depth and cameras."),
    "reconstruct": ("keydiff3d.reconstruction.cli", "Reconstruct a mesh from a folder of orbit views."),
    "train": ("keydiff3d.training.cli", "Train the KeyDiff3D keypoint model from a config."),
    "eval": ("keydiff3d.evaluation.cli", "Evaluate a checkpoint with the paper's protocol."),
    "bench": ("keydiff3d.bench", "Run a benchmark from benchmarks/ (`keydiff3d bench --help` lists them)."),
    "cache": ("keydiff3d.multiview.cache_cli", "Cache SV3D views and features for a folder of images."),
    "weights": ("keydiff3d.weights_cli", "List expected weight files, where they are looked for and which exist."),
    "serve": ("keydiff3d.service.cli", "Run the local HTTP backend the Blender add-on talks to."),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keydiff3d", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"keydiff3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:  # only the chosen command's module is imported
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(run=module.run)
    return parser


def user_errors() -> tuple[type[Exception], ...]:
    """The errors printed as one sentence: KeyDiff3DError, and the add-on core's preset and bundle
    errors (a broken presets/ folder fails while a command's parser reads its defaults)."""
    from keydiff3d_addon.rigcore.bundle import BundleError
    from keydiff3d_addon.rigcore.presets import PresetError

    return (KeyDiff3DError, PresetError, BundleError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    name = command if command in COMMANDS else None
    prefix = f"keydiff3d {name}" if name else "keydiff3d"  # an error may come before a command is known
    try:
        parser = build_parser(name)
        args = parser.parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
        return int(args.run(args) or 0)
    except (Cancelled, KeyboardInterrupt):
        print(f"{prefix}: cancelled", file=sys.stderr)
        return 130
    except Exception as error:
        if not isinstance(error, user_errors()):
            raise
        print(f"{prefix}: {error}", file=sys.stderr)
        return 2


def console_main() -> None:
    """Entry point of the `keydiff3d` script."""
    code = main()
    if "bpy" in sys.modules:
        # bpy 4.5's C++ exit handler can deadlock against its "delayed close" thread; the work is
        # done and flushed, so leave without running C exit handlers.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
