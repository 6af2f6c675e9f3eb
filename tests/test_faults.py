"""Faults and bad input through the real command line: one line and a non-zero exit for every bad input, nothing
written; a second process on a run directory refused; SIGUSR2/SIGTERM/SIGINT mid-training, then a resume that
repeats nothing and ends where an uninterrupted run ends (also under the local matrix of
``scripts/reproduce_table.py``); a full disk, freed, then resumed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli, start_cli

from wconv.tracking.records import read_json, read_jsonl

pytestmark = pytest.mark.slow

SEARCH = ["model=vgg11", "data=digits", "search=direct_l", "final.seeds=[0]", "final.baseline=false"]


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["model=vgg99"], "Could not find 'model/vgg99'; choose one of"),
        (["foo=1"], "unknown key foo"),
        (["model.width=["], "malformed override"),
        (["train.epochs=abc"], "train.epochs='abc': must be an integer"),
    ],
)
def test_bad_input_on_the_command_line_is_one_line_and_writes_nothing(tmp_path, tiny, args, message):
    run_dir = tmp_path / "run"
    proc = run_cli([*tiny, *args, f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert line.startswith("error: ") and message in line
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["optim=foo"], "Could not find 'optim/foo'"),
        (["data=mnist"], "Could not find 'data/mnist'"),
        (["density=foo"], "Could not find 'density/foo'"),
        (["density=fixed", "density.den=abc"], "density.den='abc': must be a list"),
        (["density.den=[0.7]"], "needs density=fixed"),
        (["optim.name=foo"], "optim.name='foo': must be 'sgd', 'adam' or 'adamw'"),
        (["optim.lr=-0.1"], "optim.lr=-0.1: must be greater than 0"),
        (["optim.lr=0"], "optim.lr=0: must be greater than 0"),
        (["data.limit_train=0"], "data.limit_train=0: must be greater than or equal to 1"),
        (["final.seeds=[0,0]"], "lists a seed twice"),
        (["search=direct_l", "search.penalty=nan"], "search.penalty=nan: must be a finite number"),
        (["data=image_folder", "data.folder=nowhere"], "data.test_folder must be set"),
        (["train.precision=fp8"], "train.precision='fp8': must be 'bf16' or 'fp32'"),
        (["train.val_every=0"], "train.val_every=0: must be greater than or equal to 1"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, tiny, args, message):
    """The same checks as on the command line (``check_overrides``, then ``validate``), in this process."""
    from conftest import compose_train

    from wconv.cli_checks import check_overrides
    from wconv.train import ConfigError, run

    run_dir = tmp_path / "run"
    problem, _ = check_overrides([*tiny, *args])
    if problem is None:
        with pytest.raises(ConfigError) as err:
            run(compose_train([*tiny, *args]), run_dir)
        problem = str(err.value)
    assert message in problem and "\n" not in problem
    assert not run_dir.exists()


def test_a_run_directory_that_is_a_file_or_read_only(tmp_path, tiny):
    as_file = tmp_path / "file"
    as_file.write_text("not a folder")
    proc = run_cli([*tiny, "train.epochs=1", "final.seeds=[0]", f"hydra.run.dir={as_file}"])
    assert proc.returncode == 2 and "is a file" in _one_error_line(proc)
    assert as_file.read_text() == "not a folder"
    if os.geteuid() == 0:
        pytest.skip("as root a read-only folder is still writable; the full-disk test covers write failures")
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    proc = run_cli([*tiny, "train.epochs=1", "final.seeds=[0]", f"hydra.run.dir={locked / 'run'}"])
    assert proc.returncode == 1 and "cannot write" in _one_error_line(proc)


def test_a_second_process_on_a_run_directory_is_refused(tmp_path, tiny):
    run_dir = tmp_path / "run"
    args = [*SEARCH, *tiny, "search.max_evals=8", "train.epochs=3", f"hydra.run.dir={run_dir}"]
    first = start_cli(args)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run_dir / ".lock").exists():
            time.sleep(0.1)
        second = run_cli(args)
        assert second.returncode == 2
        line = _one_error_line(second)
        assert f"is in use by pid {first.pid}" in line and "remove" in line
    finally:
        assert first.wait(timeout=300) == 0
    rows = read_jsonl(run_dir / "evaluations.jsonl")
    assert [r["index"] for r in rows] == list(range(8))  # each evaluation once
    assert not (run_dir / ".lock").exists()


def _wait_for(path: Path, rows: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) > rows:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never had {rows} rows")


@pytest.mark.parametrize("signum, status", [(signal.SIGUSR2, 140), (signal.SIGINT, 130)])  # TERM: USR2's path
def test_a_signal_mid_search_then_resume_repeats_nothing(tmp_path, tiny, signum, status):
    run_dir, ref_dir = tmp_path / "run", tmp_path / "ref"
    args = [*SEARCH, *tiny, "search.max_evals=3", "train.epochs=3"]
    proc = start_cli([*args, f"hydra.run.dir={run_dir}"], capture=True)
    _wait_for(run_dir / "metrics" / "eval-001.csv", 1, proc)  # in the second evaluation, after its first epoch
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith(("error", "stopped", "interrupted"))]
    assert len(lines) == 1 and "resume" in lines[0] and "Traceback" not in err
    before = read_jsonl(run_dir / "evaluations.jsonl")
    assert len(before) == 1
    assert (run_dir / "checkpoints" / "eval-001.pt").exists()  # Ctrl-C checkpoints as USR2 and TERM do
    resumed = run_cli([*args, f"hydra.run.dir={run_dir}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert run_cli([*args, f"hydra.run.dir={ref_dir}"]).returncode == 0
    rows = read_jsonl(run_dir / "evaluations.jsonl")
    assert rows[0] == before[0] and [r["index"] for r in rows] == [0, 1, 2]
    want = read_jsonl(ref_dir / "evaluations.jsonl")
    assert [r["objective"] for r in rows] == pytest.approx([r["objective"] for r in want], rel=1e-6)
    got, ref = (read_json(d / "trainings" / "final-weighted-seed0.json") for d in (run_dir, ref_dir))
    assert got["test"] == pytest.approx(ref["test"], rel=1e-6)


def test_sigterm_to_the_local_matrix_checkpoints_its_training_and_the_rerun_resumes(tmp_path):
    """``make reproduce-table`` on a login node or in one batch job: its runs train in its own process."""
    root = tmp_path / "runs"
    command = [sys.executable, "scripts/reproduce_table.py", "--profile", "smoke", "--root", str(root), "--out",
               str(tmp_path / "tables"), "--match", "density_study_short_search_k5", "--", "search.max_evals=2",
               "train.epochs=3", "data.patches_per_epoch=4096", "final.seeds=[0]"]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not list(root.glob("*/metrics/eval-000.csv")):
        time.sleep(0.02)  # the first evaluation is training
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["stopped on SIGTERM: the running training saved a checkpoint; run the same command to resume"]
    (run_dir,) = root.iterdir()
    assert (run_dir / "checkpoints" / "eval-000.pt").exists() and not (run_dir / "evaluations.jsonl").exists()
    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert [r["index"] for r in read_jsonl(run_dir / "evaluations.jsonl")] == [0, 1]
    assert (run_dir / "result.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_one_line_and_the_rerun_resumes(tmp_path, tiny):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        run_dir = disk / "run"
        args = [*SEARCH, *tiny, "search.max_evals=3", "train.checkpoint_minutes=0", f"hydra.run.dir={run_dir}"]
        full = run_cli(args)
        assert full.returncode == 1
        line = _one_error_line(full)
        assert "No space left on device" in line and "run the same command again" in line
        recorded = read_jsonl(run_dir / "evaluations.jsonl")
        subprocess.run(["mount", "-o", "remount,size=50m", str(disk)], check=True)
        again = run_cli(args)
        assert again.returncode == 0, again.stderr[-2000:]
        rows = read_jsonl(run_dir / "evaluations.jsonl")
        assert rows[: len(recorded)] == recorded and [r["index"] for r in rows] == [0, 1, 2]
    finally:
        subprocess.run(["umount", "-l", str(disk)])
