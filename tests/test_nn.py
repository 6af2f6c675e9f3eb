"""The weighted convolution operator against the standard layer and an independent reference."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wconv.nn import FAMILIES, DensityFamily, WeightedConv1d, WeightedConv2d, WeightedConv3d, convert, fold, get_family

STANDARD = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
WEIGHTED = {1: WeightedConv1d, 2: WeightedConv2d, 3: WeightedConv3d}
MODES = ["zeros", "reflect", "replicate", "circular"]


def _pair(dims, den=None, learn_den=False, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    std = STANDARD[dims](4, 6, 3, dtype=dtype, **kw)
    wgt = WEIGHTED[dims](4, 6, 3, dtype=dtype, den=den, learn_den=learn_den, **kw)
    wgt.load_state_dict(std.state_dict())
    return std, wgt


def _input(dims, size=9, dtype=torch.float64):
    return torch.randn(2, 4, *([size] * dims), dtype=dtype)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("den", [None, [1.0]])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"stride": 2},
        {"dilation": 2, "padding": 2},
        {"groups": 2, "padding": 1},
        {"padding": "same"},
        {"bias": False, "padding": 1},
    ]
    + [{"padding": 1, "padding_mode": m} for m in MODES],
)
def test_uniform_density_is_the_standard_layer(dims, den, options):
    std, wgt = _pair(dims, den=den, **options)
    x = _input(dims)
    torch.testing.assert_close(wgt(x), std(x), rtol=0, atol=1e-12)


def reference_conv2d(x, weight, bias, per_axis_den, padding):
    """Explicit sum over kernel offsets, phi built by hand: out = sum_{i,j} phi_ij W[:, :, i, j] x(shifted)."""
    alfa = [list(d) + [1.0] + list(reversed(d)) for d in per_axis_den]
    kh, kw = weight.shape[-2:]
    x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    h_out, w_out = x.shape[-2] - kh + 1, x.shape[-1] - kw + 1
    out = torch.zeros(x.shape[0], weight.shape[0], h_out, w_out, dtype=x.dtype)
    for i, j in itertools.product(range(kh), range(kw)):
        patch = x[:, :, i : i + h_out, j : j + w_out]
        out += alfa[0][i] * alfa[1][j] * torch.einsum("oc,nchw->nohw", weight[:, :, i, j], patch)
    return out + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize(
    "kernel, den",
    [
        ((3, 3), [0.7]),
        ((5, 5), [0.3, 1.5]),
        ((7, 7), [0.06, 1.2, 1.6]),
        ((3, 5), [[0.5], [0.2, 0.8]]),
        ((7, 3), [[0.25, 0.15, 0.55], [1.3]]),
    ],
)
def test_random_density_matches_explicit_sum(kernel, den):
    torch.manual_seed(1)
    padding = (kernel[0] // 2, kernel[1] // 2)
    layer = WeightedConv2d(3, 5, kernel, padding=padding, den=den, dtype=torch.float64)
    x = torch.randn(2, 3, 11, 10, dtype=torch.float64)
    per_axis = den if isinstance(den[0], list) else [den, den]
    expected = reference_conv2d(x, layer.weight, layer.bias, per_axis, padding)
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)


def test_random_density_matches_unfold_reference_1d_and_3d():
    torch.manual_seed(2)
    den = torch.rand(2).add(0.1).tolist()
    alfa = torch.tensor(den + [1.0] + den[::-1], dtype=torch.float64)
    layer1 = WeightedConv1d(3, 4, 5, den=den, dtype=torch.float64)
    x1 = torch.randn(2, 3, 12, dtype=torch.float64)
    cols = x1.unfold(-1, 5, 1)  # (n, c, l, k)
    expected1 = torch.einsum("nclk,ock->nol", cols, layer1.weight * alfa) + layer1.bias.view(1, -1, 1)
    torch.testing.assert_close(layer1(x1), expected1, rtol=1e-12, atol=1e-12)

    layer3 = WeightedConv3d(2, 3, 3, den=[0.4], dtype=torch.float64)
    x3 = torch.randn(1, 2, 5, 6, 7, dtype=torch.float64)
    a = torch.tensor([0.4, 1.0, 0.4], dtype=torch.float64)
    cols3 = x3.unfold(2, 3, 1).unfold(3, 3, 1).unfold(4, 3, 1)  # (n, c, d, h, w, i, j, k)
    phi3 = a.view(3, 1, 1) * a.view(1, 3, 1) * a.view(1, 1, 3)
    expected3 = torch.einsum("ncdhwijk,ocijk->nodhw", cols3, layer3.weight * phi3)
    expected3 = expected3 + layer3.bias.view(1, -1, 1, 1, 1)
    torch.testing.assert_close(layer3(x3), expected3, rtol=1e-12, atol=1e-12)


def test_phi_is_the_outer_product_of_profiles():
    layer = WeightedConv2d(1, 1, (3, 5), den=[[0.5], [0.2, 0.8]])
    expected = torch.outer(torch.tensor([0.5, 1, 0.5]), torch.tensor([0.2, 0.8, 1, 0.8, 0.2]))
    torch.testing.assert_close(layer.phi, expected)
    assert WeightedConv2d(1, 1, 3).phi is None


def test_learned_den_gets_gradients_and_fixed_den_does_not():
    learned = WeightedConv2d(2, 3, 5, padding=2, den=[0.3, 0.9], learn_den=True)
    fixed = WeightedConv2d(2, 3, 5, padding=2, den=[0.3, 0.9])
    x = torch.randn(1, 2, 8, 8)
    learned(x).square().sum().backward()
    fixed(x).square().sum().backward()
    assert isinstance(learned.den, nn.Parameter)
    assert learned.den.grad is not None and learned.den.grad.abs().sum() > 0
    assert "den" not in dict(fixed.named_parameters())
    assert not fixed.den.requires_grad and fixed.den.grad is None
    assert "den" in fixed.state_dict()


def test_learned_den_starts_uniform_when_none():
    layer = WeightedConv2d(2, 3, 3, den=None, learn_den=True)
    assert layer.den.tolist() == [1.0]
    torch.testing.assert_close(layer.phi, torch.ones(3, 3))


def test_state_dict_round_trip_and_standard_checkpoint_loads():
    src = WeightedConv2d(2, 3, 3, den=[0.6], learn_den=True)
    with torch.no_grad():
        src.den.fill_(0.42)
    dst = WeightedConv2d(2, 3, 3, den=[1.0], learn_den=True)
    dst.load_state_dict(src.state_dict())
    assert dst.den.tolist() == pytest.approx([0.42])
    x = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(dst(x), src(x))

    fixed = WeightedConv2d(2, 3, 3, den=[0.5])
    fixed.load_state_dict(WeightedConv2d(2, 3, 3, den=[0.9]).state_dict())
    torch.testing.assert_close(fixed.phi, torch.outer(*[torch.tensor([0.9, 1, 0.9])] * 2))

    std = nn.Conv2d(2, 3, 3)
    fixed.load_state_dict(std.state_dict())  # strict: the density stays as built
    torch.testing.assert_close(fixed.weight, std.weight)


def _tiny_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Conv2d(8, 8, 1),
        nn.Conv2d(8, 8, 2, stride=2),
        nn.Conv2d(8, 4, 5, padding=2),
    )


def test_convert_uniform_keeps_outputs_and_swaps_eligible_convs():
    torch.manual_seed(0)
    net = _tiny_net().double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    converted = convert(net, den=None)
    torch.testing.assert_close(converted(x), net(x), rtol=0, atol=0)
    kinds = [type(m).__name__ for m in converted]
    assert kinds == ["WeightedConv2d", "ReLU", "WeightedConv2d", "Conv2d", "Conv2d", "WeightedConv2d"]
    assert type(net[0]) is nn.Conv2d  # not in place by default

    skipped = convert(net, den={3: [1.0]}, skip_depthwise=True)
    assert [type(m).__name__ for m in skipped][:3] == ["WeightedConv2d", "ReLU", "Conv2d"]
    assert type(skipped[5]) is nn.Conv2d  # 5x5 absent from the mapping


def test_convert_with_mapping_then_fold_keeps_outputs():
    torch.manual_seed(0)
    net = _tiny_net().double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    weighted = convert(net, den={3: [0.5], 5: [0.2, 0.8]})
    assert weighted[5].density_values() == [0.2, 0.8]
    assert not torch.allclose(weighted(x), net(x))
    folded = fold(weighted)
    assert all(type(m) in (nn.Conv2d, nn.ReLU) for m in folded)
    torch.testing.assert_close(folded(x), weighted(x), rtol=1e-12, atol=1e-12)


def test_convert_single_list_on_mixed_kernels_names_the_layer():
    with pytest.raises(ValueError, match=r"layer '5'.*kernel 5x5 needs 2 density value"):
        convert(_tiny_net(), den=[0.5])


@pytest.mark.parametrize(
    "kernel, den, message",
    [
        (3, [0.5, 0.5], r"WeightedConv2d\(2->3, kernel 3x3\): kernel 3x3 needs 1 density value"),
        (5, [0.5], r"kernel 5x5 needs 2 density value"),
        (4, [0.5], r"kernel 4x4.*odd kernel size"),
        (3, [0.0], r"positive and finite, got 0.0"),
        (3, [-1.0], r"positive and finite, got -1.0"),
        (3, [float("nan")], r"positive and finite, got nan"),
        (3, [float("inf")], r"positive and finite, got inf"),
        ((3, 5), [0.5], r"kernel 3x5 is anisotropic; give one density list per axis, with 1, 2 values"),
        ((3, 5), [[0.5], [0.5]], r"kernel 3x5 needs 2 density value\(s\) on axis 1"),
        (3, [[0.5]], r"kernel 3x3 has 2 axes, got 1 density lists"),
        (3, "abc", r"den must be a sequence of numbers"),
    ],
)
def test_bad_density_raises_a_helpful_error(kernel, den, message):
    with pytest.raises(ValueError, match=message):
        WeightedConv2d(2, 3, kernel, den=den)


def test_fold_costs_the_standard_layer():
    folded = fold(nn.Sequential(WeightedConv2d(2, 3, 3, den=[0.5])))
    assert type(folded[0]) is nn.Conv2d
    assert set(folded.state_dict()) == {"0.weight", "0.bias"}


class _Gaussian(DensityFamily):
    """A one-parameter family for the test: alfa_i = exp(-(i - c)^2 / (2 s^2)) with s the value."""

    name = "gaussian_test"

    def n_values(self, k):
        return 1

    def profile(self, values, k):
        offsets = torch.arange(k, dtype=values.dtype, device=values.device) - k // 2
        return torch.exp(-(offsets**2) / (2 * values[0] ** 2))

    def uniform(self, k):
        return [1e6]

    def default_bounds(self, k):
        return [[0.3, 3.0]]


def test_a_new_density_family_is_one_class_fixed_or_learned(monkeypatch):
    monkeypatch.setitem(FAMILIES, "gaussian_test", _Gaussian())
    fixed = WeightedConv2d(2, 3, 5, padding=2, den=[1.0], family="gaussian_test")
    alfa = torch.exp(-((torch.arange(5.0) - 2) ** 2) / 2)
    torch.testing.assert_close(fixed.phi, torch.outer(alfa, alfa))
    with pytest.raises(ValueError, match="needs 1 density value"):
        WeightedConv2d(2, 3, 5, den=[1.0, 2.0], family="gaussian_test")
    learned = convert(nn.Sequential(nn.Conv2d(2, 3, 5, padding=2)), learn_den=True, family="gaussian_test")[0]
    torch.testing.assert_close(learned.phi, torch.ones(5, 5), atol=1e-5, rtol=0)  # starts at the standard conv
    learned.den.data.fill_(1.0)
    learned(torch.randn(1, 2, 8, 8)).square().sum().backward()
    assert learned.den.grad is not None and learned.den.grad.abs().item() > 0
    assert get_family("gaussian_test").phi([[1.0], [1.0]], [5, 5]).shape == (5, 5)
