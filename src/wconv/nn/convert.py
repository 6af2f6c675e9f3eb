"""Swap a model's convolutions for weighted twins (``convert``) and bake the density back in (``fold``).

This is the one place that decides which convs get a density: every ``nn.Conv1d/2d/3d`` whose kernel is odd
and larger than 1 on every axis (1x1 and even kernels such as NAFNet's 2x2 downsampling stay standard), and
optionally not the depthwise ones.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from wconv.nn.density import SYMMETRIC, DensityFamily
from wconv.nn.weighted import WEIGHTED_TWIN, _WeightedConvNd


def eligible(conv: nn.Module, skip_depthwise: bool = False) -> bool:
    """Whether ``conv`` is a standard conv that ``convert`` turns into a weighted one."""
    if type(conv) not in WEIGHTED_TWIN:
        return False
    if any(k % 2 == 0 or k == 1 for k in conv.kernel_size):
        return False
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels
    return not (skip_depthwise and depthwise)


def _den_for(den: object, kernel_size: tuple[int, ...]) -> tuple[bool, object]:
    """(convert this conv?, its den) under ``den``, which may map kernel sizes to densities."""
    if not isinstance(den, Mapping):
        return True, den
    square = len(set(kernel_size)) == 1
    for key in (kernel_size, kernel_size[0] if square else None):
        if key is not None and key in den:
            return True, den[key]
    return False, None


def _same_shape(conv: nn.Module) -> dict:
    """The constructor arguments that rebuild ``conv``'s layer (standard or weighted) with the same geometry."""
    return {
        "in_channels": conv.in_channels,
        "out_channels": conv.out_channels,
        "kernel_size": conv.kernel_size,
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "groups": conv.groups,
        "bias": conv.bias is not None,
        "padding_mode": conv.padding_mode,
        "device": conv.weight.device,
        "dtype": conv.weight.dtype,
    }


def _twin(conv: nn.Module, den: object, learn_den: bool, family: str | DensityFamily) -> nn.Module:
    twin = WEIGHTED_TWIN[type(conv)](**_same_shape(conv), den=den, learn_den=learn_den, family=family)
    with torch.no_grad():
        twin.weight.copy_(conv.weight)
        if conv.bias is not None:
            twin.bias.copy_(conv.bias)
    twin.train(conv.training)
    return twin


def convert(
    model: nn.Module,
    den: object = None,
    learn_den: bool = False,
    skip_depthwise: bool = False,
    inplace: bool = False,
    family: str | DensityFamily = SYMMETRIC,
) -> nn.Module:
    """Return ``model`` with every eligible conv replaced by its weighted twin, weights kept.

    ``den``: None (uniform, the standard convolution; learned from ones if ``learn_den``), one density list
    (applied to every eligible conv, which must then all have the kernel it fits), or a mapping from kernel
    size (``3`` or ``(3, 5)``) to density; kernel sizes absent from the mapping stay standard. ``family`` is the
    density family (``wconv.nn.density``) of every converted conv.
    """
    model = model if inplace else copy.deepcopy(model)
    for name, conv in list(model.named_modules()):
        if not eligible(conv, skip_depthwise):
            continue
        use, conv_den = _den_for(den, conv.kernel_size)
        if not use:
            continue
        try:
            twin = _twin(conv, conv_den, learn_den, family)
        except ValueError as err:
            raise ValueError(f"layer '{name}': {err}") from None
        model = _replace(model, name, twin)
    return model


def fold(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return ``model`` with each weighted conv replaced by a standard one holding ``weight * phi``."""
    model = model if inplace else copy.deepcopy(model)
    for name, conv in list(model.named_modules()):
        if not isinstance(conv, _WeightedConvNd):
            continue
        plain_type = next(t for t, w in WEIGHTED_TWIN.items() if isinstance(conv, w))
        plain = plain_type(**_same_shape(conv))
        with torch.no_grad():
            plain.weight.copy_(conv.effective_weight())
            if conv.bias is not None:
                plain.bias.copy_(conv.bias)
        plain.train(conv.training)
        model = _replace(model, name, plain)
    return model


def densities(model: nn.Module) -> dict[str, object]:
    """The density of every weighted conv, by module name (plain floats, as the constructor takes them)."""
    return {n: m.density_values() for n, m in model.named_modules() if isinstance(m, _WeightedConvNd)}


def _replace(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``name`` inside ``model``; return the (possibly new) root."""
    if not name:
        return new
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model
