"""Resumable HTTP(S)/file download with size and SHA-256 checks, standard library only."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from urllib.request import Request, urlopen

from tqdm import tqdm

from wconv.data.base import DataError

CHUNK_BYTES = 1 << 20


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str,
    dest: Path,
    size: int | None = None,
    sha256: str | None = None,
    verify: Callable[[Path], None] | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``: a partial ``.part`` left by an interrupted run is resumed
    with an HTTP Range request when ``size`` is known (restarted when the server ignores the range, or when the size
    is unknown: such a part may be complete already). ``dest`` appears only once the size and SHA-256 match and
    ``verify`` (a check that raises DataError, e.g. decoding) accepts the complete part; an existing ``dest`` is
    trusted. ``progress``: a byte progress bar on stderr (off for callers that show their own, per set of files)."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() and size is not None else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is None or offset < size:
        _download(url, part, offset, size, progress)
    if size is not None and part.stat().st_size != size:
        raise DataError(f"{part} has {part.stat().st_size} bytes, expected {size}: run the download again to resume")
    if sha256 is not None and (actual := sha256_of(part)) != sha256:
        part.unlink()
        raise DataError(f"{url} has SHA-256 {actual}, expected {sha256}: partial file removed, download again")
    if verify is not None:
        try:
            verify(part)
        except DataError as error:
            part.unlink()
            raise DataError(f"{url} failed its check ({error}): partial file removed, download again") from error
    part.replace(dest)
    return dest


def _download(url: str, part: Path, offset: int, size: int | None, progress: bool) -> None:
    """Append ``url`` from byte ``offset`` to ``part``, or rewrite ``part`` from the start if the range is refused."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with urlopen(Request(url, headers=headers), timeout=60) as response:
            resumed = offset > 0 and response.status == 206
            if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                raise DataError(f"{url} answered the range request from byte {offset} with another range")
            start = offset if resumed else 0
            with (
                open(part, "ab" if resumed else "wb") as file,
                tqdm(
                    total=size,
                    initial=start,
                    unit="B",
                    unit_scale=True,
                    desc=part.name,
                    leave=False,
                    disable=not progress,
                ) as bar,
            ):
                while chunk := response.read(CHUNK_BYTES):
                    file.write(chunk)
                    bar.update(len(chunk))
    except OSError as error:  # URLError and HTTPError included
        raise DataError(f"download of {url} failed ({error}): run the same command again to resume {part}") from error
