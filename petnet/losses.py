"""Multi-task loss: species CE + breed CE + segmentation CE + soft Dice, and for training with
non-pet photos and pseudo masks: pet-presence BCE, outlier exposure and pseudo-mask CE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from petnet.config import LossWeights
from petnet.labels import IGNORE_INDEX
from petnet.model import PetNetOutput

LOSS_NAMES = ("total", "species", "breed", "segmentation", "dice", "pseudo_mask", "pet", "outlier")


def soft_dice_loss(mask_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean per-class soft Dice over labelled pixels; lifts the thin, rare boundary class."""
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    probabilities = mask_logits.float().softmax(dim=1) * valid
    one_hot = F.one_hot(target.clamp(max=mask_logits.shape[1] - 1), mask_logits.shape[1]).permute(0, 3, 1, 2) * valid
    intersection = (probabilities * one_hot).sum(dim=(0, 2, 3))
    total = probabilities.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
    return 1 - ((2 * intersection + 1) / (total + 1)).mean()


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row's softmax to the uniform distribution (mean over rows)."""
    return -logits.float().log_softmax(dim=1).mean(dim=1).mean()


def _zero(output: PetNetOutput) -> torch.Tensor:
    """A zero that keeps the graph connected, so DDP sees every parameter used."""
    return sum(tensor.sum() for tensor in output if tensor is not None) * 0.0


def multitask_loss(
    output: PetNetOutput, batch: dict, weights: LossWeights, label_smoothing: float = 0.0
) -> dict[str, torch.Tensor]:
    """Per-task losses and their weighted ``total``.

    Species and breed are learnt from pet photos only (``batch["is_pet"]``, all pets when absent);
    the photos with no pet push those logits towards uniform instead (``outlier``). Pixels marked
    ``IGNORE_INDEX`` contribute nothing, so a batch with no trimap has zero segmentation loss.
    """
    is_pet = batch.get("is_pet", torch.ones_like(batch["species"], dtype=torch.bool)).bool()
    zero = _zero(output)
    losses = dict.fromkeys(LOSS_NAMES[1:], zero)
    if is_pet.any():
        losses["species"] = F.cross_entropy(
            output.species_logits[is_pet].float(), batch["species"][is_pet], label_smoothing=label_smoothing
        )
        losses["breed"] = F.cross_entropy(
            output.breed_logits[is_pet].float(), batch["breed"][is_pet], label_smoothing=label_smoothing
        )
    if (~is_pet).any():
        outliers = ~is_pet
        losses["outlier"] = (
            uniform_cross_entropy(output.species_logits[outliers]) + uniform_cross_entropy(output.breed_logits[outliers])
        ) / 2
    if weights.pet:
        losses["pet"] = F.binary_cross_entropy_with_logits(output.pet_logits.float(), is_pet.float())
    target = batch["mask"]
    if (target != IGNORE_INDEX).any():
        losses["segmentation"] = F.cross_entropy(output.mask_logits.float(), target, ignore_index=IGNORE_INDEX)
        losses["dice"] = soft_dice_loss(output.mask_logits, target)
    pseudo = batch.get("pseudo_mask")
    if weights.pseudo_mask and pseudo is not None and (pseudo != IGNORE_INDEX).any():
        losses["pseudo_mask"] = F.cross_entropy(output.mask_logits.float(), pseudo, ignore_index=IGNORE_INDEX)
    total = sum(getattr(weights, name) * value for name, value in losses.items())
    return {"total": total, **losses}
