"""Single-node data parallelism under ``torchrun``; every function is a no-op in a plain single process.

``torchrun --nproc_per_node=N -m wconv.train ...`` starts N copies of the training. Each takes a slice of every
global batch (the batch size, data order, augmentation and noise stay functions of (seed, epoch)), gradients are
averaged by DistributedDataParallel, rank 0 evaluates and sends the metrics to the others (so the search's
objective, hence NLopt's proposals, are the same on every rank), and only rank 0 writes records, checkpoints and
logs. Backends: gloo on CPU, NCCL for CUDA tensors (``cpu:gloo,cuda:nccl``: the small collectives here use CPU
tensors, so they go through gloo on either).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from wconv.data.base import derive_seed

T = TypeVar("T")


def init() -> bool:
    """Join the process group when started by torchrun (RANK, WORLD_SIZE, MASTER_ADDR/PORT set); else nothing.

    Returns whether this process is one of several. Under torchrun each process gets GPU ``LOCAL_RANK``.
    """
    if is_distributed() or "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return is_distributed()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    return True


def close() -> None:
    """Leave the process group (at the end of the run)."""
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes records, checkpoints and logs."""
    return rank() == 0


def describe() -> str:
    """E.g. ``2 processes (gloo)``, for the run's log."""
    return f"{world_size()} processes ({dist.get_backend()})" if is_distributed() else "1 process"


def local_device(device: torch.device) -> torch.device:
    """This process's own GPU (``cuda:LOCAL_RANK``) when distributed on CUDA; ``device`` otherwise."""
    if is_distributed() and device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def quiet_other_ranks() -> None:
    """On ranks other than 0: no log file (rank 0 keeps the run's log) and only errors on the console."""
    if is_main():
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.ERROR)


def barrier() -> None:
    """Wait until every rank gets here (an all-reduce of a CPU tensor: gloo, whatever the training device)."""
    if is_distributed():
        dist.all_reduce(torch.zeros(1))


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (a download, say), the others after it: ``with main_first(): build()``."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def average(value: float) -> float:
    """The mean of ``value`` over the ranks, identical on every rank."""
    if not is_distributed():
        return value
    box = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(box)
    return float(box.item()) / world_size()


def from_main(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` computed on rank 0 only, its (picklable) result sent to every rank."""
    if not is_distributed():
        return fn(*args, **kwargs)
    box = [fn(*args, **kwargs) if is_main() else None]
    dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
    return box[0]


STOP_EVERY = 10  # steps between the ranks' agreements on stopping (a CPU all-reduce: no GPU synchronisation)


def agreed_stop(signum: int, step: int, last: bool = False) -> int:
    """The signal (0: none) on which every rank stops after ``step``: under torchrun a signal may reach one rank
    only, so the ranks agree every ``STOP_EVERY`` steps and at an epoch's ``last`` step (the largest signal any of
    them got) and all checkpoint and stop at the same step; alone, a process stops at once."""
    if not is_distributed():
        return signum
    if (step + 1) % STOP_EVERY and not last:
        return 0
    box = torch.tensor([signum], dtype=torch.int64)
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return int(box.item())


def check_same(values: list[float], what: str) -> None:
    """Raise on every rank when the ranks hold different ``values`` (e.g. the density NLopt proposes): the ranks
    must never train different models in lockstep."""
    if not is_distributed():
        return
    mine = torch.tensor(values, dtype=torch.float64)
    everyone = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(everyone, mine)
    if any(not torch.equal(other, everyone[0]) for other in everyone):
        raise RuntimeError(f"the ranks disagree on {what}: {[other.tolist() for other in everyone]}")


def shard(*tensors: Tensor) -> tuple[Tensor, ...]:
    """This rank's contiguous slice of a global batch (slice sizes differ by at most one)."""
    if not is_distributed():
        return tensors
    if tensors[0].shape[0] < world_size():
        raise ValueError(
            f"a batch of {tensors[0].shape[0]} cannot be split over {world_size()} processes: "
            "use fewer processes or a training set whose last batch is at least that large"
        )
    return tuple(t.tensor_split(world_size())[rank()] for t in tensors)


def shard_weight(local: int, total: int) -> float:
    """What this rank's mean loss is scaled by so that DDP's average of the ranks' gradients is the gradient of
    the global batch's mean loss, even when the slices differ in size: 1.0 with equal slices and in one process."""
    return local * world_size() / total


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel (gradients averaged over the ranks), or ``model`` itself."""
    if not is_distributed():
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed the global RNG (dropout) from (seed, epoch, rank): the variants of a seed draw the same masks whatever
    building their models drew before (a paired comparison), the ranks draw different masks for their slices, and
    a resumed epoch draws the same ones again."""
    torch.manual_seed(derive_seed(seed, epoch, "rank", rank()))
