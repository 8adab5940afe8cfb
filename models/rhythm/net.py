"""A compact 1D residual CNN for rhythm classification.

Strided residual stages shrink the signal while dilated convolutions widen the receptive
field to several beats (AF shows as beat-to-beat irregularity, not as one beat's shape);
global average and max pooling make the head independent of where in the window the
evidence lies. Only Conv/BatchNorm/ReLU/Add/pooling/Linear are used, so the graph maps
one-to-one onto ONNX and TFLite builtins and batch norm folds into the convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetConfig:
    stem_channels: int = 16
    stem_kernel: int = 15
    widths: tuple[int, ...] = (16, 24, 32, 48, 48)
    kernels: tuple[int, ...] = (7, 7, 5, 5, 5)
    dilations: tuple[int, ...] = (1, 2, 2, 2, 1)
    dropout: float = 0.3
    classes: int = 4


class ConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> None:
        pad = dilation * (kernel - 1) // 2
        super().__init__(nn.Conv1d(c_in, c_out, kernel, stride, pad, dilation, bias=False), nn.BatchNorm1d(c_out))


class ResBlock(nn.Module):
    """conv(stride 2) -> conv(dilated), added to a 1x1 strided projection of the input."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(c_in, c_out, kernel, stride=2)
        self.conv2 = ConvBN(c_out, c_out, kernel, dilation=dilation)
        self.skip = ConvBN(c_in, c_out, 1, stride=2)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv1(x))
        out: torch.Tensor = self.act(self.conv2(y) + self.skip(x))
        return out


class RhythmNet(nn.Module):
    """(N, 1, W) normalised ECG -> (N, classes) logits; ``probabilities`` adds the softmax."""

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        config = config or NetConfig()
        self.config = config
        self.stem = nn.Sequential(ConvBN(1, config.stem_channels, config.stem_kernel, stride=2), nn.ReLU())
        blocks = []
        c_in = config.stem_channels
        for width, kernel, dilation in zip(config.widths, config.kernels, config.dilations, strict=True):
            blocks.append(ResBlock(c_in, width, kernel, dilation))
            c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * c_in, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        out: torch.Tensor = self.head(self.dropout(pooled))
        return out


class WithSoftmax(nn.Module):
    """The exported graph: probabilities, so an artifact is self-describing."""

    def __init__(self, net: RhythmNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.softmax(self.net(x), dim=1)
        return out


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
