"""search.workers: the batched DIRECT-L driver (fake objectives, no training), local worker processes and submitit
jobs (fake trainings), and the real entrypoint with two workers against the serial NLopt search."""

import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli, start_cli

from wconv.direct import minimize
from wconv.parallel import LocalWorkers, SubmititWorkers, WorkerLost, cores, safe_evaluate
from wconv.search import Evaluation, RecordMismatch, direct_l, direct_l_batched
from wconv.tracking.records import read_json, read_jsonl

BOX = [[0.05, 1.0], [0.5, 1.5]]


def bowl(den: list[float]) -> float:
    return sum((d - 0.8) ** 2 for d in den) + 1.0


def in_process(evaluate, reverse: bool = True):
    """An EvaluateBatch without workers: each batch finishes in reverse order (out of order), or in order."""

    def evaluate_batch(tasks):
        for index, den in reversed(tasks) if reverse else tasks:
            yield index, *safe_evaluate(evaluate, index, den)

    return evaluate_batch


def counting(calls: list[int]):
    def evaluate(index, den):
        calls.append(index)
        return Evaluation(bowl(den))

    return evaluate


def test_batched_search_is_the_batched_sequence_whatever_order_evaluations_finish_in(tmp_path):
    reference = minimize(lambda batch: [bowl(x) for x in batch], BOX, 40)
    calls = []
    best = direct_l_batched(in_process(counting(calls)), BOX, 40, tmp_path / "ev.jsonl", penalty=1e3)
    rows = read_jsonl(tmp_path / "ev.jsonl")
    assert [r["index"] for r in rows] != list(range(40))  # recorded as they finished, out of order
    by_index = sorted(rows, key=lambda r: r["index"])
    assert [r["index"] for r in by_index] == list(range(40)) and sorted(calls) == list(range(40))
    assert [r["den"] for r in by_index] == reference.points
    assert [r["objective"] for r in by_index] == reference.values
    assert [r["round"] for r in by_index] == reference.rounds
    x, f, index = reference.best
    assert best == {
        "den": x,
        "objective": f,
        "index": index,
        "evaluations": 40,
        "rounds": reference.rounds[-1] + 1,
        "max_evals": 40,
        "status": "ok",
    }
    in_order = direct_l_batched(in_process(bowl_eval, reverse=False), BOX, 40, tmp_path / "b.jsonl", penalty=1e3)
    assert in_order == best


def bowl_eval(index, den):
    return Evaluation(bowl(den))


def test_interrupted_batched_search_replays_and_trains_only_what_is_missing(tmp_path):
    record = tmp_path / "ev.jsonl"
    first = []

    def dies_in_round_three(index, den):
        if index == 5:
            raise KeyboardInterrupt  # not an Exception: the search stops, as on Ctrl-C
        return counting(first)(index, den)

    with pytest.raises(KeyboardInterrupt):
        direct_l_batched(in_process(dies_in_round_three), BOX, 20, record, penalty=1e3)
    done = read_jsonl(record)
    assert 5 not in {r["index"] for r in done} and max(r["index"] for r in done) > 5  # later ones of its round
    with open(record, "ab") as f:  # a torn last line, as a killed writer leaves it
        f.write(b'{"index": 5, "den": [0.')
    second = []
    best = direct_l_batched(in_process(counting(second)), BOX, 20, record, penalty=1e3)
    assert sorted(first + second) == list(range(20))  # nothing trained twice
    assert read_jsonl(record)[: len(done)] == done
    assert best == direct_l_batched(in_process(bowl_eval), BOX, 20, tmp_path / "ref.jsonl", penalty=1e3)


def test_a_record_of_another_search_is_refused(tmp_path):
    record = tmp_path / "ev.jsonl"
    direct_l_batched(in_process(bowl_eval), BOX, 6, record, penalty=1e3)
    before = record.read_bytes()
    with pytest.raises(RecordMismatch, match="evaluation 0 was recorded at den=.*another search"):
        direct_l_batched(in_process(bowl_eval), [[0.2, 1.0], [0.5, 1.5]], 6, record, penalty=1e3)
    assert record.read_bytes() == before


