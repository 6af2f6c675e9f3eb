"""``build(name, **options)``: one entry point for every dataset, with its options checked by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from wconv.data.base import TaskData
from wconv.data.cifar import build_cifar100
from wconv.data.div2k import build_div2k
from wconv.data.folder import build_image_folder
from wconv.data.standins import build_digits, build_photos
from wconv.data.train400 import build_train400

BUILDERS: dict[str, Callable[..., TaskData]] = {
    "cifar100": build_cifar100,
    "div2k": build_div2k,
    "image_folder": build_image_folder,
    "train400": build_train400,
    "digits": build_digits,
    "photos": build_photos,
}
DATA_NAMES = tuple(BUILDERS)


def options(name: str) -> dict[str, Any]:
    """The options ``build(name, ...)`` accepts and their defaults (``inspect.Parameter.empty`` when required)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATA_NAMES)}")
    return {key: parameter.default for key, parameter in inspect.signature(BUILDERS[name]).parameters.items()}


def build(name: str, **chosen: Any) -> TaskData:
    """The dataset ``name`` (one of ``DATA_NAMES``) built with ``chosen`` options; ValueError naming the valid
    options for an unknown or missing one."""
    valid = options(name)
    if unknown := sorted(set(chosen) - set(valid)):
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for dataset {name}; valid: {', '.join(valid)}")
    if missing := [key for key, default in valid.items() if default is inspect.Parameter.empty and key not in chosen]:
        raise ValueError(f"dataset {name} needs option(s) {', '.join(missing)}; valid: {', '.join(valid)}")
    return BUILDERS[name](**chosen)
