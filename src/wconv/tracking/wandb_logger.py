"""W&B logging: one W&B run per training (each search evaluation, each final seed), grouped by search.

``logger=none`` gives ``NullTracker``. With ``logger=wandb`` the mode is offline when no API key is known
(compute nodes, CI), so nothing blocks on the network; ``wandb sync <run dir>/wandb/offline-run-*`` uploads later.
``WANDB_MODE`` in the environment always wins (tests use ``disabled``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


class NullRun:
    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


class NullTracker:
    def start(self, name: str, job_type: str, config: dict, den: object = None) -> NullRun:
        return NullRun()


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def phi_image(den: list[float] | list[list[float]], kernel_size: int, family: str = "symmetric", size: int = 16):
    """The 2-D density as an 8-bit grey picture (each kernel cell ``size`` pixels wide)."""
    from wconv.nn.density import get_family

    per_axis = den if den and isinstance(den[0], list) else [den, den]
    phi = get_family(family).phi(per_axis, [kernel_size, kernel_size]).numpy()
    img = (255 * phi / phi.max()).astype(np.uint8)
    return np.kron(img, np.ones((size, size), dtype=np.uint8))


class WandbRun:
    def __init__(self, run: Any) -> None:
        self._run = run

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self._run.log(metrics, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        self._run.summary.update(values)

    def finish(self) -> None:
        self._run.finish()


class WandbTracker:
    """Starts W&B runs in ``dir`` (the run directory), all in ``group`` (the search)."""

    def __init__(self, project: str, group: str, dir: Path, entity: str | None = None, mode: str = "auto") -> None:
        self.project, self.group, self.dir, self.entity = project, group, Path(dir), entity
        self.mode = os.environ.get("WANDB_MODE") or (
            mode if mode != "auto" else ("online" if _has_api_key() else "offline")
        )

    def start(self, name: str, job_type: str, config: dict, den: object = None) -> WandbRun:
        import wandb

        self.dir.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=self.project,
            entity=self.entity,
            group=self.group,
            job_type=job_type,
            name=f"{self.group}/{name}",
            config=config,
            dir=str(self.dir),
            mode=self.mode,
            reinit="finish_previous",
        )
        if den:
            flat = den if not isinstance(den[0], list) else [v for d in den for v in d]
            run.config.update({"den": den}, allow_val_change=True)
            picture = phi_image(den, int(config["model"]["kernel_size"]), config["density"]["family"])
            run.log({"phi": wandb.Image(picture, caption=f"den={flat}")}, step=0)
        return WandbRun(run)
