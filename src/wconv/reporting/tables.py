"""Write the results tables as CSV (numbers), markdown and LaTeX (formatted), deterministically.

A smoke table says so first: the CSV's first line is a ``# ...`` comment (read it with
``pandas.read_csv(path, comment="#")``), the markdown's first line is the note, the LaTeX starts with a
``%`` comment and repeats the note in its caption.
"""

from __future__ import annotations

from pathlib import Path

from wconv.reporting.aggregate import DECOMPOSED, load_reference
from wconv.reporting.collect import find_runs
from wconv.reporting.formatting import Table, build
from wconv.tracking.records import write_text

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "~": r"$\sim$"}


def to_csv(table: Table) -> str:
    """The numbers, one row per table row (blank: not applicable), after the smoke comment line if any."""
    body = table.data.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    return (f"# {table.note}\n" if table.note else "") + body


def to_markdown(table: Table) -> str:
    """The note (smoke only), the caption, the formatted table and its footnotes."""
    lines = [table.note, ""] if table.note else []
    columns = list(table.display.columns)
    align = ["left" if c in ("model", "data", "kernel", "conv", "den") else "right" for c in columns]
    grid = table.display.to_markdown(index=False, disable_numparse=True, colalign=align)
    lines += [table.caption, "", grid, ""] + [f"- {note}" for note in table.footnotes]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell or caption."""
    out = "".join(_LATEX_ESCAPES.get(c, c) for c in str(text))
    for symbol, command in _LATEX_SYMBOLS.items():
        out = out.replace(symbol, command)
    return out


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment; the caption carries the footnotes and, for smoke, the note."""
    columns = list(table.display.columns)
    spec = "".join("l" if c in ("model", "data", "kernel", "conv", "den") else "r" for c in columns)
    caption = " ".join([table.caption, *table.footnotes])
    if table.note:
        caption = rf"\textbf{{{latex_escape(table.note)}}} " + latex_escape(caption)
    else:
        caption = latex_escape(caption)
    lines = [f"% {table.note}"] if table.note else []
    lines += [
        r"% needs \usepackage{booktabs} and \usepackage{graphicx}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{tab:{table.name}}}",
        r"\resizebox{\linewidth}{!}{%",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(v) for v in row) + r" \\" for row in table.display.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


RENDERS = ((".csv", to_csv), (".md", to_markdown), (".tex", to_latex))


def write_table(table: Table, out_dir: Path) -> list[Path]:
    """``<out_dir>/<name>.csv``, ``.md`` and ``.tex``; returns their paths."""
    return _write({Path(out_dir) / f"{table.name}{suffix}": render(table) for suffix, render in RENDERS})


def _write(files: dict[Path, str]) -> list[Path]:
    """Each file atomically, once every text is made: a call writes all its files or (failing before) none."""
    for path, text in files.items():
        write_text(path, text)
    return list(files)


def write_tables(
    runs_root: Path, out_dir: Path, reference_csv: Path = Path("results/paper_reference.csv")
) -> list[Path]:
    """Aggregate every run under ``runs_root`` into one table per ``table`` name of its records; write them all,
    or none when one cannot be made."""
    runs = find_runs(runs_root)
    if not runs:
        print(f"no finished run (result.json) under {runs_root}: no table written")
        return []
    reference = load_reference(reference_csv)
    files = {}
    names = {r.table for r in runs} | (
        {"budgets"} if any("@" in v for r in runs for v in r.result["variants"]) else set()
    )
    if any(set(r.result.get("arms") or []) & set(DECOMPOSED) for r in runs):
        names.add("decomposition")
    if any(r.table == "density_study" and r.detail for r in runs):
        names.add("families")
    if any(any((r.path / "metrics").glob("*.csv")) for r in runs):
        names.add("compute")  # records older than the per-epoch metrics files cannot say what they cost
    for name in sorted(names):
        table = build(runs, name, reference)
        if table is None:
            print(f"table {name}: no row to write")
            continue
        files |= {Path(out_dir) / f"{table.name}{suffix}": render(table) for suffix, render in RENDERS}
    return _write(files)
