"""From the numbers of a results table to what a reader sees: mean ± se, units, the papers' qualifiers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from wconv import profiles, tasks
from wconv.reporting.aggregate import (
    aggregate,
    budget_table,
    compute_time,
    decomposition,
    density_study,
    families,
    paper_value,
)
from wconv.reporting.collect import Run

SMOKE_NOTE = profiles.load("smoke").note  # the smoke tables' first line (tests look for it)


CAPTIONS = {
    "classification": "Classification: test accuracy per model and convolution.",
    "denoising": "Denoising: test PSNR and SSIM per model and convolution, beside the noisy input's PSNR.",
    "density_study": "Density study (P1): test loss of the standard convolution and of each other conv per setting.",
    "budgets": "Gain against training length: each conv and the standard one trained again at m times the budget "
    "(the density found once by the search), paired on the same seeds; change per doubling: how far the conv moved "
    "per doubling of its epochs since the budget before, on the seeds both budgets trained.",
    "decomposition": "What part of the weighted conv's training does the work: the standard conv started at "
    "weight*phi (init only), stepped per tap as the weighted conv is (step only), with that step's shape at mean 1 "
    "(SGS, Spatial Gradient Scaling's form) or its mean size on every tap (lr-matched), both (preconditioned), "
    "and the lr-tuned standard conv; each paired against the standard conv on the same seeds.",
    "compute": "What the runs cost, measured from their records: per run, its search and final trainings, the "
    "epochs they trained and the hours those epochs took (training steps only, on the machine and load that made "
    "them: the run's run.json says which and when).",
    "families": "The density study's searches: the free density of the papers, each one-parameter family (one "
    "value per kernel, DIRECT-L with the same evaluations) and the free density searched with shorter trainings; "
    "each paired against the standard conv and the free density on the same seeds; fit: the family's least-squares "
    "fit to the free profile alfa and its root-mean-square residual.",
}
FOOTNOTES = [
    "Metrics: mean ± standard error over the final seeds (no error with one seed).",
    "Δ vs standard: the paired difference against the standard convolution on the same seeds, mean ± standard "
    "error, with the paired t-test's p-value.",
    "overhead: median time per training step against the standard convolution of the same model, data and setting.",
    "den: the density found by DIRECT-L or fixed, outermost value first; ~: learned, mean over layers and seeds.",
    "Controls: preconditioned = the standard conv started at weight*phi with per-tap step scaling (the weighted "
    "training written as a standard conv); lr-tuned = the standard conv with its learning rate searched by DIRECT-L "
    "(as many evaluations as the density search); standard k-2 = the standard conv with the next smaller kernel.",
    "best: the row with the best mean of the papers' metric (the study: loss) in its group; ≈ best: its paired "
    "difference with that row is not significant (p >= 0.05).",
]


@dataclass
class Table:
    """A results table: its numbers (the CSV), the formatted view (markdown, LaTeX) and what a reader must know."""

    name: str
    data: pd.DataFrame
    display: pd.DataFrame
    caption: str
    footnotes: list[str]
    smoke: bool
    note: str = ""  # what a reader must know first (smoke or cpu profile); blank for the paper profile


def build(runs: list[Run], table: str, reference: pd.DataFrame) -> Table | None:
    """The table named ``table`` from ``runs``, or None when no run belongs to it."""
    if table == "budgets":
        frame = budget_table(runs)
    elif table == "decomposition":
        frame = decomposition(runs)
    elif table == "families":
        frame = families(runs)
    elif table == "compute":
        frame = compute_time(runs)
    elif table == "density_study":
        frame = density_study(runs, reference)
    else:
        frame = aggregate(runs, table, reference)
    if frame.empty:
        return None
    cited = reference[reference["table"] == table].drop_duplicates("paper")
    sources = [f"paper ({row.paper}): {row.source}." for row in cited.itertuples()]
    caption = CAPTIONS.get(table, f"{table}: test metrics per model and convolution.")
    notes = [_note(name) for name in sorted(set(frame["profile"]))]
    smoke = SMOKE_NOTE in notes
    note = SMOKE_NOTE if smoke else next((n for n in notes if n), "")
    own = [r for r in runs if r.table == table] or [r for r in runs if r.table == "density_study"] or runs
    task = tasks.get(own[0].result["task"])
    footnotes = [] if table == "compute" else FOOTNOTES + sources
    return Table(table, frame, display(frame, table, reference, task), caption, footnotes, smoke, note)


def _note(profile: str) -> str:
    """The note of a profile's tables (its file's ``matrix.note``); records older than profiles were smoke runs; a
    profile without a file is not the papers'."""
    if not profile:
        return SMOKE_NOTE
    try:
        return profiles.load(profile).note
    except ValueError:
        return f"PROFILE {profile.upper()}: a scale this checkout no longer defines; not the papers' scale."


