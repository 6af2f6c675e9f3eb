"""NAFNet (Chen et al. 2022, megvii-research): a U-Net of NAF blocks (LayerNorm2d, depthwise conv, SimpleGate,
simplified channel attention; no nonlinear activation), 2x2 stride-2 downsampling, 1x1 conv + PixelShuffle
upsampling, additive skips and a global residual.

Module names follow the official ``NAFNet_arch.py``, so its checkpoints load (at kernel size 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS = 32
ENC_BLOCKS = (2, 2, 4, 8)
MIDDLE_BLOCKS = 12
DEC_BLOCKS = (2, 2, 2, 2)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel, with a per-channel affine (eps 1e-6 as in the official code)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / (var + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * x + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: the gate replacing the activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """Spatial mixing (norm, 1x1 expand x2, depthwise kxk, gate, channel attention, 1x1) then a gated 1x1 FFN;
    each branch scaled by a zero-initialised per-channel factor (``beta``, ``gamma``), so a new block is the
    identity."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        dw = 2 * channels
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, dw, kernel_size=1)
        self.conv2 = nn.Conv2d(dw, dw, kernel_size, padding=kernel_size // 2, groups=dw)
        self.sg = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, kernel_size=1))
        self.conv3 = nn.Conv2d(dw // 2, channels, kernel_size=1)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, 2 * channels, kernel_size=1)
        self.conv5 = nn.Conv2d(channels, channels, kernel_size=1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        y = inp + self.conv3(x * self.sca(x)) * self.beta
        return y + self.conv5(self.sg(self.conv4(self.norm2(y)))) * self.gamma


def _blocks(channels: int, count: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(*(NAFBlock(channels, kernel_size) for _ in range(count)))


class NAFNet(nn.Module):
    """NAFNet of base width ``channels``, doubled at each of the ``len(enc_blocks)`` downsamplings."""

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = CHANNELS,
        enc_blocks: Sequence[int] = ENC_BLOCKS,
        middle_blocks: int = MIDDLE_BLOCKS,
        dec_blocks: Sequence[int] = DEC_BLOCKS,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(
                f"enc_blocks and dec_blocks need one entry per scale, the same number; got {list(enc_blocks)} "
                f"and {list(dec_blocks)}"
            )
        pad = kernel_size // 2
        self.intro = nn.Conv2d(in_channels, channels, kernel_size, padding=pad)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        for count in enc_blocks:
            self.encoders.append(_blocks(channels, count, kernel_size))
            self.downs.append(nn.Conv2d(channels, 2 * channels, kernel_size=2, stride=2))
            channels *= 2
        self.middle_blks = _blocks(channels, middle_blocks, kernel_size)
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for count in dec_blocks:
            self.ups.append(
                nn.Sequential(nn.Conv2d(channels, 2 * channels, kernel_size=1, bias=False), nn.PixelShuffle(2))
            )
            channels //= 2
            self.decoders.append(_blocks(channels, count, kernel_size))
        self.ending = nn.Conv2d(channels, in_channels, kernel_size, padding=pad)
        self.multiple = 2 ** len(enc_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        # Zero-pad right and bottom up to a multiple of 2**scales; crop back at the end.
        x = F.pad(x, (0, -width % self.multiple, 0, -height % self.multiple))
        feat = self.intro(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            feat = encoder(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.middle_blks(feat)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips), strict=True):
            feat = decoder(up(feat) + skip)
        return (x + self.ending(feat))[..., :height, :width]
