"""The network's raw outputs and the pure functions that turn them into probabilities and label maps.

:class:`PetNetOutput` is what any runtime's pass returns; :func:`decode_output` is the one place that
turns it into species probabilities, species-conditioned top-k breeds, the pet score and mask
probabilities; :func:`mask_from_logits` the one way a label map is made. All in numpy, so that the
pipeline runs where PyTorch is not installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from scipy.special import expit, log_softmax, softmax

if TYPE_CHECKING:
    import torch

TOP_K_BREEDS = 3
"""Breeds returned per animal (the original PetNet's top-3)."""


class PetNetOutput(NamedTuple):
    """Raw logits: species (B, 2), breed (B, 37), mask (B, 3, H, W) at input resolution, and pet
    presence (B,): the logit of "this photo holds a cat or dog".

    In the prediction pipeline they are float32 numpy arrays (what a
    :class:`~petnet.inference.pipeline.Network` returns); the PyTorch model's own passes, which
    training calls, fill the same fields with tensors."""

    species_logits: np.ndarray | torch.Tensor
    breed_logits: np.ndarray | torch.Tensor
    mask_logits: np.ndarray | torch.Tensor
    pet_logits: np.ndarray | torch.Tensor
    breed_maps: np.ndarray | torch.Tensor
    """(B, n_breeds, h, w) breed logits of each location of the last feature map (a class activation
    map, :meth:`ClassificationHead.class_map`): where in the photo which breed is seen, which tells
    touching animals apart (:func:`petnet.inference.regions.pet_regions`). Training does not use them."""
    center_logits: np.ndarray | torch.Tensor | None = None
    """(B, h, w) animal-centre heatmap logits at stride 8 (:mod:`petnet.inference.centers`); ``None`` for a
    model without the head (``config.center_head``)."""

    def apply(self, function: Callable[[Any], Any]) -> PetNetOutput:
        """Every array through ``function`` (e.g. a tensor to the CPU); absent centre logits stay ``None``."""
        return PetNetOutput(*(None if values is None else function(values) for values in self))


@dataclass(frozen=True)
class DecodedOutput:
    """Batched, decoded network output (float32 numpy arrays)."""

    species_probabilities: np.ndarray
    """(B, n_species) breed probabilities summed per species."""
    species_index: np.ndarray
    """(B,) species of the most likely breed."""
    breed_logits: np.ndarray
    """(B, n_breeds) breed logits divided by the temperature: the log of ``breed_probabilities``
    up to a constant per row (what a log loss scores)."""
    breed_probabilities: np.ndarray
    """(B, n_breeds), unconditional."""
    top_breeds: np.ndarray
    """(B, k) breed indices among those of the predicted species, best first."""
    top_breed_confidences: np.ndarray
    """(B, k) probability of each, out of all breeds: the same denominator as the species
    probabilities, so a breed is never more likely than its species."""
    conditioned_breed_logits: np.ndarray
    """(B, n_breeds) breed logits (divided by the temperature) with other species' breeds at -inf."""
    pet_scores: np.ndarray
    """(B,) probability that the photo holds a cat or dog (pet-presence head)."""
    mask_probabilities: np.ndarray
    """(B, n_mask_classes, H, W) softmax of the mask logits at the network's input size."""


def decode_output(
    output: PetNetOutput, breed_species_index: np.ndarray, k: int = TOP_K_BREEDS, temperature: float = 1.0
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
    breed_logits = np.asarray(output.breed_logits, dtype=np.float32) / np.float32(temperature)
    breed_probabilities = softmax(breed_logits, axis=1)
    species_of_breed = np.asarray(breed_species_index)
    species_index = species_of_breed[breed_probabilities.argmax(axis=1)]
    species_count = output.species_logits.shape[1]
    breeds_of_species = (species_of_breed[:, None] == np.arange(species_count)).astype(np.float32)
    allowed = species_of_breed[None, :] == species_index[:, None]
    conditioned = np.where(allowed, breed_logits, np.float32(-np.inf))
    top_breeds = np.argsort(-conditioned, axis=1, kind="stable")[:, :k]  # equal logits (bfloat16 has few) in label order
    return DecodedOutput(
        species_probabilities=breed_probabilities @ breeds_of_species,
        species_index=species_index,
        breed_logits=breed_logits,
        breed_probabilities=breed_probabilities,
        top_breeds=top_breeds,
        top_breed_confidences=np.take_along_axis(breed_probabilities, top_breeds, axis=1),
        conditioned_breed_logits=conditioned,
        pet_scores=expit(np.asarray(output.pet_logits, dtype=np.float32)),
        mask_probabilities=softmax(np.asarray(output.mask_logits, dtype=np.float32), axis=1),
    )


def mean_probability_logits(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Log of the mean of two views' softmax probabilities (rows of (B, C) logits), computed in log
    space so that it stays finite: logits whose softmax is that mean."""
    first, second = np.asarray(first, dtype=np.float32), np.asarray(second, dtype=np.float32)
    return np.logaddexp(log_softmax(first, axis=1), log_softmax(second, axis=1)) - np.float32(math.log(2))


def resize_scores(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) per-pixel class scores (logits or probabilities) resampled bilinearly to ``size`` =
    (H, W), as float32: the one way masks are brought to a photo's or trimap's size.

    Pixel centres are aligned (``align_corners=False`` in PyTorch's terms) and there is no
    antialiasing, so a photo smaller than the network's input gets the same mask as from PyTorch's
    ``F.interpolate(mode="bilinear")``."""
    scores = np.asarray(scores, dtype=np.float32)
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    return next(_resized_rows(scores, size, max(size[0], 1)))[1]


def _resized_rows(scores: np.ndarray, size: tuple[int, int], block: int) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`resize_scores` of float32 ``scores`` ``block`` output rows at a time, as (first row, rows):
    a large photo's label map is made a block at a time, each block small enough to stay in the CPU's
    cache, instead of from a full-size array per class."""
    first_col, second_col, col_weight = _bilinear_taps(scores.shape[-1], size[1])
    first_row, second_row, row_weight = _bilinear_taps(scores.shape[-2], size[0])
    # ``np.take`` keeps the result C-contiguous (indexing with ``[..., cols]`` puts the channels innermost,
    # which made the argmax after it 7x slower); the columns first, on the smaller array.
    left, right = np.take(scores, first_col, axis=-1), np.take(scores, second_col, axis=-1)
    right -= left
    right *= col_weight
    right += left
    for start in range(0, size[0], block):
        rows = slice(start, start + block)
        top, bottom = np.take(right, first_row[rows], axis=-2), np.take(right, second_row[rows], axis=-2)
        bottom -= top
        bottom *= row_weight[rows, None]
        bottom += top
        yield start, bottom


def _bilinear_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output pixel along one axis: its two source pixels and the second one's weight,
    source positions computed in float32 as PyTorch's kernel does (edges clamped)."""
    scale = np.float32(size_in) / np.float32(size_out)
    source = np.maximum((np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
    first = np.minimum(source.astype(np.int64), size_in - 1)  # floor, as source >= 0
    return first, np.minimum(first + 1, size_in - 1), source - first.astype(np.float32)


MASK_BLOCK_ROWS = 64
"""Rows of a photo-size label map made at once (:func:`_resized_rows`): for a 2048x1536 photo, blocks
of 16-64 rows took less than half the time of whole-photo arrays per class, 128 rows or more no less."""


def mask_from_logits(mask_logits: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Argmax label map (uint8) of (C, H, W) logits or probabilities, resampled bilinearly to ``size`` first."""
    scores = np.asarray(mask_logits, dtype=np.float32)
    if size is None or tuple(scores.shape[-2:]) == tuple(size):
        return _argmax_labels(scores)
    labels = np.empty(size, dtype=np.uint8)
    for start, rows in _resized_rows(scores, size, MASK_BLOCK_ROWS):
        labels[start : start + len(rows[0])] = _argmax_labels(rows)
    return labels


def _argmax_labels(scores: np.ndarray) -> np.ndarray:
    """The first largest class of each pixel of (C, H, W) ``scores``, as uint8.

    One comparison per class is ~4x faster than ``argmax(axis=0)``, which walks the classes per
    pixel: at a photo's size it was most of the decoding."""
    labels = np.zeros(scores.shape[1:], dtype=np.uint8)
    best = scores[0].copy()
    for label in range(1, len(scores)):
        higher = scores[label] > best
        np.copyto(labels, np.uint8(label), where=higher)
        np.maximum(best, scores[label], out=best)
    return labels
