"""`keydiff3d cache IMAGES_DIR --out CACHE`: foreground + SV3D-p once per image, stored for training.

Resumable (finished images are skipped), cancellable (Ctrl-C leaves no partial shard), and an
unreadable image or one without a findable foreground is reported in CACHE/failed.jsonl and skipped.
All weight files are checked before the first image is processed.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict
from pathlib import Path

from ..errors import InputError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", type=Path, help="folder of images (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="cache folder (created; reused to resume)")
    parser.add_argument("--sv3d", help="sv3d_p.safetensors or a diffusers SV3D folder (default: keydiff3d weights)")
    parser.add_argument("--svd-xt", help="SVD-xt diffusers folder with vae/ and image_encoder/")
    parser.add_argument("--sam", help="SAM checkpoint (.pth)")
    parser.add_argument("--grounding-dino", help="Grounding DINO transformers folder")
    parser.add_argument("--foreground", default="auto", choices=["auto", "alpha", "grounded-sam"], help="how to find the object (auto: alpha if present)")
    parser.add_argument("--view-masks", default="threshold", choices=["threshold", "sam"], help="masks of generated views: white threshold or SAM")
    parser.add_argument("--prompt", default="animal. creature.", help="Grounding DINO text prompt")
    parser.add_argument("--steps", type=int, default=50, help="sampling steps (official: 50)")
    parser.add_argument("--size", type=int, default=576, help="view size in pixels (SV3D-p: 576)")
    parser.add_argument("--tau", type=float, default=500.0, help="DDPM timestep (of 1000) at which features are tapped")
    parser.add_argument("--feature-views", default="all", help="comma-separated frames whose features are stored, or 'all'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--offload", action="store_true", help="keep networks on the CPU between stages (less GPU memory)")
    parser.add_argument("--limit", type=int, help="process at most this many new images")


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


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


def run(args: argparse.Namespace) -> int:
    from .. import weights
    from ..progress import tqdm_progress
    from ..segmentation import ForegroundExtractor, ForegroundOptions, load_image
    from .sv3d import RuntimeOptions, SV3DConfig, load_generator
    from .sv3d.cache import item_key, item_path, open_cache, record_failure, write_item

    images = list_images(args.images)
    if not images:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {args.images}")
    config = SV3DConfig(size=args.size, num_steps=args.steps, tap_tau=args.tau, seed=args.seed)
    feature_views = parse_views(args.feature_views, config.num_frames)
    options = ForegroundOptions(method=args.foreground, prompt=args.prompt)
    runtime = RuntimeOptions(device=args.device, dtype=args.dtype, offload=args.offload)
    extractor = ForegroundExtractor(args.sam, args.grounding_dino, device=str(runtime.torch_device()))
    # every weight file is checked (headers only) before the cache folder is touched or a model loads
    extractor.validate(options)
    if args.view_masks == "sam":
        extractor.validate(ForegroundOptions(method="box"))
    sv3d = weights.require("sv3d_p", args.sv3d)
    svd_xt = None if weights.sv3d_has_components(sv3d) else weights.require("svd_xt", args.svd_xt)
    open_cache(args.out, {"sv3d": asdict(config), "feature_views": feature_views, "foreground": asdict(options), "view_masks": args.view_masks})
    generator = load_generator(sv3d, svd_xt, config, runtime)
    if args.view_masks == "sam":
        generator.view_segmenter = extractor.refine_view_mask

    todo = [(p, p.relative_to(args.images).as_posix()) for p in images]
    todo = [(p, rel) for p, rel in todo if not item_path(args.out, item_key(rel)).exists()]
    skipped = len(images) - len(todo)
    if args.limit is not None:
        todo = todo[: args.limit]
    log.info("%d images, %d already cached, %d to do", len(images), skipped, len(todo))

    progress = tqdm_progress("cache")
    done = failed = 0
    for index, (path, rel) in enumerate(todo):
        share = progress.span(index / len(todo), (index + 1) / len(todo), stage=rel)
        start = time.perf_counter()
        try:
            rgba = extractor.extract(load_image(path), options, share.span(0.0, 0.1))
            result = generator.from_image(rgba, share.span(0.1, 1.0))
        except InputError as error:  # unreadable image, no foreground: report and go on
            record_failure(args.out, rel, str(error))
            log.warning("skipped %s: %s", rel, error)
            failed += 1
            continue
        write_item(args.out, item_key(rel), rel, result, feature_views)
        done += 1
        log.debug("cached %s in %.1f s", rel, time.perf_counter() - start)
    progress.update(1.0, "finished", stage="done")
    print(f"cached {done} images, skipped {skipped} already cached, {failed} failed (see {args.out / 'failed.jsonl'})")
    return 0
