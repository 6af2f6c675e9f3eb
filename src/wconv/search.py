"""The outer loop of the first paper: DIRECT-L (NLopt ``GN_DIRECT_L``) over the density vector.

Each evaluation is a whole training (the inner SGD loop) that returns a validation objective. Evaluations are
recorded one JSON line each, keyed by their index; DIRECT-L is deterministic, so a restarted search proposes the
same points and the recorded ones are replayed without training. ``direct_l`` is NLopt's serial search;
``direct_l_batched`` hands each iteration's new centres (``wconv.direct``) to workers that train them side by side.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nlopt
import numpy as np

from wconv.direct import DirectL
from wconv.tracking.identity import RecordMismatch
from wconv.tracking.records import append_jsonl, read_jsonl


@dataclass
class Evaluation:
    """What one inner training returns to the search."""

    objective: float
    status: str = "ok"  # "ok", "diverged", or "failed" (the evaluation raised; batched search only)
    metrics: dict[str, Any] = field(default_factory=dict)


# What workers do with one batch: train every (index, den) and yield (index, evaluation, seconds) as each finishes.
EvaluateBatch = Callable[[list[tuple[int, list[float]]]], Iterable[tuple[int, Evaluation, float]]]


def check_bounds(bounds: Sequence[Sequence[float]], n: int, positive: bool = True) -> list[list[float]]:
    """``n`` pairs ``[low, high]`` with ``low < high`` (and ``0 < low`` for density values, ``positive``); one
    clear error otherwise."""
    if len(bounds) != n:
        raise ValueError(f"search.bounds has {len(bounds)} pair(s), the kernel needs {n} (one per density value)")
    out = []
    for i, pair in enumerate(bounds):
        if len(pair) != 2:
            raise ValueError(f"search.bounds[{i}] must be a [low, high] pair, got {list(pair)}")
        low, high = float(pair[0]), float(pair[1])
        if not (math.isfinite(low) and math.isfinite(high)) or (positive and low <= 0) or high <= low:
            raise ValueError(f"search.bounds[{i}] = [{low}, {high}]: need 0 < low < high (density values are positive)")
        out.append([low, high])
    return out


def direct_l(
    evaluate: Callable[[int, list[float]], Evaluation],
    bounds: Sequence[Sequence[float]],
    max_evals: int,
    record: Path,
    penalty: float,
    ftol_rel: float = 0.0,
    xtol_rel: float = 0.0,
    on_result: Callable[[int, dict], None] | None = None,
) -> dict[str, Any]:
    """Minimise ``evaluate(index, den)`` over the box; return the best record (den, objective, index).

    ``record`` (JSON lines) holds one line per finished evaluation; lines already there are replayed in order
    and must match the proposed points. Diverged trainings count as ``penalty`` (NLopt aborts on NaN/inf).
    """
    if max_evals < 1:
        raise ValueError(f"search.max_evals must be at least 1, got {max_evals}")
    done = recorded(record)
    history: list[dict] = []
    raised: list[BaseException] = []

    def objective(x: np.ndarray, grad: np.ndarray) -> float:
        try:
            return step(x)
        except BaseException as err:  # NLopt would call again after an exception: stop it, raise it afterwards
            raised.append(err)
            opt.force_stop()
            return float(penalty)

    def step(x: np.ndarray) -> float:
        index = len(history)
        if index >= max_evals:  # NLopt asks for a second point even with maxeval 1: stop it there
            opt.force_stop()
            return float(penalty)
        den = [float(v) for v in x]
        if index in done:
            row = replay(done[index], den, record)
        else:
            start = time.perf_counter()
            row = make_row(index, den, evaluate(index, den), time.perf_counter() - start, penalty)
            append_jsonl(record, row)
        history.append(row)
        if on_result is not None:
            on_result(index, row)
        return float(row["objective"])

    lows, highs = zip(*check_bounds(bounds, len(bounds), positive=False), strict=True)
    opt = nlopt.opt(nlopt.GN_DIRECT_L, len(lows))
    opt.set_lower_bounds(list(lows))
    opt.set_upper_bounds(list(highs))
    opt.set_min_objective(objective)
    opt.set_maxeval(int(max_evals))
    if ftol_rel > 0:
        opt.set_ftol_rel(ftol_rel)
    if xtol_rel > 0:
        opt.set_xtol_rel(xtol_rel)
    # x0 is ignored by DIRECT (it starts at the box centre) but NLopt requires one inside the box.
    try:
        opt.optimize([(lo + hi) / 2 for lo, hi in zip(lows, highs, strict=True)])
    except nlopt.ForcedStop:
        pass
    if raised:
        raise raised[0]
    return summary(history, rounds=len(history), max_evals=max_evals)


def recorded(record: Path) -> dict[int, dict]:
    """The finished evaluations of ``record`` by index (a batched search writes them in the order they finish); a
    damaged line is set aside (``read_jsonl``) and its evaluation trained again."""
    return {int(row["index"]): row for row in read_jsonl(record, valid=is_evaluation)}


def is_evaluation(row: dict) -> bool:
    """Whether a record line holds what replaying an evaluation needs."""
    return (
        isinstance(row.get("index"), int)
        and isinstance(row.get("den"), list)
        and isinstance(row.get("objective"), (int, float, str))
        and row.get("status") in ("ok", "diverged", "failed")
    )


def replay(row: dict, den: list[float], record: Path) -> dict:
    """The recorded ``row`` for the point the search proposes now; RecordMismatch when it was another point."""
    if not np.allclose(row["den"], den, rtol=1e-9, atol=1e-12):
        raise RecordMismatch(
            f"{record}: evaluation {row['index']} was recorded at den={row['den']} but the search now proposes "
            f"{den}; the record belongs to another search: other bounds (use another run directory), or "
            "search.workers switched between 1 and more where their orders part (resume with the workers it began with)"
        )
    return row


def make_row(index: int, den: list[float], result: Evaluation, seconds: float, penalty: float) -> dict[str, Any]:
    """One line of the record; a diverged or failed evaluation (or a non-finite objective) counts as ``penalty``."""
    bad = result.status != "ok" or not math.isfinite(result.objective)
    return {
        "index": index,
        "den": den,
        "objective": float(penalty if bad else result.objective),
        "status": (result.status if result.status != "ok" else "diverged") if bad else "ok",
        "metrics": result.metrics,
        "seconds": seconds,
    }


def summary(history: list[dict], rounds: int, max_evals: int) -> dict[str, Any]:
    """The search's result: the best evaluation that trained (the earliest among equal objectives; the first point
    when none trained, with status "diverged"), the counts."""
    ok = [r for r in history if r["status"] == "ok"]
    best = min(ok or history, key=lambda r: (r["objective"], r["index"]))
    return {
        "den": best["den"],
        "objective": best["objective"],
        "index": best["index"],
        "evaluations": len(history),
        "max_evals": int(max_evals),
        "status": "ok" if ok else "diverged",
        "rounds": rounds,
    }


def direct_l_batched(
    evaluate_batch: EvaluateBatch,
    bounds: Sequence[Sequence[float]],
    max_evals: int,
    record: Path,
    penalty: float,
    on_result: Callable[[int, dict], None] | None = None,
) -> dict[str, Any]:
    """DIRECT-L by rounds (``wconv.direct.DirectL``): each round's points not yet recorded go to ``evaluate_batch``
    together, and each finished evaluation is recorded (with its ``round``) as it comes, in any order.

    Recorded points are replayed by index and must match the proposed ones; a diverged or failed evaluation counts
    as ``penalty`` and the rest of its round goes on. Returns the best record as ``direct_l`` does.
    """
    if max_evals < 1:
        raise ValueError(f"search.max_evals must be at least 1, got {max_evals}")
    done = recorded(record)
    search = DirectL(check_bounds(bounds, len(bounds), positive=False), max_evals)
    history: list[dict] = []
    round_ = 0
    while batch := search.ask():
        first = len(history)
        rows: dict[int, dict] = {}
        todo = []
        for index, den in enumerate(batch, first):
            if index in done:
                rows[index] = replay(done[index], den, record)
                if on_result is not None:
                    on_result(index, rows[index])
            else:
                todo.append((index, den))
        points = dict(todo)
        for index, result, seconds in evaluate_batch(todo) if todo else ():
            rows[index] = {"index": index, "round": round_, **make_row(index, points[index], result, seconds, penalty)}
            append_jsonl(record, rows[index])
            if on_result is not None:
                on_result(index, rows[index])
        ordered = [rows[index] for index in range(first, first + len(batch))]
        search.tell([row["objective"] for row in ordered])
        history += ordered
        round_ += 1
    return summary(history, rounds=round_, max_evals=max_evals)
