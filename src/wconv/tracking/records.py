"""Atomic records: a killed process leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: os.umask can only be read by setting it


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # as open() would make it (mkstemp makes 0600)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(obj: Any) -> Any:
    """Plain JSON: non-finite floats become strings ("nan", "inf") so that strict readers accept the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    data = json.dumps(_jsonable(obj), indent=2, sort_keys=False).encode() + b"\n"
    _atomic_write(path, lambda f: f.write(data))


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically."""
    _atomic_write(path, lambda f: f.write(text.encode()))


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one JSON line and fsync: a crash can at worst leave a truncated last line, which readers drop."""
    line = json.dumps(_jsonable(obj), separators=(",", ":")).encode() + b"\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path, repair: bool = True) -> list[Any]:
    """Every complete line of a JSON-lines file; a truncated last line (a killed writer) is dropped and, if
    ``repair`` (the writer's side), cut off the file so the next append starts on a clean line."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    rows, good = [], 0
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good += len(line)
    if repair and good < len(raw):  # drop the torn tail so the next append starts on a clean line
        with open(path, "r+b") as f:
            f.truncate(good)
    return rows


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename. Serialised in memory first: torch's zip writer turns a
    full disk into a RuntimeError, a plain write into the OSError (ENOSPC) it is."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object (a config): names run folders, detects mismatched records."""
    blob = json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
