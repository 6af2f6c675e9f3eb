"""Search evaluations side by side (``search.workers``): local worker processes, or one submitit job each.

Either kind is called with one round of DIRECT-L (``wconv.search.direct_l_batched``) and yields each evaluation as
it finishes. A local worker builds what its evaluations share (the data, a Runner) once. A training that raises is
returned as a failed evaluation, which the search penalises; a worker lost on the way (its process killed, its job
ended without a result) has its point trained again, from the evaluation's last epoch checkpoint. A stop asked of
the search process (SIGTERM, SIGUSR2, Ctrl-C: ``wconv.training.stop_on_signals``) is passed on to its local workers,
whose trainings checkpoint where they are; the search then stops with ``StopRequested``, nothing counted as failed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wconv.plan import Plan
from wconv.search import Evaluation
from wconv.training import STOP, STOP_SIGNALS, StopRequested, hand_over, request_stop, stop_on_signals

log = logging.getLogger("wconv.parallel")

DEFAULT_JOB_MINUTES = 720  # a submitit job's time when the preflight has no prediction for the run
MAX_LOSSES = 3  # a point whose worker is lost this many times stops the search: something kills it
POLL_S = 0.2  # how often the search, waiting for its workers, looks for a stop request

Evaluate = Callable[[int, list[float]], Evaluation]
Setup = Callable[[int], Evaluate]  # run in a worker: its slot (0 .. workers-1) -> its evaluate(index, den)
Task = tuple[int, list[float]]
Finished = tuple[int, Evaluation, float]


class WorkerLost(RuntimeError):
    """A point's worker was lost MAX_LOSSES times, or a job failed before its training; the message says which."""


def safe_evaluate(evaluate: Evaluate, index: int, den: list[float]) -> tuple[Evaluation, float]:
    """``evaluate(index, den)`` and its seconds; an exception is printed and returned as a failed evaluation, but for
    a stop request (its training checkpointed: not a result)."""
    start = time.perf_counter()
    try:
        result = evaluate(index, den)
    except StopRequested:
        raise
    except Exception as err:
        traceback.print_exc()
        result = Evaluation(float("nan"), "failed", {"error": f"{type(err).__name__}: {err}"})
    return result, time.perf_counter() - start


def cores() -> int:
    """The CPU cores this process may use (its affinity: a SLURM job's share, say)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class TrainingWorker:
    """The ``Setup`` of a run's workers: in a worker, a Runner for the plan (``wconv.runner``: the same data,
    tracker and models as the run's own process), on GPU ``slot % count`` when it trains on CUDA. A task is a search
    point (``index, den``: a search evaluation) or a ``Training`` (a final training, ``index`` its place)."""

    plan: Plan
    run_dir: Path

    def __call__(self, slot: int) -> Evaluate:
        from wconv.runner import Training, open_runner

        runner = open_runner(self.plan, self.run_dir, slot=slot, progress=False)

        def work(index: int, task: Any) -> Any:
            return runner.fit(task) if isinstance(task, Training) else runner.evaluate(index, task)

        return work


_evaluate: Evaluate | None = None  # a local worker's own, set once by _start_worker
_all_started: Any = None  # a barrier of all the pool's workers, passed by _start_worker


def _start_worker(setup: Setup, slots: Any, threads: int, parent: int, all_started: Any) -> None:
    """A local worker's initializer: its share of the threads, a watch on the search process, its evaluate, and the
    search's stop signals (from the search process, or Ctrl-C and ``scancel`` reaching every process) asking its
    training to checkpoint and stop."""
    global _evaluate, _all_started
    torch.set_num_threads(threads)
    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _evaluate, _all_started = setup(slots.get()), all_started


def _ready() -> int:
    """Return once every worker of the pool has been set up (each call holds its own worker until then)."""
    _all_started.wait()
    return os.getpid()


def _watch_parent(parent: int, poll_s: float = 0.5) -> None:
    """End this worker once the search process is gone (killed): no orphan goes on training."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    os._exit(1)


def _evaluate_in_worker(index: int, den: list[float]) -> tuple[Evaluation, float]:
    if STOP:  # a task handed over after the stop: not started
        raise StopRequested(STOP[0])
    return safe_evaluate(_evaluate, index, den)


