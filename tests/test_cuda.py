"""The GPU paths, on a GPU (``make test-gpu``; skipped with the reason where CUDA is absent): bf16 against fp32,
torch.compile, channels_last, each local search worker on its own GPU, DDP over NCCL, and the preflight on CUDA.
Run it first on a cluster node, before a night of jobs."""

import csv
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from wconv.models import create
from wconv.search import Evaluation

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (run on a GPU node)")
BF16_TOLERANCE = 0.05  # relative L2 error of a bf16-autocast forward against fp32 (8 bits of mantissa, 17 layers)


def _dncnn(den=(0.5,)) -> torch.nn.Module:
    torch.manual_seed(0)
    return create("dncnn", den=list(den), depth=8, features=32).cuda().eval()


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@torch.no_grad()
def test_bf16_autocast_matches_fp32_within_the_stated_tolerance():
    model, x = _dncnn(), torch.rand(4, 1, 64, 64, device="cuda")
    full = model(x)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        half = model(x)
    assert half.dtype == torch.bfloat16 and _relative(half, full) < BF16_TOLERANCE


@torch.no_grad()
def test_compiled_and_channels_last_weighted_models_give_the_eager_output():
    model, x = _dncnn(), torch.rand(2, 1, 48, 48, device="cuda")
    eager = model(x)
    torch.testing.assert_close(torch.compile(model)(x), eager, rtol=1e-4, atol=1e-4)
    model = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)), eager, rtol=1e-4, atol=1e-4)


def _device_of_slot(slot: int):
    """A search worker's setup (picklable): its device, as ``wconv.runner`` gives a worker's trainings."""
    from wconv.runner import device_for

    device = device_for("auto", slot)
    return lambda index, den: Evaluation(0.0, "ok", {"device": str(device), "current": torch.cuda.current_device()})


@pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason=f"{torch.cuda.device_count()} GPU(s): each worker on its own GPU needs two"
)
def test_each_local_worker_trains_on_its_own_gpu():
    from wconv.parallel import LocalWorkers

    workers = LocalWorkers(_device_of_slot, 2)
    try:
        done = list(workers([(0, [0.5]), (1, [0.7]), (2, [0.9]), (3, [1.1])]))
    finally:
        workers.close()
    devices = {result.metrics["device"] for _, result, _ in done}
    assert devices == {"cuda:0", "cuda:1"}


@pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason=f"{torch.cuda.device_count()} GPU(s): DDP over NCCL needs two"
)
def test_ddp_over_nccl_on_two_gpus(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "wconv.train",
               "experiment=dncnn_div2k_standard", "profile=smoke", "data=photos", "logger=none", "progress=false",
               "final.seeds=[0]", f"hydra.run.dir={tmp_path / 'ddp'}"]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data-parallel over 2" in (tmp_path / "ddp" / "train.log").read_text()


def test_the_preflight_measures_on_the_gpu(tmp_path):
    out = tmp_path / "gpu.csv"
    command = [sys.executable, "scripts/preflight.py", "--profile", "smoke", "--match", "dncnn_div2k_direct_l",
               "--steps", "3", "--device", "cuda", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (row,) = csv.DictReader(open(out))
    assert row["device"] != "cpu" and 0 < float(row["peak_mem_gib"]) < float(row["device_mem_gib"])
    assert float(row["step_s"]) > 0 and float(row["flops_per_step"]) > 0
