"""Deterministic, disjoint splits of a list of examples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held_out) sorted index lists of ``range(n)``: ``round(n * val_fraction)`` indices held out, chosen by a
    permutation seeded by ``seed``; the same arguments always give the same split."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    held = round(n * val_fraction)
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[held:].tolist()), sorted(order[:held].tolist())


def take(items: Sequence[T], limit: int | None) -> list[T]:
    """The first ``limit`` items (all when ``limit`` is None), for smoke runs."""
    if limit is not None and limit < 1:
        raise ValueError(f"limits must be positive integers or None, got {limit}")
    return list(items[:limit])
