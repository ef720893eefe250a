"""Reading a KP.json of keypoints the user gives for a mesh (`keydiff3d rig-mesh --keypoints`).

Images are read by `keydiff3d.image_io`, meshes by `keydiff3d.mesh_io`, with the same kind of checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keydiff3d_addon.rigcore.bundle import MAX_KEYPOINTS

from ..errors import InputError


def read_keypoints_json(path: Path):
    """KP.json (`{"keypoints": N x 3, "adjacency": N x N}`, 2 <= N <= the bundle's MAX_KEYPOINTS) ->
    (keypoints (N, 3), adjacency (N, N)) float64; InputError in one sentence for anything else."""
    import json

    path = Path(path)
    if not path.is_file():
        raise InputError(f"keypoints file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path.name} is not valid JSON ({error})") from None
    if not isinstance(data, dict) or "keypoints" not in data or "adjacency" not in data:
        raise InputError(f'{path.name} must be an object with "keypoints" (N x 3) and "adjacency" (N x N)')
    try:
        keypoints = np.asarray(data["keypoints"], np.float64)
        adjacency = np.asarray(data["adjacency"], np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path.name}: keypoints and adjacency must be rectangular arrays of numbers") from None
    if keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise InputError(f"{path.name}: keypoints must be N x 3, got shape {keypoints.shape}")
    if not 2 <= len(keypoints) <= MAX_KEYPOINTS:
        raise InputError(
            f"{path.name}: a skeleton needs at least 2 keypoints and at most {MAX_KEYPOINTS} (the bundle's limit), "
            f"got {len(keypoints)}"
        )
    if adjacency.shape != (len(keypoints), len(keypoints)):
        raise InputError(
            f"{path.name}: adjacency must be {len(keypoints)} x {len(keypoints)}, got shape {adjacency.shape}"
        )
    if not (np.isfinite(keypoints).all() and np.isfinite(adjacency).all()):
        raise InputError(f"{path.name}: keypoints and adjacency must be finite numbers")
    return keypoints, adjacency
