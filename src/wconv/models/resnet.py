"""ResNet in the CIFAR form of pytorch-cifar100 (weiaicunzai): a 3x3 stem without max-pool, four stages of basic
(18/34) or bottleneck (50) blocks, stride 2 on the 3x3 conv of each later stage's first block, 1x1 projection
shortcuts, global average pool and one linear layer.

Module names follow that repository (``conv1``, ``conv2_x``..``conv5_x``, ``residual_function``, ``shortcut``,
``fc``), so its checkpoints load.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

CHANNELS = 64


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Identity (empty) when shapes match, else a strided 1x1 conv and BN."""
    if stride == 1 and in_channels == out_channels:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class BasicBlock(nn.Module):
    """Two kxk convs with BN; ReLU after the sum."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.residual_function = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size, stride=stride, padding=pad, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.shortcut = _shortcut(in_channels, channels, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.residual_function(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, strided kxk, 1x1 expand (x4), each with BN; ReLU after the sum."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, kernel_size: int = 3) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.residual_function = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.residual_function(x) + self.shortcut(x))


CONFIGS: dict[str, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """CIFAR ResNet: ``blocks`` per stage, stage widths ``channels`` x (1, 2, 4, 8)."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks: Sequence[int],
        num_classes: int = 100,
        in_channels: int = 3,
        channels: int = CHANNELS,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        stages = []
        width = channels
        for i, count in enumerate(blocks):
            stage = []
            for stride in [1 if i == 0 else 2] + [1] * (count - 1):
                stage.append(block(width, channels * 2**i, stride, kernel_size))
                width = channels * 2**i * block.expansion
            stages.append(nn.Sequential(*stage))
        self.conv2_x, self.conv3_x, self.conv4_x, self.conv5_x = stages
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5_x(self.conv4_x(self.conv3_x(self.conv2_x(self.conv1(x)))))
        return self.fc(torch.flatten(self.avg_pool(x), 1))
