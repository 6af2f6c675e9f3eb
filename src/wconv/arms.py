"""The controls a run trains beside its own variants, on the same final seeds (``final.arms``, ``final.budgets``).

A weighted conv with positive densities is a reparameterised standard conv: same functions, other training
dynamics. Under SGD it is the standard conv (a) started at ``weight * phi`` and (b) stepped per tap by ``phi**2``
(Adam: gradient and step times ``phi``). The arms say which part does the work (``wconv.nn.precondition``):

- ``preconditioned``: (a) and (b): the weighted training itself, written as a standard conv;
- ``init_only``: (a) alone, plain steps;
- ``step_only``: (b) alone, the standard start;
- ``sgs``: (b)'s shape without its size (the per-tap scale over its mean: Spatial Gradient Scaling's form,
  Detkov et al., ICLR 2023), the standard start;
- ``lr_matched``: (b)'s size without its shape (every tap of the weighted convs stepped by the mean scale: their
  learning rate times ``mean(phi**2)`` under SGD, ``mean(phi)`` under Adam), the standard start;
- ``smaller_kernel``: the standard conv with kernel k-2 (a density that shrinks the kernel's rim to nothing turns
  a k x k conv into a (k-2) x (k-2) one).
- budgets: the run's variants and the standard conv trained for ``m`` times the final epochs (the density found
  once), so that a figure shows the gain against training length.

The lr-tuned control is a search of its own (``search.space``, ``configs/experiment/*_lr_tuned.yaml``). A new arm
is one ``Arm`` line here (and, when it trains differently, its mechanics in ``wconv.nn``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from wconv.nn.precondition import precondition


@dataclass(frozen=True)
class Arm:
    """A control: how its standard model differs from the run's (its start, its steps, its kernel)."""

    name: str
    label: str  # the tables' conv column
    uses_density: bool  # trained with the run's density (the one searched or fixed)
    start: bool = False  # the weighted convs start at weight * phi
    steps: str | None = None  # per-tap step scaling (wconv.nn.precondition.STEPS): density, shape, size
    kernel_change: int = 0  # added to model.kernel_size

    def build(self, create: Callable[..., nn.Module], den: Any, optimizer: str, **density: Any):
        """The arm's model, made by ``create(**model options)``, and what ``train`` calls with its optimisers
        (None: plain steps)."""
        if not self.uses_density:
            return create(), None
        model, preconditioner = precondition(create(), den, optimizer, start=self.start, steps=self.steps, **density)
        return model, preconditioner.install


ARMS = {
    arm.name: arm
    for arm in (
        Arm("preconditioned", "preconditioned", uses_density=True, start=True, steps="density"),
        Arm("init_only", "init only", uses_density=True, start=True),
        Arm("step_only", "step only", uses_density=True, steps="density"),
        Arm("sgs", "SGS (step shape)", uses_density=True, steps="shape"),
        Arm("lr_matched", "lr-matched (step size)", uses_density=True, steps="size"),
        Arm("smaller_kernel", "standard k-2", uses_density=False, kernel_change=-2),
    )
}


@dataclass(frozen=True)
class Variant:
    """One kind of final training, run on every final seed."""

    name: str  # weighted, learned, standard, tuned, an arm's name, or <name>@<m>x for a budget
    job_type: str  # W&B job type
    den: Any = None
    learn_den: bool = False
    arm: str | None = None  # how the model or its optimiser differs (ARMS)
    scale: float = 1.0  # times final.epochs
    changes: dict[str, Any] = field(default_factory=dict)  # config keys set for this variant (a tuned point)

    def epochs(self, final_epochs: int) -> int:
        return max(1, round(self.scale * final_epochs))


def check(arms: list[str], budgets: list[float]) -> None:
    """One ValueError for an unknown arm or a budget that is not a positive number."""
    if unknown := [a for a in arms if a not in ARMS]:
        raise ValueError(f"final.arms: unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
    if len(set(arms)) != len(arms):
        raise ValueError(f"final.arms lists an arm twice: {arms}")
    for m in budgets:
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not m > 0:
            raise ValueError(f"final.budgets holds multiples of final.epochs, positive numbers; got {m!r}")


def not_applicable(arm: str, kernel_size: int, den: Any) -> str | None:
    """Why ``arm`` cannot be trained in this run, or None."""
    if ARMS[arm].kernel_change and kernel_size + ARMS[arm].kernel_change < 3:
        return f"a {kernel_size}x{kernel_size} kernel has no smaller one with a spatial extent"
    if ARMS[arm].uses_density and den is None:
        return "the run has no density (a standard or learned run)"
    return None


def plan(own: list[Variant], arms: list[str], budgets: list[float], kernel_size: int) -> tuple[list[Variant], list]:
    """The run's variants followed by its arms and budget variants; and (arm, reason) for the arms skipped."""
    den = next((v.den for v in own if v.name == "weighted"), None)
    variants, skipped = list(own), []
    for arm in arms:
        if (reason := not_applicable(arm, kernel_size, den)) is not None:
            skipped.append((arm, reason))
            continue
        variants.append(Variant(arm, "control", den if ARMS[arm].uses_density else None, arm=arm))
    at_budget = own if any(v.name == "standard" for v in own) else [*own, Variant("standard", "baseline")]
    for m in budgets:
        if m == 1:
            continue
        for v in at_budget:
            variants.append(Variant(f"{v.name}@{m:g}x", "budget", v.den, v.learn_den, v.arm, m, v.changes))
    return variants, skipped


def split_budget(variant: str) -> tuple[str, float]:
    """``weighted@2x`` -> ("weighted", 2.0); ``weighted`` -> ("weighted", 1.0)."""
    name, _, budget = variant.partition("@")
    return name, float(budget.rstrip("x")) if budget else 1.0
