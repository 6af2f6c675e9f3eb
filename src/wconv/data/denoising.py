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
EVAL_BATCH_PIXELS = 1 << 23  # an evaluation batch holds at most this many pixels (three 2K colour images)


class DenoisingData(TaskData):
    """Splits of uint8 (C, H, W) images (sizes may differ) with their names, for additive white Gaussian noise of
    std ``sigma`` on the 0-255 scale; targets are the clean images in [0, 1], inputs are not clipped.

    Training: ``patches_per_epoch`` (default 64 per training image) square crops of ``patch_size``, each from a
    training image drawn uniformly at random, at a uniform random position, with a random flip/rotation if
    ``augment``, and fresh noise per batch. Crop positions come from a CPU generator and the flips and noise from a
    generator on the device, both seeded by (seed, epoch). Evaluation: whole images (centre-cropped to
    ``eval_max_size`` if given, the validation images to ``val_max_size`` if given), consecutive images of equal
    size batched together (at most EVAL_BATCH_PIXELS pixels a batch), with noise drawn on the CPU from
    a generator seeded by (split, image index): identical on every call, batch size and device; drawn once per
    device and kept. ``groups`` names consecutive parts of an evaluation split (e.g. the test sets Set12 and BSD68
    in one test split), as ``{split: [(name, count), ...]}``: metrics are then reported per part as well.
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
        val_max_size: int | None = None,
        groups: dict[str, list[tuple[str, int]]] | None = None,
    ) -> None:
        for name, image in zip(names["train"], images["train"], strict=True):
            if min(image.shape[-2:]) < patch_size:
                size = "x".join(map(str, image.shape[-2:]))
                raise DataError(f"training image {name} is {size}, smaller than patch_size {patch_size}")
        crop = {"train": None, "val": val_max_size or eval_max_size}  # validation only: a bounded per-epoch cost
        self._images = {
            split: [centre_crop(image, crop.get(split, eval_max_size)) for image in split_images]
            for split, split_images in images.items()
        }
        self.image_names = names
        self.in_channels = images["train"][0].shape[0]
        self.sizes = {split: len(split_images) for split, split_images in images.items()}
        self.sigma, self.patch_size, self.augment = sigma, patch_size, augment
        self.patches_per_epoch = patches_per_epoch or PATCHES_PER_IMAGE * self.sizes["train"]
        self._cache: dict[tuple[torch.device, str], list[Tensor]] = {}
        self._noisy_cache: dict[tuple[torch.device, str], list[Tensor]] = {}
        self.groups = {split: self._named_ranges(split, parts) for split, parts in (groups or {}).items()}

    def _named_ranges(self, split: str, parts: list[tuple[str, int]]) -> dict[str, range]:
        if sum(count for _, count in parts) != self.sizes[split]:
            raise ValueError(f"the groups of the {split} split count {parts}, but it holds {self.sizes[split]} images")
        ranges, start = {}, 0
        for name, count in parts:
            ranges[name] = range(start, start + count)
            start += count
        return ranges

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

    def eval_batches(
        self, split: str, batch_size: int, device: torch.device | str, group: str | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        self._check_eval_split(split)
        clean, noisy = self._on(device, split), self._noisy_on(device, split)
        indices = self.groups[split][group] if group is not None else range(len(clean))
        batch: list[int] = []
        for index in indices:
            pixels = clean[index].numel() * (len(batch) + 1)
            full = len(batch) == batch_size or pixels > EVAL_BATCH_PIXELS
            if batch and (full or clean[batch[0]].shape != clean[index].shape):
                yield torch.stack([noisy[i] for i in batch]), torch.stack([clean[i] for i in batch]).float() / 255
                batch = []
            batch.append(index)
        yield torch.stack([noisy[i] for i in batch]), torch.stack([clean[i] for i in batch]).float() / 255

    def _noisy_on(self, device: torch.device | str, split: str) -> list[Tensor]:
        """The split's noisy images on ``device``: each image's noise fixed by (split, index), drawn on the CPU once."""
        key = (resolve_device(device), split)
        if key not in self._noisy_cache:
            self._noisy_cache[key] = [
                (
                    image.float() / 255
                    + torch.randn(image.shape, generator=seeded_generator("cpu", EVAL_NOISE_SEED, split, index))
                    * (self.sigma / 255)
                ).to(key[0])
                for index, image in enumerate(self._images[split])
            ]
        return self._noisy_cache[key]

    def _on(self, device: torch.device | str, split: str) -> list[Tensor]:
        """The split's images on ``device``, moved there on first use."""
        key = (resolve_device(device), split)
        if key not in self._cache:
            self._cache[key] = [image.to(key[0]) for image in self._images[split]]
        return self._cache[key]
