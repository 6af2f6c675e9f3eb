"""End-to-end checks on a real SLURM cluster: slurm/train.sbatch, slurm/array.sbatch, Hydra multirun through the
hydra/launcher=slurm_ci preset, USR2 checkpoint, requeue and resume, wconv.slurm.run_slurm (make reproduce-table
LAUNCHER=slurm) and a data-parallel training of two processes under train.sbatch.

They need a running cluster (`scripts/slurm-cluster start`, found through SLURM_CONF or /tmp/wconv-slurm.env) and
are skipped otherwise. Most run the seconds-long stand-in tests/slurm_app/app.py (through WCONV_TRAIN_CMD); the
others run tiny real trainings of `python -m wconv.train`.
"""

import contextlib
import importlib.util
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = "tests/slurm_app/app.py"
ENV_FILE = Path(os.environ.get("WCONV_SLURM_ENV", "/tmp/wconv-slurm.env"))
CI_RESOURCES = ["--gres=none", "--cpus-per-task=1", "--mem=500M", "--time=5"]  # the test node has no GPU
DONE_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}

pytestmark = pytest.mark.slurm


def _cluster_conf() -> tuple[str | None, str]:
    """The running cluster's slurm.conf, or None and the reason why there is none."""
    conf = os.environ.get("SLURM_CONF")
    if not conf and ENV_FILE.exists():
        found = re.search(r"^export SLURM_CONF=(\S+)", ENV_FILE.read_text(), re.MULTILINE)
        conf = found.group(1) if found else None
    if not conf:
        return None, f"no SLURM cluster: no SLURM_CONF and no {ENV_FILE} (start one: scripts/slurm-cluster start)"
    if not Path(conf).is_file():
        return None, f"no SLURM cluster: SLURM_CONF={conf} is missing (stale? scripts/slurm-cluster stop)"
    if shutil.which("sinfo") is None:
        return None, "no SLURM cluster: sinfo is not installed (run scripts/slurm-cluster start)"
    try:
        env = {**os.environ, "SLURM_CONF": conf}
        subprocess.run(["sinfo", "-h"], env=env, check=True, capture_output=True, timeout=10)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        return None, f"no SLURM cluster answers at SLURM_CONF={conf}: {error}"
    return conf, ""


@pytest.fixture(scope="module")
def slurm_env() -> dict[str, str]:
    """Environment for sbatch and jobs: the cluster, W&B off, the stand-in training, this venv."""
    conf, reason = _cluster_conf()
    if conf is None:
        pytest.skip(reason)
    env = {**os.environ, "SLURM_CONF": conf, "WANDB_MODE": "disabled", "WCONV_TRAIN_CMD": f"python {APP}"}
    if (Path(sys.prefix) / "bin" / "activate").exists():
        env["WCONV_VENV"] = sys.prefix
    return env


@pytest.fixture
def jobs(slurm_env: dict[str, str]):
    """Job ids submitted by a test; whatever still runs at its end is cancelled."""
    submitted: list[str] = []
    yield submitted
    if submitted:
        subprocess.run(["scancel", *submitted], env=slurm_env, capture_output=True, timeout=30)


