"""A run read once: the composed config, validated (``wconv.config``), becomes one frozen ``Plan``: what kind of
run it is, the search's space and box, the variants with their arms and budgets, the optimiser and loop settings
and the run's identity. Code below the entry point takes its values from the plan, never from the config.

Every rule between keys lives in ``make`` (the schema checks each key alone); each refusal is one ``ConfigError``
line naming the key, the value and what to write instead.
"""

from __future__ import annotations

import copy
import math
import types
import typing
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from omegaconf import DictConfig

from wconv import objectives
from wconv.config import Config, ConfigError, problem, validate
from wconv.nn.density import get_family, parse_den
from wconv.tracking.identity import plain_config, run_fingerprint, setting
from wconv.training import DensityOptimConfig, LoopOptions, OptimConfig
from wconv.variants import Variant, split_budget
from wconv.variants import plan as plan_variants

# What ``search.space`` may search: a number each training reads, in these groups. Not the data (built once for
# the whole search), the density (``search.space=null`` searches it) or the search and final settings themselves.
SEARCHABLE = ("optim.", "train.", "model.")
NOT_SEARCHABLE = {
    "seed": "the search's trainings share one seed by design (final.seeds sets the final ones)",
    "train.epochs": "a search compares trainings of one budget (final.epochs sets the final ones')",
    "model.kernel_size": "it sets the kernel the density is made for",
    "train.checkpoint_minutes": "it does not change what a training computes",
    "train.val_every": "it does not change what a training computes",
    "optim.name": "it is not a number",
}


@dataclass(frozen=True)
class Dimension:
    """One searched config key: its box, on a log10 scale when ``log``; an integer key takes integer values."""

    key: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def bounds(self) -> list[float]:
        return [math.log10(self.low), math.log10(self.high)] if self.log else [self.low, self.high]

    def value(self, x: float) -> float | int:
        value = 10.0**x if self.log else x
        return int(round(value)) if self.integer else value


