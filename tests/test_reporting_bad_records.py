"""One unreadable run folder must not stop the tables and figures of the others; no runs at all is one error line."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wconv.reporting import write_tables

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "tests" / "golden" / "records" / "classification" / "vgg11-digits-direct_l"
REFERENCE = ROOT / "results" / "paper_reference.csv"
BENCH = ROOT / "tests" / "golden" / "bench" / "overhead.csv"

# run folder -> (the record spoiled, its text, the warning's reason)
BAD = {
    "corrupt": ("result.json", '{"task": "classi', "result.json is not valid JSON (line 1 column 10)"),
    "array": ("result.json", "[1, 2]", "result.json holds [1, 2], not a JSON object"),
    "badyaml": ("config.yaml", "model: [vgg11\nseed: 0\n", "config.yaml is not valid YAML (line 2 column 5)"),
    "bell": ("config.yaml", "seed: \x07\n", "config.yaml is not valid YAML"),
    "listconfig": ("config.yaml", "- 1\n- 2\n", "config.yaml holds a list, not a mapping"),
    "latin1": ("result.json", "\udce9", "result.json is not UTF-8 text"),
    "badtraining": (
        "trainings/final-weighted-seed0.json",
        "",
        "trainings/final-weighted-seed0.json is not valid JSON (line 1 column 1)",
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One good run and, beside it, one copy of it per spoiled record."""
    root = tmp_path_factory.mktemp("runs")
    shutil.copytree(GOOD, root / "good")
    for name, (record, text, _) in BAD.items():
        shutil.copytree(GOOD, root / name)
        (root / name / record).write_bytes(text.encode(errors="surrogateescape"))
    return root


def script(name: str, *args: str | Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, f"scripts/{name}.py", *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def assert_warned_each_bad_run(stderr: str, runs: Path) -> None:
    expected = sorted(f"warning: skipped {runs / name}: {reason}" for name, (_, _, reason) in BAD.items())
    assert sorted(stderr.splitlines()) == expected


def test_tables_come_out_for_the_good_run_with_a_warning_per_bad_one(runs, tmp_path):
    alone = tmp_path / "alone"
    shutil.copytree(GOOD, alone / "good")
    expected = {p.name: p.read_bytes() for p in write_tables(alone, tmp_path / "expected", REFERENCE)}
    done = script("tables", "--runs", runs, "--out", tmp_path / "out", "--reference", REFERENCE)
    assert done.returncode == 0, done.stderr
    assert_warned_each_bad_run(done.stderr, runs)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == expected


def test_figures_come_out_for_the_good_run_with_a_warning_per_bad_one(runs, tmp_path):
    done = script("figures", "--runs", runs, "--bench", BENCH, "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    assert_warned_each_bad_run(done.stderr, runs)
    drawn = {p.name for p in tmp_path.iterdir()}
    assert {"training_curves.png", "search_trace-good.png", "overhead.pdf"} <= drawn
    assert not any("corrupt" in name or "array" in name or "bad" in name for name in drawn), drawn


@pytest.mark.parametrize("name", ["tables", "figures"])
@pytest.mark.parametrize("empty", [True, False])
def test_no_runs_directory_or_no_finished_run_is_one_error_line(tmp_path, name, empty):
    runs = tmp_path / "runs"
    if empty:
        (runs / "unfinished").mkdir(parents=True)
    done = script(name, "--runs", runs, "--out", tmp_path / "out")
    reason = f"no finished run (result.json) under {runs}" if empty else f"no runs directory at {runs}"
    assert (done.returncode, done.stderr, done.stdout) == (1, f"error: {reason}\n", "")
    assert not (tmp_path / "out").exists()
