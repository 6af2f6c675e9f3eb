"""What a search searches (``search.space``): the density (null, the papers' search) or numeric config keys.

Each dimension is ``{key: optim.lr, low: 1e-4, high: 1e-2, log: true}``; a log dimension is searched over
log10 of the value, so that DIRECT-L divides decades evenly. A search point is a list of floats in those
coordinates (what the evaluations record keeps under ``den``); ``values`` turns it into config values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class Dimension:
    key: str
    low: float
    high: float
    log: bool = False

    def bounds(self) -> list[float]:
        return [math.log10(self.low), math.log10(self.high)] if self.log else [self.low, self.high]

    def value(self, x: float) -> float:
        return 10.0**x if self.log else x


def parse(cfg: DictConfig) -> list[Dimension] | None:
    """``search.space`` as dimensions (None: the density); ValueError with one line for a malformed one."""
    raw = OmegaConf.select(cfg, "search.space")
    if raw is None:
        return None
    raw = OmegaConf.to_container(raw, resolve=True) if OmegaConf.is_config(raw) else raw
    example = "e.g. search.space=[{key:optim.lr,low:1e-4,high:1e-2,log:true}]"
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"search.space must be null (the density) or a list of dimensions, {example}")
    dims = []
    for i, d in enumerate(raw):
        if not isinstance(d, dict) or set(d) - {"key", "low", "high", "log"} or not {"key", "low", "high"} <= set(d):
            raise ValueError(f"search.space[{i}] must have key, low, high (and log), {example}; got {d!r}")
        key, low, high, log = d["key"], d["low"], d["high"], bool(d.get("log", False))
        current = OmegaConf.select(cfg, str(key))
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            raise ValueError(f"search.space[{i}]: {key} is not a numeric key of the config (it holds {current!r})")
        if key.startswith("density.") or key.startswith("search."):
            raise ValueError(f"search.space[{i}]: {key} cannot be searched here (search.space=null searches den)")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)) or not low < high:
            raise ValueError(f"search.space[{i}]: need low < high, finite numbers; got [{low}, {high}]")
        if log and low <= 0:
            raise ValueError(f"search.space[{i}]: a log dimension needs low > 0, got {low}")
        dims.append(Dimension(str(key), float(low), float(high), log))
    return dims


def values(dims: list[Dimension], point: list[float]) -> dict[str, Any]:
    """The config values of a search point."""
    return {d.key: d.value(x) for d, x in zip(dims, point, strict=True)}


def describe(changes: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in changes.items())
