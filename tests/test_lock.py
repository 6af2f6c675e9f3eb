"""The run-directory lock, with real processes and real files: one holder at a time, stale locks never block."""

import json
import logging
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from wconv.tracking.lock import RunLock, RunLocked

ROOT = Path(__file__).resolve().parents[1]

# A child process that tries to take the lock of argv[1], prints "won" or the refusal, and holds a won lock
# until its stdin closes; with argv[2] it first waits for that file to appear (a starting gun for races).
CHILD = """
import os, sys, time
from wconv.tracking.lock import RunLock, RunLocked
if len(sys.argv) > 2:
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.001)
try:
    lock = RunLock(sys.argv[1]).acquire()
except RunLocked as e:
    print("refused", e, flush=True)
    sys.exit(0)
print("won", flush=True)
sys.stdin.read()
lock.release()
"""


def child(run: Path, gun: Path | None = None) -> subprocess.Popen:
    """A process running CHILD on ``run`` against this checkout's sources."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, "-c", CHILD, str(run), *([str(gun)] if gun else [])]
    return subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def plant(run: Path, age_s: float = 0.0, **holder) -> Path:
    """A lock file left by ``holder`` (a JSON object, or raw text under ``text``), last touched ``age_s`` ago."""
    run.mkdir(parents=True, exist_ok=True)
    path = run / ".lock"
    text = holder.pop("text", None)
    path.write_text(text if text is not None else json.dumps({"started": "2026-12-03T10:00:00", **holder}))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def holder_of(run: Path) -> dict:
    return json.loads((run / ".lock").read_text())


def test_acquire_names_the_holder_and_release_removes_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    run = tmp_path / "runs" / "x"
    with RunLock(run):
        holder = holder_of(run)
        assert (holder["host"], holder["pid"], holder["slurm_job"]) == (socket.gethostname(), os.getpid(), "7")
        assert datetime.fromisoformat(holder["started"]).tzinfo is not None
    assert list(run.iterdir()) == []


def test_a_live_holder_in_another_process_refuses_with_one_line(tmp_path):
    run = tmp_path / "x"
    holder = child(run)
    try:
        assert holder.stdout.readline() == "won\n"
        with pytest.raises(RunLocked) as refused:
            RunLock(run).acquire()
        message = str(refused.value)
        assert "\n" not in message
        assert f"{run} is in use by pid {holder.pid} on {socket.gethostname()} since " in message
        assert f"remove {run / '.lock'} if that process is dead" in message
    finally:
        holder.communicate("", timeout=10)
    with RunLock(run):  # released by the other process on exit
        assert holder_of(run)["pid"] == os.getpid()


def test_a_lock_of_a_dead_pid_on_this_host_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "x"
    plant(run, host=socket.gethostname(), pid=dead.pid, token="old")
    with caplog.at_level(logging.WARNING, logger="wconv.tracking.lock"), RunLock(run):
        assert holder_of(run)["pid"] == os.getpid()
        assert sorted(p.name for p in run.iterdir()) == [".lock"], "no takeover claim left behind"
    (line,) = caplog.messages
    assert f"took over the stale lock of {run} held by pid {dead.pid} on {socket.gethostname()}" in line
    assert f"pid {dead.pid} is no longer running" in line


@pytest.mark.parametrize(("their_restart", "taken_over"), [(0, True), (1, False)])
def test_same_slurm_job_takes_over_only_an_earlier_restart(tmp_path, monkeypatch, their_restart, taken_over):
    """A requeued job's earlier run is dead; a process of the same run (same restart count) on another node is not."""
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    run = tmp_path / "x"
    plant(run, host="node7", pid=1234, slurm_job="42", slurm_restart=their_restart, token="old")
    if taken_over:
        with RunLock(run):
            assert holder_of(run)["slurm_restart"] == 1
    else:
        with pytest.raises(RunLocked, match=r"in use by pid 1234 on node7 since .* \(SLURM job 42, restart 1\)"):
            RunLock(run).acquire()


@pytest.mark.parametrize(("age_s", "taken_over"), [(700.0, True), (30.0, False)])
def test_another_hosts_lock_is_stale_only_when_its_heartbeat_is_old(tmp_path, age_s, taken_over):
    run = tmp_path / "x"
    plant(run, age_s, host="node7", pid=1234, slurm_job="9", token="old")
    if taken_over:
        with RunLock(run, stale_after_s=600):
            assert holder_of(run)["host"] == socket.gethostname()
    else:
        with pytest.raises(RunLocked, match=r"by pid 1234 on node7 since 2026-12-03 10:00:00 \(SLURM job 9"):
            RunLock(run, stale_after_s=600).acquire()


@pytest.mark.parametrize(("age_s", "taken_over"), [(700.0, True), (30.0, False)])
@pytest.mark.parametrize("text", ["", '{"host": "node7", "pi'])
def test_an_empty_or_torn_lock_is_judged_by_its_mtime_alone(tmp_path, text, age_s, taken_over):
    run = tmp_path / "x"
    plant(run, age_s, text=text)
    if taken_over:
        with RunLock(run, stale_after_s=600):
            assert holder_of(run)["pid"] == os.getpid()
    else:
        with pytest.raises(RunLocked, match="in use by a process that cannot be named"):
            RunLock(run, stale_after_s=600).acquire()


def test_processes_racing_for_a_stale_lock_exactly_one_wins(tmp_path):
    run, gun = tmp_path / "x", tmp_path / "go"
    plant(run, 3600.0, host="node7", pid=1234, token="old")
    racers = [child(run, gun) for _ in range(4)]
    try:
        time.sleep(1.0)  # let them start and wait for the gun
        gun.touch()
        outcomes = [r.stdout.readline() for r in racers]
    finally:
        for racer in racers:
            racer.communicate("", timeout=10)
    winners = [r.pid for r, out in zip(racers, outcomes, strict=True) if out == "won\n"]
    assert len(winners) == 1, outcomes
    assert all(out.startswith(f"refused {run} is in use by pid {winners[0]} ") for out in outcomes if out != "won\n"), (
        outcomes
    )


def test_the_heartbeat_keeps_the_lock_fresh(tmp_path):
    run = tmp_path / "x"
    with RunLock(run, heartbeat_s=0.05, stale_after_s=1.0):
        then = time.time() - 3600
        os.utime(run / ".lock", (then, then))
        time.sleep(0.3)
        assert time.time() - (run / ".lock").stat().st_mtime < 1.0


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path, caplog):
    run = tmp_path / "x"
    with RunLock(run, heartbeat_s=0.05, stale_after_s=1.0):
        plant(run, 60.0, host="node7", pid=1234, token="theirs")  # taken over while we stalled
        time.sleep(0.3)
        assert time.time() - (run / ".lock").stat().st_mtime > 50, "the heartbeat must not touch another's lock"
    assert holder_of(run)["token"] == "theirs"
    assert caplog.messages == [f"the lock of {run} was removed or taken over by another process while held"]
