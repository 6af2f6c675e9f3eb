"""A tiny Hydra app that stands in for `python -m wconv.train` in tests/test_slurm.py.

It counts `steps` steps into steps.log in its run dir, resuming from ckpt.json after a requeue. On USR2 it finishes
the current step, saves the checkpoint, then hands over to the handler it replaced when there is one (submitit's,
which requeues the job) or exits with status 140 (128 + USR2), on which slurm/train.sbatch requeues the job: the
contract a real training follows too. Returns x * x, which the Hydra multirun gathers.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

# conf/app.yaml puts the project's configs on Hydra's search path, for hydra/launcher=slurm and slurm_ci.
os.environ.setdefault("WCONV_PROJECT_CONFIGS", str(Path(__file__).resolve().parents[2] / "configs"))


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg: DictConfig) -> int:
    """Count steps with checkpoint and resume; write result.json; return x * x."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    checkpoint = run_dir / "ckpt.json"
    first = json.loads(checkpoint.read_text())["step"] + 1 if checkpoint.exists() else 1
    restart = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    job = os.environ.get("SLURM_JOB_ID", "local")

    stop_requests: list[int] = []
    replaced = signal.signal(signal.SIGUSR2, lambda signum, frame: stop_requests.append(signum))
    with (run_dir / "steps.log").open("a") as log:
        for step in range(first, cfg.steps + 1):
            time.sleep(cfg.step_s)
            log.write(f"{step} {restart} {job}\n")
            log.flush()
            if stop_requests:
                checkpoint.write_text(json.dumps({"step": step}))
                if callable(replaced):
                    replaced(signal.SIGUSR2, None)
                sys.exit(128 + signal.SIGUSR2)
    checkpoint.write_text(json.dumps({"step": cfg.steps}))
    square = cfg.x * cfg.x
    result = {"x": cfg.x, "square": square, "restart": restart, "python": sys.executable}
    (run_dir / "result.json").write_text(json.dumps(result))
    return square


if __name__ == "__main__":
    main()
