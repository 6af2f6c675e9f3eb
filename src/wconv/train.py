"""``python -m wconv.train``: one training, or the nested DIRECT-L x SGD density search, then final seeds.

Flow: config -> checks -> data -> [search: DIRECT-L proposes den, each evaluation trains from the same initial
weights and data and returns a validation objective] -> final trainings of the density and the standard
convolution over ``final.seeds`` on the test split -> ``result.json``. Every step is recorded atomically in
the run directory, and running the same command again resumes where it stopped. Under ``torchrun`` the trainings
run data-parallel (``wconv.distributed``): every rank runs this same flow, rank 0 alone writes.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from wconv import arms, distributed, models, objectives, parallel, space, stats
from wconv import data as wdata
from wconv.arms import Variant
from wconv.nn.density import FAMILIES, get_family, parse_den
from wconv.search import Evaluation, check_bounds, direct_l, direct_l_batched
from wconv.tracking.identity import RecordMismatch, check_run_dir, claim_run_dir, conv_of, run_fingerprint
from wconv.tracking.lock import RunLock, RunLocked
from wconv.tracking.progress import EpochLog
from wconv.tracking.provenance import provenance
from wconv.tracking.records import load_checkpoint, read_json, read_jsonl, write_json
from wconv.tracking.wandb_logger import NullTracker, WandbTracker
from wconv.training import (
    OPTIMIZERS,
    DensityOptimConfig,
    LoopOptions,
    OptimConfig,
    StopRequested,
    TrainResult,
    evaluate,
    request_stop,
    train,
)

log = logging.getLogger("wconv.train")
BEST_EVAL = "best-eval.pt"  # the best search evaluation's model, kept for the final seed that repeats it


class ConfigError(ValueError):
    """A configuration that cannot run; raised before any training or writing."""


def search_bounds(cfg: DictConfig) -> list[list[float]]:
    """The box the search divides: ``search.space``'s, else ``search.bounds`` or the density family's default box
    for the model's kernel size."""
    if (dims := space.parse(cfg)) is not None:
        return [d.bounds() for d in dims]
    k = int(cfg.model.kernel_size)
    family = get_family(cfg.density.family)
    if cfg.search.bounds is None:
        if (bounds := family.default_bounds(k)) is None:
            raise ConfigError(f"no default search.bounds for kernel size {k}: set search.bounds=[[low,high],...]")
        return bounds
    try:
        return check_bounds(OmegaConf.to_object(cfg.search.bounds), family.n_values(k))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _int(cfg: DictConfig, key: str, low: int | None = 1, optional: bool = False) -> int | None:
    """The integer at ``key``, at least ``low``; one ConfigError naming the key otherwise."""
    value = OmegaConf.select(cfg, key)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{key} must be at least {low}, got {value}")
    return value


