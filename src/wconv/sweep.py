"""The papers' matrix of runs (``make reproduce-table``): which runs, where each one lives, run what is missing.

A run's folder is named from its resolved config (experiment name plus the fingerprint of what it computes), so
a rerun finds finished runs and skips them, and an interrupted run resumes from its own records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from wconv import tasks
from wconv.models import task_of
from wconv.tracking.identity import run_fingerprint

log = logging.getLogger("wconv.sweep")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TABLE_MODELS = [("vgg16", "cifar100"), ("resnet18", "cifar100"), ("dncnn", "div2k"), ("nafnet", "div2k")]
CONVOLUTIONS = ("standard", "direct_l", "learned", "lr_tuned")  # lr_tuned: the control with the lr searched
# P1's density study: kernel sizes x a small grid of the learning model's hyperparameters (lr, batch, depth).
STUDY_KERNELS = (3, 5, 7)
STUDY_SETTINGS = (
    {"lr": 1e-3, "batch": 32, "depth": 5},
    {"lr": 3e-3, "batch": 32, "depth": 5},
    {"lr": 1e-3, "batch": 16, "depth": 5},
    {"lr": 1e-3, "batch": 32, "depth": 3},
)
# Per-model scale beyond the profile file (a profile cannot tell models apart). smoke: offline stand-ins at the
# smallest size at which every model learns (classifiers well above chance on digits, denoisers above their noisy
# input): the classifiers on all of digits, unaugmented, SGD at lr 0.02 without warm-up; the denoisers on 16x16
# crops, 128 steps; DnCNN of depth 6, NAFNet of one scale; the study with 16 features. cpu: the real grey sets
# (Train400 -> Set12, BSD68), the denoising table only (the classification models need a GPU), DnCNN of depth 10
# and 32 features, NAFNet of width 16, one study setting.
ONE_BLOCK = ["model.enc_blocks=[1,1,1,1]", "model.middle_blocks=1", "model.dec_blocks=[1,1,1,1]"]
ONE_SCALE = ["model.enc_blocks=[1]", "model.middle_blocks=1", "model.dec_blocks=[1]"]
SMOKE_CLASSIFIER = ["data.limit_train=null", "data.augment=false", "optim.lr=0.02", "optim.warmup_epochs=0"]
SMOKE_CROPS = ["data.patch_size=16", "data.patches_per_epoch=1024"]  # 64 steps of 16 crops per epoch
SCALE: dict[str, dict[str, list[str]]] = {
    "smoke": {
        "vgg16": SMOKE_CLASSIFIER,
        "resnet18": SMOKE_CLASSIFIER,
        "dncnn": [*SMOKE_CROPS, "train.batch_size=16", "model.depth=6", "model.width=0.5"],
        "nafnet": [*SMOKE_CROPS, "train.batch_size=16", "model.width=0.5", *ONE_SCALE],
        "study": ["data=photos", *SMOKE_CROPS, "model.width=0.5", "search.max_evals=4"],
    },
    "cpu": {
        "dncnn": ["data=train400", "model.depth=10", "model.width=0.5"],
        "nafnet": ["data=train400", "data.grey=true", "model.width=0.5", *ONE_BLOCK],  # the experiment is colour
        "study": ["data=train400", "data.patches_per_epoch=1600", "final.budgets=[0.25,0.5,2,4]"],
        # the gain followed to convergence (issue 22): the table's DnCNN to 8x, the study to 16x, its 3x3 row to
        # 64x on 5 seeds
        "dncnn_direct_l": ["final.budgets=[0.5,2,4,8]"],
        "study_k3": ["final.seeds=[0,1,2,3,4]", "final.budgets=[0.25,0.5,2,4,8,16,32,64]"],
        "study_k5": ["final.budgets=[0.25,0.5,2,4,8,16]"],
        "study_k7": ["final.budgets=[0.25,0.5,2,4,8,16]"],
    },
}
# The density study's first setting also searches each one-parameter density family (issue 26), as the free
# density is searched, and the free density with a quarter of the training per evaluation (issue 22: is a cheaper
# search as good?). Their final trainings are paired with the standard conv of the study row on the same seeds.
STUDY_FAMILIES = ("gaussian", "tent", "hann", "exponential")
SEARCH_FRACTION = 0.25
ALONE = ["final.baseline=false", "final.arms=[]", "final.budgets=[]"]  # the study row trains the standard conv
STUDY_SETTINGS_OF = {  # one setting below the paper profile: the smoke matrix stays a few minutes
    "smoke": ({"lr": 1e-3, "batch": 16, "depth": 5},),
    "cpu": ({"lr": 1e-3, "batch": 16, "depth": 5},),
}


def runs_root(profile: str) -> Path:
    """Where a profile's runs live: the cpu profile's records are committed (results/records/cpu, checkpoints
    ignored), the others' stay under runs/table/<profile>."""
    return Path("results/records/cpu") if profile == "cpu" else Path("runs/table") / profile


