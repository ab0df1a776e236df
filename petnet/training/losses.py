"""Multi-task loss: species CE + breed CE + segmentation CE + soft Dice (+ Lovász-softmax), and for
training with non-pet photos, pseudo masks and a teacher: pet-presence BCE, outlier exposure, pseudo-mask CE and
distillation of the teacher's species, breed and mask probabilities."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from petnet.config import LossWeights
from petnet.inference.decoding import PetNetOutput
from petnet.labels import IGNORE_INDEX

LOSS_NAMES = ("total", "species", "breed", "segmentation", "dice", "pseudo_mask", "pet", "outlier", "distill", "mask_distill", "lovasz")


def soft_dice_loss(mask_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean per-class soft Dice over labelled pixels; lifts the thin, rare boundary class."""
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    probabilities = mask_logits.float().softmax(dim=1) * valid
    one_hot = F.one_hot(target.clamp(max=mask_logits.shape[1] - 1), mask_logits.shape[1]).permute(0, 3, 1, 2) * valid
    intersection = (probabilities * one_hot).sum(dim=(0, 2, 3))
    total = probabilities.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
    return 1 - ((2 * intersection + 1) / (total + 1)).mean()


def _lovasz_gradient(sorted_foreground: torch.Tensor) -> torch.Tensor:
    """How 1 - IoU of one class grows as each pixel, in the order given, joins the prediction."""
    positives = sorted_foreground.sum()
    intersection = positives - sorted_foreground.cumsum(0)
    union = positives + (1 - sorted_foreground).cumsum(0)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def lovasz_softmax_loss(mask_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovász-softmax (Berman et al., CVPR 2018): the convex Lovász extension of 1 - IoU of each class
    present among the batch's labelled pixels, averaged over those classes.

    Cross-entropy and Dice weigh pixels; this weighs each class by the IoU it is scored by, so the
    thin boundary class counts as much as the background. On one-hot probabilities it equals
    1 - mean IoU over the batch (a test checks that). About 20 lines of the authors' reference code,
    kept here rather than adding segmentation_models_pytorch to the runtime requirements for it.
    """
    valid = target != IGNORE_INDEX
    probabilities = mask_logits.float().softmax(dim=1).movedim(1, -1)[valid]
    labels = target[valid]
    losses = []
    for index in range(probabilities.shape[1]):
        foreground = (labels == index).float()
        if not foreground.any():
            continue
        errors, order = (foreground - probabilities[:, index]).abs().sort(descending=True)
        losses.append(errors @ _lovasz_gradient(foreground[order]))
    return torch.stack(losses).mean() if losses else mask_logits.sum() * 0.0


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row's softmax to the uniform distribution (mean over rows)."""
    return -logits.float().log_softmax(dim=1).mean(dim=1).mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the class probabilities softened by ``temperature``, times its square
    (Hinton et al., 2015) so that the gradients keep their scale at any temperature."""
    student = (student_logits.float() / temperature).log_softmax(dim=1)
    teacher = (teacher_logits.float() / temperature).log_softmax(dim=1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature**2


def _zero(output: PetNetOutput) -> torch.Tensor:
    """A zero that keeps the graph connected, so DDP sees every parameter used."""
    return sum(tensor.sum() for tensor in output if tensor is not None) * 0.0


def _pixels(mask_logits: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) mask logits as (B*H*W, C) rows, one per pixel."""
    return mask_logits.movedim(1, -1).reshape(-1, mask_logits.shape[1])


def _label_loss(
    logits: torch.Tensor, labels: torch.Tensor, batch: dict, is_pet: torch.Tensor, label_smoothing: float
) -> torch.Tensor:
    """Cross-entropy over the pets; on a mixed batch (:func:`petnet.data.cutmix.cutmix_pets`,
    :func:`~petnet.data.cutmix.copy_paste_pets`) each photo's own label and its partner's, weighted by
    the share of the photo each holds."""
    logits = logits[is_pet].float()
    own = F.cross_entropy(logits, labels[is_pet], label_smoothing=label_smoothing, reduction="none")
    if "mix_partner" not in batch:
        return own.mean()
    partner_labels = labels[batch["mix_partner"]][is_pet]
    partner = F.cross_entropy(logits, partner_labels, label_smoothing=label_smoothing, reduction="none")
    weight = batch["mix_weight"][is_pet]
    return (weight * own + (1 - weight) * partner).mean()


def multitask_loss(
    output: PetNetOutput,
    batch: dict,
    weights: LossWeights,
    label_smoothing: float = 0.0,
    teacher: PetNetOutput | None = None,
    temperature: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Per-task losses and their weighted ``total``.

    Species and breed are learnt from pet photos only (``batch["is_pet"]``, all pets when absent);
    the photos with no pet push those logits towards uniform instead (``outlier``). Pixels marked
    ``IGNORE_INDEX`` contribute nothing, so a batch with no trimap has zero segmentation loss.
    ``teacher``, another model's output on the same batch, adds ``distill``: the mean of
    :func:`distillation_loss` on the pets' species and breed logits at ``temperature``, and
    ``mask_distill``, the same on each pixel's mask logits, photos placed into scenes
    (``batch["in_scene"]``) left out.
    """
    is_pet = batch.get("is_pet", torch.ones_like(batch["species"], dtype=torch.bool)).bool()
    zero = _zero(output)
    losses = dict.fromkeys(LOSS_NAMES[1:], zero)
    if is_pet.any():
        losses["species"] = _label_loss(output.species_logits, batch["species"], batch, is_pet, label_smoothing)
        losses["breed"] = _label_loss(output.breed_logits, batch["breed"], batch, is_pet, label_smoothing)
        taught = is_pet & ~batch.get("in_scene", torch.zeros_like(is_pet)).bool()
        if teacher is not None and taught.any() and weights.distill:
            losses["distill"] = (
                distillation_loss(output.species_logits[taught], teacher.species_logits[taught], temperature)
                + distillation_loss(output.breed_logits[taught], teacher.breed_logits[taught], temperature)
            ) / 2
        if teacher is not None and taught.any() and weights.mask_distill:
            losses["mask_distill"] = distillation_loss(
                _pixels(output.mask_logits[taught]), _pixels(teacher.mask_logits[taught]), temperature
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
        if weights.lovasz:
            losses["lovasz"] = lovasz_softmax_loss(output.mask_logits, target)
    pseudo = batch.get("pseudo_mask")
    if weights.pseudo_mask and pseudo is not None and (pseudo != IGNORE_INDEX).any():
        losses["pseudo_mask"] = F.cross_entropy(output.mask_logits.float(), pseudo, ignore_index=IGNORE_INDEX)
    total = sum(getattr(weights, name) * value for name, value in losses.items())
    return {"total": total, **losses}


def center_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss over (B, h, w) heatmaps, per animal in the batch.

    Cells at a peak (target 1) are positives; the rest are negatives down-weighted by
    ``(1 - target)^4`` near a peak, so a prediction a cell off is barely punished."""
    logits, target = logits.float(), target.float()
    probabilities = logits.sigmoid()
    positive = target.eq(1)
    positive_loss = F.logsigmoid(logits) * (1 - probabilities) ** 2 * positive
    negative_loss = F.logsigmoid(-logits) * probabilities**2 * (1 - target) ** 4 * ~positive
    return -(positive_loss.sum() + negative_loss.sum()) / positive.sum().clamp(min=1)
