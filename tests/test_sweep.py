"""The reproduce-table matrix: folders named from the resolved config, finished runs skipped."""

import pytest

from wconv import profiles, sweep
from wconv.tracking.records import read_json

TINY = [
    "logger=none",
    "progress=false",
    "train.epochs=1",
    "final.seeds=[0]",
    "search.max_evals=2",
    "data.limit_train=64",
    "data.limit_eval=32",
    "data.patches_per_epoch=32",
    "data.eval_max_size=40",
]


def test_matrix_covers_every_row_and_the_study():
    names = {j.name for j in sweep.table_jobs("smoke")}
    assert {
        "vgg16_cifar100_standard",
        "resnet18_cifar100_direct_l",
        "dncnn_div2k_learned",
        "nafnet_div2k_direct_l",
        "vgg16_cifar100_lr_tuned",
    } <= names and len(names) == 16
    study = sweep.study_jobs("paper")
    kernels = len(sweep.STUDY_KERNELS)  # density and lr-tuned per setting; families and a short search once
    settings = profiles.load("paper").study_settings
    assert len(study) == kernels * (2 * len(settings) + len(sweep.STUDY_FAMILIES) + 1)
    families = [j for j in study if any(o.startswith("density.family=") for o in j.overrides)]
    assert len(families) == kernels * len(sweep.STUDY_FAMILIES)
    short = [sweep.compose_job(j) for j in study if "short_search" in j.name]
    assert [(c.train.epochs, c.final.epochs) for c in short] == [(5, 20)] * kernels  # a quarter of the training
    assert sum("search.space=[{key:optim.lr,low:0.0001,high:0.01,log:true}]" in j.overrides for j in study) == 9
    assert all("data=photos" not in j.overrides for j in study)  # paper scale: DIV2K
    assert all("data=photos" in j.overrides for j in sweep.study_jobs("smoke"))


def test_folder_names_follow_the_config(tmp_path):
    job = sweep.table_jobs("smoke")[0]
    a = sweep.run_dir(job, tmp_path, sweep.compose_job(job, ["logger=none"]))
    b = sweep.run_dir(job, tmp_path, sweep.compose_job(job, ["logger=wandb", "progress=false"]))
    c = sweep.run_dir(job, tmp_path, sweep.compose_job(job, ["seed=1"]))
    assert a == b  # logging does not change what a run computes
    assert a != c and a.name.startswith(job.name + "-")


@pytest.mark.slow
def test_rerun_of_the_matrix_trains_nothing(tmp_path):
    jobs = [sweep.table_jobs("smoke")[1], sweep.study_jobs("smoke")[0]]  # vgg16 direct_l, one study point
    dirs = sweep.run_local(jobs, tmp_path, TINY)
    assert all((d / "result.json").exists() for d in dirs)
    assert read_json(dirs[1] / "result.json")["table"] == "density_study"

    def must_not_train(cfg, path):
        raise AssertionError(f"{path} was trained again")

    assert sweep.run_local(jobs, tmp_path, TINY, train=must_not_train) == dirs


def test_with_its_data_missing_the_paper_matrix_submits_nothing_and_names_each_dataset(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    empty, runs = tmp_path / "empty", tmp_path / "runs"
    empty.mkdir()
    command = [sys.executable, "scripts/reproduce_table.py", "--profile", "paper", "--launcher", "slurm", "--root",
               str(runs), "--", f"data.root={empty}"]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 2, proc.stderr
    assert "CIFAR-100 incomplete" in lines[0] and "download cifar100 --root" in lines[0] and "8 job(s)" in lines[0]
    assert "DIV2K incomplete" in lines[1] and "download div2k --root" in lines[1]
    assert not runs.exists()  # nothing written, nothing queued
