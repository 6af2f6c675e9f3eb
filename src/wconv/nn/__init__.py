"""The weighted convolution operator: layers, ``convert`` and ``fold``."""

from wconv.nn.convert import convert, densities, eligible, fold
from wconv.nn.density import FAMILIES, DensityFamily, get_family, outer, profile
from wconv.nn.weighted import WeightedConv1d, WeightedConv2d, WeightedConv3d

__all__ = [
    "FAMILIES",
    "DensityFamily",
    "WeightedConv1d",
    "WeightedConv2d",
    "WeightedConv3d",
    "convert",
    "densities",
    "eligible",
    "fold",
    "get_family",
    "outer",
    "profile",
]
