"""What every dataset hands the training loop: the ``TaskData`` interface, ``DataError`` and epoch seeding."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
from torch import Tensor

from wconv.tasks import Task

EVAL_SPLITS = ("val", "test")


class DataError(ValueError):
    """Data missing, corrupt or unreadable; the one-line message names the path and what to do next."""


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (e.g. seed and epoch), the same in every process."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seeded_generator(device: torch.device | str, *parts: object) -> torch.Generator:
    """A generator on ``device`` seeded by ``derive_seed(*parts)``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(*parts))
    return generator


def resolve_device(device: torch.device | str) -> torch.device:
    """``device`` with its index made explicit, so that "cuda" and "cuda:0" share one cached copy of the data."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


class TaskData(ABC):
    """One dataset held in memory: deterministic training batches per (seed, epoch) and fixed evaluation batches.

    ``sizes`` counts the examples of each split ("train", "val", "test"); for denoising these are whole images.
    ``groups`` names consecutive parts of an evaluation split (``{split: {name: range}}``), reported apart.
    """

    groups: dict[str, dict[str, range]] = {}
    fabricated: bool = False  # read from fabricated stand-in files (wconv.data.fabricate): rehearsals only

    task: Task
    in_channels: int
    num_classes: int | None
    sizes: dict[str, int]

    @abstractmethod
    def steps_per_epoch(self, batch_size: int) -> int:
        """Number of batches ``train_batches`` yields for this batch size."""

    @abstractmethod
    def train_batches(
        self, batch_size: int, seed: int, epoch: int, device: torch.device | str
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of (input, target) batches on ``device``; order, augmentation and noise depend only on
        (seed, epoch) for a given device type."""

    @abstractmethod
    def eval_batches(
        self, split: str, batch_size: int, device: torch.device | str, group: str | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The whole ``split`` ("val" or "test"), or its part ``group``, as (input, target) batches on ``device``,
        the same at every call."""

    def _check_eval_split(self, split: str) -> None:
        if split not in EVAL_SPLITS:
            raise ValueError(f"split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
        if self.sizes[split] == 0:
            raise ValueError(f"the {split} split of this dataset is empty (val_fraction 0, or no {split} folder given)")
