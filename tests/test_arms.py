"""The controls (wconv.variants): the preconditioned standard conv is the weighted training; arms, budgets and a
search over config keys in a real run."""

import json

import pytest
import torch
from torch import nn

from wconv import variants as arms
from wconv.nn import convert, fold
from wconv.nn.precondition import precondition
from wconv.training import OptimConfig, make_optimizers


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 1), nn.Conv2d(6, 1, 3, padding=1))


def _train(model: nn.Module, optim: OptimConfig, prepare=None, steps: int = 25) -> nn.Module:
    opts, scheds, _ = make_optimizers(model, optim, None, steps_per_epoch=steps, epochs=1)
    if prepare is not None:
        prepare(opts)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(4, 1, 12, 12, generator=g)
        loss = ((model(x) - x.flip(-1)) ** 2).mean()
        opts[0].zero_grad()
        loss.backward()
        opts[0].step()
        scheds[0].step()
    return model


@pytest.mark.parametrize(
    ("optimizer", "changes", "tol"),
    [
        ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-3, "warmup_epochs": 0}, 2e-6),
        ("adam", {"lr": 3e-3}, 2e-6),
    ],
)
def test_preconditioned_standard_conv_trains_as_the_weighted_one(optimizer, changes, tol):
    optim = OptimConfig.load(optimizer, **changes)
    den = [0.4]
    weighted = _train(convert(_net(), den), optim)
    plain, pre = precondition(_net(), den, optimizer)
    assert all(type(m) in (nn.Conv2d, nn.ReLU, nn.Sequential) for m in plain.modules())  # no weighted layer left
    plain = _train(plain, optim, pre.install)
    start = fold(convert(_net(), den))
    for got, want, first in zip(plain.parameters(), fold(weighted).parameters(), start.parameters(), strict=True):
        assert (want - first).abs().max() > 1e-3  # the training moved the weights
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    # without the step scaling the same start trains elsewhere: the scaling is what makes the two equal
    other = _train(precondition(_net(), den, optimizer)[0], optim)
    assert not torch.allclose(other[0].weight, fold(weighted)[0].weight, atol=1e-4)


