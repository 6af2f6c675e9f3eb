"""Reading image files (PNG, JPEG, BMP, TIFF) into uint8 tensors, with errors that name the file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from wconv.data.base import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name; DataError if there is no such folder or no image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    paths = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"no {'/'.join(IMAGE_SUFFIXES)} image in {folder}")
    return paths


def pil_to_tensor(image: Image.Image, grey: bool) -> Tensor:
    """A uint8 (C, H, W) tensor, C = 1 (grey: PIL's ITU-R 601 luma) or 3 (grey images repeated), alpha dropped."""
    if image.mode not in EIGHT_BIT_MODES:
        raise ValueError(f"unsupported pixel mode {image.mode} (only 8-bit images are read)")
    array = np.asarray(image.convert("L" if grey else "RGB"))
    return torch.from_numpy(array.copy()).reshape(array.shape[0], array.shape[1], -1).permute(2, 0, 1).contiguous()


def read_image(path: str | os.PathLike, grey: bool) -> Tensor:
    """One image file as a uint8 (C, H, W) tensor (see ``pil_to_tensor``); DataError naming the file if unreadable."""
    try:
        with Image.open(path) as image:
            image.load()
            return pil_to_tensor(image, grey)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image {path}: {error}") from error


def read_images(paths: Sequence[Path], grey: bool) -> list[Tensor]:
    """``read_image`` over ``paths``, decoded in threads (PIL releases the GIL) to load thousands of 2K PNGs faster."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda path: read_image(path, grey), paths))


def centre_crop(image: Tensor, max_size: int | None) -> Tensor:
    """The central window of at most ``max_size`` pixels per side (the image itself when None or smaller)."""
    if max_size is None:
        return image
    height, width = image.shape[-2:]
    top, left = max(0, (height - max_size) // 2), max(0, (width - max_size) // 2)
    return image[..., top : top + max_size, left : left + max_size].contiguous()
