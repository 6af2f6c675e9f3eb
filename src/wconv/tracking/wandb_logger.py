"""W&B logging: one W&B run per training (each search evaluation, each final seed) and one summary run per run
directory, all grouped by the run directory (one search).

``logger=none`` gives ``NullTracker``. With ``logger=wandb`` the mode is offline when no API key is known
(compute nodes, CI), so nothing blocks on the network; ``wandb sync <run dir>/wandb/offline-run-*`` uploads later.
``WANDB_MODE`` in the environment always wins (tests use ``disabled``). Each training has a deterministic id
(the run's fingerprint and the training's name), so a requeued job resumes its W&B run instead of starting another.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("wconv.train")
_TOLD_OFFLINE: set[Path] = set()
# Summaries W&B keeps per metric: the best value of the run, not the last one.
SUMMARIES = {"train_loss": "min", "val_loss": "min", "val_acc1": "max", "val_acc5": "max", "val_psnr": "max"}


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

    def search_summary(self, evaluations: list[dict], result: dict, records: list[Path]) -> None:
        pass


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


def den_scalars(den: object, prefix: str = "den") -> dict[str, float]:
    """``den`` as scalars W&B can plot on an axis: ``den_0``, ``den_1``, ... (axes flattened in order)."""
    if not den:
        return {}
    flat = [v for d in den for v in d] if isinstance(den[0], list) else list(den)
    return {f"{prefix}_{i}": float(v) for i, v in enumerate(flat)}


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
    """Starts W&B runs in ``dir`` (the run directory), grouped by ``group`` (the run directory's name), with
    ``tags`` (profile, table, model, data, conv) and ids made of ``key`` (the run's fingerprint) and the name."""

    def __init__(
        self,
        project: str,
        group: str,
        dir: Path,
        key: str,
        tags: list[str],
        entity: str | None = None,
        mode: str = "auto",
        settings: dict | None = None,
    ) -> None:
        self.project, self.group, self.dir, self.key, self.tags, self.entity = (
            project,
            group,
            Path(dir),
            key,
            tags,
            entity,
        )
        self.settings = settings or {}  # the run's resolved config: the summary run's, to filter and group on
        self.mode = os.environ.get("WANDB_MODE") or (
            mode if mode != "auto" else ("online" if _has_api_key() else "offline")
        )
        if self.mode == "offline" and self.dir not in _TOLD_OFFLINE:  # once per run directory and process
            _TOLD_OFFLINE.add(self.dir)
            log.info(
                f"W&B is offline (no API key, or WANDB_MODE=offline): runs are written under {self.dir / 'wandb'}; "
                f"upload them later with: wandb sync {self.dir / 'wandb'}/offline-run-*"
            )

    def _init(self, name: str, job_type: str, config: dict) -> Any:
        import wandb

        self.dir.mkdir(parents=True, exist_ok=True)
        return wandb.init(
            project=self.project,
            entity=self.entity,
            group=self.group,
            job_type=job_type,
            name=f"{self.group}/{name}",
            id=re.sub(r"[^A-Za-z0-9_-]", "-", f"{self.key}-{name}"),
            resume="allow",
            tags=self.tags,
            config=config,
            dir=str(self.dir),
            mode=self.mode,
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
        )

    def start(self, name: str, job_type: str, config: dict, den: object = None) -> WandbRun:
        import wandb

        run = self._init(name, job_type, {**config, **den_scalars(den)})
        run.define_metric("epoch")
        run.define_metric("*", step_metric="epoch")
        for metric, summary in SUMMARIES.items():
            run.define_metric(metric, step_metric="epoch", summary=summary)
        if den:
            picture = phi_image(den, int(config["model"]["kernel_size"]), config["density"]["family"])
            run.log({"phi": wandb.Image(picture, caption=f"den={den}")})
        return WandbRun(run)

    def search_summary(self, evaluations: list[dict], result: dict, records: list[Path]) -> None:
        """One run per run directory: the search's evaluations as a table (den, objective, best so far), the best
        density and the final means as its summary, and the records as an artifact."""
        import wandb

        run = self._init("summary", "summary", self.settings or {"name": result.get("name")})
        if evaluations:
            columns = ["index", *den_scalars(evaluations[0]["den"]), "objective", "status", "best_so_far"]
            table, best = wandb.Table(columns=columns), float("inf")
            for row in evaluations:
                best = min(best, row["objective"]) if row["status"] == "ok" else best
                table.add_data(row["index"], *den_scalars(row["den"]).values(), row["objective"], row["status"], best)
            run.log({"evaluations": table})
        summary = {"objective": result.get("objective"), **den_scalars(result.get("best_den"), "best_den")}
        for variant, info in result.get("variants", {}).items():
            summary.update({f"{variant}/{k}_mean": v["mean"] for k, v in info.get("test", {}).items()})
        run.summary.update(summary)
        artifact = wandb.Artifact(re.sub(r"[^A-Za-z0-9_.-]", "-", f"records-{self.key}"), type="records")
        for path in records:
            if path.is_file():
                artifact.add_file(
                    str(path), name=path.name if path.parent == self.dir else str(path.relative_to(self.dir))
                )
        run.log_artifact(artifact)
        run.finish()
