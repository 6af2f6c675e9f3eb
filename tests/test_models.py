"""The model zoo: builds, runs, gets the density where it should, and matches the published architectures."""

import pytest
import torch
from torch import nn

from wconv.models import MODEL_NAMES, create, task_of
from wconv.nn import WeightedConv2d

CLASSIFIERS = [n for n in MODEL_NAMES if task_of(n) == "classification"]
DENOISERS = [n for n in MODEL_NAMES if task_of(n) == "denoising"]
TINY = {"width": 1 / 16}
# Published parameter counts (pytorch-cifar100 README for 100 classes; DnCNN-S grey; NAFNet-width32 SIDD, colour)
# and the exact counts of this implementation, pinned so that any change to an architecture shows up here.
PARAMS = {
    "vgg11": (28.5e6, 28_518_244),
    "vgg13": (28.7e6, 28_703_140),
    "vgg16": (34.0e6, 34_015_396),
    "vgg19": (39.0e6, 39_327_652),
    "resnet18": (11.2e6, 11_220_132),
    "resnet34": (21.3e6, 21_328_292),
    "resnet50": (23.7e6, 23_705_252),
    "dncnn": (0.556e6, 557_057),
    "nafnet": (29.1e6, 29_159_715),
}
# Convs with an odd kernel > 1 at default depth: VGG's convs; ResNet stem + 2 (basic) or 1 (bottleneck) per block;
# DnCNN's 17; NAFNet intro + ending + one depthwise per block (2+2+4+8 + 12 + 2+2+2+2 = 36).
WEIGHTED = {
    "vgg11": 8,
    "vgg13": 10,
    "vgg16": 13,
    "vgg19": 16,
    "resnet18": 17,
    "resnet34": 33,
    "resnet50": 17,
    "dncnn": 17,
    "nafnet": 38,
}
DENS = {3: [0.5], 5: [0.3, 1.5], 7: [0.06, 1.2, 1.6]}


def _input(name, size=None, batch=2):
    torch.manual_seed(1)
    if task_of(name) == "classification":
        return torch.randn(batch, 3, 32, 32)
    channels = 1 if name == "dncnn" else 3
    return torch.randn(batch, channels, size or 16, size or 16)


def _tiny(name, seed=0, **options):
    torch.manual_seed(seed)
    options = {**TINY, **options}
    if name == "nafnet":
        options.setdefault("enc_blocks", [1, 1])
        options.setdefault("middle_blocks", 1)
        options.setdefault("dec_blocks", [1, 1])
    if name == "dncnn":
        options.setdefault("depth", 5)
    if name in CLASSIFIERS:
        options.setdefault("num_classes", 10)
    return create(name, **options)


def _weighted_convs(model):
    return [m for m in model.modules() if isinstance(m, WeightedConv2d)]


