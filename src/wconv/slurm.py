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

from wconv import preflight, sweep
from wconv.tracking.records import write_json

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
    search_gpus: int = 1,
    max_running: int | None = None,
    sbatch_args: list[str] | None = None,
    timeout_s: float | None = None,
    poll_s: float = 5.0,
    preflight_csv: Path | None = None,
    profile: str = "paper",
) -> list[Path]:
    """Run every unfinished job as a task of a SLURM job array, wait until all have ended; return every job's
    folder (as ``sweep.run_local`` does).

    Search jobs form one array whose tasks each get ``search_gpus`` GPUs in one process (``search.workers``, no
    torchrun): the search's rounds and the final trainings go to as many workers; every other job gets one GPU.
    Each array asks for the longest time the preflight predicts for its tasks (``preflight.predictions``; else
    array.sbatch's 12 h), at most ``max_running`` tasks of it at once; a last job (``slurm/notice.sbatch``) writes
    the tables and names what failed once both arrays have ended. ``sbatch_args`` (default ``WCONV_SBATCH_ARGS``)
    come last and win; ``timeout_s`` (default ``WCONV_SLURM_TIMEOUT``) bounds the wait. Raises SlurmError naming each
    failed run and its log."""
    from wconv.plan import make

    extra = list(extra or [])
    if sbatch_args is None:
        sbatch_args = shlex.split(os.environ.get("WCONV_SBATCH_ARGS", ""))
    if timeout_s is None and os.environ.get("WCONV_SLURM_TIMEOUT"):
        timeout_s = float(os.environ["WCONV_SLURM_TIMEOUT"])
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    state_dir = Path(root) / ".slurm"

    earlier = _earlier_arrays(state_dir)
    if earlier:
        log.info(f"job array(s) {', '.join(earlier)}, submitted by an earlier call, still queued or running: waiting")
        for array in earlier:
            _wait(array, {}, deadline, poll_s)

    dirs, groups = [], {"search": [], "other": []}
    for i, job in enumerate(jobs, 1):
        cfg = sweep.compose_job(job, extra)
        path = sweep.run_dir(job, Path(root), cfg)
        dirs.append(path)
        if sweep.is_done(path, cfg):
            log.info(f"[{i}/{len(jobs)}] {job.name}: done already ({path})")
            continue
        searches = getattr(_plan_or_none(make, cfg), "searches", False)
        groups["search" if searches and search_gpus > 1 else "other"].append((job, path, cfg))
    if not any(groups.values()):
        log.info("every run is done: nothing to submit")
        return dirs

    predictions = preflight.predictions(preflight_csv)
    tasks, arrays = {}, []
    for group, todo in groups.items():
        if not todo:
            continue
        gpus = search_gpus if group == "search" else 1
        words = [f"search.workers={gpus}"] if group == "search" else []
        resources = _resources(todo, gpus, predictions, make)
        array = _submit([(job, path) for job, path, _ in todo], [*extra, *words], state_dir,
                        [*resources, *sbatch_args], max_running, nproc=1 if group == "search" else None)  # fmt: skip
        arrays.append(array)
        tasks.update({f"{array}_{i}": entry for i, entry in enumerate(todo)})
        write_json(state_dir / "array.json", {"jobs": arrays})  # at once: a later sbatch may fail, this array runs
    _notice(profile, arrays, root, state_dir, sbatch_args)
    names = {task: job.name for task, (job, _, _) in tasks.items()}
    for array in arrays:
        _wait(array, names, deadline, poll_s)

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
    log.info(f"job array(s) {', '.join(arrays)}: all {len(tasks)} runs done")
    return dirs


def _plan_or_none(make, cfg):
    from wconv.config import ConfigError

    try:
        return make(cfg)
    except ConfigError:  # its task will fail with the reason, as the run would
        return None