class LocalWorkers:
    """``workers`` processes, kept for the whole search, each with ``cores // workers`` threads, all set up before
    the first evaluation is handed out.

    ``fork``: fork them from this process (no imports, a start in milliseconds) rather than spawn fresh
    interpreters (seconds each: torch and the data again). Only safe for CPU workers of one thread: a forked child
    cannot use CUDA initialised here, nor an OpenMP team of more than one thread once this process has used one
    (GNU OpenMP hangs).
    """

    def __init__(self, setup: Setup, workers: int, fork: bool = False) -> None:
        self.setup, self.workers = setup, workers
        self.threads = max(1, cores() // workers)
        self.method = (
            "fork" if fork and self.threads == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
        )
        self._pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context(self.method)
        slots = context.SimpleQueue()  # each new process takes one: its GPU
        for slot in range(self.workers):
            slots.put(slot)
        initargs = (self.setup, slots, self.threads, os.getpid(), context.Barrier(self.workers))
        pool = ProcessPoolExecutor(self.workers, context, initializer=_start_worker, initargs=initargs)
        # The executor starts a process only when a task finds no idle one: the first round (one point) would start
        # one worker, which would then take the next rounds' points while the others are still starting.
        try:
            for future in [pool.submit(_ready) for _ in range(self.workers)]:
                future.result()
        except BrokenProcessPool:
            pool.shutdown(wait=True, cancel_futures=True)
            raise WorkerLost("a search worker process died while it was set up (its data, its device?)") from None
        return pool

    def __call__(self, tasks: list[Task]) -> Iterator[Finished]:
        """Train every ``(index, den)``; yield ``(index, evaluation, seconds)`` as each finishes. On a stop request
        (here or in a worker), the tasks not started are cancelled, the workers asked to stop (SIGTERM: a second
        SIGINT would be a KeyboardInterrupt in one that had Ctrl-C already), the evaluations that finish meanwhile
        yielded, and ``StopRequested`` raised once every training has checkpointed."""
        pending, losses = dict(tasks), Counter()
        while pending:
            self._pool = self._pool or self._start()
            futures = {self._pool.submit(_evaluate_in_worker, index, den): index for index, den in pending.items()}
            lost, stopped, asked, waiting = [], 0, False, set(futures)
            while waiting:
                done, waiting = wait(waiting, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.cancelled():
                        continue
                    index = futures[future]
                    try:
                        result, seconds = future.result()
                    except BrokenProcessPool:
                        lost.append(index)
                        continue
                    except StopRequested as stop:  # its training checkpointed (or had not started)
                        stopped = stopped or stop.signum
                        continue
                    del pending[index]
                    yield index, result, seconds
                if (STOP or stopped) and not asked:
                    self._stop_workers(waiting)
                    asked = True
            if STOP or stopped:
                raise StopRequested(STOP[0] if STOP else stopped)
            if lost:
                self._pool.shutdown(wait=True)
                self._pool = None
                _count_losses(losses, sorted(lost), pending, "its worker process was killed (out of memory?)")

    def _stop_workers(self, futures: set) -> None:
        """Cancel the tasks no worker has taken; ask every worker's training to checkpoint and stop."""
        for future in futures:
            future.cancel()
        for process in self._processes():
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def close(self, kill: bool = False) -> None:
        """Let the idle workers go; with ``kill`` (the search failed or was interrupted) end their trainings too."""
        if self._pool is None:
            return
        if kill:  # shutdown() alone would wait for the trainings
            for process in self._processes():
                process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def _processes(self) -> list:
        """The pool's worker processes: the executor gives no public handle on them."""
        return list((self._pool._processes or {}).values())


def _count_losses(losses: Counter, lost: list[int], points: dict[int, list[float]], why: str) -> None:
    """Count the lost points; WorkerLost once one was lost MAX_LOSSES times, else a warning that they run again."""
    losses.update(lost)
    if worst := [index for index in lost if losses[index] >= MAX_LOSSES]:
        raise WorkerLost(
            f"evaluation {worst[0]} (den={points[worst[0]]}) was lost {MAX_LOSSES} times: {why}; the search stops "
            "(run the same command again to retry)"
        )
    log.warning(f"evaluation(s) {', '.join(map(str, lost))} lost: {why}; training again")


def _job(setup: Setup, share: int, index: int, den: list[float]) -> tuple[Evaluation, float]:
    """One search evaluation as a submitit job: ``1/share`` of the job's cores, the worker's setup on the job's
    first GPU, then the training. Submitit's preemption or timeout signal (USR2) first checkpoints the training
    where it is; then submitit's own handler requeues the job (preempted: the training resumes there) or ends it
    without a result (timed out: the search trains the point again, from that checkpoint)."""
    from submitit import JobEnvironment

    torch.set_num_threads(max(1, cores() // share))
    signum = JobEnvironment._usr_sig()  # submitit's (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)
    with stop_on_signals((signum,)) as submitits:
        try:
            return safe_evaluate(lambda i, d: setup(0)(i, d), index, den)
        except StopRequested as stop:
            print(f"evaluation {index}: stopped on {stop}, its training checkpointed; handing over to submitit",
                  file=sys.stderr, flush=True)  # fmt: skip
            hand_over(stop, submitits)  # requeues and exits, or raises UncompletedJobError
            raise


class SubmititWorkers:
    """One submitit job per evaluation, at most ``workers`` queued or running at once; the search waits for them.

    ``parameters`` go to ``submitit.AutoExecutor.update_parameters`` (None values dropped) but for ``cluster``:
    None picks SLURM where it runs, else local processes; ``local`` forces these.
    """

    def __init__(self, setup: Setup, workers: int, folder: Path, parameters: dict[str, Any], poll_s: float = 2.0):
        import submitit

        parameters = {k: v for k, v in parameters.items() if v is not None}
        self.executor = submitit.AutoExecutor(folder=folder, cluster=parameters.pop("cluster", None))
        self.executor.update_parameters(**parameters)
        self.setup, self.workers, self.poll_s = setup, workers, poll_s
        self.share = workers if self.executor.cluster == "local" else 1  # local jobs share this machine's cores
        self._jobs: dict[Any, Task] = {}  # submitted and not yet collected

    def __call__(self, tasks: list[Task]) -> Iterator[Finished]:
        """Train every ``(index, den)``; yield ``(index, evaluation, seconds)`` as each job finishes."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        queue, points, losses = list(tasks), dict(tasks), Counter()
        while queue or self._jobs:
            while queue and len(self._jobs) < self.workers:
                index, den = queue.pop(0)
                self._jobs[self.executor.submit(_job, self.setup, self.share, index, den)] = (index, den)
            finished = [job for job in self._jobs if job.done()]
            if not finished:
                time.sleep(self.poll_s)
            for job in finished:
                index, den = self._jobs.pop(job)
                try:
                    result, seconds = job.result()
                except FailedJobError as err:  # safe_evaluate catches the training's: this is the job's setting
                    if "UncompletedJobError" in str(err):  # submitit's handler ends a timed-out job with this
                        why = f"job {job.job_id} timed out (search.submitit.timeout_min)"
                        _count_losses(losses, [index], points, why)
                        queue.insert(0, (index, den))
                        continue
                    reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
                    raise WorkerLost(
                        f"search job {job.job_id} (evaluation {index}) failed before training: {reason} "
                        f"(log: {job.paths.stderr})"
                    ) from None
                except UncompletedJobError:
                    _count_losses(losses, [index], points, f"job {job.job_id} ended without a result (killed?)")
                    queue.insert(0, (index, den))
                    continue
                yield index, result, seconds

    def close(self, kill: bool = False) -> None:
        """With ``kill`` (the search failed or was interrupted), cancel the jobs still queued or running."""
        if kill:
            for job in self._jobs:
                job.cancel(check=False)
        self._jobs.clear()


@contextmanager
def started(plan: Plan, run_dir: Path) -> Iterator[LocalWorkers | SubmititWorkers | None]:
    """The workers the plan asks for (``search.workers`` > 1, ``search.launcher``) to train its search evaluations
    and its final trainings, or None (one process trains everything); if the run fails or is interrupted, their
    trainings are ended with it. Local workers start when the first task comes."""
    setup, s = TrainingWorker(plan, run_dir), plan.config.search
    if not plan.searches or s.workers == 1:
        yield None
        return
    if s.launcher == "submitit":
        parameters = s.submitit.model_dump()
        if parameters["timeout_min"] is None:  # a job per training: the longest the preflight predicts
            from wconv.preflight import training_minutes

            parameters["timeout_min"] = training_minutes(plan) or DEFAULT_JOB_MINUTES
            log.info(f"each training's job asks for {parameters['timeout_min']} minutes")
        pool: LocalWorkers | SubmititWorkers = SubmititWorkers(setup, s.workers, run_dir / "submitit", parameters)
    else:
        device = plan.config.device
        on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
        pool = LocalWorkers(setup, s.workers, fork=on_cpu)
    try:
        yield pool
    except BaseException:
        pool.close(kill=True)
        raise
    pool.close()
