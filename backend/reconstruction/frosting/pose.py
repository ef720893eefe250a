"""Gaussians that follow the rig: linear blend skinning of the base mesh, then the frosting layer.

The rig skins the reconstruction's mesh (= the frosting's base mesh, same vertex order). Posing
the Gaussians is therefore: skin the base vertices with the bone transforms and the mesh's skin
weights, and re-evaluate the layer on the posed vertices. The prisms (shell points along the posed
normals) and the triangle frames move with the surface, so each Gaussian keeps its place in its
prism and turns with its triangle. Pure torch; runs on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from .gaussians import GaussianParams
from .layer import FrostingGaussians


def skin_vertices(
    vertices: torch.Tensor,
    bone_transforms: torch.Tensor,
    weights: torch.Tensor,
    indices: torch.Tensor | None = None,
) -> torch.Tensor:
    """Linear blend skinning: v' = sum_b w_vb T_b v.

    vertices (M, 3) rest pose; bone_transforms (B, 4, 4) rest -> posed (posed_global @ rest_global^-1);
    weights either dense (M, B) or top-k (M, k) with `indices` (M, k) into the bones (the rig
    bundle's format). Rows must sum to 1.
    """
    if indices is None:
        if weights.shape != (vertices.shape[0], bone_transforms.shape[0]):
            raise ValueError(
                f"dense weights must be (M, B) = ({vertices.shape[0]}, {bone_transforms.shape[0]}), "
                f"got {tuple(weights.shape)}"
            )
        blended = torch.einsum("mb,bij->mij", weights, bone_transforms)
    else:
        if indices.shape != weights.shape or indices.shape[0] != vertices.shape[0]:
            raise ValueError("top-k skin weights and indices must both be (M, k)")
        blended = torch.einsum("mk,mkij->mij", weights, bone_transforms[indices.long()])
    return torch.einsum("mij,mj->mi", blended[:, :3, :3], vertices) + blended[:, :3, 3]


def pose_gaussians(
    frosting: FrostingGaussians,
    bone_transforms: torch.Tensor | np.ndarray,
    weights: torch.Tensor | np.ndarray,
    indices: torch.Tensor | np.ndarray | None = None,
) -> GaussianParams:
    """The frosting's Gaussians in the pose given by `bone_transforms` (see `skin_vertices`).

    Takes tensors or numpy arrays, e.g. `keydiff3d_addon.rigcore.SkinWeights.indices / .weights` directly.
    """

    def as_tensor(a):
        return torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a, device=frosting.vertices.device)

    dtype = frosting.vertices.dtype
    posed = skin_vertices(
        frosting.vertices,
        as_tensor(bone_transforms).to(dtype),
        as_tensor(weights).to(dtype),
        None if indices is None else as_tensor(indices).long(),
    )
    return frosting.world(posed)
