"""Denoising on any folder of images (Set12, BSD68, DIV2K, a user's photos)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from wconv.data.denoising import DenoisingData
from wconv.data.images import list_images, read_images
from wconv.data.splits import split_indices, take


def build_image_folder(
    *,
    folder: str | os.PathLike,
    val_folder: str | os.PathLike | None = None,
    test_folder: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
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
    """Denoising data from image files: training images from ``folder``; validation images from ``val_folder``, or
    when it is None a ``val_fraction`` of ``folder`` held out by ``split_seed``; test images from ``test_folder``
    (no test split when None; several named test sets when a mapping ``{name: folder}``: one test split, its metrics
    also reported per set). ``limit_train``/``limit_eval`` keep the first images of each split (sorted by name)."""
    train = list_images(folder)
    if val_folder is None:
        kept, held = split_indices(len(train), val_fraction, split_seed)
        train, val = [train[i] for i in kept], [train[i] for i in held]
    else:
        val = list_images(val_folder)
    test_sets = {} if test_folder is None else test_folder if isinstance(test_folder, Mapping) else {"": test_folder}
    tests = {name: take(list_images(folder), limit_eval) for name, folder in test_sets.items()}
    test = [path for paths in tests.values() for path in paths]
    paths = {"train": take(train, limit_train), "val": take(val, limit_eval), "test": test}
    groups = {"test": [(name, len(paths)) for name, paths in tests.items()]} if len(tests) > 1 else None
    return DenoisingData(
        images={split: read_images(split_paths, grey) for split, split_paths in paths.items()},
        names={split: [path.name for path in split_paths] for split, split_paths in paths.items()},
        sigma=sigma,
        patch_size=patch_size,
        patches_per_epoch=patches_per_epoch,
        augment=augment,
        eval_max_size=eval_max_size,
        val_max_size=val_max_size,
        groups=groups,
    )
