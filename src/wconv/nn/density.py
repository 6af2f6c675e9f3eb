"""Density families: how a kernel axis's 1-D profile is parameterised, and ``phi`` built from it.

A family says how many values a kernel of size k takes, the profile they give, the values that give the
standard convolution (a learned density starts there) and the default search bounds. The papers' family,
``symmetric``, is the official convention: (k-1)/2 values, outermost first, profile ``[den, 1, reversed(den)]``.
A new family is one subclass here, registered in ``FAMILIES``, and one line ``density.family`` in the config;
the layer, the search and the figures ask the family (``get_family``).
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


class DensityFamily:
    """A parameterisation of one kernel axis's profile by a few positive values."""

    name: str
    label: str  # how tables and figures name it

    def describe(self, values: Sequence[float]) -> str:
        """A density of this family as a reader sees it, e.g. ``Gaussian s=0.873``."""
        return f"{self.label} [{', '.join(f'{float(v):.3g}' for v in values)}]"

    def value_name(self, i: int, n: int) -> str:
        """The name of value ``i`` of ``n``: an axis of the figures."""
        return f"den[{i}]"

    def n_values(self, k: int) -> int:
        """How many values an axis of odd size ``k`` takes."""
        raise NotImplementedError

    def profile(self, values: torch.Tensor, k: int) -> torch.Tensor:
        """The 1-D profile (length ``k``) that ``values`` give; differentiable, so a density can be learned."""
        raise NotImplementedError

    def uniform(self, k: int) -> list[float]:
        """The values whose profile is all ones (the standard convolution): where a learned density starts."""
        raise NotImplementedError

    def default_bounds(self, k: int) -> list[list[float]] | None:
        """The search's box for a k x k kernel when ``search.bounds`` is not given (None: none known)."""
        return None

    def phi(self, per_axis: Sequence[Sequence[float]], kernel_size: Sequence[int]) -> torch.Tensor:
        """The N-D density (float64) of plain per-axis values: for figures and loggers."""
        return outer(
            [self.profile(torch.tensor(v, dtype=torch.float64), k) for v, k in zip(per_axis, kernel_size, strict=True)]
        )


class Symmetric(DensityFamily):
    """The papers' family: ``alfa = [den, 1, reversed(den)]``, (k-1)/2 values outermost first."""

    name, label = "symmetric", "free"

    def value_name(self, i: int, n: int) -> str:
        return f"den[{i}]" + (" (outermost)" if i == 0 and n > 1 else " (innermost)" if i == n - 1 and n > 1 else "")

    # The authors' suggested ranges (official README), by kernel size.
    BOUNDS = {3: [[0.5, 1.5]], 5: [[0.05, 1.0], [0.5, 1.5]], 7: [[0.05, 0.5], [0.15, 1.0], [0.25, 1.5]]}

    def n_values(self, k: int) -> int:
        return (k - 1) // 2

    def profile(self, values: torch.Tensor, k: int) -> torch.Tensor:
        return profile(values)

    def uniform(self, k: int) -> list[float]:
        return [1.0] * self.n_values(k)

    def default_bounds(self, k: int) -> list[list[float]] | None:
        return [list(pair) for pair in self.BOUNDS[k]] if k in self.BOUNDS else None


