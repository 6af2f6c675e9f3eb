"""The controls a run trains beside its own variants, on the same final seeds (``final.arms``, ``final.budgets``).

A weighted conv with positive densities is a reparameterised standard conv: same functions, other training
dynamics. The arms say what its gain is:

- ``preconditioned``: the standard conv started at ``weight * phi`` with per-tap step scaling
  (``wconv.nn.precondition``): the weighted training itself, written as a standard conv.
- ``smaller_kernel``: the standard conv with kernel k-2 (a density that shrinks the kernel's rim to nothing turns
  a k x k conv into a (k-2) x (k-2) one).
- budgets: the run's variants and the standard conv trained for ``m`` times the final epochs (the density found
  once), so that a figure shows the gain against training length.

The lr-tuned control is a search of its own (``search.space``, ``configs/experiment/*_lr_tuned.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Arm:
    name: str
    label: str  # the tables' conv column
    uses_density: bool  # trained with the run's density (the one searched or fixed)


ARMS = {
    "preconditioned": Arm("preconditioned", "preconditioned", uses_density=True),
    "smaller_kernel": Arm("smaller_kernel", "standard k-2", uses_density=False),
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
    if arm == "smaller_kernel" and kernel_size < 5:
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
