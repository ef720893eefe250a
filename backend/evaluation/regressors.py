"""Regressors of the paper's protocol: predicted keypoints (N, 3) -> ground-truth joints (J, 3).

Unsupervised keypoints have no fixed meaning, so the protocol fits a small map on the training
split and measures the error on a held-out split. Both regressors work on the flattened poses
(B, N*3) -> (B, J*3), standardised with the training statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class _Standardiser:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "_Standardiser":
        return cls(x.mean(0), np.maximum(x.std(0), 1e-6))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


def _flatten(poses: np.ndarray) -> np.ndarray:
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[-1] != 3:
        raise ValueError(f"expected poses of shape (B, points, 3), got {poses.shape}")
    return poses.reshape(len(poses), -1)


class LinearRegressor:
    """Affine least squares with a small ridge term (keeps the fit stable when B is close to N*3)."""

    def __init__(self, ridge: float = 1e-3) -> None:
        self.ridge = ridge
        self.weights: np.ndarray | None = None  # (N*3 + 1, J*3)
        self.num_joints = 0

    def fit(self, keypoints: np.ndarray, joints: np.ndarray) -> "LinearRegressor":
        x, y = _flatten(keypoints), _flatten(joints)
        self._norm = _Standardiser.fit(x)
        xs = np.concatenate([self._norm(x), np.ones((len(x), 1))], axis=1)
        reg = self.ridge * len(x) * np.eye(xs.shape[1])
        reg[-1, -1] = 0.0  # the bias is not shrunk
        self.weights = np.linalg.solve(xs.T @ xs + reg, xs.T @ y)
        self.num_joints = joints.shape[1]
        return self

    def predict(self, keypoints: np.ndarray) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("fit the regressor first")
        x = self._norm(_flatten(keypoints))
        y = np.concatenate([x, np.ones((len(x), 1))], axis=1) @ self.weights
        return y.reshape(len(x), self.num_joints, 3)


class MLPRegressor:
    """Two hidden layers (ReLU, dropout) trained full-batch with AdamW; deterministic by seed."""

    def __init__(
        self,
        hidden: int = 256,
        steps: int = 1500,
        lr: float = 3e-3,
        weight_decay: float = 1e-3,
        dropout: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.hidden, self.steps, self.lr, self.weight_decay, self.dropout, self.seed = (
            hidden,
            steps,
            lr,
            weight_decay,
            dropout,
            seed,
        )
        self.net: torch.nn.Module | None = None
        self.num_joints = 0

    def fit(self, keypoints: np.ndarray, joints: np.ndarray) -> "MLPRegressor":
        x, y = _flatten(keypoints), _flatten(joints)
        self._xnorm, self._ynorm = _Standardiser.fit(x), _Standardiser.fit(y)
        generator = torch.Generator().manual_seed(self.seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], self.hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, self.hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, y.shape[1]),
        )
        with torch.no_grad():  # seeded init independent of the global RNG
            for p in self.net.parameters():
                p.copy_(torch.empty_like(p).uniform_(-1, 1, generator=generator) / np.sqrt(max(p.shape[-1], 1)))
        xt = torch.as_tensor(self._xnorm(x), dtype=torch.float32)
        yt = torch.as_tensor(self._ynorm(y), dtype=torch.float32)
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.steps)
        fork = torch.random.fork_rng(devices=[])  # dropout masks must not disturb the caller's RNG
        with fork:
            torch.manual_seed(self.seed)
            self.net.train()
            for _ in range(self.steps):
                loss = torch.nn.functional.mse_loss(self.net(xt), yt)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        self.net.eval()
        self.num_joints = joints.shape[1]
        return self

    def predict(self, keypoints: np.ndarray) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("fit the regressor first")
        x = torch.as_tensor(self._xnorm(_flatten(keypoints)), dtype=torch.float32)
        with torch.no_grad():
            y = self.net(x).double().numpy() * self._ynorm.std + self._ynorm.mean
        return y.reshape(len(x), self.num_joints, 3)


REGRESSORS = {"linear": LinearRegressor, "mlp": MLPRegressor}