def _float(cfg: DictConfig, key: str, positive: bool = False) -> float:
    """The finite number at ``key`` (positive if asked); one ConfigError naming the key otherwise."""
    value = OmegaConf.select(cfg, key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{key} must be positive, got {value!r}")
    return float(value)


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before anything is written or trained: one clear ConfigError each."""
    if cfg.model.name not in models.MODEL_NAMES:
        raise ConfigError(f"unknown model {cfg.model.name!r}; choose one of {', '.join(models.MODEL_NAMES)}")
    if cfg.data.name not in wdata.DATA_NAMES:
        raise ConfigError(f"unknown data {cfg.data.name!r}; choose one of {', '.join(wdata.DATA_NAMES)}")
    if missing := [key for key in cfg.data if OmegaConf.is_missing(cfg.data, key)]:
        raise ConfigError(
            f"data={cfg.data.name} needs {', '.join(f'data.{key}' for key in missing)} "
            f"(e.g. data.{missing[0]}=path/to/images): see configs/data/{cfg.data.name}.yaml"
        )
    for key in ("limit_train", "limit_eval"):
        if key in cfg.data:
            _int(cfg, f"data.{key}", optional=True)
    k = _int(cfg, "model.kernel_size")
    if k % 2 == 0:
        raise ConfigError(f"model.kernel_size must be odd and positive, got {k}")
    if cfg.density.family not in FAMILIES:
        raise ConfigError(f"density.family must be one of {', '.join(FAMILIES)}, got {cfg.density.family!r}")
    kind = cfg.density.kind
    if kind not in ("standard", "fixed", "learned"):
        raise ConfigError(f"density.kind must be standard, fixed or learned, got {kind!r}")
    if kind == "standard" and cfg.density.den is not None:
        raise ConfigError(f"density.den={cfg.density.den} needs density=fixed (density=standard has no density)")
    if kind == "fixed":
        den = cfg.density.den
        den = OmegaConf.to_object(den) if OmegaConf.is_config(den) else den
        if den is None:
            raise ConfigError("density=fixed needs density.den, e.g. density.den=[0.7] for 3x3 kernels")
        try:
            parse_den(den, (k, k), f"density.den for kernel {k}x{k}", get_family(cfg.density.family))
        except ValueError as err:
            raise ConfigError(str(err)) from None
    for key in ("train.epochs", "final.epochs", "train.batch_size", "train.val_every"):
        _int(cfg, key)
    if _float(cfg, "train.checkpoint_minutes") < 0:
        raise ConfigError(f"train.checkpoint_minutes must be >= 0 (0: every epoch), got {cfg.train.checkpoint_minutes}")
    if cfg.train.precision not in ("bf16", "fp32"):
        raise ConfigError(f"train.precision must be bf16 or fp32, got {cfg.train.precision!r}")
    seeds = OmegaConf.to_object(cfg.final.seeds) if OmegaConf.is_list(cfg.final.seeds) else None
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"final.seeds must list at least one seed, as integers, e.g. [0,1,2]; got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"final.seeds lists a seed twice ({seeds}): each seed trains once; give distinct seeds")
    try:
        arms.check(list(cfg.final.get("arms") or []), list(cfg.final.get("budgets") or []))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if cfg.optim.name not in OPTIMIZERS:
        raise ConfigError(f"optim.name must be one of {', '.join(OPTIMIZERS)}, got {cfg.optim.name!r}")
    _float(cfg, "optim.lr", positive=True)
    if kind == "learned":
        _float(cfg, "density.lr", positive=True)
    if cfg.search.name == "direct_l":
        if kind != "standard":
            raise ConfigError(f"search=direct_l finds den itself: drop density={kind} (keep density=standard)")
        _int(cfg, "search.max_evals")
        _float(cfg, "search.penalty")
        try:
            objective = objectives.get(cfg.search.objective)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if (task := models.task_of(cfg.model.name)) not in objective.tasks:
            raise ConfigError(f"search.objective={objective.name} does not apply to {task}: use val_loss")
        try:
            searches_keys = space.parse(cfg) is not None
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if k == 1 and not searches_keys:
            raise ConfigError("a 1x1 kernel has no density to search: set model.kernel_size to 3, 5 or 7")
        search_bounds(cfg)
        s = cfg.search
        try:
            parallel.check(int(s.workers), s.launcher, s.ftol_rel, s.xtol_rel, distributed.is_distributed())
        except ValueError as err:
            raise ConfigError(str(err)) from None
    elif cfg.search.name != "none":
        raise ConfigError(f"search must be none or direct_l, got {cfg.search.name!r}")


def data_options(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.data`` less its name; options this dataset does not take (a profile's denoising settings on a
    classification set, say) are dropped. Typos cannot reach here: Hydra refuses unknown keys."""
    chosen = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "name"}
    valid = wdata.options(cfg.data.name)
    if dropped := sorted(set(chosen) - set(valid)):  # a profile's denoising crops on a classification set, say
        log.debug(f"data option(s) {', '.join(dropped)} do not apply to {cfg.data.name}: ignored")
    return {k: v for k, v in chosen.items() if k in valid}


def _optim(cfg: DictConfig) -> tuple[OptimConfig, DensityOptimConfig | None]:
    o = OmegaConf.to_container(cfg.optim, resolve=True)
    optim = OptimConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in o.items()})
    d = cfg.density
    den_optim = (
        DensityOptimConfig(lr=d.lr, weight_decay=d.weight_decay, t0=d.t0, t_mult=d.t_mult)
        if d.kind == "learned"
        else None
    )
    return optim, den_optim


