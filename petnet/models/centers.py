"""The animal-centre heatmap head (CenterNet, Zhou et al. 2019): one peak per animal.

Its target and the reading of its peaks are :mod:`petnet.inference.centers`; it is trained on its own
with the rest of the network frozen (``python -m petnet.training.train_centers``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from petnet.models.decoder import conv_bn_relu

CENTER_DECODER_BLOCK = 1
"""The decoder block the head reads, in :meth:`petnet.models.decoder.UNetDecoder.block_outputs` (strides 16,
8, 4, 2): stride 8, so a heatmap cell is 8x8 input pixels."""
_PRIOR = 0.01
"""Initial peak probability everywhere (CenterNet's bias initialisation), so training starts stable."""


class CenterHead(nn.Module):
    """Heatmap logits (B, h, w) at stride 8 from the backbone's stride-32 features and the decoder's stride-8 ones."""

    def __init__(self, deep_channels: int, fine_channels: int, width: int = 64) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(deep_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.body = nn.Sequential(
            conv_bn_relu(width + fine_channels, width), conv_bn_relu(width, width), nn.Conv2d(width, 1, 1)
        )
        nn.init.constant_(self.body[-1].bias, math.log(_PRIOR / (1 - _PRIOR)))

    def forward(self, deep: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        context = F.interpolate(self.reduce(deep), size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([context, fine], dim=1))[:, 0]


