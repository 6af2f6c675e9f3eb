"""Damage without loss: each damage a file can suffer (a crash on a network file system, an interrupted copy, a hand
edit), the command run next, its exit status, its one line, and what survived. A finished tiny search is made once
and copied for each case; SIGINT during an evaluation is tests/test_faults.py's."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli
from PIL import Image

from wconv.tracking.records import read_jsonl

pytestmark = pytest.mark.slow

RUN = ["model=vgg11", "data=digits", "search=direct_l", "search.max_evals=4", "train.epochs=1", "final.seeds=[0]",
       "profile=smoke", "logger=none", "progress=false", "data.limit_train=128", "data.limit_eval=64"]  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("base") / "run"
    proc = run_cli([*RUN, f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def stamps(run_dir: Path) -> dict[str, int]:
    """When each training's per-epoch record was last written: a training made again writes it anew."""
    return {p.stem: p.stat().st_mtime_ns for p in (run_dir / "metrics").glob("*.csv")}


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line or line.startswith("warning:")]


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def replace_line(path: Path, number: int, text: str) -> str:
    lines = path.read_text().splitlines(keepends=True)
    old, lines[number - 1] = lines[number - 1], text + "\n"
    path.write_text("".join(lines))
    return old


@dataclass
class Damage:
    name: str
    damage: Callable[[Path], object]  # done to a copy of the finished run; returns what `check` needs
    status: int
    line: str  # in the one warning (status 0) or the one error line (status != 0)
    check: Callable[[Path, object, dict[str, int], dict[str, int]], None]  # run dir, damage's, stamps before, after


def _rerun_without_result(run_dir: Path) -> None:
    (run_dir / "result.json").unlink()


def flip_a_middle_line(run_dir: Path) -> str:
    _rerun_without_result(run_dir)
    return replace_line(run_dir / "evaluations.jsonl", 2, "{garbage")  # evaluation 1's record, damaged