class Runner:
    """Builds models and runs recorded trainings for one run directory."""

    def __init__(self, cfg: DictConfig, run_dir: Path, data: Any, tracker: Any) -> None:
        self.cfg, self.run_dir, self.data, self.tracker = cfg, run_dir, data, tracker
        self.device = distributed.local_device(
            torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
        )
        self.progress = bool(cfg.progress) and distributed.is_main()
        self.optim, self.den_optim = _optim(cfg)
        t = cfg.train
        self.loop = LoopOptions(float(t.checkpoint_minutes), int(t.val_every), str(t.precision), bool(t.compile))
        self.amp = self.device.type == "cuda" and self.loop.precision == "bf16"
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once

    def build_model(self, seed: int, den: Any, learn_den: bool, arm: str | None = None) -> torch.nn.Module:
        """Same seed, same initial weights: the density is applied after the standard model is built."""
        return self._build(seed, den, learn_den, arm)[0]

    def _build(self, seed: int, den: Any, learn_den: bool, arm: str | None) -> tuple[torch.nn.Module, Any]:
        """The model and what ``train`` calls with its optimisers (an arm's step scaling, or None)."""
        options = {k: v for k, v in OmegaConf.to_container(self.cfg.model, resolve=True).items() if k != "name"}
        options.update(self.data.task.model_options(self.data))
        density = {"skip_depthwise": bool(self.cfg.density.skip_depthwise), "family": self.cfg.density.family}
        torch.manual_seed(seed)
        if arm is not None:  # a control: the standard model, changed as the arm says (wconv.arms)
            control = arms.ARMS[arm]
            options["kernel_size"] = int(options.get("kernel_size", 3)) + control.kernel_change
            create = functools.partial(models.create, self.cfg.model.name, **density, **options)
            return control.build(create, den, self.optim.name, **density)
        return models.create(self.cfg.model.name, den=den, learn_den=learn_den, **density, **options), None

    def changed(self, changes: dict[str, Any]) -> Runner:
        """This runner with config ``changes`` (a searched point): same run directory, data and tracker."""
        if not changes:
            return self
        cfg = OmegaConf.create(OmegaConf.to_container(self.cfg, resolve=True))
        for key, value in changes.items():
            OmegaConf.update(cfg, key, value)
        other = Runner(cfg, self.run_dir, self.data, self.tracker)
        other.device, other.progress = self.device, self.progress
        return other

    def train_one(
        self,
        name: str,
        job_type: str,
        seed: int,
        den: Any,
        learn_den: bool,
        epochs: int,
        split: str,
        arm: str | None = None,
    ):
        model, prepare = self._build(seed, den, learn_den, arm)
        run = self.tracker.start(
            name,
            job_type,
            {**OmegaConf.to_container(self.cfg, resolve=True), "seed": seed, "variant": name},
            den=den,
        )
        progress = EpochLog(name, epochs, self.run_dir / "metrics" / f"{name}.csv", self.data.task.curve[0])

        def on_epoch(epoch: int, row: dict) -> None:
            run.log({**row, "epoch": epoch})
            if distributed.is_main():
                progress(row)

        try:
            result = train(
                model,
                self.data,
                seed=seed,
                epochs=epochs,
                batch_size=int(self.cfg.train.batch_size),
                optim=self.optim,
                density_optim=self.den_optim,
                device=self.device,
                eval_split=split,
                checkpoint=self.run_dir / "checkpoints" / f"{name}.pt",
                on_epoch=on_epoch,
                progress=self.progress,
                desc=name,
                loop=self.loop,
                prepare=prepare,
            )
            run.summary({f"{split}_{k}": v for k, v in result.metrics.items()} | {"status": result.status})
        finally:
            run.finish()
        if split == "test" and self.data.task.saves_examples and result.status == "ok" and distributed.is_main():
            self.save_example(model, self.run_dir / "examples" / f"{name}.npz")
        return result

    def reuse_best_eval(self, name: str, seed: int, den: Any) -> TrainResult | None:
        """The search's best evaluation as this final training when it is the same training (same seed, density
        and epochs; it differs only by the split it is scored on): its model scored on the test split, no retraining.
        None when there is no such evaluation. Rank 0 decides, so that every rank takes the same path."""
        cfg, saved = self.cfg, self.run_dir / "checkpoints" / BEST_EVAL
        if seed != int(cfg.seed) or int(cfg.final.epochs) != int(cfg.train.epochs):
            return None
        record = distributed.from_main(self._best_eval, den)
        if record is None:
            return None
        state = load_checkpoint(saved)
        distributed.barrier()  # every rank has read it before rank 0 renames it
        model = self.build_model(seed, den, False).to(self.device)
        model.load_state_dict(state["model"])
        batch = int(cfg.train.batch_size)
        metrics = distributed.from_main(evaluate, model, self.data, "test", batch, self.device, self.amp)
        log.info(f"{name}: the same training as search evaluation {record['index']}: its model scored on the test set")
        if distributed.is_main():
            saved.replace(self.run_dir / "checkpoints" / f"{name}.pt")
            (self.run_dir / "checkpoints" / f"{BEST_EVAL}.json").unlink()
            if self.data.task.saves_examples:
                self.save_example(model, self.run_dir / "examples" / f"{name}.npz")
        history = state["history"]
        per_step = statistics.median(r["seconds"] for r in history) / self.data.steps_per_epoch(batch)
        return TrainResult("ok", metrics, history, per_step)

    def _best_eval(self, den: Any) -> dict[str, Any] | None:
        """The kept best evaluation's record when it trained ``den`` to the end, else None."""
        info = self.run_dir / "checkpoints" / f"{BEST_EVAL}.json"
        if not info.exists():
            return None
        record = read_json(info)
        state = load_checkpoint(self.run_dir / "checkpoints" / BEST_EVAL)
        ok = record["den"] == den and state is not None and state["epoch"] == int(self.cfg.train.epochs)
        return record if ok else None

    @torch.no_grad()
    def save_example(self, model: torch.nn.Module, path: Path, size: int = 256) -> None:
        """The first test image, clean, noisy and denoised (centre crop): the figures' denoising grid."""
        noisy, clean = next(iter(self.data.eval_batches("test", 1, self.device)))
        h, w = clean.shape[-2:]
        top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
        noisy, clean = (t[:1, :, top : top + size, left : left + size] for t in (noisy, clean))
        denoised = model.eval()(noisy).float().clamp(0, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            k: v[0].cpu().numpy().astype("float32")
            for k, v in [("clean", clean), ("noisy", noisy), ("denoised", denoised)]
        }
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)


