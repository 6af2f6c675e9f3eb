"""DIRECT-L driver: determinism, replay from the record, mismatch refusal, the divergence penalty."""

import json
import math

import pytest

from wconv.search import Evaluation, RecordMismatch, check_bounds, direct_l
from wconv.tracking.records import read_jsonl


def bowl(calls):
    def evaluate(index, den):
        calls.append(den)
        return Evaluation(sum((d - 0.8) ** 2 for d in den) + 1.0)

    return evaluate


def test_finds_the_minimum_of_a_bowl_and_records_every_evaluation(tmp_path):
    calls = []
    best = direct_l(bowl(calls), [[0.05, 1.0], [0.5, 1.5]], 40, tmp_path / "ev.jsonl", penalty=1e3)
    rows = read_jsonl(tmp_path / "ev.jsonl")
    assert len(rows) == len(calls) == best["evaluations"] == 40
    assert rows[0]["den"] == pytest.approx([0.525, 1.0])  # DIRECT starts at the box centre
    assert best["den"] == pytest.approx([0.8, 0.8], abs=0.05)
    assert best["objective"] == min(r["objective"] for r in rows)
    assert {"index", "den", "objective", "status", "metrics", "seconds"} <= set(rows[0])


def test_same_search_twice_gives_the_same_sequence(tmp_path):
    a, b = [], []
    direct_l(bowl(a), [[0.5, 1.5]], 8, tmp_path / "a.jsonl", penalty=1e3)
    direct_l(bowl(b), [[0.5, 1.5]], 8, tmp_path / "b.jsonl", penalty=1e3)
    assert a == b


def test_interrupted_search_replays_and_repeats_no_evaluation(tmp_path):
    record = tmp_path / "ev.jsonl"
    first = []

    def dies_at_five(index, den):
        if index == 5:
            raise KeyboardInterrupt
        return bowl(first)(index, den)

    with pytest.raises(KeyboardInterrupt):
        direct_l(dies_at_five, [[0.5, 1.5]], 10, record, penalty=1e3)
    assert len(read_jsonl(record)) == 5
    with open(record, "ab") as f:  # a torn last line, as a killed writer leaves it
        f.write(b'{"index": 5, "den": [0.')
    second = []
    best = direct_l(bowl(second), [[0.5, 1.5]], 10, record, penalty=1e3)
    full = []
    reference = direct_l(bowl(full), [[0.5, 1.5]], 10, tmp_path / "ref.jsonl", penalty=1e3)
    assert first + second == full  # nothing evaluated twice
    assert len(second) == 5
    assert best == reference
    assert [r["index"] for r in read_jsonl(record)] == list(range(10))


def test_a_record_of_another_search_is_refused(tmp_path):
    record = tmp_path / "ev.jsonl"
    direct_l(bowl([]), [[0.5, 1.5]], 4, record, penalty=1e3)
    before = record.read_bytes()
    with pytest.raises(RecordMismatch, match="evaluation 0 was recorded at den=.*another search"):
        direct_l(bowl([]), [[0.2, 1.0]], 4, record, penalty=1e3)
    assert record.read_bytes() == before


def test_divergence_gets_the_finite_penalty_and_the_search_goes_on(tmp_path):
    def sometimes_nan(index, den):
        if den[0] > 1.2:
            return Evaluation(float("nan"), "diverged")
        return Evaluation((den[0] - 0.8) ** 2)

    best = direct_l(sometimes_nan, [[0.5, 1.5]], 9, tmp_path / "ev.jsonl", penalty=1e3)
    rows = read_jsonl(tmp_path / "ev.jsonl")
    diverged = [r for r in rows if r["status"] == "diverged"]
    assert diverged and all(r["objective"] == 1e3 for r in diverged)
    assert all(math.isfinite(r["objective"]) for r in rows)
    assert best["den"][0] <= 1.2
    json.loads((tmp_path / "ev.jsonl").read_text().splitlines()[0])  # strict JSON


@pytest.mark.parametrize(
    "bounds, message",
    [
        ([[1.5, 0.5]], r"need 0 < low < high"),
        ([[0.0, 1.0]], r"need 0 < low < high"),
        ([[0.5, 1.5], [0.5, 1.5]], r"has 2 pair\(s\), the kernel needs 1"),
        ([[0.5]], r"must be a \[low, high\] pair"),
    ],
)
def test_bad_bounds(bounds, message):
    with pytest.raises(ValueError, match=message):
        check_bounds(bounds, 1)


def test_budget_below_one(tmp_path):
    with pytest.raises(ValueError, match="max_evals must be at least 1"):
        direct_l(bowl([]), [[0.5, 1.5]], 0, tmp_path / "ev.jsonl", penalty=1e3)