def sbatch(args: list[str], env: dict[str, str], jobs: list[str]) -> str:
    """Submit from the repository root with the test node's resources; return the job id."""
    done = subprocess.run(
        ["sbatch", "--parsable", *CI_RESOURCES, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip().split(";")[0]
    jobs.append(job)
    return job


def job_states(job: str, env: dict[str, str]) -> list[tuple[str, int]]:
    """(state, restarts) of the job, or of each task of an array, from slurmctld (no accounting lag)."""
    shown = subprocess.run(["scontrol", "-o", "show", "job", job], env=env, capture_output=True, text=True, timeout=30)
    return [
        (re.search(r"JobState=(\S+)", line).group(1), int(re.search(r"Restarts=(\d+)", line).group(1)))
        for line in shown.stdout.splitlines()
        if "JobState=" in line
    ]


def wait_for_job(job: str, env: dict[str, str], timeout_s: float, log: Path | None = None) -> list[tuple[str, int]]:
    """Poll until every task of the job has ended; return their (state, restarts)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = job_states(job, env)
        if states and all(state in DONE_STATES for state, _ in states):
            return states
        time.sleep(0.2)
    tail = log.read_text()[-2000:] if log and log.exists() else ""
    pytest.fail(f"job {job} still not done after {timeout_s} s: {job_states(job, env)}\n{tail}")


def wait_for_lines(path: Path, count: int, timeout_s: float) -> None:
    """Poll until the file has at least `count` lines."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.1)
    pytest.fail(f"{path} has fewer than {count} lines after {timeout_s} s")


def read_steps(path: Path) -> list[tuple[int, int]]:
    """(step, restart) pairs from the stand-in training's steps.log."""
    return [(int(step), int(restart)) for step, restart, _ in (line.split() for line in path.read_text().splitlines())]


def assert_resumed_once(steps: list[tuple[int, int]], total: int) -> None:
    """Every step ran exactly once, some before the requeue (restart 0) and the rest after it (restart 1)."""
    assert [step for step, _ in steps] == list(range(1, total + 1)), steps
    restarts = [restart for _, restart in steps]
    assert restarts == sorted(restarts) and set(restarts) == {0, 1}, steps


@pytest.mark.timeout(60)
def test_train_sbatch_runs_one_training(slurm_env, jobs, tmp_path):
    env = {**slurm_env, "WCONV_SLURM_RUNS": str(tmp_path / "runs")}
    job = sbatch([f"--output={tmp_path}/%j.out", "slurm/train.sbatch", "x=3", "steps=2"], env, jobs)
    log = tmp_path / f"{job}.out"
    assert wait_for_job(job, env, 45, log) == [("COMPLETED", 0)], log.read_text()
    result = json.loads((tmp_path / "runs" / job / "result.json").read_text())
    assert result["square"] == 9
    assert Path(result["python"]).parent == Path(env.get("WCONV_VENV", ROOT / ".venv")) / "bin"
    assert "training exited with status 0" in log.read_text()
    deadline = time.monotonic() + 15  # accounting lags 1-2 s behind the controller
    while time.monotonic() < deadline:
        accounted = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job, "-o", "state"], env=env, capture_output=True, text=True, timeout=30
        )
        if accounted.stdout.strip() == "COMPLETED":
            break
        time.sleep(0.5)
    assert accounted.stdout.strip() == "COMPLETED", accounted.stdout + accounted.stderr


@pytest.mark.timeout(60)
def test_array_runs_one_task_per_override_line(slurm_env, jobs, tmp_path):
    env = {**slurm_env, "WCONV_SLURM_RUNS": str(tmp_path / "runs")}
    overrides = tmp_path / "overrides.txt"
    overrides.write_text("# one training per line\nx=1\n\nx=2 steps=1\nx=3\n")
    job = sbatch(
        [f"--output={tmp_path}/%A_%a.out", "--array=0-2", "slurm/array.sbatch", str(overrides), "step_s=0.01"],
        env,
        jobs,
    )
    assert wait_for_job(job, env, 45) == [("COMPLETED", 0)] * 3
    results = [json.loads((tmp_path / "runs" / f"{job}_{task}" / "result.json").read_text()) for task in range(3)]
    assert [result["square"] for result in results] == [1, 4, 9]
    assert len((tmp_path / "runs" / f"{job}_1" / "steps.log").read_text().splitlines()) == 1  # its own steps=1


