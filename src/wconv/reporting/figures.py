"""Figures from recorded runs: each function takes loaded records and returns a matplotlib Figure.

Figures are built with the object-oriented API (``matplotlib.figure.Figure``), so they need no GUI backend and
leave pyplot's state alone; ``make_all`` writes every figure the records allow as PNG and PDF.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from wconv import metrics, objectives, tasks, variants
from wconv.nn.density import DensityFamily, get_family
from wconv.reporting.aggregate import (
    budget_table,
    den_list,
    lower_is_better,
    paired_difference,
    study_setting,
    table_entries,
)
from wconv.reporting.collect import Run, find_runs

STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8, "figure.dpi": 100}
MARKERS = "osD^v<>"  # hollow and distinct, so that equal densities of several runs stay visible


def styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw under the project's style (text sizes are read when artists are made, so around the whole body)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> Figure:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _figure(
    ncols: int = 1, nrows: int = 1, width: float = 3.2, height: float = 2.8, margin: float = 0.0, **kwargs
) -> tuple[Figure, np.ndarray]:
    """Panels of ``width`` x ``height`` inches, plus ``margin`` inches on the right for a figure legend."""
    fig = Figure(figsize=(width * ncols + margin, height * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def _grid(n: int, max_cols: int = 4, **kwargs) -> tuple[Figure, list]:
    """A figure of ``n`` panels in rows of at most ``max_cols``; unused panels are hidden."""
    ncols = min(n, max_cols)
    fig, axes = _figure(ncols, math.ceil(n / ncols), **kwargs)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    return fig, list(axes.flat[:n])


def family(run: Run) -> DensityFamily:
    """The density family of ``run`` (``wconv.nn.density``): the figures' labels come from it."""
    return get_family(run.setting("density.family", "symmetric"))


def alfa(run: Run, den: list[float]) -> np.ndarray:
    """The 1-D profile of ``den`` in ``run``, as the operator builds it (the papers': ``[den, 1, reversed(den)]``)."""
    values = torch.tensor([float(v) for v in np.ravel(den)], dtype=torch.float64)
    return family(run).profile(values, int(run.result["kernel_size"])).numpy()


def label(run: Run, sep: str = ", ") -> str:
    """``model / data (kxk)``, with the setting for density-study runs: how a run is named in legends and titles."""
    r = run.result
    text = f"{r['model']} / {r['data']} ({r['kernel_size']}x{r['kernel_size']})"
    if run.table == "density_study":
        setting = study_setting(run)
        text += sep + ", ".join(f"{k.removesuffix('_size')} {v}" for k, v in setting.items() if v is not None)
    return text


def searched(runs: list[Run]) -> list[Run]:
    """Runs whose density was found by DIRECT-L or fixed: those with an optimal density to draw."""
    return [r for r in runs if r.result.get("best_den")]


