"""Every experiment config composes and runs at smoke scale (on the offline stand-ins)."""

from pathlib import Path

import pytest
from conftest import CONFIGS, compose_train

from wconv.models import task_of
from wconv.tracking.records import read_json
from wconv.train import run

EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
STAND_IN = {"classification": "digits", "denoising": "photos"}


def test_there_is_one_experiment_per_table_row():
    rows = {
        f"{m}_{d}_{c}"
        for m, d in [("vgg16", "cifar100"), ("resnet18", "cifar100"), ("dncnn", "div2k"), ("nafnet", "div2k")]
        for c in ("standard", "direct_l", "learned")
    }
    assert rows <= set(EXPERIMENTS)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_at_smoke_scale(experiment, tmp_path: Path):
    paper = compose_train([f"experiment={experiment}", "profile=paper"])
    smoke = compose_train(
        [
            f"experiment={experiment}",
            "profile=smoke",
            f"data={STAND_IN[task_of(paper.model.name)]}",
            "logger=none",
            "progress=false",
            "train.epochs=1",
            "final.seeds=[0]",
            "search.max_evals=2",
            "data.limit_train=128",
            "data.limit_eval=64",
            "data.patches_per_epoch=64",
            "data.eval_max_size=48",
        ]
    )
    assert paper.train.epochs > smoke.train.epochs  # the profile, not the experiment, sets the scale
    run(smoke, tmp_path)
    result = read_json(tmp_path / "result.json")
    assert result["model"] == paper.model.name
    variant = next(iter(result["variants"].values()))
    assert variant["diverged"] == 0 and variant["test"], result
    if paper.search.name == "direct_l":
        assert result["search"]["evaluations"] == 2