@contextlib.contextmanager
def multirun(
    sweep_dir: Path, overrides: list[str], env: dict[str, str], app: tuple[str, ...] = (APP,)
) -> Iterator[subprocess.Popen]:
    """A Hydra multirun of the stand-in app (or ``app``) through hydra/launcher=slurm_ci (it blocks until its jobs
    end); on the way out the launcher is killed and its jobs are cancelled if they are still there."""
    command = [sys.executable, *app, "-m", "hydra/launcher=slurm_ci", f"hydra.sweep.dir={sweep_dir}", *overrides]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        process.kill()
        array_jobs = {folder.name.split("_")[0] for folder in sweep_dir.glob(".submitit/*")}
        if array_jobs:
            subprocess.run(["scancel", *array_jobs], env=env, capture_output=True, timeout=30)


def gathered_returns(sweep_dir: Path) -> list:
    """The task functions' return values as submitit brought them back to the launcher."""
    values = []
    for result_file in sorted(sweep_dir.glob(".submitit/*/*_result.pkl")):
        outcome, job_return = pickle.loads(result_file.read_bytes())
        assert outcome == "success", job_return
        values.append(job_return.return_value)
    return values


@pytest.mark.timeout(90)
def test_hydra_multirun_through_the_slurm_ci_launcher(slurm_env, tmp_path):
    sweep = tmp_path / "sweep"
    with multirun(sweep, ["x=2,3"], slurm_env) as launcher:
        output, _ = launcher.communicate(timeout=80)
    assert launcher.returncode == 0, output
    assert sorted(gathered_returns(sweep)) == [4, 9]
    assert [json.loads((sweep / str(n) / "result.json").read_text())["x"] for n in (0, 1)] == [2, 3]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("target", ["steps", "batch"])
def test_usr2_requeues_train_sbatch_and_resumes(slurm_env, jobs, tmp_path, target):
    """USR2 to the training (preemption notice, as submitit sends it) or to the batch shell (what the time-limit
    signal `--signal=B:USR2@120` does): the training checkpoints, the job requeues itself and resumes."""
    env = {**slurm_env, "WCONV_SLURM_RUNS": str(tmp_path / "runs")}
    job = sbatch([f"--output={tmp_path}/%j.out", "slurm/train.sbatch", "steps=12", "step_s=0.2"], env, jobs)
    steps_log = tmp_path / "runs" / job / "steps.log"
    wait_for_lines(steps_log, 3, 30)
    scancel = ["scancel", "--signal=USR2", *(["--batch"] if target == "batch" else []), job]
    subprocess.run(scancel, env=env, check=True, timeout=30)
    log = tmp_path / f"{job}.out"
    assert wait_for_job(job, env, 60, log) == [("COMPLETED", 1)], log.read_text()
    assert_resumed_once(read_steps(steps_log), 12)
    assert "requeueing job" in log.read_text()


@pytest.mark.timeout(90)
def test_usr2_requeues_a_hydra_multirun_job_and_resumes(slurm_env, tmp_path):
    """submitit's own preemption path: USR2 makes it requeue the job, which resumes from the app's checkpoint."""
    sweep = tmp_path / "sweep"
    steps_log = sweep / "0" / "steps.log"
    with multirun(sweep, ["x=5", "steps=12", "step_s=0.2"], slurm_env) as launcher:
        wait_for_lines(steps_log, 3, 40)
        job = steps_log.read_text().split()[2]
        subprocess.run(["scancel", "--signal=USR2", job], env=slurm_env, check=True, timeout=30)
        output, _ = launcher.communicate(timeout=70)
    assert launcher.returncode == 0, output
    assert gathered_returns(sweep) == [25]
    assert_resumed_once(read_steps(steps_log), 12)
    assert json.loads((sweep / "0" / "result.json").read_text())["restart"] == 1


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_usr2_requeues_a_real_wconv_search_and_it_resumes(slurm_env, jobs, tmp_path):
    """The real entrypoint through train.sbatch: a tiny DIRECT-L search on the bundled digits gets USR2 after its
    first evaluation, dies of it, is requeued and resumes from its records to the end."""
    if importlib.util.find_spec("wconv.train") is None:
        pytest.skip("wconv.train is not there yet")
    env = {key: value for key, value in slurm_env.items() if key != "WCONV_TRAIN_CMD"}
    run_dir = tmp_path / "run"
    overrides = ["search=direct_l", "search.max_evals=3", "train.epochs=1", "final.seeds=[0]", "final.baseline=false"]
    overrides += ["logger=none", "progress=false", "device=cpu", f"hydra.run.dir={run_dir}"]
    job = sbatch(["--mem=3G", f"--output={tmp_path}/%j.out", "slurm/train.sbatch", *overrides], env, jobs)
    wait_for_lines(run_dir / "evaluations.jsonl", 1, 90)
    subprocess.run(["scancel", "--signal=USR2", job], env=env, check=True, timeout=30)
    log = tmp_path / f"{job}.out"
    assert wait_for_job(job, env, 120, log) == [("COMPLETED", 1)], log.read_text()
    assert len((run_dir / "evaluations.jsonl").read_text().splitlines()) == 3  # none evaluated twice
    assert (run_dir / "result.json").exists()
    assert "requeueing job" in log.read_text()


