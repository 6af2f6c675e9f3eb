"""The train entrypoint end to end at smoke scale: search, records, resume, divergence, W&B, bad input."""

import json
import signal
import time
from pathlib import Path

import pytest
from conftest import run_cli, start_cli
from wandb_records import of_kind, read_records

from wconv.tracking.records import read_json, read_jsonl

pytestmark = pytest.mark.slow

SEARCH = ["model=vgg11", "data=digits", "search=direct_l", "search.max_evals=6", "final.seeds=[0]"]


def _objectives(run_dir: Path) -> list[tuple]:
    return [(tuple(r["den"]), r["objective"]) for r in read_jsonl(run_dir / "evaluations.jsonl")]


def test_smoke_search_end_to_end_and_deterministic(tmp_path, tiny):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        proc = run_cli([*SEARCH, *tiny, f"hydra.run.dir={d}"])
        assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_jsonl(a / "evaluations.jsonl")
    assert len(rows) == 6 and [r["index"] for r in rows] == list(range(6))
    assert rows[0]["den"] == pytest.approx([1.0])  # the centre of the default 3x3 box [0.5, 1.5]
    assert all(r["status"] == "ok" and {"loss", "acc1", "acc5"} <= set(r["metrics"]) for r in rows)
    assert _objectives(a) == _objectives(b)  # same command, same sequence and objectives on CPU
    result = read_json(a / "result.json")
    best = min(rows, key=lambda r: r["objective"])
    assert result["best_den"] == best["den"] and result["search"]["evaluations"] == 6
    assert set(result["variants"]) == {"weighted", "standard"}
    weighted = result["variants"]["weighted"]
    assert weighted["den"] == best["den"] and 0 <= weighted["test"]["acc1"]["mean"] <= 100
    assert weighted["seconds_per_step"] > 0
    assert (a / "config.yaml").exists() and (a / "checkpoints" / "final-weighted-seed0.pt").exists()
    assert not list((a / "checkpoints").glob("eval-*.pt"))
    assert "eval 6/6 den=[" in proc.stderr + proc.stdout

    trained = {p.name: p.stat().st_mtime_ns for p in (a / "trainings").iterdir()}
    again = run_cli([*SEARCH, *tiny, f"hydra.run.dir={a}"])  # a finished run returns and trains nothing
    assert again.returncode == 0 and "finished already" in again.stderr + again.stdout
    assert _objectives(a) == _objectives(b)
    assert {p.name: p.stat().st_mtime_ns for p in (a / "trainings").iterdir()} == trained

    before = (a / "evaluations.jsonl").read_bytes()
    other = run_cli([*SEARCH, *tiny, "search.bounds=[[0.2,0.9]]", f"hydra.run.dir={a}"])
    assert other.returncode == 2 and "holds a run of another configuration" in other.stderr
    assert "search.bounds: None -> [[0.2, 0.9]]" in other.stderr
    assert (a / "evaluations.jsonl").read_bytes() == before


def test_killed_search_resumes_without_repeating_evaluations(tmp_path, tiny):
    run_dir, ref_dir = tmp_path / "killed", tmp_path / "ref"
    args = [*SEARCH, "search.max_evals=8", *tiny, f"hydra.run.dir={run_dir}"]
    proc = start_cli(args)
    record = run_dir / "evaluations.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and len(read_jsonl(record)) < 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = read_jsonl(record)
    assert 3 <= len(done_before) < 8, "the search was not interrupted in the middle"
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = read_jsonl(record)
    assert [r["index"] for r in rows] == list(range(8))  # each evaluation recorded once
    assert rows[: len(done_before)] == done_before
    assert run_cli([*SEARCH, "search.max_evals=8", *tiny, f"hydra.run.dir={ref_dir}"]).returncode == 0
    assert _objectives(run_dir) == _objectives(ref_dir)
    assert read_json(run_dir / "result.json")["best_den"] == read_json(ref_dir / "result.json")["best_den"]


def test_interrupted_training_continues_from_its_epoch_checkpoint(tmp_path, tiny):
    run_dir = tmp_path / "run"
    args = [
        "model=vgg11",
        "data=digits",
        "density=fixed",
        "density.den=[0.6]",
        "final.seeds=[0]",
        "final.baseline=false",
        "train.epochs=3",
        "train.checkpoint_minutes=0",  # a checkpoint after every epoch, to kill the run between two
        *tiny,
        f"hydra.run.dir={run_dir}",
    ]
    ref = run_cli([*args[:-1], f"hydra.run.dir={tmp_path / 'ref'}"])
    assert ref.returncode == 0, ref.stderr[-3000:]
    proc = start_cli(args)
    ckpt = run_dir / "checkpoints" / "final-weighted-seed0.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "result.json").exists(), "the training finished before it could be interrupted"
    import torch

    assert torch.load(ckpt, weights_only=False)["epoch"] < 3
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = read_json(run_dir / "trainings" / "final-weighted-seed0.json")
    want = read_json(tmp_path / "ref" / "trainings" / "final-weighted-seed0.json")
    assert got["test"] == pytest.approx(want["test"], rel=1e-5)
    assert [h["train_loss"] for h in got["history"]] == pytest.approx([h["train_loss"] for h in want["history"]])


