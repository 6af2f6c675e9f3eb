"""Aggregate recorded runs into the numbers of the results tables: pure functions from records to DataFrames."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wconv import stats, tasks, variants
from wconv.reporting.collect import Run, nan_if_none
from wconv.variants import split_budget


def load_reference(path: Path) -> pd.DataFrame:
    """The papers' reported numbers (``results/paper_reference.csv``): one row per number, with its source."""
    return pd.read_csv(path, dtype={"qualifier": str}, keep_default_na=False)


def paper_value(reference: pd.DataFrame, table: str, data: str, model: str, conv: str, metric: str) -> pd.Series | None:
    """The reference row for this cell (``data`` and ``model`` may be glob patterns there), or None."""
    for _, row in reference.iterrows():
        if (row["table"], row["conv"], row["metric"]) == (table, conv, metric) and (
            fnmatchcase(data, row["data"]) and fnmatchcase(model, row["model"])
        ):
            return row
    return None


def den_text(run: Run, variant: str) -> str:
    """The density of a row: the one searched or fixed, the mean learned one (``~``), or blank."""
    info = run.result["variants"][variant]
    if info.get("learned"):
        learned = [
            np.asarray(den, dtype=float)
            for t in run.trainings.values()
            if t.get("variant") == variant and t.get("status") == "ok"
            for den in t.get("densities", {}).values()
        ]
        return "~" + den_list(np.mean(learned, axis=0)) if learned else "learned"
    return den_list(info["den"]) if info.get("den") else ""


def den_list(values: Any) -> str:
    """A density as a reader sees it: ``[0.7, 1.2]``, three significant digits."""
    return "[" + ", ".join(f"{float(v):.3g}" for v in np.ravel(values)) + "]"


def table_entries(runs: list[Run], table: str) -> list[tuple[Run, str]]:
    """(run, variant) pairs of a table; one standard row per group, a dedicated standard run preferred."""
    runs = [r for r in runs if r.table == table]
    groups: dict[tuple, list[tuple[Run, str]]] = {}
    for run in runs:
        for variant in run.result["variants"]:
            if split_budget(variant)[1] == 1:  # budget variants have a table of their own (``budgets``)
                groups.setdefault(_group(run), []).append((run, variant))
    chosen = []
    for entries in groups.values():
        standard = [(r, v) for r, v in entries if v == "standard"]
        dedicated = [(r, v) for r, v in standard if r.result["density"] == "standard"]
        baseline = sorted(standard, key=lambda e: (-_ok_seeds(*e), e[0].key))[:1]
        chosen += dedicated or baseline
        chosen += [(r, v) for r, v in entries if v != "standard"]
    return sorted(chosen, key=lambda e: (_group(e[0]), variants.rank(e[0].conv(e[1])), e[0].key))


def _group(run: Run) -> tuple:
    """Rows compared with each other: same profile, model, data, kernel size and (density study) setting."""
    r = run.result
    group = (r.get("profile") or "", r["model"], r["data"], int(r["kernel_size"]))
    if run.table == "density_study":
        return group + tuple((v is None, v) for v in study_setting(run).values())  # sortable with blanks last
    return group


def study_setting(run: Run) -> dict[str, Any]:
    """The density study's hyperparameters, read from the run's resolved config."""
    return {
        "lr": run.setting("optim.lr"),
        "batch_size": run.setting("train.batch_size"),
        "depth": run.setting("model.depth"),
    }


def _ok_seeds(run: Run, variant: str) -> int:
    return sum(s.get("status") == "ok" for s in run.result["variants"][variant]["seeds"].values())


def _stat(run: Run, variant: str, metric: str) -> tuple[float, float]:
    stat = run.result["variants"][variant]["test"].get(metric, {})
    return nan_if_none(stat.get("mean")), nan_if_none(stat.get("sem"))