# Tiny real trainings of wconv.train on the bundled digits: seconds each (OMP_NUM_THREADS=1: the node's 2 CPUs are
# shared by two jobs).
TINY = ["model=vgg11", "data=digits", "train.epochs=1", "final.seeds=[0]", "final.baseline=false"]
TINY += ["logger=none", "progress=false", "data.limit_train=64", "data.limit_eval=32", "device=cpu"]


@pytest.fixture
def real_env(slurm_env: dict[str, str]) -> dict[str, str]:
    """The cluster's environment for the real wconv.train (no stand-in), one thread per job."""
    env = {key: value for key, value in slurm_env.items() if key != "WCONV_TRAIN_CMD"}
    return {**env, "OMP_NUM_THREADS": "1"}


@pytest.mark.timeout(240)
def test_run_slurm_runs_the_unfinished_matrix_as_one_array_then_skips_it(real_env, tmp_path, monkeypatch, caplog):
    """make reproduce-table LAUNCHER=slurm: the runs go through SLURM into sweep.run_dir's folders, a failed one is
    named with its log, and a second call submits nothing."""
    import wconv.slurm
    from wconv import sweep
    from wconv.slurm import SlurmError, run_slurm

    for key in ("SLURM_CONF", "WANDB_MODE", "OMP_NUM_THREADS", "WCONV_VENV"):
        if key in real_env:
            monkeypatch.setenv(key, real_env[key])
    monkeypatch.delenv("WCONV_TRAIN_CMD", raising=False)
    good = [
        sweep.Job("standard", ("density=standard",)),
        sweep.Job("fixed", ("density=fixed", "density.den=[0.7]")),
    ]
    bad = sweep.Job("no_den", ("density=fixed",))  # composes, then wconv.train refuses it: exit 2
    options = {"sbatch_args": ["--gres=none", "--cpus-per-task=1", "--mem=2G", "--time=10"], "poll_s": 0.5}
    root = tmp_path / "runs"
    caplog.set_level("INFO", logger="wconv.slurm")
    try:
        with pytest.raises(SlurmError) as failure:
            run_slurm([*good, bad], root, TINY, timeout_s=200, **options)
    finally:
        record = root / ".slurm" / "array.json"
        if record.exists():  # nothing may outlive the test
            subprocess.run(["scancel", *json.loads(record.read_text())["jobs"]], env=real_env, timeout=30)
    message = str(failure.value)
    (array,) = json.loads((root / ".slurm" / "array.json").read_text())["jobs"]
    assert message.startswith("1 of 3 SLURM runs failed: no_den (task ") and "\n" not in message
    assert f"{array}_2, FAILED 2:0, log {root}/.slurm/{array}_2.out" in message, message
    assert "density=fixed needs density.den" in (root / ".slurm" / f"{array}_2.out").read_text()
    lines = (root / ".slurm").glob("overrides-*.txt").__next__().read_text().splitlines()
    dirs = [sweep.run_dir(job, root, sweep.compose_job(job, TINY)) for job in good]
    assert lines[1] == " ".join(["density=fixed", "density.den=[0.7]", *TINY, f"hydra.run.dir={dirs[1].resolve()}"])
    results = [json.loads((d / "result.json").read_text()) for d in dirs]
    assert [r["density"] for r in results] == ["standard", "fixed"] and results[1]["best_den"] == [0.7]
    assert all(
        0 <= r["variants"][v]["test"]["acc1"]["mean"] <= 100
        for r, v in zip(results, ["standard", "weighted"], strict=True)
    )

    def must_not_submit(*args, **kwargs):
        raise AssertionError("submitted again")

    monkeypatch.setattr(wconv.slurm, "_submit", must_not_submit)
    before = [(d / "result.json").stat().st_mtime_ns for d in dirs]
    assert run_slurm(good, root, TINY, timeout_s=30, **options) == dirs
    assert [(d / "result.json").stat().st_mtime_ns for d in dirs] == before
    assert "every run is done: nothing to submit" in caplog.text


