"""Test problems for DIRECT-L and the serial reference (NLopt ``GN_DIRECT_L``), shared by the test and the script."""

import math

import nlopt
import numpy as np


def branin(x: list[float]) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2 + 10 * (1 - t) * math.cos(x[0]) + 10


def six_hump_camel(x: list[float]) -> float:
    x1, x2 = x
    return (4 - 2.1 * x1**2 + x1**4 / 3) * x1**2 + x1 * x2 + (-4 + 4 * x2**2) * x2**2


_HA = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_HC = np.array([1.0, 1.2, 3.0, 3.2])
_HP = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])


def hartmann3(x: list[float]) -> float:
    return float(-np.sum(_HC * np.exp(-np.sum(_HA * (np.asarray(x) - _HP) ** 2, axis=1))))


def shifted_quadratic(centre: list[float]):
    """A bowl with its minimum 0 at ``centre``, each axis weighted differently."""
    return lambda x: float(sum((i + 1) * (v - c) ** 2 for i, (v, c) in enumerate(zip(x, centre, strict=True))))


def with_penalty(f, limit: float, penalty: float = 1e3):
    """``f``, but a flat ``penalty`` where the coordinates sum above ``limit`` (like trainings that diverge)."""
    return lambda x: penalty if sum(x) > limit else f(x)


# name -> (objective, bounds); the quadratics use the density bounds of the 3x3, 5x5 and 7x7 kernels.
PROBLEMS = {
    "branin": (branin, [[-5.0, 10.0], [0.0, 15.0]]),
    "six-hump camel": (six_hump_camel, [[-3.0, 3.0], [-2.0, 2.0]]),
    "hartmann-3": (hartmann3, [[0.0, 1.0]] * 3),
    "quadratic 1": (shifted_quadratic([0.8]), [[0.5, 1.5]]),
    "quadratic 2": (shifted_quadratic([0.3, 0.9]), [[0.05, 1.0], [0.5, 1.5]]),
    "quadratic 3": (shifted_quadratic([0.2, 0.6, 1.1]), [[0.05, 0.5], [0.15, 1.0], [0.25, 1.5]]),
    "quadratic 2, penalty": (with_penalty(shifted_quadratic([0.3, 0.9]), 1.3), [[0.05, 1.0], [0.5, 1.5]]),
}


def nlopt_points(f, bounds: list[list[float]], max_evals: int) -> list[list[float]]:
    """The points NLopt's ``GN_DIRECT_L`` evaluates, in order."""
    points: list[list[float]] = []

    def objective(x, grad):
        points.append([float(v) for v in x])
        return f(points[-1])

    opt = nlopt.opt(nlopt.GN_DIRECT_L, len(bounds))
    opt.set_lower_bounds([lo for lo, _ in bounds])
    opt.set_upper_bounds([hi for _, hi in bounds])
    opt.set_min_objective(objective)
    opt.set_maxeval(max_evals)
    opt.optimize([(lo + hi) / 2 for lo, hi in bounds])
    return points
