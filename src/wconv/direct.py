"""Batched DIRECT-L (Gablonsky & Kelley 2001, J. Global Optim. 21) with an ask/tell interface.

DIRECT splits the box into rectangles, each sampled at its centre; every iteration trisects the "potentially
optimal" ones. The new centres of one iteration do not depend on each other's values, so ``ask`` hands them out
as one batch that can be evaluated side by side (trainings on several devices), and ``tell`` takes their values.
With ``per_division=True`` the sequence is exactly that of NLopt's ``GN_DIRECT_L``, the serial reference; the
default batches differ from it only where NLopt lets a value found early in an iteration drop a rectangle it would
otherwise divide later in that iteration (``tests/test_direct.py`` shows where).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

THIRD = 1.0 / 3.0
SIDE_TOL = 0.05  # sides within 5% of the longest one count as longest (NLopt's tolerance)


def _size(widths: np.ndarray) -> float:
    """Half the longest side (Gablonsky's measure), in single precision so that equal sizes compare equal."""
    return float(np.float32(widths.max() * 0.5))


def _longest(widths: np.ndarray) -> list[int]:
    """The dimensions to trisect: every side as long as the longest one, in index order."""
    wmax = widths.max()
    return [i for i, w in enumerate(widths) if wmax - w <= wmax * SIDE_TOL]


@dataclass
class _Rect:
    """A rectangle of the unit cube: its centre, side widths, value at the centre and age (for ties)."""

    centre: np.ndarray
    widths: np.ndarray
    f: float
    age: int

    @property
    def size(self) -> float:
        return _size(self.widths)


@dataclass
class History:
    """Every evaluated point (original box), its value and the round (batch) it was asked in, in ask order."""

    points: list[list[float]] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)

    @property
    def best(self) -> tuple[list[float], float, int]:
        """``(x, f, index)`` of the lowest value; the earliest one among equal values."""
        index = min(range(len(self.values)), key=lambda i: (self.values[i], i))
        return self.points[index], self.values[index], index

    def wall_rounds(self, workers: int) -> int:
        """Steps of wall-clock time if every batch is evaluated ``workers`` points at a time."""
        return sum(-(-size // workers) for size in Counter(self.rounds).values())


class DirectL:
    """Locally biased DIRECT over ``bounds`` (``[[low, high], ...]``) with at most ``max_evals`` evaluations.

    ``ask()`` gives the next batch, ``tell(values)`` takes their values in the same order; deterministic given the
    values. A batch is every new centre of one iteration (the box centre first), chosen with the best value at the
    start of the iteration as in the published algorithm. With ``per_division`` a batch is one rectangle's new
    centres (2 to 2n points) and each choice sees the newest best value, as NLopt's serial loop does: NLopt's
    exact sequence, with less parallelism.
    """

    def __init__(self, bounds: Sequence[Sequence[float]], max_evals: int, per_division: bool = False) -> None:
        box = np.asarray(bounds, dtype=float)
        if box.ndim != 2 or box.shape[0] < 1 or box.shape[1] != 2:
            raise ValueError(f"bounds must be [[low, high], ...], got {bounds!r}")
        if not (np.isfinite(box).all() and (box[:, 0] < box[:, 1]).all()):
            raise ValueError(f"bounds need finite low < high, got {bounds!r}")
        if max_evals < 1:
            raise ValueError(f"max_evals must be at least 1, got {max_evals}")
        self.max_evals = int(max_evals)
        self.per_division = per_division
        self.history = History()
        self._low, self._span = box[:, 0], box[:, 1] - box[:, 0]
        self._rects: list[_Rect] = []
        self._age = 0
        self._hull: list[_Rect] = []  # this iteration's candidates, examined in order from self._next
        self._sizes: list[float] = []  # their sizes, already reduced for those chosen
        self._next = 0
        self._plan: list[tuple[_Rect, list[int]]] = []  # rectangles to divide and their longest sides
        self._asked: list[np.ndarray] = []  # the pending batch, in the unit cube
        self._finished = False

    @property
    def best(self) -> tuple[list[float], float, int]:
        """``(x, f, index)`` of the lowest value told so far."""
        return self.history.best

    def ask(self) -> list[list[float]]:
        """The points of the next batch in the original box, cut to the remaining budget; ``[]`` when finished."""
        if self._asked:
            raise RuntimeError("tell() the values of the last batch before asking again")
        budget = self.max_evals - len(self.history.values)
        if self._finished or budget <= 0:
            return []
        if not self._rects:
            self._asked = [np.full(len(self._low), 0.5)]
        else:
            self._plan = [(rect, _longest(rect.widths)) for rect in self._potentially_optimal()]
            for rect, dims in self._plan:
                for i in dims:
                    for sign in (-1.0, 1.0):
                        point = rect.centre.copy()
                        point[i] += sign * (rect.widths[i] * THIRD)
                        self._asked.append(point)
        self._asked = self._asked[:budget]
        return [self._to_box(u) for u in self._asked]

    def tell(self, values: Sequence[float]) -> None:
        """The objective values of the last asked batch, in order (finite; use a large penalty for failures)."""
        if not self._asked:
            raise RuntimeError("ask() for a batch before telling its values")
        values = [float(v) for v in values]
        if len(values) != len(self._asked):
            raise ValueError(f"expected {len(self._asked)} values for the last batch, got {len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"values must be finite (give failed evaluations a large penalty): {values}")
        round_ = self.history.rounds[-1] + 1 if self.history.rounds else 0
        self.history.points += [self._to_box(u) for u in self._asked]
        self.history.values += values
        self.history.rounds += [round_] * len(values)
        if len(self.history.values) >= self.max_evals:
            self._finished = True  # a cut batch is the last one: its divisions are never needed
        elif not self._rects:
            self._rects.append(_Rect(self._asked[0], np.ones(len(self._low)), values[0], self._next_age()))
        else:
            start = 0
            for rect, dims in self._plan:
                stop = start + 2 * len(dims)
                self._divide(rect, dims, self._asked[start:stop], values[start:stop])
                start = stop
        self._asked, self._plan = [], []

    def _to_box(self, u: np.ndarray) -> list[float]:
        return [float(v) for v in self._low + u * self._span]

    def _next_age(self) -> int:
        self._age += 1
        return self._age - 1

    def _divide(self, rect: _Rect, dims: list[int], points: list[np.ndarray], values: list[float]) -> None:
        """Trisect ``rect`` along ``dims``, best-sampled side first: the best new centres get the largest pieces."""
        order = sorted(range(len(dims)), key=lambda k: min(values[2 * k], values[2 * k + 1]))
        for k in order:
            rect.widths[dims[k]] *= THIRD
            rect.age = self._next_age()
            for j in (2 * k, 2 * k + 1):
                self._rects.append(_Rect(points[j], rect.widths.copy(), values[j], self._next_age()))

    def _potentially_optimal(self) -> list[_Rect]:
        """The rectangles to divide next, smallest first: the rest of this iteration, or one (``per_division``).

        DIRECT-L keeps one rectangle per size (lowest value, then oldest) and takes the lower convex hull of
        (size, value); a hull point is divided when the steeper line to a hull neighbour, extended to size 0, is at
        or below the best value so far (Jones' epsilon = 0, as in NLopt); the largest size always is.
        """
        if self._next == len(self._hull):
            best: dict[float, _Rect] = {}
            for rect in self._rects:
                d = rect.size
                if d not in best or (rect.f, rect.age) < (best[d].f, best[d].age):
                    best[d] = rect
            self._hull = self._lower_hull([best[d] for d in sorted(best)])
            self._sizes = [rect.size for rect in self._hull]
            self._next = 0
        hull, sizes, fmin = self._hull, self._sizes, min(self.history.values)
        chosen: list[_Rect] = []
        while self._next < len(hull) and not (chosen and self.per_division):
            j, rect = self._next, hull[self._next]
            self._next += 1
            slope = -math.inf
            if j > 0:
                slope = (rect.f - hull[j - 1].f) / (sizes[j] - sizes[j - 1])
            if j + 1 < len(hull):
                slope = max(slope, (rect.f - hull[j + 1].f) / (sizes[j] - sizes[j + 1]))
            if j + 1 == len(hull) or rect.f - slope * sizes[j] <= fmin:
                chosen.append(rect)
                # NLopt divides while it walks the hull, so the next slope sees this rectangle's reduced size.
                widths = rect.widths.copy()
                widths[_longest(widths)] *= THIRD
                sizes[j] = _size(widths)
        return chosen

    @staticmethod
    def _lower_hull(classes: list[_Rect]) -> list[_Rect]:
        """Lower convex hull of the (size, value) points sorted by size, collinear points kept.

        As in NLopt: points above the chord between the smallest and the largest size are dropped first, the
        second point is never pruned, and the largest size closes the hull without pruning the points before it.
        """
        first, last = classes[0], classes[-1]
        if len(classes) == 1:
            return [first]
        chord = (last.f - first.f) / (last.size - first.size)
        hull = [first]
        for rect in classes[1:-1]:
            if rect.f > first.f + (rect.size - first.size) * chord:
                continue
            while len(hull) > 2:
                a, b = hull[-2], hull[-1]
                if (b.size - a.size) * (rect.f - a.f) - (b.f - a.f) * (rect.size - a.size) >= 0:
                    break
                hull.pop()
            hull.append(rect)
        hull.append(last)
        return hull


def minimize(
    f_batch: Callable[[list[list[float]]], Sequence[float]],
    bounds: Sequence[Sequence[float]],
    max_evals: int,
    per_division: bool = False,
) -> History:
    """Run DIRECT-L to ``max_evals`` evaluations, each batch given to ``f_batch`` whole; return the history."""
    search = DirectL(bounds, max_evals, per_division)
    while batch := search.ask():
        search.tell(f_batch(batch))
    return search.history
