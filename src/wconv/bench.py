"""Overhead of the weighted convolution: median step times of standard, weighted and folded variants.

The variants are timed interleaved in one process (A B C A B C ...), so that drift of the machine (turbo,
other load) hits all of them alike and the ratios are meaningful even when absolute times are noisy.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from wconv.nn import convert, fold


@dataclass
class Case:
    """One thing to time: a model factory, an input batch and how to make a loss of the output."""

    name: str
    build: Callable[[], nn.Module]
    input: Callable[[torch.device], torch.Tensor]
    den: object


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    model(x).float().square().mean().backward()
    opt.step()


@torch.no_grad()
def _infer(model: nn.Module, x: torch.Tensor) -> None:
    model(x)


def time_case(case: Case, device: torch.device, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds of a training step and of inference for standard, weighted and folded models, and of a
    training step of the preconditioned standard model (the same SGD training as the weighted one, in one pass
    over the weights: ``wconv.nn.precondition``)."""
    from wconv.nn.precondition import precondition

    torch.manual_seed(0)
    standard = case.build().to(device)
    weighted = convert(standard, den=case.den)
    folded = fold(weighted).eval()
    preconditioned, preconditioner = precondition(standard, case.den, "sgd")
    models = {"standard": standard, "weighted": weighted, "preconditioned": preconditioned}
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-6, momentum=0.9) for k, m in models.items()}
    preconditioner.install([opts["preconditioned"]])
    x = case.input(device)
    times: dict[str, list[float]] = {f"{k}_{p}": [] for k in models for p in ("train", "infer")}
    times["folded_infer"] = []
    for i in range(warmup + repeats):
        for key, fn in [
            *[(f"{k}_train", (lambda k=k: _train_step(models[k].train(), opts[k], x))) for k in models],
            *[(f"{k}_infer", (lambda k=k: _infer(models[k].eval(), x))) for k in models if k != "preconditioned"],
            ("folded_infer", lambda: _infer(folded, x)),
        ]:
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            if i >= warmup:
                times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items() if v}


