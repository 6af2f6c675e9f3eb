"""The weighted convolution as a preconditioned standard one, and its parts (the arms of ``wconv.variants``).

For positive densities, training ``W`` in ``conv(x, W * phi)`` is training ``V = W * phi`` of a standard conv
whose initial weights are multiplied by phi and whose steps are rescaled per tap by ``r``:

- SGD (momentum, Nesterov and weight decay included): ``r = phi**2``, put on the gradient of ``V``. Exact: the
  update is linear in the gradient, and the decay ``lr * wd * W`` of ``W`` is ``lr * wd * V`` of ``V``.
- Adam and AdamW: ``r = phi``: the gradient times ``r`` (what the weighted layer's ``W`` sees), then the
  optimiser's step times ``r`` (a per-tap learning rate). Exact without weight decay; with it, the decay is scaled
  by phi too.

The two parts can be taken apart (``start`` and ``steps``): the start alone, the steps alone, the steps' shape
without their size (``r / mean(r)``, Spatial Gradient Scaling's mean-1 mask, Detkov et al. 2023) or their size
without their shape (``mean(r)`` on every tap: a learning rate scaled on the weighted convs' weights only).
The mean is over the taps of one kernel. Gradient clipping sees the rescaled gradients, so no arm is exact under
clipping.
"""

from __future__ import annotations

import torch
from torch import nn

from wconv.nn.convert import convert, fold
from wconv.nn.density import SYMMETRIC, DensityFamily
from wconv.nn.weighted import _WeightedConvNd

STEPS = ("density", "shape", "size")  # the per-tap step scaling: r, r / mean(r), mean(r) on every tap


def step_scale(phi: torch.Tensor, optimizer: str, steps: str = "density") -> torch.Tensor:
    """The per-tap step multiplier of a kernel with density ``phi`` under ``optimizer`` (``r``, see the module
    docstring), or its shape (mean 1) or its size (its mean on every tap)."""
    r = phi * phi if optimizer == "sgd" else phi
    if steps == "density":
        return r
    if steps == "shape":
        return r / r.mean()
    if steps == "size":
        return torch.full_like(r, float(r.mean()))
    raise ValueError(f"steps must be one of {', '.join(STEPS)}, got {steps!r}")


class Preconditioner:
    """The per-tap step scales of a model's convs; ``install`` puts them on its gradients and steps."""

    def __init__(self, taps: list[tuple[nn.Parameter, torch.Tensor]], optimizer: str) -> None:
        self.taps, self.optimizer = taps, optimizer

    def install(self, optimizers: list[torch.optim.Optimizer]) -> None:
        """Scale the gradients (and, for Adam, the steps) of the weights that ``optimizers[0]`` trains."""
        taps = [(p, r.to(p.device, p.dtype)) for p, r in self.taps]
        if not taps:
            return
        for p, r in taps:
            p.register_hook(lambda g, s=r: g * s)
        if self.optimizer == "sgd":
            return
        before: list[torch.Tensor] = []

        def keep(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
            before[:] = [p.detach().clone() for p, _ in taps]

        @torch.no_grad()
        def rescale(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
            for (p, r), old in zip(taps, before, strict=True):
                p.copy_(old + r * (p - old))

        optimizers[0].register_step_pre_hook(keep)
        optimizers[0].register_step_post_hook(rescale)


def precondition(
    model: nn.Module,
    den: object,
    optimizer: str,
    skip_depthwise: bool = False,
    family: str | DensityFamily = SYMMETRIC,
    *,
    start: bool = True,
    steps: str | None = "density",
) -> tuple[nn.Module, Preconditioner]:
    """A standard copy of ``model`` whose eligible convs (those ``convert`` would weight with ``den``) start at
    ``weight * phi`` (``start``; else at their own weights) and the Preconditioner of their steps (``steps``, one of
    ``STEPS``, or None for plain steps). The defaults make its training that of the weighted model."""
    weighted = convert(model, den, skip_depthwise=skip_depthwise, family=family)  # a copy: ``model`` stays standard
    phis = {name: m.phi.detach().clone() for name, m in weighted.named_modules() if isinstance(m, _WeightedConvNd)}
    plain = fold(weighted, inplace=True) if start else model  # the same module names either way
    taps = (
        []
        if steps is None
        else [(plain.get_submodule(name).weight, step_scale(phi, optimizer, steps)) for name, phi in phis.items()]
    )
    return plain, Preconditioner(taps, optimizer)
