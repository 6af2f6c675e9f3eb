"""Gaussian denoising data: whole clean images in memory, noisy random crops for training, noisy whole images for
evaluation."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from wconv.data.augment import random_dihedral
from wconv.data.base import DataError, TaskData, resolve_device, seeded_generator
from wconv.data.images import centre_crop
from wconv.tasks import DENOISING

PATCHES_PER_IMAGE = 64
EVAL_NOISE_SEED = 0


class DenoisingData(TaskData):
    """Splits of uint8 (C, H, W) images (sizes may differ) with their names, for additive white Gaussian noise of
    std ``sigma`` on the 0-255 scale; targets are the clean images in [0, 1], inputs are not clipped.

    Training: ``patches_per_epoch`` (default 64 per training image) square crops of ``patch_size``, each from a
    training image drawn uniformly at random, at a uniform random position, with a random flip/rotation if
    ``augment``, and fresh noise per batch. Crop positions come from a CPU generator and the flips and noise from a
    generator on the device, both seeded by (seed, epoch). Evaluation: whole images (centre-cropped to
    ``eval_max_size`` if given), consecutive images of equal size batched together, with noise drawn on the CPU from
    a generator seeded by (split, image index): identical on every call, batch size and device.
    """

    task = DENOISING
    num_classes = None

    def __init__(
        self,
        images: dict[str, list[Tensor]],
        names: dict[str, list[str]],
        sigma: float = 25.0,
        patch_size: int = 40,
        patches_per_epoch: int | None = None,
        augment: bool = True,
        eval_max_size: int | None = None,
    ) -> None:
        for name, image in zip(names["train"], images["train"], strict=True):
            if min(image.shape[-2:]) < patch_size:
                size = "x".join(map(str, image.shape[-2:]))
                raise DataError(f"training image {name} is {size}, smaller than patch_size {patch_size}")
        self._images = {
            split: split_images if split == "train" else [centre_crop(image, eval_max_size) for image in split_images]
            for split, split_images in images.items()
        }
        self.image_names = names
        self.in_channels = images["train"][0].shape[0]
        self.sizes = {split: len(split_images) for split, split_images in images.items()}
        self.sigma, self.patch_size, self.augment = sigma, patch_size, augment
        self.patches_per_epoch = patches_per_epoch or PATCHES_PER_IMAGE * self.sizes["train"]
        self._cache: dict[tuple[torch.device, str], list[Tensor]] = {}

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.patches_per_epoch / batch_size)

    def train_batches(
        self, batch_size: int, seed: int, epoch: int, device: torch.device | str
    ) -> Iterator[tuple[Tensor, Tensor]]:
        images = self._on(device, "train")
        device = images[0].device
        positions = seeded_generator("cpu", seed, epoch, "crops")
        noise = seeded_generator(device, seed, epoch, "noise")
        picks = torch.randint(len(images), (self.patches_per_epoch,), generator=positions).tolist()
        corners = torch.rand(self.patches_per_epoch, 2, generator=positions).tolist()
        size = self.patch_size
        for start in range(0, self.patches_per_epoch, batch_size):
            crops = []
            stop = start + batch_size
            for pick, (y, x) in zip(picks[start:stop], corners[start:stop], strict=True):
                image = images[pick]
                top = int(y * (image.shape[-2] - size + 1))
                left = int(x * (image.shape[-1] - size + 1))
                crops.append(image[:, top : top + size, left : left + size])
            clean = torch.stack(crops).float() / 255
            if self.augment:
                clean = random_dihedral(clean, noise)
            yield clean + torch.randn(clean.shape, generator=noise, device=device) * (self.sigma / 255), clean

    def eval_batches(self, split: str, batch_size: int, device: torch.device | str) -> Iterator[tuple[Tensor, Tensor]]:
        self._check_eval_split(split)
        images = self._on(device, split)
        group: list[int] = []
        for index, image in enumerate(images):
            if group and (len(group) == batch_size or images[group[0]].shape != image.shape):
                yield self._noisy(split, images, group)
                group = []
            group.append(index)
        yield self._noisy(split, images, group)

    def _noisy(self, split: str, images: list[Tensor], indices: list[int]) -> tuple[Tensor, Tensor]:
        """(noisy, clean) for images of one size; each image's noise is fixed by (split, index)."""
        clean = torch.stack([images[index] for index in indices]).float() / 255
        noise = torch.stack(
            [
                torch.randn(images[index].shape, generator=seeded_generator("cpu", EVAL_NOISE_SEED, split, index))
                for index in indices
            ]
        )
        return clean + noise.to(clean.device) * (self.sigma / 255), clean

    def _on(self, device: torch.device | str, split: str) -> list[Tensor]:
        """The split's images on ``device``, moved there on first use."""
        key = (resolve_device(device), split)
        if key not in self._cache:
            self._cache[key] = [image.to(key[0]) for image in self._images[split]]
        return self._cache[key]
