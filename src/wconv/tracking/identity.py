"""A run's identity: what it computes (the resolved config less the keys that may change between resumes), its
fingerprint, the claim of a run directory, and safe folder names. Shared by train, sweep and reporting."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from wconv.tracking.records import fingerprint, read_json, write_json

# Keys that do not change what a run computes: a run directory may be resumed with other values of these (where
# the data lives is one: the same files give the same run; how many workers train the search's evaluations is
# another: every recorded evaluation is checked against the point the search proposes when it is replayed).
VOLATILE = (
    "logger",
    "device",
    "progress",
    "final.seeds",
    "data.root",
    "data.download",
    "search.workers",
    "search.launcher",
    "search.submitit",
)


class RecordMismatch(ValueError):
    """The records in a run directory do not belong to this run."""


def identity(cfg: DictConfig) -> dict[str, Any]:
    """What a run computes: the resolved config without the keys that may change between resumes."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in VOLATILE:
        *parents, last = key.split(".")
        node = plain
        for p in parents:
            node = node.get(p, {})
        node.pop(last, None)
    return plain


def run_fingerprint(cfg: DictConfig) -> str:
    """The fingerprint of what ``cfg`` computes: equal for runs that may share a directory."""
    return fingerprint(identity(cfg))


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def claim_run_dir(run_dir: Path, cfg: DictConfig, write: bool = True) -> None:
    """Write the run's config and fingerprint (only if ``write``), or check them against the ones already there."""
    ident = identity(cfg)
    record = run_dir / "run.json"
    if record.exists():
        old = read_json(record)
        if old["fingerprint"] != fingerprint(ident):
            diffs = "; ".join(_diff(old["identity"], ident)[:4])
            raise RecordMismatch(
                f"{run_dir} holds a run of another configuration ({diffs}); "
                "resume it with its own settings or choose another hydra.run.dir"
            )
        return
    if not write:
        return
    write_json(record, {"fingerprint": fingerprint(ident), "identity": ident})
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))


def safe_dirname(overrides: str, limit: int = 200) -> str:
    """A sweep point's folder name (``hydra.sweep.subdir``) from its ``override_dirname``: ``/`` escaped (a path
    value would nest folders) and, past ``limit`` bytes, cut and ended with a hash of the whole (Linux refuses
    names over 255 bytes). List values such as ``density.den=[0.6]`` are valid names as they are."""
    name = overrides.replace("/", "%2F")
    if len(name.encode()) > limit:
        digest = hashlib.sha256(overrides.encode()).hexdigest()[:12]
        name = name.encode()[: limit - len(digest) - 1].decode(errors="ignore") + "-" + digest
    return name


OmegaConf.register_new_resolver("wconv.dirname", safe_dirname, replace=True)
