"""Tables and figures made only from recorded results (run directories); nothing here trains."""

from wconv.reporting.aggregate import aggregate, density_study, load_reference
from wconv.reporting.collect import Run, find_runs, load_run
from wconv.reporting.formatting import SMOKE_NOTE, Table, build
from wconv.reporting.tables import to_csv, to_latex, to_markdown, write_table, write_tables

__all__ = [
    "SMOKE_NOTE",
    "Run",
    "Table",
    "aggregate",
    "build",
    "density_study",
    "find_runs",
    "load_reference",
    "load_run",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_table",
    "write_tables",
]
