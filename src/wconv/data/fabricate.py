"""Fabricated stand-ins of the paper datasets, in their exact on-disk formats and full sizes, for rehearsals only.

CIFAR-100 and DIV2K cannot be downloaded everywhere (this project's CI cannot reach their hosts). ``make
preflight`` (``scripts/preflight.py --fabricate DIR``) writes files the real loaders read unchanged: CIFAR-100's
python pickles (50,000 + 10,000 images of 32x32, 100 fine and 20 coarse labels, the ``meta`` file) and DIV2K's two
PNG folders at 2040 pixels of width (how many images is an option: the real 800 + 100 take minutes and gigabytes).
Pixels are smooth random fields, labels random: they rehearse code paths and measure costs, never results.

Each fabricated dataset folder holds ``FABRICATED`` (JSON: what was written, its checksums). The loaders mark
their data ``fabricated``, a run records it in ``result.json`` and the tables refuse such runs: no table is ever
made from fabricated data.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

MARKER = "FABRICATED"
CIFAR_FOLDER = "cifar-100-python"  # torchvision's CIFAR100.base_folder
DIV2K_WIDTH, DIV2K_HEIGHT = 2040, 1356  # DIV2K's HR images are 2040 pixels wide; 1356 is a typical height


def marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """What ``folder``'s FABRICATED marker records, or None for real data."""
    path = Path(folder) / MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], cell: int) -> np.ndarray:
    """uint8 images of smooth random structure (coarse noise upsampled, plus fine noise): realistic PNG sizes."""
    *lead, h, w, c = shape
    coarse = rng.integers(0, 256, size=(*lead, -(-h // cell), -(-w // cell), c), dtype=np.uint8)
    up = coarse.repeat(cell, axis=-3).repeat(cell, axis=-2)[..., :h, :w, :]
    return np.clip(up.astype(np.int16) + rng.integers(-12, 13, size=up.shape, dtype=np.int16), 0, 255).astype(np.uint8)


def fabricate_cifar100(root: str | os.PathLike, train: int = 50_000, test: int = 10_000, seed: int = 0) -> Path:
    """``<root>/cifar100/cifar-100-python/{train,test,meta}`` as torchvision reads them; returns the dataset folder."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar100"
    files = folder / CIFAR_FOLDER
    files.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train), ("test", test)):
        images = _smooth(rng, (n, 32, 32, 3), 4).transpose(0, 3, 1, 2).reshape(n, 3072)  # CIFAR rows: R, G, B planes
        fine = rng.integers(0, 100, size=n).tolist()
        entry = {
            "filenames": [f"fabricated_{i:05d}.png" for i in range(n)],
            "batch_label": f"{name} batch (fabricated)",
            "fine_labels": fine,
            "coarse_labels": [label // 5 for label in fine],
            "data": images,
        }
        (files / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {
        "fine_label_names": [f"class_{i:02d}" for i in range(100)],
        "coarse_label_names": [f"superclass_{i:02d}" for i in range(20)],
    }
    (files / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    record = {
        "dataset": "cifar100",
        "train": train,
        "test": test,
        "md5": {name: _md5(files / name) for name in ("train", "test", "meta")},
    }
    (folder / MARKER).write_text(json.dumps(record, indent=1) + "\n")
    return folder


def fabricate_div2k(
    root: str | os.PathLike, train: int = 8, valid: int = 4, width: int = DIV2K_WIDTH, height: int = DIV2K_HEIGHT
) -> Path:
    """``<root>/DIV2K/{DIV2K_train_HR,DIV2K_valid_HR}/NNNN.png`` (RGB, DIV2K's names); returns the DIV2K folder."""
    from PIL import Image

    rng = np.random.default_rng(1)
    folder = Path(root) / "DIV2K"
    for sub, first, n in (("DIV2K_train_HR", 1, train), ("DIV2K_valid_HR", 801, valid)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for i in range(first, first + n):
            Image.fromarray(_smooth(rng, (height, width, 3), 16)).save(folder / sub / f"{i:04d}.png", compress_level=1)
    record = {"dataset": "div2k", "DIV2K_train_HR": train, "DIV2K_valid_HR": valid, "size": [width, height]}
    (folder / MARKER).write_text(json.dumps(record, indent=1) + "\n")
    return folder
