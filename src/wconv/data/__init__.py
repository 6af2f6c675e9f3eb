"""Datasets for the training loop: ``build(name, **options) -> TaskData`` for CIFAR-100, DIV2K, any folder of
images, and the offline stand-ins ``digits`` and ``photos``; everything is held in memory as tensors."""

from wconv.data.base import DataError, TaskData
from wconv.data.registry import DATA_NAMES, build, options

__all__ = ["DATA_NAMES", "DataError", "TaskData", "build", "options"]
