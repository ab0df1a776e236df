"""U-Net style segmentation decoder over a backbone's multi-scale feature maps.

It knows nothing about classification: it takes the list of feature maps (strides 2..32) and
returns per-pixel class logits at input resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DecoderBlock(nn.Module):
    """Upsample x2, concatenate the skip connection, refine with two 3x3 convolutions."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.refine = nn.Sequential(
            conv_bn_relu(in_channels + skip_channels, out_channels),
            conv_bn_relu(out_channels, out_channels),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(torch.cat([x, skip], dim=1))


class UNetDecoder(nn.Module):
    """Four decoder blocks from stride 32 down to stride 2, then a 1x1 classifier upsampled to the input."""

    def __init__(self, encoder_channels: list[int], decoder_channels: list[int], num_classes: int) -> None:
        super().__init__()
        if len(encoder_channels) != 5:
            raise ValueError("UNetDecoder expects 5 feature maps (strides 2, 4, 8, 16, 32)")
        skips = encoder_channels[-2::-1]  # strides 16, 8, 4, 2
        inputs = [encoder_channels[-1], *decoder_channels[:-1]]
        self.blocks = nn.ModuleList(
            DecoderBlock(i, s, o) for i, s, o in zip(inputs, skips, decoder_channels)
        )
        self.classifier = nn.Conv2d(decoder_channels[-1], num_classes, kernel_size=1)

    def block_outputs(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """The four blocks' outputs, strides 16, 8, 4, 2 (other heads read the coarser ones)."""
        outputs, x = [], features[-1]
        for block, skip in zip(self.blocks, features[-2::-1]):
            x = block(x, skip)
            outputs.append(x)
        return outputs

    def classify(self, finest: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """Per-pixel logits from the stride-2 block output, upsampled to ``output_size``."""
        return F.interpolate(self.classifier(finest), size=output_size, mode="bilinear", align_corners=False)

    def forward(self, features: list[torch.Tensor], output_size: tuple[int, int]) -> torch.Tensor:
        return self.classify(self.block_outputs(features)[-1], output_size)