class OneParameter(DensityFamily):
    """A family of one positive width parameter ``w`` per axis, separable as the papers' ``outer(alfa, alfa)``:
    the profile is ``shape(d, w)`` at each tap's distance ``d`` from the centre (centre 1). The standard conv is
    its limit ``w -> infinity``, which no finite value reaches: ``uniform`` is the width whose outermost tap is
    ``STANDARD_LEVEL`` (0.1 % from the standard conv), where a learned density starts. The default search box is
    ``BOUNDS`` times the kernel's radius ``(k-1)/2``: widths from a sharp peak to an almost flat profile."""

    STANDARD_LEVEL = 0.999
    BOUNDS = (0.25, 4.0)
    parameter = "w"

    def describe(self, values: Sequence[float]) -> str:
        return f"{self.label} {self.parameter}={float(values[0]):.3g}"

    def value_name(self, i: int, n: int) -> str:
        return f"{self.label} {self.parameter}"

    def shape(self, d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The profile at distances ``d`` (>= 0) for width ``w`` > 0: 1 at d = 0, positive, non-increasing."""
        raise NotImplementedError

    def width_for(self, level: float, d: float) -> float:
        """The width whose profile is ``level`` (in (0, 1)) at distance ``d``: the inverse of ``shape``."""
        raise NotImplementedError

    def n_values(self, k: int) -> int:
        return 1 if k > 1 else 0

    def profile(self, values: torch.Tensor, k: int) -> torch.Tensor:
        radius = (k - 1) // 2
        d = torch.arange(-radius, radius + 1, dtype=values.dtype, device=values.device).abs()
        return self.shape(d, values[0]) if k > 1 else torch.ones(1, dtype=values.dtype, device=values.device)

    def uniform(self, k: int) -> list[float]:
        return [self.width_for(self.STANDARD_LEVEL, (k - 1) // 2)] if k > 1 else []

    def default_bounds(self, k: int) -> list[list[float]] | None:
        radius = (k - 1) // 2
        return [[self.BOUNDS[0] * radius, self.BOUNDS[1] * radius]] if k > 1 else None


class Gaussian(OneParameter):
    """``exp(-d^2 / (2 w^2))``: w is the standard deviation in taps."""

    name, label, parameter = "gaussian", "Gaussian", "s"

    def shape(self, d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(d**2) / (2 * w**2))

    def width_for(self, level: float, d: float) -> float:
        return d / math.sqrt(-2 * math.log(level))


class Tent(OneParameter):
    """``max(FLOOR, 1 - d / w)``: triangular, w the half-width in taps; taps at or beyond it keep ``FLOOR`` (a
    density must stay positive, so that the weighted conv keeps every tap and remains a reparameterisation)."""

    name, label = "tent", "tent"
    FLOOR = 0.01

    def shape(self, d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.clamp(1 - d / w, min=self.FLOOR)

    def width_for(self, level: float, d: float) -> float:
        return d / (1 - level)


class Hann(OneParameter):
    """``(1 + cos(pi d / w)) / 2`` for d < w, raised cosine (Hann) of half-width w in taps, ``FLOOR`` beyond (as
    the tent, positive)."""

    name, label = "hann", "Hann"
    FLOOR = 0.01

    def shape(self, d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        inside = 0.5 * (1 + torch.cos(math.pi * torch.clamp(d / w, max=1.0)))
        return torch.clamp(inside, min=self.FLOOR)

    def width_for(self, level: float, d: float) -> float:
        return math.pi * d / math.acos(2 * level - 1)


class Exponential(OneParameter):
    """``exp(-d / w)``: w the decay length in taps (a Laplace profile)."""

    name, label, parameter = "exponential", "exponential", "l"

    def shape(self, d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.exp(-d / w)

    def width_for(self, level: float, d: float) -> float:
        return -d / math.log(level)


SYMMETRIC = Symmetric()
FAMILIES: dict[str, DensityFamily] = {f.name: f for f in (SYMMETRIC, Gaussian(), Tent(), Hann(), Exponential())}


def get_family(name: str | DensityFamily) -> DensityFamily:
    """The family called ``name`` (a family passes through)."""
    if isinstance(name, DensityFamily):
        return name
    if name not in FAMILIES:
        raise ValueError(f"unknown density family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) or (isinstance(x, torch.Tensor) and x.ndim == 0)


def parse_den(
    den: object, kernel_size: tuple[int, ...], where: str, family: DensityFamily = SYMMETRIC
) -> tuple[list[list[float]], bool]:
    """Check ``den`` against ``kernel_size``; return the per-axis values and whether one list serves every axis.

    ``den`` is a sequence of ``family.n_values(k)`` positive values (every axis, square kernels) or one such
    sequence per axis. ``where`` names the layer in error messages.
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
                f"with {', '.join(str(family.n_values(k)) for k in kernel_size)} values"
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
        need = family.n_values(k)
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


def fit(family: DensityFamily, alfa: Sequence[float]) -> tuple[list[float], float]:
    """The values of ``family`` whose 1-D profile is closest to ``alfa`` (least squares over the taps) and the
    root-mean-square residual. One-parameter families are fitted over log-width (scipy's bounded Brent search);
    the symmetric family fits any symmetric profile exactly."""
    target = torch.tensor(list(alfa), dtype=torch.float64)
    k = len(target)
    if isinstance(family, Symmetric):
        values = [float(v) for v in target[: k // 2]]
    else:  # a log grid, then Brent's method around its best point: the floors of tent and Hann make plateaus
        import numpy as np
        from scipy.optimize import minimize_scalar

        def error(log_w: float) -> float:
            p = family.profile(torch.tensor([math.exp(log_w)], dtype=torch.float64), k)
            return float(((p - target) ** 2).sum())

        grid = np.linspace(math.log(1e-2 * max(1, k // 2)), math.log(family.uniform(k)[0]), 400)
        best = int(np.argmin([error(x) for x in grid]))
        low, high = grid[max(0, best - 1)], grid[min(len(grid) - 1, best + 1)]
        values = [math.exp(minimize_scalar(error, bounds=(low, high), method="bounded", options={"xatol": 1e-9}).x)]
    residual = family.profile(torch.tensor(values, dtype=torch.float64), k) - target
    return values, float(residual.pow(2).mean().sqrt())
