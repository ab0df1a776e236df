"""Multi-task loss: species CE + breed CE + segmentation CE (+ optional soft Dice)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from petnet.labels import IGNORE_INDEX
from petnet.model import PetNetOutput


@dataclass
class LossWeights:
    species: float = 1.0
    breed: float = 1.0
    segmentation: float = 1.0
    dice: float = 0.5


def soft_dice_loss(mask_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean per-class soft Dice over labelled pixels; lifts the thin, rare boundary class."""
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    probabilities = mask_logits.float().softmax(dim=1) * valid
    one_hot = F.one_hot(target.clamp(max=mask_logits.shape[1] - 1), mask_logits.shape[1]).permute(0, 3, 1, 2) * valid
    intersection = (probabilities * one_hot).sum(dim=(0, 2, 3))
    total = probabilities.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
    return 1 - ((2 * intersection + 1) / (total + 1)).mean()


def multitask_loss(output: PetNetOutput, batch: dict, weights: LossWeights) -> dict[str, torch.Tensor]:
    """Per-task losses and their weighted ``total``. Pixels marked ``IGNORE_INDEX`` (images without
    a trimap) contribute nothing; a batch with no trimap at all has zero segmentation loss."""
    species = F.cross_entropy(output.species_logits.float(), batch["species"])
    breed = F.cross_entropy(output.breed_logits.float(), batch["breed"])
    target = batch["mask"]
    if (target != IGNORE_INDEX).any():
        segmentation = F.cross_entropy(output.mask_logits.float(), target, ignore_index=IGNORE_INDEX)
        dice = soft_dice_loss(output.mask_logits, target)
    else:  # keep the graph connected so DDP sees every parameter used
        segmentation = dice = output.mask_logits.sum() * 0.0
    total = (
        weights.species * species
        + weights.breed * breed
        + weights.segmentation * segmentation
        + weights.dice * dice
    )
    return {"total": total, "species": species, "breed": breed, "segmentation": segmentation, "dice": dice}