def aggregate(runs: list[Run], table: str, reference: pd.DataFrame) -> pd.DataFrame:
    """Records in, numbers out: one row per model and convolution of ``table`` (a classification or denoising
    table: its runs' task decides the metrics)."""
    entries = table_entries(runs, table)
    if not entries:
        return pd.DataFrame()
    task = tasks.get(entries[0][0].result["task"])
    keys = metric_keys(task, [run for run, _ in entries])
    standard = {_group(run): (run, v) for run, v in entries if v == "standard"}
    rows = []
    for run, variant in entries:
        r, conv = run.result, run.conv(variant)
        row = {
            "profile": r.get("profile") or "",
            "model": r["model"],
            "data": r["data"],
            "kernel": int(r["kernel_size"]),
            "conv": conv,
            "den": den_text(run, variant),
            "evals": r["search"]["evaluations"] if r.get("search") and variant != "standard" else pd.NA,
            "seeds": _ok_seeds(run, variant),
            "diverged": int(r["variants"][variant]["diverged"]),
        }
        for key in keys:
            row[f"{key}_mean"], row[f"{key}_sem"] = _stat(run, variant, key)
        base = standard.get(_group(run))
        for key in paired_keys(task, keys):
            diff = paired_difference(run, variant, *base, key) if base and variant != "standard" else {}
            for part, name in (("mean", "mean"), ("sem", "sem"), ("p", "p_value"), ("n", "n")):
                row[f"d_{key}_{part}"] = nan_if_none(diff.get(name))
        row["ms_per_step"] = 1e3 * nan_if_none(r["variants"][variant]["seconds_per_step"])
        row["best"] = best_marks(entries, task.paper_metric).get((run.key, variant), "")
        row["run"], row["_group"] = run.key, _group(run)
        rows.append(row)
    frame = _with_overhead(pd.DataFrame(rows))
    paper = {f"paper_{task.paper_metric}": task.paper_metric, "paper_overhead_pct": "overhead"}
    for column, metric in paper.items():
        frame[column] = [
            _paper_number(reference, table, row.data, row.model, row.conv, metric) for row in frame.itertuples()
        ]
    return _ordered(frame, list(paper))


def metric_keys(task: tasks.Task, runs: list[Run]) -> list[str]:
    """The task's metrics, the papers' one followed by its per-test-set values (``psnr@set12``) where recorded."""
    recorded: list[str] = []
    for run in runs:
        for info in run.result["variants"].values():
            recorded += [k for k in info.get("test", {}) if k not in recorded]
    out = []
    for metric in task.metrics:  # per test set for the papers' metric only: a table a reader can still read
        per_set = [k for k in recorded if k.startswith(f"{metric.key}@")] if metric.key == task.paper_metric else []
        out += [metric.key, *per_set]
    return out


def paired_keys(task: tasks.Task, keys: list[str]) -> list[str]:
    """The metrics whose paired difference against the standard convolution a table shows: the papers' one,
    overall and per test set."""
    return [k for k in keys if k.split("@")[0] == task.paper_metric]


def paired_difference(run: Run, variant: str, base_run: Run, base_variant: str, metric: str) -> dict[str, Any]:
    """``variant`` minus the standard convolution on the seeds both trained (``wconv.stats.paired``: mean, standard
    error, p-value, number of pairs); empty without a pair."""
    mine = run.result["variants"][variant]["seeds"]
    theirs = base_run.result["variants"][base_variant]["seeds"]
    diffs = [
        float(mine[s][metric]) - float(theirs[s][metric])
        for s in mine
        if s in theirs and mine[s].get("status") == theirs[s].get("status") == "ok" and metric in mine[s]
    ]
    return stats.paired(diffs) if diffs else {}


def lower_is_better(metric: str) -> bool:
    return metric.split("@")[0] in ("loss", "error")


def best_marks(entries: list[tuple[Run, str]], metric: str, alpha: float = 0.05) -> dict[tuple[str, str], str]:
    """Per group of rows, ``best`` for the row with the best mean ``metric`` and ``≈ best (p=..)`` for each row
    whose paired difference with it (same seeds) is not significant at ``alpha`` (or cannot be tested)."""
    groups: dict[tuple, list[tuple[Run, str]]] = {}
    for run, variant in entries:
        groups.setdefault(_group(run), []).append((run, variant))
    sign = -1.0 if lower_is_better(metric) else 1.0
    marks = {}
    for rows in groups.values():
        means = [(_stat(run, v, metric)[0], run, v) for run, v in rows]
        scored = [(sign * mean, run, v) for mean, run, v in means if not np.isnan(mean)]
        if len(scored) < 2:
            continue
        _, best_run, best_variant = max(scored, key=lambda t: t[0])
        marks[(best_run.key, best_variant)] = "best"
        for _, run, variant in scored:
            if (run.key, variant) == (best_run.key, best_variant):
                continue
            diff = paired_difference(run, variant, best_run, best_variant, metric)
            p = diff.get("p_value")
            if p is None and diff.get("n", 0) >= 2 and diff.get("mean") == 0:
                marks[(run.key, variant)] = "≈ best (equal)"
            elif p is not None and p >= alpha:
                marks[(run.key, variant)] = f"≈ best (p={p:.2g})"
    return marks


