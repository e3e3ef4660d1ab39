"""Inception Score (Salimans et al. 2016) from class-probability matrices, in float64 numpy."""
from __future__ import annotations

import numpy as np
import torch


def _as_probs(probs) -> np.ndarray:
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().to("cpu", torch.float64).numpy()
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"probs must be a [N, K] class-probability matrix, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"probs contains {int(np.isnan(p).sum())} NaN and {int(np.isinf(p).sum())} Inf values")
    negative = int((p < 0).any(axis=1).sum())
    off = int((np.abs(p.sum(axis=1) - 1.0) > 1e-3).sum())
    if negative or off:
        raise ValueError(f"probs rows must be probability vectors: {negative} of {p.shape[0]} rows have negative "
                         f"entries and {off} do not sum to 1 (tolerance 1e-3); if these are logits, apply "
                         f"softmax over the class dimension first")
    return p / p.sum(axis=1, keepdims=True)


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) ‖ p(y))), with p(y) the mean of p(y|x)
    over each of ``splits`` contiguous, near-equal splits of the N rows; returns mean and std (ddof=0) over splits.

    ``probs`` is [N, K] with rows p(y|x) (non-negative, summing to 1 within 1e-3; renormalised in float64).
    0·log 0 is taken as 0. Ranges from 1 (all predictions equal) to K (confident and balanced).
    """
    p = _as_probs(probs)
    if not 1 <= splits <= p.shape[0]:
        raise ValueError(f"splits must be in [1, N={p.shape[0]}], got {splits}")
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0)
        # p(y|x) > 0 implies p(y) > 0, so the logs are only taken of positive entries.
        log_p = np.log(part, out=np.zeros_like(part), where=part > 0)
        log_ratio = log_p - np.log(py, out=np.zeros_like(py), where=py > 0)
        kl = (part * log_ratio).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    scores = np.asarray(scores)
    return float(scores.mean()), float(scores.std())
