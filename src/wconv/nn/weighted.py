"""``WeightedConv1d/2d/3d``: standard convolutions whose kernel is multiplied by a fixed or learned density."""

from __future__ import annotations

import torch
from torch import nn

from wconv.nn.density import SYMMETRIC, DensityFamily, _fmt, get_family, outer, parse_den


class _WeightedConvNd:
    """Mixin over ``nn.ConvNd``: the forward convolves with ``weight * phi``.

    ``den=None`` keeps the standard convolution (no density at all) unless ``learn_den`` asks to learn one,
    which then starts uniform. ``family`` (``wconv.nn.density``) turns ``den`` into each axis's profile: the
    papers' ``symmetric`` one by default. ``den`` is stored flat; ``_axes`` maps each axis to its slice, so that
    one shared list (the official convention) is one set of values whether fixed or learned.
    """

    weight: torch.Tensor
    kernel_size: tuple[int, ...]

    def _init_density(self, den: object, learn_den: bool, family: str | DensityFamily) -> None:
        self.learn_den = bool(learn_den)
        self.family = get_family(family)
        if den is None and not learn_den:
            self._axes: list[tuple[int, int]] = []
            self.register_buffer("den", None)
            self.register_buffer("_phi", None, persistent=False)
            return
        if den is None:
            den = (
                self.family.uniform(self.kernel_size[0])
                if len(set(self.kernel_size)) == 1
                else [self.family.uniform(k) for k in self.kernel_size]
            )
        per_axis, shared = parse_den(den, self.kernel_size, self._where(), self.family)
        flat = per_axis[0] if shared else [v for vals in per_axis for v in vals]
        self._axes, start = [], 0
        for vals in per_axis:
            self._axes.append((start, len(vals)))
            start += 0 if shared else len(vals)
        values = torch.tensor(flat, dtype=self.weight.dtype, device=self.weight.device)
        if learn_den:
            self.den = nn.Parameter(values)
            self.register_buffer("_phi", None, persistent=False)
        else:
            self.register_buffer("den", values)
            self.register_buffer("_phi", self._compute_phi(), persistent=False)

    def _where(self) -> str:
        return f"{type(self).__name__}({self.in_channels}->{self.out_channels}, kernel {_fmt(self.kernel_size)})"

    def _compute_phi(self) -> torch.Tensor:
        axes = zip(self._axes, self.kernel_size, strict=True)
        return outer([self.family.profile(self.den[s : s + n], k) for (s, n), k in axes])

    @property
    def phi(self) -> torch.Tensor | None:
        """The density tensor of shape ``kernel_size`` (read-only; None for the standard convolution)."""
        if self.den is None:
            return None
        return self._compute_phi().detach() if self.learn_den else self._phi

    def effective_weight(self) -> torch.Tensor:
        """``weight * phi``: the kernel the layer really applies."""
        if self.den is None:
            return self.weight
        phi = self._compute_phi() if self.learn_den else self._phi
        return self.weight * phi.to(self.weight.dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(input, self.effective_weight(), self.bias)

    def density_values(self) -> list[float] | list[list[float]] | None:
        """``den`` as plain floats, in the form the constructor takes."""
        if self.den is None:
            return None
        flat = self.den.detach().cpu().tolist()
        per_axis = [flat[s : s + n] for s, n in self._axes]
        shared = all(a == self._axes[0] for a in self._axes)
        return per_axis[0] if shared else per_axis

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, *args):
        # A standard conv's checkpoint (no ``den``) loads into the weighted twin: the density stays as built.
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, *args)
        if prefix + "den" in missing_keys:
            missing_keys.remove(prefix + "den")
        if self.den is not None and not self.learn_den:
            self._phi = self._compute_phi()

    def extra_repr(self) -> str:
        base = super().extra_repr()
        if self.den is None:
            return base
        family_note = "" if self.family is SYMMETRIC else f", density={self.family.name}"
        return f"{base}, den={self.density_values()}, learn_den={self.learn_den}{family_note}"


class WeightedConv1d(_WeightedConvNd, nn.Conv1d):
    """``nn.Conv1d`` with density ``den`` (see the module docstring); every ``nn.Conv1d`` argument works."""

    def __init__(
        self, *args, den: object = None, learn_den: bool = False, family: str | DensityFamily = SYMMETRIC, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self._init_density(den, learn_den, family)


class WeightedConv2d(_WeightedConvNd, nn.Conv2d):
    """``nn.Conv2d`` with density ``phi = outer(alfa, alfa)``, ``alfa = [den, 1, reversed(den)]``."""

    def __init__(
        self, *args, den: object = None, learn_den: bool = False, family: str | DensityFamily = SYMMETRIC, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self._init_density(den, learn_den, family)


class WeightedConv3d(_WeightedConvNd, nn.Conv3d):
    """``nn.Conv3d`` with the triple outer product of the per-axis profiles as density."""

    def __init__(
        self, *args, den: object = None, learn_den: bool = False, family: str | DensityFamily = SYMMETRIC, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self._init_density(den, learn_den, family)


WEIGHTED_TWIN: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv1d: WeightedConv1d,
    nn.Conv2d: WeightedConv2d,
    nn.Conv3d: WeightedConv3d,
}
