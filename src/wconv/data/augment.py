"""Batched augmentations that run on whatever device holds the batch, drawing from a given generator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop_flip(images: Tensor, pad: int, flip: bool, generator: torch.Generator) -> Tensor:
    """torchvision's ``RandomCrop(size, padding=pad)`` and ``RandomHorizontalFlip`` for a whole (N, C, H, W) batch:
    each image gets its own crop offset in the zero-padded image and, if ``flip``, a coin-flip mirror."""
    n, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
    left = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
    rows = top + torch.arange(h, device=device)
    cols = left + torch.arange(w, device=device)
    if flip:
        mirrored = torch.rand(n, 1, generator=generator, device=device) < 0.5
        cols = torch.where(mirrored, cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channels = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channels, rows[:, None, :, None], cols[:, None, None, :]]


def random_dihedral(patches: Tensor, generator: torch.Generator) -> Tensor:
    """One of the 8 flips/rotations of the square, chosen per patch (the usual DnCNN training augmentation)."""
    flags = torch.rand(3, patches.shape[0], 1, 1, 1, generator=generator, device=patches.device) < 0.5
    patches = torch.where(flags[0], patches.flip(-1), patches)
    patches = torch.where(flags[1], patches.flip(-2), patches)
    return torch.where(flags[2], patches.transpose(-1, -2), patches)
