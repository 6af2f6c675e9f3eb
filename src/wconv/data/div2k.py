"""DIV2K high-resolution images (Agustsson & Timofte, 2017): download and the denoising dataset built on them."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from wconv.data.base import DataError
from wconv.data.denoising import DenoisingData
from wconv.data.fabricate import marker
from wconv.data.fetch import fetch
from wconv.data.folder import build_image_folder


@dataclass(frozen=True)
class Archive:
    """One zip to download: its URL, byte size and SHA-256, the folder it extracts to and how many PNGs it holds."""

    url: str
    size: int | None
    sha256: str | None
    folder: str
    count: int


# The ETH host publishes no checksums; sizes and SHA-256 are those recorded by TensorFlow Datasets
# (tensorflow_datasets/url_checksums/div2k.txt). Each zip holds one top-level folder of PNGs.
DIV2K_ARCHIVES = (
    Archive(
        url="https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
        size=3530603713,
        sha256="9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
        folder="DIV2K_train_HR",
        count=800,
    ),
    Archive(
        url="https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
        size=448993893,
        sha256="20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
        folder="DIV2K_valid_HR",
        count=100,
    ),
)


def div2k_dir(root: str | os.PathLike) -> Path:
    """Where DIV2K lives under the data root: ``<root>/DIV2K/{DIV2K_train_HR,DIV2K_valid_HR}/*.png``."""
    return Path(root) / "DIV2K"


def _png_count(folder: Path) -> int:
    return len(list(folder.glob("*.png"))) if folder.is_dir() else 0


def download_div2k(root: str | os.PathLike, archives: tuple[Archive, ...] = DIV2K_ARCHIVES) -> Path:
    """Download (resumably, checked) and extract each archive whose folder is not complete; the zip is deleted once
    extracted. Returns the DIV2K folder."""
    target = div2k_dir(root)
    for archive in archives:
        if _png_count(target / archive.folder) == archive.count:
            continue
        zip_path = fetch(archive.url, target / Path(urlparse(archive.url).path).name, archive.size, archive.sha256)
        with zipfile.ZipFile(zip_path) as zipped:
            zipped.extractall(target)
        if (found := _png_count(target / archive.folder)) != archive.count:
            raise DataError(f"{zip_path} gave {found} PNGs in {target / archive.folder}, expected {archive.count}")
        zip_path.unlink()
    return target


def build_div2k(
    *,
    root: str | os.PathLike = "data",
    download: bool = False,
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
    """DIV2K denoising: training on DIV2K_train_HR less a ``val_fraction`` held out (by ``split_seed``) for
    validation, testing on DIV2K_valid_HR (DIV2K's official test HR images are not public), so the density search
    never sees the test images. Other options as in ``build_image_folder``."""
    base = div2k_dir(root)
    if download:
        download_div2k(root)
    for archive in DIV2K_ARCHIVES:
        if not (base / archive.folder).is_dir():
            raise DataError(
                f"DIV2K not found under {base / archive.folder}: run "
                f"`python -m wconv.data.download div2k --root {root}` or pass data.download=true"
            )
    data = build_image_folder(
        folder=base / "DIV2K_train_HR",
        test_folder=base / "DIV2K_valid_HR",
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
    data.fabricated = marker(base) is not None
    return data
