"""Density profiles: parse and check a user's ``den``, build ``phi`` from it.

Convention (the official one): a kernel of odd size k has (k-1)/2 density values, outermost first; the 1-D
profile is ``[den, 1, reversed(den)]`` and the N-D density is the outer product of the per-axis profiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def profile(den: torch.Tensor) -> torch.Tensor:
    """The symmetric 1-D profile ``[den, 1, reversed(den)]`` of one axis."""
    one = torch.ones(1, dtype=den.dtype, device=den.device)
    return torch.cat([den, one, den.flip(0)])


def outer(profiles: Sequence[torch.Tensor]) -> torch.Tensor:
    """Outer product of per-axis profiles: shape ``(k_1, ..., k_n)``."""
    out = profiles[0]
    for p in profiles[1:]:
        out = out.unsqueeze(-1) * p
    return out


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) or (isinstance(x, torch.Tensor) and x.ndim == 0)


def parse_den(den: object, kernel_size: tuple[int, ...], where: str) -> tuple[list[list[float]], bool]:
    """Check ``den`` against ``kernel_size``; return the per-axis values and whether one list serves every axis.

    ``den`` is a sequence of (k-1)/2 positive values (every axis, square kernels) or one such sequence per axis.
    ``where`` names the layer in error messages.
    """
    for k in kernel_size:
        if k % 2 == 0:
            raise ValueError(
                f"{where}: a density needs an odd kernel size, got kernel {_fmt(kernel_size)}; "
                "use den=None for this layer"
            )
    if isinstance(den, torch.Tensor):
        den = den.detach().cpu().tolist()
    if not isinstance(den, Sequence) or isinstance(den, str):
        raise ValueError(f"{where}: den must be a sequence of numbers (or one per axis), got {den!r}")
    values = list(den)
    if all(_is_number(v) for v in values):
        per_axis, shared = [values] * len(kernel_size), True
        if len(set(kernel_size)) > 1:
            raise ValueError(
                f"{where}: kernel {_fmt(kernel_size)} is anisotropic; give one density list per axis, "
                f"with {', '.join(str((k - 1) // 2) for k in kernel_size)} values"
            )
    elif all(isinstance(v, Sequence) and not isinstance(v, str) for v in values):
        if len(values) != len(kernel_size):
            raise ValueError(
                f"{where}: kernel {_fmt(kernel_size)} has {len(kernel_size)} axes, got {len(values)} density lists"
            )
        per_axis, shared = [list(v) for v in values], False
    else:
        raise ValueError(f"{where}: den must be a sequence of numbers (or one per axis), got {den!r}")
    for axis, (vals, k) in enumerate(zip(per_axis, kernel_size, strict=True)):
        need = (k - 1) // 2
        if len(vals) != need:
            on = "" if shared else f" on axis {axis}"
            raise ValueError(
                f"{where}: kernel {_fmt(kernel_size)} needs {need} density value(s){on} "
                f"(outermost first), got {len(vals)}: {vals}"
            )
        for v in vals:
            if not _is_number(v):
                raise ValueError(f"{where}: density values must be numbers, got {v!r}")
            v = float(v)
            if not math.isfinite(v) or v <= 0:
                raise ValueError(
                    f"{where}: density values must be positive and finite, got {v} in {vals} "
                    f"(kernel {_fmt(kernel_size)})"
                )
    return [[float(v) for v in vals] for vals in per_axis], shared


def _fmt(kernel_size: tuple[int, ...]) -> str:
    return "x".join(str(k) for k in kernel_size)
