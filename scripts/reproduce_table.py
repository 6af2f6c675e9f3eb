"""`make reproduce-table`: run the papers' matrix (what is missing of it), then write the tables.

python scripts/reproduce_table.py --profile smoke            # offline stand-ins, tiny models, laptop CPU
python scripts/reproduce_table.py --profile paper            # full scale (a GPU, or --launcher slurm)
python scripts/reproduce_table.py --dry-run                  # list the runs and which are done
python scripts/reproduce_table.py --profile cpu --match nafnet --match k7  # only the runs whose name has one
python scripts/reproduce_table.py -- final.seeds=[0,1,2,3,4] # extra Hydra overrides for every run
WCONV_SBATCH_ARGS="--gres=none --mem=3G" python scripts/reproduce_table.py --launcher slurm  # sbatch options
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from wconv import profiles, sweep
from wconv.cli_checks import OneLineParser


def main() -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--profile", choices=profiles.names(), default="smoke", help="a file of configs/profile/")
    parser.add_argument("--launcher", choices=("local", "slurm"), default="local")
    parser.add_argument("--root", type=Path, default=None, help="where the runs live (default: sweep.runs_root)")
    parser.add_argument("--out", type=Path, default=None, help="where the tables go (default results/tables/<profile>)")
    parser.add_argument("--only", choices=("all", "tables", "study"), default="all")
    parser.add_argument("--match", action="append", default=[], help="only runs whose name contains this (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
    parser.add_argument("--search-gpus", type=int, default=4, help="slurm: GPUs of each search job (its workers)")
    parser.add_argument(
        "--max-running", type=int, default=None, help="slurm: at most this many tasks of an array at once"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides added to every run (after --)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    root = args.root or sweep.runs_root(args.profile)
    out = args.out or Path("results/tables") / args.profile
    jobs = []
    if args.only in ("all", "tables"):
        jobs += sweep.table_jobs(args.profile)
    if args.only in ("all", "study"):
        jobs += sweep.study_jobs(args.profile)
    if args.match:  # the tables are still written from every recorded run under root
        jobs = [job for job in jobs if any(m in job.name for m in args.match)]
    # Smoke and CPU runs log nowhere but their records (matrix.quiet); paper runs go to W&B (offline without a key).
    extra = (["logger=none", "progress=false"] if profiles.load(args.profile).quiet else []) + list(args.overrides)

    try:  # every job composed and checked before any runs: a bad override is one line, whatever the job
        configs = [sweep.checked_job(job, extra) for job in jobs]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.dry_run and (missing := sweep.missing_data(jobs, configs)):  # nothing runs or queues without data
        for line in missing:
            print(f"error: {line}", file=sys.stderr)
        return 2
    if args.dry_run:
        total = 0
        for job, cfg in zip(jobs, configs, strict=True):
            path = sweep.run_dir(job, root, cfg)
            epochs = sweep.epochs_of(cfg)
            total += epochs
            state = "done   " if sweep.is_done(path, cfg) else "missing"
            print(f"{state} {epochs:>6} epochs  {path}  {' '.join(job.overrides)}")
        print(f"{len(jobs)} runs, {total} training epochs in all")
        return 0
    start = time.perf_counter()
    failed = None
    if args.launcher == "local":
        from wconv.training import StopRequested, stop_on_signals

        with stop_on_signals():  # SIGTERM, SIGUSR2 (a job's time limit), Ctrl-C: the running training checkpoints
            try:
                sweep.run_local(jobs, root, extra)
            except sweep.SweepError as err:  # the other runs ran: their tables are written all the same
                failed = err
            except StopRequested as stop:
                print(f"stopped on {stop}: the running training saved a checkpoint; run the same command to "
                      "resume", file=sys.stderr)  # fmt: skip
                return 128 + stop.signum
            except KeyboardInterrupt:  # a second Ctrl-C: no checkpoint waited for
                print("interrupted: what was recorded is intact; run the same command to resume", file=sys.stderr)
                return 130
    else:
        from wconv.slurm import SlurmError, run_slurm

        try:
            run_slurm(jobs, root, extra, search_gpus=args.search_gpus, max_running=args.max_running,
                      profile=args.profile)  # fmt: skip
        except SlurmError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    from wconv.reporting.tables import write_tables

    for path in write_tables(root, out):
        print(f"wrote {path}")
    print(f"reproduce-table ({args.profile}, {args.launcher}): {time.perf_counter() - start:.0f} s")
    if failed:
        print(f"error: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
