"""Preflight: rehearse every job of a profile's matrix at full size on the device at hand, and predict its cost.

For each job, with its exact resolved plan: its data checked (present, complete, the checksums the downloader knows;
W&B and SLURM settings too), its full-size model and data built, K training steps timed at the full batch after a
warm-up step (with the FLOPs of one step, ``torch.utils.flop_counter``, and the peak memory: CUDA's peak
allocation, or the process's peak resident memory on a CPU), one validation batch and one test image at their
full sizes, one checkpoint written and read back. From these the job's wall time is predicted (each search
evaluation and final training: epochs x steps x step time, validations at their cadence, the test pass; the
search's DIRECT-L rounds on ``search.workers`` GPUs) with the SLURM time to request. Jobs of the same model, data,
batch and convolution share one measurement (they compute the same steps).

A prediction for one H100 is made from the FLOP counts (``H100_BF16_FLOPS`` at ``H100_UTILISATION``, at least
``H100_MIN_STEP_S`` a step): a prediction, labelled as one, until ``make preflight`` runs on an H100.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wconv.config import ConfigError
from wconv.plan import Plan
from wconv.tracking.records import write_text

H100_BF16_FLOPS = 989.4e12  # H100 SXM, dense bf16 tensor-core peak
H100_UTILISATION = 0.30  # a fraction of it that convolution training at these sizes plausibly sustains
H100_MIN_STEP_S = 0.003  # launch latency: no eager training step of these models is faster
REAL_SIZES = {  # the real datasets' splits (val_fraction 0.1): what a prediction on fabricated files scales to
    "cifar100": {"train": 45_000, "val": 5_000, "test": 10_000},
    "div2k": {"train": 720, "val": 80, "test": 100},
}
COLUMNS = [
    "job", "fingerprint", "device", "fabricated", "model", "data", "conv", "kernel", "batch", "steps_per_epoch",
    "step_s", "flops_per_step", "peak_mem_gib", "device_mem_gib", "node_mem_gib", "data_s", "val_pass_s",
    "test_pass_s", "ckpt_mib", "ckpt_s", "evaluations", "workers", "rounds", "train_epochs", "final_trainings",
    "final_epochs", "eval_hours", "predicted_hours", "gpu_hours", "slurm_time", "h100_step_s", "h100_eval_hours",
    "h100_predicted_hours", "h100_slurm_time", "status",
]  # fmt: skip


@dataclass
class Options:
    steps: int = 2
    bf16: bool = False  # bf16 autocast (on a GPU the plan's precision decides; on a CPU this turns it on)
    compile: bool = False  # torch.compile the model
    channels_last: bool = False  # channels_last on a CPU too (CUDA trainings use it always)
    partition: str | None = None  # the SLURM partition the matrix will be submitted to (checked with sinfo)


@dataclass
class Measure:
    """One shape's costs on this device."""

    step_s: float
    flops_per_step: float
    peak_mem_gib: float
    data_s: float
    per_val_sample_s: float
    per_test_sample_s: float
    ckpt_mib: float
    ckpt_s: float
    fabricated: bool
    host_gib: float = 0.0  # the process and its data, in host memory: what every job's process holds
    data_gib: float = 0.0  # the decoded data alone (one copy per node: wconv.data.images.decoded)
    sizes: dict[str, int] = field(default_factory=dict)
    steps_per_epoch: int = 0


def device_name(device: torch.device) -> str:
    """The CSV's name for ``device``: ``cpu`` or the GPU's model, e.g. ``nvidia-h100-80gb-hbm3``."""
    if device.type != "cuda":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def device_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / 2**30
    import psutil

    return psutil.virtual_memory().total / 2**30


# ---- checks: one line each, naming the fix ----


def check(plan: Plan, options: Options) -> str | None:
    """What would fail before a GPU hour is spent (missing or incomplete data, W&B, SLURM), or None."""
    return check_data(plan) or _check_wandb(plan) or _check_partition(options.partition)


