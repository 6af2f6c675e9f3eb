"""The one-parameter density families (Gaussian, tent, Hann, exponential): their profiles by formula, 1-D to 3-D,
fixed, learned and searched, and the least-squares fit of a free profile."""

import math

import pytest
import torch
from torch import nn

from wconv.nn import FAMILIES, WeightedConv1d, WeightedConv2d, WeightedConv3d, convert, get_family
from wconv.nn.density import fit

ONE_PARAMETER = ["gaussian", "tent", "hann", "exponential"]
FORMULAS = {  # the definitions, written out independently of the classes
    "gaussian": lambda d, w: math.exp(-(d**2) / (2 * w**2)),
    "tent": lambda d, w: max(0.01, 1 - d / w),
    "hann": lambda d, w: max(0.01, 0.5 * (1 + math.cos(math.pi * d / w)) if d < w else 0.01),
    "exponential": lambda d, w: math.exp(-d / w),
}


@pytest.mark.parametrize("name", ONE_PARAMETER)
@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("w", [0.6, 1.7, 4.0])
def test_profiles_follow_their_formula_along_each_axis(name, k, w):
    family = get_family(name)
    alfa = family.profile(torch.tensor([w], dtype=torch.float64), k)
    c = k // 2
    assert alfa.tolist() == pytest.approx([FORMULAS[name](abs(i - c), w) for i in range(k)], rel=1e-12)
    assert alfa[c] == 1.0 and (alfa > 0).all()


@pytest.mark.parametrize("name", ONE_PARAMETER)
def test_each_family_is_separable_on_every_dimension_and_kernel_size(name):
    torch.manual_seed(0)
    alfa3, alfa5 = (get_family(name).profile(torch.tensor([1.3], dtype=torch.float64), k) for k in (3, 5))
    layer1 = WeightedConv1d(2, 3, 5, den=[1.3], family=name, dtype=torch.float64)
    torch.testing.assert_close(layer1.phi, alfa5)
    layer2 = WeightedConv2d(2, 3, (3, 5), padding=(1, 2), den=[[1.3], [1.3]], family=name, dtype=torch.float64)
    torch.testing.assert_close(layer2.phi, torch.outer(alfa3, alfa5))
    layer3 = WeightedConv3d(2, 3, 3, den=[1.3], family=name, dtype=torch.float64)
    torch.testing.assert_close(layer3.phi, alfa3.view(3, 1, 1) * alfa3.view(1, 3, 1) * alfa3.view(1, 1, 3))
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)  # the forward is the standard conv with weight * phi
    want = nn.functional.conv2d(x, layer2.weight * layer2.phi, layer2.bias, padding=(1, 2))
    torch.testing.assert_close(layer2(x), want)


@pytest.mark.parametrize("name", ONE_PARAMETER)
def test_uniform_is_within_a_thousandth_of_the_standard_conv_and_learning_moves_it(name):
    family = get_family(name)
    for k in (3, 5, 7):
        (w,) = family.uniform(k)
        alfa = family.profile(torch.tensor([w], dtype=torch.float64), k)
        assert alfa.min() == pytest.approx(0.999, abs=1e-9)  # the outermost tap: the closest documented
        low, high = family.default_bounds(k)[0]
        assert 0 < low < high < w
    learned = convert(nn.Sequential(nn.Conv2d(2, 3, 5, padding=2)), learn_den=True, family=name)[0]
    torch.testing.assert_close(learned.phi, torch.ones(5, 5), atol=2e-3, rtol=0)
    learned.den.data.fill_(1.5)
    learned(torch.randn(1, 2, 8, 8)).square().sum().backward()
    assert learned.den.grad.abs().item() > 0


@pytest.mark.parametrize("name", ONE_PARAMETER)
def test_a_family_takes_one_positive_value_per_axis(name):
    with pytest.raises(ValueError, match="needs 1 density value"):
        WeightedConv2d(2, 3, 5, den=[1.0, 2.0], family=name)
    with pytest.raises(ValueError, match="positive"):
        WeightedConv2d(2, 3, 5, den=[-1.0], family=name)
    assert get_family(name).n_values(1) == 0


