"""The weighted convolution as a preconditioned standard one (the ``preconditioned`` arm).

For positive densities, training ``W`` in ``conv(x, W * phi)`` is training ``V = W * phi`` of a standard conv
whose initial weights are multiplied by phi and whose steps are rescaled per tap:

- SGD (momentum, Nesterov and weight decay included): the gradient of ``V`` times ``phi**2``. Exact: the update is
  linear in the gradient, and the decay ``lr * wd * W`` of ``W`` is ``lr * wd * V`` of ``V``.
- Adam and AdamW: the gradient times ``phi`` (what the weighted layer's ``W`` sees), then the optimiser's step
  times ``phi`` (a per-tap learning rate). Exact without weight decay; with it, the decay is scaled by phi too.

Gradient clipping sees the rescaled gradients, so it is not exact under clipping.
"""

from __future__ import annotations

import torch
from torch import nn

from wconv.nn.convert import convert, fold
from wconv.nn.density import SYMMETRIC, DensityFamily
from wconv.nn.weighted import _WeightedConvNd


class Preconditioner:
    """The per-tap scales of a preconditioned model's convs; ``install`` puts them on its gradients and steps."""

    def __init__(self, taps: list[tuple[nn.Parameter, torch.Tensor]], optimizer: str) -> None:
        self.taps, self.optimizer = taps, optimizer

    def install(self, optimizers: list[torch.optim.Optimizer]) -> None:
        """Scale the gradients (and, for Adam, the steps) of the weights that ``optimizers[0]`` trains."""
        taps = [(p, phi.to(p.device, p.dtype)) for p, phi in self.taps]
        if self.optimizer == "sgd":
            for p, phi in taps:
                p.register_hook(lambda g, s=phi * phi: g * s)
            return
        for p, phi in taps:
            p.register_hook(lambda g, s=phi: g * s)
        before: list[torch.Tensor] = []

        def keep(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
            before[:] = [p.detach().clone() for p, _ in taps]

        @torch.no_grad()
        def rescale(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
            for (p, phi), old in zip(taps, before, strict=True):
                p.copy_(old + phi * (p - old))

        optimizers[0].register_step_pre_hook(keep)
        optimizers[0].register_step_post_hook(rescale)


def precondition(
    model: nn.Module,
    den: object,
    optimizer: str,
    skip_depthwise: bool = False,
    family: str | DensityFamily = SYMMETRIC,
) -> tuple[nn.Module, Preconditioner]:
    """A standard copy of ``model`` whose eligible convs (those ``convert`` would weight with ``den``) start at
    ``weight * phi``, and the Preconditioner that makes its training that of the weighted model."""
    weighted = convert(model, den, skip_depthwise=skip_depthwise, family=family)
    phis = {name: m.phi for name, m in weighted.named_modules() if isinstance(m, _WeightedConvNd)}
    plain = fold(weighted, inplace=True)
    taps = [(plain.get_submodule(name).weight, phi.detach().clone()) for name, phi in phis.items()]
    return plain, Preconditioner(taps, optimizer)
