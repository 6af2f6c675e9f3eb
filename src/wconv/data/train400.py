"""DnCNN's grey denoising benchmark: Train400 for training (a held-out part validates), Set12 and BSD68 for test."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from wconv.data.base import DataError
from wconv.data.denoising import DenoisingData
from wconv.data.folder import build_image_folder


def denoise_dir(root: str | os.PathLike) -> Path:
    """Where the small denoising sets live under the data root: ``<root>/denoise/<set>/``."""
    return Path(root) / "denoise"


def build_train400(
    *,
    root: str | os.PathLike = "data",
    test_sets: Sequence[str] = ("set12", "bsd68"),
    val_fraction: float = 0.1,
    split_seed: int = 0,
    limit_train: int | None = None,
    limit_eval: int | None = None,
    augment: bool = True,
    sigma: float = 25.0,
    patch_size: int = 40,
    patches_per_epoch: int | None = None,
    grey: bool = True,
    eval_max_size: int | None = None,
    val_max_size: int | None = None,
) -> DenoisingData:
    """Train400 less a ``val_fraction`` held out by ``split_seed`` for validation (the search never sees a test
    image); ``test_sets`` (whole images) form the test split, each reported apart. Other options as in
    ``build_image_folder``."""
    base = denoise_dir(root)
    for name in ("train400", *test_sets):
        if not (base / name).is_dir():
            raise DataError(
                f"{name} not found under {base / name}: run "
                f"`python -m wconv.data.download denoise-sets --root {root}` (or set data.root)"
            )
    return build_image_folder(
        folder=base / "train400",
        test_folder={name: base / name for name in test_sets},
        val_fraction=val_fraction,
        split_seed=split_seed,
        limit_train=limit_train,
        limit_eval=limit_eval,
        augment=augment,
        sigma=sigma,
        patch_size=patch_size,
        patches_per_epoch=patches_per_epoch,
        grey=grey,
        eval_max_size=eval_max_size,
        val_max_size=val_max_size,
    )
