"""Read recorded run directories (``result.json`` and what lies beside it); never trains, never writes."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from wconv import tasks, variants
from wconv.tracking import identity
from wconv.tracking.records import read_jsonl


def finite(value: Any) -> Any:
    """Records write non-finite floats as strings ("nan", "inf"): turn them back into floats, recursively."""
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


class BadRun(ValueError):
    """A run directory whose records cannot be read; the one-line message names the file and why."""


def _text(path: Path, run_dir: Path) -> str:
    """The text of one record; BadRun when it is not UTF-8."""
    try:
        return path.read_text()
    except UnicodeDecodeError as e:
        raise BadRun(f"{path.relative_to(run_dir).as_posix()} is not UTF-8 text") from e


def _object(path: Path, run_dir: Path) -> dict[str, Any]:
    """A JSON record that must hold an object (``result.json``, ``trainings/*.json``); BadRun says why not."""
    name = path.relative_to(run_dir).as_posix()
    try:
        value = json.loads(_text(path, run_dir))
    except json.JSONDecodeError as e:
        raise BadRun(f"{name} is not valid JSON (line {e.lineno} column {e.colno})") from e
    if not isinstance(value, dict):
        raise BadRun(f"{name} holds {json.dumps(value)[:40]}, not a JSON object")
    return finite(value)


def _config(path: Path, run_dir: Path) -> dict[str, Any]:
    """The resolved ``config.yaml`` as a mapping (empty when absent); BadRun when it is not YAML or not a mapping."""
    if not path.exists():
        return {}
    try:
        config = yaml.safe_load(_text(path, run_dir))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1} column {mark.column + 1})" if mark is not None else ""
        raise BadRun(f"{path.name} is not valid YAML{where}") from e
    if config is not None and not isinstance(config, dict):
        raise BadRun(f"{path.name} holds a {type(config).__name__}, not a mapping")
    return config or {}


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
        """The table's label of a variant (``wconv.variants.label``): standard, direct-L, fixed, learned, a
        control's (preconditioned, lr-tuned, ...), the run's density family or shorter search in brackets, and
        `` @<m>x`` for a budget variant."""
        return variants.label(variant, self.result["density"], self.result.get("best_point"), self.detail)

    @property
    def detail(self) -> str:
        """What sets this run's own conv apart from the papers' search: its density family (not the symmetric
        one), a search whose trainings are shorter than the final ones."""
        parts = []
        if (family := self.setting("density.family", "symmetric")) != "symmetric":
            parts.append(family)
        train, final = self.setting("train.epochs"), self.setting("final.epochs")
        if self.result.get("search") and train and final and train < final:
            parts.append(f"search at {train / final:.2g}x")
        return ", ".join(parts)

    def setting(self, key: str, default: Any = None) -> Any:
        """A dotted key of the resolved config (``optim.lr``), or ``default`` when absent."""
        return identity.setting(self.config, key, default)

    def example(self, variant: str) -> dict[str, np.ndarray] | None:
        """The recorded denoising example of ``variant`` (first final seed), or None."""
        for seed in self.result["final_seeds"]:
            path = self.path / "examples" / f"final-{variant}-seed{seed}.npz"
            if path.exists():
                with np.load(path) as arrays:
                    return {k: arrays[k] for k in arrays.files}
        return None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines record read as the training reads it (a torn last line dropped), without writing."""
    return [finite(row) for row in read_jsonl(path, repair=False)]


def load_run(path: Path, root: Path | None = None) -> Run:
    """Load the records of one finished run directory (it must hold ``result.json``); BadRun when one is unreadable."""
    path = Path(path)
    rel = path.relative_to(root).as_posix() if root is not None else "."
    trainings = {p.stem: _object(p, path) for p in sorted((path / "trainings").glob("*.json"))}
    return Run(
        path=path,
        key=rel if rel != "." else path.name,
        result=_object(path / "result.json", path),
        config=_config(path / "config.yaml", path),
        evaluations=_jsonl(path / "evaluations.jsonl"),
        trainings=trainings,
    )


def shape_problem(result: dict[str, Any]) -> str | None:
    """The first field the tables and figures need that ``result`` lacks or holds in another shape, or None."""
    need = {"task": str, "model": str, "data": str, "kernel_size": int, "density": str, "variants": dict}
    need |= {"final_seeds": list}
    for key, kind in need.items():
        if key not in result:
            return f"field {key} is missing"
        if not isinstance(result[key], kind) or isinstance(result[key], bool):
            return f"field {key} holds {json.dumps(result[key])[:30]}, not a {kind.__name__}"
    if result["task"] not in tasks.TASKS:
        return f"field task holds an unknown task {result['task']!r}"
    if result["density"] not in (*variants.OWN, "tuned"):
        return f"field density holds an unknown label {result['density']!r}"
    for name, info in result["variants"].items():
        if not isinstance(info, dict):
            return f"field variants.{name} holds {json.dumps(info)[:30]}, not an object"
        for key, kind in (("seeds", dict), ("test", dict), ("diverged", int)):
            if not isinstance(info.get(key), kind):
                return f"field variants.{name}.{key} is missing or not a {kind.__name__}"
        if not all(isinstance(seed, dict) and "status" in seed for seed in info["seeds"].values()):
            return f"field variants.{name}.seeds holds a seed without its status"
    return None


def find_runs(root: Path) -> list[Run]:
    """Every finished run under ``root`` (any depth), sorted by path; unfinished ones have no result.json.

    A run whose records cannot be read, or do not hold what a table needs, is skipped with one warning line on
    stderr naming it and why, so that it spoils no report; so is a run trained on fabricated data. Two folders
    holding the same run (a copy, a run nested in another's folder: the same fingerprint) count once, with a
    warning naming both."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs, seen = [], {}
    for result in sorted(root.rglob("result.json"), key=lambda p: (len(p.parts), p)):  # an original before a copy
        try:
            run = load_run(result.parent, root)
        except BadRun as e:
            print(f"warning: skipped {result.parent}: {e}", file=sys.stderr)
            continue
        if problem := shape_problem(run.result):
            print(f"warning: skipped {result.parent}: result.json {problem}", file=sys.stderr)
            continue
        if run.result.get("fabricated"):
            print(f"warning: skipped {result.parent}: trained on fabricated data (a rehearsal)", file=sys.stderr)
            continue
        if (key := run.result.get("fingerprint")) and key in seen:
            print(f"warning: skipped {result.parent}: the same run as {seen[key]} (a copy?): counted once",
                  file=sys.stderr)  # fmt: skip
            continue
        seen[key] = result.parent
        runs.append(run)
    return sorted(runs, key=lambda r: r.path)


def no_runs(root: Path) -> str | None:
    """Why there is nothing to report on under ``root`` (missing, or no result.json in it), or None."""
    root = Path(root)
    if not root.is_dir():
        return f"no runs directory at {root}"
    if next(root.rglob("result.json"), None) is None:
        return f"no finished run (result.json) under {root}"
    return None


def nan_if_none(value: Any) -> float:
    """A number for the tables: None (e.g. the standard error of one seed) becomes NaN."""
    return float("nan") if value is None else float(value)