def test_run_slurm_refuses_an_override_that_array_sbatch_would_split(tmp_path, monkeypatch):
    """Checked before anything is submitted (no cluster needed): array.sbatch splits its lines on whitespace."""
    from wconv import sweep
    from wconv.slurm import SlurmError, run_slurm

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch: the refusal must come first
    with pytest.raises(SlurmError, match=r"^x: override \"name='a b'\" is empty or holds whitespace"):
        run_slurm([sweep.Job("x", ("name='a b'",))], tmp_path / "runs", ["logger=none"])
    with pytest.raises(SlurmError, match=r"^sbatch not found"):
        run_slurm([sweep.Job("x", ("seed=1",))], tmp_path / "runs", ["logger=none"])


def test_the_notice_job_runs_where_the_arrays_run_without_their_gpus():
    """No cluster needed: the placement options of WCONV_SBATCH_ARGS reach the notice job with their values, in
    either spelling; the GPUs, memory and time limits do not."""
    from wconv.slurm import placement

    args = ["-p", "gpu", "--gres=gpu:4", "--account=lab", "-A", "lab2", "--qos", "high", "--mem=64G", "-pdebug"]
    assert placement(args) == ["-p", "gpu", "--account=lab", "-A", "lab2", "--qos", "high", "-pdebug"]
    assert placement(["--time=1:00:00", "--partition=a100"]) == ["--partition=a100"] and placement([]) == []


def test_sweep_folder_names_are_single_valid_names():
    """hydra.sweep.subdir: list values as they are; a path value escaped instead of nesting; long names cut."""
    from wconv.tracking.identity import safe_dirname

    assert safe_dirname("density.den=[0.6],density=fixed") == "density.den=[0.6],density=fixed"
    assert safe_dirname("data.root=/scratch/div2k,seed=1") == "data.root=%2Fscratch%2Fdiv2k,seed=1"
    long = ",".join(f"key{i}=[{i},{i}]" for i in range(40))
    name = safe_dirname(long)
    assert len(name.encode()) <= 200 and name != safe_dirname(long.replace("key39", "key40"))