def split_study(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(runs of the classification and denoising tables, runs of the density study): drawn apart."""
    study = [r for r in runs if r.table == "density_study"]
    return [r for r in runs if r not in study], study


def learned_den(run: Run) -> np.ndarray | None:
    """Per-layer learned densities averaged over the final seeds (layers x values), or None."""
    per_seed = [t["densities"] for t in run.trainings.values() if t.get("densities") and t.get("status") == "ok"]
    if not per_seed:
        return None
    layers = sorted(per_seed[0])
    return np.mean([[np.ravel(d[layer]) for layer in layers] for d in per_seed], axis=0)


@styled
def density_profiles(runs: list[Run]) -> Figure:
    """alfa against the kernel tap, one panel per kernel size: searched densities solid, learned ones dashed."""
    drawn = [(r, r.result.get("best_den"), learned_den(r)) for r in runs]
    drawn = [(r, den, layers) for r, den, layers in drawn if den or layers is not None]
    sizes = sorted({int(r.result["kernel_size"]) for r, _, _ in drawn})
    fig, axes = _grid(len(sizes), width=3.4, height=3.0, margin=3.6)
    for ax, k in zip(axes, sizes, strict=True):
        taps = np.arange(k) - k // 2
        ax.axhline(1.0, color="0.6", lw=0.8, ls=":", label="standard (alfa = 1)")
        for i, (run, den, layers) in enumerate(drawn):
            if int(run.result["kernel_size"]) != k:
                continue
            if den:
                name = f"{label(run)}, {run.conv('weighted')}"
                ax.plot(taps, alfa(run, den), marker=MARKERS[i % len(MARKERS)], mfc="none", color=f"C{i}", label=name)
            else:
                curves = np.array([alfa(run, layer) for layer in layers])
                name = f"{label(run)}, learned\n(layer mean; band: range over layers)"
                ax.plot(taps, curves.mean(axis=0), ls="--", marker=".", color=f"C{i}", label=name)
                ax.fill_between(taps, curves.min(axis=0), curves.max(axis=0), color=f"C{i}", alpha=0.15, lw=0)
        ax.set(title=f"{k}x{k} kernels", xlabel="kernel tap offset (pixels)", ylabel="alfa (weight multiplier)")
        ax.set_xticks(taps)
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), loc="outside right center", frameon=False)
    fig.suptitle("Density profiles alfa (phi = outer(alfa, alfa); 1 = the standard conv)")
    return fig


@styled
def density_families(runs: list[Run]) -> Figure:
    """Per kernel size, the free density DIRECT-L found and the best of each family searched beside it (and the free
    density searched with shorter trainings): do the optimal densities resemble a known basis function?"""
    runs = [r for r in searched(runs) if r.result.get("density") == "direct_l"]
    sizes = sorted({int(r.result["kernel_size"]) for r in runs if r.detail})
    fig, axes = _grid(len(sizes), width=3.6, height=4.4)
    for ax, k in zip(axes, sizes, strict=True):
        taps = np.arange(k) - k // 2
        ax.axhline(1.0, color="0.6", lw=0.8, ls=":", label="standard (1)")
        for i, run in enumerate(sorted((r for r in runs if r.result["kernel_size"] == k), key=lambda r: r.detail)):
            den = run.result["best_den"]
            shorter = [part for part in run.detail.split(", ") if part.startswith("search at")]
            name = ", ".join([family(run).describe(np.ravel(den)), *shorter])
            free = family(run).name == "symmetric"
            style = {"color": "k", "lw": 2.0, "ls": "-" if not run.detail else "--"} if free else {"color": f"C{i}"}
            ax.plot(taps, alfa(run, den), marker=MARKERS[i % len(MARKERS)], mfc="none", label=name, **style)
        ax.set(title=f"{k}x{k} kernels", xlabel="kernel tap offset (pixels)", ylabel="alfa (weight multiplier)")
        ax.set_xticks(taps)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize=6.5, frameon=False)  # below: no overlap
    fig.suptitle("The optimal free density (black) and the best of each one-parameter family")
    return fig


@styled
def phi_heatmaps(runs: list[Run]) -> Figure:
    """phi = outer(alfa, alfa) of each searched or fixed density; the colour scale is centred on 1 (standard)."""
    runs = searched(runs)
    phis = [np.outer(alfa(r, r.result["best_den"]), alfa(r, r.result["best_den"])) for r in runs]
    spread = max(float(np.abs(p - 1.0).max()) for p in phis) or 1.0
    fig, axes = _grid(len(runs), width=2.7, height=3.3)
    for ax, run, phi in zip(axes, runs, phis, strict=True):
        image = ax.imshow(phi, cmap="RdBu_r", vmin=1.0 - spread, vmax=1.0 + spread)
        k = phi.shape[0]
        for (i, j), value in np.ndenumerate(phi):
            colour = "white" if abs(value - 1.0) > 0.6 * spread else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7 if k < 7 else 5.5, color=colour)
        offsets = np.arange(k) - k // 2
        ax.set_xticks(range(k), offsets)
        ax.set_yticks(range(k), offsets)
        title = label(run, sep="\n") + "\n" + family(run).describe(np.ravel(run.result["best_den"]))
        ax.set(title=title, xlabel="tap offset x", ylabel="tap offset y")
    fig.colorbar(image, ax=axes, label="phi (weight multiplier)", shrink=0.8)
    fig.suptitle("Density phi of the optimal convolutions (1 = standard)")
    return fig


def _objective_label(run: Run) -> str:
    name = run.setting("search.objective", "val_loss")
    return objectives.OBJECTIVES[name].label if name in objectives.OBJECTIVES else "objective"


@styled
def search_trace(run: Run) -> Figure:
    """The DIRECT-L evaluations in order: objective, best so far, and diverged trainings at the top edge."""
    rows = pd.DataFrame(run.evaluations)
    ok = rows[rows["status"] == "ok"]
    fig, axes = _figure(width=4.8, height=3.0)
    ax = axes[0, 0]
    best = rows["objective"].where(rows["status"] == "ok").cummin().ffill()
    ax.step(rows["index"] + 1, best, where="post", color="tab:blue", label="best so far")
    ax.scatter(ok["index"] + 1, ok["objective"], color="tab:blue", s=18, zorder=3, label="evaluation")
    top = run.result["search"]
    ax.scatter(
        [top["index"] + 1],
        [top["objective"]],
        marker="*",
        s=140,
        color="gold",
        edgecolor="k",
        zorder=4,
        label=f"optimum, den = {den_list(top['den'])}",
    )
    diverged = rows[rows["status"] != "ok"]
    if not diverged.empty:
        ax.scatter(
            diverged["index"] + 1,
            [1.0] * len(diverged),
            transform=ax.get_xaxis_transform(),
            marker="x",
            color="tab:red",
            clip_on=False,
            label="diverged (top edge)",
        )
    ax.set(xlabel="evaluation", ylabel=_objective_label(run), title=f"DIRECT-L search\n{label(run)}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="best")
    return fig


@styled
def objective_landscape(run: Run) -> Figure:
    """The objective over the density: a scatter for one value, colour for two, pairwise panels for three."""
    rows = [e for e in run.evaluations if e["status"] == "ok"]
    best = np.asarray(run.result["search"]["den"], dtype=float)
    n = len(best)
    den = np.array([e["den"] for e in rows], dtype=float).reshape(-1, n)
    value = np.array([e["objective"] for e in rows], dtype=float)
    pairs = [(0, 1)] if n == 2 else [(0, 1), (0, 2), (1, 2)] if n == 3 else []
    fig, axes = _figure(max(1, len(pairs)), width=4.4 if n < 3 else 3.4, height=3.4)
    name = _objective_label(run)
    if n == 1:
        ax = axes[0, 0]
        order = np.argsort(den[:, 0])
        ax.plot(den[order, 0], value[order], color="0.7", lw=0.8, zorder=1)
        ax.scatter(den[:, 0], value, s=20, zorder=2, label="evaluation")
        ax.scatter(
            best,
            [run.result["search"]["objective"]],
            marker="*",
            s=140,
            color="gold",
            edgecolor="k",
            zorder=3,
            label="optimum",
        )
        if family(run).name == "symmetric":
            ax.axvline(1.0, color="0.6", ls=":", lw=0.8, label="standard (den = 1)")
        ax.set(xlabel=family(run).value_name(0, 1), ylabel=name)
        ax.legend(loc="best")
    for ax, (i, j) in zip(axes[0], pairs, strict=False):
        points = ax.scatter(den[:, i], den[:, j], c=value, cmap="viridis", s=28, edgecolor="k", linewidth=0.3)
        ax.scatter(
            best[i], best[j], marker="*", s=160, facecolor="none", edgecolor="red", linewidth=1.2, label="optimum"
        )
        ax.set(xlabel=family(run).value_name(i, n), ylabel=family(run).value_name(j, n))
        ax.legend(loc="best")
    if pairs:
        fig.colorbar(points, ax=axes[0].tolist(), label=name, shrink=0.85)
    fig.suptitle(f"Search objective over the density ({family(run).label})\n{label(run)}")
    return fig


def _curves(run: Run, variant: str, key: str) -> pd.DataFrame:
    """History column ``key`` of each final seed of ``variant``: one column per seed, indexed by epoch."""
    histories = [pd.DataFrame(t["history"]) for t in run.trainings.values() if t.get("variant") == variant]
    columns = [h.set_index("epoch")[key] for h in histories if key in h.columns]
    return pd.concat(columns, axis=1) if columns else pd.DataFrame()


@styled
def training_curves(runs: list[Run]) -> Figure:
    """Validation loss and metric per epoch of each model's convolutions: mean over seeds, band ± standard error."""
    groups: dict[tuple, list[tuple[Run, str]]] = {}
    for table in sorted({r.table for r in runs} - {"density_study"}):
        for run, variant in table_entries(runs, table):
            r = run.result
            groups.setdefault((r["task"], r["model"], r["data"], r["kernel_size"]), []).append((run, variant))
    fig, axes = _figure(len(groups), 2, width=3.4, height=2.6, sharex="col")
    for col, ((task, *_), entries) in enumerate(sorted(groups.items())):
        metric, metric_label = tasks.get(task).curve
        for row, (key, ylabel) in enumerate([("val_loss", "validation loss (log scale)"), (metric, metric_label)]):
            ax = axes[row, col]
            for i, (run, variant) in enumerate(entries):
                conv = run.conv(variant)
                seeds = _curves(run, variant, key)
                if seeds.empty:
                    continue
                curve = pd.DataFrame({"mean": seeds.mean(axis=1), "sem": seeds.sem(axis=1).fillna(0.0)})
                colour = variants.colour(conv)
                ax.plot(  # each later line thinner, with its own hollow marker: equal trainings stay visible
                    curve.index,
                    curve["mean"],
                    marker=MARKERS[i % len(MARKERS)],
                    mfc="none",
                    lw=max(0.8, 2.6 - 0.45 * i),
                    color=colour,
                    label=f"{conv} (n={seeds.shape[1]})",
                )
                ax.fill_between(
                    curve.index,
                    curve["mean"] - curve["sem"],
                    curve["mean"] + curve["sem"],
                    color=colour,
                    alpha=0.2,
                    lw=0,
                )
            ax.set(ylabel=ylabel, xlabel="epoch" if row == 1 else None, yscale="log" if row == 0 else "linear")
            ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0, col].set_title(label(entries[0][0]))
        axes[0, col].legend(loc="best")
    fig.suptitle("Training curves (final trainings, mean ± s.e. over seeds)")
    return fig