@pytest.mark.parametrize("name", ONE_PARAMETER)
def test_fit_recovers_a_family_profile_and_reports_a_residual_otherwise(name):
    family = get_family(name)
    for k, w in ((3, 1.8), (5, 2.6), (7, 3.9)):  # widths beyond the radius: tent and Hann above their floor
        alfa = family.profile(torch.tensor([w], dtype=torch.float64), k).tolist()
        values, residual = fit(family, alfa)
        assert values[0] == pytest.approx(w, rel=1e-4) and residual < 1e-6
    _, residual = fit(family, [0.125, 0.575, 0.458, 1, 0.458, 0.575, 0.125])  # not monotone: no family fits it
    assert residual > 0.1
    assert fit(FAMILIES["symmetric"], [0.2, 0.7, 1, 0.7, 0.2]) == ([0.2, 0.7], 0.0)


@pytest.mark.slow
def test_family_searches_and_decomposing_arms_make_their_tables_and_figure(tmp_path, tiny):
    """A free search with the decomposing arms, a Gaussian search and a shorter free search of one study setting:
    the decomposition and families tables, and the overlay figure, come out of their records."""
    import pandas as pd
    from conftest import compose_train

    from wconv.reporting.figures import make_all
    from wconv.reporting.tables import write_tables
    from wconv.train import run

    base = [*tiny, "experiment=density_study", "data=photos", "data.patch_size=16", "data.patches_per_epoch=64"]
    base += ["model.width=0.25", "search.max_evals=3", "final.seeds=[0,1]", "final.budgets=[]", "train.epochs=2"]
    runs = {
        "free": [*base, "final.arms=[init_only,step_only,sgs,lr_matched]"],
        "gaussian": [*base, "density.family=gaussian", "final.baseline=false", "final.arms=[]"],
        "short": [*base, "train.epochs=1", "final.epochs=2", "final.baseline=false", "final.arms=[]"],
    }
    for name, overrides in runs.items():
        run(compose_train(overrides), tmp_path / "runs" / name)
    write_tables(tmp_path / "runs", tmp_path / "tables")
    decomposition = pd.read_csv(tmp_path / "tables" / "decomposition.csv", comment="#")
    assert list(decomposition["conv"]) == ["standard", "direct-L", "init only", "step only", "SGS (step shape)",
                                           "lr-matched (step size)"]  # fmt: skip
    assert decomposition["d_loss_n"].iloc[1:].tolist() == [2] * 5
    families = pd.read_csv(tmp_path / "tables" / "families.csv", comment="#")
    assert list(families["family"]) == ["free", "Gaussian", "free"] and list(families["search"]) == [
        "whole",
        "whole",
        "1/2",
    ]
    assert families["den"].iloc[1].startswith("Gaussian s=") and families["fit_rms"].iloc[0] == 0
    assert families["d_psnr_vs_free_mean"].iloc[0] != families["d_psnr_vs_free_mean"].iloc[0]  # the free row: blank
    assert families["d_psnr_vs_standard_mean"].notna().all() and families["seeds"].tolist() == [2, 2, 2]
    cost = pd.read_csv(tmp_path / "tables" / "compute.csv", comment="#").set_index("run")
    # free: 3 evaluations of 2 epochs; standard seeds 0, 1, weighted seed 1 (seed 0 is the best evaluation), 4 arms
    # x 2 seeds. gaussian: 3 evaluations, weighted seed 1. short: 3 evaluations of 1 epoch, weighted seeds 0 and 1.
    assert cost.loc[["free", "gaussian", "short"], "search_trainings"].tolist() == [3, 3, 3]
    assert cost.loc[["free", "gaussian", "short"], "final_trainings"].tolist() == [11, 1, 2]
    assert cost.loc[["free", "gaussian", "short"], "epochs"].tolist() == [28, 8, 7]
    assert cost.loc["3 runs", "epochs"] == 43
    assert cost.loc["3 runs", "hours"] == pytest.approx(cost["hours"][:3].sum(), rel=1e-4)  # the CSV rounds each
    assert (cost["hours"] > 0).all()
    names = {p.name for p in make_all(tmp_path / "runs", None, tmp_path / "figures")}
    assert "density_families.png" in names
