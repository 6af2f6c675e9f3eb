"""VGG with batch norm in the CIFAR form of pytorch-cifar100 (weiaicunzai): every conv followed by BN and ReLU,
five 2x2 max-pools (a 32x32 image ends at 1x1x512), then a 512-4096-4096-classes MLP with dropout.

Module names follow that repository (``features``, ``classifier``), so its checkpoints load.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

POOL = "M"
HIDDEN = 4096
CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "vgg13": (64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL),
    "vgg16": (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL),
    "vgg19": (
        *(64, 64, POOL, 128, 128, POOL),
        *(256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL, 512, 512, 512, 512, POOL),
    ),
}
CLASSIFIERS = ("mlp", "single")


class VGG(nn.Module):
    """VGG-BN: ``config`` lists conv output channels and ``"M"`` for a max-pool.

    ``classifier``: ``"mlp"`` (the published 3-layer head with dropout 0.5) or ``"single"`` (one linear layer).
    """

    def __init__(
        self,
        config: Sequence[int | str],
        num_classes: int = 100,
        in_channels: int = 3,
        hidden: int = HIDDEN,
        kernel_size: int = 3,
        classifier: str = "mlp",
    ) -> None:
        super().__init__()
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}; got {classifier!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == POOL:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            conv = nn.Conv2d(channels, item, kernel_size, padding=kernel_size // 2)
            layers += [conv, nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
            channels = item
        self.features = nn.Sequential(*layers)
        if classifier == "single":
            self.classifier: nn.Module = nn.Linear(channels, num_classes)
        else:
            self.classifier = nn.Sequential(
                *(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Dropout()),
                *(nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout()),
                nn.Linear(hidden, num_classes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
