"""Shared test helpers: compose the real Hydra config, run the real entrypoint."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

os.environ.setdefault("WANDB_MODE", "disabled")


def compose_train(overrides: list[str]):
    """The resolved training config for ``overrides``, exactly as ``python -m wconv.train`` composes it."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=False)


def run_cli(args: list[str], env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m wconv.train <args>`` in a subprocess, from the repository root."""
    full_env = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "wconv.train", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(args: list[str], capture: bool = False) -> subprocess.Popen:
    """``python -m wconv.train <args>`` in the background (for tests that kill it midway); its output discarded,
    or kept as text for ``communicate`` when ``capture``."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "wconv.train", *args], cwd=ROOT, env=env, stdout=out, stderr=out, text=True
    )


@pytest.fixture
def tiny() -> list[str]:
    """Overrides that make a smoke run tinier still: seconds per training on a laptop CPU."""
    return ["profile=smoke", "logger=none", "progress=false", "data.limit_train=256", "data.limit_eval=128"]