@styled
def overhead_bars(bench: pd.DataFrame) -> Figure:
    """Time ratio weighted / standard per benchmark case: training, inference, and inference after folding."""
    series = [("train_ratio", "training step"), ("infer_ratio", "inference"), ("folded_ratio", "inference, folded")]
    series = [(c, n) for c, n in series if c in bench.columns]
    x = np.arange(len(bench))
    width = 0.8 / len(series)
    fig, axes = _figure(width=max(5.0, 0.6 * len(bench)), height=3.2)
    ax = axes[0, 0]
    for i, (column, name) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, bench[column], width, label=name)
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="standard (ratio 1)")
    ax.set_xticks(x, bench["case"], rotation=30, ha="right")
    ax.set(
        ylabel="time ratio, weighted / standard",
        ylim=(0, max(1.3, float(bench[[c for c, _ in series]].max().max()) * 1.1)),
    )
    setup = ", ".join(
        f"{k}: {', '.join(map(str, sorted(set(bench[k]))))}" for k in ("device", "threads", "repeats") if k in bench
    )
    ax.set_title(f"Overhead of the weighted convolution ({setup})")
    fig.legend(loc="outside lower center", ncols=len(series) + 1, frameon=False)
    return fig


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR in dB of ``image`` against ``reference`` (both in [0, 1]), unclipped, as ``wconv.metrics`` measures."""
    return metrics.per_image_psnr(torch.from_numpy(image), torch.from_numpy(reference), clamp=False).item()


def _show(ax, image: np.ndarray, title: str) -> None:
    picture = np.clip(np.moveaxis(image, 0, -1), 0, 1)
    ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_axis_off()


@styled
def denoising_examples(runs: list[Run]) -> Figure:
    """One row per denoising model: clean, noisy, and each convolution's output, PSNR in the titles."""
    rows: dict[tuple, dict[str, dict[str, np.ndarray]]] = {}
    for table in sorted({r.table for r in runs if tasks.get(r.result["task"]).saves_examples}):
        for run, variant in table_entries(runs, table):
            if (example := run.example(variant)) is not None:
                r = run.result
                rows.setdefault((r["model"], r["data"], r["kernel_size"], label(run)), {})[run.conv(variant)] = example
    ncols = 2 + max(len(v) for v in rows.values())
    fig, axes = _figure(ncols, len(rows), width=2.0, height=2.2)
    for ax_row, ((*_, name), examples) in zip(axes, sorted(rows.items()), strict=True):
        first = next(iter(examples.values()))
        clean = first["clean"]
        _show(ax_row[0], clean, f"{name}\nclean")
        _show(ax_row[1], first["noisy"], f"noisy\n{psnr(clean, first['noisy']):.2f} dB")
        for ax, conv in zip(ax_row[2:], [c for c in variants.ORDER if c in examples], strict=False):
            _show(ax, examples[conv]["denoised"], f"{conv}\n{psnr(clean, examples[conv]['denoised']):.2f} dB")
        for ax in ax_row[2 + len(examples) :]:
            ax.set_axis_off()
    fig.suptitle("Denoising examples (first test image, first final seed)")
    return fig