def density_study(runs: list[Run], reference: pd.DataFrame) -> pd.DataFrame:
    """Records in, numbers out: one row per kernel size, hyperparameter setting and weighted convolution. The
    standard side is the run's own baseline (same seeds, same process), else a standard run of the same setting."""
    table, rows = "density_study", []
    entries = table_entries(runs, table)
    standard = {_group(run): (run, v) for run, v in entries if v == "standard"}
    marks = best_marks(entries, "loss")
    for run, variant in entries:
        if variant == "standard":
            continue
        r = run.result
        base = (run, "standard") if "standard" in r["variants"] else standard.get(_group(run))
        std_mean, std_sem = _stat(*base, "loss") if base else (float("nan"), float("nan"))
        w_mean, w_sem = _stat(run, variant, "loss")
        w_step = nan_if_none(r["variants"][variant]["seconds_per_step"])
        std_step = nan_if_none(base[0].result["variants"][base[1]]["seconds_per_step"]) if base else float("nan")
        rows.append(
            {
                "profile": r.get("profile") or "",
                "model": r["model"],
                "data": r["data"],
                "kernel": int(r["kernel_size"]),
                **study_setting(run),
                "conv": run.conv(variant),
                "standard_loss_mean": std_mean,
                "standard_loss_sem": std_sem,
                "weighted_loss_mean": w_mean,
                "weighted_loss_sem": w_sem,
                "reduction_pct": 100 * (std_mean - w_mean) / std_mean,
                **{
                    f"d_loss_{part}": nan_if_none(diff.get(name))
                    for diff in [paired_difference(run, variant, *base, "loss") if base else {}]
                    for part, name in (("mean", "mean"), ("sem", "sem"), ("p", "p_value"), ("n", "n"))
                },
                "best": marks.get((run.key, variant), "")
                or ("standard is best" if base and marks.get((base[0].key, base[1])) == "best" else ""),
                "den": den_text(run, variant),
                "evals": r["search"]["evaluations"] if r.get("search") else pd.NA,
                "seeds": _ok_seeds(run, variant),
                "overhead_pct": 100 * (w_step / std_step - 1),
                "paper_reduction_pct": _paper_number(
                    reference, table, r["data"], r["model"], run.conv(variant), "reduction"
                ),
                "paper_overhead_pct": _paper_number(
                    reference, table, r["data"], r["model"], run.conv(variant), "overhead"
                ),
                "run": run.key,
            }
        )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["evals"] = frame["evals"].astype("Int64")
    return frame


def _with_overhead(frame: pd.DataFrame) -> pd.DataFrame:
    """Overhead in % of each row's time per step against the standard row of its group (blank without one)."""
    standard = frame[frame["conv"] == "standard"].drop_duplicates("_group").set_index("_group")["ms_per_step"]
    base = frame["_group"].map(lambda g: standard.get(g, np.nan))
    frame["overhead_pct"] = np.where(frame["conv"] == "standard", np.nan, 100 * (frame["ms_per_step"] / base - 1))
    frame["evals"] = frame["evals"].astype("Int64")
    return frame.drop(columns="_group")


def _ordered(frame: pd.DataFrame, paper_columns: list[str]) -> pd.DataFrame:
    """The CSV's column order: identification, metrics, time, papers, provenance."""
    rest = [c for c in frame.columns if c not in paper_columns and c != "run"]
    return frame[rest + paper_columns + ["run"]]


def _paper_number(reference: pd.DataFrame, table: str, data: str, model: str, conv: str, metric: str) -> float:
    row = paper_value(reference, table, data, model, conv, metric)
    return float(row["value"]) if row is not None else float("nan")


def _epochs(run: Run, variant: str) -> Any:
    """The epochs ``variant`` trained: from ``result.json``, or, in records from before it carried them (the table's
    standard runs), what the run's resolved config gives the variant's budget; NA without either."""
    info = run.result["variants"][variant]
    if "epochs" in info:
        return info["epochs"]
    final_epochs = run.config.get("final", {}).get("epochs")
    name, scale = split_budget(variant)
    return variants.Variant(name, "", scale=scale).epochs(final_epochs) if final_epochs else pd.NA


