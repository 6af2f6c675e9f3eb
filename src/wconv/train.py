"""``python -m wconv.train``: one training, or the nested DIRECT-L x SGD density search, then final seeds.

Flow: config -> checks -> data -> [search: DIRECT-L proposes den, each evaluation trains from the same initial
weights and data and returns a validation objective] -> final trainings of the density and the standard
convolution over ``final.seeds`` on the test split -> ``result.json``. Every step is recorded atomically in
the run directory, and running the same command again resumes where it stopped. Under ``torchrun`` the trainings
run data-parallel (``wconv.distributed``): every rank runs this same flow, rank 0 alone writes.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from wconv import data as wdata
from wconv import distributed, models, objectives, parallel
from wconv.nn.density import FAMILIES, get_family, parse_den
from wconv.search import Evaluation, check_bounds, direct_l, direct_l_batched
from wconv.tracking.identity import RecordMismatch, claim_run_dir, run_fingerprint
from wconv.tracking.records import read_json, write_json
from wconv.tracking.wandb_logger import NullTracker, WandbTracker
from wconv.training import DensityOptimConfig, OptimConfig, train

log = logging.getLogger("wconv.train")


class ConfigError(ValueError):
    """A configuration that cannot run; raised before any training or writing."""


def search_bounds(cfg: DictConfig) -> list[list[float]]:
    """``search.bounds`` or the density family's default box for the model's kernel size."""
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


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before training: one clear ConfigError each."""
    if cfg.model.name not in models.MODEL_NAMES:
        raise ConfigError(f"unknown model {cfg.model.name!r}; choose one of {', '.join(models.MODEL_NAMES)}")
    if cfg.data.name not in wdata.DATA_NAMES:
        raise ConfigError(f"unknown data {cfg.data.name!r}; choose one of {', '.join(wdata.DATA_NAMES)}")
    k = int(cfg.model.kernel_size)
    if k < 1 or k % 2 == 0:
        raise ConfigError(f"model.kernel_size must be odd and positive, got {k}")
    if cfg.density.family not in FAMILIES:
        raise ConfigError(f"density.family must be one of {', '.join(FAMILIES)}, got {cfg.density.family!r}")
    kind = cfg.density.kind
    if kind not in ("standard", "fixed", "learned"):
        raise ConfigError(f"density.kind must be standard, fixed or learned, got {kind!r}")
    if kind == "fixed":
        den = OmegaConf.to_object(cfg.density.den) if cfg.density.den is not None else None
        if den is None:
            raise ConfigError("density=fixed needs density.den, e.g. density.den=[0.7] for 3x3 kernels")
        try:
            parse_den(den, (k, k), f"density.den for kernel {k}x{k}", get_family(cfg.density.family))
        except ValueError as err:
            raise ConfigError(str(err)) from None
    for key in ("train.epochs", "final.epochs", "train.batch_size"):
        if int(OmegaConf.select(cfg, key)) < 1:
            raise ConfigError(f"{key} must be at least 1, got {OmegaConf.select(cfg, key)}")
    if len(cfg.final.seeds) < 1:
        raise ConfigError("final.seeds must list at least one seed, e.g. final.seeds=[0,1,2]")
    if cfg.search.name == "direct_l":
        if kind != "standard":
            raise ConfigError(f"search=direct_l finds den itself: drop density={kind} (keep density=standard)")
        if int(cfg.search.max_evals) < 1:
            raise ConfigError(f"search.max_evals must be at least 1, got {cfg.search.max_evals}")
        try:
            objective = objectives.get(cfg.search.objective)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if (task := models.task_of(cfg.model.name)) not in objective.tasks:
            raise ConfigError(f"search.objective={objective.name} does not apply to {task}: use val_loss")
        if k == 1:
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
    classification set, say) are dropped with a warning. Typos cannot reach here: Hydra refuses unknown keys."""
    chosen = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "name"}
    valid = wdata.options(cfg.data.name)
    if dropped := sorted(set(chosen) - set(valid)):
        log.info(f"data option(s) {', '.join(dropped)} do not apply to {cfg.data.name}: ignored")
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

    def build_model(self, seed: int, den: Any, learn_den: bool) -> torch.nn.Module:
        """Same seed, same initial weights: the density is applied after the standard model is built."""
        options = {k: v for k, v in OmegaConf.to_container(self.cfg.model, resolve=True).items() if k != "name"}
        options.update(self.data.task.model_options(self.data))
        torch.manual_seed(seed)
        return models.create(
            self.cfg.model.name,
            den=den,
            learn_den=learn_den,
            skip_depthwise=bool(self.cfg.density.skip_depthwise),
            family=self.cfg.density.family,
            **options,
        )

    def train_one(self, name: str, job_type: str, seed: int, den: Any, learn_den: bool, epochs: int, split: str):
        model = self.build_model(seed, den, learn_den)
        run = self.tracker.start(
            name,
            job_type,
            {**OmegaConf.to_container(self.cfg, resolve=True), "seed": seed, "variant": name},
            den=den,
        )
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
                on_epoch=lambda epoch, row: run.log(row, step=epoch),
                progress=self.progress,
                desc=name,
            )
            run.summary({f"{split}_{k}": v for k, v in result.metrics.items()} | {"status": result.status})
        finally:
            run.finish()
        if split == "test" and self.data.task.saves_examples and result.status == "ok" and distributed.is_main():
            self.save_example(model, self.run_dir / "examples" / f"{name}.npz")
        return result

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


def search_evaluation(runner: Runner, index: int, den: list[float]) -> Evaluation:
    """Evaluation ``index`` of the search: a training from ``cfg.seed`` with ``den``, its validation objective."""
    cfg = runner.cfg
    res = runner.train_one(f"eval-{index:03d}", "search", int(cfg.seed), den, False, int(cfg.train.epochs), "val")
    if distributed.is_main():
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

    def evaluate(index: int, den: list[float]) -> Evaluation:
        distributed.check_same(den, f"the density of evaluation {index}")  # NLopt runs on every rank
        return search_evaluation(runner, index, den)

    def report(index: int, row: dict) -> None:
        bar.update(1)
        if not distributed.is_main():
            return
        den = ", ".join(f"{v:.4g}" for v in row["den"])
        bar.write(
            f"eval {index + 1}/{cfg.search.max_evals} den=[{den}] {cfg.search.objective}={row['objective']:.5g} "
            f"({row['status']}, {row['seconds']:.1f} s)"
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


def _summary(values: list[float]) -> dict[str, float | None]:
    mean = statistics.fmean(values)
    sem = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else None
    return {"mean": mean, "sem": sem}


def run_final(runner: Runner, variants: list[tuple[str, str, Any, bool]]) -> dict[str, Any]:
    """Train each variant on every final seed (skipping recorded ones); mean and standard error per metric."""
    cfg, out = runner.cfg, {}
    for variant, job_type, den, learn_den in variants:
        per_seed = {}
        for seed in cfg.final.seeds:
            name = f"final-{variant}-seed{seed}"
            path = runner.run_dir / "trainings" / f"{name}.json"
            if not path.exists():
                res = runner.train_one(name, job_type, int(seed), den, learn_den, int(cfg.final.epochs), "test")
                if distributed.is_main():
                    write_json(
                        path,
                        {
                            "name": name,
                            "variant": variant,
                            "seed": int(seed),
                            "den": den,
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
            "seeds": {s: {"status": r["status"], **r["test"]} for s, r in per_seed.items()},
            "diverged": len(per_seed) - len(ok),
            "test": {k: _summary([r["test"][k] for r in ok]) for k in keys} if ok else {},
            "seconds_per_step": statistics.median(r["seconds_per_step"] for r in per_seed.values()),
        }
    return out


def run(cfg: DictConfig, run_dir: Path) -> float:
    validate(cfg)
    with distributed.main_first():  # rank 0 downloads, if asked to, before the others read
        data = wdata.build(cfg.data.name, **data_options(cfg))
    run_dir.mkdir(parents=True, exist_ok=True)
    claim_run_dir(run_dir, cfg, write=distributed.is_main())
    distributed.barrier()
    result_path = run_dir / "result.json"
    seeds = [int(s) for s in cfg.final.seeds]
    if result_path.exists() and read_json(result_path)["final_seeds"] == seeds:
        result = read_json(result_path)
        log.info(f"{run_dir}: finished already ({result_path})")
        return float(result["objective"])

    tracker = (
        WandbTracker(cfg.logger.project, cfg.name, run_dir, cfg.logger.entity, cfg.logger.mode)
        if cfg.logger.name == "wandb" and distributed.is_main()
        else NullTracker()
    )
    runner = Runner(cfg, run_dir, data, tracker)
    kind = cfg.density.kind
    search = None
    if cfg.search.name == "direct_l":
        search = run_search(runner)
        den = search["den"]
        variants = [("weighted", "final", den, False)]
    elif kind == "fixed":
        den = OmegaConf.to_object(cfg.density.den)
        variants = [("weighted", "final", den, False)]
    elif kind == "learned":
        den = OmegaConf.to_object(cfg.density.den) if cfg.density.den is not None else None
        variants = [("learned", "final", den, True)]
    else:
        den, variants = None, []
    if not variants or cfg.final.baseline:
        variants.append(("standard", "baseline", None, False))
    final = run_final(runner, variants)
    main_variant = final[variants[0][0]]
    objective = search["objective"] if search else main_variant["test"].get("loss", {}).get("mean", float("nan"))
    result = {
        "name": cfg.name,
        "profile": cfg.get("profile_name"),
        "table": cfg.get("table") or data.task.name,
        "task": data.task.name,
        "model": cfg.model.name,
        "data": cfg.data.name,
        "kernel_size": int(cfg.model.kernel_size),
        "density": kind if not search else "direct_l",
        "best_den": den if (search or kind == "fixed") else None,
        "search": search,
        "objective": objective,
        "final_seeds": seeds,
        "variants": final,
        "fingerprint": run_fingerprint(cfg),
    }
    if distributed.is_main():
        write_json(result_path, result)
    log.info(f"{run_dir}: done -> {result_path}")
    return float(objective)


@hydra.main(version_base="1.3", config_path="../../configs", config_name="train")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if distributed.init():  # started by torchrun
        distributed.quiet_other_ranks()
        log.info(f"data-parallel over {distributed.describe()}; rank 0 writes the records")
    try:
        return run(cfg, run_dir)
    except (ConfigError, RecordMismatch, wdata.DataError) as err:
        if distributed.is_main():
            print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        distributed.close()


if __name__ == "__main__":
    main()