def _save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150)
    return paths


def _unless(present: object, reason: str) -> str | None:
    """None when the records for a figure are present, else the reason printed for skipping it."""
    return None if present else reason


def _metric_of(run: Run) -> str:
    return "loss" if run.table == "density_study" else tasks.get(run.result["task"]).paper_metric


def _control_groups(runs: list[Run]) -> dict[str, list[tuple[Run, str]]]:
    """Table rows by model, data, kernel and setting, for groups with a standard row and some other row."""
    groups: dict[str, list[tuple[Run, str]]] = {}
    for table in sorted({r.table for r in runs}):
        for run, variant in table_entries(runs, table):
            groups.setdefault(label(run).replace(", lr", "\nlr"), []).append((run, variant))
    return {k: v for k, v in groups.items() if any(var == "standard" for _, var in v) and len(v) > 1}


def _controlled(runs: list[Run]) -> bool:
    return any(
        r.result.get("arms") or r.result.get("density") == "tuned" for r in runs if r.result.get("variants")
    ) and bool(_control_groups(runs))


@styled
def controls(runs: list[Run]) -> Figure:
    """The convs side by side: each row's paired difference with the standard conv of its group (same seeds),
    mean ± standard error; better than standard to the right."""
    groups = _control_groups(runs)
    rows = max(len(entries) for entries in groups.values())  # a bar's height the same in every panel
    fig, axes = _grid(len(groups), max_cols=3, width=4.2, height=0.9 + 0.28 * rows)
    for ax, (name, entries) in zip(axes, sorted(groups.items()), strict=True):
        base = next((run, v) for run, v in entries if v == "standard")
        metric = _metric_of(base[0])
        sign = -1.0 if lower_is_better(metric) else 1.0
        bars = []
        for run, variant in entries:
            if variant == "standard":
                continue
            diff = paired_difference(run, variant, *base, metric)
            if diff:
                bars.append((run.conv(variant), sign * diff["mean"], diff["sem"] or 0.0, diff.get("p_value")))
        span = max((abs(b[1]) + b[2] for b in bars), default=0.0)  # a loss difference: 1e-4, whose labels overlap
        power = int(np.floor(np.log10(span))) if 0 < span < 1e-2 else 0
        scale = 10.0**-power
        y = np.arange(len(bars))
        ax.barh(
            y,
            [b[1] * scale for b in bars],
            xerr=[b[2] * scale for b in bars],
            color=[variants.colour(b[0]) for b in bars],
        )
        ax.set_yticks(y, [b[0] + ("" if b[3] is None else f", p={b[3]:.2g}") for b in bars])
        ax.axvline(0, color="k", lw=0.8)
        ax.invert_yaxis()
        what = f"{'standard - conv' if sign < 0 else 'conv - standard'}, {metric}" + (
            f" (x 1e{power})" if power else ""
        )
        ax.set(title=name, xlabel=what)
    fig.suptitle("Each conv vs standard\n(paired on seeds, mean ± s.e.; right is better)")
    return fig


