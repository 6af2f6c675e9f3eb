"""``make reproduce-table LAUNCHER=slurm``: the matrix's unfinished runs as one SLURM job array, then wait for it.

Each task of the array runs ``slurm/array.sbatch`` with one line of overrides: the job's, the extra ones and
``hydra.run.dir=<its folder>`` from ``sweep.run_dir``, so every run lands where ``sweep.run_local`` would put it,
and finished folders are skipped the same way. Resources are array.sbatch's defaults (1 GPU, 8 CPUs, 32 GB,
12 h); ``WCONV_SBATCH_ARGS`` adds sbatch options, e.g. on a cluster without GPUs:

    WCONV_SBATCH_ARGS="--gres=none --cpus-per-task=1 --mem=3G --partition=debug" make reproduce-table LAUNCHER=slurm

Logs go to ``<root>/.slurm/<array job id>_<task>.out``. ``WCONV_SLURM_TIMEOUT`` (seconds) bounds the wait. An
array still running from an earlier call (interrupted, or timed out) is waited for, never submitted twice.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from wconv import sweep

log = logging.getLogger("wconv.slurm")

REPO = sweep.CONFIGS.parent
ARRAY_SCRIPT = REPO / "slurm" / "array.sbatch"
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


class SlurmError(RuntimeError):
    """The array was refused, some runs failed, or the wait timed out; the one-line message names what and where."""


def run_slurm(
    jobs: list[sweep.Job],
    root: Path,
    extra: list[str] | None = None,
    *,
    sbatch_args: list[str] | None = None,
    timeout_s: float | None = None,
    poll_s: float = 5.0,
) -> list[Path]:
    """Run every unfinished job as one task of a SLURM job array, wait until all have ended; return every job's
    folder (as ``sweep.run_local`` does). ``sbatch_args`` default to ``WCONV_SBATCH_ARGS``, ``timeout_s`` to
    ``WCONV_SLURM_TIMEOUT`` (unset: no limit). Raises SlurmError naming each failed run and its log."""
    extra = list(extra or [])
    if sbatch_args is None:
        sbatch_args = shlex.split(os.environ.get("WCONV_SBATCH_ARGS", ""))
    if timeout_s is None and os.environ.get("WCONV_SLURM_TIMEOUT"):
        timeout_s = float(os.environ["WCONV_SLURM_TIMEOUT"])
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    state_dir = Path(root) / ".slurm"

    earlier = _earlier_array(state_dir)
    if earlier:
        log.info(f"job array {earlier}, submitted by an earlier call, is still queued or running: waiting for it")
        _wait(earlier, {}, deadline, poll_s)

    dirs, todo = [], []
    for i, job in enumerate(jobs, 1):
        cfg = sweep.compose_job(job, extra)
        path = sweep.run_dir(job, Path(root), cfg)
        dirs.append(path)
        if sweep.is_done(path, cfg):
            log.info(f"[{i}/{len(jobs)}] {job.name}: done already ({path})")
        else:
            todo.append((job, path, cfg))
    if not todo:
        log.info("every run is done: nothing to submit")
        return dirs

    array = _submit([(job, path) for job, path, _ in todo], extra, state_dir, sbatch_args)
    tasks = {f"{array}_{i}": entry for i, entry in enumerate(todo)}
    _wait(array, {task: job.name for task, (job, _, _) in tasks.items()}, deadline, poll_s)

    failed = []
    for task, (job, path, cfg) in tasks.items():
        if sweep.is_done(path, cfg):
            continue
        log_file = state_dir / f"{task}.out"
        tail = log_file.read_text(errors="replace").strip().splitlines()[-5:] if log_file.exists() else []
        log.error(f"{job.name} (task {task}) failed; the end of {log_file}:\n" + "\n".join(tail))
        failed.append(f"{job.name} (task {task}, {_final_state(task)}, log {log_file})")
    if failed:
        raise SlurmError(f"{len(failed)} of {len(tasks)} SLURM runs failed: {'; '.join(failed)}")
    log.info(f"job array {array}: all {len(tasks)} runs done")
    return dirs


def _submit(todo: list[tuple[sweep.Job, Path]], extra: list[str], state_dir: Path, sbatch_args: list[str]) -> str:
    """Write the override lines and submit them as one array; return its job id."""
    lines = []
    for job, path in todo:
        words = [*job.overrides, *extra, f"hydra.run.dir={path.resolve()}"]
        if bad := [w for w in words if not w or any(c.isspace() for c in w)]:
            raise SlurmError(
                f"{job.name}: override {bad[0]!r} is empty or holds whitespace, which slurm/array.sbatch splits "
                "its lines on: remove the spaces (or choose a root folder without them)"
            )
        lines.append(" ".join(words))
    state_dir.mkdir(parents=True, exist_ok=True)
    overrides = (state_dir / f"overrides-{time.strftime('%Y%m%d-%H%M%S')}.txt").resolve()
    overrides.write_text("".join(f"{line}\n" for line in lines))
    command = ["sbatch", "--parsable", *sbatch_args, f"--array=0-{len(lines) - 1}"]
    command += [f"--output={state_dir.resolve()}/%A_%a.out", str(ARRAY_SCRIPT), str(overrides)]
    env = dict(os.environ)
    if (Path(sys.prefix) / "bin" / "activate").exists():
        env.setdefault("WCONV_VENV", sys.prefix)  # the jobs run this Python's venv, as submitit's would
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SlurmError("sbatch not found: run this on a SLURM login node (or: scripts/slurm-cluster start)") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        hint = "; on a cluster without GPUs set WCONV_SBATCH_ARGS='--gres=none ...'" if "gres" in reason else ""
        raise SlurmError(f"sbatch refused the job array ({' '.join(command)}): {reason}{hint}")
    array = done.stdout.strip().split(";")[0]
    (state_dir / "array.json").write_text(json.dumps({"job": array, "overrides": str(overrides)}) + "\n")
    log.info(f"submitted job array {array}: {len(lines)} runs, logs {state_dir}/{array}_<task>.out")
    return array


def _earlier_array(state_dir: Path) -> str | None:
    """The array an earlier call submitted here, if it still has tasks queued or running."""
    record = state_dir / "array.json"
    if not record.exists():
        return None
    array = json.loads(record.read_text())["job"]
    return array if _queued(array) else None


def _queued(array: str) -> dict[str, str] | None:
    """{task: state} of the array's tasks still queued, running or requeued; None when squeue did not answer."""
    try:
        done = subprocess.run(
            ["squeue", "-h", "-r", "-j", array, "-o", "%i %T"], capture_output=True, text=True, timeout=60
        )
    except (subprocess.TimeoutExpired, FileNotFoundError) as err:
        log.warning(f"squeue did not answer ({err}); trying again")
        return None
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:  # ended long enough ago to be forgotten by the controller
            return {}
        log.warning(f"squeue failed ({done.stderr.strip()}); trying again")
        return None
    return dict(line.split(maxsplit=1) for line in done.stdout.splitlines() if line.strip())


