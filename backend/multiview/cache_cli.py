"""`keydiff3d cache IMAGES_DIR --out CACHE`: foreground + SV3D-p once per image, stored for training.

`keydiff3d cache --creatures N --out CACHE` does the same for N procedural creatures rendered from
the input view (placed so that SV3D's preprocessing leaves the render unchanged) and stores their
joints with the views: the evaluation data of a model trained on photos (their skeletons are known).

Resumable (finished images are skipped), cancellable (Ctrl-C leaves no partial shard), and an
unreadable image or one without a findable foreground is reported in CACHE/failed.jsonl and skipped.
All weight files are checked before the first image is processed.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", type=Path, nargs="?", help="folder of images (searched recursively); or --creatures")
    parser.add_argument("--out", type=Path, required=True, help="cache folder (created; reused to resume)")
    parser.add_argument("--sv3d", help="sv3d_p.safetensors or a diffusers SV3D folder (default: keydiff3d weights)")
    parser.add_argument("--svd-xt", help="SVD-xt diffusers folder with vae/ and image_encoder/")
    parser.add_argument("--sam", help="SAM checkpoint (.pth)")
    parser.add_argument("--grounding-dino", help="Grounding DINO transformers folder")
    parser.add_argument(
        "--foreground",
        default="auto",
        choices=["auto", "alpha", "grounded-sam"],
        help="how to find the object (auto: alpha if present)",
    )
    parser.add_argument(
        "--view-masks",
        default="threshold",
        choices=["threshold", "sam"],
        help="masks of generated views: white threshold or SAM",
    )
    parser.add_argument("--prompt", default="animal. creature.", help="Grounding DINO text prompt")
    parser.add_argument("--steps", type=int, default=50, help="sampling steps (official: 50)")
    parser.add_argument("--size", type=int, default=576, help="view size in pixels (SV3D-p: 576)")
    parser.add_argument("--tau", type=float, default=500.0, help="DDPM timestep (of 1000) at which features are tapped")
    parser.add_argument(
        "--feature-views", default="all", help="comma-separated frames whose features are stored, or 'all'"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument(
        "--offload", action="store_true", help="keep networks on the CPU between stages (less GPU memory)"
    )
    parser.add_argument("--limit", type=int, help="process at most this many new images")
    parser.add_argument(
        "--creatures",
        type=int,
        metavar="N",
        help="instead of images: N procedural creatures, joints kept (an evaluation cache)",
    )
    parser.add_argument(
        "--categories", default=None, help="with --creatures: comma-separated categories (default: all)"
    )
    parser.add_argument("--creature-seed", type=int, default=0, help="with --creatures: seed of the creature draws")


@dataclass
class Source:
    """One cache item to make: `rel` names it (its key), `load(progress)` gives the RGBA input and,
    for a rendered creature, its ground truth."""

    rel: str
    load: Callable


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images")
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def parse_views(text: str, num_frames: int) -> list[int] | None:
    if text.strip().lower() == "all":
        return None
    try:
        views = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError as error:
        raise InputError(f"--feature-views must be 'all' or comma-separated frame numbers, got {text!r}") from error
    if not views or views[0] < 0 or views[-1] >= num_frames:
        raise InputError(f"--feature-views must name frames in 0..{num_frames - 1}")
    return views


def _extractor(args: argparse.Namespace, runtime):
    from ..segmentation import ForegroundExtractor

    return ForegroundExtractor(args.sam, args.grounding_dino, device=str(runtime.torch_device()))


def image_sources(args: argparse.Namespace, runtime) -> tuple[list[Source], object, dict]:
    """(sources, foreground extractor, foreground settings) for the images of `args.images`;
    the segmentation weights are checked (headers only) before anything else happens."""
    from ..image_io import load_image
    from ..segmentation import ForegroundOptions

    images = list_images(args.images)
    if not images:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {args.images}")
    options = ForegroundOptions(method=args.foreground, prompt=args.prompt)
    extractor = _extractor(args, runtime)
    extractor.validate(options)

    def loader(path: Path) -> Callable:
        return lambda progress: (extractor.extract(load_image(path), options, progress), None)

    return [Source(p.relative_to(args.images).as_posix(), loader(p)) for p in images], extractor, asdict(options)


def creature_sources(count: int, categories: str | None, seed: int, config) -> tuple[list[Source], dict]:
    """(sources, settings) for `count` procedural creatures: balanced categories, seeds as `keydiff3d synth`."""
    from ..synthetic.dataset import SynthConfig, sample_identity

    chosen = {"categories": tuple(c.strip() for c in categories.split(",") if c.strip())} if categories else {}
    synth = SynthConfig(n=count, seed=seed, **chosen)

    def loader(category: str, creature_seed: int) -> Callable:
        return lambda progress: render_creature_input(category, creature_seed, config)

    sources = []
    for i in range(count):
        category, creature_seed = sample_identity(synth, i)
        sources.append(Source(f"creatures/{i:06d}-{category}-{creature_seed}", loader(category, creature_seed)))
    return sources, {"categories": list(synth.categories), "seed": seed}


def sv3d_placed_creature(category: str, seed: int, config):
    """(RenderMesh, GroundTruth) of one procedural creature placed for SV3D-p (`config`: an SV3DConfig).

    The creature is placed so that its input-view render already is SV3D's preprocessed input (box
    centred, longest side (1 - margin) S): preprocessing changes nothing, and the placed mesh and joints
    are in the frame the generated views' cameras describe (`calibration.input_view_placement`).
    """
    from ..geometry import orbit_cameras, sv3d_azimuths_deg
    from ..synthetic.creatures import generate_creature
    from ..synthetic.renderer import as_render_mesh
    from .sv3d.cache import GroundTruth
    from .sv3d.calibration import input_view_placement

    creature = generate_creature(category, seed)
    camera = orbit_cameras(sv3d_azimuths_deg(config.num_frames)[-1:], config.elevation_deg, size=config.size)
    scale, offset = input_view_placement(creature.vertices, camera, config.margin)
    joints = creature.joints.astype(np.float64) * scale + offset
    truth = GroundTruth(joints, creature.bones.astype(np.int64), category)
    return as_render_mesh(creature).transformed(scale, offset), truth


def render_creature_input(category: str, seed: int, config):
    """(RGBA (S, S, 4) float32 input view, GroundTruth) of `sv3d_placed_creature`: the input of SV3D-p."""
    from ..geometry import orbit_cameras, sv3d_azimuths_deg
    from ..synthetic.renderer import render_multiview

    mesh, truth = sv3d_placed_creature(category, seed, config)
    camera = orbit_cameras(sv3d_azimuths_deg(config.num_frames)[-1:], config.elevation_deg, size=config.size)
    view = render_multiview(mesh, camera)
    return np.concatenate([view.images[0], view.masks[0][..., None]], axis=-1), truth


def run(args: argparse.Namespace) -> int:
    from .. import weights
    from ..progress import tqdm_progress
    from .sv3d import RuntimeOptions, SV3DConfig, load_generator
    from .sv3d.cache import item_key, item_path, open_cache, record_failure, write_item

    if (args.images is None) == (args.creatures is None):
        raise InputError("give either a folder of images or --creatures N (not both)")
    config = SV3DConfig(size=args.size, num_steps=args.steps, tap_tau=args.tau, seed=args.seed)
    feature_views = parse_views(args.feature_views, config.num_frames)
    runtime = RuntimeOptions(device=args.device, dtype=args.dtype, offload=args.offload)
    settings = {"sv3d": asdict(config), "feature_views": feature_views, "view_masks": args.view_masks}
    extractor = None
    if args.creatures is not None:
        sources, settings["creatures"] = creature_sources(args.creatures, args.categories, args.creature_seed, config)
    else:
        sources, extractor, settings["foreground"] = image_sources(args, runtime)
    if args.view_masks == "sam":
        from ..segmentation import ForegroundOptions

        extractor = extractor or _extractor(args, runtime)
        extractor.validate(ForegroundOptions(method="box"))
    sv3d = weights.require("sv3d_p", args.sv3d)
    svd_xt = None if weights.sv3d_has_components(sv3d) else weights.require("svd_xt", args.svd_xt)
    open_cache(args.out, settings)
    generator = load_generator(sv3d, svd_xt, config, runtime)
    if args.view_masks == "sam":
        generator.view_segmenter = extractor.refine_view_mask

    todo = [source for source in sources if not item_path(args.out, item_key(source.rel)).exists()]
    skipped = len(sources) - len(todo)
    if args.limit is not None:
        todo = todo[: args.limit]
    log.info("%d inputs, %d already cached, %d to do", len(sources), skipped, len(todo))

    progress = tqdm_progress("cache")
    done = failed = 0
    for index, source in enumerate(todo):
        share = progress.span(index / len(todo), (index + 1) / len(todo), stage=source.rel)
        start = time.perf_counter()
        try:
            rgba, truth = source.load(share.span(0.0, 0.1))
            result = generator.from_image(rgba, share.span(0.1, 1.0))
        except InputError as error:  # unreadable image, no foreground: report and go on
            record_failure(args.out, source.rel, str(error))
            log.warning("skipped %s: %s", source.rel, error)
            failed += 1
            continue
        write_item(args.out, item_key(source.rel), source.rel, result, feature_views, truth)
        done += 1
        log.debug("cached %s in %.1f s", source.rel, time.perf_counter() - start)
    progress.update(1.0, "finished", stage="done")
    print(f"cached {done} images, skipped {skipped} already cached, {failed} failed (see {args.out / 'failed.jsonl'})")
    return 0
