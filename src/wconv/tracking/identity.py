"""A run's identity: what it computes (the resolved config less the keys that may change between resumes), its
fingerprint, the claim of a run directory, and safe folder names. Shared by train, sweep and reporting."""

from __future__ import annotations

import copy
import hashlib
import secrets
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from wconv.tracking.records import fingerprint, read_json, write_json, write_text

# Keys that do not change what a run computes: a run directory may be resumed with other values of these (where
# the data lives is one: the same files give the same run; a search's budget another: DIRECT-L's sequence of
# points does not depend on it, so a larger budget replays the recorded prefix and goes on; how many workers train
# the evaluations a third: every recorded evaluation is checked against the point the search proposes when replayed).
VOLATILE = (
    "logger",
    "device",
    "progress",
    "final.seeds",
    "data.root",
    "data.download",
    "search.max_evals",
    "train.checkpoint_minutes",
    "search.workers",
    "search.launcher",
    "search.submitit",
    "final.arms",  # controls trained beside a run's variants: adding one to a finished run trains just that
    "final.budgets",
    "final.budget_seeds",
)


# Keys added after runs were recorded, at the value that reproduces what those runs did: left out of the identity
# at that value, so that a recorded run keeps its fingerprint (and its folder) when the key appears; any other
# value is part of the identity.
NEUTRAL = {
    "train.val_every": 1,  # validation after every epoch
    "train.precision": "bf16",  # bf16 autocast on CUDA (fp32 on the CPU)
    "train.compile": False,
    "search.space": None,  # the density
    "data.val_max_size": None,  # whole validation images
}


class RecordMismatch(ValueError):
    """The records in a run directory do not belong to this run."""


def plain_config(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The composed config as plain values (a copy), without Hydra's own section and a profile's matrix data
    (``configs/profile/*.yaml``), which say nothing about one run."""
    plain = copy.deepcopy(cfg) if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    for section in ("hydra", "matrix"):
        plain.pop(section, None)
    return plain


def setting(plain: dict[str, Any], key: str, default: Any = None) -> Any:
    """A dotted key of a plain config (``optim.lr``), or ``default`` when absent."""
    node: Any = plain
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def identity(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """What a run computes: the resolved config without the keys that may change between resumes (and without
    Hydra's section and a profile's matrix data)."""
    plain = plain_config(cfg)
    for key in (*VOLATILE, *NEUTRAL):
        *parents, last = key.split(".")
        node = plain
        for p in parents:
            node = node.get(p, {})
        if key in VOLATILE or (last in node and node[last] == NEUTRAL[key]):
            node.pop(last, None)
    return plain


def run_fingerprint(cfg: DictConfig | dict[str, Any]) -> str:
    """The fingerprint of what ``cfg`` computes: equal for runs that may share a directory."""
    return fingerprint(identity(cfg))


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def check_run_dir(run_dir: Path, cfg: DictConfig | dict[str, Any]) -> dict[str, Any] | None:
    """The run's record in ``run_dir`` (None when new); RecordMismatch if it holds another configuration. Reads only."""
    record = run_dir / "run.json"
    if not record.is_file():
        return None
    old = read_json(record)
    ident = identity(cfg)
    if old["fingerprint"] != fingerprint(ident):
        diffs = "; ".join(_diff(old["identity"], ident)[:4])
        raise RecordMismatch(
            f"{run_dir} holds a run of another configuration ({diffs}); "
            "resume it with its own settings or choose another hydra.run.dir"
        )
    return old


def claim_run_dir(run_dir: Path, cfg: DictConfig | dict[str, Any], start: dict[str, Any]) -> None:
    """Record the run's config, fingerprint and this start's provenance (``start``: commit, command, machine) in
    ``run.json`` and ``config.yaml``; the checks of ``check_run_dir`` first."""
    old = check_run_dir(run_dir, cfg)
    ident = identity(cfg)
    starts = (old or {}).get("starts", []) + [start]
    key = (old or {}).get("wandb_key") or secrets.token_hex(4)  # this folder's, kept on resume (W&B ids)
    record = {"fingerprint": fingerprint(ident), "identity": ident, "wandb_key": key, "starts": starts}
    write_json(run_dir / "run.json", record)
    if old is None:
        plain = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
        write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(plain)))


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


def conv_of(kind: str, search: str) -> str:
    """What convolution a run trains: direct_l for a search (whose density.kind is standard), else the kind."""
    return "direct_l" if search == "direct_l" else str(kind)


OmegaConf.register_new_resolver("wconv.conv", conv_of, replace=True)  # the run's name in configs/train.yaml