def mean_se(mean: float, sem: float, decimals: int) -> str:
    """``12.34 ± 0.56``; the mean alone for one seed; ``diverged`` when no seed finished."""
    if math.isnan(mean):
        return "diverged"
    return f"{mean:.{decimals}f}" + (f" ± {sem:.{decimals}f}" if not math.isnan(sem) else "")


def _signed(value: float) -> str:
    return "" if pd.isna(value) else f"{value:+.1f}"


def _plain(value: object) -> str:
    return "" if value is None or pd.isna(value) else f"{value:g}" if isinstance(value, float) else str(value)


def _seeds(row: pd.Series) -> str:
    diverged = int(row.get("diverged", 0))
    return f"{row['seeds']}" + (f" (+{diverged} diverged)" if diverged else "")


def _paper(reference: pd.DataFrame, table: str, row: pd.Series, metric: str) -> str:
    ref = paper_value(reference, table, row["data"], row["model"], row["conv"], metric)
    return "" if ref is None else f"{ref['qualifier']} {ref['value']:g}".strip()


def display(frame: pd.DataFrame, table: str, reference: pd.DataFrame, task: tasks.Task) -> pd.DataFrame:
    """The formatted view of a table's numbers: one string per cell, blank where there is nothing to say."""
    if table == "density_study":
        return pd.DataFrame([_study_row(row, table, reference) for _, row in frame.iterrows()])
    if table == "budgets":
        return pd.DataFrame([_budget_row(row) for _, row in frame.iterrows()])
    if table == "decomposition":
        return pd.DataFrame([_decomposition_row(row) for _, row in frame.iterrows()]).fillna("")  # one task's cells
    if table == "families":
        return pd.DataFrame([_family_row(row) for _, row in frame.iterrows()])
    if table == "compute":
        shown = frame.drop(columns="profile").astype({"search_trainings": int, "final_trainings": int})
        return shown.assign(hours=shown["hours"].map(lambda h: f"{h:.2f}"))
    return pd.DataFrame([_task_row(row, table, reference, task) for _, row in frame.iterrows()])


def _task_row(row: pd.Series, table: str, reference: pd.DataFrame, task: tasks.Task) -> dict[str, str]:
    out = {
        "model": row["model"],
        "data": row["data"],
        "kernel": f"{row['kernel']}x{row['kernel']}",
        "conv": row["conv"],
        "den": row["den"],
        "evals": _plain(row["evals"]),
        "seeds": _seeds(row),
    }
    for metric in task.metrics:
        columns = [c.removesuffix("_mean") for c in row.index if c.endswith("_mean") and not c.startswith("d_")]
        for key in [c for c in columns if c == metric.key or c.startswith(f"{metric.key}@")]:
            title = metric.label if key == metric.key else f"{metric.label} {key.split('@')[1]}"
            out[title] = mean_se(row[f"{key}_mean"], row[f"{key}_sem"], metric.digits)
            if f"d_{key}_mean" in row:
                out[f"Δ {title} vs standard"] = paired_text(row, f"d_{key}", metric.digits)
    paper_title = "paper " + next(m.label for m in task.metrics if m.key == task.paper_metric)
    out["best"] = row.get("best", "")
    out["ms/step"] = "" if pd.isna(row["ms_per_step"]) else f"{row['ms_per_step']:.1f}"
    out["overhead (%)"] = _signed(row["overhead_pct"])
    out[paper_title] = _paper(reference, table, row, task.paper_metric)
    out["paper overhead (%)"] = _paper(reference, table, row, "overhead")
    return out


def paired_text(row: pd.Series, prefix: str, decimals: int) -> str:
    """``+0.76 ± 0.08 (p=0.003)``: a paired difference, blank for the standard row."""
    if pd.isna(row[f"{prefix}_mean"]):
        return ""
    text = mean_se(row[f"{prefix}_mean"], row[f"{prefix}_sem"], decimals)
    text = text if text.startswith("-") else "+" + text
    return text + ("" if pd.isna(row[f"{prefix}_p"]) else f" (p={row[f'{prefix}_p']:.2g})")


def _decimals(row: pd.Series) -> int:
    """Decimals that show three significant digits of the smaller loss of a density-study row (at least 4)."""
    smallest = min(abs(row["standard_loss_mean"]), abs(row["weighted_loss_mean"]))
    return 4 if not 0 < smallest < 1 else max(4, 2 - math.floor(math.log10(smallest)))


