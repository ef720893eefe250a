"""Helpers shared by the pipeline, demo and service tests (not a test module).

The shipped checkpoint may not exist in a fresh tree, so tests write a tiny random-weight one with
the real checkpoint code (same file format and loader as the shipped default).
"""

from __future__ import annotations

from pathlib import Path


def write_tiny_checkpoint(path: Path) -> Path:
    """A random-weight KeyDiff3D checkpoint of the `tiny` training preset (6 keypoints), via save_checkpoint."""
    import torch

    from keydiff3d.training.checkpoint import build_model, save_checkpoint
    from keydiff3d.training.config import load_config

    torch.manual_seed(0)
    config = load_config("tiny")
    save_checkpoint(path, build_model(config), config, {"note": "random weights for tests"})
    return path


def creature_render_mesh(category: str = "quadruped", seed: int = 1):
    """A procedural creature as a RenderMesh in its own frame (z up)."""
    from keydiff3d.synthetic.creatures import generate_creature
    from keydiff3d.synthetic.renderer import as_render_mesh

    return as_render_mesh(generate_creature(category, seed))


def creature_glb_bytes(category: str = "quadruped", seed: int = 1, y_up: bool = True) -> bytes:
    """A procedural creature as GLB bytes; `y_up` turns it into glTF's y-up frame first."""
    from keydiff3d.mesh_io import to_gltf_frame
    from keydiff3d.synthetic.creatures import generate_creature

    mesh = generate_creature(category, seed).to_trimesh()
    return (to_gltf_frame(mesh) if y_up else mesh).export(file_type="glb")


def png_bytes(width: int, height: int, mode: str = "RGBA") -> bytes:
    """A small synthetic PNG: a coloured disc on a transparent (or white) background."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new(mode, (width, height), (255, 255, 255, 0) if mode == "RGBA" else "white")
    ImageDraw.Draw(image).ellipse(
        [width * 0.2, height * 0.2, width * 0.8, height * 0.8],
        fill=(200, 80, 40, 255) if mode == "RGBA" else (200, 80, 40),
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
