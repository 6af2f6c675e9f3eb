"""The statistics every record and table uses: mean and standard error over seeds, and the paired test."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def mean_sem(values: Sequence[float]) -> dict[str, float | None]:
    """Mean and standard error (sample standard deviation / sqrt(n); None for one value)."""
    mean = statistics.fmean(values)
    sem = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else None
    return {"mean": mean, "sem": sem}


def paired(diffs: Sequence[float]) -> dict[str, float | int | None]:
    """Per-seed differences summarised: mean, standard error, the paired t-test's two-sided p-value (None with one
    pair or no spread) and the number of pairs."""
    out: dict[str, float | int | None] = {**mean_sem(diffs), "p_value": None, "n": len(diffs)}
    if out["sem"]:
        from scipy import stats

        out["p_value"] = float(stats.ttest_1samp(list(diffs), 0.0).pvalue)
    return out