@contextmanager
def search_record(path: Path) -> Iterator[Path]:
    """The search's evaluations record: rank 0 appends to ``path``; other ranks replay a private copy of it."""
    if distributed.is_main():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="wconv-rank") as scratch:
        copy = Path(scratch) / path.name
        if path.exists():
            shutil.copyfile(path, copy)
        yield copy


def search_evaluation(runner: Runner, index: int, den: list[float], keep_checkpoint: bool = False) -> Evaluation:
    """Evaluation ``index`` of the search: a training from ``cfg.seed`` with ``den``, its validation objective.
    Its last checkpoint is deleted unless ``keep_checkpoint`` (the serial search keeps the best one)."""
    cfg = runner.cfg
    if (dims := space.parse(cfg)) is not None:  # a point of config keys, trained with the standard conv
        runner, den = runner.changed(space.values(dims, den)), None
    res = runner.train_one(f"eval-{index:03d}", "search", int(cfg.seed), den, False, int(cfg.train.epochs), "val")
    if distributed.is_main() and not keep_checkpoint:
        (runner.run_dir / "checkpoints" / f"eval-{index:03d}.pt").unlink(missing_ok=True)
    if res.status != "ok":
        return Evaluation(float("nan"), "diverged", {"history": res.history})
    value = objectives.get(cfg.search.objective).value(res.metrics)
    return Evaluation(value, "ok", {**res.metrics, "seconds_per_step": res.seconds_per_step})


