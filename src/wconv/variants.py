"""The one vocabulary of a run's variants: what each trains (its own conv, the controls, the budgets), their names,
the labels, colours and order the tables and figures give them.

A run trains its own conv (``weighted``, ``learned``, ``tuned`` or ``standard``) and, on the same final seeds,
controls (``final.arms``) and the same convs at other training lengths (``final.budgets``).

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
is one ``Arm`` line here (its label and colour with it; when it trains differently, its mechanics in ``wconv.nn``).
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
    colour: str  # the figures' (a matplotlib colour)
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
        Arm("preconditioned", "preconditioned", "tab:purple", uses_density=True, start=True, steps="density"),
        Arm("init_only", "init only", "tab:olive", uses_density=True, start=True),
        Arm("step_only", "step only", "tab:cyan", uses_density=True, steps="density"),
        Arm("sgs", "SGS (step shape)", "tab:pink", uses_density=True, steps="shape"),
        Arm("lr_matched", "lr-matched (step size)", "goldenrod", uses_density=True, steps="size"),
        Arm("smaller_kernel", "standard k-2", "tab:brown", uses_density=False, kernel_change=-2),
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
            variants.append(Variant(at(v.name, m), "budget", v.den, v.learn_den, v.arm, m, v.changes))
    return variants, skipped


def at(name: str, scale: float) -> str:
    """The variant ``name`` trained for ``scale`` times the final epochs: ``weighted@2x`` (``weighted`` at 1x)."""
    return name if scale == 1 else f"{name}@{scale:g}x"


def split_budget(variant: str) -> tuple[str, float]:
    """``weighted@2x`` -> ("weighted", 2.0); ``weighted`` -> ("weighted", 1.0)."""
    name, _, budget = variant.partition("@")
    return name, float(budget.rstrip("x")) if budget else 1.0


# What a run's own conv is called, by its result's ``density`` (how it was found), and the colour of each label.
OWN = {"standard": "standard", "direct_l": "direct-L", "fixed": "fixed", "learned": "learned"}
COLOURS = {
    "standard": "tab:gray",
    "direct-L": "tab:blue",
    "fixed": "tab:green",
    "learned": "tab:orange",
    **{arm.label: arm.colour for arm in ARMS.values() if arm.name != "smaller_kernel"},
    "lr-tuned": "tab:red",
    "tuned": "tab:red",
    "standard k-2": ARMS["smaller_kernel"].colour,
}
ORDER = tuple(COLOURS)  # the tables' row order within a group: the papers' convs, then the controls


def label(variant: str, density: str, best_point: dict | None = None, detail: str = "") -> str:
    """A variant as the tables name it: standard, direct-L, fixed, learned, a control's label, lr-tuned (a search
    over the learning rate alone) or tuned; ``detail`` (a density family, a shorter search) in brackets after the
    run's own conv; `` @<m>x`` for a budget."""
    name, scale = split_budget(variant)
    if name == "standard":
        text = "standard"
    elif name in ARMS:
        text = ARMS[name].label
    elif name == "tuned":
        text = "lr-tuned" if list(best_point or {}) == ["optim.lr"] else "tuned"
    else:
        text = OWN[density] + (f" ({detail})" if detail else "")
    return text if scale == 1 else f"{text} @{scale:g}x"


def base(text: str) -> str:
    """A label without its detail and budget: ``direct-L (gaussian) @2x`` -> ``direct-L``."""
    head = text.partition(" @")[0]
    known = [k for k in COLOURS if head == k or head.startswith(k + " (")]
    return max(known, key=len) if known else head


def rank(text: str) -> tuple[int, str, str]:
    """Where a row with this label sorts: by ``ORDER``, then its detail, then its budget."""
    head, _, budget = text.partition(" @")
    known = base(text)
    return (ORDER.index(known) if known in ORDER else len(ORDER), head[len(known) :], budget)


def colour(text: str) -> str:
    """The figures' colour of a label (black for one the vocabulary does not know)."""
    return COLOURS.get(base(text), "black")
