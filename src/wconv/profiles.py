"""Profiles: the scales at which the papers' matrix runs (``configs/profile/<name>.yaml``), one file each.

A profile file sets the run-level scale (epochs, seeds, evaluations; ``profile=<name>``) and, under ``matrix``,
what the matrix needs beyond one run: where its runs live, the note its tables carry, the per-model overrides, the
table models and the density study's settings. ``matrix`` is not part of any run (``wconv.plan`` drops it), so
adding a profile or changing its matrix changes no run's identity. A new profile is one YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

PROFILES = Path(__file__).resolve().parents[2] / "configs" / "profile"


@dataclass(frozen=True)
class Profile:
    name: str
    runs_root: Path  # where the matrix's run directories live
    note: str  # what a reader of its tables must know first (blank: the papers' scale)
    quiet: bool  # no W&B and no progress bars (runs at a scale that logs nowhere but their records)
    table_models: tuple[str, ...]  # the models of the papers' tables this profile runs
    study_settings: tuple[dict[str, Any], ...]  # the density study's hyperparameter settings (lr, batch, depth)
    overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by model, <model>_<conv>, study, study_k<k>


def names() -> list[str]:
    """Every profile there is a file for."""
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def load(name: str) -> Profile:
    """The profile ``name``; ValueError naming the known ones otherwise."""
    path = PROFILES / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(names())} (configs/profile/)")
    m = OmegaConf.to_container(OmegaConf.load(path).get("matrix") or {}, resolve=True)
    return Profile(
        name=name,
        runs_root=Path(m.get("runs_root", f"runs/table/{name}")),
        note=" ".join(str(m.get("note", "")).split()),
        quiet=bool(m.get("quiet", False)),
        table_models=tuple(m.get("table_models", ())),
        study_settings=tuple(m.get("study_settings", ())),
        overrides={k: tuple(v) for k, v in (m.get("overrides") or {}).items()},
    )