@dataclass(frozen=True)
class Job:
    """One run of the matrix: a name for people and the Hydra overrides that define it."""

    name: str
    overrides: tuple[str, ...]


def table_jobs(profile: str) -> list[Job]:
    """P2's tables: each model with the standard, DIRECT-L-optimal and learned convolution."""
    jobs = []
    for model, data in TABLE_MODELS:
        if profile == "cpu" and model not in SCALE["cpu"]:
            continue
        for conv in CONVOLUTIONS:
            experiment = f"{model}_{data}_{conv}"
            overrides = [f"experiment={experiment}", f"profile={profile}"]
            name = experiment.replace(data, "train400") if profile == "cpu" else experiment
            if profile == "smoke":
                overrides.append(f"data={tasks.get(task_of(model)).stand_in}")
            overrides += SCALE.get(profile, {}).get(model, []) + SCALE.get(profile, {}).get(f"{model}_{conv}", [])
            jobs.append(Job(name, tuple(overrides)))
    return jobs


def study_jobs(profile: str) -> list[Job]:
    """P1's density study: standard against DIRECT-L-optimal (with the arms of the experiment file), and the
    lr-tuned standard conv, per kernel size and hyperparameter setting; for the first setting, each density family
    and the search at ``SEARCH_FRACTION`` of the training."""
    jobs = []
    for k in STUDY_KERNELS:
        for i, s in enumerate(STUDY_SETTINGS_OF.get(profile, STUDY_SETTINGS)):
            overrides = [
                "experiment=density_study",
                f"profile={profile}",
                f"model.kernel_size={k}",
                f"optim.lr={s['lr']}",
                f"train.batch_size={s['batch']}",
                f"model.depth={s['depth']}",
            ]
            overrides += SCALE.get(profile, {}).get("study", [])
            setting = f"k{k}_lr{s['lr']:g}_b{s['batch']}_d{s['depth']}"
            jobs.append(Job(f"density_study_{setting}", (*overrides, *SCALE.get(profile, {}).get(f"study_k{k}", []))))
            lr_space = f"search.space=[{{key:optim.lr,low:{s['lr'] / 10:g},high:{s['lr'] * 10:g},log:true}}]"
            jobs.append(Job(f"density_study_lr_tuned_{setting}", (*overrides, lr_space, *ALONE)))
            if i > 0:
                continue
            for family in STUDY_FAMILIES:
                jobs.append(Job(f"density_study_{family}_{setting}", (*overrides, f"density.family={family}", *ALONE)))
            epochs = int(compose_job(Job("", tuple(overrides))).train.epochs)
            short = [f"final.epochs={epochs}", f"train.epochs={max(1, round(SEARCH_FRACTION * epochs))}"]
            jobs.append(Job(f"density_study_short_search_{setting}", (*overrides, *short, *ALONE)))
    return jobs


def compose_job(job: Job, extra: list[str] | None = None) -> DictConfig:
    """The job's resolved training config, composed exactly as ``python -m wconv.train`` would."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=[*job.overrides, *(extra or [])])


def checked_job(job: Job, extra: list[str] | None = None) -> DictConfig:
    """The job's config, composed and validated as ``python -m wconv.train`` would; ValueError with one line (an
    unknown key, a malformed override, an invalid value) naming the job."""
    from wconv.cli_checks import COMPOSE_ERRORS, explain
    from wconv.train import ConfigError, validate

    try:
        cfg = compose_job(job, extra)
        validate(cfg)
    except COMPOSE_ERRORS as err:
        raise ValueError(f"{job.name}: {explain(err)}") from None
    except ConfigError as err:
        raise ValueError(f"{job.name}: {err}") from None
    return cfg


def epochs_of(cfg: DictConfig) -> int:
    """The training epochs a run's config asks for: its search evaluations and its final trainings."""
    from wconv.train import budget

    return budget(cfg)[2]


def run_dir(job: Job, root: Path, cfg: DictConfig) -> Path:
    """``root/<job name>-<fingerprint of what it computes>``: equal configs share a folder, others never do."""
    return root / f"{job.name}-{run_fingerprint(cfg)}"


def is_done(path: Path, cfg: DictConfig) -> bool:
    """Whether the run in ``path`` has finished what ``cfg`` asks (its seeds, search budget, arms and budgets)."""
    from wconv.train import finished

    return finished(path, cfg) is not None


def run_local(
    jobs: list[Job],
    root: Path,
    extra: list[str] | None = None,
    train: Callable[[DictConfig, Path], float] | None = None,
) -> list[Path]:
    """Run every unfinished job in this process, one after the other; return all the jobs' folders."""
    from wconv.train import run

    train = train or run
    dirs = []
    for i, job in enumerate(jobs, 1):
        cfg = compose_job(job, extra)
        path = run_dir(job, root, cfg)
        dirs.append(path)
        if is_done(path, cfg):
            log.info(f"[{i}/{len(jobs)}] {job.name}: done already ({path})")
            continue
        log.info(f"[{i}/{len(jobs)}] {job.name} -> {path}")
        train(cfg, path)
    return dirs
