"""Joint image + mask preprocessing with torchvision transforms v2.

The mask is wrapped as ``tv_tensors.Mask`` so geometric transforms move it with the image and
resample it with nearest neighbour, while photometric ones leave it untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


def _normalize(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(mean, std)]


def train_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Augmentation for training: random crop + resize, flip, small rotation, colour jitter."""
    return v2.Compose([
        v2.ToImage(),
        v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), ratio=(0.75, 1.333), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.3, 0.3, 0.3, 0.05)], p=0.8),
        v2.RandomGrayscale(p=0.05),
        *_normalize(mean, std),
    ])  # fmt: skip


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Deterministic preprocessing for evaluation and inference: stretch to a square, normalise.

    Stretching (not cropping) matches the dataset, whose images were stretched to squares, and
    keeps every pixel so the predicted mask maps back onto the whole photo.
    """
    return v2.Compose([v2.ToImage(), v2.Resize((image_size, image_size), antialias=True), *_normalize(mean, std)])
