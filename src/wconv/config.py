"""The schema of the whole training config: every key of every group, its type and its allowed values.

The Hydra tree (``configs/``) composes; this module validates the composed, resolved config once, before anything is
written, loaded or trained, and ``wconv.plan`` turns the result into the run's plan.

Why pydantic over the resolved config rather than Hydra structured configs alone: OmegaConf's typed nodes check
types but not ranges, choices from our registries or rules between keys (a kernel's density count, Nesterov's
momentum), and it converts ``"no"`` into a boolean where we want a refusal; and backing the YAML groups with
dataclasses would retype values (``0`` becoming ``0.0``) and so change the fingerprint of every recorded run.
Here the YAML stays the one place with defaults, the schema says what is allowed, and each refusal is one line that
names the key, the value and what to write instead (``ConfigError``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

SEED_MAX = 2**32 - 1  # numpy's generators take seeds up to here (torch's up to 2**64 - 1)
LR_MAX = 10.0  # no recipe of these models trains above 1; a larger lr overflows or diverges at once


class ConfigError(ValueError):
    """A configuration that cannot run, in one line; raised before any training or writing."""


class _Group(BaseModel):
    """A config group: strict types (``1.5`` is no integer, ``"no"`` no boolean), finite numbers, no unknown key."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


def _one_of(names: Callable[[], Any]) -> AfterValidator:
    """A choice among a registry's names (read when validating, so that a new registry line is enough)."""

    def check(value: str) -> str:
        valid = list(names())
        if value not in valid:
            raise ValueError(f"must be one of {', '.join(valid)}")
        return value

    return AfterValidator(check)


def _model_names() -> tuple[str, ...]:
    from wconv.models import MODEL_NAMES

    return MODEL_NAMES


def _data_names() -> tuple[str, ...]:
    from wconv.data import DATA_NAMES

    return DATA_NAMES


def _families() -> list[str]:
    from wconv.nn.density import FAMILIES

    return list(FAMILIES)


def _arms() -> list[str]:
    from wconv.variants import ARMS

    return list(ARMS)


def _objectives() -> list[str]:
    from wconv.objectives import OBJECTIVES

    return list(OBJECTIVES)


Count = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class Data(_Group):
    """Every dataset's options (``wconv.data.options`` says which one takes which: the rest are dropped, so that a
    profile may set denoising crops for every run)."""

    name: Annotated[str, _one_of(_data_names)]
    root: str | None = None
    download: bool = False
    folder: str | None = None
    val_folder: str | None = None
    test_folder: str | dict[str, str] | None = None
    test_sets: list[str] | None = None
    val_fraction: Fraction = 0.1
    split_seed: Seed = 0
    limit_train: Count | None = None
    limit_eval: Count | None = None
    augment: bool = True
    grey: bool = True
    sigma: Annotated[float, Field(ge=0, le=255)] = 25.0
    patch_size: Annotated[int, Field(ge=8)] = 40
    patches_per_epoch: Count | None = None
    eval_max_size: Annotated[int, Field(ge=8)] | None = None
    val_max_size: Annotated[int, Field(ge=8)] | None = None


class Model(_Group):
    name: Annotated[str, _one_of(_model_names)]
    width: Annotated[float, Field(gt=0, le=64)] = 1.0
    kernel_size: Annotated[int, Field(ge=1, le=31)] = 3
    depth: Annotated[int, Field(ge=2)] | None = None
    features: Count | None = None
    enc_blocks: list[Annotated[int, Field(ge=0)]] | None = None
    middle_blocks: Annotated[int, Field(ge=0)] | None = None
    dec_blocks: list[Annotated[int, Field(ge=0)]] | None = None


class Density(_Group):
    kind: Literal["standard", "fixed", "learned"]
    family: Annotated[str, _one_of(_families)] = "symmetric"
    den: list[Positive] | list[list[Positive]] | None = None
    skip_depthwise: bool = False
    lr: Positive | None = None  # the learned density's own AdamW
    weight_decay: NonNegative | None = None
    t0: Count | None = None
    t_mult: Count | None = None


class Dimension(_Group):
    key: str
    low: float
    high: float
    log: bool = False


