"""Pose metrics of the paper's protocol (MPJPE, N-MPJPE, P-MPJPE) and skeleton metrics (CD-J2J, CD-J2B, CD-B2B).

All functions take numpy arrays of 3D points in one frame and return distances in that frame's
units; the evaluation report converts world units to "milli-extent" (1/1000 of the object's
largest bounding-box side, i.e. millimetres for a creature whose largest side is 1 m).

Shapes: `pred`, `gt` are (B, J, 3) (a batch of poses) or (J, 3) (one pose).
"""

from __future__ import annotations

import numpy as np


def _batched(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.shape[-1] != 3:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (..., J, 3)")
    return pred.reshape(-1, *pred.shape[-2:]), gt.reshape(-1, *gt.shape[-2:])


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean error of every joint of every pose: (B, J)."""
    pred, gt = _batched(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-joint position error: mean Euclidean distance over all joints of all poses."""
    return float(joint_errors(pred, gt).mean())


def scale_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Each pose of `pred` times the scale s minimising ||s * pred - gt||^2 (Rhodin et al.'s N-MPJPE)."""
    pred, gt = _batched(pred, gt)
    scale = (pred * gt).sum(axis=(1, 2)) / np.maximum((pred * pred).sum(axis=(1, 2)), 1e-12)
    return pred * scale[:, None, None]


def n_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE after the optimal per-pose scale (no rotation, no translation)."""
    return mpjpe(scale_align(pred, gt), gt)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Each pose of `pred` mapped by the similarity (s, R, t) minimising ||s R pred + t - gt||^2.

    Umeyama's closed form: SVD of the cross-covariance, with the sign fix that keeps R a proper
    rotation (det R = +1), so mirror images are not aligned away.
    """
    pred, gt = _batched(pred, gt)
    mu_p, mu_g = pred.mean(1, keepdims=True), gt.mean(1, keepdims=True)
    p, g = pred - mu_p, gt - mu_g
    cov = np.einsum("bji,bjk->bik", g, p)  # (B, 3, 3) = sum_j g_j p_j^T
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.tile(np.eye(3), (len(pred), 1, 1))
    D[:, 2, 2] = d
    R = U @ D @ Vt
    var_p = (p * p).sum(axis=(1, 2))
    scale = (S * np.diagonal(D, axis1=1, axis2=2)).sum(1) / np.maximum(var_p, 1e-12)
    return scale[:, None, None] * np.einsum("bik,bjk->bji", R, p) + mu_g


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE after the optimal per-pose similarity transform (rotation, scale, translation)."""
    return mpjpe(procrustes_align(pred, gt), gt)


def point_segment_distance(points: np.ndarray, heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """Distance from each point (P, 3) to each segment head->tail (S, 3): (P, S)."""
    points, heads, tails = (np.asarray(a, np.float64) for a in (points, heads, tails))
    d = tails - heads  # (S, 3)
    length2 = np.maximum((d * d).sum(-1), 1e-12)
    rel = points[:, None, :] - heads[None]  # (P, S, 3)
    t = np.clip((rel * d[None]).sum(-1) / length2, 0.0, 1.0)
    closest = heads[None] + t[..., None] * d[None]
    return np.linalg.norm(points[:, None, :] - closest, axis=-1)


def cd_j2j(joints_a: np.ndarray, joints_b: np.ndarray) -> float:
    """Symmetric Chamfer distance between two joint sets (A, 3), (B, 3): mean of both directions."""
    dist = np.linalg.norm(np.asarray(joints_a, np.float64)[:, None] - np.asarray(joints_b, np.float64)[None], axis=-1)
    return float(0.5 * (dist.min(1).mean() + dist.min(0).mean()))


def cd_j2b(joints_a: np.ndarray, bones_a: np.ndarray, joints_b: np.ndarray, bones_b: np.ndarray) -> float:
    """Symmetric joint-to-bone Chamfer distance (RigNet): A's joints to B's bones and B's joints to A's.

    bones_*: (E, 2) index pairs into the matching joint array.
    """
    joints_a, joints_b = np.asarray(joints_a, np.float64), np.asarray(joints_b, np.float64)
    bones_a, bones_b = np.asarray(bones_a, np.int64), np.asarray(bones_b, np.int64)
    a_to_b = point_segment_distance(joints_a, joints_b[bones_b[:, 0]], joints_b[bones_b[:, 1]]).min(1).mean()
    b_to_a = point_segment_distance(joints_b, joints_a[bones_a[:, 0]], joints_a[bones_a[:, 1]]).min(1).mean()
    return float(0.5 * (a_to_b + b_to_a))


def bone_samples(joints: np.ndarray, bones: np.ndarray, step: float) -> np.ndarray:
    """Points along every bone (E, 2) of `joints` (J, 3), evenly spaced at most `step` apart, both
    ends included: (P, 3)."""
    joints, bones = np.asarray(joints, np.float64), np.asarray(bones, np.int64)
    points = []
    for head, tail in joints[bones]:
        count = max(int(np.ceil(np.linalg.norm(tail - head) / step)), 1) + 1
        t = np.linspace(0.0, 1.0, count)[:, None]
        points.append(head * (1 - t) + tail * t)
    return np.concatenate(points)


def cd_b2b(
    joints_a: np.ndarray, bones_a: np.ndarray, joints_b: np.ndarray, bones_b: np.ndarray, step: float = 0.01
) -> float:
    """Symmetric bone-to-bone Chamfer distance (RigNet): points sampled every `step` along A's bones to
    B's bones and B's samples to A's bones, mean of both directions. Unlike CD-J2B it sees a bone's
    whole length, so a spurious long bone costs in proportion to how far it strays from the other
    skeleton. bones_*: (E, 2) index pairs into the matching joint array."""
    joints_a, joints_b = np.asarray(joints_a, np.float64), np.asarray(joints_b, np.float64)
    bones_a, bones_b = np.asarray(bones_a, np.int64), np.asarray(bones_b, np.int64)
    a_to_b = (
        point_segment_distance(bone_samples(joints_a, bones_a, step), joints_b[bones_b[:, 0]], joints_b[bones_b[:, 1]])
        .min(1)
        .mean()
    )
    b_to_a = (
        point_segment_distance(bone_samples(joints_b, bones_b, step), joints_a[bones_a[:, 0]], joints_a[bones_a[:, 1]])
        .min(1)
        .mean()
    )
    return float(0.5 * (a_to_b + b_to_a))
