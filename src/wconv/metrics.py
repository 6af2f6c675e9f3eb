"""Evaluation metrics (torchmetrics): top-k accuracy for classification, per-image PSNR and SSIM for denoising.

Images are (N, C, H, W) in [0, 1] (a single (C, H, W) image is accepted), measured with data_range 1. Predictions
are clamped to [0, 1] first, as saving them as 8-bit images would; pass ``clamp=False`` to measure the raw input,
e.g. the noisy-input reference, whose unclipped PSNR at sigma 25 is 20.17 dB (the paper's standard-DnCNN number).
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor
from torchmetrics.functional.classification import multiclass_accuracy
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def topk_accuracy(logits: Tensor, target: Tensor, ks: Iterable[int] = (1, 5)) -> dict[str, float]:
    """Percentage of examples whose true class is among the k highest logits, as ``{"acc1": ..., "acc5": ...}``."""
    num_classes = logits.shape[-1]
    return {
        f"acc{k}": 100 * multiclass_accuracy(logits, target, num_classes=num_classes, top_k=k, average="micro").item()
        for k in ks
    }


def _prepare(pred: Tensor, target: Tensor, clamp: bool) -> tuple[Tensor, Tensor]:
    """Float (N, C, H, W) pairs of equal shape, predictions clamped to [0, 1] if ``clamp``."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    if pred.ndim == 3:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    pred, target = pred.float(), target.float()
    return (pred.clamp(0, 1) if clamp else pred), target


def per_image_psnr(pred: Tensor, target: Tensor, clamp: bool = True) -> Tensor:
    """PSNR in dB of each image, shape (N,); inf for identical images."""
    pred, target = _prepare(pred, target, clamp)
    return peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))


def per_image_ssim(pred: Tensor, target: Tensor, clamp: bool = True) -> Tensor:
    """SSIM of each image (Gaussian window 11, sigma 1.5, averaged over channels), shape (N,)."""
    pred, target = _prepare(pred, target, clamp)
    return structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
