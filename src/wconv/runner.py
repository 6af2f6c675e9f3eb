"""One run directory's trainings, in one place: the data, each variant's model, the tracker and a recorded training.

Every way a run trains goes through here: the serial search, the local and submitit workers (``wconv.parallel``),
the final trainings and the benchmark scripts. ``open_runner`` builds what they share (the data, the tracker) from
the run's plan; a ``Runner`` trains one ``Training`` (a search evaluation or a final variant on one seed).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wconv import data as wdata
from wconv import distributed, models, objectives
from wconv.plan import Plan
from wconv.search import Evaluation
from wconv.tracking.identity import conv_of
from wconv.tracking.progress import EpochLog
from wconv.tracking.records import DamagedRecord, atomic_write, load_checkpoint, read_json, write_json
from wconv.tracking.wandb_logger import NullTracker, WandbTracker
from wconv.training import TrainResult, evaluate, train
from wconv.variants import ARMS

log = logging.getLogger("wconv.train")
BEST_EVAL = "best-eval.pt"  # the best search evaluation's model, kept for the final seed that repeats it


@dataclass(frozen=True)
class Training:
    """One recorded training of a run: a search evaluation (``eval-NNN``, scored on ``val``) or a final variant on
    one seed (``final-<variant>-seed<s>``, scored on ``test``)."""

    name: str
    job_type: str  # W&B job type: search, final, baseline, control, budget
    seed: int
    den: Any
    epochs: int
    split: str
    learn_den: bool = False
    arm: str | None = None  # a control (wconv.variants.ARMS)
    changes: dict[str, Any] = field(default_factory=dict)  # config keys set for this training (a searched point)


def check_device(plan: Plan) -> None:
    """ConfigError when the run cannot have the device it asks for: ``device=cuda`` where CUDA is not usable, or a
    paper-profile run that ``device=auto`` would train on a CPU (months) without a word."""
    from wconv.config import ConfigError

    device, cuda = plan.config.device, torch.cuda.is_available()
    why = f"CUDA is not usable here ({no_cuda_reason()})"
    if device.startswith("cuda") and not cuda:
        raise ConfigError(f"device={device}: {why}; use device=cpu, or run on a GPU node")
    if device == "auto" and not cuda and plan.config.profile_name == "paper":
        raise ConfigError(
            f"profile=paper would train on the CPU: {why}; ask for device=cpu to do so anyway, or use profile=cpu or "
            "profile=smoke here"
        )


def no_cuda_reason() -> str:
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build"
    if torch.cuda.device_count() == 0:
        return f"no GPU visible to torch {torch.__version__} (CUDA {torch.version.cuda}): no GPU, or a driver too old"
    return f"torch {torch.__version__} built for CUDA {torch.version.cuda}"


def describe_device(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu (2 threads)``: the header's device."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({torch.get_num_threads()} threads)"


def device_for(configured: str, slot: int | None = None) -> torch.device:
    """The device ``device`` asks for: ``auto`` is CUDA when usable, else the CPU; worker ``slot`` takes GPU
    ``slot % count``; under torchrun each rank takes its own GPU."""
    if configured in ("auto", "cuda") and torch.cuda.is_available() and slot is not None:
        device = torch.device("cuda", slot % torch.cuda.device_count())
        torch.cuda.set_device(device)
        return device
    if configured == "auto":
        configured = "cuda" if torch.cuda.is_available() else "cpu"
    return distributed.local_device(torch.device(configured))


def tracker_for(plan: Plan, run_dir: Path) -> Any:
    """The run's tracker: W&B runs grouped by the run directory, with the run's tags, its resolved settings and ids
    made of its fingerprint and its folder's random key (``run.json``: a resume keeps it, a colleague's run of the
    same config into the same project gets another); every process of the run makes the same one, workers included.
    Nothing with ``logger=none``."""
    logger = plan.config.logger
    if logger.name != "wandb" or not distributed.is_main():
        return NullTracker()
    c = plan.config
    tags = [c.profile_name, c.table or _task(plan), c.model.name, c.data.name, conv_of(c.density.kind, c.search.name)]
    record = run_dir / "run.json"
    folder = read_json(record).get("wandb_key") if record.is_file() else None  # older run.json files have none yet
    key = plan.fingerprint + (f"-{folder}" if folder else "")
    return WandbTracker(logger.project, run_dir.name, run_dir, key, tags, logger.entity, logger.mode, plan.resolved)


def _task(plan: Plan) -> str:
    return models.task_of(plan.config.model.name)


def open_runner(
    plan: Plan, run_dir: Path, data: Any = None, slot: int | None = None, progress: bool | None = None
) -> Runner:
    """A Runner for ``plan`` in ``run_dir``: its data (built here unless given), its tracker (once the run directory
    is claimed: ``Runner.track``) and its device (worker ``slot``'s GPU). ``progress``: progress bars (default: the
    config's, in the main process)."""
    data = data if data is not None else wdata.build(plan.config.data.name, **plan.data_options)
    runner = Runner(plan, run_dir, data, NullTracker(), device_for(plan.config.device, slot))
    if (run_dir / "run.json").is_file():
        runner.track()
    runner.progress = (plan.config.progress if progress is None else progress) and distributed.is_main()
    return runner


class Runner:
    """Builds models and runs recorded trainings for one run directory."""

    def __init__(self, plan: Plan, run_dir: Path, data: Any, tracker: Any, device: torch.device) -> None:
        self.plan, self.run_dir, self.data, self.tracker, self.device = plan, run_dir, data, tracker, device
        self.progress = False
        self.amp = device.type == "cuda" and plan.loop.precision == "bf16"
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once

    def track(self) -> None:
        """Log to the run's tracker (``tracker_for``) from now on: once its directory is claimed."""
        self.tracker = tracker_for(self.plan, self.run_dir)

    def changed(self, changes: dict[str, Any]) -> Runner:
        """This runner with config ``changes`` (a searched point): same run directory, data, tracker and device."""
        if not changes:
            return self
        other = Runner(self.plan.changed(changes), self.run_dir, self.data, self.tracker, self.device)
        other.progress = self.progress
        return other

    def build(self, seed: int, den: Any, learn_den: bool = False, arm: str | None = None):
        """The model and what ``train`` calls with its optimisers (an arm's step scaling, or None). Same seed, same
        initial weights: the density is applied after the standard model is built."""
        plan = self.plan
        options = {**plan.model_options, **self.data.task.model_options(self.data)}
        density = plan.density_options
        torch.manual_seed(seed)
        if arm is not None:  # a control: the standard model, changed as the arm says (wconv.variants)
            control = ARMS[arm]
            options["kernel_size"] = plan.kernel_size + control.kernel_change
            create = functools.partial(models.create, plan.config.model.name, **density, **options)
            return control.build(create, den, plan.optim.name, **density)
        return models.create(plan.config.model.name, den=den, learn_den=learn_den, **density, **options), None

    def fit(self, t: Training) -> TrainResult:
        """Train ``t`` (resuming from its checkpoint), logging each epoch; on the test split, save its example."""
        if t.changes:
            return self.changed(t.changes).fit(dataclasses.replace(t, changes={}))
        model, prepare = self.build(t.seed, t.den, t.learn_den, t.arm)
        run = self.tracker.start(t.name, t.job_type, {**self.plan.resolved, "seed": t.seed, "variant": t.name}, t.den)
        progress = EpochLog(t.name, t.epochs, self.run_dir / "metrics" / f"{t.name}.csv", self.data.task.curve[0])

        def on_epoch(epoch: int, row: dict) -> None:
            run.log({**row, "epoch": epoch})
            if distributed.is_main():
                progress(row)

        try:
            result = train(
                model,
                self.data,
                seed=t.seed,
                epochs=t.epochs,
                batch_size=self.plan.config.train.batch_size,
                optim=self.plan.optim,
                density_optim=self.plan.den_optim,
                device=self.device,
                eval_split=t.split,
                checkpoint=self.run_dir / "checkpoints" / f"{t.name}.pt",
                on_epoch=on_epoch,
                progress=self.progress,
                desc=t.name,
                loop=self.plan.loop,
                prepare=prepare,
            )
            run.summary({f"{t.split}_{k}": v for k, v in result.metrics.items()} | {"status": result.status})
        finally:
            run.finish()
        if t.split == "test" and self.data.task.saves_examples and result.status == "ok" and distributed.is_main():
            self.save_example(model, self.run_dir / "examples" / f"{t.name}.npz")
        return result

    def evaluate(self, index: int, point: list[float], keep_checkpoint: bool = False) -> Evaluation:
        """Search evaluation ``index``: a training from the run's seed at ``point`` (a density, or config values
        of ``search.space`` trained with the standard conv), scored on the validation split. Its last checkpoint is
        deleted unless ``keep_checkpoint`` (the serial search keeps the best one)."""
        runner = self.changed(self.plan.point_values(point))
        c = runner.plan.config
        t = Training(f"eval-{index:03d}", "search", c.seed, None if self.plan.space else point, c.train.epochs, "val")
        res = runner.fit(t)
        if distributed.is_main() and not keep_checkpoint:
            (self.run_dir / "checkpoints" / f"{t.name}.pt").unlink(missing_ok=True)
        if res.status != "ok":
            return Evaluation(float("nan"), "diverged", {"history": res.history})
        value = objectives.get(c.search.objective).value(res.metrics)
        return Evaluation(value, "ok", {**res.metrics, "seconds_per_step": res.seconds_per_step})

    def reuse_best_eval(self, name: str, seed: int, den: Any) -> TrainResult | None:
        """The search's best evaluation as this final training when it is the same training (same seed, density
        and epochs; it differs only by the split it is scored on): its model scored on the test split, no retraining.
        None when there is no such evaluation. Rank 0 decides, so that every rank takes the same path."""
        c, saved = self.plan.config, self.run_dir / "checkpoints" / BEST_EVAL
        if seed != c.seed or c.final.epochs != c.train.epochs:
            return None
        record = distributed.from_main(self._best_eval, den)
        if record is None:
            return None
        state = load_checkpoint(saved)
        distributed.barrier()  # every rank has read it before rank 0 renames it
        model = self.build(seed, den)[0].to(self.device)
        model.load_state_dict(state["model"])
        batch = c.train.batch_size
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
        try:
            record = read_json(info)
        except DamagedRecord:
            return None  # the best evaluation's seed is trained again
        state = load_checkpoint(self.run_dir / "checkpoints" / BEST_EVAL)
        ok = record["den"] == den and state is not None and state["epoch"] == self.plan.config.train.epochs
        return record if ok else None

    def keep_best(self, index: int, point: list[float]) -> None:
        """Keep evaluation ``index``'s last checkpoint as the best so far (the final seed that repeats it reuses it)."""
        last = self.run_dir / "checkpoints" / f"eval-{index:03d}.pt"
        if last.exists():
            last.replace(self.run_dir / "checkpoints" / BEST_EVAL)
            write_json(self.run_dir / "checkpoints" / f"{BEST_EVAL}.json", {"index": index, "den": point})

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
        atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
