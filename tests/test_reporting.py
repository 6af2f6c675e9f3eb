"""Reporting: golden tables from checked-in records, figures, the notebook; nothing here trains.

Regenerate the expected tables after a deliberate change of format, then review the diff:
    WCONV_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_reporting.py -k golden
    git diff tests/golden/expected
"""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from wconv.reporting import (
    SMOKE_NOTE,
    aggregate,
    build,
    density_study,
    find_runs,
    load_reference,
    to_csv,
    to_latex,
    to_markdown,
    write_tables,
)
from wconv.reporting.collect import finite
from wconv.reporting.figures import make_all, objective_landscape, search_trace
from wconv.reporting.formatting import mean_se

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
RECORDS = GOLDEN / "records"
EXPECTED = GOLDEN / "expected"
BENCH = GOLDEN / "bench" / "overhead.csv"
REFERENCE = ROOT / "results" / "paper_reference.csv"
TABLES = ("classification", "denoising", "density_study")


@pytest.fixture(scope="module")
def runs():
    return find_runs(RECORDS)


@pytest.fixture(scope="module")
def reference():
    return load_reference(REFERENCE)


def as_paper(runs, data: dict[str, str]):
    """The same records relabelled in memory as paper-profile runs on other data (e.g. digits -> cifar100)."""
    relabelled = copy.deepcopy(runs)
    for run in relabelled:
        run.result["profile"] = "paper"
        run.result["data"] = data.get(run.result["data"], run.result["data"])
    return relabelled


def test_golden_tables(tmp_path):
    """The tables of the checked-in records, byte for byte (WCONV_UPDATE_GOLDEN=1 rewrites the expected files)."""
    written = write_tables(RECORDS, tmp_path, REFERENCE)
    names = sorted(p.name for p in written)
    assert names == sorted(f"{t}.{s}" for t in TABLES for s in ("csv", "md", "tex"))
    if os.environ.get("WCONV_UPDATE_GOLDEN") == "1":
        shutil.rmtree(EXPECTED, ignore_errors=True)
        shutil.copytree(tmp_path, EXPECTED)
    for path in written:
        expected = EXPECTED / path.name
        assert expected.exists(), f"{expected} missing: regenerate with WCONV_UPDATE_GOLDEN=1"
        assert path.read_bytes() == expected.read_bytes(), f"{path.name} differs from {expected} (see module doc)"


def test_golden_records_are_small_and_portable():
    for path in RECORDS.rglob("*"):
        if path.is_file():
            assert path.stat().st_size < 12_000, f"{path} is too large for a golden record"
            if path.suffix != ".npz":
                text = path.read_text()
                assert "/work/" not in text and "/home/" not in text, f"{path} holds a machine path"


def test_one_standard_row_per_model_dedicated_run_preferred(runs, reference):
    cls = aggregate(runs, "classification", reference)
    standard = cls[(cls["conv"] == "standard") & (cls["kernel"] == 3)]
    assert len(standard) == 1, "the baselines of the direct-L and learned runs must not be counted again"
    assert standard["run"].item() == "classification/vgg11-digits-standard"
    den = aggregate(runs, "denoising", reference)
    assert den.loc[den["conv"] == "standard", "run"].tolist() == ["denoising/dncnn-photos-direct_l"]
    assert set(den["conv"]) == {"standard", "direct-L", "learned"}
    assert den["psnr_noisy_mean"].notna().all()


def test_overhead_is_against_the_standard_row(runs, reference):
    cls = aggregate(runs, "classification", reference).set_index(["kernel", "conv"])
    expected = 100 * (cls.loc[(3, "direct-L"), "ms_per_step"] / cls.loc[(3, "standard"), "ms_per_step"] - 1)
    assert cls.loc[(3, "direct-L"), "overhead_pct"] == pytest.approx(expected)
    assert pd.isna(cls.loc[(3, "standard"), "overhead_pct"])


def test_density_study_reads_settings_from_config(runs, reference):
    study = density_study(runs, reference)
    assert set(study["kernel"]) == {3, 5}
    assert set(study["lr"]) == {0.001, 0.01} and set(study["batch_size"]) == {16, 32} and set(study["depth"]) == {4}
    row = study[(study["kernel"] == 3) & (study["lr"] == 0.001)].iloc[0]
    own = next(r for r in runs if r.key == "density_study/k3-lr0.001")
    assert row["standard_loss_mean"] == own.result["variants"]["standard"]["test"]["loss"]["mean"]
    expected = 100 * (row["standard_loss_mean"] - row["weighted_loss_mean"]) / row["standard_loss_mean"]
    assert row["reduction_pct"] == pytest.approx(expected)