def test_names_and_tasks():
    assert isinstance(MODEL_NAMES, tuple) and len(MODEL_NAMES) == 9
    assert {task_of(n) for n in CLASSIFIERS} == {"classification"} and len(CLASSIFIERS) == 7
    assert DENOISERS == ["dncnn", "nafnet"]


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("variant", [{}, {"den": [0.5]}, {"learn_den": True}, {"den": {3: [0.7]}, "learn_den": True}])
def test_forward_backward(name, variant):
    model = _tiny(name, **variant)
    x = _input(name)
    out = model(x)
    expected = (2, 10) if name in CLASSIFIERS else x.shape
    assert out.shape == expected
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    weighted = _weighted_convs(model)
    assert bool(weighted) == bool(variant)
    if variant.get("learn_den"):
        assert all(isinstance(m.den, nn.Parameter) and m.den.grad is not None for m in weighted)
        # NAFNet's blocks start as the identity (beta = gamma = 0), so only its intro and ending learn at step 0.
        assert any(m.den.grad.abs().sum() > 0 for m in weighted)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_same_initial_weights(name):
    standard = _tiny(name).state_dict()
    for options in ({"den": [0.5]}, {"learn_den": True}, {"den": [0.5], "skip_depthwise": True}):
        weighted = _tiny(name, **options).state_dict()
        assert set(standard) <= set(weighted)
        assert all(torch.equal(standard[k], weighted[k]) for k in standard)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_uniform_density_is_the_standard_model(name):
    standard, uniform = _tiny(name).eval(), _tiny(name, seed=1, den=[1.0]).eval()
    uniform.load_state_dict(standard.state_dict())
    x = _input(name)
    with torch.no_grad():
        torch.testing.assert_close(uniform(x), standard(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("kernel_size", [5, 7])
def test_kernel_size(name, kernel_size):
    model = _tiny(name, kernel_size=kernel_size, den=DENS[kernel_size])
    weighted = _weighted_convs(model)
    assert weighted and all(m.kernel_size == (kernel_size, kernel_size) for m in weighted)
    assert all(m.padding == (kernel_size // 2,) * 2 for m in weighted)
    assert all(m.kernel_size in ((1, 1), (2, 2)) for m in model.modules() if type(m) is nn.Conv2d)
    x = _input(name)
    out = model(x)
    assert out.shape == ((2, 10) if name in CLASSIFIERS else x.shape)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_which_convs_get_the_density(name):
    options = {"enc_blocks": [2, 2, 4, 8], "middle_blocks": 12, "dec_blocks": [2, 2, 2, 2]} if name == "nafnet" else {}
    options |= {"depth": 17} if name == "dncnn" else {}
    model = _tiny(name, den=[0.5], **options)
    assert len(_weighted_convs(model)) == WEIGHTED[name]
    skipped = _tiny(name, den=[0.5], skip_depthwise=True, **options)
    assert len(_weighted_convs(skipped)) == (2 if name == "nafnet" else WEIGHTED[name])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_counts(name):
    published, pinned = PARAMS[name]
    with torch.device("meta"):  # shapes only: no memory, no init cost
        count = sum(p.numel() for p in create(name).parameters())
        weighted = sum(p.numel() for p in create(name, den=[0.5]).parameters())
    assert count == pinned and abs(count / published - 1) < 0.01
    assert weighted == count


def test_dncnn_returns_the_denoised_image():
    model = _tiny("dncnn").eval()
    last = model.model[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    x = _input("dncnn")
    torch.testing.assert_close(model(x), x, rtol=0, atol=0)


def test_dncnn_uses_kair_parameter_names():
    names = set(create("dncnn", width=1 / 16).state_dict())
    assert {"model.0.weight", "model.0.bias", "model.3.running_var", "model.47.weight", "model.47.bias"} <= names
    assert "model.48.weight" not in names


@pytest.mark.parametrize("size", [(19, 21), (16, 5)])
def test_nafnet_pads_and_crops_any_size(size):
    model = _tiny("nafnet", enc_blocks=[1, 1, 1, 1], dec_blocks=[1, 1, 1, 1]).eval()
    x = torch.randn(1, 3, *size)
    assert model(x).shape == x.shape
    nn.init.zeros_(model.ending.weight)
    nn.init.zeros_(model.ending.bias)
    torch.testing.assert_close(model(x), x, rtol=0, atol=0)  # global residual


def test_vgg_single_linear_classifier():
    model = _tiny("vgg11", classifier="single")
    assert isinstance(model.classifier, nn.Linear)
    assert model(_input("vgg11")).shape == (2, 10)


def test_width_scales_every_layer():
    model = create("vgg16", width=1 / 8)
    assert model.classifier[0].weight.shape == (512, 64)
    assert create("nafnet", width=1 / 8).intro.out_channels == 4
    assert create("resnet18", width=1 / 32).conv1[0].out_channels == 4  # the minimum


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("vgg17", {}, "valid names: vgg11, vgg13, vgg16, vgg19, resnet18, resnet34, resnet50, dncnn, nafnet"),
        (
            "vgg16",
            {"depth": 3},
            "valid options: classifier, den, family, in_channels, kernel_size, learn_den, num_classes",
        ),
        ("dncnn", {"num_classes": 10}, "valid options: den, depth, family, features, in_channels"),
        ("vgg16", {"classifier": "big"}, "classifier must be one of mlp, single"),
        ("resnet18", {"kernel_size": 4}, "kernel_size must be an odd integer >= 3"),
        ("resnet18", {"width": 0}, "width must be a positive number"),
        ("dncnn", {"depth": 1}, "depth must be an integer >= 2"),
        ("nafnet", {"enc_blocks": [1, 1], "dec_blocks": [1]}, "the same number"),
        ("nafnet", {"enc_blocks": "ab"}, "enc_blocks must be a list of integers >= 0"),
        ("dncnn", {"den": [0.5, 0.5]}, "needs 1 density value"),
    ],
)
def test_bad_names_and_options(name, options, message):
    with pytest.raises(ValueError, match=message):
        create(name, **options)
    if name not in MODEL_NAMES:
        with pytest.raises(ValueError, match="valid names"):
            task_of(name)