def test_divergence_is_penalised_and_recorded(tmp_path, tiny):
    run_dir = tmp_path / "div"
    proc = run_cli(
        [
            *SEARCH,
            "search.max_evals=2",
            "optim.lr=10",
            "optim.warmup_epochs=0",
            "final.baseline=false",
            *tiny,
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_jsonl(run_dir / "evaluations.jsonl")
    assert rows and all(r["status"] == "diverged" and r["objective"] == 1000.0 for r in rows)
    result = read_json(run_dir / "result.json")
    assert result["variants"]["weighted"]["diverged"] == 1


def test_wandb_offline_runs_read_back(tmp_path, tiny):
    run_dir = tmp_path / "wb"
    args = [
        "model=vgg11",
        "data=digits",
        "density=fixed",
        "density.den=[0.7]",
        "final.seeds=[0]",
        "train.epochs=1",
        *tiny,
        "logger=wandb",
        f"hydra.run.dir={run_dir}",
    ]
    proc = run_cli(args, env={"WANDB_MODE": "offline", "WANDB_API_KEY": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wandb:" not in proc.stdout + proc.stderr  # a quiet console
    record = read_json(run_dir / "run.json")
    key = f"{record['fingerprint']}-{record['wandb_key']}"  # this folder's: a colleague's run of it gets another
    assert len(record["wandb_key"]) == 8
    console = proc.stdout + proc.stderr
    assert console.count("W&B is offline") == 1 and f"wandb sync {run_dir / 'wandb'}/offline-run-*" in console
    runs = {}
    for folder in sorted((run_dir / "wandb").glob("offline-run-*")):
        records = read_records(next(folder.glob("*.wandb")))
        (run,) = of_kind(records, "run")
        runs[run.run_id] = (run, records)
    names = ["final-weighted-seed0", "final-standard-seed0", "summary"]
    assert sorted(runs) == sorted(f"{key}-{n}" for n in names)  # deterministic ids: a requeue resumes the same run
    for run, _ in runs.values():
        assert run.run_group == "wb" and {"smoke", "classification", "vgg11", "digits", "fixed"} <= set(run.tags)
    weighted, records = runs[f"{key}-final-weighted-seed0"]
    updates = [weighted.config, *of_kind(records, "config")]
    config = {u.key: json.loads(u.value_json) for c in updates for u in c.update}
    assert config["den_0"] == 0.7  # a scalar W&B can put on an axis
    assert any(m.name == "val_loss" and m.summary.min for m in of_kind(records, "metric"))
    steps = [{i.key or "/".join(i.nested_key): i.value_json for i in h.item} for h in of_kind(records, "history")]
    assert any("val_loss" in s and s.get("epoch") == "1" for s in steps)
    summary_run, records = runs[f"{key}-summary"]
    assert summary_run.job_type == "summary"
    summary = {
        u.key or "/".join(u.nested_key): json.loads(u.value_json) for s in of_kind(records, "summary") for u in s.update
    }
    assert summary["best_den_0"] == 0.7 and "weighted/acc1_mean" in summary
    summary_config = {u.key: json.loads(u.value_json) for u in summary_run.config.update}
    assert summary_config["model"]["name"] == "vgg11" and summary_config["optim"]["lr"] > 0  # to group runs on
    (artifact,) = of_kind(records, "artifact")
    files = {e.path for e in artifact.manifest.contents}
    assert artifact.type == "records" and {"result.json", "run.json"} <= files


def _prepare_bad_dir(tmp_path):
    run_dir = tmp_path / "bad"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "result.json").write_text('{"keep": true}')
    return run_dir


def _untouched(run_dir):
    assert json.loads((run_dir / "result.json").read_text()) == {"keep": True}
    # Hydra's own log may be opened (append mode); no record of ours is written
    assert {p.name for p in run_dir.iterdir()} <= {"result.json", "train.log"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["model=vgg11", "density=fixed", "density.den=[0.5,0.5]"], "kernel 3x3 needs 1 density value"),
        (["density=fixed"], "density=fixed needs density.den"),
        (["search=direct_l", "search.bounds=[[1.5,0.5]]"], "need 0 < low < high"),
        (["search=direct_l", "search.bounds=[[-1,0.5]]"], "need 0 < low < high"),
        (["search=direct_l", "search.bounds=[[0.5,1.5],[0.5,1.5]]"], "needs 1 pair(s) (one per density value)"),
        (["search=direct_l", "search.max_evals=0"], "search.max_evals=0: must be greater than or equal to 1"),
        (["train.epochs=0"], "train.epochs=0: must be greater than or equal to 1"),
        (["final.seeds=[]"], "final.seeds=[]: must have at least 1 item"),
        (["model.name=vgg99"], "model.name='vgg99': must be one of vgg11"),
        (["data.name=mnist"], "data.name='mnist': must be one of"),
        (["search=direct_l", "density=learned"], "search=direct_l finds den itself"),
    ],
)
def test_bad_config_is_refused_before_anything_is_written(tmp_path, args, message):
    from conftest import compose_train

    from wconv.train import ConfigError, run

    run_dir = _prepare_bad_dir(tmp_path)
    cfg = compose_train([*args, "logger=none"])
    with pytest.raises(ConfigError) as err:
        run(cfg, run_dir)
    assert message in str(err.value) and "\n" not in str(err.value)
    _untouched(run_dir)


@pytest.mark.parametrize(
    "args, message",
    [
        (["search=direct_l", "search.bounds=[[1.5,0.5]]"], "error: search.bounds[0]=[1.5, 0.5]: need 0 < low < high"),
        (["data=cifar100", "data.root=NOWHERE"], "CIFAR-100 not found under NOWHERE"),
    ],
)
def test_bad_input_on_the_command_line_is_one_line_and_exit_2(tmp_path, args, message):
    run_dir = _prepare_bad_dir(tmp_path)
    args = [a.replace("NOWHERE", str(tmp_path / "nowhere")) for a in args]
    proc = run_cli([*args, "logger=none", "device=cpu", f"hydra.run.dir={run_dir}"], timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message.replace("NOWHERE", str(tmp_path / "nowhere")) in lines[0], proc.stderr
    assert "download" in lines[0] or "bounds" in lines[0]
    _untouched(run_dir)