def test_density_study_falls_back_to_a_standard_run_of_the_same_setting(runs, reference):
    runs = copy.deepcopy(runs)
    next(r for r in runs if r.key == "density_study/k3-lr0.001").result["variants"].pop("standard")
    study = density_study(runs, reference)
    row = study[(study["kernel"] == 3) & (study["lr"] == 0.001)].iloc[0]
    dedicated = next(r for r in runs if r.key == "density_study/k3-lr0.001-standard")
    assert row["standard_loss_mean"] == dedicated.result["variants"]["standard"]["test"]["loss"]["mean"]
    assert len(study) == 4


@pytest.mark.parametrize("name", TABLES)
def test_smoke_note_on_smoke_tables_only(runs, reference, name):
    smoke = build(runs, name, reference)
    assert smoke.smoke
    assert to_csv(smoke).splitlines()[0] == f"# {SMOKE_NOTE}"
    assert to_markdown(smoke).splitlines()[0] == SMOKE_NOTE
    tex = to_latex(smoke)
    assert tex.splitlines()[0] == f"% {SMOKE_NOTE}" and r"\caption{\textbf{SMOKE PROFILE" in tex
    paper = build(as_paper(runs, {}), name, reference)
    assert not paper.smoke
    for text in (to_csv(paper), to_markdown(paper), to_latex(paper)):
        assert "SMOKE" not in text and "NOT comparable" not in text


def test_csv_reads_back_with_pandas(tmp_path):
    for path in write_tables(RECORDS, tmp_path, REFERENCE):
        if path.suffix == ".csv":
            frame = pd.read_csv(path, comment="#")
            assert len(frame) > 0 and "run" in frame.columns


def test_paper_column_filled_from_reference_csv(runs, reference):
    paper = as_paper(runs, {"digits": "cifar100", "photos": "div2k"})
    cls = aggregate(paper, "classification", reference).set_index(["kernel", "conv"])
    assert cls.loc[(3, "standard"), "paper_acc1"] == 56.89
    assert cls.loc[(3, "direct-L"), "paper_acc1"] == 66.94
    assert pd.isna(cls.loc[(3, "learned"), "paper_acc1"]), "the papers report no learned-density number"
    den = aggregate(paper, "denoising", reference).set_index("conv")
    assert den.loc["standard", "paper_psnr"] == 20.17 and den.loc["direct-L", "paper_psnr"] == 22.63
    assert den.loc["direct-L", "paper_overhead_pct"] == 5
    study = build(paper, "density_study", reference)
    assert (study.data["paper_reduction_pct"] == 53).all() and (study.data["paper_overhead_pct"] == 11).all()
    assert "up to 53" in to_markdown(study) and "arXiv 2505.24527" in to_markdown(study)
    # on the smoke stand-in data the papers report no accuracy: blank, not the CIFAR-100 number
    assert aggregate(runs, "classification", reference)["paper_acc1"].isna().all()
    custom = pd.DataFrame(
        [["Px", "classification", "digits", "vgg11", "learned", "acc1", 12.5, "", "%", "a test source"]],
        columns=reference.columns,
    )
    filled = aggregate(runs, "classification", custom).set_index(["kernel", "conv"])
    assert filled.loc[(3, "learned"), "paper_acc1"] == 12.5


def test_reference_csv_has_the_abstracts_numbers(reference):
    assert {"paper", "table", "data", "model", "conv", "metric", "value", "source"} <= set(reference.columns)
    assert sorted(reference["value"]) == [5, 5, 11, 20.17, 22.63, 53, 56.89, 66.94]
    assert reference["source"].str.contains(r"arXiv 2505\.245(?:27|58) abstract").all()


def test_mean_se_cells():
    nan = float("nan")
    cells = mean_se(1.234, 0.05, 2), mean_se(1.234, nan, 2), mean_se(nan, nan, 2)
    assert cells == ("1.23 ± 0.05", "1.23", "diverged")


def test_non_finite_strings_become_floats():
    out = finite({"a": "nan", "b": ["inf", 1.0], "c": "ok"})
    assert out["a"] != out["a"] and out["b"] == [float("inf"), 1.0] and out["c"] == "ok"


