"""CIFAR-100 through torchvision (its download and md5 checks), split and held as uint8 tensors."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.datasets import CIFAR100

from wconv.data.base import DataError
from wconv.data.classification import ClassificationData
from wconv.data.fabricate import marker
from wconv.data.splits import split_indices, take

# Per-channel statistics of the CIFAR-100 training images (as used by the pytorch-cifar100 recipe).
CIFAR100_MEAN = (0.5070751592371323, 0.48654887331495095, 0.4409178433670343)
CIFAR100_STD = (0.2673342858792401, 0.2564384629170883, 0.27615047132568404)


def cifar_dir(root: str | os.PathLike) -> Path:
    """Where CIFAR-100 lives under the data root: ``<root>/cifar100/cifar-100-python/{train,test,meta}``."""
    return Path(root) / "cifar100"


def download_cifar100(root: str | os.PathLike) -> Path:
    """Download and extract the CIFAR-100 python archive with torchvision (md5-checked); a no-op when present."""
    try:
        CIFAR100(cifar_dir(root), train=True, download=True)
    except (OSError, RuntimeError) as error:  # network errors; RuntimeError: torchvision's md5 check failed
        raise DataError(f"download of CIFAR-100 into {cifar_dir(root)} failed ({error}): run it again") from error
    return cifar_dir(root)


def _tensors(dataset: CIFAR100) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 3, 32, 32), int64 labels (N,)) of a torchvision CIFAR dataset."""
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(dataset.targets, dtype=torch.int64)


def build_cifar100(
    *,
    root: str | os.PathLike = "data",
    download: bool = False,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    limit_train: int | None = None,
    limit_eval: int | None = None,
    augment: bool = True,
) -> ClassificationData:
    """CIFAR-100 (100 fine classes): validation is a ``val_fraction`` of the 50,000 training images held out by
    ``split_seed``, the official 10,000 test images are the test split. Training augmentation: random crop 32 with
    zero padding 4 and horizontal flip; normalisation with the CIFAR-100 mean and std."""
    folder = cifar_dir(root)
    if download:
        download_cifar100(root)
    elif not (folder / CIFAR100.base_folder).is_dir():
        raise DataError(
            f"CIFAR-100 not found under {folder}: run `python -m wconv.data.download cifar100 --root {root}` "
            "or pass data.download=true"
        )
    reader = _fabricated_reader(fabricated) if (fabricated := marker(folder)) else CIFAR100
    try:
        train_images, train_labels = _tensors(reader(folder, train=True))
        test_images, test_labels = _tensors(reader(folder, train=False))
    except RuntimeError as error:
        raise DataError(
            f"CIFAR-100 under {folder} failed torchvision's check ({error}): delete {folder / CIFAR100.base_folder} "
            f"and run `python -m wconv.data.download cifar100 --root {root}`"
        ) from error
    kept, held = split_indices(len(train_labels), val_fraction, split_seed)
    kept, held, test = take(kept, limit_train), take(held, limit_eval), take(range(len(test_labels)), limit_eval)
    splits = {
        "train": (train_images[kept], train_labels[kept]),
        "val": (train_images[held], train_labels[held]),
        "test": (test_images[test], test_labels[test]),
    }
    data = ClassificationData(splits, num_classes=100, mean=CIFAR100_MEAN, std=CIFAR100_STD, augment=augment)
    data.fabricated = fabricated is not None
    return data


def _fabricated_reader(record: dict) -> type[CIFAR100]:
    """torchvision's CIFAR100 checking fabricated files against the md5 sums their marker records (the real
    archive's sums are known to torchvision): the same reader and the same integrity check."""
    md5 = record["md5"]
    return type(
        "FabricatedCIFAR100",
        (CIFAR100,),
        {
            "train_list": [["train", md5["train"]]],
            "test_list": [["test", md5["test"]]],
            "meta": {**CIFAR100.meta, "md5": md5["meta"]},
        },
    )
