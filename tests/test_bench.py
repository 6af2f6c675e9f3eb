"""The benchmark runs and writes its CSV (what it measures is read by people, not asserted here)."""

import subprocess
import sys

import pandas as pd
import torch
from conftest import ROOT

from wconv.bench import epoch_seconds


def test_bench_script_writes_ratios(tmp_path):
    out = tmp_path / "overhead.csv"
    proc = subprocess.run(
        [sys.executable, "scripts/bench.py", "--no-models", "--repeats", "1", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out)
    assert set(frame["case"]) == {f"conv{k}x{k}_c{c}" for k in (3, 5, 7) for c in (16, 128)}
    for column in ("train_ratio", "preconditioned_ratio", "infer_ratio", "folded_ratio"):
        assert (frame[column] > 0).all()


def test_epoch_timing_runs_the_real_loop():
    row = epoch_seconds("dncnn", "denoising", 51_200, 2, torch.device("cpu"), fraction=0.0)
    assert row["measured_examples"] == 6 and row["standard_epoch_s"] > 0 and row["ratio"] > 0


def test_epoch_efficiency_runs_the_loop_at_the_experiments_cadence():
    from wconv.bench import epoch_efficiency

    row = epoch_efficiency("vgg16", torch.device("cpu"), epochs=2, width=0.125)
    assert row["val_every"] == 2  # configs/experiment/vgg16_cifar100_standard.yaml
    assert row["whole_s"] > row["steps_s"] > 0  # whole epochs hold the training steps and more