def insert_a_garbage_line(run_dir: Path) -> None:
    _rerun_without_result(run_dir)
    lines = (run_dir / "evaluations.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "evaluations.jsonl").write_text("".join([lines[0], "{garbage\n", *lines[1:]]))


def check_one_retrained(run_dir: Path, old: str, before: dict, after: dict) -> None:
    rows = read_jsonl(run_dir / "evaluations.jsonl", repair=False)
    assert sorted(r["index"] for r in rows) == [0, 1, 2, 3]
    assert [name for name in before if after[name] != before[name]] == ["eval-001"]  # exactly one trained again
    assert json.loads(old)["objective"] == pytest.approx(next(r for r in rows if r["index"] == 1)["objective"])
    damaged = [json.loads(line) for line in (run_dir / "evaluations.jsonl.damaged").read_text().splitlines()]
    assert damaged == [{"line": 2, "text": "{garbage"}]


def check_none_retrained(run_dir: Path, _: object, before: dict, after: dict) -> None:
    assert after == before and len(read_jsonl(run_dir / "evaluations.jsonl")) == 4
    assert (run_dir / "result.json").exists()


def truncate_a_checkpoint(run_dir: Path) -> None:
    (run_dir / "result.json").unlink()
    (run_dir / "trainings" / "final-standard-seed0.json").unlink()  # its training resumes from its checkpoint...
    checkpoint = run_dir / "checkpoints" / "final-standard-seed0.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 3])  # ...which a crash cut short


def check_checkpoint_set_aside(run_dir: Path, _: object, before: dict, after: dict) -> None:
    assert (run_dir / "checkpoints" / "final-standard-seed0.pt.damaged").exists()
    assert [name for name in before if after[name] != before[name]] == ["final-standard-seed0"]
    assert (run_dir / "result.json").exists()


def garbage(name: str) -> Callable[[Path], None]:
    def damage(run_dir: Path) -> None:
        (run_dir / name).write_text("{garbage")

    return damage


def check_untouched(run_dir: Path, _: object, before: dict, after: dict) -> None:
    assert after == before


def damage_a_training_record(run_dir: Path) -> dict:
    (run_dir / "result.json").unlink()
    record = run_dir / "trainings" / "final-weighted-seed0.json"
    old = json.loads(record.read_text())
    record.write_text('{"den": [0.7]')
    return old


def check_training_record_set_aside(run_dir: Path, old: dict, before: dict, after: dict) -> None:
    assert (run_dir / "trainings" / "final-weighted-seed0.json.damaged").exists()
    new = json.loads((run_dir / "trainings" / "final-weighted-seed0.json").read_text())
    assert new["status"] == "ok" and new["test"] == pytest.approx(old["test"])  # made again from its checkpoint
    assert after == before  # its last checkpoint held the whole training: scored again, not trained


DAMAGES = [
    Damage("a middle line of evaluations.jsonl", flip_a_middle_line, 0, "evaluations.jsonl line 2 is damaged",
           check_one_retrained),
    Damage("a garbage line inserted", insert_a_garbage_line, 0, "evaluations.jsonl line 2 is damaged",
           check_none_retrained),
    Damage("a truncated checkpoint", truncate_a_checkpoint, 0, "final-standard-seed0.pt cannot be loaded",
           check_checkpoint_set_aside),
    Damage("a damaged training record", damage_a_training_record, 0, "final-weighted-seed0.json is damaged",
           check_training_record_set_aside),
    Damage("garbage run.json", garbage("run.json"), 2, "run.json is damaged: not valid JSON", check_untouched),
    Damage("garbage result.json", garbage("result.json"), 2, "result.json is damaged: not valid JSON",
           check_untouched),
]  # fmt: skip


@pytest.mark.parametrize("case", DAMAGES, ids=[d.name for d in DAMAGES])
def test_a_damaged_record_costs_only_what_it_held(case: Damage, finished: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    before = stamps(run_dir)
    held = case.damage(run_dir)
    proc = run_cli([*RUN, f"hydra.run.dir={run_dir}"])
    assert proc.returncode == case.status, proc.stderr[-3000:]
    if case.status == 0:
        (line,) = [w for w in warnings(proc.stdout + proc.stderr) if case.line.split()[0] in w]
        assert case.line in line and "Traceback" not in proc.stderr
    else:
        (line,) = errors(proc.stderr)
        assert line.startswith("error: ") and case.line in line and "move it aside" in line
    case.check(run_dir, held, before, stamps(run_dir))


def test_a_result_moved_aside_is_rebuilt_from_the_records_without_training(finished: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    before = stamps(run_dir)
    want = json.loads((run_dir / "result.json").read_text())
    (run_dir / "result.json").write_text("{garbage")
    assert run_cli([*RUN, f"hydra.run.dir={run_dir}"]).returncode == 2
    os.replace(run_dir / "result.json", run_dir / "result.json.bak")  # what the line says to do
    proc = run_cli([*RUN, f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stamps(run_dir) == before  # nothing trained again
    assert json.loads((run_dir / "result.json").read_text())["variants"] == want["variants"]


def test_a_run_folder_moved_elsewhere_resumes_there(finished: Path, tmp_path: Path):
    moved = tmp_path / "elsewhere" / "rün with spaces"
    moved.parent.mkdir()
    shutil.copytree(finished, moved)
    (moved / "result.json").unlink()
    before = stamps(moved)
    proc = run_cli([*RUN, f"hydra.run.dir='{moved}'"])  # quoted, as Hydra wants a value with spaces
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stamps(moved) == before and (moved / "result.json").exists()


def test_a_run_path_too_long_for_the_file_system_is_one_line(tmp_path: Path):
    run_dir = tmp_path / ("x" * 300)
    proc = run_cli([*RUN, f"hydra.run.dir={run_dir}"])
    (line,) = errors(proc.stderr)
    assert proc.returncode in (1, 2) and line.startswith("error: ") and "too long" in line.lower()


def _images(folder: Path, kind: str) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    if kind == "not images":
        (folder / "notes.txt").write_text("no image here")
    elif kind == "corrupt":
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(folder / "a.png")
        (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    elif kind == "small":
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(folder / f"{i}.png")
    elif kind == "mixed":
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(folder / "grey.png")
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / "colour.png")
        Image.fromarray(rng.integers(0, 256, (56, 40, 3), dtype=np.uint8)).save(folder / "other.png")


IMAGES = [
    ("empty", 2, "no .png/.jpg/.jpeg/.bmp/.tif/.tiff image in"),
    ("not images", 2, "no .png/.jpg/.jpeg/.bmp/.tif/.tiff image in"),
    ("corrupt", 2, "cannot read image"),
    ("small", 2, "smaller than patch_size 32"),
    ("mixed", 0, ""),
]


@pytest.mark.parametrize(("kind", "status", "line"), IMAGES, ids=[k for k, _, _ in IMAGES])
def test_an_image_folder_that_cannot_train_is_one_line(kind: str, status: int, line: str, tmp_path: Path):
    folder = tmp_path / "images"
    folder.mkdir() if kind == "empty" else _images(folder, kind)
    args = ["model=dncnn", "data=image_folder", f"data.folder={folder}", f"data.test_folder={folder}",
            "data.val_fraction=0.34", "data.patch_size=32", "data.patches_per_epoch=16", "model.depth=3",
            "model.width=0.25", "optim=adam", "train.epochs=1", "train.batch_size=8", "final.seeds=[0]",
            "profile=smoke", "data.limit_train=null", "data.limit_eval=null", "data.eval_max_size=null",
            "logger=none", "progress=false", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    proc = run_cli(args)
    assert proc.returncode == status, proc.stderr[-3000:]
    if status:
        (error,) = errors(proc.stderr)
        assert error.startswith("error: ") and line in error
        assert not (tmp_path / "run").exists()


def _tables(root: Path, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "scripts/tables.py", "--profile", "smoke", "--runs", str(root), "--out", str(out)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _shape(field: str, value: object) -> Callable[[dict], None]:
    def damage(result: dict) -> None:
        if value is None:
            del result[field]
        elif field == "variants":
            result["variants"]["weighted"] = value
        else:
            result[field] = value

    return damage


SHAPES = [
    ("without variants", _shape("variants", None), "field variants is missing"),
    ("a string for a variant", _shape("variants", "weighted"), "field variants.weighted holds"),
    ("an unknown density label", _shape("density", "quantum"), "unknown label 'quantum'"),
]


@pytest.mark.parametrize(("name", "damage", "line"), SHAPES, ids=[s[0] for s in SHAPES])
def test_tables_skip_a_record_of_the_wrong_shape_with_one_warning(finished, tmp_path, name, damage, line):
    root = tmp_path / "runs"
    shutil.copytree(finished, root / "good")
    shutil.copytree(finished, root / "bad")
    result = json.loads((root / "bad" / "result.json").read_text())
    result["fingerprint"] = "another"  # not a copy of the good one: its own run
    damage(result)
    (root / "bad" / "result.json").write_text(json.dumps(result))
    proc = _tables(root, tmp_path / "tables")
    assert proc.returncode == 0, proc.stderr
    (warning,) = [w for w in warnings(proc.stderr)]
    assert "bad" in warning and line in warning
    assert (tmp_path / "tables" / "classification.csv").exists()


def test_a_copied_or_nested_run_folder_counts_once(finished, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(finished, root / "run")
    alone = _tables(root, tmp_path / "alone")
    shutil.copytree(finished, root / "run.bak")  # cp -r run run.bak
    shutil.copytree(finished, root / "run" / "nested")  # a copy inside the run's own folder
    proc = _tables(root, tmp_path / "copied")
    assert proc.returncode == 0 and alone.returncode == 0
    copies = [w for w in warnings(proc.stderr) if "the same run as" in w]
    assert len(copies) == 2 and all(str(root / "run") in w for w in copies)
    for name in ("classification.csv", "classification.md"):
        assert (tmp_path / "copied" / name).read_text() == (tmp_path / "alone" / name).read_text()


def test_reproduce_table_overrides_after_the_double_dash_with_dry_run_and_match():
    command = [sys.executable, "scripts/reproduce_table.py", "--profile", "smoke", "--dry-run", "--match", "dncnn"]
    proc = subprocess.run([*command, "--", "final.seeds=[0]"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "dncnn_div2k_direct_l" in proc.stdout and "vgg16" not in proc.stdout
    bad = subprocess.run([*command, "--", "final.seed=[0]"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    (line,) = errors(bad.stderr)
    assert bad.returncode == 2 and line.startswith("error: dncnn_div2k_standard: unknown key final.seed")


@pytest.mark.parametrize(
    "command",
    [
        ["scripts/figures.py", "--profile", "nope"],
        ["scripts/tables.py", "--runs"],
        ["-m", "wconv.data.download", "nope"],
        ["-m", "wconv.data.download", "div2k", "--root"],
    ],
)
def test_bad_arguments_to_the_scripts_are_one_line_and_exit_2(command):
    proc = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120)
    (line,) = errors(proc.stderr)
    assert proc.returncode == 2 and line.startswith("error: ") and "(see --help)" in line
