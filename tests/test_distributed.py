"""Data parallelism on CPU (gloo, 2 processes): the collectives, the training loop's split of every batch (same
training as one process), and ``torchrun -m wconv.train`` end to end with one set of records."""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import ROOT
from torch import nn

from wconv import distributed
from wconv.data.classification import ClassificationData
from wconv.tracking.records import read_json, read_jsonl
from wconv.training import OptimConfig, train


def test_a_single_process_is_left_alone():
    x, y = torch.arange(5), torch.arange(5) * 2
    assert not distributed.init()  # no torchrun variables here
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.shard(x, y) == (x, y) and distributed.shard_weight(5, 5) == 1.0
    assert distributed.average(0.25) == 0.25
    assert distributed.from_main(lambda: 7) == 7
    model = nn.Linear(2, 2)
    assert distributed.wrap(model, torch.device("cpu")) is model
    distributed.check_same([1.0], "anything")
    distributed.barrier()
    distributed.seed_epoch(0, 1)
    state = torch.get_rng_state()
    torch.rand(10)  # whatever was drawn before, an epoch's dropout stream depends on (seed, epoch) only
    distributed.seed_epoch(0, 1)
    assert torch.equal(torch.get_rng_state(), state)
    distributed.seed_epoch(0, 2)
    assert not torch.equal(torch.get_rng_state(), state)


def _tiny_data() -> ClassificationData:
    """25 training images: batches of 10, 10 and 5, so the last one splits 3 + 2 over two ranks."""
    g = torch.Generator().manual_seed(0)
    split = lambda n: (torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8), torch.arange(n) % 6)
    return ClassificationData({"train": split(25), "val": split(8), "test": split(8)}, 6, [0.5] * 3, [0.25] * 3)


def _tiny_model() -> nn.Module:
    """No batch norm and no dropout: with these, the ranks' statistics and masks differ by design."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 6)
    )


def _train(model: nn.Module, checkpoint: Path):
    optim = OptimConfig.load("sgd", lr=0.2, momentum=0.9, weight_decay=1e-3, schedule="none", warmup_epochs=0)
    return train(
        model,
        _tiny_data(),
        seed=3,
        epochs=2,
        batch_size=10,
        optim=optim,
        density_optim=None,
        device=torch.device("cpu"),
        eval_split="test",
        checkpoint=checkpoint,
        progress=False,
    )


def _worker(rank: int, world: int, port: int, out: Path) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    import wconv.training

    assert distributed.init() and distributed.describe() == "2 processes (gloo)"
    assert (distributed.rank(), distributed.is_main()) == (rank, rank == 0)
    (mine,) = distributed.shard(torch.arange(5))
    assert mine.tolist() == [[0, 1, 2], [3, 4]][rank]
    assert distributed.shard_weight(len(mine), 5) == [1.2, 0.8][rank]
    assert distributed.average(float(rank)) == 0.5
    assert distributed.from_main(lambda: f"computed on rank {distributed.rank()}") == "computed on rank 0"
    distributed.check_same([0.25, 1.5], "a shared value")
    with pytest.raises(RuntimeError, match=r"the ranks disagree on a rank's own value: \[\[0.0\], \[1.0\]\]"):
        distributed.check_same([float(rank)], "a rank's own value")

    saves = []
    save = wconv.training.save_checkpoint
    wconv.training.save_checkpoint = lambda path, state: (saves.append(rank), save(path, state))
    model = _tiny_model()
    result = _train(model, out / "checkpoint.pt")
    torch.save(model.state_dict(), out / f"weights-{rank}.pt")
    record = {"metrics": result.metrics, "losses": [h[k] for h in result.history for k in ("train_loss", "val_loss")]}
    (out / f"rank-{rank}.json").write_text(json.dumps({**record, "saves": len(saves)}))
    distributed.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_two_gloo_ranks_train_as_one_process_would(tmp_path):
    """Each rank takes its slice of every global batch (unequal in the last one), DDP averages the weighted
    gradients: the same weights, losses and metrics as one process on the whole batches; rank 0 alone saves."""
    reference = _tiny_model()
    want = _train(reference, tmp_path / "reference.pt")
    mp.spawn(_worker, args=(2, _free_port(), tmp_path), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["saves"] for r in ranks] == [1, 0]  # one checkpoint (the default cadence: at the end), by rank 0
    assert ranks[0]["metrics"] == ranks[1]["metrics"] and ranks[0]["losses"] == ranks[1]["losses"]
    assert ranks[0]["metrics"] == pytest.approx(want.metrics, rel=1e-5)
    want_losses = [h[k] for h in want.history for k in ("train_loss", "val_loss")]
    assert ranks[0]["losses"] == pytest.approx(want_losses, rel=1e-5)
    weights = [torch.load(tmp_path / f"weights-{r}.pt") for r in (0, 1)]
    for name, value in reference.state_dict().items():
        assert torch.equal(weights[0][name], weights[1][name])  # DDP keeps the replicas identical
        torch.testing.assert_close(weights[0][name], value, rtol=1e-5, atol=1e-6)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] == 2


@pytest.mark.timeout(150)
def test_torchrun_search_on_two_processes_writes_one_set_of_records(tmp_path):
    run_dir, scratch = tmp_path / "run", tmp_path / "tmp"
    scratch.mkdir()
    args = ["model=vgg11", "data=digits", "search=direct_l", "search.max_evals=2", "train.epochs=1", "final.seeds=[0]"]
    args += ["final.baseline=false", "logger=none", "progress=false", "data.limit_train=128", "data.limit_eval=64"]
    args += ["device=cpu"]  # a paper-profile run on a CPU must be asked for
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "wconv.train"]
    proc = subprocess.run(
        [*command, *args, f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=140
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert log.count("data-parallel over 2 processes (gloo)") == 1 and log.count(": done -> ") == 1  # rank 0's
    rows = read_jsonl(run_dir / "evaluations.jsonl")
    assert [r["index"] for r in rows] == [0, 1]  # each evaluation recorded once, not once per rank
    assert rows[0]["den"] == [1.0] and rows[1]["den"] == pytest.approx([2 / 3])  # DIRECT-L's first two points
    assert all(r["status"] == "ok" and math.isfinite(r["objective"]) and r["objective"] > 0 for r in rows)
    assert (proc.stdout + proc.stderr).count("eval 2/2 den=[0.6667] val_loss=") == 1  # only rank 0 reports
    result = read_json(run_dir / "result.json")
    best = min(rows, key=lambda r: r["objective"])
    assert result["best_den"] == best["den"] and result["search"]["evaluations"] == 2
    weighted = result["variants"]["weighted"]
    assert weighted["seeds"]["0"]["status"] == "ok" and 0 <= weighted["test"]["acc1"]["mean"] <= 100
    assert math.isfinite(weighted["test"]["loss"]["mean"])
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["final-weighted-seed0.pt"]
    assert [p.name for p in (run_dir / "trainings").iterdir()] == ["final-weighted-seed0.json"]
    assert not list(scratch.glob("wconv-rank*"))  # the other rank's private copy of the record is gone


def _long_data() -> ClassificationData:
    """600 training images in batches of 6: 100 steps an epoch, long enough to be interrupted mid-epoch."""
    g = torch.Generator().manual_seed(1)
    split = lambda n: (torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8), torch.arange(n) % 6)
    return ClassificationData({"train": split(600), "val": split(8), "test": split(8)}, 6, [0.5] * 3, [0.25] * 3)


def _stoppable(rank: int, world: int, port: int, out: Path) -> None:
    """A rank of a two-process training that stops on USR2 as wconv.train's processes do."""
    import signal as signals

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from wconv.training import StopRequested, request_stop

    signals.signal(signals.SIGUSR2, request_stop)
    distributed.init()
    (out / f"ready-{rank}").touch()
    optim = OptimConfig.load("sgd", lr=0.05, momentum=0.9, weight_decay=1e-3, schedule="none", warmup_epochs=0)
    try:
        result = train(_tiny_model(), _long_data(), seed=3, epochs=6, batch_size=6, optim=optim, density_optim=None,
                       device=torch.device("cpu"), eval_split="test", checkpoint=out / "checkpoint.pt",
                       progress=False)  # fmt: skip
        (out / f"done-{rank}.json").write_text(json.dumps(result.metrics))
    except StopRequested as stop:
        (out / f"stopped-{rank}").write_text(str(stop.signum))
    distributed.close()