def budget_table(runs: list[Run]) -> pd.DataFrame:
    """The gain against training length: for every run with ``final.budgets``, each of its convs at each budget
    (1x: the run's own rows, the standard one from its group when the run has none), with the paired difference
    against the standard conv at the same budget, and how much each conv moved per doubling of its training
    since the budget before, on the seeds both trained (the question "has the standard conv stopped improving?").
    The metrics: the papers' one, and for the density study its loss first."""
    rows, sources = [], []  # sources[i]: the (run, variant) of rows[i]
    for run in runs:
        budgets = sorted({split_budget(v)[1] for v in run.result["variants"]} - {1.0})
        if not budgets:
            continue
        task = tasks.get(run.result["task"])
        study = run.table == "density_study"
        metrics = list(dict.fromkeys(["loss", task.paper_metric] if study else [task.paper_metric]))
        group_standard = next(
            (
                (r, v)
                for r, v in table_entries([x for x in runs if _group(x) == _group(run)], run.table)
                if v == "standard"
            ),
            None,
        )
        curved = {split_budget(v)[0] for v in run.result["variants"] if "@" in v} - {"standard"}
        for metric, scale in ((m, s) for m in metrics for s in sorted([1.0, *budgets])):
            suffix = "" if scale == 1 else f"@{scale:g}x"
            reference = (run, f"standard{suffix}") if f"standard{suffix}" in run.result["variants"] else None
            if reference is None and scale == 1:
                reference = group_standard
            mine = [(run, f"{name}{suffix}") for name in sorted(curved) if f"{name}{suffix}" in run.result["variants"]]
            entries = ([reference] if reference else []) + mine
            sources += entries
            for r, variant in entries:
                mean, sem = _stat(r, variant, metric)
                diff = (
                    paired_difference(r, variant, *reference, metric) if reference and (r, variant) != reference else {}
                )
                rows.append(
                    {
                        "profile": run.result.get("profile") or "",
                        "table": run.table,
                        "model": run.result["model"],
                        "data": run.result["data"],
                        "kernel": int(run.result["kernel_size"]),
                        "conv": r.conv(variant).partition(" @")[0],
                        "budget": scale,
                        "epochs": _epochs(r, variant),
                        "metric": metric,
                        "mean": mean,
                        "sem": sem,
                        **{
                            f"d_{part}": nan_if_none(diff.get(name))
                            for part, name in (("mean", "mean"), ("sem", "sem"), ("p", "p_value"), ("n", "n"))
                        },
                        "seeds": _ok_seeds(r, variant),
                        "run": run.key,
                    }
                )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # the change per doubling of the epochs since the budget before, on the seeds both budgets trained (with
    # final.budget_seeds two budgets' means can stand on other seeds: their difference would be partly seed noise)
    frame["per_doubling"] = np.nan
    for (_, _, metric), curve in frame.groupby(["run", "conv", "metric"], sort=False):
        order = curve.sort_values("epochs").index
        for before, after in zip(order[:-1], order[1:], strict=True):
            if pd.isna(frame.at[after, "epochs"]) or pd.isna(frame.at[before, "epochs"]):
                continue  # a run without its config: how long it trained is not known
            moved = paired_difference(*sources[after], *sources[before], metric).get("mean")
            doublings = np.log2(float(frame.at[after, "epochs"]) / float(frame.at[before, "epochs"]))
            frame.loc[after, "per_doubling"] = nan_if_none(moved) / doublings
    return frame


DECOMPOSED = ("init_only", "step_only", "sgs", "lr_matched")  # the arms that take the preconditioning apart


def decomposition(runs: list[Run]) -> pd.DataFrame:
    """What part of the preconditioning does the work: per group with the decomposing arms, the standard conv, the
    weighted one, each arm and the lr-tuned standard conv, with the papers' metric and the loss, each paired against
    the standard conv on the same seeds."""
    rows = []
    for table in sorted({r.table for r in runs}):
        entries = table_entries(runs, table)
        groups: dict[tuple, list[tuple[Run, str]]] = {}
        for run, variant in entries:
            groups.setdefault(_group(run), []).append((run, variant))
        for members in groups.values():
            if not any(v in DECOMPOSED for _, v in members):
                continue
            base = next(((r, v) for r, v in members if v == "standard"), None)
            task = tasks.get(members[0][0].result["task"])
            keep = [(r, v) for r, v in members if v in ("standard", "weighted", "preconditioned", *DECOMPOSED, "tuned")]
            keep = [(r, v) for r, v in keep if v != "weighted" or not r.detail]  # the free search's density
            for run, variant in keep:
                row = {
                    "profile": run.result.get("profile") or "",
                    "table": table,
                    "model": run.result["model"],
                    "data": run.result["data"],
                    "kernel": int(run.result["kernel_size"]),
                    **(
                        study_setting(run)
                        if table == "density_study"
                        else {"lr": pd.NA, "batch_size": pd.NA, "depth": pd.NA}
                    ),
                    "conv": run.conv(variant),
                    "den": den_text(run, variant) if variant != "standard" else "",
                    "seeds": _ok_seeds(run, variant),
                }
                for metric in (task.paper_metric, "loss"):
                    row[f"{metric}_mean"], row[f"{metric}_sem"] = _stat(run, variant, metric)
                    diff = paired_difference(run, variant, *base, metric) if base and variant != "standard" else {}
                    for part, name in (("mean", "mean"), ("sem", "sem"), ("p", "p_value"), ("n", "n")):
                        row[f"d_{metric}_{part}"] = nan_if_none(diff.get(name))
                row["run"] = run.key
                rows.append(row)
    return pd.DataFrame(rows)