def _set(plain: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(plain)
    *parents, last = key.split(".")
    node = out
    for part in parents:
        node = node[part]
    node[last] = value
    return out


@dataclass(frozen=True)
class Plan:
    """What one run does, read once from its validated config."""

    config: Config  # typed, frozen: config.train.epochs, config.optim.lr, ...
    resolved: dict[str, Any]  # the composed config as plain values: config.yaml, W&B config, the identity
    space: tuple[Dimension, ...] | None  # searched config keys; None: the search is over the density
    bounds: tuple[tuple[float, ...], ...] | None  # the search's box; None: no search

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def searches(self) -> bool:
        return self.config.search.name == "direct_l"

    @property
    def density(self) -> str:
        """How the run's own conv is found: direct_l, tuned (a search over config keys), fixed, learned, standard."""
        if self.searches:
            return "tuned" if self.space else "direct_l"
        return self.config.density.kind

    @property
    def kernel_size(self) -> int:
        return self.config.model.kernel_size

    @property
    def seeds(self) -> list[int]:
        return list(self.config.final.seeds)

    def seeds_for(self, variant: Variant) -> list[int]:
        """The final seeds ``variant`` trains: all of them, or at a budget of ``final.budget_seeds`` its first n."""
        _, scale = split_budget(variant.name)
        n = (self.config.final.budget_seeds or {}).get(scale) if scale != 1 else None
        return self.seeds[:n] if n else self.seeds

    @cached_property
    def fingerprint(self) -> str:
        return run_fingerprint(self.resolved)

    @cached_property
    def optim(self) -> OptimConfig:
        o = self.config.optim
        return OptimConfig(
            o.name, o.lr, o.weight_decay, o.schedule, tuple(o.milestones), o.gamma, o.warmup_epochs, o.min_lr,
            o.grad_clip, o.momentum, o.nesterov, tuple(o.betas),
        )  # fmt: skip

    @cached_property
    def den_optim(self) -> DensityOptimConfig | None:
        d = self.config.density
        return DensityOptimConfig(d.lr, d.weight_decay, d.t0, d.t_mult) if d.kind == "learned" else None

    @cached_property
    def loop(self) -> LoopOptions:
        t = self.config.train
        return LoopOptions(t.checkpoint_minutes, t.val_every, t.precision, t.compile)

    @cached_property
    def model_options(self) -> dict[str, Any]:
        """The model's options (``wconv.models.create``), those left unset dropped."""
        return {k: v for k, v in self.resolved["model"].items() if k != "name" and v is not None}

    @cached_property
    def data_options(self) -> dict[str, Any]:
        """The dataset's options (``wconv.data.build``): those this dataset does not take are dropped (a profile's
        denoising crops on a classification set)."""
        from wconv import data as wdata

        valid = wdata.options(self.config.data.name)
        return {k: v for k, v in self.resolved["data"].items() if k != "name" and k in valid}

    @property
    def density_options(self) -> dict[str, Any]:
        return {"skip_depthwise": self.config.density.skip_depthwise, "family": self.config.density.family}

    def point_values(self, point: list[float]) -> dict[str, Any]:
        """The config values of a searched point (``space``), or {} for a density."""
        return {d.key: d.value(x) for d, x in zip(self.space, point, strict=True)} if self.space else {}

    def describe(self, point: list[float]) -> str:
        if self.space:
            return " ".join(f"{k}={v:.4g}" for k, v in self.point_values(point).items())
        return f"den=[{', '.join(f'{v:.4g}' for v in point)}]"

    def changed(self, changes: dict[str, Any]) -> Plan:
        """This plan with config ``changes`` (a searched point), validated as the command line is."""
        if not changes:
            return self
        resolved = self.resolved
        for key, value in changes.items():
            resolved = _set(resolved, key, value)
        return make(resolved)

    def own_variants(self, point: list[float] | None) -> list[Variant]:
        """The variants a run trains before its arms: its conv (searched, fixed or learned) and, with
        ``final.baseline`` or alone, the standard one. ``point``: what the search found."""
        d, variants = self.config.density, []
        if self.searches:
            variants = [
                Variant("tuned", "final", changes=self.point_values(point))
                if self.space
                else Variant("weighted", "final", list(point))
            ]
        elif d.kind == "fixed":
            variants = [Variant("weighted", "final", copy.deepcopy(self.resolved["density"]["den"]))]
        elif d.kind == "learned":
            variants = [Variant("learned", "final", copy.deepcopy(self.resolved["density"]["den"]), True)]
        if not variants or self.config.final.baseline:
            variants.append(Variant("standard", "baseline"))
        return variants

    def variants(self, point: list[float] | None = None) -> tuple[list[Variant], list[tuple[str, str]]]:
        """Every final variant (its own, its arms, its budgets) and the arms it skips, with why. Before the search
        has run (``point`` None) any point stands in for the one it will find: the variants are the same."""
        if self.searches and point is None:
            point = [low for low, _ in self.bounds]
        f = self.config.final
        return plan_variants(self.own_variants(point), list(f.arms), list(f.budgets), self.kernel_size)

    def budget(self) -> tuple[int, int, int]:
        """(search evaluations, final variants, training epochs in all)."""
        evals = self.config.search.max_evals if self.searches else 0
        variants, _ = self.variants()
        final = sum(v.epochs(self.config.final.epochs) * len(self.seeds_for(v)) for v in variants)
        return evals, len(variants), evals * self.config.train.epochs + final

    def header(self, sizes: dict[str, int], device: str) -> str:
        """One line saying what the run will do, on which device, and how big it is."""
        c = self.config
        split_sizes = " / ".join(f"{sizes[s]} {s}" for s in ("train", "val", "test"))
        evals, variants, total = self.budget()
        search = f"direct_l {evals} evaluations x {c.train.epochs} epochs, " if evals else ""
        k = self.kernel_size
        return (
            f"{c.name} on {device}: model {c.model.name} ({k}x{k}), data {c.data.name} ({split_sizes}), profile "
            f"{c.profile_name}, {search}final {variants} variant(s) x {len(self.seeds)} seed(s) x {c.final.epochs} "
            f"epochs: {total} epochs in all"
        )


def make(cfg: DictConfig | dict[str, Any]) -> Plan:
    """The plan of the composed config ``cfg``; ConfigError (one line) for anything that cannot run."""
    resolved = plain_config(cfg)
    config = validate(resolved)
    _check_model(config)
    _check_density(config)
    _check_optim(config)
    _check_final(config)
    space, bounds = _search(config, resolved) if config.search.name == "direct_l" else (None, None)
    return Plan(config, resolved, space, bounds)


def _check_model(c: Config) -> None:
    from wconv import models

    m, spec = c.model, models.spec(c.model.name)
    if m.kernel_size % 2 == 0:
        raise problem("model.kernel_size", m.kernel_size, "must be odd (a density needs a centre tap)")
    for key in ("depth", "features", "enc_blocks", "middle_blocks", "dec_blocks"):
        if getattr(m, key) is not None and key not in spec.options:
            raise problem(f"model.{key}", getattr(m, key), f"does not apply to {m.name} (it takes {spec.options})")
    if m.enc_blocks is not None and m.dec_blocks is not None and len(m.enc_blocks) != len(m.dec_blocks):
        raise problem("model.dec_blocks", m.dec_blocks, f"needs one count per encoder stage ({len(m.enc_blocks)})")


def _check_density(c: Config) -> None:
    d, k = c.density, c.model.kernel_size
    if d.kind == "standard" and d.den is not None:
        raise problem("density.den", d.den, "needs density=fixed (density=standard has no density)",
                      f"density=fixed density.den={d.den}")  # fmt: skip
    if d.kind == "fixed" and d.den is None:
        raise problem("density.den", None, "density=fixed needs density.den")
    if d.den is not None:
        try:
            parse_den(d.den, (k, k), f"density.den for kernel {k}x{k}", get_family(d.family))
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if d.kind == "learned":
        for key in ("lr", "weight_decay", "t0", "t_mult"):
            if getattr(d, key) is None:
                raise problem(f"density.{key}", None, "a learned density needs its optimiser's settings",
                              "density=learned (configs/density/learned.yaml sets them)")  # fmt: skip


def _check_optim(c: Config) -> None:
    o = c.optim
    if o.nesterov and (o.name != "sgd" or o.momentum == 0):
        raise problem(
            "optim.nesterov", True, "needs SGD with momentum > 0", "optim.momentum=0.9 or optim.nesterov=false"
        )
    if o.min_lr >= o.lr and o.schedule == "cosine":
        raise problem("optim.min_lr", o.min_lr, f"must be below optim.lr ({o.lr}) for a cosine schedule")
    if list(o.milestones) != sorted(set(o.milestones)):
        raise problem("optim.milestones", o.milestones, "must increase, each once")


def _check_final(c: Config) -> None:
    f = c.final
    if len(set(f.seeds)) != len(f.seeds):
        raise problem("final.seeds", f.seeds, "lists a seed twice: each seed trains once; give distinct seeds")
    if len(set(f.arms)) != len(f.arms):
        raise problem("final.arms", f.arms, "lists an arm twice")
    for budget, n in (f.budget_seeds or {}).items():
        if budget not in f.budgets:
            raise problem(f"final.budget_seeds[{budget:g}]", n, f"names a budget not in final.budgets {f.budgets}",
                          f"final.budgets=[{budget:g}] or drop it")  # fmt: skip
        if n > len(f.seeds):
            raise problem(f"final.budget_seeds[{budget:g}]", n, f"is more than the {len(f.seeds)} final.seeds")


def _search(c: Config, resolved: dict[str, Any]) -> tuple[tuple[Dimension, ...] | None, tuple]:
    """The searched dimensions (None: the density) and the box; every rule of a search checked."""
    from wconv import distributed, models

    s, k = c.search, c.model.kernel_size
    if c.density.kind != "standard":
        raise problem("density", c.density.kind, "search=direct_l finds den itself: drop it", "density=standard")
    objective = objectives.get(s.objective)
    if (task := models.task_of(c.model.name)) not in objective.tasks:
        raise problem("search.objective", s.objective, f"does not apply to {task}", "search.objective=val_loss")
    if s.penalty <= objective.ceiling:
        raise problem(
            "search.penalty", s.penalty,
            f"must be worse than any {s.objective} a training can score (above {objective.ceiling:g}), or a diverged "
            "evaluation could win the search",
        )  # fmt: skip
    if s.workers == 1 and s.launcher != "local":
        raise problem("search.launcher", s.launcher, "needs search.workers>1 (one worker trains in this process)")
    if s.workers > 1 and (s.ftol_rel > 0 or s.xtol_rel > 0):
        raise problem("search.workers", s.workers, "search.ftol_rel and search.xtol_rel are NLopt's stopping rules: "
                      "they need search.workers=1", "search.workers=1")  # fmt: skip
    if s.workers > 1 and distributed.is_distributed():
        raise problem("search.workers", s.workers, "trains evaluations in processes of their own: not under torchrun",
                      "search.workers=1 under torchrun")  # fmt: skip
    if s.space is not None:
        if s.bounds is not None:
            raise problem("search.bounds", s.bounds, "bounds the density: a search.space search has its own box",
                          "search.bounds=null")  # fmt: skip
        space = tuple(_dimension(i, d, resolved) for i, d in enumerate(s.space))
        return space, tuple(tuple(d.bounds()) for d in space)
    if k == 1:
        raise problem("model.kernel_size", 1, "a 1x1 kernel has no density to search", "model.kernel_size=3")
    family = get_family(c.density.family)
    if s.bounds is None:
        if (bounds := family.default_bounds(k)) is None:
            raise problem("search.bounds", None, f"no default box for kernel size {k}: give one pair per value")
        return None, tuple(tuple(pair) for pair in bounds)
    if len(s.bounds) != family.n_values(k):
        raise problem("search.bounds", s.bounds,
                      f"the {k}x{k} kernel needs {family.n_values(k)} pair(s) (one per density value)")  # fmt: skip
    for i, (low, high) in enumerate(s.bounds):
        if not 0 < low < high:
            raise problem(f"search.bounds[{i}]", [low, high], "need 0 < low < high (density values are positive)")
    return None, tuple(tuple(pair) for pair in s.bounds)


def _integer_field(key: str) -> bool:
    """Whether the schema types ``key`` (``optim.lr``) as an integer."""
    model: Any = Config
    for part in key.split("."):
        annotation = model.model_fields[part].annotation
        while typing.get_origin(annotation) in (typing.Annotated, typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        model = annotation
    return model is int


def _dimension(i: int, d: Any, resolved: dict[str, Any]) -> Dimension:
    where = f"search.space[{i}]"
    current = setting(resolved, d.key)
    if d.key in NOT_SEARCHABLE or not d.key.startswith(SEARCHABLE):
        why = NOT_SEARCHABLE.get(d.key, "only a number each training reads can be searched (optim, train, model)")
        raise problem(f"{where}.key", d.key, f"cannot be searched: {why}")
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        raise problem(f"{where}.key", d.key, f"is not a numeric key of the config (it holds {current!r})")
    if not d.low < d.high:
        raise problem(where, [d.low, d.high], "needs low < high")
    if d.log and d.low <= 0:
        raise problem(f"{where}.low", d.low, "a log dimension needs low > 0")
    dim = Dimension(d.key, d.low, d.high, d.log, integer=_integer_field(d.key))
    for end in dim.bounds():  # both ends of the box must be valid values of the key
        try:
            validate(_set(resolved, d.key, dim.value(end)))
        except ConfigError as err:
            raise ConfigError(f"{where}: the box reaches a value the key refuses: {err}") from None
    return dim
