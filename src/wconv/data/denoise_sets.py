"""The small denoising sets (Train400, Set12, BSD68, CBSD68, Kodak24, McMaster), fetched file by file from their
authors' GitHub repositories at pinned commits into ``<root>/denoise/<set>/`` (set names lower-case)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tqdm import tqdm

from wconv.data.base import DataError
from wconv.data.denoise_manifest import DENOISE_SETS, RemoteSet
from wconv.data.fetch import fetch
from wconv.data.images import read_image
from wconv.data.train400 import denoise_dir

GITHUB_RAW = "https://raw.githubusercontent.com"


def file_url(remote: RemoteSet, name: str, base_url: str = GITHUB_RAW) -> str:
    """The URL of one file of ``remote``, pinned to its commit."""
    return f"{base_url}/{remote.repo}/{remote.commit}/{remote.folder}/{name}"


def _decodes(path: Path) -> None:
    """The check of a file whose checksum is unknown: it must decode as an image (DataError otherwise)."""
    read_image(path, grey=False)


def _writable(folder: Path) -> None:
    """Create ``folder``; DataError saying what to do when it cannot be created or written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create {folder} ({error.strerror or error}): choose a writable --root") from error
    if not os.access(folder, os.W_OK):
        raise DataError(f"{folder} is not writable: choose a writable --root")


def download_denoise_set(
    root: str | os.PathLike,
    name: str,
    manifest: Mapping[str, RemoteSet] = DENOISE_SETS,
    base_url: str = GITHUB_RAW,
) -> Path:
    """Fetch the files of set ``name`` missing from ``<root>/denoise/<name>/`` (a complete set is not touched), each
    checked by size and SHA-256 when the manifest has them, else by decoding. Returns the set's folder."""
    if name not in manifest:
        raise ValueError(f"unknown denoising set {name!r}; valid: {', '.join(manifest)}")
    remote, folder = manifest[name], denoise_dir(root) / name
    missing = [file for file in remote.files if not (folder / file.name).exists()]
    if missing:
        _writable(folder)
        for file in tqdm(missing, desc=name, unit="file", leave=False):
            url = file_url(remote, file.name, base_url)
            fetch(url, folder / file.name, file.size, file.sha256, None if file.sha256 else _decodes, progress=False)
    return folder