@pytest.mark.timeout(240)
def test_usr2_to_one_rank_stops_both_at_the_same_step_and_the_resume_ends_as_the_uninterrupted_run(tmp_path):
    """A signal may reach one rank only (a SLURM step's signal, or torchrun forwarding it): the ranks agree to stop
    every few steps, both stop at the same step, rank 0 checkpoints it, and the resumed run ends bit for bit where
    an uninterrupted one ends."""
    import random
    import signal as signals
    import time

    reference = tmp_path / "reference"
    reference.mkdir()
    mp.spawn(_stoppable, args=(2, _free_port(), reference), nprocs=2, join=True)
    want = json.loads((reference / "done-0.json").read_text())
    run = tmp_path / "run"
    run.mkdir()
    context = mp.spawn(_stoppable, args=(2, _free_port(), run), nprocs=2, join=False)
    while not all((run / f"ready-{r}").exists() for r in (0, 1)):
        time.sleep(0.05)
    # a random moment in the first 60% of the reference's training (it takes about 1.5 s on a quiet machine: a fixed
    # sleep would miss it on a fast one, and a signal after the training kills the rank with the default action)
    took = (reference / "done-0.json").stat().st_mtime - (reference / "ready-0").stat().st_mtime
    time.sleep(random.uniform(0.1, 0.6) * took)
    os.kill(context.processes[1].pid, signals.SIGUSR2)  # rank 1 alone gets it
    while not context.join():
        pass
    assert [(run / f"stopped-{r}").read_text() for r in (0, 1)] == [str(int(signals.SIGUSR2))] * 2
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] % distributed.STOP_EVERY == 0 and 0 < state["epoch"] * 100 + state["step"] < 600
    mp.spawn(_stoppable, args=(2, _free_port(), run), nprocs=2, join=True)
    assert json.loads((run / "done-0.json").read_text()) == want