@styled
def gain_vs_budget(budgets: pd.DataFrame) -> Figure:
    """Per run with budgets, two panels against the training epochs (log scale): each conv's metric (the papers' one:
    PSNR for the denoisers, accuracy for the classifiers), and its paired gain over the standard conv at the same
    budget. Reading both shows whether the gain outlives the standard conv's own improvement."""
    keys = list(dict.fromkeys(budgets["run"]))
    fig, axes = _figure(2, len(keys), width=3.4, height=2.6)
    for row, key in zip(axes, keys, strict=True):
        runs = budgets[budgets["run"] == key]
        metric = next((m for m in dict.fromkeys(runs["metric"]) if m != "loss"), "loss")
        rows = runs[runs["metric"] == metric]
        sign = -1.0 if lower_is_better(metric) else 1.0
        for conv, curve in rows.groupby("conv", sort=False):
            curve = curve.sort_values("epochs")
            epochs, style = curve["epochs"].astype(float), {"marker": "o", "capsize": 3, "color": variants.colour(conv)}
            row[0].errorbar(epochs, curve["mean"], yerr=curve["sem"].fillna(0.0), label=conv, **style)
            if conv != "standard":
                row[1].errorbar(epochs, sign * curve["d_mean"], yerr=curve["d_sem"].fillna(0.0), label=conv, **style)
        row[1].axhline(0, color="k", lw=0.8)
        epochs = sorted({int(e) for e in rows["epochs"]})
        first = rows.iloc[0]
        title = f"{first['table'].replace('_', ' ')}: {first['model']} {first['kernel']}x{first['kernel']}"
        for ax, ylabel in zip(row, (metric, f"gain over standard ({metric})"), strict=True):
            ax.set_xscale("log")
            ax.set_xticks(epochs, [str(e) for e in epochs])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set(xlabel="final training epochs", ylabel=ylabel, title=title)
            ax.legend(loc="best")
    fig.suptitle("Gain vs training length\n(paired on seeds, mean ± s.e.)")
    return fig


