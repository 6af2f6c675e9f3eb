"""``python -m wconv.train``: one training, or the nested DIRECT-L x SGD density search, then final seeds.

Top to bottom: the command line's overrides are composed and the config validated once into a ``Plan``
(``wconv.plan``: every bad value one line, exit 2, nothing written) -> the run directory is checked and locked ->
the data and a ``Runner`` are built (``wconv.runner``) -> [search: DIRECT-L proposes a density, each evaluation
trains from the same initial weights and returns a validation objective] -> the final trainings of every variant
on ``final.seeds``, scored on the test split (``wconv.stages``) -> ``result.json``. Every step is recorded
atomically in the run directory, and running the same command again resumes where it stopped. Under ``torchrun``
the trainings run data-parallel (``wconv.distributed``): every rank runs this same flow, rank 0 alone writes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from wconv import data as wdata
from wconv import distributed, parallel, stages
from wconv.config import ConfigError
from wconv.plan import Plan, make
from wconv.runner import Runner, check_device, describe_device, open_runner
from wconv.tracking.identity import RecordMismatch, check_run_dir, claim_run_dir
from wconv.tracking.lock import RunLock, RunLocked
from wconv.tracking.provenance import provenance
from wconv.tracking.records import DamagedRecord, read_jsonl, write_json
from wconv.training import StopRequested, hand_over, stop_on_signals

log = logging.getLogger("wconv.train")


def run(cfg: DictConfig | dict[str, Any], run_dir: Path, overrides: list[str] | None = None) -> float:
    """Validate, resume or start the run in ``run_dir``: search, final trainings, ``result.json``. One process at a
    time per run directory (``RunLock``); every check that can fail comes before the first write."""
    plan = make(cfg)
    check_device(plan)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"the run directory {run_dir} is a file: choose another hydra.run.dir")
    check_run_dir(run_dir, plan.resolved)  # before anything is built or written
    if (done := stages.finished(run_dir, plan)) is not None:
        log.info(f"{run_dir}: finished already ({run_dir / 'result.json'})")
        return float(done["objective"])
    with ExitStack() as stack:
        if distributed.is_main() and run_dir.is_dir():  # refuse a second process at once, before loading data
            stack.enter_context(RunLock(run_dir))
        with distributed.main_first():  # rank 0 downloads, if asked to, before the others read
            runner = open_runner(plan, run_dir)
        if not runner.data.sizes.get("test"):
            raise ConfigError(
                f"data={plan.config.data.name} has no test images: the final trainings are scored on them"
            )
        if distributed.is_main():
            if not run_dir.is_dir():
                run_dir.mkdir(parents=True)
                stack.enter_context(RunLock(run_dir))
            claim_run_dir(run_dir, plan.resolved, provenance(overrides))
            stack.enter_context(log_file(run_dir / "train.log"))
            runner.track()
        distributed.barrier()
        return _run(plan, runner)


def _run(plan: Plan, runner: Runner) -> float:
    log.info(plan.header(runner.data.sizes, describe_device(runner.device)))
    if runner.data.fabricated:
        log.warning("the data are FABRICATED stand-ins (a rehearsal): no table will be made from this run")
    if distributed.is_distributed():
        log.info(f"data-parallel over {distributed.describe()}; rank 0 writes the records")
    with parallel.started(plan, runner.run_dir) as workers:  # search.workers > 1: the search's and the finals'
        search = stages.search(runner, workers) if plan.searches else None
        if search and search["status"] != "ok":
            log.warning(
                f"every one of the {search['evaluations']} search evaluations diverged: no density trained; the "
                f"final trainings use the first point ({search['den']}). Lower optim.lr or narrow search.bounds"
            )
        variants, skipped = plan.variants(search["den"] if search else None)
        for arm, reason in skipped:
            log.info(f"arm {arm} skipped: {reason}")
        final = stages.final(runner, variants, workers)
    den = next((v.den for v in variants if v.name in ("weighted", "learned")), None)
    objective = search["objective"] if search else final[variants[0].name]["test"].get("loss", {}).get("mean")
    task = runner.data.task
    f = plan.resolved["final"]
    result = {
        "name": plan.name,
        "profile": plan.config.profile_name,
        "table": plan.config.table or task.name,
        "task": task.name,
        "model": plan.config.model.name,
        "data": plan.config.data.name,
        "kernel_size": plan.kernel_size,
        "density": plan.density,
        "best_den": den if (search and search["status"] == "ok") or plan.density == "fixed" else None,
        "best_point": variants[0].changes or None,
        "arms": list(f["arms"]),
        "budgets": list(f["budgets"]),
        **({"budget_seeds": counts} if (counts := stages.budget_seeds(plan)) else {}),
        "search": search,
        "objective": float("nan") if objective is None else objective,
        "final_seeds": plan.seeds,
        "variants": final,
        "paired": stages.paired(final, [m.key for m in task.metrics] + ["loss"]),
        "fingerprint": plan.fingerprint,
    }
    if runner.data.fabricated:  # a rehearsal (wconv.data.fabricate): the tables refuse it
        result["fabricated"] = True
    run_dir = runner.run_dir
    if distributed.is_main():
        write_json(run_dir / "result.json", result)
        records = [run_dir / "result.json", run_dir / "run.json", run_dir / "evaluations.jsonl"]
        runner.tracker.search_summary(
            read_jsonl(run_dir / "evaluations.jsonl"), result, [*records, *sorted(run_dir.glob("trainings/*.json"))]
        )
    log.info(f"{run_dir}: done -> {run_dir / 'result.json'}")
    log.info(stages.summary_line(result, task.paper_metric))
    return float(result["objective"])


@contextmanager
def log_file(path: Path) -> Iterator[None]:
    """Log to ``path`` too for the block, unless a handler (Hydra's) writes there already."""
    root = logging.getLogger()
    target = str(path.resolve())
    if any(getattr(h, "baseFilename", None) == target for h in root.handlers):
        yield
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root.addHandler(handler)
    level = root.level
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parents[2] / "configs"), config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if distributed.init():  # started by torchrun
        distributed.quiet_other_ranks()
    # A job's time limit, preemption or Ctrl-C: checkpoint first, then what was there (submitit's USR2 requeues).
    # On leaving, a multirun's next job in this process starts as this one did.
    with stop_on_signals() as previous:
        try:
            return run(cfg, run_dir, list(hydra_cfg.overrides.task))
        except StopRequested as stop:
            hand_over(stop, previous)  # submitit's USR2 handler requeues its job
            fail(
                f"stopped on {stop}: the training saved a checkpoint; run the same command to resume", 128 + stop.signum
            )
        except (ConfigError, RecordMismatch, RunLocked, wdata.DataError, stages.TrainingFailed, DamagedRecord) as err:
            fail(f"error: {_one_line(err)}", 2)
        except KeyboardInterrupt:
            fail(f"interrupted: what was recorded in {run_dir} is intact; run the same command to resume", 130)
        except OSError as err:
            where = f" {err.filename}" if err.filename else ""
            fail(
                f"error: cannot write{where}: {err.strerror or err}; fix that (free space, permissions, another "
                "hydra.run.dir) and run the same command again: it resumes from what was recorded",
                1,
            )
        finally:
            distributed.close()


