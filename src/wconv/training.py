"""The inner loop: train one model for a fixed budget, checkpoint every epoch, evaluate on a split.

Deterministic given the seed: the model's initial weights and the data of every epoch (order, augmentation,
noise) are functions of it, so search evaluations differ only by their density and a resumed training
continues exactly where it stopped.
"""

from __future__ import annotations

import math
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn
from tqdm.auto import tqdm

from wconv import distributed
from wconv.nn import densities
from wconv.tracking.records import load_checkpoint, save_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclass
class OptimConfig:
    """The inner optimiser and its schedule: one file of ``configs/optim`` (the only place with defaults);
    milestones are fractions of the budget."""

    name: str  # sgd, adam, adamw
    lr: float
    weight_decay: float
    schedule: str  # none, multistep, cosine
    milestones: tuple[float, ...]
    gamma: float
    warmup_epochs: float
    min_lr: float
    grad_clip: float
    momentum: float = 0.0  # SGD only
    nesterov: bool = False  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # Adam(W) only

    @classmethod
    def load(cls, name: str, **changes: Any) -> OptimConfig:
        """``configs/optim/<name>.yaml`` with ``changes`` applied (for code that composes no Hydra config)."""
        values = {**OmegaConf.to_container(OmegaConf.load(CONFIGS / "optim" / f"{name}.yaml")), **changes}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass
class DensityOptimConfig:
    """The learned density's own optimiser (``configs/density/learned.yaml``: AdamW, cosine warm restarts)."""

    lr: float
    weight_decay: float
    t0: int
    t_mult: int


@dataclass
class TrainResult:
    status: str  # "ok" or "diverged"
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds_per_step: float = float("nan")
    densities: dict[str, Any] = field(default_factory=dict)


def _lr_lambda(cfg: OptimConfig, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    marks = [int(m * total_steps) for m in cfg.milestones]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "multistep":
            return cfg.gamma ** sum(step >= m for m in marks)
        if cfg.schedule == "cosine":
            progress = (step - warmup) / max(1, total_steps - warmup)
            floor = cfg.min_lr / cfg.lr
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return 1.0

    return factor


def make_optimizers(
    model: nn.Module,
    cfg: OptimConfig,
    den_cfg: DensityOptimConfig | None,
    steps_per_epoch: int,
    epochs: int,
    device: torch.device | None = None,
) -> tuple[list[torch.optim.Optimizer], list[Any], list[Any]]:
    """Weights get ``cfg``'s optimiser with a per-step schedule; a learned ``den`` gets its own AdamW."""
    den_params = [p for n, p in model.named_parameters() if n.endswith(".den") or n == "den"]
    ids = {id(p) for p in den_params}
    weights = [p for p in model.parameters() if id(p) not in ids]
    if cfg.name not in OPTIMIZERS:
        raise ValueError(f"optim.name must be one of {', '.join(OPTIMIZERS)}, got {cfg.name!r}")
    fused = {"fused": True} if device is not None and device.type == "cuda" else {}  # one kernel per step on GPUs
    if cfg.name == "sgd":
        opt = torch.optim.SGD(
            weights, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay, **fused
        )
    else:
        opt = OPTIMIZERS[cfg.name](weights, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, **fused)
    step_scheds = [torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, steps_per_epoch * epochs, steps_per_epoch))]
    opts, epoch_scheds = [opt], []
    if den_params:
        if den_cfg is None:
            raise ValueError("the model learns its density: give its optimiser (density_optim)")
        den_opt = torch.optim.AdamW(den_params, lr=den_cfg.lr, weight_decay=den_cfg.weight_decay)
        opts.append(den_opt)
        epoch_scheds.append(
            torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(den_opt, T_0=den_cfg.t0, T_mult=den_cfg.t_mult)
        )
    return opts, step_scheds, epoch_scheds