def check_data(plan: Plan) -> str | None:
    from wconv.data.div2k import DIV2K_ARCHIVES, div2k_dir
    from wconv.data.fabricate import marker

    c = plan.config.data
    root = c.root or "data"
    if c.name == "div2k":
        base = div2k_dir(root)
        recorded = marker(base)
        for archive in DIV2K_ARCHIVES:
            folder = base / archive.folder
            want = recorded[archive.folder] if recorded else archive.count
            found = len(list(folder.glob("*.png"))) if folder.is_dir() else 0
            if found != want:
                return (
                    f"DIV2K incomplete: {found} of {want} PNGs in {folder}: run "
                    f"`python -m wconv.data.download div2k --root {root}` (or data.root=<where DIV2K is>)"
                )
    if c.name == "train400":
        from wconv.data.denoise_manifest import DENOISE_SETS
        from wconv.data.train400 import denoise_dir

        for name in ("train400", *(c.test_sets or ())):
            folder, want = denoise_dir(root) / name, len(DENOISE_SETS[name].files)
            found = len(list(folder.glob("*"))) if folder.is_dir() else 0
            if found < want:
                return (
                    f"{name} incomplete: {found} of {want} files in {folder}: run "
                    f"`python -m wconv.data.download {name} --root {root}`"
                )
    if c.name == "cifar100":
        from wconv.data.cifar import cifar_dir

        folder = cifar_dir(root) / "cifar-100-python"
        if missing := [name for name in ("train", "test", "meta") if not (folder / name).is_file()]:
            return (
                f"CIFAR-100 incomplete: no {', '.join(missing)} in {folder}: run "
                f"`python -m wconv.data.download cifar100 --root {root}` (or data.root=<where CIFAR-100 is>)"
            )
    return None  # CIFAR-100's md5 sums are torchvision's, checked when it is read


def _check_wandb(plan: Plan) -> str | None:
    from wconv.tracking.wandb_logger import _has_api_key

    logger = plan.config.logger
    mode = os.environ.get("WANDB_MODE") or logger.mode
    if logger.name == "wandb" and mode == "online" and not _has_api_key():
        return "W&B is set online but no API key is known: run `wandb login`, or set logger.mode=offline (then sync)"
    return None


def _check_partition(partition: str | None) -> str | None:
    if partition is None:
        return None
    if shutil.which("sinfo") is None:
        return f"SLURM partition {partition!r} cannot be checked: sinfo not found (run the preflight on a login node)"
    listed = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30).stdout.split()
    names = [p.rstrip("*") for p in listed]
    if partition not in names:
        return f"unknown SLURM partition {partition!r}; this cluster has {', '.join(names) or 'none'}"
    return None


# ---- measurement ----


class _PeakMemory:
    """The peak of this process's resident memory while the block runs (sampled), or CUDA's peak allocation."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def __enter__(self) -> _PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        import psutil

        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            self._stop.wait(0.02)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _den(plan: Plan) -> tuple[Any, bool]:
    """The job's own conv: a density at the centre of the search box, the fixed one, a learned one, or none."""
    if plan.density == "direct_l":
        return [(low + high) / 2 for low, high in plan.bounds], False
    if plan.density in ("fixed", "learned"):
        return plan.resolved["density"]["den"], plan.density == "learned"
    return None, False


def rss() -> int:
    """This process's resident memory in bytes."""
    import psutil

    return psutil.Process().memory_info().rss


