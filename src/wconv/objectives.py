"""What a search minimises: each objective's name (``search.objective``), its label and how it is read off the
validation metrics of one training. The one registry of them: config, search and figures ask here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    name: str
    label: str  # axis label in the figures
    tasks: tuple[str, ...]  # the tasks whose validation metrics provide it
    value: Callable[[dict[str, float]], float]
    ceiling: float  # no finished training scores above it: search.penalty must be larger


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        # chance-level cross-entropy on 100 classes is 4.6 and the MSE of images in [0, 1] at most 1
        Objective("val_loss", "validation loss", ("classification", "denoising"), lambda m: m["loss"], 100.0),
        Objective("error", "validation error (1 - top-1)", ("classification",), lambda m: 1 - m["acc1"] / 100, 1.0),
        Objective("neg_psnr", "validation -PSNR (dB)", ("denoising",), lambda m: -m["psnr"], 0.0),
    )
}


def get(name: str) -> Objective:
    """The objective called ``name``; ValueError naming the known ones otherwise."""
    if name not in OBJECTIVES:
        raise ValueError(f"search.objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name]
