"""The network's raw outputs and the pure functions that turn them into probabilities and label maps.

:class:`PetNetOutput` is what any runtime's pass returns; :func:`decode_output` is the one place that
turns it into species probabilities, species-conditioned top-k breeds, the pet score and mask
probabilities; :func:`mask_from_logits` the one way a label map is made.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

TOP_K_BREEDS = 3
"""Breeds returned per animal (the original PetNet's top-3)."""

class PetNetOutput(NamedTuple):
    """Raw logits: species (B, 2), breed (B, 37), mask (B, 3, H, W) at input resolution, and pet
    presence (B,): the logit of "this photo holds a cat or dog"."""

    species_logits: torch.Tensor
    breed_logits: torch.Tensor
    mask_logits: torch.Tensor
    pet_logits: torch.Tensor
    breed_maps: torch.Tensor
    """(B, n_breeds, h, w) breed logits of each location of the last feature map (a class activation
    map, :meth:`ClassificationHead.class_map`): where in the photo which breed is seen, which tells
    touching animals apart (:func:`petnet.inference.decoding.pet_regions`). Training does not use them."""
    center_logits: torch.Tensor | None = None
    """(B, h, w) animal-centre heatmap logits at stride 8 (:mod:`petnet.inference.centers`); ``None`` for a
    model without the head (``config.center_head``)."""

    def apply(self, function: Callable[[torch.Tensor], torch.Tensor]) -> PetNetOutput:
        """Every tensor through ``function`` (e.g. to the CPU); absent centre logits stay ``None``."""
        return PetNetOutput(*(None if tensor is None else function(tensor) for tensor in self))



@dataclass(frozen=True)
class DecodedOutput:
    """Batched, decoded network output (all on the CPU, float32)."""

    species_probabilities: torch.Tensor
    """(B, n_species) breed probabilities summed per species."""
    species_index: torch.Tensor
    """(B,) species of the most likely breed."""
    breed_logits: torch.Tensor
    """(B, n_breeds) breed logits divided by the temperature: the log of ``breed_probabilities``
    up to a constant per row (what a log loss scores)."""
    breed_probabilities: torch.Tensor
    """(B, n_breeds), unconditional."""
    top_breeds: torch.Tensor
    """(B, k) breed indices among those of the predicted species, best first."""
    top_breed_confidences: torch.Tensor
    """(B, k) probability of each, out of all breeds: the same denominator as the species
    probabilities, so a breed is never more likely than its species."""
    conditioned_breed_logits: torch.Tensor
    """(B, n_breeds) breed logits (divided by the temperature) with other species' breeds at -inf."""
    pet_scores: torch.Tensor
    """(B,) probability that the photo holds a cat or dog (pet-presence head)."""
    mask_probabilities: torch.Tensor
    """(B, n_mask_classes, H, W) softmax of the mask logits at the network's input size."""


def decode_output(
    output: PetNetOutput, breed_species_index: torch.Tensor, k: int = TOP_K_BREEDS, temperature: float = 1.0
) -> DecodedOutput:
    """Probabilities, species-conditioned top-``k`` breeds, pet scores and mask probabilities.

    The breed logits are divided by ``temperature`` (``config.breed_temperature``) first: the
    calibration of every probability shown, which changes no ranking.

    The species named is the one of the most likely breed, and the species probabilities are the
    breed probabilities summed per species, so species and breeds always tell one story. The
    species head is a training aid only: on the validation pets (``python
    benchmarks/species_rules.py``, the shipped weights of December 2026) its argmax named 365 of
    367 species and the summed breed probability 363, against 367 for the species of the top
    breed. Summing favours dogs on an unsure photo, whose probability spreads over 25 dog breeds
    against 12 cat breeds; the single most likely breed does not.
    """
    breed_logits = output.breed_logits.float().cpu() / temperature
    breed_probabilities = breed_logits.softmax(dim=1)
    species_of_breed = breed_species_index.cpu()
    species_index = species_of_breed[breed_probabilities.argmax(dim=1)]
    species_count = output.species_logits.shape[1]
    species_probabilities = torch.zeros(len(breed_logits), species_count).index_add_(1, species_of_breed, breed_probabilities)
    allowed = species_of_breed.unsqueeze(0) == species_index.unsqueeze(1)
    conditioned = breed_logits.masked_fill(~allowed, float("-inf"))
    top_breeds = conditioned.topk(k, dim=1).indices
    top_confidences = breed_probabilities.gather(1, top_breeds)
    return DecodedOutput(
        species_probabilities=species_probabilities,
        species_index=species_index,
        breed_logits=breed_logits,
        breed_probabilities=breed_probabilities,
        top_breeds=top_breeds,
        top_breed_confidences=top_confidences,
        conditioned_breed_logits=conditioned,
        pet_scores=output.pet_logits.float().sigmoid().cpu(),
        mask_probabilities=output.mask_logits.float().softmax(dim=1).cpu(),
    )


def mean_probability_logits(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Log of the mean of two views' softmax probabilities (rows of (B, C) logits), computed in log
    space so that it stays finite: logits whose softmax is that mean."""
    return torch.logaddexp(first.float().log_softmax(dim=1), second.float().log_softmax(dim=1)) - math.log(2)


def resize_scores(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) per-pixel class scores (logits or probabilities) resampled bilinearly to ``size`` =
    (H, W), as float: the one way masks are brought to a photo's or trimap's size."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores.float()
    return F.interpolate(scores.float()[None], size=size, mode="bilinear", align_corners=False)[0]


def mask_from_logits(mask_logits: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Argmax label map (uint8) of (C, H, W) logits or probabilities, resampled bilinearly to ``size`` first."""
    if size is not None:
        mask_logits = resize_scores(mask_logits, size)
    # ``max().indices`` equals ``argmax`` (first maximum wins) but is ~20x faster on CPU for a reduction
    # over 3 channels: argmax alone took a quarter of the single-image latency.
    return mask_logits.max(dim=0).indices.to(torch.uint8)