def layer_cases(batch: int, size: int) -> list[Case]:
    """Single conv layers: 3x3, 5x5, 7x7 with small and large channel counts."""
    dens = {3: [0.7], 5: [0.3, 1.5], 7: [0.06, 1.2, 1.6]}
    cases = []
    for k, den in dens.items():
        for ch in (16, 128):

            def build(ch=ch, k=k) -> nn.Module:
                return nn.Sequential(nn.Conv2d(ch, ch, k, padding=k // 2))

            def inp(device, ch=ch) -> torch.Tensor:
                return torch.randn(batch, ch, size, size, device=device)

            cases.append(Case(f"conv{k}x{k}_c{ch}", build, inp, den))
    return cases


def model_cases(device: torch.device) -> list[Case]:
    """The papers' four whole models at their default size, with the 3x3 density the papers report."""
    from wconv.models import create

    gpu = device.type == "cuda"
    specs = [
        ("vgg16", {"num_classes": 100}, (128 if gpu else 32, 3, 32, 32)),
        ("resnet18", {"num_classes": 100}, (128 if gpu else 16, 3, 32, 32)),
        ("dncnn", {"in_channels": 1}, (64 if gpu else 16, 1, 40, 40)),
        ("nafnet", {"in_channels": 3}, (16 if gpu else 2, 3, 128 if gpu else 64, 128 if gpu else 64)),
    ]
    return [
        Case(
            name,
            lambda name=name, opts=opts: create(name, **opts),
            lambda device, shape=shape: torch.randn(*shape, device=device),
            [0.7],
        )
        for name, opts, shape in specs
    ]


def run(cases: list[Case], device: torch.device, repeats: int, log: Callable[[str], None] = print) -> list[dict]:
    """Time every case; return one row per case with the ratios weighted/standard and folded/standard."""
    rows = []
    log(
        f"{'case':<16} {'train std':>10} {'train w/s':>10} {'pre/s':>7} {'infer std':>10} {'infer w/s':>10} "
        f"{'fold/s':>8}"
    )
    for case in cases:
        t = time_case(case, device, repeats)
        row = {
            "case": case.name,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
            "repeats": repeats,
            "train_standard_s": t["standard_train"],
            "train_weighted_s": t["weighted_train"],
            "train_ratio": t["weighted_train"] / t["standard_train"],
            "train_preconditioned_s": t["preconditioned_train"],
            "preconditioned_ratio": t["preconditioned_train"] / t["standard_train"],
            "infer_standard_s": t["standard_infer"],
            "infer_weighted_s": t["weighted_infer"],
            "infer_ratio": t["weighted_infer"] / t["standard_infer"],
            "infer_folded_s": t["folded_infer"],
            "folded_ratio": t["folded_infer"] / t["standard_infer"],
        }
        rows.append(row)
        log(
            f"{case.name:<16} {row['train_standard_s'] * 1e3:>8.2f}ms {row['train_ratio']:>10.3f} "
            f"{row['preconditioned_ratio']:>7.3f} "
            f"{row['infer_standard_s'] * 1e3:>8.2f}ms {row['infer_ratio']:>10.3f} {row['folded_ratio']:>8.3f}"
        )
    return rows


def synthetic_data(task: str, n_train: int, device_note: str = "") -> object:
    """CIFAR-100-sized classification (32x32 colour, 100 classes) or 128x128 colour crops for denoising, random
    pixels through the real data pipeline (augmentation, noise): timing needs the shapes, not the content."""
    from wconv.data.classification import ClassificationData
    from wconv.data.denoising import DenoisingData

    g = torch.Generator().manual_seed(0)
    if task == "classification":

        def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(
                0, 100, (n,), generator=g
            )

        splits = {"train": split(n_train), "val": split(256), "test": split(256)}
        return ClassificationData(splits, 100, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    images = {
        s: [torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8, generator=g) for _ in range(2)]
        for s in ("train", "val", "test")
    }
    names = {s: [f"{s}{i}" for i in range(2)] for s in images}
    return DenoisingData(images, names, patch_size=128, patches_per_epoch=n_train, eval_max_size=128)


# (model, task, examples per epoch, batch size): CIFAR-100's 45k training images; 800 DIV2K images x 64 crops.
EPOCH_CASES = [
    ("vgg16", "classification", 45_000, 128),
    ("resnet18", "classification", 45_000, 128),
    ("dncnn", "denoising", 51_200, 64),
    ("nafnet", "denoising", 51_200, 16),
]


def epoch_seconds(name: str, task: str, examples: int, batch: int, device: torch.device, fraction: float) -> dict:
    """Seconds per epoch of the real training loop (``wconv.training.train``), standard and weighted.

    With ``fraction`` < 1 (CPU) the epoch is that share of the data and the time is scaled up: an estimate.
    """
    from wconv.models import create
    from wconv.training import OptimConfig, train

    n = max(batch * 3, int(examples * fraction))
    data = synthetic_data(task, n)
    options = data.task.model_options(data)
    out = {"case": name, "examples_per_epoch": examples, "batch": batch, "measured_examples": n}
    for variant, den in (("standard", None), ("weighted", [0.7]), ("standard_repeat", None)):
        torch.manual_seed(0)
        model = create(name, den=den, **options)
        optim = OptimConfig.load("sgd", lr=1e-3, schedule="none", warmup_epochs=0)
        res = train(
            model,
            data,
            seed=0,
            epochs=2,
            batch_size=batch,
            optim=optim,
            density_optim=None,
            device=device,
            eval_split="val",
            progress=False,
        )
        out[f"{variant}_epoch_s"] = res.history[-1]["seconds"] * examples / n  # the second epoch: warm
    out["ratio"] = out["weighted_epoch_s"] / out["standard_epoch_s"]
    return out


# (model, data shape): VGG16 on CIFAR shapes with CIFAR's train/validation proportion (45k/5k), reduced; DnCNN on
# 40x40 patches with a validation set of whole images (DIV2K grey: 51,200 patches per epoch, 80 2K images).
# The paper experiments' proportions, scaled down: CIFAR-100 45k train / 5k validation images; DIV2K DnCNN 51,200
# crops of 40x40 per epoch / 80 validation images cropped to 512x512 (a quarter of the training pixels). The
# validation cadence is the experiment file's (``train.val_every``).
EFFICIENCY_CASES = {
    "vgg16": {
        "task": "classification",
        "train": 2048,
        "val": 228,
        "batch": 128,
        "experiment": "vgg16_cifar100_standard",
    },
    "dncnn": {
        "task": "denoising",
        "train": 1024,
        "val_images": 1,
        "val_size": 640,
        "batch": 64,
        "experiment": "dncnn_div2k_standard",
    },
}


def efficiency_data(case: dict) -> object:
    """Random pixels in the case's shapes through the real data pipeline (timing needs shapes, not content)."""
    from wconv.data.classification import ClassificationData
    from wconv.data.denoising import DenoisingData

    g = torch.Generator().manual_seed(0)
    if case["task"] == "classification":

        def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
            return images, torch.randint(0, 100, (n,), generator=g)

        splits = {"train": split(case["train"]), "val": split(case["val"]), "test": split(8)}
        return ClassificationData(splits, 100, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    size = case["val_size"]
    images = {
        "train": [torch.randint(0, 256, (1, 180, 180), dtype=torch.uint8, generator=g) for _ in range(8)],
        "val": [
            torch.randint(0, 256, (1, size, size), dtype=torch.uint8, generator=g) for _ in range(case["val_images"])
        ],
        "test": [torch.randint(0, 256, (1, 64, 64), dtype=torch.uint8, generator=g)],
    }
    names = {s: [f"{s}{i}" for i in range(len(v))] for s, v in images.items()}
    return DenoisingData(images, names, patch_size=40, patches_per_epoch=case["train"])


def epoch_efficiency(name: str, device: torch.device, epochs: int = 4, width: float = 1.0) -> dict:
    """Whole epochs as the training loop runs them (validation, the default checkpoint cadence, logging) over the
    training steps alone, both from one run of ``wconv.training.train``: the share of an epoch that is not
    compute."""
    import logging
    import tempfile
    from pathlib import Path

    from wconv.models import create
    from wconv.sweep import Job, compose_job
    from wconv.tracking.progress import EpochLog
    from wconv.training import LoopOptions, OptimConfig, train

    case = EFFICIENCY_CASES[name]
    val_every = int(compose_job(Job(name, (f"experiment={case['experiment']}",))).train.val_every)
    data = efficiency_data(case)
    torch.manual_seed(0)
    model = create(name, width=width, **data.task.model_options(data))
    optim = OptimConfig.load("sgd" if case["task"] == "classification" else "adam")
    logging.getLogger("wconv.train").setLevel(logging.WARNING)  # the lines are formatted, not printed
    with tempfile.TemporaryDirectory() as tmp:
        log = EpochLog(name, epochs, Path(tmp) / "metrics.csv", data.task.curve[0])
        start = time.perf_counter()
        res = train(
            model,
            data,
            seed=0,
            epochs=epochs,
            batch_size=case["batch"],
            optim=optim,
            density_optim=None,
            device=device,
            eval_split="test",
            checkpoint=Path(tmp) / "ckpt.pt",
            on_epoch=lambda epoch, row: log(row),
            progress=False,
            loop=LoopOptions(val_every=val_every),
        )
        whole = time.perf_counter() - start
    steps = sum(r["seconds"] for r in res.history)
    return {
        "case": name,
        "epochs": epochs,
        "val_every": val_every,
        "whole_s": whole,
        "steps_s": steps,
        "efficiency_ratio": whole / steps,
    }