@pytest.mark.timeout(150)
def test_hydra_multirun_of_the_real_training_over_two_densities(real_env, tmp_path):
    """python -m wconv.train -m over density.den=[0.6],[1.2] through hydra/launcher=slurm_ci: one folder per
    density (list values make valid names), each with its result.json; Hydra gathers the objectives."""
    sweep = tmp_path / "sweep"
    overrides = ["hydra.launcher.mem_gb=2", "density=fixed", "density.den=[0.6],[1.2]", *TINY]
    with multirun(sweep, overrides, real_env, app=("-m", "wconv.train")) as launcher:
        output, _ = launcher.communicate(timeout=140)
    assert launcher.returncode == 0, output
    # one folder per point, named by Hydra's override_dirname: its sorted overrides (as submitit relays them)
    folders = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(folders) == 2 and all("data=digits,density.den=[" in name for name in folders)
    results = {name: json.loads((sweep / name / "result.json").read_text()) for name in folders}
    assert [f"density.den=[{r['best_den'][0]}]," in name for name, r in results.items()] == [True, True]
    assert sorted(r["best_den"] for r in results.values()) == [[0.6], [1.2]]
    returns = gathered_returns(sweep)
    assert sorted(returns) == sorted(r["objective"] for r in results.values())
    assert all(math.isfinite(value) and value > 0 for value in returns)


@pytest.mark.timeout(150)
def test_train_sbatch_runs_one_training_data_parallel(real_env, jobs, tmp_path):
    """WCONV_NPROC=2 (what --gres=gpu:2 sets through SLURM_GPUS_ON_NODE): train.sbatch starts torchrun with two
    processes; on CPUs they use gloo, and rank 0 alone writes the records."""
    run_dir = tmp_path / "run"
    env = {**real_env, "WCONV_NPROC": "2"}
    args = ["--cpus-per-task=2", "--mem=4G", f"--output={tmp_path}/%j.out", "slurm/train.sbatch"]
    job = sbatch([*args, "density=fixed", "density.den=[0.7]", *TINY, f"hydra.run.dir={run_dir}"], env, jobs)
    log = tmp_path / f"{job}.out"
    assert wait_for_job(job, env, 140, log) == [("COMPLETED", 0)], log.read_text()
    assert "torchrun --standalone --nproc_per_node=2 -m wconv.train" in log.read_text()
    assert (run_dir / "train.log").read_text().count("data-parallel over 2 processes (gloo)") == 1
    result = json.loads((run_dir / "result.json").read_text())
    assert result["best_den"] == [0.7] and result["variants"]["weighted"]["seeds"]["0"]["status"] == "ok"


@pytest.mark.timeout(300)
def test_run_slurm_gives_a_search_job_its_gpus_in_one_process(real_env, tmp_path, monkeypatch):
    """--search-gpus: a search job is a task of its own array, one process (WCONV_NPROC=1: no torchrun) whose
    search.workers train the search's rounds and the final trainings; a job that does not search stays apart."""
    from wconv import sweep
    from wconv.slurm import run_slurm

    for key in ("SLURM_CONF", "WANDB_MODE", "OMP_NUM_THREADS", "WCONV_VENV"):
        if key in real_env:
            monkeypatch.setenv(key, real_env[key])
    monkeypatch.delenv("WCONV_TRAIN_CMD", raising=False)
    jobs = [sweep.Job("search", ("search=direct_l", "search.max_evals=3")), sweep.Job("standard", ())]
    options = {"sbatch_args": ["--gres=none", "--cpus-per-task=2", "--mem=3G", "--time=10"], "poll_s": 0.5}
    root = tmp_path / "runs"
    try:
        dirs = run_slurm(jobs, root, TINY, search_gpus=2, timeout_s=250, **options)
    finally:
        record = root / ".slurm" / "array.json"
        if record.exists():
            subprocess.run(["scancel", *json.loads(record.read_text())["jobs"]], env=real_env, timeout=30)
    arrays = json.loads((root / ".slurm" / "array.json").read_text())["jobs"]
    assert len(arrays) == 2  # the search's array and the other's
    search_log = (root / ".slurm" / f"{arrays[0]}_0.out").read_text()
    assert "search.workers=2" in search_log and "torchrun" not in search_log
    rows = [json.loads(line) for line in (dirs[0] / "evaluations.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all("round" in r for r in rows)  # the batched search: its workers
    assert json.loads((dirs[1] / "result.json").read_text())["density"] == "standard"