@torch.no_grad()
def evaluate(model: nn.Module, data: Any, split: str, batch_size: int, device: torch.device, amp: bool) -> dict:
    """Mean loss and the task's metrics (``Task.score``) on ``split``; with named groups in the split (several
    test sets), each group's as well, keyed ``<metric>@<group>``."""
    model.eval()
    groups = data.groups.get(split) or {None: None}
    totals: dict[str, torch.Tensor] = {}
    count, out = 0, {}
    for group in groups:
        sums: dict[str, torch.Tensor] = {}
        n_group = 0
        for x, y in data.eval_batches(split, batch_size, device, group=group):
            x = _to_model(x, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                output = model(x)
            n = x.shape[0]
            values = {"loss": data.task.loss(output, y).detach() * n, **data.task.score(output, x, y)}
            for k, v in values.items():
                sums[k] = sums.get(k, 0) + v.float()
            n_group += n
        for k, v in sums.items():
            totals[k] = totals.get(k, 0) + v
            if group is not None:
                out[f"{k}@{group}"] = float(v) / n_group
        count += n_group
    return {k: float(v) / count for k, v in totals.items()} | out


def _to_model(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" and x.ndim == 4 else x


@dataclass
class LoopOptions:
    """How the loop runs, not what it computes (``configs/train.yaml``): checkpoint cadence, validation cadence,
    precision on CUDA, torch.compile."""

    checkpoint_minutes: float = 10.0  # also at the end, and when asked to stop; 0: after every epoch
    val_every: int = 1  # validate every k epochs (and after the last)
    precision: str = "bf16"  # bf16 autocast or fp32 on CUDA; the CPU trains in fp32
    compile: bool = False


class StopRequested(Exception):  # noqa: N818 (a request, not an error)
    """The process was asked to stop (SIGUSR2, SIGTERM): the training saved a checkpoint to resume from."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    def __reduce__(self) -> tuple[type, tuple[int]]:  # raised in a worker process, re-raised in the search's
        return StopRequested, (self.signum,)


STOP: list[int] = []  # the signal received, set by ``request_stop``; the loop checks it after each step
STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)  # a job's time limit, preemption or cancel; Ctrl-C


def request_stop(signum: int, frame: object = None) -> None:
    """Signal handler: ask the running training to checkpoint and stop after its current step. A second Ctrl-C
    does not wait for the checkpoint (KeyboardInterrupt: what was recorded before stays intact)."""
    if signum == signal.SIGINT and signal.SIGINT in STOP:
        raise KeyboardInterrupt
    STOP.append(signum)


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[dict[int, Any]]:
    """For the block, ``signals`` ask the running training to checkpoint and stop (``request_stop``): ``wconv.train``
    and the local matrix of ``scripts/reproduce_table.py`` run inside one, a search's submitit job inside one for
    submitit's USR2 (local workers install ``request_stop`` for their whole life). Yields the handlers that were
    there (``hand_over`` calls them after the checkpoint); they come back afterwards, with no stop pending."""
    previous = {signum: signal.signal(signum, request_stop) for signum in signals}
    try:
        yield previous
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        STOP.clear()


def hand_over(stop: StopRequested, previous: dict[int, Any]) -> None:
    """After the checkpoint, the handler that was there before ``stop_on_signals`` (submitit's USR2 handler requeues
    its job and exits, or ends a timed-out one); not for Ctrl-C."""
    if stop.signum != signal.SIGINT and callable(handler := previous.get(stop.signum)):
        handler(stop.signum, None)


def _state(model, opts, scheds, epoch: int, step: int, loss_sum: float, history: list[dict]) -> dict[str, Any]:
    """Everything a resumed training needs to continue exactly: weights, optimisers, schedules, RNGs, position."""
    return {
        "epoch": epoch,
        "step": step,
        "loss_sum": loss_sum,
        "model": model.state_dict(),
        "optimizers": [o.state_dict() for o in opts],
        "schedulers": [s.state_dict() for s in scheds],
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "history": history,
    }


def train(
    model: nn.Module,
    data: Any,
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    optim: OptimConfig,
    density_optim: DensityOptimConfig | None,
    device: torch.device,
    eval_split: str,
    checkpoint: Path | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    loop: LoopOptions | None = None,
    prepare: Callable[[list[torch.optim.Optimizer]], None] | None = None,
) -> TrainResult:
    """Train ``model`` for ``epochs`` and evaluate on ``eval_split``; resume from ``checkpoint`` when it exists.

    Divergence (a non-finite training or validation loss) stops training and is reported, never raised. The
    loss is summed on the device and read once per epoch, so the step has no host synchronisation. Checkpoints
    are written every ``loop.checkpoint_minutes``, at the end, and mid-epoch when a stop is requested (then
    ``StopRequested`` is raised); a resumed training continues at the same step with the same random state. Under
    torchrun (``wconv.distributed``) each rank trains on its slice of every batch, rank 0 evaluates for all and
    alone writes the checkpoint.
    """
    if epochs < 1:
        raise ValueError(f"the training budget must be at least 1 epoch, got {epochs}")
    loop = loop or LoopOptions()
    amp = device.type == "cuda" and loop.precision == "bf16"
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    net = distributed.wrap(model, device)  # the training forward; ``model`` itself is evaluated and saved
    if loop.compile:
        net = torch.compile(net)
    steps = data.steps_per_epoch(batch_size)
    opts, step_scheds, epoch_scheds = make_optimizers(model, optim, density_optim, steps, epochs, device)
    if prepare is not None:  # hooks on the model's gradients and the optimisers' steps (wconv.nn.precondition)
        prepare(opts)
    scheds = step_scheds + epoch_scheds
    history: list[dict] = []
    start_epoch, skip, resumed_loss = 0, 0, 0.0
    distributed.barrier()  # rank 0 has finished writing the checkpoint the others may read
    state = load_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        for o, s in zip(opts, state["optimizers"], strict=True):
            o.load_state_dict(s)
        for sch, s in zip(scheds, state["schedulers"], strict=True):
            sch.load_state_dict(s)
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        history, start_epoch = state["history"], state["epoch"]
        skip, resumed_loss = state.get("step", 0), state.get("loss_sum", 0.0)

    def save(epoch: int, step: int = 0, loss_sum: float = 0.0) -> None:
        if checkpoint is not None and distributed.is_main():
            save_checkpoint(checkpoint, _state(model, opts, scheds, epoch, step, loss_sum, history))

    status = "ok"
    last_save = time.monotonic()
    bar = tqdm(
        range(start_epoch, epochs), desc=desc, leave=False, disable=None if progress else True, initial=start_epoch
    )
    for epoch in bar:
        net.train()
        if not skip:
            distributed.seed_epoch(seed, epoch)
        loss_sum = torch.full((), resumed_loss, device=device)
        start = time.perf_counter()
        for step, (x, y) in enumerate(data.train_batches(batch_size, seed, epoch, device)):
            if step < skip:  # a training stopped mid-epoch: the same batches, the steps it made skipped
                continue
            total = x.shape[0]
            x, y = distributed.shard(x, y)
            x = _to_model(x, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = data.task.loss(net(x), y) * distributed.shard_weight(x.shape[0], total)  # 1.0 in one process
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            if optim.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
            for o in opts:
                o.step()
            for sch in step_scheds:
                sch.step()
            loss_sum += loss.detach()
            if signum := distributed.agreed_stop(STOP[0] if STOP else 0, step, last=step + 1 == steps):  # all ranks
                save(epoch, step + 1, float(loss_sum))
                raise StopRequested(signum)
        skip, resumed_loss = 0, 0.0
        train_loss = distributed.average(float(loss_sum)) / steps  # the one synchronisation of the epoch
        seconds = time.perf_counter() - start
        for sch in epoch_scheds:
            sch.step()
        row = {"epoch": epoch + 1, "train_loss": train_loss, "seconds": seconds, "lr": opts[0].param_groups[0]["lr"]}
        if not math.isfinite(train_loss):
            status = "diverged"
        elif (epoch + 1) % loop.val_every == 0 or epoch + 1 == epochs:
            val = distributed.from_main(evaluate, model, data, "val", batch_size, device, amp)
            row.update({f"val_{k}": v for k, v in val.items()})
            if not math.isfinite(row["val_loss"]):
                status = "diverged"
        history.append(row)
        bar.set_postfix(loss=f"{train_loss:.4g}")
        if on_epoch is not None:
            on_epoch(epoch + 1, row)
        if status != "ok":
            break
        if epoch + 1 == epochs or time.monotonic() - last_save >= 60 * loop.checkpoint_minutes:
            save(epoch + 1)
            last_save = time.monotonic()
    bar.close()
    per_step = [r["seconds"] / steps for r in history if "seconds" in r]
    if status != "ok":
        return TrainResult(status, {"loss": float("nan")}, history, statistics.median(per_step), densities(model))
    final = distributed.from_main(evaluate, model, data, eval_split, batch_size, device, amp)
    return TrainResult(
        status, final, history, statistics.median(per_step) if per_step else float("nan"), densities(model)
    )
