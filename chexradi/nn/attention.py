"""Triplet attention (Misra et al., "Rotate to Attend", WACV 2021).

Three branches look at a feature map ``x`` of shape ``(B, C, H, W)`` from three
rotations. Each branch

1. rotates ``x`` so that one of C, H, W becomes the "channel" axis,
2. Z-pools that axis: ``[max over it ; mean over it]`` -> 2 planes,
3. convolves the 2 planes to 1 with a ``k x k`` kernel, no bias,
4. batch-normalises the single plane and applies a sigmoid,
5. multiplies the rotated ``x`` by that gate and rotates back.

Branch C-W pools over H (the gate lives on the C x W plane), branch H-C pools
over W (gate on H x C), the spatial branch H-W pools over C (gate on H x W, as
in CBAM). The output is the mean of the three branches (two with
``no_spatial=True``). A module has ``3 * (2 * k * k) + 3 * 2`` parameters:
300 for ``k = 7``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["ZPool", "AttentionGate", "TripletAttention"]


class ZPool(nn.Module):
    """Concatenate the max and the mean over dim 1: ``(B, C, H, W) -> (B, 2, H, W)``."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)), dim=1)


class AttentionGate(nn.Module):
    """Z-pool -> ``k x k`` conv 2->1 without bias -> batch norm -> sigmoid -> multiply.

    Parameters
    ----------
    kernel_size:
        Odd size of the square convolution kernel (padding keeps the plane size).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.pool = ZPool()
        self.conv = nn.Conv2d(2, 1, kernel_size, stride=1, padding=(kernel_size - 1) // 2, bias=False)
        # eps and momentum as in the authors' implementation.
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01, affine=True)

    def gate(self, x: Tensor) -> Tensor:
        """The sigmoid attention plane ``(B, 1, H, W)`` for ``x``."""
        return torch.sigmoid(self.bn(self.conv(self.pool(x))))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class TripletAttention(nn.Module):
    """Triplet attention over a ``(B, C, H, W)`` feature map; the output has the input's shape.

    Parameters
    ----------
    channels:
        Number of input channels. Accepted for a uniform ``Attention(channels, ...)``
        signature (as timm builds attention blocks); triplet attention has no
        channel-dependent parameters, so it is only checked when given.
    kernel_size:
        Odd kernel size of each branch's convolution (7 in the paper).
    no_spatial:
        Drop the H-W (spatial) branch and average the two rotated branches.

    Raises
    ------
    ValueError
        ``kernel_size`` is not a positive odd integer, or ``channels`` is not positive.
    """

    def __init__(self, channels: Optional[int] = None, kernel_size: int = 7, no_spatial: bool = False) -> None:
        super().__init__()
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer (7 in the paper), got {kernel_size!r}")
        if channels is not None and (not isinstance(channels, int) or channels < 1):
            raise ValueError(f"channels must be a positive integer or None, got {channels!r}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.no_spatial = no_spatial
        self.cw = AttentionGate(kernel_size)  # pools over H: gate on the C x W plane
        self.hc = AttentionGate(kernel_size)  # pools over W: gate on the H x C plane
        self.hw = None if no_spatial else AttentionGate(kernel_size)  # pools over C: spatial gate

    def branches(self, x: Tensor) -> list[Tensor]:
        """The branch outputs, each of the input's shape: ``[C-W, H-C]`` (+ ``H-W``)."""
        if x.dim() != 4:
            raise ValueError(f"TripletAttention expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        if self.channels is not None and x.shape[1] != self.channels:
            raise ValueError(f"TripletAttention was built for {self.channels} channels, got {x.shape[1]}")
        out = [
            self.cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3),  # (B, H, C, W): H becomes "channel"
            self.hc(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1),  # (B, W, H, C): W becomes "channel"
        ]
        if self.hw is not None:
            out.append(self.hw(x))
        return out

    def forward(self, x: Tensor) -> Tensor:
        outs = self.branches(x)
        return sum(outs[1:], outs[0]) / len(outs)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, no_spatial={self.no_spatial}"
