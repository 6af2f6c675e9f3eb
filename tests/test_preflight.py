"""The preflight (wconv.preflight, scripts/preflight.py) and the fabricated stand-ins it rehearses on: files in the
exact formats read by the real loaders, marked so that no table is made from them; every job measured, a broken
one a line and exit 1 while the others are still measured; predictions from the measurements."""

import csv
import json
import subprocess
import sys

import pytest
from conftest import ROOT

from wconv import preflight
from wconv.data import build
from wconv.data.fabricate import fabricate_cifar100, fabricate_div2k


def test_fabricated_cifar100_is_read_by_torchvision_and_checked_against_its_own_sums(tmp_path):
    fabricate_cifar100(tmp_path, train=500, test=100)
    data = build("cifar100", root=str(tmp_path))
    assert data.fabricated and data.sizes == {"train": 450, "val": 50, "test": 100}
    x, y = next(data.train_batches(8, 0, 0, "cpu"))
    assert x.shape == (8, 3, 32, 32) and int(y.max()) < 100
    with open(tmp_path / "cifar100" / "cifar-100-python" / "test", "r+b") as f:  # one flipped byte
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ValueError, match="failed torchvision's check"):
        build("cifar100", root=str(tmp_path))


def test_fabricated_div2k_is_read_as_div2k_and_marked(tmp_path):
    fabricate_div2k(tmp_path, train=3, valid=1, width=96, height=64)
    names = sorted(p.name for p in (tmp_path / "DIV2K" / "DIV2K_valid_HR").iterdir())
    assert names == ["0801.png"]
    data = build("div2k", root=str(tmp_path), val_fraction=0.34, patch_size=16, patches_per_epoch=8)
    assert data.fabricated and data.sizes["test"] == 1
    assert json.loads((tmp_path / "DIV2K" / "FABRICATED").read_text())["size"] == [96, 64]


def test_a_run_on_fabricated_data_is_recorded_as_such_and_kept_out_of_the_tables(tmp_path, capsys):
    from conftest import compose_train

    from wconv.reporting.collect import find_runs
    from wconv.train import run

    fabricate_div2k(tmp_path / "data", train=4, valid=1, width=64, height=48)
    cfg = compose_train(["model=dncnn", "data=div2k", "optim=adam", f"data.root={tmp_path / 'data'}", "device=cpu",
                         "data.val_fraction=0.25", "data.patch_size=16", "data.patches_per_epoch=16",
                         "model.depth=3", "model.width=0.25", "train.epochs=1", "train.batch_size=8",
                         "final.seeds=[0]", "logger=none", "progress=false"])  # fmt: skip
    run(cfg, tmp_path / "runs" / "fake")
    assert json.loads((tmp_path / "runs" / "fake" / "result.json").read_text())["fabricated"] is True
    assert find_runs(tmp_path / "runs") == []
    assert "trained on fabricated data" in capsys.readouterr().err


def test_predictions_rounds_sbatch_times_and_critical_paths():
    rounds = preflight.direct_rounds(1, 12)  # rounds of the batched search on a bowl: the centre alone first
    assert rounds[0] == 1 and sum(rounds) == 12 and len(rounds) < 12
    assert sum(preflight.direct_rounds(2, 20)) == 20
    assert preflight.slurm_time(3600) == "01:30:00"  # 1.25 h + 10 min, in quarter hours
    assert preflight.slurm_time(30 * 3600) == "1-13:45:00"
    assert preflight.critical_path([5, 4, 3, 3, 3], 1) == 18
    assert preflight.critical_path([5, 4, 3, 3, 3], 2) == 10  # longest first: 5+3 and 4+3+3
    assert preflight.critical_path([5, 4, 3, 3, 3], 8) == 5


@pytest.mark.slow
def test_preflight_measures_every_job_and_a_broken_one_is_one_line_and_exit_1(tmp_path, capsys):
    import torch

    from wconv.sweep import Job, study_jobs

    good = [j for j in study_jobs("smoke") if j.name.startswith(("density_study_k3", "density_study_gaussian_k3"))]
    broken = [
        Job("no_div2k", ("experiment=dncnn_div2k_standard", "profile=smoke", f"data.root={tmp_path / 'nowhere'}")),
        Job("unknown_key", ("experiment=dncnn_div2k_standard", "profile=smoke", "train.epoch=3")),
        Job("bad_value", ("experiment=dncnn_div2k_standard", "profile=smoke", "train.batch_size=0")),
    ]
    out = tmp_path / "pf.csv"
    options = preflight.Options(steps=1)
    status = preflight.run([broken[0], *good, *broken[1:]], ["logger=none"], torch.device("cpu"), options, out)
    printed = capsys.readouterr().out
    errors = [line for line in printed.splitlines() if line.startswith("error:")]
    assert status == 1 and len(errors) == 3, printed
    assert "no_div2k: DIV2K incomplete: 0 of 800 PNGs" in errors[0] and "download div2k" in errors[0]
    assert "unknown_key: unknown key train.epoch" in errors[1] and "bad_value: train.batch_size=0" in errors[2]
    rows = {r["job"]: r for r in csv.DictReader(open(out))}
    assert set(rows) == {j.name for j in good}  # the others were measured all the same
    study = rows["density_study_k3_lr0.001_b16_d5"]
    assert float(study["step_s"]) > 0 and float(study["flops_per_step"]) > 1e6 and study["status"] == "ok"
    assert int(study["evaluations"]) == 4 and float(study["predicted_hours"]) > 0 and study["slurm_time"]
    assert rows["density_study_gaussian_k3_lr0.001_b16_d5"]["step_s"] == study["step_s"]  # one shape, measured once
    assert "critical path 1 GPU(s)" in printed


@pytest.mark.slow
def test_the_preflight_command_line(tmp_path):
    out = tmp_path / "pf.csv"
    command = [sys.executable, "scripts/preflight.py", "--profile", "smoke", "--match", "dncnn_div2k_standard",
               "--steps", "1", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert [r["job"] for r in csv.DictReader(open(out))] == ["dncnn_div2k_standard"]
    proc = subprocess.run([*command, "--steps", "0"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --steps must be at least 1"


def test_the_prediction_counts_the_reused_best_evaluation_only_in_a_serial_search_and_names_the_longest_training():
    """The serial search's best evaluation is its weighted seed-0 training (one final training fewer); workers keep no
    model, so that training runs again. A job per training (submitit) must fit the longest: here the 4x budget."""
    from conftest import compose_train

    from wconv.plan import make

    args = ["model=vgg11", "data=digits", "search=direct_l", "search.max_evals=3", "train.epochs=2", "final.epochs=2"]
    args += ["final.seeds=[0,1]", "final.budgets=[4]", "final.arms=[]", "logger=none"]
    costs = preflight.Costs(step_s=1.0, steps_per_epoch=10, val_pass_s=0.0, test_pass_s=0.0, ckpt_s=0.0)
    serial = preflight.predict(make(compose_train(args)), costs)
    workers = preflight.predict(make(compose_train([*args, "search.workers=2"])), costs)
    # weighted, standard, weighted@4x, standard@4x on 2 seeds: 8 trainings, one of them the best evaluation
    assert serial["final_trainings"] == 7 and workers["final_trainings"] == 8
    assert serial["eval_s"] == workers["eval_s"] == 20.0
    assert serial["longest_training_s"] == workers["longest_training_s"] == 4 * 2 * 10 * 1.0