class Submitit(_Group):
    cluster: Literal["local", "slurm", "debug"] | None = None
    timeout_min: Count | None = None  # None: the preflight's prediction for one evaluation, else 720
    gpus_per_node: Annotated[int, Field(ge=0)] | None = 1
    cpus_per_task: Count | None = 8
    mem_gb: Positive | None = 32
    slurm_partition: str | None = None
    slurm_account: str | None = None


class Search(_Group):
    name: Literal["none", "direct_l"]
    space: list[Dimension] | None = None
    bounds: list[Annotated[list[float], Field(min_length=2, max_length=2)]] | None = None
    max_evals: Count = 30
    ftol_rel: NonNegative = 0.0
    xtol_rel: NonNegative = 0.0
    objective: Annotated[str, _one_of(_objectives)] = "val_loss"
    penalty: float = 1000.0
    workers: Count = 1
    launcher: Literal["local", "submitit"] = "local"
    submitit: Submitit = Submitit()


class Optim(_Group):
    name: Literal["sgd", "adam", "adamw"]
    lr: Annotated[float, Field(gt=0, le=LR_MAX)]
    weight_decay: NonNegative = 0.0
    schedule: Literal["none", "multistep", "cosine"] = "none"
    milestones: list[Annotated[float, Field(gt=0, lt=1)]] = []
    gamma: Annotated[float, Field(gt=0, le=1)] = 1.0
    warmup_epochs: NonNegative = 0
    min_lr: NonNegative = 0.0
    grad_clip: NonNegative = 0.0
    momentum: Fraction = 0.0
    nesterov: bool = False
    betas: Annotated[list[Fraction], Field(min_length=2, max_length=2)] = [0.9, 0.999]


class Logger(_Group):
    name: Literal["none", "wandb"]
    project: str = "wconv"
    entity: str | None = None
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"


class Train(_Group):
    epochs: Count
    batch_size: Count
    val_every: Count = 1
    checkpoint_minutes: NonNegative = 10
    precision: Literal["bf16", "fp32"] = "bf16"
    compile: bool = False


class Final(_Group):
    epochs: Count
    seeds: Annotated[list[Seed], Field(min_length=1)]
    baseline: bool = True
    arms: list[Annotated[str, _one_of(_arms)]] = []
    budgets: list[Annotated[float, Field(gt=0, le=1024)]] = []
    budget_seeds: dict[float, Annotated[int, Field(ge=1)]] | None = None  # budget -> how many of the seeds train it


class Config(_Group):
    """The whole training config (``python -m wconv.train --cfg job`` prints it)."""

    name: str
    seed: Seed
    device: Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")] = "auto"
    progress: bool = True
    table: str | None = None
    profile_name: str
    train: Train
    final: Final
    data: Data
    model: Model
    density: Density
    search: Search
    optim: Optim
    logger: Logger


EXAMPLES = {  # what to write instead, by key (the last part of a dotted key when the whole one is not here)
    "seed": "seed=0",
    "seeds": "final.seeds=[0,1,2]",
    "device": "device=cuda",
    "lr": "optim.lr=0.01",
    "momentum": "optim.momentum=0.9",
    "betas": "optim.betas=[0.9,0.999]",
    "milestones": "optim.milestones=[0.5,0.75] (fractions of the budget)",
    "schedule": "optim.schedule=cosine",
    "bounds": "search.bounds=[[0.5,1.5]] (one [low, high] pair per density value)",
    "space": "search.space=[{key:optim.lr,low:1e-4,high:1e-2,log:true}]",
    "den": "density.den=[0.7] (3x3), [0.3,1.5] (5x5)",
    "budgets": "final.budgets=[0.5,2] (multiples of final.epochs)",
    "budget_seeds": "final.budget_seeds={0.5:2} (a budget of final.budgets: its first n seeds)",
    "arms": "final.arms=[preconditioned]",
    "width": "model.width=0.5",
    "kernel_size": "model.kernel_size=5",
    "penalty": "search.penalty=1000",
    "workers": "search.workers=4",
}