def _conv_net() -> nn.Module:
    """Convs without bias only: every parameter is a weighted conv's, so a learning rate on the whole model is the
    lr_matched arm's scale on the weighted convs."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(6, 1, 3, padding=1, bias=False)
    )


class _Reparameterised(nn.Module):
    """``conv(x, W * psi)`` for any positive per-tap ``psi`` (centre not 1): a reference written out by hand."""

    def __init__(self, net: nn.Module, psi: torch.Tensor) -> None:
        super().__init__()
        self.net, self.psi = net, psi
        with torch.no_grad():  # W = V / psi: the same function as the standard net at the start
            for m in self._convs():
                m.weight.div_(psi)

    def _convs(self) -> list[nn.Conv2d]:
        return [m for m in self.net if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.net:
            conv = m in self._convs()
            x = nn.functional.conv2d(x, m.weight * self.psi, m.bias, padding=1) if conv else m(x)
        return x

    def folded(self) -> list[torch.Tensor]:
        return [m.weight * self.psi if m in self._convs() else m.weight for m in self.net if hasattr(m, "weight")]


SGD = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-3, "warmup_epochs": 0}


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]


def _arm(name: str, den, optimizer: str, net=_net) -> tuple[nn.Module, object]:
    return arms.ARMS[name].build(net, den, optimizer)


def test_init_only_is_the_standard_training_from_weight_times_phi_and_with_phi_one_the_standard_one():
    optim, den = OptimConfig.load("sgd", **SGD), [0.4]
    model, prepare = _arm("init_only", den, "sgd")
    assert prepare is not None
    reference = fold(convert(_net(), den))  # the weighted start, then plain standard steps
    for got, want in zip(_weights(_train(model, optim, prepare)), _weights(_train(reference, optim)), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    flat, prepare = _arm("init_only", [1.0], "sgd")
    for got, want in zip(_weights(_train(flat, optim, prepare)), _weights(_train(_net(), optim)), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_init_only_and_step_only_together_are_the_preconditioned_arm(optimizer):
    optim, den = OptimConfig.load(optimizer, **(SGD if optimizer == "sgd" else {"lr": 3e-3})), [0.4]
    init, _ = _arm("init_only", den, optimizer)
    _, step_only = precondition(init, den, optimizer, start=False)  # step_only's scaling on init_only's model
    combined = _train(init, optim, step_only.install)
    pre_model, pre = _arm("preconditioned", den, optimizer)
    for got, want in zip(_weights(combined), _weights(_train(pre_model, optim, pre)), strict=True):
        torch.testing.assert_close(got, want, rtol=2e-6, atol=2e-6)


def test_step_only_under_sgd_is_the_weighted_conv_started_at_the_standard_weights():
    optim, den = OptimConfig.load("sgd", **SGD), [0.4]
    phi = convert(_net(), den)[0].phi
    model, prepare = _arm("step_only", den, "sgd")
    reference = _Reparameterised(_net(), phi)
    got, want = _weights(_train(model, optim, prepare)), _train(reference, optim).folded()
    assert (got[0] - _weights(_net())[0]).abs().max() > 1e-3  # it trained
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=2e-6, atol=2e-6)


def test_sgs_under_sgd_is_the_step_shape_of_mean_one_and_lr_matched_its_size():
    optim, den = OptimConfig.load("sgd", **SGD), [0.4]
    phi = convert(_net(), den)[0].phi
    mean_sq = float((phi**2).mean())
    assert mean_sq == pytest.approx(((2 * 0.4**2 + 1) / 3) ** 2)  # mean(phi^2) = mean(alfa^2)^2
    # sgs: a conv reparameterised by psi = phi / sqrt(mean(phi^2)) steps each tap by psi^2 = phi^2 / mean(phi^2)
    model, prepare = _arm("sgs", den, "sgd")
    reference = _Reparameterised(_net(), phi / mean_sq**0.5)
    for g, w in zip(_weights(_train(model, optim, prepare)), _train(reference, optim).folded(), strict=True):
        torch.testing.assert_close(g, w, rtol=2e-6, atol=2e-6)
    # lr_matched: on a net of weighted convs alone, the standard training at lr * mean(phi^2)
    model, prepare = _arm("lr_matched", den, "sgd", net=_conv_net)
    slower = OptimConfig.load(
        "sgd", **{**SGD, "lr": SGD["lr"] * mean_sq, "weight_decay": SGD["weight_decay"] / mean_sq}
    )
    got, want = _weights(_train(model, optim, prepare)), _weights(_train(_conv_net(), slower))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=2e-6, atol=2e-6)


def test_the_sgs_scale_has_mean_one_and_lr_matched_the_mean_scale_under_adam():
    from wconv.nn.precondition import step_scale

    phi = convert(_net(), [0.4])[0].phi
    shape, size = step_scale(phi, "adam", "shape"), step_scale(phi, "adam", "size")
    assert float(shape.mean()) == pytest.approx(1.0) and torch.allclose(shape * size, phi)
    assert torch.allclose(step_scale(phi, "sgd", "shape") * step_scale(phi, "sgd", "size"), phi**2)


def test_plan_adds_arms_and_budgets_and_skips_what_does_not_apply():
    own = [arms.Variant("weighted", "final", [0.5])]
    variants, skipped = arms.plan(own, ["preconditioned", "smaller_kernel"], [0.5, 1, 2], kernel_size=3)
    names = [v.name for v in variants]
    assert names == ["weighted", "preconditioned", "weighted@0.5x", "standard@0.5x", "weighted@2x", "standard@2x"]
    assert skipped[0][0] == "smaller_kernel" and "3x3" in skipped[0][1]
    assert variants[1].den == [0.5] and variants[1].arm == "preconditioned"
    assert [v.epochs(5) for v in variants[2:]] == [2, 2, 10, 10]


def _run(overrides: list[str], run_dir):
    from conftest import compose_train

    from wconv.train import run

    cfg = compose_train(overrides)
    run(cfg, run_dir)
    from wconv.tracking.records import read_json, read_jsonl

    return read_json(run_dir / "result.json"), read_jsonl(run_dir / "evaluations.jsonl")


def test_arms_and_budgets_added_to_a_finished_search_train_only_themselves(tmp_path, tiny):
    base = [*tiny, "search=direct_l", "search.max_evals=3", "final.seeds=[0,1]", "train.epochs=1"]
    first, evals = _run(base, tmp_path)
    assert set(first["variants"]) == {"weighted", "standard"}
    trained = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "trainings").iterdir()}
    result, again = _run([*base, "final.arms=[preconditioned,smaller_kernel]", "final.budgets=[2]"], tmp_path)
    assert again == evals  # the search is replayed, not trained again
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "trainings").iterdir() if p.name in trained} == trained
    assert list(result["variants"]) == ["weighted", "standard", "preconditioned", "weighted@2x", "standard@2x"]
    assert result["variants"]["weighted@2x"]["epochs"] == 2 * first["variants"]["weighted"]["epochs"]
    assert set(result["paired"]) == {"weighted", "preconditioned", "weighted@2x"}
    w, p = result["variants"]["weighted"]["seeds"], result["variants"]["preconditioned"]["seeds"]
    for seed in w:  # SGD: the weighted training (float rounding apart, which a whole run at lr 0.1 amplifies)
        assert p[seed]["loss"] == pytest.approx(w[seed]["loss"], rel=1e-2)

    import pandas as pd

    from wconv.reporting.tables import write_tables

    write_tables(tmp_path, tmp_path / "tables")
    table = pd.read_csv(tmp_path / "tables" / "classification.csv", comment="#")
    assert list(table["conv"]) == ["standard", "direct-L", "preconditioned"]  # budget rows have their own table
    assert table["d_acc1_n"].iloc[1:].tolist() == [2, 2] and table["best"].notna().any()
    budgets = pd.read_csv(tmp_path / "tables" / "budgets.csv", comment="#")
    assert list(zip(budgets["conv"], budgets["budget"], strict=True)) == [
        ("standard", 1.0),
        ("direct-L", 1.0),
        ("standard", 2.0),
        ("direct-L", 2.0),
    ]
    diff = result["paired"]["weighted@2x"]["acc1"]["mean"]
    assert budgets["d_mean"].iloc[3] == pytest.approx(diff) and budgets["epochs"].tolist() == [1, 1, 2, 2]
    moved = budgets["mean"].iloc[2:].to_numpy() - budgets["mean"].iloc[:2].to_numpy()  # 1 -> 2 epochs: one doubling
    assert budgets["per_doubling"].iloc[2:].tolist() == pytest.approx(moved.tolist(), abs=1e-3)  # the CSV rounds
    assert budgets["per_doubling"].iloc[:2].isna().all()

    from wconv.reporting.figures import make_all

    names = {p.name for p in make_all(tmp_path, None, tmp_path / "figures")}
    assert {"controls.png", "gain_vs_budget.png"} <= names


def test_a_budget_trains_the_seeds_budget_seeds_gives_it_and_more_seeds_later_train_only_themselves(tmp_path, tiny):
    # the cpu profile's 3x3 study: 5 seeds at 1x, 16x and 64x, 3 at the other budgets (final.budget_seeds)
    base = [*tiny, "density=fixed", "density.den=[0.6]", "final.seeds=[0,1]", "train.epochs=1", "final.budgets=[2]"]
    first, _ = _run([*base, "final.budget_seeds={2:1}"], tmp_path)
    trained = {p.stem: p.stat().st_mtime_ns for p in (tmp_path / "trainings").iterdir()}
    assert sorted(n for n in trained if "@" in n) == ["final-standard@2x-seed0", "final-weighted@2x-seed0"]
    assert first["budget_seeds"] == {"2": 1}
    assert set(first["variants"]["weighted@2x"]["seeds"]) == {"0"}
    assert set(first["variants"]["weighted"]["seeds"]) == {"0", "1"}
    assert set(first["paired"]["weighted@2x"]["loss"]["per_seed"]) == {"0"}

    import pandas as pd

    from wconv.reporting.tables import write_tables

    write_tables(tmp_path, tmp_path / "tables")  # the change per doubling stands on seed 0, the one both budgets have
    budgets = pd.read_csv(tmp_path / "tables" / "budgets.csv", comment="#").set_index(["conv", "budget"])
    w1, w2 = first["variants"]["weighted"]["seeds"], first["variants"]["weighted@2x"]["seeds"]
    assert budgets.at[("fixed", 2.0), "per_doubling"] == pytest.approx(w2["0"]["acc1"] - w1["0"]["acc1"], abs=1e-3)
    assert budgets.at[("fixed", 1.0), "mean"] != pytest.approx(w1["0"]["acc1"], abs=1e-3)  # two seeds' mean differs

    # a group's standard run recorded before result.json carried each variant's epochs: the table still reads
    older = json.loads((tmp_path / "result.json").read_text())
    del older["variants"]["standard"]["epochs"]
    (tmp_path / "result.json").write_text(json.dumps(older))
    write_tables(tmp_path, tmp_path / "older")
    again = pd.read_csv(tmp_path / "older" / "budgets.csv", comment="#").set_index(["conv", "budget"])
    assert again.at[("standard", 1.0), "epochs"] == 1 and again["per_doubling"].equals(budgets["per_doubling"])

    result, _ = _run(base, tmp_path)  # every seed at every budget now: the missing ones train, nothing else
    kept = {p.stem: p.stat().st_mtime_ns for p in (tmp_path / "trainings").iterdir() if p.stem in trained}
    assert kept == trained and "budget_seeds" not in result
    assert set(result["paired"]["weighted@2x"]["loss"]["per_seed"]) == {"0", "1"}
    assert result["variants"]["weighted@2x"]["seeds"]["0"] == first["variants"]["weighted@2x"]["seeds"]["0"]


def test_with_a_flat_density_every_variant_of_a_seed_is_the_standard_training(tmp_path, tiny):
    # phi = 1: the weighted and preconditioned trainings are the standard one exactly, dropout masks included
    # (VGG's head): they are drawn from (seed, epoch), not from what building each variant's model drew before.
    arm = ["density=fixed", "density.den=[1.0]", "final.arms=[preconditioned]", "final.baseline=true"]
    result, _ = _run([*tiny, *arm, "final.seeds=[0,1]", "train.epochs=1", "optim.lr=0.05"], tmp_path)
    seeds = {name: v["seeds"] for name, v in result["variants"].items()}
    assert set(seeds) == {"weighted", "standard", "preconditioned"}
    assert seeds["weighted"]["0"] != seeds["weighted"]["1"]
    assert seeds["weighted"] == seeds["standard"] == seeds["preconditioned"]


def test_a_search_over_the_learning_rate_trains_the_standard_conv_at_the_best_point(tmp_path, tiny):
    lr = "search.space=[{key:optim.lr,low:0.001,high:0.1,log:true}]"
    overrides = [*tiny, "search=direct_l", "search.max_evals=3", "final.seeds=[0]", "train.epochs=1", lr]
    result, evals = _run(overrides, tmp_path)
    assert [r["den"] for r in evals][0] == pytest.approx([-2.0])  # the centre of [-3, -1]: lr 0.01
    best = min(evals, key=lambda r: r["objective"])
    assert result["density"] == "tuned" and result["best_den"] is None
    assert result["best_point"]["optim.lr"] == pytest.approx(10 ** best["den"][0])
    assert set(result["variants"]) == {"tuned", "standard"} and "tuned" in result["paired"]
    assert len({r["objective"] for r in evals}) == 3  # the learning rate changed the trainings