def _study_row(row: pd.Series, table: str, reference: pd.DataFrame) -> dict[str, str]:
    return {
        "model": row["model"],
        "data": row["data"],
        "kernel": f"{row['kernel']}x{row['kernel']}",
        "lr": _plain(row["lr"]),
        "batch": _plain(row["batch_size"]),
        "depth": _plain(row["depth"]),
        "conv": row["conv"],
        "standard loss": mean_se(row["standard_loss_mean"], row["standard_loss_sem"], _decimals(row)),
        "loss": mean_se(row["weighted_loss_mean"], row["weighted_loss_sem"], _decimals(row)),
        "loss reduction (%)": _signed(row["reduction_pct"]),
        "Δ loss vs standard": paired_text(row, "d_loss", _decimals(row)) if "d_loss_mean" in row else "",
        "best": row.get("best", ""),
        "den": row["den"],
        "evals": _plain(row["evals"]),
        "seeds": _seeds(row),
        "overhead (%)": _signed(row["overhead_pct"]),
        "paper loss reduction (%)": _paper(reference, table, row, "reduction"),
        "paper overhead (%)": _paper(reference, table, row, "overhead"),
    }


def _loss_decimals(loss: float) -> int:
    """Decimals that show a loss's first three significant digits (4 at least; 4 when no seed finished)."""
    return 4 if pd.isna(loss) or loss == 0 else max(4, 2 - math.floor(math.log10(abs(loss))))


def _budget_row(row: pd.Series) -> dict[str, str]:
    decimals = 2 if row["metric"] != "loss" else _loss_decimals(row["mean"])
    return {
        "table": row["table"],
        "model": row["model"],
        "data": row["data"],
        "kernel": f"{row['kernel']}x{row['kernel']}",
        "conv": row["conv"],
        "budget": f"{row['budget']:g}x",
        "epochs": _plain(row["epochs"]),
        "metric": row["metric"],
        "value": mean_se(row["mean"], row["sem"], decimals),
        "Δ vs standard (same budget)": paired_text(row, "d", decimals),
        "change per doubling": "" if pd.isna(row["per_doubling"]) else f"{row['per_doubling']:+.{decimals}f}",
        "seeds": str(row["seeds"]),
    }


def _setting(row: pd.Series) -> str:
    parts = [f"{k} {_plain(row[c])}" for k, c in (("lr", "lr"), ("batch", "batch_size"), ("depth", "depth"))]
    return ", ".join(p for p in parts if not p.endswith(" "))


def _decomposition_row(row: pd.Series) -> dict[str, str]:
    # the row's own metric (a table of several tasks has a column for each: the others are blank in this row)
    metrics = [c.removesuffix("_mean") for c in row.index if c.endswith("_mean") and not c.startswith(("d_", "loss"))]
    metric = next((m for m in metrics if not pd.isna(row[f"{m}_mean"])), metrics[0])
    loss = _loss_decimals(row["loss_mean"])
    return {
        "model": row["model"],
        "kernel": f"{row['kernel']}x{row['kernel']}",
        "setting": _setting(row) if row["table"] == "density_study" else "table",
        "conv": row["conv"],
        metric: mean_se(row[f"{metric}_mean"], row[f"{metric}_sem"], 2),
        f"Δ {metric} vs standard": paired_text(row, f"d_{metric}", 2),
        "loss": mean_se(row["loss_mean"], row["loss_sem"], loss),
        "Δ loss vs standard": paired_text(row, "d_loss", loss),
        "den": row["den"],
        "seeds": str(row["seeds"]),
    }


def _family_row(row: pd.Series) -> dict[str, str]:
    return {
        "model": row["model"],
        "kernel": f"{row['kernel']}x{row['kernel']}",
        "setting": _setting(row),
        "family": row["family"],
        "search": row["search"],
        "density": row["den"],
        "evals": _plain(row["evals"]),
        "search epochs": _plain(row["search_epochs"]),
        "psnr": mean_se(row["psnr_mean"], row["psnr_sem"], 2),
        "Δ psnr vs standard": _diff(row, "d_psnr_vs_standard"),
        "Δ psnr vs free": _diff(row, "d_psnr_vs_free"),
        "fit to the free profile": row["fit_of_free"]
        + ("" if pd.isna(row["fit_rms"]) else f" (rms {row['fit_rms']:.3f})"),
        "seeds": str(row["seeds"]),
    }


def _diff(row: pd.Series, prefix: str) -> str:
    if pd.isna(row[f"{prefix}_mean"]):
        return ""
    p = "" if pd.isna(row[f"{prefix}_p"]) else f" (p={row[f'{prefix}_p']:.2g})"
    return f"{row[f'{prefix}_mean']:+.2f}{p}"