def families(runs: list[Run]) -> pd.DataFrame:
    """The density study's searches side by side: the free density (``symmetric``), each one-parameter family and
    the free density searched with shorter trainings, each paired against the standard conv and against the free
    density on the same seeds, with each family's least-squares fit to the free profile."""
    from wconv.nn.density import FAMILIES, fit

    study = [r for r in runs if r.table == "density_study" and r.result.get("density") == "direct_l"]
    rows = []
    for key in sorted({_group(r) for r in study}):
        members = [r for r in study if _group(r) == key]
        free = next((r for r in members if not r.detail), None)
        if free is None or len(members) < 2:
            continue
        base = next(((r, v) for r, v in table_entries(runs, "density_study") if _group(r) == key and v == "standard"),
                    None)  # fmt: skip
        k = int(free.result["kernel_size"])
        den = free.result["best_den"] or []
        profile = list(den) + [1.0] + list(reversed(den))
        for run in sorted(members, key=lambda r: (bool(r.detail), r.detail)):
            family_name = run.setting("density.family", "symmetric")
            search = run.result["search"] or {}
            row = {
                "profile": run.result.get("profile") or "",
                "model": run.result["model"],
                "kernel": k,
                **study_setting(run),
                "family": FAMILIES[family_name].label if family_name in FAMILIES else family_name,
                "search": "1/" + f"{run.setting('final.epochs') / run.setting('train.epochs'):g}"
                if "search at" in run.detail else "whole",
                "den": FAMILIES[family_name].describe(run.result["best_den"]) if family_name in FAMILIES and
                run.result["best_den"] else "",
                "evals": search.get("evaluations", pd.NA),
                "search_epochs": (search.get("evaluations") or 0) * (run.setting("train.epochs") or 0),
                "seeds": _ok_seeds(run, "weighted"),
            }  # fmt: skip
            for metric in ("psnr", "loss"):
                row[f"{metric}_mean"], row[f"{metric}_sem"] = _stat(run, "weighted", metric)
                for against, reference in (("standard", base), ("free", (free, "weighted"))):
                    same = reference is None or reference == (run, "weighted")
                    diff = {} if same else paired_difference(run, "weighted", *reference, metric)
                    for part, name in (("mean", "mean"), ("p", "p_value")):
                        row[f"d_{metric}_vs_{against}_{part}"] = nan_if_none(diff.get(name))
            fitted = fit(FAMILIES[family_name], profile) if den and family_name in FAMILIES else (None, float("nan"))
            row["fit_of_free"] = FAMILIES[family_name].describe(fitted[0]) if fitted[0] else ""
            row["fit_rms"] = fitted[1]
            row["run"] = run.key
            rows.append(row)
    return pd.DataFrame(rows)


def compute_time(runs: list[Run]) -> pd.DataFrame:
    """What each run cost, measured: its trainings (search evaluations and finals, one metrics file each), the
    epochs they trained and the seconds those epochs took (the per-epoch ``seconds`` the loop records: training
    steps only, without validation and test), per run and in all."""
    rows = []
    for run in sorted(runs, key=lambda r: r.key):
        files = sorted((run.path / "metrics").glob("*.csv"))
        if not files:
            continue  # a record from before the per-epoch metrics: its cost is unknown, not zero
        frames = [pd.read_csv(f) for f in files]
        frames = [f for f in frames if "seconds" in f.columns]
        seconds = float(sum(f["seconds"].sum() for f in frames))
        search = sum(1 for f in files if f.stem.startswith("eval-"))
        rows.append({
            "profile": run.result.get("profile") or "",
            "table": run.table,
            "run": run.key,
            "search_trainings": search,
            "final_trainings": len(files) - search,
            "epochs": int(sum(len(f) for f in frames)),
            "hours": seconds / 3600,
        })  # fmt: skip
    if rows:
        frame = pd.DataFrame(rows)
        total = {"profile": rows[0]["profile"], "table": "all", "run": f"{len(rows)} runs"}
        total |= {c: frame[c].sum() for c in ("search_trainings", "final_trainings", "epochs", "hours")}
        rows.append(total)
    return pd.DataFrame(rows)