def _number(part: Any) -> float | None:
    """A location part as a number (an index, a mapping's numeric key), or None for a name."""
    if isinstance(part, (int, float)):
        return part
    try:
        return float(part)
    except ValueError:
        return None


def _key(loc: tuple) -> str:
    """A pydantic error location as the config key a user types: ``final.seeds[1]``; union branches dropped."""
    parts: list[str] = []
    for part in loc:
        if part == "[key]" and len(parts) > 1:  # pydantic's mark of a bad mapping key: final.budget_seeds[a]
            key = parts.pop()
            parts[-1] = f"{parts[-1]}[{key}]"
        elif (number := _number(part)) is not None:  # a list's index, a mapping's numeric key (pydantic: "0.5")
            parts[-1:] = [f"{parts[-1]}[{number:g}]"] if parts else [f"[{number:g}]"]
        elif not (part.startswith(("list[", "dict[", "function-")) or part in ("str", "int", "float", "bool")):
            parts.append(part)
    return ".".join(parts)


def _reason(error: dict) -> str:
    kind, message = error["type"], error["msg"]
    reasons = {
        "int_type": "must be an integer",
        "int_from_float": "must be an integer",
        "float_type": "must be a number",
        "finite_number": "must be a finite number",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping of its keys",
        "extra_forbidden": "is not a key of this config (check the spelling: python -m wconv.train --cfg job)",
        "missing": "is required",
        "none_required": "must be null",
        "string_pattern_mismatch": "must be auto, cpu, cuda, cuda:<index> or mps",
    }
    if kind in reasons:
        return reasons[kind]
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    message = message.replace("Input should be", "must be").replace("List should have", "must have")
    return message.replace(" after validation", "")


def _value(error: dict) -> str:
    value = error.get("input")
    return str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, str) else str(value)


def problem(key: str, value: Any, reason: str, example: str | None = None) -> ConfigError:
    """One line: the key, the value, what is wrong and what to write instead."""
    example = example or EXAMPLES.get(key) or EXAMPLES.get(key.split("[")[0].split(".")[-1])
    shown = str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, str) else value
    return ConfigError(f"{key}={shown}: {reason}" + (f"; write e.g. {example}" if example else ""))


def validate(resolved: dict[str, Any]) -> Config:
    """``resolved`` (the composed config as plain values) checked against the schema; ConfigError naming the first
    bad key otherwise. A MISSING value (``???``) is reported as a key to set."""
    missing = [
        f"{group}.{key}"
        for group, values in resolved.items()
        if isinstance(values, dict)
        for key, value in values.items()
        if value == "???"
    ]
    if missing:
        name = resolved.get("data", {}).get("name", "")
        raise ConfigError(
            f"{', '.join(missing)} must be set (e.g. {missing[0]}=path/to/images): see configs/data/{name}.yaml"
        )
    try:
        return Config.model_validate(resolved)
    except ValidationError as err:
        errors = err.errors()
        # a value that fits no branch of a union reports each branch: the first is the one a user meant
        first = errors[0]
        key = _key(first["loc"])
        if first["type"] == "missing":
            raise ConfigError(f"{key} is missing: add it to the config group's file or set +{key}=...") from None
        node: Any = resolved
        for part in first["loc"]:
            if isinstance(node, dict) and (part in node or _number(part) in node):
                node = node[part if part in node else _number(part)]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
        shown = _value({"input": node if node is not resolved else first.get("input")})
        example = EXAMPLES.get(key) or EXAMPLES.get(key.split("[")[0].split(".")[-1]) or _default(first["loc"], key)
        line = f"{key}={shown}: {_reason(first)}" + (f"; write e.g. {example}" if example else "")
        raise ConfigError(line) from None


def _default(loc: tuple, key: str) -> str | None:
    """``key=<the schema's default>`` as an example of a valid value, when the schema has one."""
    model: Any = Config
    info = None
    for part in loc:
        if not isinstance(part, str) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            break
        if part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = info.annotation
    if info is None or info.is_required() or info.default is None or isinstance(info.default, (BaseModel, list)):
        return None
    default = str(info.default).lower() if isinstance(info.default, bool) else info.default
    return f"{key.split('[')[0]}={default}"
