"""Image classification data held as uint8 tensors, normalised and augmented on the training device."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from wconv.data.augment import random_crop_flip
from wconv.data.base import TaskData, resolve_device, seeded_generator
from wconv.tasks import CLASSIFICATION


class ClassificationData(TaskData):
    """Splits of (uint8 images (N, C, H, W), int64 labels (N,)), copied once to each device that asks for them.

    Training batches: a permutation of the training split, random crop with ``pad`` zero padding and (if ``flip``)
    horizontal flips, drawn from a generator on the device seeded by (seed, epoch); then per-channel normalisation
    with ``mean``/``std`` (on the [0, 1] scale). Evaluation batches: in order, normalised, not augmented.
    """

    task = CLASSIFICATION

    def __init__(
        self,
        splits: dict[str, tuple[Tensor, Tensor]],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = True,
        flip: bool = True,
        pad: int = 4,
    ) -> None:
        self._splits = splits
        self.num_classes = num_classes
        self.in_channels = splits["train"][0].shape[1]
        self.sizes = {name: len(labels) for name, (_, labels) in splits.items()}
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment, self.flip, self.pad = augment, flip, pad
        self._cache: dict[tuple[torch.device, str], tuple[Tensor, Tensor]] = {}
        self._stats: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.sizes["train"] / batch_size)

    def train_batches(
        self, batch_size: int, seed: int, epoch: int, device: torch.device | str
    ) -> Iterator[tuple[Tensor, Tensor]]:
        images, labels = self._on(device, "train")
        generator = seeded_generator(images.device, seed, epoch)
        order = torch.randperm(len(labels), generator=generator, device=images.device)
        for start in range(0, len(labels), batch_size):
            chosen = order[start : start + batch_size]
            batch = images[chosen]
            if self.augment:
                batch = random_crop_flip(batch, self.pad, self.flip, generator)
            yield self._normalise(batch), labels[chosen]

    def eval_batches(
        self, split: str, batch_size: int, device: torch.device | str, group: str | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        self._check_eval_split(split)
        if group is not None:
            raise ValueError(f"this dataset has no group {group!r} in its {split} split")
        images, labels = self._on(device, split)
        for start in range(0, len(labels), batch_size):
            yield self._normalise(images[start : start + batch_size]), labels[start : start + batch_size]

    def _on(self, device: torch.device | str, split: str) -> tuple[Tensor, Tensor]:
        """The split's tensors on ``device``, moved there on first use."""
        key = (resolve_device(device), split)
        if key not in self._cache:
            images, labels = self._splits[split]
            self._cache[key] = (images.to(key[0]), labels.to(key[0]))
        return self._cache[key]

    def _normalise(self, batch: Tensor) -> Tensor:
        if batch.device not in self._stats:
            self._stats[batch.device] = (self._mean.to(batch.device), self._std.to(batch.device))
        mean, std = self._stats[batch.device]
        return (batch.float() / 255 - mean) / std