def test_a_failing_or_diverged_evaluation_is_penalised_and_its_round_goes_on(tmp_path):
    def sometimes_bad(index, den):
        if index == 2:
            raise ValueError("out of memory, say")
        if index == 3:
            return Evaluation(float("nan"), "diverged")
        return Evaluation(bowl(den))

    best = direct_l_batched(in_process(sometimes_bad), BOX, 20, tmp_path / "ev.jsonl", penalty=1e3)
    rows = {r["index"]: r for r in read_jsonl(tmp_path / "ev.jsonl")}
    assert len(rows) == 20 and rows[2]["round"] == rows[3]["round"] == rows[4]["round"] == 1
    assert rows[2]["status"] == "failed" and rows[2]["metrics"] == {"error": "ValueError: out of memory, say"}
    assert rows[3]["status"] == "diverged"
    assert rows[2]["objective"] == rows[3]["objective"] == 1e3
    assert all(r["status"] == "ok" and math.isfinite(r["objective"]) for i, r in rows.items() if i not in (2, 3))
    assert best["objective"] < 2


def test_the_serial_search_replays_a_batched_record_written_out_of_order(tmp_path):
    """search.workers may change between resumes: NLopt replays a batched record by index (the 1-D sequences agree)."""
    record, box = tmp_path / "ev.jsonl", [[0.5, 1.5]]
    direct_l_batched(in_process(bowl_eval), box, 6, record, penalty=1e3)
    calls = []
    best = direct_l(counting(calls), box, 9, record, penalty=1e3)
    assert calls == [6, 7, 8]
    assert best == direct_l(bowl_eval, box, 9, tmp_path / "serial.jsonl", penalty=1e3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["search.workers=0"], "search.workers=0: must be greater than or equal to 1"),
        (["search.workers=2", "search.launcher=ssh"], "search.launcher='ssh': must be 'local' or 'submitit'"),
        (["search.launcher=submitit"], "search.launcher='submitit': needs search.workers>1"),
        (["search.workers=2", "search.ftol_rel=1e-3"], "they need search.workers=1"),
    ],
)
def test_settings_that_cannot_run_are_refused(args, message):
    from conftest import compose_train

    from wconv.config import ConfigError
    from wconv.plan import make

    with pytest.raises(ConfigError) as err:
        make(compose_train(["search=direct_l", *args]))
    assert message in str(err.value)
    assert make(compose_train(["search=direct_l", "search.workers=2", "search.launcher=submitit"])).searches


@dataclass(frozen=True)
class FakeTraining:
    """A worker's setup without training, picklable for spawned workers and jobs: every attempt leaves a file in
    ``marks``; the first attempt of ``kill_once`` and every one of ``kill_always`` kill their own process."""

    marks: Path
    seconds: float = 0.0
    kill_once: tuple[int, ...] = ()
    kill_always: tuple[int, ...] = ()
    fail: tuple[int, ...] = ()

    def __call__(self, slot: int):
        (self.marks / f"setup-{os.getpid()}").touch()

        def evaluate(index: int, den: list[float]) -> Evaluation:
            attempt = len(list(self.marks.glob(f"{index}-*")))
            (self.marks / f"{index}-{attempt}").touch()
            if index in self.kill_always or (index in self.kill_once and attempt == 0):
                os.kill(os.getpid(), signal.SIGKILL)
            if index in self.fail:
                raise ValueError(f"no good: {den}")
            start = time.time()
            time.sleep(self.seconds)
            metrics = {"slot": slot, "threads": torch.get_num_threads(), "pid": os.getpid()}
            metrics |= {"start": start, "end": time.time()}
            return Evaluation(bowl(den), "ok", metrics)

        return evaluate


def attempts(marks: Path) -> dict[int, int]:
    found: dict[int, int] = {}
    for mark in marks.glob("[0-9]*-*"):
        index = int(mark.name.split("-")[0])
        found[index] = found.get(index, 0) + 1
    return found


