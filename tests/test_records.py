"""Atomic records: a failed write leaves the old file; torn JSON-lines tails are dropped."""

import pytest
import torch

from wconv.tracking.records import (
    append_jsonl,
    fingerprint,
    load_checkpoint,
    read_json,
    read_jsonl,
    save_checkpoint,
    write_json,
)


def test_write_json_is_atomic(tmp_path):
    path = tmp_path / "result.json"
    write_json(path, {"a": 1, "b": float("nan")})
    assert read_json(path) == {"a": 1, "b": "nan"}

    class Boom:
        pass

    with pytest.raises(TypeError):
        write_json(path, {"a": Boom()})
    assert read_json(path)["a"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left behind


def test_jsonl_drops_and_cuts_a_torn_tail(tmp_path):
    path = tmp_path / "ev.jsonl"
    append_jsonl(path, {"i": 0})
    append_jsonl(path, {"i": 1})
    with open(path, "ab") as f:
        f.write(b'{"i": 2, "den"')
    assert read_jsonl(path) == [{"i": 0}, {"i": 1}]
    append_jsonl(path, {"i": 2})
    assert read_jsonl(path) == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "ck.pt"
    assert load_checkpoint(path) is None
    save_checkpoint(path, {"epoch": 3, "w": torch.arange(4)})
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.arange(4))


def test_fingerprint_is_order_independent_and_sensitive():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_neutral_keys_keep_old_fingerprints_and_other_values_change_them():
    from omegaconf import OmegaConf

    from wconv.tracking.identity import NEUTRAL, run_fingerprint

    old = {"train": {"epochs": 3}, "search": {"name": "direct_l"}, "data": {"name": "x"}, "seed": 0}  # pre val_every
    new = OmegaConf.create(old)
    for key, value in NEUTRAL.items():
        OmegaConf.update(new, key, value, force_add=True)
    assert run_fingerprint(new) == run_fingerprint(OmegaConf.create(old))
    OmegaConf.update(new, "train.val_every", 5)
    assert run_fingerprint(new) != run_fingerprint(OmegaConf.create(old))
