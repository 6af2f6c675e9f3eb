"""The papers' four model families, built by name: VGG-BN and ResNet in CIFAR form, DnCNN and NAFNet.

``create`` builds the standard model and, when asked, swaps its convs for weighted twins with ``wconv.nn.convert``:
that single call is the one place deciding which convs get a density, and it keeps the weights, so a standard and
a weighted model built under the same seed start from identical weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from wconv.models import dncnn, nafnet, resnet, vgg
from wconv.nn import convert

MIN_CHANNELS = 4
# Options every model takes; each spec adds its own.
_COMMON_OPTIONS = ("in_channels", "width", "kernel_size", "den", "learn_den", "skip_depthwise", "family")
_MIN_INT = {"in_channels": 1, "num_classes": 1, "depth": 2, "features": 1, "middle_blocks": 0}


def scaled(channels: int, width: float) -> int:
    """The channel count ``channels`` becomes under the width multiplier ``width`` (at least ``MIN_CHANNELS``)."""
    return max(MIN_CHANNELS, round(channels * width))


def _vgg(name: str, width: float, **options: Any) -> nn.Module:
    config = [c if c == vgg.POOL else scaled(c, width) for c in vgg.CONFIGS[name]]
    return vgg.VGG(config, hidden=scaled(vgg.HIDDEN, width), **options)


def _resnet(name: str, width: float, **options: Any) -> nn.Module:
    block, blocks = resnet.CONFIGS[name]
    return resnet.ResNet(block, blocks, channels=scaled(resnet.CHANNELS, width), **options)


def _dncnn(name: str, width: float, features: int = dncnn.FEATURES, **options: Any) -> nn.Module:
    return dncnn.DnCNN(features=scaled(features, width), **options)


def _nafnet(name: str, width: float, **options: Any) -> nn.Module:
    return nafnet.NAFNet(channels=scaled(nafnet.CHANNELS, width), **options)


@dataclass(frozen=True)
class ModelSpec:
    """One model: its name, the task it is for, its builder ``(name, width, **options)`` and its own options."""

    name: str
    task: str
    build: Callable[..., nn.Module]
    options: tuple[str, ...]


_VGG = ("num_classes", "classifier")
_DNCNN = ("depth", "features")
_NAFNET = ("enc_blocks", "middle_blocks", "dec_blocks")
SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        *(ModelSpec(f"vgg{n}", "classification", _vgg, _VGG) for n in (11, 13, 16, 19)),
        *(ModelSpec(f"resnet{n}", "classification", _resnet, ("num_classes",)) for n in (18, 34, 50)),
        ModelSpec("dncnn", "denoising", _dncnn, _DNCNN),
        ModelSpec("nafnet", "denoising", _nafnet, _NAFNET),
    )
}
MODEL_NAMES = tuple(SPECS)


def spec(name: str) -> ModelSpec:
    """The spec of model ``name``; ValueError naming the valid ones otherwise."""
    if name not in SPECS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    return SPECS[name]


def task_of(name: str) -> str:
    """``"classification"`` or ``"denoising"``: what model ``name`` is for."""
    return spec(name).task


def create(name: str, **options: Any) -> nn.Module:
    """Build model ``name`` (one of ``MODEL_NAMES``), in its published form unless options say otherwise.

    Options (keywords):
      - ``num_classes`` (VGG, ResNet; 100), ``classifier`` (VGG; ``"mlp"``: 512-4096-4096-classes with dropout,
        or ``"single"``: one linear layer), ``in_channels`` (3; DnCNN 1: grey, as published),
        ``depth`` (17) and ``features`` (64) for DnCNN, ``enc_blocks`` ((2, 2, 4, 8)), ``middle_blocks`` (12)
        and ``dec_blocks`` ((2, 2, 2, 2)) for NAFNet (base width 32).
      - ``width`` (1.0): multiplies every channel count, hidden layers included (at least ``MIN_CHANNELS``).
      - ``kernel_size`` (3): odd size of every spatial conv (the architectures' 3x3 ones), padding k // 2.
      - ``den`` (None: the standard convolution), ``learn_den`` (False), ``skip_depthwise`` (False): see below;
        ``family`` (``"symmetric"``): the density family (``wconv.nn.density``).

    With ``den`` (one list of (k-1)/2 values, or a mapping kernel size -> list) or ``learn_den``, every conv with
    an odd kernel larger than 1 gets the density: all the kxk convs above (VGG's, the ResNet stem and blocks,
    all of DnCNN, NAFNet's intro, ending and depthwise convs). 1x1 convs (ResNet shortcuts and bottleneck ends,
    NAFNet's pointwise, attention and upsampling convs) and NAFNet's 2x2 downsampling stay standard;
    ``skip_depthwise=True`` also leaves NAFNet's depthwise convs standard.
    """
    model_spec = spec(name)
    valid = sorted(_COMMON_OPTIONS + model_spec.options)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for model {name!r}; valid options: {', '.join(valid)}"
        )
    _check_values(options)
    den = options.pop("den", None)
    learn_den = options.pop("learn_den", False)
    skip_depthwise = options.pop("skip_depthwise", False)
    family = options.pop("family", "symmetric")
    width = options.pop("width", 1.0)
    model = model_spec.build(name, width, **options)
    if den is not None or learn_den:
        model = convert(model, den=den, learn_den=learn_den, skip_depthwise=skip_depthwise, inplace=True, family=family)
    return model


def _is_int(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_values(options: dict[str, Any]) -> None:
    """Reject option values of the wrong kind with a message saying what is expected."""
    expected = {key: f"an integer >= {low}" for key, low in _MIN_INT.items()}
    expected.update(
        width="a positive number",
        kernel_size="an odd integer >= 3",
        learn_den="True or False",
        skip_depthwise="True or False",
        enc_blocks="a list of integers >= 0",
        dec_blocks="a list of integers >= 0",
    )
    for key, value in options.items():
        if key in _MIN_INT:
            ok = _is_int(value, _MIN_INT[key])
        elif key == "width":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        elif key == "kernel_size":
            ok = _is_int(value, 3) and value % 2 == 1
        elif key in ("learn_den", "skip_depthwise"):
            ok = isinstance(value, bool)
        elif key in ("enc_blocks", "dec_blocks"):
            ok = isinstance(value, Sequence) and all(_is_int(n, 0) for n in value)
        else:
            continue
        if not ok:
            raise ValueError(f"option {key} must be {expected[key]}; got {value!r}")


__all__ = ["MIN_CHANNELS", "MODEL_NAMES", "SPECS", "ModelSpec", "create", "scaled", "spec", "task_of"]
