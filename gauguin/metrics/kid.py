"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with a cubic polynomial kernel, averaged
over random subsets. Float64 numpy throughout."""
from __future__ import annotations

import warnings

import numpy as np

from .frechet import as_features, check_same_dim


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (xᵀy / d + 1)³ for all row pairs (Bińkowski et al. 2018)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2(x: np.ndarray, y: np.ndarray) -> float:
    m, n = x.shape[0], y.shape[0]
    kxx, kyy = _poly_kernel(x, x), _poly_kernel(y, y)
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * _poly_kernel(x, y).mean())


def mmd2_unbiased(x, y) -> float:
    """Unbiased MMD² of samples ``x`` [m, D] and ``y`` [n, D] (m, n >= 2; Gretton et al. 2012, as used for KID by
    Bińkowski et al. 2018) with the KID kernel k(x, y) = (xᵀy/D + 1)³:

    MMD²_u = Σ_{i≠i'} k(x_i, x_i')/(m(m−1)) + Σ_{j≠j'} k(y_j, y_j')/(n(n−1)) − 2 Σ_{i,j} k(x_i, y_j)/(mn).

    Its expectation is the population MMD², so it can be negative for samples of one distribution."""
    x, y = as_features(x, "x"), as_features(y, "y")
    check_same_dim(x, y, "x and y")
    return _mmd2(x, y)


def kernel_inception_distance(real, fake, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): mean and standard deviation (ddof=0) of
    :func:`mmd2_unbiased` over ``subsets`` random subsets of ``subset_size`` rows of each set, each subset drawn
    without replacement. ``subset_size`` is capped at min(n_real, n_fake) with a warning. Deterministic in ``seed``.
    """
    real, fake = as_features(real, "real"), as_features(fake, "fake")
    check_same_dim(real, fake, "real and fake")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    available = min(real.shape[0], fake.shape[0])
    if subset_size > available:
        warnings.warn(f"KID subset_size {subset_size} capped at {available} (real: {real.shape[0]}, "
                      f"fake: {fake.shape[0]} samples)", stacklevel=2)
        subset_size = available
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        xi = rng.choice(real.shape[0], subset_size, replace=False)
        yi = rng.choice(fake.shape[0], subset_size, replace=False)
        values[i] = _mmd2(real[xi], fake[yi])
    return float(values.mean()), float(values.std())
