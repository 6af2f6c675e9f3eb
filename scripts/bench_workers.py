"""Wall-clock of a smoke DIRECT-L search with search.workers=1 (NLopt, serial) and more, as a markdown table.

Each search runs here, in this process, from an empty run folder; only the search is timed (not the data, nor the
final trainings). Extra arguments are Hydra overrides, e.g. ``model=dncnn data=photos``. On a shared machine the
times depend on what else runs: quote the load with them.
"""

import argparse
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from wconv import data as wdata
from wconv.tracking.wandb_logger import NullTracker
from wconv.train import Runner, data_options, run_search, validate
from wconv.training import CONFIGS


def time_search(overrides: list[str], run_dir: Path) -> tuple[float, dict]:
    """Seconds of ``run_search`` for the composed config, and its result."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    validate(cfg)
    runner = Runner(cfg, run_dir, wdata.build(cfg.data.name, **data_options(cfg)), NullTracker())
    start = time.perf_counter()
    result = run_search(runner)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=12, help="search.max_evals")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (the defaults: profile=smoke, vgg11, digits)")
    args = parser.parse_args()
    base = ["profile=smoke", "logger=none", "progress=false", "search=direct_l", f"search.max_evals={args.evals}"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as scratch:
        for workers in args.workers:
            run_dir = Path(scratch) / f"workers{workers}"
            seconds, result = time_search([*base, *args.overrides, f"search.workers={workers}"], run_dir)
            rows.append((workers, result, seconds))
    serial = rows[0][2]
    print(f"| workers | evaluations | rounds | best objective | wall-clock (s) | speed-up vs workers={rows[0][0]} |")
    print("|---:|---:|---:|---:|---:|---:|")
    for workers, result, seconds in rows:
        print(
            f"| {workers} | {result['evaluations']} | {result['rounds']} | {result['objective']:.5g} "
            f"| {seconds:.1f} | {serial / seconds:.2f} |"
        )


if __name__ == "__main__":
    main()
