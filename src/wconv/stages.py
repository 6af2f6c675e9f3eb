"""The stages of a run after its plan: the search (DIRECT-L over the density or ``search.space``), the final
trainings of every variant on every seed, and the result with its paired differences. Every training is recorded
as it finishes, so that running the same command again resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wconv import distributed, stats
from wconv.plan import Plan
from wconv.runner import Runner, Training
from wconv.search import Evaluation, direct_l, direct_l_batched
from wconv.tracking.records import DamagedRecord, read_json, set_aside, write_json
from wconv.training import TrainResult
from wconv.variants import Variant, split_budget

log = logging.getLogger("wconv.train")


@contextmanager
def search_record(path: Path) -> Iterator[Path]:
    """The search's evaluations record: rank 0 appends to ``path``; other ranks replay a private copy of it."""
    if distributed.is_main():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="wconv-rank") as scratch:
        copy = Path(scratch) / path.name
        if path.exists():
            shutil.copyfile(path, copy)
        yield copy


def search(runner: Runner, workers: Any = None) -> dict[str, Any]:
    """DIRECT-L over the plan's box: serial (NLopt) in this process or, with ``workers`` (``search.workers`` > 1,
    ``wconv.parallel.started``), by rounds on them. Returns the best evaluation (its point, objective, index) and the
    counts."""
    plan, s = runner.plan, runner.plan.config.search
    from tqdm.auto import tqdm

    bar = tqdm(total=s.max_evals, desc="DIRECT-L", disable=None if runner.progress else True)
    best_so_far = [math.inf]

    def evaluate(index: int, point: list[float]) -> Evaluation:
        distributed.check_same(point, f"the point of evaluation {index}")  # NLopt runs on every rank
        result = runner.evaluate(index, point, keep_checkpoint=True)
        if distributed.is_main():
            if result.status == "ok" and result.objective < best_so_far[0]:
                runner.keep_best(index, point)
            (runner.run_dir / "checkpoints" / f"eval-{index:03d}.pt").unlink(missing_ok=True)
        return result

    def report(index: int, row: dict) -> None:
        bar.update(1)
        if not distributed.is_main():
            return
        if row["status"] == "ok":
            best_so_far[0] = min(best_so_far[0], row["objective"])
        log.info(
            f"eval {index + 1}/{s.max_evals} {plan.describe(row['den'])} {s.objective}={row['objective']:.5g} "
            f"best {best_so_far[0]:.5g} ({row['status']}, {row['seconds']:.1f} s)"
        )

    with search_record(runner.run_dir / "evaluations.jsonl") as record:
        if workers is not None:  # each round's evaluations side by side (wconv.parallel)
            best = direct_l_batched(workers, plan.bounds, s.max_evals, record, s.penalty, on_result=report)
        else:
            best = direct_l(evaluate, plan.bounds, s.max_evals, record, penalty=s.penalty, ftol_rel=s.ftol_rel,
                            xtol_rel=s.xtol_rel, on_result=report)  # fmt: skip
    bar.close()
    if distributed.is_main():
        for stale in (runner.run_dir / "checkpoints").glob("eval-*.pt"):
            stale.unlink()
    return best


def final_trainings(plan: Plan, variants: list[Variant]) -> list[tuple[Variant, Training]]:
    """Every final training of ``variants``: each variant on each seed, in order."""
    f = plan.config.final
    return [
        (
            v,
            Training(
                f"final-{v.name}-seed{seed}",
                v.job_type,
                seed,
                v.den,
                v.epochs(f.epochs),
                "test",
                v.learn_den,
                v.arm,
                v.changes,
            ),
        )  # fmt: skip
        for v in variants
        for seed in plan.seeds_for(v)
    ]


class TrainingFailed(RuntimeError):
    """A final training raised in a worker; the one-line message names it and the error."""


def final(runner: Runner, variants: list[Variant], workers: Any = None) -> dict[str, Any]:
    """Train each variant on every final seed (skipping recorded ones), in this process or on ``workers``, as many
    at a time as there are, each recorded as it finishes; per variant, each seed's test metrics, their mean and
    standard error."""
    trainings = final_trainings(runner.plan, variants)
    pending = []
    for v, t in trainings:
        path = runner.run_dir / "trainings" / f"{t.name}.json"
        if (old := recorded_training(path)) is not None and old["den"] != t.den:  # a larger search, another density
            log.info(f"{t.name}: recorded for den={old['den']}, the search now gives {t.den}: training again")
            path.unlink(missing_ok=True)  # under torchrun every rank gets here
            (runner.run_dir / "checkpoints" / f"{t.name}.pt").unlink(missing_ok=True)
        if path.exists():
            continue
        start = time.time()
        res = runner.reuse_best_eval(t.name, t.seed, t.den) if v.name == "weighted" else None
        if res is not None:
            _record(runner, v, t, res, start)
        elif workers is None:
            _record(runner, v, t, runner.fit(t), start)
        else:
            pending.append((v, t))
    if pending:
        log.info(f"{len(pending)} final training(s) on {runner.plan.config.search.workers} workers")
        for index, res, seconds in workers(list(enumerate(t for _, t in pending))):
            if not isinstance(res, TrainResult):  # the worker's training raised (wconv.parallel.safe_evaluate)
                error = res.metrics.get("error", res.status)
                raise TrainingFailed(f"final training {pending[index][1].name} failed in its worker: {error}")
            _record(runner, *pending[index], res, time.time() - seconds)
    records = {t.name: read_json(runner.run_dir / "trainings" / f"{t.name}.json") for _, t in trainings}
    return summarise(runner.plan, variants, records)