def measure(
    plan: Plan, data: Any, data_s: float, device: torch.device, options: Options, base: int = 0, data_bytes: int = 0
) -> Measure:
    """Time K training steps at the plan's batch (after one warm-up step), one validation batch, one test
    example, a checkpoint round trip; count a step's FLOPs; the peak memory of it all: CUDA's peak allocation, or on
    a CPU ``base`` (the process and its data) plus the resident memory this measurement adds at its peak."""
    from torch.utils.flop_counter import FlopCounterMode

    from wconv.runner import Runner
    from wconv.tracking.records import load_checkpoint, save_checkpoint
    from wconv.tracking.wandb_logger import NullTracker
    from wconv.training import make_optimizers

    c = plan.config
    batch = c.train.batch_size
    runner = Runner(plan, Path(tempfile.gettempdir()), data, NullTracker(), device)
    den, learn = _den(plan)
    model, prepare = runner.build(c.seed, den, learn)
    model.to(device)
    channels_last = device.type == "cuda" or options.channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp = options.bf16 or (device.type == "cuda" and c.train.precision == "bf16")
    steps = data.steps_per_epoch(batch)
    opts, _, _ = make_optimizers(model, plan.optim, plan.den_optim, steps, c.train.epochs, device)
    if prepare is not None:
        prepare(opts)
    net = torch.compile(model) if options.compile else model
    task = data.task

    def prepared(x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x

    def step(x: torch.Tensor, y: torch.Tensor, module: torch.nn.Module) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = task.loss(module(prepared(x)), y)
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()

    batches = data.train_batches(batch, c.seed, 0, device)
    before = rss() if device.type == "cpu" else 0
    with _PeakMemory(device) as memory:
        model.train()
        x, y = next(batches)
        step(x, y, net)  # warm-up: allocator, cudnn.benchmark, compilation
        with FlopCounterMode(display=False) as flops:
            step(x, y, model)
        times = []
        for _ in range(options.steps):
            x, y = next(batches)
            _sync(device)
            start = time.perf_counter()
            step(x, y, net)
            _sync(device)
            times.append(time.perf_counter() - start)
        model.eval()
        per_sample = {}
        with torch.no_grad():
            for split, size in (("val", batch), ("test", 1)):  # a validation batch; one whole test example
                x, _ = next(data.eval_batches(split, size, device))
                x = x[:size]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    net(prepared(x))  # warm-up of this shape
                    _sync(device)
                    start = time.perf_counter()
                    net(prepared(x))
                    _sync(device)
                per_sample[split] = (time.perf_counter() - start) / x.shape[0]
    with tempfile.TemporaryDirectory(prefix="wconv-preflight-") as scratch:
        path = Path(scratch) / "checkpoint.pt"
        start = time.perf_counter()
        save_checkpoint(path, {"model": model.state_dict(), "optimizers": [o.state_dict() for o in opts]})
        model.load_state_dict(load_checkpoint(path)["model"])
        ckpt_s, ckpt_mib = time.perf_counter() - start, path.stat().st_size / 2**20
    return Measure(
        step_s=statistics.median(times),
        flops_per_step=float(flops.get_total_flops()),
        peak_mem_gib=(memory.peak if device.type == "cuda" else base + memory.peak - before) / 2**30,
        data_s=data_s,
        per_val_sample_s=per_sample["val"],
        per_test_sample_s=per_sample["test"],
        ckpt_mib=ckpt_mib,
        ckpt_s=ckpt_s,
        fabricated=data.fabricated,
        host_gib=(base if device.type == "cuda" else base + memory.peak - before) / 2**30,
        data_gib=data_bytes / 2**30,
        sizes=REAL_SIZES.get(c.data.name, data.sizes) if data.fabricated else dict(data.sizes),
        steps_per_epoch=steps,
    )


# ---- prediction ----


def direct_rounds(dims: int, evaluations: int) -> list[int]:
    """The sizes of the batched DIRECT-L's rounds for ``evaluations`` in ``dims`` dimensions, on a smooth bowl: the
    rounds depend on the objective, so this is a prediction of a real search's."""
    from wconv.direct import DirectL

    search, sizes = DirectL([[0.0, 1.0]] * dims, evaluations), []
    while batch := search.ask():
        sizes.append(len(batch))
        search.tell([sum((v - 0.3) ** 2 for v in point) for point in batch])
    return sizes


@dataclass(frozen=True)
class Costs:
    """Seconds of the pieces of a training on one device: what a prediction is made of (a CSV row holds them)."""

    step_s: float
    steps_per_epoch: int
    val_pass_s: float  # one whole validation split
    test_pass_s: float  # one whole test split
    ckpt_s: float

    @classmethod
    def of(cls, m: Measure) -> Costs:
        val, test = m.per_val_sample_s * m.sizes["val"], m.per_test_sample_s * m.sizes["test"]
        return cls(m.step_s, m.steps_per_epoch, val, test, m.ckpt_s)

    @classmethod
    def from_row(cls, row: dict[str, str], h100: bool = False) -> Costs:
        """A preflight CSV row's costs; with ``h100`` its prediction for one H100."""
        costs = cls(
            float(row["step_s"]),
            int(row["steps_per_epoch"]),
            float(row["val_pass_s"]),
            float(row["test_pass_s"]),
            float(row["ckpt_s"]),
        )
        return costs.scaled(float(row["h100_step_s"]) / costs.step_s) if h100 else costs

    def scaled(self, factor: float) -> Costs:
        return Costs(
            self.step_s * factor,
            self.steps_per_epoch,
            self.val_pass_s * factor,
            self.test_pass_s * factor,
            self.ckpt_s * factor,
        )


def predict(plan: Plan, costs: Costs, workers: int | None = None) -> dict[str, Any]:
    """Seconds of the job and of one search evaluation, its GPU-seconds, on ``workers`` GPUs (default the plan's
    ``search.workers``): the search's DIRECT-L rounds, then the final trainings, as many at a time as there are
    workers (the longest first)."""
    c = plan.config

    def validations(epochs: int) -> int:
        return sum(1 for e in range(1, epochs + 1) if e % c.train.val_every == 0 or e == epochs)

    def training(epochs: int, split: str) -> float:
        seconds = epochs * costs.steps_per_epoch * costs.step_s + validations(epochs) * costs.val_pass_s
        seconds += costs.val_pass_s if split == "val" else costs.test_pass_s
        return seconds + costs.ckpt_s * (1 + seconds / (60 * (c.train.checkpoint_minutes or 1)))

    workers = workers or (c.search.workers if plan.searches else 1)
    evaluation = training(c.train.epochs, "val") if plan.searches else 0.0
    evals = c.search.max_evals if plan.searches else 0
    rounds = direct_rounds(len(plan.bounds), evals) if plan.searches else []
    turns = sum(math.ceil(n / workers) for n in rounds)
    variants, _ = plan.variants()
    finals = [training(v.epochs(c.final.epochs), "test") for v in variants for _ in plan.seeds_for(v)]
    serial = plan.density == "direct_l" and c.search.workers == 1  # only the serial search keeps its best model
    if serial and c.final.epochs == c.train.epochs and c.seed in plan.seeds:
        finals.remove(training(c.final.epochs, "test"))  # the best evaluation is that final training
    wall = turns * evaluation + critical_path(finals, workers)
    return {
        "evaluations": evals,
        "workers": workers,
        "rounds": len(rounds),
        "final_trainings": len(finals),
        "eval_s": evaluation,
        "longest_training_s": max([evaluation, *finals]),
        "wall_s": wall,
        "gpu_s": workers * wall,
        "val_pass_s": costs.val_pass_s,
        "test_pass_s": costs.test_pass_s,
    }


def with_margin(seconds: float) -> float:
    """What to ask a scheduler for, given a predicted time: a quarter more and ten minutes."""
    return 1.25 * seconds + 600


def slurm_time(seconds: float) -> str:
    """The ``--time`` to ask for (``with_margin``), in quarter hours (D-HH:MM:SS)."""
    minutes = math.ceil(with_margin(seconds) / 900) * 15
    days, rest = divmod(minutes, 24 * 60)
    return (f"{days}-" if days else "") + f"{rest // 60:02d}:{rest % 60:02d}:00"


def h100_scale(m: Measure) -> float:
    """The predicted H100 step time over this device's: every measured time is scaled by it."""
    return max(m.flops_per_step / (H100_UTILISATION * H100_BF16_FLOPS), H100_MIN_STEP_S) / m.step_s


def critical_path(hours: list[float], gpus: int) -> float:
    """The matrix's makespan on ``gpus`` GPUs, one job per GPU, longest first (LPT list scheduling)."""
    loads = [0.0] * gpus
    for h in sorted(hours, reverse=True):
        loads[loads.index(min(loads))] += h
    return max(loads) if loads else 0.0


def predictions(path: Path | None = None) -> tuple[dict[str, dict[str, str]], bool]:
    """The preflight's rows by run fingerprint (``path``, or the newest GPU CSV under results/preflight, else
    cpu.csv) and whether their times are to be read as one H100's predictions (cpu.csv's) rather than measurements
    on the GPU the jobs will use."""
    folder = Path(__file__).resolve().parents[2] / "results" / "preflight"
    if path is None:
        gpu = sorted((p for p in folder.glob("*.csv") if p.stem != "cpu"), key=lambda p: p.stat().st_mtime)
        path = gpu[-1] if gpu else folder / "cpu.csv"
    rows = {row.get("fingerprint") or name: row for name, row in read_csv(path).items()}
    return rows, Path(path).stem == "cpu"


def training_minutes(plan: Plan) -> int | None:
    """Minutes the longest single training of ``plan`` needs by the preflight (``with_margin``): an evaluation or
    a final training at the largest budget, the jobs a run's submitit workers get; None when it has no row."""
    rows, h100 = predictions()
    if plan.fingerprint not in rows:
        return None
    seconds = predict(plan, Costs.from_row(rows[plan.fingerprint], h100=h100), workers=1)["longest_training_s"]
    return math.ceil(with_margin(seconds) / 60)


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    """A preflight CSV by job name ({} when absent)."""
    if not Path(path).is_file():
        return {}
    with open(path, newline="") as f:
        return {row["job"]: row for row in csv.DictReader(f)}


def write_csv(path: Path, rows: dict[str, dict[str, Any]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for name in sorted(rows):
        writer.writerow({k: rows[name].get(k, "") for k in COLUMNS})
    write_text(path, text.getvalue())


def shape_key(plan: Plan) -> str:
    """Jobs with equal keys compute the same training steps: one measurement serves them all."""
    r = plan.resolved
    own = "learned" if plan.density == "learned" else "weighted" if _den(plan)[0] is not None else "standard"
    return repr(
        (r["model"], r["data"], r["train"]["batch_size"], r["optim"]["name"], own, r["density"]["skip_depthwise"])
    )


def row(job: str, plan: Plan, m: Measure, device: torch.device) -> dict[str, Any]:
    """The CSV row of one job from its shape's measurement."""
    costs = Costs.of(m)
    here, h100 = predict(plan, costs), predict(plan, costs.scaled(h100_scale(m)))
    c = plan.config
    return {
        "job": job,
        "fingerprint": plan.fingerprint,  # the run's: wconv.slurm and the submitit workers find their times by it
        "device": device_name(device),
        "fabricated": m.fabricated,
        "model": c.model.name,
        "data": c.data.name,
        "conv": plan.density,
        "kernel": plan.kernel_size,
        "batch": c.train.batch_size,
        "steps_per_epoch": m.steps_per_epoch,
        "step_s": f"{m.step_s:.4g}",
        "flops_per_step": f"{m.flops_per_step:.4g}",
        "peak_mem_gib": f"{m.peak_mem_gib:.3g}",
        "device_mem_gib": f"{device_memory_gib(device):.3g}",
        # the node's host memory with the search's workers: one copy of the data, a process (and on a CPU its
        # step's memory) per worker beside the run's own
        "node_mem_gib": f"{m.host_gib + (here['workers'] > 1) * here['workers'] * (m.host_gib - m.data_gib):.3g}",
        "data_s": f"{m.data_s:.3g}",
        "val_pass_s": f"{here['val_pass_s']:.4g}",
        "test_pass_s": f"{here['test_pass_s']:.4g}",
        "ckpt_mib": f"{m.ckpt_mib:.3g}",
        "ckpt_s": f"{m.ckpt_s:.3g}",
        "evaluations": here["evaluations"],
        "workers": here["workers"],
        "rounds": here["rounds"],
        "train_epochs": c.train.epochs,
        "final_trainings": here["final_trainings"],
        "final_epochs": c.final.epochs,
        "eval_hours": f"{here['eval_s'] / 3600:.4g}",
        "predicted_hours": f"{here['wall_s'] / 3600:.4g}",
        "gpu_hours": f"{here['gpu_s'] / 3600:.4g}",
        "slurm_time": slurm_time(here["wall_s"]),
        "h100_step_s": f"{m.step_s * h100_scale(m):.4g}",
        "h100_eval_hours": f"{h100['eval_s'] / 3600:.4g}",
        "h100_predicted_hours": f"{h100['wall_s'] / 3600:.4g}",
        "h100_slurm_time": slurm_time(h100["wall_s"]),
        "status": "ok",
    }


def failure(message: str) -> str:
    """A measurement's exception as the one line a user can act on."""
    text = " ".join(str(message).split())
    if "out of memory" in text.lower():
        return f"out of memory at the full batch ({text[:120]}): lower train.batch_size or use a larger GPU"
    return text


def run(jobs: list, extra: list[str], device: torch.device, options: Options, out: Path) -> int:
    """Check and measure every job, print the table and the matrix's cost, merge the rows into ``out``; 1 when a
    job would fail (each such job one line, the others still measured)."""
    from wconv import data as wdata
    from wconv import sweep
    from wconv.cli_checks import COMPOSE_ERRORS, explain
    from wconv.plan import make

    rows, failed = read_csv(out), []
    process = rss()  # the interpreter and its libraries: every job's process holds them
    datasets: dict[str, tuple[Any, float, int]] = {}
    shapes: dict[str, Measure] = {}
    for i, job in enumerate(jobs, 1):
        try:
            plan = make(sweep.compose_job(job, extra))
        except COMPOSE_ERRORS as err:
            failed.append(f"{job.name}: {explain(err)}")
            continue
        except ConfigError as err:
            failed.append(f"{job.name}: {err}")
            continue
        if problem := check(plan, options):
            failed.append(f"{job.name}: {problem}")
            continue
        key = repr((plan.config.data.name, plan.data_options))
        try:
            if key not in datasets:
                datasets.clear()  # one dataset held at a time (the jobs of one dataset follow each other)
                start, held = time.perf_counter(), rss()
                data = wdata.build(plan.config.data.name, **plan.data_options)
                datasets[key] = (data, time.perf_counter() - start, rss() - held)
            data, data_s, data_bytes = datasets[key]
            if (shape := shape_key(plan)) not in shapes:
                print(f"[{i}/{len(jobs)}] {job.name}: measuring {options.steps} steps of batch "
                      f"{plan.config.train.batch_size}", flush=True)  # fmt: skip
                shapes[shape] = measure(plan, data, data_s, device, options, process + data_bytes, data_bytes)
        except wdata.DataError as err:
            failed.append(f"{job.name}: {' '.join(str(err).split())}")
            continue
        except Exception as err:  # a crash in a path only this job takes: one line, the other jobs go on
            failed.append(f"{job.name}: {failure(f'{type(err).__name__}: {err}')}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        rows[job.name] = row(job.name, plan, shapes[shape], device)
    measured = [rows[job.name] for job in jobs if job.name in rows and rows[job.name].get("status") == "ok"]
    write_csv(out, rows)
    print(report(measured))
    for line in failed:
        print(f"error: {line}")
    print(f"wrote {out}" + (f"; {len(failed)} job(s) would fail" if failed else ""))
    return 1 if failed else 0


def report(rows: list[dict[str, Any]]) -> str:
    """The jobs' table and the matrix's cost: GPU-hours and critical path on 1, 4 and 8 GPUs (one job per GPU)."""
    lines = [
        f"{'job':<58} {'step s':>8} {'memory GiB':>14} {'hours':>9} {'H100 h*':>8} {'sbatch':>11}",
    ]
    for r in rows:
        memory = f"{float(r['peak_mem_gib']):.1f}/{float(r['device_mem_gib']):.0f}"
        lines.append(
            f"{r['job']:<58} {float(r['step_s']):>8.3g} {memory:>14} {float(r['predicted_hours']):>9.3g} "
            f"{float(r['h100_predicted_hours']):>8.3g} {r['slurm_time']:>11}"
        )
    for column, label in (("gpu_hours", "this device"), ("h100_predicted_hours", "one H100 each (* predicted)")):
        hours = [float(r[column]) for r in rows]
        paths = ", ".join(f"{g} GPU(s) {critical_path(hours, g):.3g} h" for g in (1, 4, 8))
        lines.append(f"matrix on {label}: {sum(hours):.4g} GPU-hours; critical path {paths}")
    return "\n".join(lines)