def test_figures_from_records_only(tmp_path):
    paths = make_all(RECORDS, BENCH, tmp_path)
    stems = {p.stem for p in paths}
    assert {"density_profiles", "phi_heatmaps", "training_curves", "overhead", "denoising_examples"} <= stems
    assert {
        "search_trace-classification-vgg11-digits-direct_l",
        "objective_landscape-density_study-k5-lr0.001",
    } <= stems
    assert "objective_landscape-classification-vgg11-digits-k7-direct_l" in stems  # three density values: pairwise
    for stem in stems:
        png, pdf = tmp_path / f"{stem}.png", tmp_path / f"{stem}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1_000


def test_diverged_evaluations_are_marked_not_plotted_as_values(runs):
    run = copy.deepcopy(next(r for r in runs if r.key == "classification/vgg11-digits-direct_l"))
    run.evaluations[-1].update(status="diverged", objective=1000.0)
    trace = search_trace(run).axes[0]
    marked = [c for c in trace.collections if c.get_label().startswith("diverged")]
    assert len(marked) == 1 and trace.get_ylim()[1] < 1000.0, "the penalty must not stretch the axis"
    assert objective_landscape(run).axes[0].get_ylim()[1] < 1000.0


def test_figures_skip_what_is_not_recorded(tmp_path, capsys):
    assert make_all(tmp_path / "nothing", tmp_path / "absent.csv", tmp_path / "out") == []
    printed = capsys.readouterr().out
    assert "skip overhead: no benchmark CSV" in printed and "skip training_curves" in printed


def test_tables_cli(tmp_path):
    cmd = [sys.executable, "scripts/tables.py", "--runs", str(RECORDS), "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "classification.md").read_bytes() == (EXPECTED / "classification.md").read_bytes()


def test_notebook_stored_without_outputs():
    import nbformat

    notebook = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    assert all(
        not c.get("outputs") and c.get("execution_count") is None for c in notebook.cells if c.cell_type == "code"
    )


def test_notebook_executes_headless():
    env = {**os.environ, "WCONV_RUNS": "tests/golden/records"}
    cmd = [sys.executable, "-m", "pytest", "--nbmake", "-q", "-p", "no:cacheprovider", "notebooks/explore.ipynb"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_a_decomposition_of_two_tasks_with_a_diverged_arm_shows_each_rows_own_metric(reference):
    """A paper-profile decomposition holds classification and denoising rows: each shows its own metric, and an arm
    whose every seed diverged (no loss at all) reads "diverged" instead of stopping the table."""
    import math

    import pandas as pd

    from wconv import tasks
    from wconv.reporting.formatting import display

    nan = math.nan
    common = {"profile": "paper", "kernel": 3, "lr": nan, "batch_size": nan, "depth": nan, "den": "[0.5]"}
    stats = ("mean", "sem")
    parts = ("mean", "sem", "p", "n")
    rows = [
        {**common, "table": "classification", "model": "vgg16", "data": "cifar100", "conv": "init only", "seeds": 0}
        | {f"acc1_{s}": nan for s in stats}
        | {f"loss_{s}": nan for s in stats}
        | {f"d_acc1_{s}": nan for s in parts}
        | {f"d_loss_{s}": nan for s in parts},
        {**common, "table": "denoising", "model": "dncnn", "data": "div2k", "conv": "step only", "seeds": 3}
        | {"psnr_mean": 27.5, "psnr_sem": 0.1, "loss_mean": 0.0021, "loss_sem": 0.0001}
        | {"d_psnr_mean": -0.4, "d_psnr_sem": 0.1, "d_psnr_p": 0.03, "d_psnr_n": 3}
        | {"d_loss_mean": 0.0002, "d_loss_sem": 0.0001, "d_loss_p": 0.04, "d_loss_n": 3},
    ]
    frame = pd.DataFrame(rows)[list(dict.fromkeys(k for row in rows for k in row))]
    shown = display(frame, "decomposition", reference, tasks.get("denoising"))
    assert shown.loc[0, "acc1"] == "diverged" and shown.loc[0, "loss"] == "diverged" and shown.loc[0, "psnr"] == ""
    assert shown.loc[1, "psnr"] == "27.50 ± 0.10" and shown.loc[1, "acc1"] == ""
    assert shown.loc[1, "Δ psnr vs standard"] == "-0.40 ± 0.10 (p=0.03)" and shown.loc[1, "loss"] == "0.00210 ± 0.00010"