def run_search(runner: Runner) -> dict[str, Any]:
    cfg = runner.cfg
    bounds = search_bounds(cfg)
    from tqdm.auto import tqdm

    bar = tqdm(total=int(cfg.search.max_evals), desc="DIRECT-L", disable=None if runner.progress else True)

    best_so_far = [math.inf]
    dims = space.parse(cfg)  # None: the density
    checkpoints = runner.run_dir / "checkpoints"

    def evaluate(index: int, den: list[float]) -> Evaluation:
        distributed.check_same(den, f"the density of evaluation {index}")  # NLopt runs on every rank
        result = search_evaluation(runner, index, den, keep_checkpoint=True)
        last = checkpoints / f"eval-{index:03d}.pt"
        if distributed.is_main():
            if result.status == "ok" and result.objective < best_so_far[0] and last.exists():
                last.replace(checkpoints / BEST_EVAL)  # the final seed that repeats it will reuse this model
                write_json(checkpoints / f"{BEST_EVAL}.json", {"index": index, "den": den})
            last.unlink(missing_ok=True)
        return result

    def report(index: int, row: dict) -> None:
        bar.update(1)
        if not distributed.is_main():
            return
        if row["status"] == "ok":
            best_so_far[0] = min(best_so_far[0], row["objective"])
        point = (
            space.describe(space.values(dims, row["den"]))
            if dims
            else f"den=[{', '.join(f'{v:.4g}' for v in row['den'])}]"
        )
        log.info(
            f"eval {index + 1}/{cfg.search.max_evals} {point} {cfg.search.objective}={row['objective']:.5g} "
            f"best {best_so_far[0]:.5g} ({row['status']}, {row['seconds']:.1f} s)"
        )

    with search_record(runner.run_dir / "evaluations.jsonl") as record:
        if int(cfg.search.workers) > 1:  # each round's evaluations side by side (wconv.parallel)
            with parallel.started(cfg, runner.run_dir) as workers:
                best = direct_l_batched(
                    workers, bounds, int(cfg.search.max_evals), record, float(cfg.search.penalty), on_result=report
                )
        else:
            best = direct_l(
                evaluate,
                bounds,
                int(cfg.search.max_evals),
                record,
                penalty=float(cfg.search.penalty),
                ftol_rel=float(cfg.search.ftol_rel),
                xtol_rel=float(cfg.search.xtol_rel),
                on_result=report,
            )
    bar.close()
    if distributed.is_main():
        for stale in (runner.run_dir / "checkpoints").glob("eval-*.pt"):
            stale.unlink()
    return best


def run_final(runner: Runner, variants: list[Variant]) -> dict[str, Any]:
    """Train each variant on every final seed (skipping recorded ones); mean and standard error per metric."""
    cfg, out = runner.cfg, {}
    for v in variants:
        variant, den, learn_den = v.name, v.den, v.learn_den
        epochs = v.epochs(int(cfg.final.epochs))
        per_seed = {}
        for seed in cfg.final.seeds:
            name = f"final-{variant}-seed{seed}"
            path = runner.run_dir / "trainings" / f"{name}.json"
            if path.exists() and read_json(path)["den"] != den:  # a larger search budget found another density
                log.info(
                    f"{name}: recorded for den={read_json(path)['den']}, the search now gives {den}: training again"
                )
                path.unlink()
                (runner.run_dir / "checkpoints" / f"{name}.pt").unlink(missing_ok=True)
            if not path.exists():
                res = runner.reuse_best_eval(name, int(seed), den) if variant == "weighted" else None
                if res is None:
                    res = runner.changed(v.changes).train_one(
                        name, v.job_type, int(seed), den, learn_den, epochs, "test", arm=v.arm
                    )
                if distributed.is_main():
                    write_json(
                        path,
                        {
                            "name": name,
                            "variant": variant,
                            "seed": int(seed),
                            "den": den,
                            "epochs": epochs,
                            "status": res.status,
                            "test": res.metrics,
                            "seconds_per_step": res.seconds_per_step,
                            "history": res.history,
                            "densities": res.densities if learn_den else {},
                        },
                    )
                distributed.barrier()  # the other ranks read rank 0's record
            per_seed[int(seed)] = read_json(path)
        ok = [r for r in per_seed.values() if r["status"] == "ok"]
        keys = sorted({k for r in ok for k in r["test"]})
        out[variant] = {
            "den": den,
            "learned": learn_den,
            "arm": v.arm,
            "epochs": epochs,
            "changes": v.changes,
            "seeds": {s: {"status": r["status"], **r["test"]} for s, r in per_seed.items()},
            "diverged": len(per_seed) - len(ok),
            "test": {k: stats.mean_sem([r["test"][k] for r in ok]) for k in keys} if ok else {},
            "seconds_per_step": statistics.median(r["seconds_per_step"] for r in per_seed.values()),
        }
    return out


