"""DnCNN (Zhang et al. 2017), as in KAIR: conv+ReLU, (depth-2) x conv+BN+ReLU, conv; residual learning.

The network predicts the noise; ``forward`` returns the denoised image ``x - net(x)``. The layout, biases and
BN settings (eps 1e-4, momentum 0.9, KAIR's reading of the original Keras momentum 0) follow KAIR's
``DnCNN(act_mode='BR')``, so its state_dicts (``model.0.weight`` ... ``model.47.bias``) load directly.
"""

from __future__ import annotations

import torch
from torch import nn

DEPTH = 17
FEATURES = 64


class DnCNN(nn.Module):
    """``depth`` convs of ``features`` channels; BN on all but the first and the last."""

    def __init__(
        self, in_channels: int = 1, depth: int = DEPTH, features: int = FEATURES, kernel_size: int = 3
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, kernel_size, padding=pad), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(features, features, kernel_size, padding=pad),
                nn.BatchNorm2d(features, eps=1e-4, momentum=0.9),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(features, in_channels, kernel_size, padding=pad))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.model(x)
