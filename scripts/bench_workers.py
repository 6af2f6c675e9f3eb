"""Wall-clock of a smoke DIRECT-L search with search.workers=1 (NLopt, serial) and more, as a markdown table.

Each search runs here, in this process, from an empty run folder; only the search is timed (not the data, nor the
final trainings). Extra arguments are Hydra overrides, e.g. ``model=dncnn data=photos``. On a shared machine the
times depend on what else runs: quote the load with them.

python scripts/bench_workers.py                      # workers 1 and 2, local processes, median of 3 runs
python scripts/bench_workers.py --same-threads       # workers=1 on one worker's threads: the rounds' speed-up only
python scripts/bench_workers.py --slurm --repeats 1  # workers > 1 as SLURM jobs (SLURM_CONF: scripts/slurm-cluster)
"""

import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from wconv import parallel, stages
from wconv.cli_checks import OneLineParser
from wconv.parallel import cores
from wconv.plan import make
from wconv.runner import open_runner
from wconv.training import CONFIGS


def time_search(overrides: list[str], run_dir: Path) -> tuple[float, dict]:
    """Seconds of the search (``wconv.stages.search``) for the composed config, and its result."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    plan = make(cfg)
    runner = open_runner(plan, run_dir)
    start = time.perf_counter()
    with parallel.started(plan, run_dir) as workers:
        result = stages.search(runner, workers)
    return time.perf_counter() - start, result


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=12, help="search.max_evals")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="runs per worker count (the median is shown)")
    parser.add_argument(
        "--slurm",
        action="store_true",
        help="workers > 1 as one SLURM job per evaluation (search.launcher=submitit; SLURM_CONF names the cluster), "
        "each job cores // workers CPUs and no GPU; workers=1 stays in this process",
    )
    parser.add_argument(
        "--same-threads",
        action="store_true",
        help="train workers=1 with one worker's threads (cores // max workers): the search's own speed-up, as with "
        "a GPU per worker, apart from the machine's intra-op threading",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (the defaults: profile=smoke, vgg11, digits)")
    args = parser.parse_args()
    base = ["profile=smoke", "logger=none", "progress=false", "search=direct_l", f"search.max_evals={args.evals}"]
    default_threads = torch.get_num_threads()
    threads = max(1, cores() // max(args.workers)) if args.same_threads else default_threads
    times: dict[int, list[float]] = {w: [] for w in args.workers}
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as scratch:
        for repeat in range(args.repeats):  # interleaved: a change of load hits every worker count alike
            for workers in args.workers:
                run_dir = Path(scratch) / f"workers{workers}-{repeat}"
                launcher = []
                if args.slurm and workers > 1:
                    launcher = ["search.launcher=submitit", "search.submitit.cluster=slurm"]
                    launcher += [
                        "search.submitit.gpus_per_node=0",
                        f"search.submitit.cpus_per_task={max(1, cores() // workers)}",
                    ]
                    launcher += ["search.submitit.mem_gb=2", "search.submitit.timeout_min=30"]
                overrides = [*base, *launcher, *args.overrides, f"search.workers={workers}"]
                torch.set_num_threads(threads if workers == 1 else default_threads)
                seconds, results[workers] = time_search(overrides, run_dir)
                times[workers].append(seconds)
    serial = statistics.median(times[args.workers[0]])
    where = "one SLURM job per evaluation" if args.slurm else "local processes"
    print(f"workers > 1: {where}; workers=1: {threads} thread(s); median of {args.repeats} run(s)")
    print(
        "| workers | evaluations | rounds | best objective | wall-clock (s), median (min-max) "
        f"| ratio to workers={args.workers[0]} |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for workers in args.workers:
        result, seconds = results[workers], statistics.median(times[workers])
        print(
            f"| {workers} | {result['evaluations']} | {result['rounds']} | {result['objective']:.5g} "
            f"| {seconds:.1f} ({min(times[workers]):.1f}-{max(times[workers]):.1f}) | {seconds / serial:.2f} |"
        )


if __name__ == "__main__":
    main()