def paired(variants: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    """Each non-standard variant minus the standard one at the same budget on the seeds where both trained: per
    seed, mean, standard error and the paired t-test's two-sided p-value (None with fewer than two seeds or no
    spread)."""
    out: dict[str, Any] = {}
    for variant, info in variants.items():
        name, scale = arms.split_budget(variant)
        reference = "standard" if scale == 1 else f"standard@{scale:g}x"
        if name == "standard" or reference not in variants:
            continue
        base = variants[reference]["seeds"]
        both = [s for s, r in info["seeds"].items() if r["status"] == "ok" and base.get(s, {}).get("status") == "ok"]
        for metric in metrics:
            diffs = {s: info["seeds"][s][metric] - base[s][metric] for s in both if metric in info["seeds"][s]}
            if diffs:
                out.setdefault(variant, {})[metric] = {"per_seed": diffs, **stats.paired(list(diffs.values()))}
    return out


def own_variants(cfg: DictConfig, den: Any = None) -> list[Variant]:
    """The variants a run trains before its arms: its convolution (searched, fixed or learned) and, with
    ``final.baseline`` or alone, the standard one. ``den``: the density (or point) the search found."""
    kind, variants = cfg.density.kind, []
    if cfg.search.name == "direct_l":
        dims = space.parse(cfg)
        variants = [
            Variant("tuned", "final", changes=space.values(dims, den)) if dims else Variant("weighted", "final", den)
        ]
    elif kind == "fixed":
        variants = [Variant("weighted", "final", OmegaConf.to_object(cfg.density.den))]
    elif kind == "learned":
        variants = [
            Variant(
                "learned", "final", OmegaConf.to_object(cfg.density.den) if cfg.density.den is not None else None, True
            )
        ]
    if not variants or cfg.final.baseline:
        variants.append(Variant("standard", "baseline"))
    return variants


def final_variants(cfg: DictConfig, den: Any = None) -> tuple[list[Variant], list[tuple[str, str]]]:
    """Every final variant of the run (its own, its arms, its budgets) and the arms it skips, with why. Before the
    search has run (``den`` None), any point stands in for the one it will find: the variants are the same."""
    if cfg.search.name == "direct_l" and den is None:
        dims = space.parse(cfg)
        k = int(cfg.model.kernel_size)
        den = [0.0] * len(dims) if dims else [1.0] * get_family(cfg.density.family).n_values(k)
    return arms.plan(
        own_variants(cfg, den),
        list(cfg.final.get("arms") or []),
        list(cfg.final.get("budgets") or []),
        int(cfg.model.kernel_size),
    )


def budget(cfg: DictConfig) -> tuple[int, int, int]:
    """(search evaluations, final variants, training epochs in all) that ``cfg`` asks for."""
    evals = int(cfg.search.max_evals) if cfg.search.name == "direct_l" else 0
    variants, _ = final_variants(cfg)
    final = sum(v.epochs(int(cfg.final.epochs)) for v in variants) * len(cfg.final.seeds)
    return evals, len(variants), evals * int(cfg.train.epochs) + final


def header(cfg: DictConfig, data: Any) -> str:
    """One line saying what the run will do and how big it is."""
    sizes = " / ".join(f"{data.sizes[s]} {s}" for s in ("train", "val", "test"))
    evals, variants, total = budget(cfg)
    search = f"direct_l {evals} evaluations x {cfg.train.epochs} epochs, " if evals else ""
    return (
        f"{cfg.name}: model {cfg.model.name} ({cfg.model.kernel_size}x{cfg.model.kernel_size}), data "
        f"{cfg.data.name} ({sizes}), profile {cfg.profile_name}, {search}final {variants} variant(s) x "
        f"{len(cfg.final.seeds)} seed(s) x {cfg.final.epochs} epochs: {total} epochs in all"
    )


def summary_line(result: dict[str, Any], metric: str) -> str:
    """The run's outcome in one line: best density, each variant's mean ± s.e. and the paired difference."""
    parts = [f"best den {result['best_den']}"] if result.get("best_den") else []
    for variant, info in result["variants"].items():
        stat = info["test"].get(metric)
        parts.append(f"{variant} {metric} " + ("n/a" if not stat else _pm(stat)))
    for variant, diffs in result.get("paired", {}).items():
        if metric in diffs:
            d = diffs[metric]
            p = "" if d["p_value"] is None else f", p={d['p_value']:.3g}"
            parts.append(f"{variant} - standard {_pm(d, signed=True)} ({len(d['per_seed'])} paired seeds{p})")
    return "; ".join(parts)


def _pm(stat: dict[str, Any], signed: bool = False) -> str:
    mean = f"{stat['mean']:+.4g}" if signed else f"{stat['mean']:.4g}"
    return mean if stat.get("sem") is None else f"{mean} ± {stat['sem']:.2g}"


@contextmanager
def log_file(path: Path) -> Iterator[None]:
    """Log to ``path`` too for the block, unless a handler (Hydra's) writes there already."""
    root = logging.getLogger()
    target = str(path.resolve())
    if any(getattr(h, "baseFilename", None) == target for h in root.handlers):
        yield
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root.addHandler(handler)
    level = root.level
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def finished(run_dir: Path, cfg: DictConfig) -> dict[str, Any] | None:
    """The recorded result if this run is complete for these seeds and this search budget (reads only)."""
    path = run_dir / "result.json"
    if not path.is_file():
        return None
    result = read_json(path)
    if not isinstance(result, dict) or "objective" not in result:
        return None
    budget = result.get("search") and result["search"].get("max_evals")
    if result.get("final_seeds") != [int(s) for s in cfg.final.seeds]:
        return None
    if cfg.search.name == "direct_l" and budget not in (None, int(cfg.search.max_evals)):
        return None
    for key in ("arms", "budgets"):  # controls added to a finished run: it resumes and trains them
        if result.get(key, []) != list(cfg.final.get(key) or []):
            return None
    return result


def run(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None) -> float:
    """Validate, resume or start the run in ``run_dir``: search, final trainings, ``result.json``. One process at a
    time per run directory (``RunLock``); every check that can fail comes before the first write."""
    validate(cfg)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"the run directory {run_dir} is a file: choose another hydra.run.dir")
    check_run_dir(run_dir, cfg)  # before anything is built or written
    if (done := finished(run_dir, cfg)) is not None:
        log.info(f"{run_dir}: finished already ({run_dir / 'result.json'})")
        return float(done["objective"])
    with ExitStack() as stack:
        if distributed.is_main() and run_dir.is_dir():  # refuse a second process at once, before loading data
            stack.enter_context(RunLock(run_dir))
        with distributed.main_first():  # rank 0 downloads, if asked to, before the others read
            data = wdata.build(cfg.data.name, **data_options(cfg))
        if not data.sizes.get("test"):
            raise ConfigError(f"data={cfg.data.name} has no test images: the final trainings are scored on them")
        if distributed.is_main():
            if not run_dir.is_dir():
                run_dir.mkdir(parents=True)
                stack.enter_context(RunLock(run_dir))
            claim_run_dir(run_dir, cfg, provenance(overrides))
            stack.enter_context(log_file(run_dir / "train.log"))
        distributed.barrier()
        return _run(cfg, run_dir, data)