TASKS = [(0, [0.6]), (1, [0.7]), (2, [0.9])]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fork", [False, True])
def test_local_workers_train_side_by_side_each_set_up_once(tmp_path, fork):
    workers = LocalWorkers(FakeTraining(tmp_path, seconds=2.0), 2, fork=fork)
    assert workers.method == ("fork" if fork and cores() // 2 == 1 else "spawn")  # fork: one thread per worker only
    try:
        centre = {index: result.metrics for index, result, _ in workers([(3, [1.0])])}  # a round of one point
        assert len(list(tmp_path.glob("setup-*"))) == 2  # yet both workers were set up before it began
        first = {index: result.metrics for index, result, _ in workers(TASKS[:2])}
        second = {index: result.metrics for index, result, _ in workers(TASKS[2:])}  # the same pool
    finally:
        workers.close()
    assert centre[3]["pid"] in {m["pid"] for m in (first[0], first[1])}
    a, b = first[0], first[1]
    assert {a["slot"], b["slot"]} == {0, 1}  # one slot (GPU) each
    assert a["start"] < b["end"] and b["start"] < a["end"]  # side by side
    assert a["threads"] == b["threads"] == max(1, cores() // 2)
    assert {a["pid"], b["pid"]} >= {second[2]["pid"]}
    assert sorted(m.name for m in tmp_path.glob("setup-*")) == sorted(f"setup-{m['pid']}" for m in (a, b))


@pytest.mark.timeout(240)
def test_a_lost_workers_point_is_trained_again_and_a_failing_one_returned_as_failed(tmp_path):
    workers = LocalWorkers(FakeTraining(tmp_path, kill_once=(1,), fail=(2,)), 2)
    try:
        done = {index: (result, seconds) for index, result, seconds in workers(TASKS)}
    finally:
        workers.close()
    assert sorted(done) == [0, 1, 2]  # each once
    tries = attempts(tmp_path)
    assert tries[1] == 2 and all(tries[i] <= 2 for i in (0, 2))  # the pool's other trainings may go down with it
    assert done[1][0] == Evaluation(bowl([0.7]), "ok", done[1][0].metrics)
    assert done[2][0].status == "failed" and done[2][0].metrics == {"error": "ValueError: no good: [0.9]"}
    assert all(seconds >= 0 for _, seconds in done.values())


@pytest.mark.timeout(240)
def test_a_point_that_always_kills_its_worker_stops_the_search_with_one_line(tmp_path):
    workers = LocalWorkers(FakeTraining(tmp_path, kill_always=(0,)), 2)
    try:
        with pytest.raises(WorkerLost, match=r"evaluation 0 \(den=\[0.6\]\) was lost 3 times: its worker process"):
            list(workers(TASKS[:1]))
    finally:
        workers.close(kill=True)
    assert attempts(tmp_path) == {0: 3}


@pytest.fixture
def job_path(monkeypatch):
    """submitit's jobs unpickle this module's FakeTraining: put tests/ on their path."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])))


@pytest.mark.timeout(300)
def test_submitit_local_jobs_one_per_evaluation_and_a_lost_job_runs_again(tmp_path, job_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    params = {"cluster": "local", "timeout_min": 5, "gpus_per_node": 0, "slurm_partition": None}
    workers = SubmititWorkers(FakeTraining(marks, kill_once=(1,), fail=(2,)), 2, tmp_path / "jobs", params, 0.2)
    done = {index: result for index, result, _ in workers(TASKS)}
    assert sorted(done) == [0, 1, 2] and attempts(marks) == {0: 1, 1: 2, 2: 1}
    assert done[0].objective == bowl([0.6]) and done[1].objective == bowl([0.7])
    assert done[2].status == "failed" and "no good" in done[2].metrics["error"]
    assert len(list((tmp_path / "jobs").glob("*_result.pkl"))) == 3  # one job per finished evaluation


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_submitit_jobs_on_a_slurm_cluster(tmp_path, job_path, monkeypatch):
    from test_slurm import _cluster_conf

    conf, reason = _cluster_conf()
    if conf is None:
        pytest.skip(reason)
    monkeypatch.setenv("SLURM_CONF", conf)
    marks = tmp_path / "marks"
    marks.mkdir()
    params = {"cluster": "slurm", "timeout_min": 5, "cpus_per_task": 1, "mem_gb": 0.5, "slurm_partition": "debug"}
    workers = SubmititWorkers(FakeTraining(marks, fail=(2,)), 2, tmp_path / "jobs", params, 0.5)
    done = {index: result for index, result, _ in workers(TASKS)}
    assert sorted(done) == [0, 1, 2] and attempts(marks) == {0: 1, 1: 1, 2: 1}
    assert done[1].objective == bowl([0.7]) and done[2].status == "failed"


# The real entrypoint: a tiny 1-D search (3x3 kernels), serial NLopt against the batched search with two workers.
SEARCH = ["model=vgg11", "data=digits", "search=direct_l", "search.max_evals=6", "final.seeds=[0]"]


def same_threads() -> dict[str, str]:
    """The serial reference with a worker's thread count: on a CPU, float sums (hence objectives) depend on it."""
    return {"OMP_NUM_THREADS": str(max(1, cores() // 2))}


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> list[dict]:
    run_dir = tmp_path_factory.mktemp("serial")
    tiny = ["profile=smoke", "logger=none", "progress=false", "data.limit_train=256", "data.limit_eval=128"]
    proc = run_cli([*SEARCH, *tiny, f"hydra.run.dir={run_dir}"], env=same_threads())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_jsonl(run_dir / "evaluations.jsonl")


def assert_same_search(batched: list[dict], serial: list[dict]) -> None:
    """Round by round the same points (as sets; NLopt's order within an iteration may differ) and objectives."""
    batched = sorted(batched, key=lambda r: r["index"])
    assert [r["index"] for r in batched] == list(range(len(serial)))
    start = 0
    for round_ in range(batched[-1]["round"] + 1):
        ours = [r for r in batched if r["round"] == round_]
        theirs = serial[start : start + len(ours)]
        assert {tuple(r["den"]) for r in ours} == {tuple(r["den"]) for r in theirs}, f"round {round_}"
        objective = {tuple(r["den"]): r["objective"] for r in theirs}
        for r in ours:
            assert r["objective"] == pytest.approx(objective[tuple(r["den"])], rel=1e-6, abs=1e-6)
        start += len(ours)


@pytest.mark.slow
def test_two_workers_record_the_serial_searchs_points_and_objectives(tmp_path, tiny, serial):
    proc = run_cli([*SEARCH, *tiny, "search.workers=2", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_jsonl(tmp_path / "evaluations.jsonl")
    assert_same_search(rows, serial)
    result = read_json(tmp_path / "result.json")
    best = min(serial, key=lambda r: (r["objective"], r["index"]))
    assert result["best_den"] == best["den"]
    assert result["search"]["evaluations"] == 6
    assert result["search"]["rounds"] == max(r["round"] for r in rows) + 1 < 6
    assert not list((tmp_path / "checkpoints").glob("eval-*.pt"))


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker processes through /proc")
def test_killed_search_with_two_workers_resumes_without_repeating_evaluations(tmp_path, tiny, serial):
    args = [*SEARCH, *tiny, "search.workers=2", f"hydra.run.dir={tmp_path}"]
    proc = start_cli(args)
    record = tmp_path / "evaluations.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and len(read_jsonl(record)) < 2:
        time.sleep(0.2)
    workers = children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = read_jsonl(record)
    assert 2 <= len(done_before) < 6, "the search was not interrupted in the middle"
    assert workers
    deadline = time.time() + 30
    while time.time() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers), "worker processes outlived the killed search"
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = read_jsonl(record)
    assert sorted(r["index"] for r in rows) == list(range(6))  # each evaluation recorded once
    assert rows[: len(done_before)] == done_before
    assert_same_search(rows, serial)


@pytest.mark.slow
def test_submitit_launcher_end_to_end_with_local_jobs(tmp_path, tiny, serial):
    args = [*SEARCH, *tiny, "search.max_evals=3", "search.workers=2", "search.launcher=submitit"]
    proc = run_cli(
        [*args, "search.submitit.cluster=local", "search.submitit.timeout_min=10", f"hydra.run.dir={tmp_path}"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_jsonl(tmp_path / "evaluations.jsonl")
    assert_same_search(rows, serial[:3])
    trainings = list((tmp_path / "trainings").glob("*.json"))  # weighted and standard on seed 0
    assert len(trainings) == 2  # one job per evaluation and per final training:
    assert len(list((tmp_path / "submitit").glob("*_result.pkl"))) == 3 + len(trainings)


@pytest.mark.parametrize(
    "args, message",
    [
        (["search.workers=0"], "search.workers=0: must be greater than or equal to 1"),
        (["search.workers=2", "search.ftol_rel=1e-3"], "they need search.workers=1"),
        (["search.launcher=submitit"], "search.launcher='submitit': needs search.workers>1"),
    ],
)
def test_bad_worker_settings_are_refused_before_anything_is_written(tmp_path, args, message):
    from conftest import compose_train

    from wconv.config import ConfigError
    from wconv.train import run

    cfg = compose_train(["search=direct_l", *args, "logger=none"])
    with pytest.raises(ConfigError, match=message):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_worker_settings_do_not_change_what_a_run_computes():
    """A search may be resumed with other workers: its records are checked point by point as they are replayed."""
    from conftest import compose_train

    from wconv.tracking.identity import run_fingerprint

    serial = run_fingerprint(compose_train(["search=direct_l"]))
    assert serial == run_fingerprint(compose_train(["search=direct_l", "search.workers=4", "search.launcher=submitit"]))
    assert serial != run_fingerprint(compose_train(["search=direct_l", "search.bounds=[[0.6,1.4]]"]))


@pytest.mark.slow
def test_with_wandb_the_workers_evaluations_are_the_serial_searchs_runs(tmp_path, tiny):
    """Every evaluation a worker trains logs to W&B as the serial search's would: id <fingerprint>-eval-NNN, the run
    directory as group, the run's tags as a list (the workers once built their tracker with an older signature)."""
    from wandb_records import of_kind, read_records

    args = [*SEARCH, *tiny, "search.max_evals=3", "train.epochs=1", "final.baseline=false", "logger=wandb"]
    runs = {}
    for workers in (1, 2):
        run_dir = tmp_path / f"workers{workers}"
        proc = run_cli([*args, f"search.workers={workers}", f"hydra.run.dir={run_dir}"],
                       env={"WANDB_MODE": "offline", "WANDB_API_KEY": ""})  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        record = read_json(run_dir / "run.json")
        key = f"{record['fingerprint']}-{record['wandb_key']}"
        found = {}
        for folder in (run_dir / "wandb").glob("offline-run-*"):
            (run,) = of_kind(read_records(next(folder.glob("*.wandb"))), "run")
            found[run.run_id.removeprefix(f"{key}-")] = (run.run_group, list(run.tags), run.job_type)
        runs[workers] = found
        assert {f"eval-{i:03d}" for i in range(3)} <= set(found), sorted(found)
        assert {group for group, _, _ in found.values()} == {run_dir.name}  # the summary run's group too
    evaluations = {name for name in runs[1] if name.startswith("eval-")}
    assert evaluations == {name for name in runs[2] if name.startswith("eval-")} and "summary" in runs[2]
    for name, (_, tags, job_type) in runs[2].items():
        if name not in runs[1]:  # a final training the serial search took from its best evaluation
            assert name.startswith("final-") and tags == runs[1]["summary"][1]
            continue
        assert tags == runs[1][name][1] == ["smoke", "classification", "vgg11", "digits", "direct_l"]
        assert job_type == runs[1][name][2]


@pytest.mark.slow
def test_two_workers_train_the_final_seeds_two_at_a_time_and_a_resume_repeats_none(tmp_path, tiny):
    """The final trainings of a run with workers go to the same workers, as many at a time as there are, recorded as
    they finish: their records overlap in time; killed midway, the resume trains only what was not recorded."""
    from datetime import datetime

    args = [*SEARCH, *tiny, "search.max_evals=2", "search.workers=2", "final.seeds=[0,1]", "train.epochs=3",
            "final.arms=[preconditioned]", f"hydra.run.dir={tmp_path}"]  # fmt: skip
    proc = start_cli(args)
    while len(list((tmp_path / "trainings").glob("*.json"))) < 3:  # three of the six final trainings
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no checkpoint, no record; its workers see their parent gone and end
    proc.wait()
    time.sleep(1.0)
    before = {p.name: p.read_text() for p in (tmp_path / "trainings").glob("*.json")}
    resumed = run_cli(args[:-1] + [f"hydra.run.dir={tmp_path}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = {p.name: p.read_text() for p in (tmp_path / "trainings").glob("*.json")}
    assert len(after) == 6 and all(after[name] == text for name, text in before.items())  # none trained again
    spans = []
    for text in after.values():
        record = json.loads(text)
        start = datetime.fromisoformat(record["started"]).timestamp()
        spans.append((start, start + record["seconds"]))
    spans.sort()
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))  # two trainings ran at the same time


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker processes through /proc")
def test_sigterm_with_two_workers_checkpoints_their_trainings_and_the_resume_repeats_nothing(tmp_path, tiny, serial):
    """A job's end (SIGTERM to the search process alone, as ``kill`` does): the workers' trainings checkpoint where
    they are, none is recorded as a failed evaluation, and the resume finishes the serial search's points."""
    args = [*SEARCH, *tiny, "search.workers=2", f"hydra.run.dir={tmp_path}"]
    proc = start_cli(args, capture=True)
    metrics = tmp_path / "metrics"
    deadline = time.time() + 240  # round 1: both workers train, one has recorded its first epoch of two
    while time.time() < deadline and proc.poll() is None:
        if any(len(read_lines(metrics / f"eval-{i:03d}.csv")) > 1 for i in (1, 2)):
            break
        time.sleep(0.02)
    workers = children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith(("error", "stopped", "interrupted"))]
    assert lines == ["stopped on SIGTERM: the training saved a checkpoint; run the same command to resume"]
    assert "Traceback" not in err, err[-3000:]
    assert workers and not any(alive(pid) for pid in workers), "worker processes outlived the stopped search"
    before = read_jsonl(tmp_path / "evaluations.jsonl")
    assert all(r["status"] == "ok" for r in before)  # a stopped training is no failed evaluation
    recorded = {r["index"] for r in before}
    started = {int(p.stem.split("-")[1]) for p in metrics.glob("eval-*.csv")}
    stopped = started - recorded
    assert stopped, "the signal came after the trainings had ended: nothing was stopped mid-training"
    for index in stopped:
        assert (tmp_path / "checkpoints" / f"eval-{index:03d}.pt").exists()
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = read_jsonl(tmp_path / "evaluations.jsonl")
    assert rows[: len(before)] == before
    assert_same_search(rows, serial)  # each point once, with the uninterrupted serial search's objectives


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def _submitit_tasks(folder: Path) -> list[int]:
    """The submitit job processes (``submitit.core._submit``) of the run whose jobs live in ``folder`` (Linux /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"submitit.core._submit" in args and any(str(folder).encode() in a for a in args):
            found.append(int(cmdline.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the job processes through /proc")
def test_a_submitit_job_at_its_time_limit_checkpoints_and_the_search_resumes_its_training(tmp_path, tiny):
    """SLURM's time-limit warning (USR2; submitit's local jobs send it too, and count it as the job's end when the
    job asked for 10 minutes): the job's training checkpoints, submitit ends the job without a result, and the search
    submits the point again, which resumes the training and is recorded once. (A preempted job, not near its end,
    goes the same way to the checkpoint, then submitit requeues it itself.)"""
    submitit = ["search.launcher=submitit", "search.submitit.cluster=local", "search.submitit.timeout_min=10"]
    args = [
        *SEARCH,
        *tiny,
        *submitit,
        "search.max_evals=3",
        "search.workers=2",
        "train.epochs=4",
        f"hydra.run.dir={tmp_path}",
    ]
    proc = start_cli(args, capture=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(read_lines(tmp_path / "metrics" / "eval-000.csv")) > 1:  # the first evaluation's job is training
            break
        time.sleep(0.02)
    (task,) = _submitit_tasks(tmp_path / "submitit")
    os.kill(task, signal.SIGUSR2)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    rows = read_jsonl(tmp_path / "evaluations.jsonl")
    assert sorted(r["index"] for r in rows) == [0, 1, 2] and all(r["status"] == "ok" for r in rows)
    logs = "".join(p.read_text() for p in (tmp_path / "submitit").glob("*_log.*"))
    assert "evaluation 0: stopped on SIGUSR2, its training checkpointed" in logs, logs[-3000:]
    said = logs + out + err
    assert "timed out (search.submitit.timeout_min); training again" in said, said[-3000:]
