"""One process per run directory: ``with RunLock(run_dir):`` claims ``run_dir/.lock`` or raises RunLocked.

The lock file is created atomically (O_CREAT|O_EXCL) and names its holder as JSON (host, pid, start time, SLURM job
and restart count, a random token). A daemon thread touches it every ``heartbeat_s`` while it is held, and it is
removed on exit if it is still ours. A stale lock never blocks; it is stale when
  (a) it was taken on this host by a pid that is no longer running,
  (b) it was taken by an earlier run of this SLURM job (same SLURM_JOB_ID, other SLURM_RESTART_COUNT: a requeued job's
      earlier run is dead; processes of the same run, e.g. torchrun ranks, do not take each other's lock), or
  (c) its heartbeat (mtime) is older than ``stale_after_s`` (its holder died on another node of a shared file system).
A lock file without a readable holder (empty or torn: its writer was killed, or is still writing) is judged by its
mtime alone, rule (c); a fresh one is given UNNAMED_WAIT_S to be written, so that a refusal can name its holder.
Taking over is race-free: a contender first creates ``.lock.takeover-<the stale lock's identity>`` (O_EXCL, so one
contender per stale lock), checks that ``.lock`` is still that stale lock, removes it, then creates its own with
O_EXCL like any other contender, so exactly one process ends up holding it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger("wconv.tracking.lock")

LOCK_NAME = ".lock"
CLAIM_STALE_S = 60.0  # a takeover takes milliseconds: a claim this old was left by a contender that died in it
ATTEMPTS = 100  # contenders for one stale lock retry this often (pausing RETRY_S) before giving up
RETRY_S = 0.05
UNNAMED_WAIT_S = 0.5  # how long a fresh lock file without a holder is given to be written before refusing with it


class RunLocked(ValueError):
    """The run directory is in use by another live process; the one-line message names it and what to do."""


@dataclass(frozen=True)
class _Seen:
    """The lock file as one look found it: its holder (None when unreadable), mtime and identity."""

    holder: dict[str, Any] | None
    mtime: float
    key: str  # the holder's token, or the file's inode and mtime when it has no readable holder


def _slurm() -> tuple[str | None, int]:
    """This process's SLURM job id (None outside SLURM) and restart count (0 before any requeue)."""
    return os.environ.get("SLURM_JOB_ID") or None, int(os.environ.get("SLURM_RESTART_COUNT", "0"))


def _alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(text: str) -> dict[str, Any] | None:
    """The holder a lock file names, or None when the text is empty, torn or not a holder."""
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return None
    ok = isinstance(holder, dict) and type(holder.get("pid")) is int and holder["pid"] > 0
    return holder if ok and isinstance(holder.get("host"), str) and isinstance(holder.get("token"), str) else None


def _describe(holder: dict[str, Any] | None) -> str:
    """``pid 1234 on node7 since 2026-12-03 10:00:00+01:00 (SLURM job 42)``, for messages."""
    if holder is None:
        return "a process that cannot be named (its lock file is empty or torn)"
    text = f"pid {holder['pid']} on {holder['host']} since {str(holder.get('started', '?')).replace('T', ' ')}"
    if holder.get("slurm_job"):
        text += f" (SLURM job {holder['slurm_job']}, restart {holder.get('slurm_restart', 0)})"
    return text