def fail(message: str, status: int) -> None:
    if distributed.is_main():
        print(message, file=sys.stderr)
    sys.exit(status)


def cli() -> None:
    """``python -m wconv.train``: bad overrides (an unknown group option or key, a malformed value) and bad values
    (``wconv.config``) get one line and exit status 2 before Hydra starts; then Hydra runs ``main``."""
    from wconv.cli_checks import check_overrides

    message, run_dir = check_overrides(sys.argv[1:])
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    try:
        exists = run_dir is not None and run_dir.exists()
    except OSError as err:  # a name too long for the file system, say
        print(f"error: hydra.run.dir={run_dir}: {err.strerror}; choose another (shorter) path", file=sys.stderr)
        sys.exit(2)
    if exists and not run_dir.is_dir():
        print(f"error: the run directory {run_dir} is a file: choose another hydra.run.dir", file=sys.stderr)
        sys.exit(2)
    new = run_dir is not None and not exists
    try:
        main()
    finally:  # Hydra makes the run directory before the checks: a run refused at once leaves none
        if new and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()


if __name__ == "__main__":
    # Run the module under its own name: Hydra launchers (submitit) pickle ``main``, which must then be found by
    # reference, not pickled by value with everything it touches.
    from wconv.train import cli as _cli

    _cli()
