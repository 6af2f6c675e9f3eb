"""`make figures`: the papers' figures from recorded runs and the benchmark CSV, as PNG and PDF.

Reads records only; never trains. Figures whose records are absent are skipped with the reason; a run whose records
cannot be read is skipped with a warning; no runs directory, or no finished run in it, is an error (exit 1). No GUI
backend is involved: figures are drawn with matplotlib's object-oriented API and rendered by Agg (PNG) and the PDF
backend.
"""

import sys
from pathlib import Path

from wconv import profiles
from wconv.cli_checks import OneLineParser
from wconv.reporting.collect import no_runs
from wconv.reporting.figures import make_all
from wconv.sweep import runs_root


def main() -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", choices=profiles.names(), default="smoke", help="sets the defaults of --runs and --out"
    )
    parser.add_argument("--runs", type=Path, default=None, help="root of the run directories (default: the profile's)")
    parser.add_argument("--bench", type=Path, default=Path("results/bench/overhead.csv"))
    parser.add_argument("--out", type=Path, default=None, help="default results/figures/<profile>")
    args = parser.parse_args()
    args.runs = args.runs or runs_root(args.profile)
    args.out = args.out or Path("results/figures") / args.profile
    problem = no_runs(args.runs)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    paths = make_all(args.runs, args.bench, args.out)
    print(f"wrote {len(paths)} files to {args.out}")
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main())
