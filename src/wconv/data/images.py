"""Reading image files (PNG, JPEG, BMP, TIFF) into uint8 tensors, with errors that name the file."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from wconv.data.base import DataError
from wconv.tracking.records import atomic_write, write_text

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
    """``read_image`` over ``paths``, through the node's decoded cache (``decoded``) unless it is turned off."""
    cache = decoded_cache_dir()
    return _decode(paths, grey) if cache is None else decoded(paths, grey, cache)


def _decode(paths: Sequence[Path], grey: bool) -> list[Tensor]:
    """Decode in threads (PIL releases the GIL) to load thousands of 2K PNGs faster."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda path: read_image(path, grey), paths))


def decoded_cache_dir() -> Path | None:
    """Where decoded images are kept for the processes of this node: ``WCONV_DECODED_CACHE`` (``off``: nowhere),
    by default a folder of the node's temporary directory (node-local on a cluster, shared by a run's workers)."""
    setting = os.environ.get("WCONV_DECODED_CACHE", "")
    if setting.lower() == "off":
        return None
    if setting:
        return Path(setting)
    return Path(tempfile.gettempdir()) / f"wconv-decoded-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def decoded(paths: Sequence[Path], grey: bool, cache: Path) -> list[Tensor]:
    """The images of ``paths`` as read-only views of one memory-mapped file of their decoded pixels.

    Several processes of a node reading the same images (a search's local workers) then hold one copy of them in
    memory (the page cache), not one each: 8 workers on DIV2K need about 6.7 GB of RGB pixels once, not 55 GB.
    The file is named by a hash of the files (paths, sizes, modification times) and ``grey``, built once (written
    under a temporary name, renamed when complete) and checked (its length against its index) before use; a cache
    that cannot be written is reported once and the images are decoded in this process's memory.
    """
    import hashlib
    import json
    import warnings

    files = [Path(p).resolve() for p in paths]
    if not files:
        return []
    stamp = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = hashlib.sha256(json.dumps([stamp, grey]).encode()).hexdigest()[:24]
    data, index = cache / f"{key}.u8", cache / f"{key}.json"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / f"{key}.lock", "a") as lock:  # one process of the node builds it, the others wait
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
            shapes = _cached_shapes(data, index)
            if shapes is None:
                images = _decode(files, grey)
                atomic_write(data, lambda f: [f.write(image.numpy().tobytes()) for image in images])
                write_text(index, json.dumps([list(image.shape) for image in images]))
                shapes = [list(image.shape) for image in images]
            pixels = np.memmap(data, dtype=np.uint8, mode="r")  # mapped under the lock: the file everyone maps
    except OSError as error:
        warnings.warn(f"decoded images not cached in {cache} ({error}): each process decodes its own", stacklevel=2)
        return _decode(files, grey)
    out, start = [], 0
    with warnings.catch_warnings():  # the views are read-only, and nothing writes to an image
        warnings.simplefilter("ignore", UserWarning)
        for shape in shapes:
            size = int(np.prod(shape))
            out.append(torch.from_numpy(pixels[start : start + size].reshape(shape)))
            start += size
    return out


def _cached_shapes(data: Path, index: Path) -> list[list[int]] | None:
    """The image shapes of a whole cache (its index read, the data file's length equal to the pixels it lists), or
    None when it is absent, torn or of another length: then it is built again."""
    import json

    try:
        shapes = json.loads(index.read_text())
        if isinstance(shapes, list) and data.stat().st_size == sum(int(np.prod(shape)) for shape in shapes):
            return shapes
    except (OSError, ValueError, TypeError):
        pass
    return None


def centre_crop(image: Tensor, max_size: int | None) -> Tensor:
    """The central window of at most ``max_size`` pixels per side (the image itself when None or smaller)."""
    if max_size is None:
        return image
    height, width = image.shape[-2:]
    top, left = max(0, (height - max_size) // 2), max(0, (width - max_size) // 2)
    return image[..., top : top + max_size, left : left + max_size].contiguous()