def make_all(runs_root: Path, bench_csv: Path | None, out_dir: Path) -> list[Path]:
    """Write every figure the records under ``runs_root`` (and the benchmark CSV) allow; skip the others, saying why."""
    runs = find_runs(runs_root)
    bench = pd.read_csv(bench_csv) if bench_csv is not None and Path(bench_csv).exists() else None
    tabled, study = split_study(runs)
    examples = [r for r in tabled if tasks.get(r.result["task"]).saves_examples and (r.path / "examples").is_dir()]
    no_density = "no searched, fixed or learned density recorded"
    jobs: list[tuple[str, Callable[[], Figure], str | None]] = []
    papers = [r for r in study if not r.detail]  # the families and shorter searches have density_families
    for suffix, group in (("", tabled), ("-density_study", papers)):
        has_density = searched(group) or any(learned_den(r) is not None for r in group)
        jobs += [
            (f"density_profiles{suffix}", functools.partial(density_profiles, group), _unless(has_density, no_density)),
            (f"phi_heatmaps{suffix}", functools.partial(phi_heatmaps, group), _unless(searched(group), no_density)),
        ]
    jobs += [
        (
            "training_curves",
            functools.partial(training_curves, tabled),
            _unless(tabled, "no classification or denoising run"),
        ),
        (
            "overhead",
            functools.partial(overhead_bars, bench),
            _unless(bench is not None, f"no benchmark CSV at {bench_csv} (make bench)"),
        ),
        (
            "denoising_examples",
            functools.partial(denoising_examples, tabled),
            _unless(examples, "no denoising example recorded"),
        ),
    ]
    budgets = budget_table(runs)
    jobs += [
        ("controls", functools.partial(controls, runs), _unless(_controlled(runs), "no run with a control arm")),
        (
            "gain_vs_budget",
            functools.partial(gain_vs_budget, budgets),
            _unless(not budgets.empty, "no run with final.budgets"),
        ),
        (
            "density_families",
            functools.partial(density_families, study),
            _unless(any(r.detail for r in searched(study)), "no density-study run of a density family"),
        ),
    ]
    for run in (r for r in runs if r.evaluations and r.result.get("search") and r.result["density"] != "tuned"):
        slug = run.key.replace("/", "-")
        jobs += [
            (f"search_trace-{slug}", functools.partial(search_trace, run), None),
            (f"objective_landscape-{slug}", functools.partial(objective_landscape, run), None),
        ]
    if not runs:
        print(f"no finished run (result.json) under {runs_root}: only the benchmark figure can be drawn")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw, missing in jobs:
        if missing:
            print(f"skip {name}: {missing}")
            continue
        paths += _save(draw(), out_dir, name)
    return paths
