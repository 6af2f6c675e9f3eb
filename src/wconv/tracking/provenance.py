"""Where a run came from: the code's commit, the command, the software and the machine, recorded at each start."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[3]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


CODE = ("src", "configs", "scripts", "pyproject.toml")  # what computes a run (results/ and the README do not)


def git_state() -> dict[str, Any]:
    """The commit of the checkout wconv runs from, and whether its code (``CODE``) differs from it (None: no git).
    Records written under results/ by the run itself do not make it dirty."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE) if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def provenance(overrides: list[str] | None = None) -> dict[str, Any]:
    """This process: commit, command line and overrides, versions, host, GPU, threads, SLURM job, start time."""
    cuda = torch.cuda.is_available()
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **git_state(),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "overrides": list(overrides or []),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "host": socket.gethostname(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "threads": torch.get_num_threads(),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
    }