def _resources(todo: list, gpus: int, predictions: tuple[dict, bool], make) -> list[str]:
    """sbatch options of one array: its GPUs and CPUs, and the longest predicted time of its tasks."""
    options = [f"--gres=gpu:{gpus}", f"--cpus-per-task={8 * gpus}"] if gpus > 1 else []
    rows, h100 = predictions
    seconds = []
    for job, _, cfg in todo:
        plan = _plan_or_none(make, cfg)
        if plan is None or plan.fingerprint not in rows:
            log.info(f"{job.name}: no preflight prediction (make preflight PROFILE=...): array.sbatch's time limit")
            return options
        costs = preflight.Costs.from_row(rows[plan.fingerprint], h100=h100)
        seconds.append(preflight.predict(plan, costs, workers=gpus if plan.searches else 1)["wall_s"])
    limit = preflight.slurm_time(max(seconds))
    log.info(f"time limit {limit} (the preflight's{' H100' if h100 else ''} prediction for the longest task)")
    return [*options, f"--time={limit}"]


PLACEMENT = ("--partition", "--account", "--qos", "-p", "-A")


def placement(sbatch_args: list[str]) -> list[str]:
    """The options of ``sbatch_args`` that say where jobs run (partition, account, QOS), each with its value, given
    as ``-p gpu`` or ``--partition=gpu``: the notice job runs where the arrays run, without their GPUs."""
    kept, value_next = [], False
    for arg in sbatch_args:
        if value_next or arg.startswith(PLACEMENT):
            kept.append(arg)
            value_next = not value_next and arg in PLACEMENT
        else:
            value_next = False
    return kept


def _notice(profile: str, arrays: list[str], root: Path, state_dir: Path, sbatch_args: list[str]) -> None:
    """A last job, once every array has ended: the tables, and which tasks did not complete (slurm/notice.sbatch)."""
    script = REPO / "slurm" / "notice.sbatch"
    resources = placement(sbatch_args)
    command = ["sbatch", "--parsable", f"--dependency=afterany:{':'.join(arrays)}", "--kill-on-invalid-dep=yes",
               *resources, f"--output={state_dir.resolve()}/notice-%j.out", str(script), profile,
               str(Path(root).resolve()), *arrays]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        log.warning(f"the notice job was not submitted ({done.stderr.strip()}); the arrays run all the same")
    else:
        log.info(f"notice job {done.stdout.strip()} writes the tables once the arrays end ({state_dir}/notice-*.out)")


def _submit(
    todo: list[tuple[sweep.Job, Path]],
    extra: list[str],
    state_dir: Path,
    sbatch_args: list[str],
    max_running: int | None = None,
    nproc: int | None = None,
) -> str:
    """Write the override lines and submit them as one array (at most ``max_running`` tasks at once; ``nproc``:
    WCONV_NPROC for its tasks); return its job id."""
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
    stamp = time.strftime("%Y%m%d-%H%M%S")
    overrides = (state_dir / f"overrides-{stamp}-{len(list(state_dir.glob('overrides-*')))}.txt").resolve()
    overrides.write_text("".join(f"{line}\n" for line in lines))
    cap = f"%{max_running}" if max_running else ""
    command = ["sbatch", "--parsable", *sbatch_args, f"--array=0-{len(lines) - 1}{cap}"]
    command += [f"--output={state_dir.resolve()}/%A_%a.out", str(ARRAY_SCRIPT), str(overrides)]
    env = dict(os.environ)
    if nproc is not None:
        env["WCONV_NPROC"] = str(nproc)  # one process with its workers, not torchrun over the GPUs
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
    log.info(f"submitted job array {array}: {len(lines)} runs, logs {state_dir}/{array}_<task>.out")
    return array


def _earlier_arrays(state_dir: Path) -> list[str]:
    """The arrays an earlier call submitted here that still have tasks queued or running."""
    record = state_dir / "array.json"
    if not record.exists():
        return []
    recorded = json.loads(record.read_text())
    return [array for array in recorded.get("jobs", [recorded.get("job")]) if array and _queued(array)]


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