def recorded_training(path: Path) -> dict[str, Any] | None:
    """The record of a final training, or None when it has none; a damaged one is set aside (and trained again)."""
    if not path.exists():
        return None
    if not distributed.is_main():  # rank 0 sets a damaged one aside, maybe while this rank reads it: trained again
        try:
            return read_json(path)
        except (DamagedRecord, FileNotFoundError):
            return None
    try:
        record = read_json(path)
    except DamagedRecord:
        set_aside(path, "is damaged (not valid JSON)")
        return None
    if not isinstance(record, dict) or not {"den", "status", "test", "seconds_per_step"} <= set(record):
        set_aside(path, "is damaged (not a training's record)")
        return None
    return record


def _record(runner: Runner, v: Variant, t: Training, res: TrainResult, started: float) -> None:
    if distributed.is_main():
        write_json(runner.run_dir / "trainings" / f"{t.name}.json", training_record(v, t, res, started))
    distributed.barrier()  # the other ranks read rank 0's record


def training_record(v: Variant, t: Training, res: TrainResult, started: float) -> dict[str, Any]:
    """What ``trainings/<name>.json`` holds (``started``: when it began; ``seconds``: its wall time)."""
    return {
        "name": t.name,
        "variant": v.name,
        "seed": t.seed,
        "den": t.den,
        "epochs": t.epochs,
        "status": res.status,
        "test": res.metrics,
        "seconds_per_step": res.seconds_per_step,
        "history": res.history,
        "densities": res.densities if v.learn_den else {},
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="milliseconds"),
        "seconds": round(time.time() - started, 3),
    }


def summarise(plan: Plan, variants: list[Variant], records: dict[str, dict]) -> dict[str, Any]:
    """Per variant: its settings, each seed's status and test metrics, the mean ± s.e. over the seeds that trained."""
    out = {}
    for v in variants:
        per_seed = {seed: records[f"final-{v.name}-seed{seed}"] for seed in plan.seeds_for(v)}
        ok = [r for r in per_seed.values() if r["status"] == "ok"]
        keys = sorted({k for r in ok for k in r["test"]})
        out[v.name] = {
            "den": v.den,
            "learned": v.learn_den,
            "arm": v.arm,
            "epochs": v.epochs(plan.config.final.epochs),
            "changes": v.changes,
            "seeds": {s: {"status": r["status"], **r["test"]} for s, r in per_seed.items()},
            "diverged": len(per_seed) - len(ok),
            "test": {k: stats.mean_sem([r["test"][k] for r in ok]) for k in keys} if ok else {},
            "seconds_per_step": statistics.median(r["seconds_per_step"] for r in per_seed.values()),
        }
    return out


def paired(variants: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    """Each non-standard variant minus the standard one at the same budget on the seeds where both trained: per
    seed, mean, standard error and the paired t-test's two-sided p-value (None with fewer than two seeds or no
    spread)."""
    out: dict[str, Any] = {}
    for variant, info in variants.items():
        name, scale = split_budget(variant)
        reference = "standard" if scale == 1 else f"standard@{scale:g}x"
        if name == "standard" or reference not in variants:
            continue
        base = variants[reference]["seeds"]
        both = [s for s, r in info["seeds"].items() if r["status"] == "ok" and base.get(s, {}).get("status") == "ok"]
        for metric in metrics:
            diffs = {s: info["seeds"][s][metric] - base[s][metric] for s in both if metric in info["seeds"][s]}
            if diffs:
                out.setdefault(variant, {})[metric] = {"per_seed": diffs, **stats.paired(list(diffs.values()))}
    return out


def finished(run_dir: Path, plan: Plan) -> dict[str, Any] | None:
    """The recorded result if this run is complete for these seeds, search budget, arms and budgets (reads only)."""
    path = run_dir / "result.json"
    if not path.is_file():
        return None
    result = read_json(path)
    if not isinstance(result, dict) or "objective" not in result:
        return None
    f = plan.config.final
    if result.get("final_seeds") != plan.seeds:
        return None
    budget = result.get("search") and result["search"].get("max_evals")
    if plan.searches and budget not in (None, plan.config.search.max_evals):
        return None
    if result.get("arms", []) != list(f.arms) or result.get("budgets", []) != list(f.budgets):
        return None  # controls added to a finished run: it resumes and trains them
    if result.get("budget_seeds", {}) != budget_seeds(plan):
        return None  # more seeds at a budget: it resumes and trains them
    return result


def budget_seeds(plan: Plan) -> dict[str, int]:
    """``final.budget_seeds`` as ``result.json`` holds it (JSON keys are strings: ``{"0.25": 3}``)."""
    return {f"{budget:g}": n for budget, n in sorted((plan.config.final.budget_seeds or {}).items())}


def summary_line(result: dict[str, Any], metric: str) -> str:
    """The run's outcome in one line: best density, each variant's mean ± s.e. and the paired difference."""
    parts = [f"best den {result['best_den']}"] if result.get("best_den") else []
    for variant, info in result["variants"].items():
        stat = info["test"].get(metric)
        parts.append(f"{variant} {metric} " + ("n/a" if not stat else _pm(stat)))
    for variant, diffs in result.get("paired", {}).items():
        if metric in diffs:
            d = diffs[metric]
            p = "" if d["p_value"] is None else f", p={d['p_value']:.3g}"
            parts.append(f"{variant} - standard {_pm(d, signed=True)} ({len(d['per_seed'])} paired seeds{p})")
    return "; ".join(parts)


def _pm(stat: dict[str, Any], signed: bool = False) -> str:
    mean = f"{stat['mean']:+.4g}" if signed else f"{stat['mean']:.4g}"
    return mean if stat.get("sem") is None else f"{mean} ± {stat['sem']:.2g}"
