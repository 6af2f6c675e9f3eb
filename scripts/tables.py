"""`make tables`: aggregate every finished run under a root into the results tables (CSV, markdown, LaTeX).

Reads records only (result.json, config.yaml, trainings/); never trains. Writes <out>/<table>.{csv,md,tex}. A run
whose records cannot be read is skipped with a warning; no runs directory, or no finished run in it, is an error.
"""

import sys
from pathlib import Path

from wconv import profiles
from wconv.cli_checks import OneLineParser
from wconv.reporting import write_tables
from wconv.reporting.collect import no_runs
from wconv.sweep import runs_root


def main() -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", choices=profiles.names(), default="smoke", help="sets the defaults of --runs and --out"
    )
    parser.add_argument("--runs", type=Path, default=None, help="root of the run directories (default: the profile's)")
    parser.add_argument("--out", type=Path, default=None, help="default results/tables/<profile>")
    parser.add_argument("--reference", type=Path, default=Path("results/paper_reference.csv"))
    args = parser.parse_args()
    args.runs = args.runs or runs_root(args.profile)
    args.out = args.out or Path("results/tables") / args.profile
    problem = no_runs(args.runs)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    paths = write_tables(args.runs, args.out, args.reference)
    for path in paths:
        print(f"wrote {path}")
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main())
