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

from wconv import profiles
from wconv.tracking.identity import run_fingerprint

log = logging.getLogger("wconv.sweep")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TABLE_MODELS = {"vgg16": "cifar100", "resnet18": "cifar100", "dncnn": "div2k", "nafnet": "div2k"}
CONVOLUTIONS = ("standard", "direct_l", "learned", "lr_tuned")  # lr_tuned: the control with the lr searched
STUDY_KERNELS = (3, 5, 7)  # P1's density study: kernel sizes x the profile's hyperparameter settings
# The density study's first setting also searches each one-parameter density family (issue 26), as the free
# density is searched, and the free density with a quarter of the training per evaluation (issue 22: is a cheaper
# search as good?). Their final trainings are paired with the standard conv of the study row on the same seeds.
STUDY_FAMILIES = ("gaussian", "tent", "hann", "exponential")
SEARCH_FRACTION = 0.25
ALONE = ["final.baseline=false", "final.arms=[]", "final.budgets=[]"]  # the study row trains the standard conv


def runs_root(profile: str) -> Path:
    """Where a profile's runs live (its file's ``matrix.runs_root``)."""
    return profiles.load(profile).runs_root


@dataclass(frozen=True)
class Job:
    """One run of the matrix: a name for people and the Hydra overrides that define it."""

    name: str
    overrides: tuple[str, ...]


def table_jobs(profile: str) -> list[Job]:
    """P2's tables: each of the profile's table models with the standard, DIRECT-L-optimal, learned and lr-tuned
    convolution."""
    p, jobs = profiles.load(profile), []
    for model in p.table_models:
        data = TABLE_MODELS[model]
        for conv in CONVOLUTIONS:
            experiment = f"{model}_{data}_{conv}"
            overrides = [f"experiment={experiment}", f"profile={profile}"]
            overrides += [*p.overrides.get(model, ()), *p.overrides.get(f"{model}_{conv}", ())]
            data_name = next((o.split("=")[1] for o in overrides if o.startswith("data=")), data)
            jobs.append(Job(experiment.replace(data, data_name) if data_name == "train400" else experiment,
                            tuple(overrides)))  # fmt: skip
    return jobs


def study_jobs(profile: str) -> list[Job]:
    """P1's density study: standard against DIRECT-L-optimal (with the arms of the experiment file), and the
    lr-tuned standard conv, per kernel size and hyperparameter setting; for the first setting, each density family
    and the search at ``SEARCH_FRACTION`` of the training."""
    p, jobs = profiles.load(profile), []
    for k in STUDY_KERNELS:
        for i, s in enumerate(p.study_settings):
            overrides = [
                "experiment=density_study",
                f"profile={profile}",
                f"model.kernel_size={k}",
                f"optim.lr={s['lr']}",
                f"train.batch_size={s['batch']}",
                f"model.depth={s['depth']}",
            ]
            overrides += p.overrides.get("study", ())
            setting = f"k{k}_lr{s['lr']:g}_b{s['batch']}_d{s['depth']}"
            jobs.append(Job(f"density_study_{setting}", (*overrides, *p.overrides.get(f"study_k{k}", ()))))
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
    from wconv.config import ConfigError
    from wconv.plan import make

    try:
        cfg = compose_job(job, extra)
        make(cfg)
    except COMPOSE_ERRORS as err:
        raise ValueError(f"{job.name}: {explain(err)}") from None
    except ConfigError as err:
        raise ValueError(f"{job.name}: {err}") from None
    return cfg


def missing_data(jobs: list[Job], configs: list[DictConfig]) -> list[str]:
    """One line per dataset the jobs need and do not find (with the command that downloads it), naming how many
    jobs need it; [] when every job's data is there."""
    from wconv.plan import make
    from wconv.preflight import check_data

    problems: dict[str, list[str]] = {}
    for job, cfg in zip(jobs, configs, strict=True):
        if problem := check_data(make(cfg)):
            problems.setdefault(problem, []).append(job.name)
    return [f"{problem} ({len(names)} job(s): {', '.join(names[:3])}{'...' if len(names) > 3 else ''})"
            for problem, names in problems.items()]  # fmt: skip


def epochs_of(cfg: DictConfig) -> int:
    """The training epochs a run's config asks for: its search evaluations and its final trainings."""
    from wconv.plan import make

    return make(cfg).budget()[2]


def run_dir(job: Job, root: Path, cfg: DictConfig) -> Path:
    """``root/<job name>-<fingerprint of what it computes>``: equal configs share a folder, others never do."""
    return root / f"{job.name}-{run_fingerprint(cfg)}"


def is_done(path: Path, cfg: DictConfig) -> bool:
    """Whether the run in ``path`` has finished what ``cfg`` asks (its seeds, search budget, arms and budgets)."""
    from wconv.config import ConfigError
    from wconv.plan import make
    from wconv.stages import finished
    from wconv.tracking.records import DamagedRecord

    try:
        return finished(path, make(cfg)) is not None
    except (ConfigError, DamagedRecord):  # it cannot run, or its result is damaged: its training will say so
        return False


def run_local(
    jobs: list[Job],
    root: Path,
    extra: list[str] | None = None,
    train: Callable[[DictConfig, Path], float] | None = None,
) -> list[Path]:
    """Run every unfinished job in this process, one after the other; return all the jobs' folders. A job that
    cannot go on (a damaged record, its data, another process on its folder) is one error line and the others run;
    SweepError then names them all. A stop request (``wconv.training.stop_on_signals``, which the caller installs)
    checkpoints the running training and ends the matrix with ``StopRequested``: no later job starts."""
    from wconv.config import ConfigError
    from wconv.data import DataError
    from wconv.tracking.identity import RecordMismatch
    from wconv.tracking.lock import RunLocked
    from wconv.tracking.records import DamagedRecord
    from wconv.train import run
    from wconv.training import STOP, StopRequested

    train = train or run
    dirs, failed = [], []
    for i, job in enumerate(jobs, 1):
        if STOP:  # asked between two jobs
            raise StopRequested(STOP[0])
        cfg = compose_job(job, extra)
        path = run_dir(job, root, cfg)
        dirs.append(path)
        try:
            if is_done(path, cfg):
                log.info(f"[{i}/{len(jobs)}] {job.name}: done already ({path})")
                continue
            log.info(f"[{i}/{len(jobs)}] {job.name} -> {path}")
            train(cfg, path)
        except (ConfigError, DamagedRecord, DataError, RecordMismatch, RunLocked) as err:
            log.error(f"error: {job.name}: {' '.join(str(err).split())}")
            failed.append(job.name)
    if failed:
        raise SweepError(f"{len(failed)} of {len(jobs)} run(s) could not go on: {', '.join(failed)} (see above)")
    return dirs


class SweepError(RuntimeError):
    """Some runs of the matrix could not go on; the others ran. The message names them."""
