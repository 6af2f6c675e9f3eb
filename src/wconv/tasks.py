"""The two tasks of the papers, each in one place: its loss, its metrics, how tables and figures show them.

A dataset owns its task (``TaskData.task``); everything else asks the task instead of comparing names. Records
store the task's ``name``; ``get(name)`` turns it back into the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from wconv import metrics


@dataclass(frozen=True)
class Metric:
    """A test metric as the tables show it: record key, column title, decimals."""

    key: str
    label: str
    digits: int


@dataclass(frozen=True)
class Task:
    """What a model is trained for. Subclasses define the loss and the per-batch metrics."""

    name: str
    metrics: tuple[Metric, ...]  # the tables' columns, in order
    paper_metric: str  # the metric the papers report
    curve: tuple[str, str]  # the validation metric of the training-curve figures: (record key, axis label)
    saves_examples: bool  # final trainings record an input/output example for the figures

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def score(self, output: Tensor, inputs: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Sums over the batch of each metric (divided by the split's size by the caller)."""
        raise NotImplementedError

    def model_options(self, data: Any) -> dict[str, int]:
        """The model options a dataset fixes (input channels, classes)."""
        return {"in_channels": data.in_channels}


class Classification(Task):
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.float(), target)

    def score(self, output: Tensor, inputs: Tensor, target: Tensor) -> dict[str, Tensor]:
        n = output.shape[0]
        acc = metrics.topk_accuracy(output.float(), target, ks=(1, 5))
        return {k: torch.as_tensor(v * n, device=output.device) for k, v in acc.items()}

    def model_options(self, data: Any) -> dict[str, int]:
        return {"in_channels": data.in_channels, "num_classes": data.num_classes}


class Denoising(Task):
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output.float(), target)

    def score(self, output: Tensor, inputs: Tensor, target: Tensor) -> dict[str, Tensor]:
        output = output.float().clamp(0, 1)
        return {
            "psnr": metrics.per_image_psnr(output, target).sum(),
            "ssim": metrics.per_image_ssim(output, target).sum(),
            "psnr_noisy": metrics.per_image_psnr(inputs, target, clamp=False).sum(),  # unclipped, as published
        }


CLASSIFICATION = Classification(
    name="classification",
    metrics=(Metric("acc1", "top-1 acc. (%)", 2), Metric("acc5", "top-5 acc. (%)", 2)),
    paper_metric="acc1",
    curve=("val_acc1", "validation top-1 accuracy (%)"),
    saves_examples=False,
)
DENOISING = Denoising(
    name="denoising",
    metrics=(
        Metric("psnr", "PSNR (dB)", 2),
        Metric("ssim", "SSIM", 4),
        Metric("psnr_noisy", "noisy input PSNR (dB)", 2),
    ),
    paper_metric="psnr",
    curve=("val_psnr", "validation PSNR (dB)"),
    saves_examples=True,
)
TASKS: dict[str, Task] = {t.name: t for t in (CLASSIFICATION, DENOISING)}


def get(name: str) -> Task:
    """The task called ``name`` (as records store it)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]
