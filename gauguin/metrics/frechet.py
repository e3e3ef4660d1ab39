"""Fréchet distance between Gaussians fitted to two feature sets (FID; Heusel et al. 2017).

All arithmetic is float64 in numpy. Matrix square roots go through ``np.linalg.eigh`` of symmetric
positive semi-definite matrices, with round-off negative eigenvalues clipped to 0, which avoids the
complex parts and instabilities of a general ``sqrtm`` of the non-symmetric product Σ1 Σ2.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch


def as_features(x, name: str, min_samples: int = 2) -> np.ndarray:
    """``x`` (tensor or array) as a finite float64 ``[N, D]`` array with ``N >= min_samples``, else ValueError."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a [N, D] feature matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
        rows = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f"{name} contains {nan} NaN and {inf} Inf values (in {rows} of {arr.shape[0]} rows)")
    if arr.shape[0] < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples, got {arr.shape[0]}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {arr.shape})")
    return arr


def check_same_dim(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names} have different feature dimensions: {a.shape[1]} and {b.shape[1]}")


@dataclass(eq=False)
class FeatureStats:
    """Mean ``mu`` [D], covariance ``sigma`` [D, D] (unbiased, ddof=1) and sample count ``n`` of a feature set."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    def __post_init__(self):
        self.mu = np.asarray(self.mu, dtype=np.float64)
        self.sigma = np.asarray(self.sigma, dtype=np.float64)
        self.n = int(self.n)
        d = self.mu.shape[0] if self.mu.ndim == 1 else -1
        if d < 1 or self.sigma.shape != (d, d):
            raise ValueError(f"FeatureStats needs mu [D] and sigma [D, D], got {self.mu.shape} and {self.sigma.shape}")
        for name, value in (("mu", self.mu), ("sigma", self.sigma)):
            if not np.isfinite(value).all():
                raise ValueError(f"FeatureStats.{name} contains {int((~np.isfinite(value)).sum())} NaN/Inf values")
        scale = max(1.0, float(np.abs(self.sigma).max()))
        if np.abs(self.sigma - self.sigma.T).max() > 1e-8 * scale:
            raise ValueError("FeatureStats.sigma is not symmetric, so it is not a covariance matrix")
        if self.n < 2:
            raise ValueError(f"FeatureStats needs n >= 2 samples, got {self.n}")

    @property
    def dim(self) -> int:
        return self.mu.shape[0]

    @classmethod
    def from_features(cls, features) -> "FeatureStats":
        """Statistics of ``features`` ``[N, D]`` (tensor or array, N >= 2)."""
        x = as_features(features, "features")
        mu = x.mean(axis=0)
        xc = x - mu
        sigma = xc.T @ xc / (x.shape[0] - 1)
        return cls(mu, (sigma + sigma.T) / 2, x.shape[0])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{"mu", "sigma", "n"}`` as numpy arrays (``n``: int64 ``[1]``), e.g. for ``safetensors.numpy.save_file``."""
        return {"mu": self.mu.copy(), "sigma": self.sigma.copy(), "n": np.array([self.n], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, d) -> "FeatureStats":
        """Inverse of :meth:`to_arrays` (numpy arrays or torch tensors)."""
        missing = {"mu", "sigma", "n"} - set(d)
        if missing:
            raise ValueError(f"FeatureStats.from_arrays is missing {sorted(missing)}")
        as_np = lambda v: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)  # noqa: E731
        n = as_np(d["n"]).reshape(-1)
        if n.size != 1:
            raise ValueError(f"FeatureStats.from_arrays needs a single n, got {n.size} values")
        return cls(as_np(d["mu"]), as_np(d["sigma"]), int(n[0]))


def _psd_eigh(m: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of symmetric ``m`` with eigenvalues clipped at 0; ValueError if clearly not PSD."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    if w[0] < -1e-6 * max(float(w[-1]), 1e-12):
        raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {w[0]:.3g}, largest {w[-1]:.3g})")
    return np.clip(w, 0.0, None), v


def frechet_distance(stats_a: FeatureStats, stats_b: FeatureStats) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(μ1, Σ1) and N(μ2, Σ2): Heusel et al. 2017 (FID),

    d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½).

    Tr((Σ1^½ Σ2 Σ1^½)^½) is the sum of the square roots of the (clipped-at-0) eigenvalues of that symmetric PSD
    matrix.
    Symmetric in its arguments up to round-off. Warns when a set has n <= D samples (singular covariance).
    """
    if stats_a.dim != stats_b.dim:
        raise ValueError(f"feature dimensions differ: {stats_a.dim} and {stats_b.dim}")
    for which, s in (("first", stats_a), ("second", stats_b)):
        if s.n <= s.dim:
            warnings.warn(f"{which} set: covariance is singular with {s.n} samples of {s.dim} features; FID is "
                          f"biased/unstable: use more than {s.dim} samples (ideally several times more)", stacklevel=2)
    w1, v1 = _psd_eigh(stats_a.sigma, "first covariance")
    _psd_eigh(stats_b.sigma, "second covariance")  # validation only
    sqrt_s1 = (v1 * np.sqrt(w1)) @ v1.T
    m = sqrt_s1 @ stats_b.sigma @ sqrt_s1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    diff = stats_a.mu - stats_b.mu
    d2 = diff @ diff + np.trace(stats_a.sigma) + np.trace(stats_b.sigma) - 2.0 * tr_covmean
    return float(max(d2, 0.0))  # the exact value is >= 0; only round-off can push it below


def fid_from_features(real, fake) -> float:
    """FID between two feature matrices ``[N, D]`` and ``[M, D]`` (Heusel et al. 2017)."""
    real, fake = as_features(real, "real"), as_features(fake, "fake")
    check_same_dim(real, fake, "real and fake")
    return frechet_distance(FeatureStats.from_features(real), FeatureStats.from_features(fake))