def _run(cfg: DictConfig, run_dir: Path, data: Any) -> float:
    log.info(header(cfg, data))
    if distributed.is_distributed():
        log.info(f"data-parallel over {distributed.describe()}; rank 0 writes the records")
    result_path = run_dir / "result.json"
    seeds = [int(s) for s in cfg.final.seeds]
    tracker = (
        WandbTracker(
            cfg.logger.project,
            run_dir.name,
            run_dir,
            run_fingerprint(cfg),
            [
                str(cfg.profile_name),
                str(cfg.table or data.task.name),
                cfg.model.name,
                cfg.data.name,
                conv_of(cfg.density.kind, cfg.search.name),
            ],
            cfg.logger.entity,
            cfg.logger.mode,
        )
        if cfg.logger.name == "wandb" and distributed.is_main()
        else NullTracker()
    )
    runner = Runner(cfg, run_dir, data, tracker)
    kind = cfg.density.kind
    search = None
    if cfg.search.name == "direct_l":
        search = run_search(runner)
        if search["status"] != "ok":
            log.warning(
                f"every one of the {search['evaluations']} search evaluations diverged: no density trained; the "
                f"final trainings use the first point ({search['den']}). Lower optim.lr or narrow search.bounds"
            )
        den = search["den"]
    else:
        den = None
    variants, skipped = final_variants(cfg, den)
    for arm, reason in skipped:
        log.info(f"arm {arm} skipped: {reason}")
    den = next((v.den for v in variants if v.name in ("weighted", "learned")), None)
    final = run_final(runner, variants)
    main_variant = final[variants[0].name]
    objective = search["objective"] if search else main_variant["test"].get("loss", {}).get("mean", float("nan"))
    metrics = [m.key for m in data.task.metrics] + ["loss"]
    result = {
        "name": cfg.name,
        "profile": cfg.profile_name,
        "table": cfg.table or data.task.name,
        "task": data.task.name,
        "model": cfg.model.name,
        "data": cfg.data.name,
        "kernel_size": int(cfg.model.kernel_size),
        "density": ("tuned" if space.parse(cfg) else "direct_l") if search else kind,
        "best_den": den if (search and search["status"] == "ok") or kind == "fixed" else None,
        "best_point": variants[0].changes or None,
        "arms": list(cfg.final.get("arms") or []),
        "budgets": list(cfg.final.get("budgets") or []),
        "search": search,
        "objective": objective,
        "final_seeds": seeds,
        "variants": final,
        "paired": paired(final, metrics),
        "fingerprint": run_fingerprint(cfg),
    }
    if distributed.is_main():
        write_json(result_path, result)
        tracker.search_summary(
            read_jsonl(run_dir / "evaluations.jsonl"),
            result,
            [
                result_path,
                run_dir / "run.json",
                run_dir / "evaluations.jsonl",
                *sorted(run_dir.glob("trainings/*.json")),
            ],
        )
    log.info(f"{run_dir}: done -> {result_path}")
    log.info(summary_line(result, data.task.paper_metric))
    return float(objective)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parents[2] / "configs"), config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if distributed.init():  # started by torchrun
        distributed.quiet_other_ranks()
    previous = {}  # a job's time limit or preemption: checkpoint first, then what was there (submitit requeues)
    for signum in (signal.SIGUSR2, signal.SIGTERM):
        previous[signum] = signal.signal(signum, request_stop)
    try:
        return run(cfg, run_dir, list(hydra_cfg.overrides.task))
    except StopRequested as stop:
        if callable(handler := previous.get(stop.signum)):
            handler(stop.signum, None)
        fail(f"stopped on {stop}: the training saved a checkpoint; run the same command to resume", 128 + stop.signum)
    except (ConfigError, RecordMismatch, RunLocked, wdata.DataError) as err:
        fail(f"error: {_one_line(err)}", 2)
    except KeyboardInterrupt:
        fail(f"interrupted: what was recorded in {run_dir} is intact; run the same command to resume", 130)
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        fail(
            f"error: cannot write{where}: {err.strerror or err}; fix that (free space, permissions, another "
            "hydra.run.dir) and run the same command again: it resumes from what was recorded",
            1,
        )
    finally:
        distributed.close()


def fail(message: str, status: int) -> None:
    if distributed.is_main():
        print(message, file=sys.stderr)
    sys.exit(status)


def cli() -> None:
    """``python -m wconv.train``: bad overrides (an unknown group option or key, a malformed value) get one line
    and exit status 2 before Hydra starts; then Hydra runs ``main``."""
    from wconv.cli_checks import check_overrides

    message, run_dir = check_overrides(sys.argv[1:])
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
        print(f"error: the run directory {run_dir} is a file: choose another hydra.run.dir", file=sys.stderr)
        sys.exit(2)
    new = run_dir is not None and not run_dir.exists()
    try:
        main()
    finally:  # Hydra makes the run directory before the checks: a run refused at once leaves none
        if new and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()


if __name__ == "__main__":
    # Run the module under its own name: Hydra launchers (submitit) pickle ``main``, which must then be found by
    # reference, not pickled by value with everything it touches.
    from wconv.train import cli as _cli

    _cli()
