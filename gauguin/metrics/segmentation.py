"""Semantic-segmentation scores: how well generated images respect their input label maps.

The SPADE / pix2pixHD protocol (Park et al. 2019, Sec. 4; Wang et al. 2018): a segmentation
network, trained on real image/label pairs, segments the *generated* images; its prediction is
scored against the label maps the generator was given.

With the confusion matrix C (rows: true label, columns: predicted), over the labels that occur
(C row or column sum > 0) and leaving out the don't-care label:
    IoU_k = C_kk / (Σ_j C_kj + Σ_i C_ik − C_kk),   mIoU = mean_k IoU_k,
    pixel accuracy = Σ_k C_kk / Σ C.
"""
from __future__ import annotations

import torch
from torch import Tensor


def confusion_matrix(predicted: Tensor, target: Tensor, num_labels: int, ignore_index: int | None = None) -> Tensor:
    """int64 ``[num_labels, num_labels]``: entry (t, p) counts pixels of true label t predicted as p.

    Pixels whose target is ``ignore_index`` are left out."""
    if predicted.shape != target.shape:
        raise ValueError(f"predicted labels {tuple(predicted.shape)} and targets {tuple(target.shape)} differ in shape")
    predicted, target = predicted.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        predicted, target = predicted[keep], target[keep]
    for name, t in (("target", target), ("predicted", predicted)):
        if t.numel() and (t.min() < 0 or t.max() >= num_labels):
            raise ValueError(f"{name} label ids span {t.min().item()}..{t.max().item()}, outside 0..{num_labels - 1}")
    counts = torch.bincount(target * num_labels + predicted, minlength=num_labels * num_labels)
    return counts.view(num_labels, num_labels)


def scores_from_confusion(confusion: Tensor, ignore_index: int | None = None) -> dict[str, float]:
    """``miou``, ``pixel_accuracy`` and ``mean_accuracy`` (mean per-label recall) from a confusion matrix."""
    c = confusion.double()
    if c.sum() == 0:
        raise ValueError("no labelled pixels to score (every target pixel is don't-care)")
    true_total, predicted_total, hits = c.sum(1), c.sum(0), c.diagonal()
    present = (true_total + predicted_total) > 0
    if ignore_index is not None:
        present[ignore_index] = False
    iou = hits[present] / (true_total + predicted_total - hits)[present]
    occurs = (true_total > 0) & present
    return {"miou": iou.mean().item(), "pixel_accuracy": (hits.sum() / c.sum()).item(),
            "mean_accuracy": (hits[occurs] / true_total[occurs]).mean().item()}


def segmentation_scores(predicted: Tensor, target: Tensor, num_labels: int,
                        ignore_index: int | None = None) -> dict[str, float]:
    """mIoU, pixel accuracy and mean accuracy of predicted label maps against target maps."""
    return scores_from_confusion(confusion_matrix(predicted, target, num_labels, ignore_index), ignore_index)