def _wait(array: str, names: dict[str, str], deadline: float | None, poll_s: float) -> None:
    """Poll squeue until no task of the array is left; log every change of state."""
    seen: dict[str, str] = {}
    try:
        while True:
            queued = _queued(array)
            if queued is not None:
                for task in sorted(set(seen) | set(queued)):
                    if seen.get(task) != queued.get(task, "ended"):
                        log.info(f"{task} {names.get(task, '')}: {queued.get(task, 'ended')}")
                seen = queued
                if not queued:
                    return
            if deadline is not None and time.monotonic() > deadline:
                left = len(queued) if queued else "some"
                raise SlurmError(
                    f"job array {array} still has {left} task(s) queued or running at the time limit; it keeps "
                    f"running: run the same command again to wait for it, or cancel it: scancel {array}"
                )
            time.sleep(poll_s)
    except KeyboardInterrupt:
        log.warning(f"interrupted: job array {array} keeps running; run the same command again to wait for it")
        raise


def _final_state(task: str, wait_s: float = 20.0) -> str:
    """The task's final state and exit code from accounting (e.g. ``FAILED 2:0``); sacct lags a few seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            sacct = ["sacct", "-n", "-X", "-P", "-j", task, "-o", "State,ExitCode"]
            done = subprocess.run(sacct, capture_output=True, text=True, timeout=30)
            rows = [line.split("|") for line in done.stdout.splitlines() if "|" in line]
        except (subprocess.TimeoutExpired, FileNotFoundError):
            rows = []
        if rows and rows[0][0].split()[0] in ENDED:
            return f"{rows[0][0]} {rows[0][1]}"
        if time.monotonic() > deadline:
            return f"state {rows[0][0] if rows else 'unknown'}"
        time.sleep(1.0)
