"""The outer loop of the first paper: DIRECT-L (NLopt ``GN_DIRECT_L``) over the density vector.

Each evaluation is a whole training (the inner SGD loop) that returns a validation objective. Evaluations are
recorded one JSON line each; DIRECT-L is deterministic, so a restarted search proposes the same points and the
recorded ones are replayed without training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nlopt
import numpy as np

from wconv.tracking.identity import RecordMismatch
from wconv.tracking.records import append_jsonl, read_jsonl


@dataclass
class Evaluation:
    """What one inner training returns to the search."""

    objective: float
    status: str = "ok"  # "ok" or "diverged"
    metrics: dict[str, Any] = field(default_factory=dict)


def check_bounds(bounds: Sequence[Sequence[float]], n: int) -> list[list[float]]:
    """``n`` pairs ``[low, high]`` with ``0 < low < high``; one clear error otherwise."""
    if len(bounds) != n:
        raise ValueError(f"search.bounds has {len(bounds)} pair(s), the kernel needs {n} (one per density value)")
    out = []
    for i, pair in enumerate(bounds):
        if len(pair) != 2:
            raise ValueError(f"search.bounds[{i}] must be a [low, high] pair, got {list(pair)}")
        low, high = float(pair[0]), float(pair[1])
        if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high <= low:
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
    done = read_jsonl(record)
    history: list[dict] = []

    def objective(x: np.ndarray, grad: np.ndarray) -> float:
        index = len(history)
        if index >= max_evals:  # NLopt asks for a second point even with maxeval 1: stop it there
            opt.force_stop()
            return float(penalty)
        den = [float(v) for v in x]
        if index < len(done):
            row = done[index]
            if not np.allclose(row["den"], den, rtol=1e-9, atol=1e-12):
                raise RecordMismatch(
                    f"{record}: evaluation {index} was recorded at den={row['den']} but the search now proposes "
                    f"{den}; the record belongs to another search (bounds?): use another run directory"
                )
        else:
            start = time.perf_counter()
            result = evaluate(index, den)
            diverged = result.status != "ok" or not math.isfinite(result.objective)
            row = {
                "index": index,
                "den": den,
                "objective": float(penalty if diverged else result.objective),
                "status": "diverged" if diverged else "ok",
                "metrics": result.metrics,
                "seconds": time.perf_counter() - start,
            }
            append_jsonl(record, row)
        history.append(row)
        if on_result is not None:
            on_result(index, row)
        return float(row["objective"])

    lows, highs = zip(*check_bounds(bounds, len(bounds)), strict=True)
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
    ok = [r for r in history if r["status"] == "ok"]
    best = min(ok or history, key=lambda r: (r["objective"], r["index"]))
    return {
        "den": best["den"],
        "objective": best["objective"],
        "index": best["index"],
        "evaluations": len(history),
        "max_evals": int(max_evals),
        "status": "ok" if ok else "diverged",
    }
