"""k-NN precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020) of feature sets.

A sample is inside the closed ball B(x, r_k(x)) of a point x of the other set, r_k(x) the distance from x to its
k-th nearest neighbour in its own set (itself excluded). Distances are float64 Euclidean (``torch.cdist``) computed
``chunk_size`` rows at a time, so memory is O(chunk_size · max(N, M)) (about 80 MB per 1024 × 10k chunk).
"""
from __future__ import annotations

import torch

from .frechet import as_features, check_same_dim


def _knn_radii(x: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    """Distance of each row of x to its k-th nearest other row (the (k+1)-th smallest, counting itself)."""
    return torch.cat([torch.cdist(c, x).topk(k + 1, dim=1, largest=False).values[:, k]
                      for c in x.split(chunk_size)])


@torch.no_grad()
def precision_recall_density_coverage(real, fake, k: int = 5, chunk_size: int = 1024,
                                      device: str | torch.device | None = None) -> dict[str, float]:
    """``{"precision", "recall", "density", "coverage"}`` of ``fake`` [M, D] against ``real`` [N, D].

    precision = (1/M) Σ_j 1[∃i: Y_j ∈ B(X_i, r_k(X_i))]   (Kynkäänniemi et al. 2019)
    recall    = (1/N) Σ_i 1[∃j: X_i ∈ B(Y_j, r_k(Y_j))]   (same, roles swapped)
    density   = 1/(kM) Σ_j Σ_i 1[Y_j ∈ B(X_i, r_k(X_i))]  (Naeem et al. 2020); ≈1 for equal distributions
    coverage  = (1/N) Σ_i 1[∃j: Y_j ∈ B(X_i, r_k(X_i))]   (Naeem et al. 2020)

    Needs 1 <= k < min(N, M). ``device``: where to compute (default: the device of ``real`` if it is a tensor,
    else the CPU).
    """
    if device is None:
        device = real.device if isinstance(real, torch.Tensor) else "cpu"
    x_np, y_np = as_features(real, "real"), as_features(fake, "fake")
    check_same_dim(x_np, y_np, "real and fake")
    n, m = x_np.shape[0], y_np.shape[0]
    if not 1 <= k < min(n, m):
        raise ValueError(f"k must satisfy 1 <= k < number of samples (real: {n}, fake: {m}), got k={k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    x = torch.from_numpy(x_np).to(device)
    y = torch.from_numpy(y_np).to(device)
    r_real, r_fake = _knn_radii(x, k, chunk_size), _knn_radii(y, k, chunk_size)

    fake_inside_any = torch.zeros(m, dtype=torch.bool, device=x.device)  # precision
    fake_ball_count = torch.zeros(m, dtype=torch.float64, device=x.device)  # density
    recall_hits = coverage_hits = 0
    for xc, rc in zip(x.split(chunk_size), r_real.split(chunk_size)):
        d = torch.cdist(xc, y)  # [c, M]
        inside = d <= rc[:, None]  # fake j inside the ball of real i
        fake_inside_any |= inside.any(dim=0)
        fake_ball_count += inside.sum(dim=0)
        coverage_hits += int(inside.any(dim=1).sum())
        recall_hits += int((d <= r_fake[None, :]).any(dim=1).sum())
    return {
        "precision": float(fake_inside_any.double().mean()),
        "recall": recall_hits / n,
        "density": float(fake_ball_count.sum()) / (k * m),
        "coverage": coverage_hits / n,
    }
