"""Read recorded run directories (``result.json`` and what lies beside it); never trains, never writes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

CONV_LABELS = {"standard": "standard", "direct_l": "direct-L", "fixed": "fixed", "learned": "learned"}
CONV_ORDER = ("standard", "direct-L", "fixed", "learned")


def finite(value: Any) -> Any:
    """Records write non-finite floats as strings ("nan", "inf"): turn them back into floats, recursively."""
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def _json(path: Path) -> Any:
    return finite(json.loads(path.read_text()))


@dataclass
class Run:
    """One run directory: its result, resolved config, search evaluations and final trainings."""

    path: Path
    key: str  # the directory relative to the collected root: unique, stable, free of machine paths
    result: dict[str, Any]
    config: dict[str, Any]
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    trainings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def table(self) -> str:
        """The results table the run belongs to (its task when the record names none)."""
        return self.result.get("table") or self.result["task"]

    def conv(self, variant: str) -> str:
        """The table's label of a variant: standard, direct-L, fixed or learned."""
        return "standard" if variant == "standard" else CONV_LABELS[self.result["density"]]

    def setting(self, key: str, default: Any = None) -> Any:
        """A dotted key of the resolved config (``optim.lr``), or ``default`` when absent."""
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def example(self, variant: str) -> dict[str, np.ndarray] | None:
        """The recorded denoising example of ``variant`` (first final seed), or None."""
        for seed in self.result["final_seeds"]:
            path = self.path / "examples" / f"final-{variant}-seed{seed}.npz"
            if path.exists():
                with np.load(path) as arrays:
                    return {k: arrays[k] for k in arrays.files}
        return None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """JSON lines, dropping a torn last line (the records' own crash convention)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(finite(json.loads(line)))
        except json.JSONDecodeError:
            continue
    return rows


def load_run(path: Path, root: Path | None = None) -> Run:
    """Load the records of one finished run directory (it must hold ``result.json``)."""
    path = Path(path)
    config_path = path / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
    rel = path.relative_to(root).as_posix() if root is not None else "."
    trainings = {p.stem: _json(p) for p in sorted((path / "trainings").glob("*.json"))}
    return Run(
        path=path,
        key=rel if rel != "." else path.name,
        result=_json(path / "result.json"),
        config=config or {},
        evaluations=_jsonl(path / "evaluations.jsonl"),
        trainings=trainings,
    )


def find_runs(root: Path) -> list[Run]:
    """Every finished run under ``root`` (any depth), sorted by path; unfinished ones have no result.json."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [load_run(p.parent, root) for p in sorted(root.rglob("result.json"))]


def nan_if_none(value: Any) -> float:
    """A number for the tables: None (e.g. the standard error of one seed) becomes NaN."""
    return float("nan") if value is None else float(value)
