"""Wall-clock rounds of batched DIRECT-L with N workers, and its best value next to NLopt's, as a markdown table.

A round runs up to N points of one batch side by side, so a batch of b points takes ceil(b / N) rounds. The problems
are the test problems of tests/test_direct.py; the per-division column is the mode that repeats NLopt exactly.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from direct_problems import PROBLEMS, nlopt_points  # noqa: E402

from wconv.cli_checks import OneLineParser
from wconv.direct import minimize  # noqa: E402

WORKERS = (1, 2, 4, 8)


def on_batches(f):
    """``f`` applied to every point of a batch."""
    return lambda batch: [f(x) for x in batch]


def main() -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, nargs="+", default=[20, 50], help="evaluation budgets")
    args = parser.parse_args()
    print(
        "| problem | d | evals | batches | "
        + " | ".join(f"rounds, N={n}" for n in WORKERS)
        + " | per-division rounds, N=8 | best, batched | best, NLopt (serial) |"
    )
    print("|---|---:|---:|---:|" + "---:|" * len(WORKERS) + "---:|---:|---:|")
    for name, (f, bounds) in PROBLEMS.items():
        for evals in args.evals:
            batched = minimize(on_batches(f), bounds, evals)
            exact = minimize(on_batches(f), bounds, evals, per_division=True)
            serial = min(f(x) for x in nlopt_points(f, bounds, evals))
            rounds = " | ".join(str(batched.wall_rounds(n)) for n in WORKERS)
            print(
                f"| {name} | {len(bounds)} | {evals} | {max(batched.rounds) + 1} | {rounds} "
                f"| {exact.wall_rounds(8)} | {batched.best[1]:.6g} | {serial:.6g} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