class RunLock:
    """A context manager holding ``run_dir/.lock`` for this process (see the module doc for what is stale)."""

    def __init__(self, run_dir: Path | str, heartbeat_s: float = 30.0, stale_after_s: float = 600.0) -> None:
        if heartbeat_s <= 0 or stale_after_s < 2 * heartbeat_s:
            raise ValueError(f"need 0 < heartbeat_s <= stale_after_s / 2, not {heartbeat_s} and {stale_after_s}")
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self._content: bytes | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> RunLock:
        """Claim the lock, taking over a stale one; raise RunLocked when a live process holds it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        taken_over: tuple[_Seen, str] | None = None
        unnamed_until = time.monotonic() + UNNAMED_WAIT_S
        for _ in range(ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                seen = self._look()
                if seen is None:  # released between our open and our look
                    continue
                reason = self._stale(seen)
                if reason is None and seen.holder is None and time.monotonic() < unnamed_until:
                    time.sleep(RETRY_S)  # most likely just created and not yet written: look again to name it
                    continue
                if reason is None:
                    raise RunLocked(self._refusal(seen)) from None
                if self._remove_stale(seen):
                    taken_over = (seen, reason)
                else:  # another contender is taking it over: look again in a moment
                    time.sleep(RETRY_S)
                continue
            self._write(fd)
            if taken_over is not None:
                seen, reason = taken_over
                log.warning(f"took over the stale lock of {self.run_dir} held by {_describe(seen.holder)}: {reason}")
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat {self.path}", daemon=True)
            self._thread.start()
            return self
        raise RunLocked(f"{self.run_dir}: {LOCK_NAME} is contended by several processes at once; try again")

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still ours; safe to call twice."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._content is not None and self._ours():
            self.path.unlink(missing_ok=True)
        self._content = None

    def _write(self, fd: int) -> None:
        """Write our holder record into the freshly created lock file and sync it to disk."""
        job, restart = _slurm()
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
            "slurm_job": job,
            "slurm_restart": restart,
            "token": uuid.uuid4().hex,
        }
        self._content = json.dumps(holder).encode() + b"\n"
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self._content)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            self.path.unlink(missing_ok=True)
            self._content = None
            raise

    def _ours(self) -> bool:
        """Whether the lock file on disk is still the one we wrote (not removed, not taken over)."""
        try:
            return self.path.read_bytes() == self._content
        except FileNotFoundError:
            return False

    def _beat(self) -> None:
        """Touch the lock file every ``heartbeat_s`` until released; stop, saying so, if it is no longer ours."""
        while not self._stop.wait(self.heartbeat_s):
            if not self._ours():
                log.error(f"the lock of {self.run_dir} was removed or taken over by another process while held")
                return
            os.utime(self.path)

    def _look(self) -> _Seen | None:
        """The lock file as it is now, or None when there is none."""
        try:
            stat = os.stat(self.path)
            text = self.path.read_text(errors="replace")
        except FileNotFoundError:
            return None
        holder = _holder(text)
        key = holder["token"] if holder is not None else f"{stat.st_ino}-{stat.st_mtime_ns}"
        return _Seen(holder, stat.st_mtime, key)

    def _stale(self, seen: _Seen) -> str | None:
        """Why the lock ``seen`` is stale (rules (a)-(c) of the module doc), or None when its holder may be alive."""
        age = time.time() - seen.mtime
        old = f"no heartbeat for {age:.0f} s (stale after {self.stale_after_s:.0f} s)"
        holder = seen.holder
        if holder is None:
            return old if age > self.stale_after_s else None
        job, restart = _slurm()
        if job is not None and holder.get("slurm_job") == job and holder.get("slurm_restart") != restart:
            return f"an earlier run of SLURM job {job} (this is restart {restart})"
        if holder["host"] == socket.gethostname() and not _alive(holder["pid"]):
            return f"pid {holder['pid']} is no longer running"
        return old if age > self.stale_after_s else None

    def _remove_stale(self, seen: _Seen) -> bool:
        """Remove the stale lock ``seen`` if this contender wins its takeover claim and it is still there."""
        claim = self.path.with_name(f"{LOCK_NAME}.takeover-{seen.key}")
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            try:
                if time.time() - claim.stat().st_mtime > CLAIM_STALE_S:
                    claim.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return False
        try:
            now = self._look()
            if now is None or now.key != seen.key:
                return False
            self.path.unlink(missing_ok=True)
            return True
        finally:
            claim.unlink(missing_ok=True)

    def _refusal(self, seen: _Seen) -> str:
        """The one-line message of RunLocked: who holds the run directory and what to do."""
        age = time.time() - seen.mtime
        return (
            f"{self.run_dir} is in use by {_describe(seen.holder)}, last heartbeat {age:.0f} s ago; "
            f"wait for it, or remove {self.path} if that process is dead"
        )
