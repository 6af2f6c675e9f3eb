"""Atomic records: a killed process leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("wconv.records")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: os.umask can only be read by setting it


def atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    """Write ``path`` through ``write(binary file)`` into a temporary file beside it, synced, then renamed over it: a
    reader sees the old file or the whole new one, never a part."""
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
    atomic_write(path, lambda f: f.write(data))


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode()))


class DamagedRecord(ValueError):
    """A record that exists but cannot be read (not JSON, not what it must hold): the one-line message names the file
    and what to do."""


def read_json(path: Path) -> Any:
    """A JSON record; DamagedRecord (one line: the file, where, what to do) when it is not valid JSON or UTF-8."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" (line {err.lineno} column {err.colno})" if isinstance(err, json.JSONDecodeError) else ""
        raise DamagedRecord(
            f"{path} is damaged: not valid JSON{where}; move it aside (mv {path} {path}.bak) and run the same "
            "command again: it rebuilds what it can from the other records"
        ) from None


def set_aside(path: Path, why: str) -> Path:
    """Move a damaged file to ``<name>.damaged`` (numbered when one is there already) and warn once; returns where."""
    path = Path(path)
    target, n = path.with_name(path.name + ".damaged"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged{n}")
    try:
        os.replace(path, target)
    except FileNotFoundError:  # another process (a rank of the same run) moved it aside first
        return target
    log.warning(f"{path} {why}: moved aside to {target.name}; only what it held is trained again")
    return target


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one JSON line and fsync: a crash can at worst leave a truncated last line, which readers drop."""
    line = json.dumps(_jsonable(obj), separators=(",", ":")).encode() + b"\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path, repair: bool = True, valid: Callable[[dict], bool] | None = None) -> list[Any]:
    """Every good line of a JSON-lines file (each a JSON object), with what may be wrong told apart:

    - a torn last line (no newline: a writer killed mid-line) is dropped and, if ``repair`` (the writer's side), cut
      off the file so that the next append starts on a clean line;
    - a damaged line elsewhere (not a JSON object, or one ``valid`` refuses: a flipped byte, a hand edit) is skipped
      with one warning naming the
      file and the line; with ``repair`` it is kept in ``<file>.damaged`` (its line number and text) and the file
      rewritten without it, so that only its entry is made again. Every good line after it is kept.
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    rows, kept, damaged = [], [], []
    lines = raw.splitlines(keepends=True)
    torn = bool(lines) and not lines[-1].endswith(b"\n")
    for number, line in enumerate(lines[:-1] if torn else lines, 1):
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            row = None
        if isinstance(row, dict) and (valid is None or valid(row)):
            rows.append(row)
            kept.append(line)
        elif line.strip():
            damaged.append((number, line.decode(errors="replace").rstrip("\n")))
    for number, _ in damaged:
        log.warning(f"{path} line {number} is damaged (not a JSON record of it): skipped" + (
            f", kept in {path.name}.damaged; its entry is made again" if repair else ""))  # fmt: skip
    if repair and damaged:
        with open(path.with_name(path.name + ".damaged"), "a") as f:
            for number, text in damaged:
                f.write(json.dumps({"line": number, "text": text}) + "\n")
        atomic_write(path, lambda f: f.write(b"".join(kept)))
    elif repair and torn:  # drop the torn tail so the next append starts on a clean line
        with open(path, "r+b") as f:
            f.truncate(len(raw) - len(lines[-1]))
    return rows


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename. Serialised in memory first: torch's zip writer turns a
    full disk into a RuntimeError, a plain write into the OSError (ENOSPC) it is."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none, or when it cannot be read (truncated by a crash,
    corrupt): then it is moved aside with one warning and its training starts again (trainings are deterministic)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch.load fails in many ways on a damaged file: zip, pickle, EOF, storage errors
        set_aside(path, f"cannot be loaded ({type(err).__name__})")
        return None
    if not isinstance(state, dict):
        set_aside(path, "does not hold a checkpoint")
        return None
    return state


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object (a config): names run folders, detects mismatched records."""
    blob = json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
