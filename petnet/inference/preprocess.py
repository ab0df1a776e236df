"""The preprocessing every prediction starts with: a photo to the network's normalised square input.

Numpy and scipy only, so that predicting needs no PyTorch, yet bit for bit what the network was
trained, validated and calibrated on: torchvision's ``Resize(antialias=True)`` of the 8-bit photo,
then training's :func:`petnet.data.transforms.normalize` (``tests/test_data.py`` checks the two).
Pillow's own bilinear resize is the same filter but rounds its weights differently: one grey level
off on 1-3% of the pixels, which moved pet scores by up to 0.002 in bfloat16. Photos four times the
input size or more, which training never saw, are first reduced by a whole factor (:data:`REDUCING_GAP`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import sparse

from petnet.config import PetNetConfig

REDUCING_GAP = 2
"""A photo side at least twice this many times the network's input (960 px for 240) is first shrunk
by the largest whole factor that leaves at least this many times the input, with Pillow's box filter
(:func:`reduce_large`), before the antialiased resize: ``Image.thumbnail``'s default ``reducing_gap``. The resize's
cost grows with the photo's pixels: for a 2048x1536 photo (a phone photo as
:data:`petnet.images.MAX_SIDE` reads it) 29.7 ms, twice the network's first look, against 5.9 ms
reduced first. On 123 validation photos enlarged to that size, the network's input moved by at most
6 grey levels (0.5% of values by more than 1), pet scores by at most 0.011, and the top breed of 2
(115 right either way) (``python benchmarks/large_photos.py``). Smaller photos (every Oxford-IIIT
photo: all training, calibration and evaluation) are resized exactly as before."""


def reduce_large(photo: Image.Image, size: int, gap: int = REDUCING_GAP) -> Image.Image:
    """``photo`` shrunk along each side by the largest whole factor that leaves at least ``gap`` times
    ``size`` (Pillow's ``Image.reduce``: the mean of each box), or as it is where that factor is 1."""
    factors = (max(1, photo.width // (size * gap)), max(1, photo.height // (size * gap)))
    return photo.reduce(factors) if factors != (1, 1) else photo


def eval_transform(config: PetNetConfig, reducing_gap: int = REDUCING_GAP) -> Callable[[Image.Image], np.ndarray]:
    """Deterministic preprocessing for evaluation and inference: an RGB photo stretched to a square
    and normalised, as a float32 (3, S, S) array.

    Stretching (not cropping) matches the dataset, whose images were stretched to squares, and
    keeps every pixel so the predicted mask maps back onto the whole photo. ``reducing_gap`` is
    :func:`reduce_large`'s; 0 resizes every photo directly (``benchmarks/large_photos.py`` compares the two).
    """
    size = config.image_size
    mean = np.asarray(config.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(config.std, dtype=np.float32)[:, None, None]

    def transform(photo: Image.Image) -> np.ndarray:
        source = reduce_large(photo, size, reducing_gap) if reducing_gap else photo
        pixels = np.ascontiguousarray(_resize_uint8(np.asarray(source), (size, size)).transpose(2, 0, 1))
        return (pixels * np.float32(1 / 255) - mean) / std  # torchvision's ToDtype(scale=True), then Normalize

    return transform


def resize_channels(channels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float (C, h, w) array (a preprocessed input) resized to ``size`` = (H, W) with the same
    antialiased bilinear filter, in float32: how the crop of an input given as an array is brought
    back to the network's size, as a photo's crop is by :func:`eval_transform`."""
    rows, cols = _antialiased_weights(channels.shape[-2], size[0]), _antialiased_weights(channels.shape[-1], size[1])
    return np.stack([rows @ (cols @ np.asarray(channel, dtype=np.float64).T).T for channel in channels]).astype(np.float32)


def _resize_uint8(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (H, W, C) uint8 image resized to ``size`` = (h, w) as torchvision resizes uint8 images
    (``antialias=True``, PyTorch's uint8 kernel): width first, then height, each pass with its
    weights in 16-bit fixed point and its result rounded to uint8."""
    if pixels.shape[1] != size[1]:
        pixels = _resize_axis_uint8(pixels.transpose(1, 0, 2), size[1]).transpose(1, 0, 2)
    if pixels.shape[0] != size[0]:
        pixels = _resize_axis_uint8(pixels, size[0])
    return pixels


def _resize_axis_uint8(pixels: np.ndarray, size: int) -> np.ndarray:
    """``pixels`` (uint8, any shape) resized along their first axis to ``size``."""
    fixed, precision = _fixed_point_weights(len(pixels), size)
    sums = fixed @ np.ascontiguousarray(pixels, dtype=np.int32).reshape(len(pixels), -1)
    sums += 1 << (precision - 1)
    sums >>= precision
    np.minimum(sums, 255, out=sums)  # never below 0: the weights and pixels are not negative
    return sums.astype(np.uint8).reshape((size, *pixels.shape[1:]))


@functools.lru_cache(maxsize=64)
def _fixed_point_weights(size_in: int, size_out: int) -> tuple[sparse.csr_matrix, int]:
    """:func:`_antialiased_weights` in PyTorch's 16-bit fixed point, and its number of fractional
    bits. Cached: photos come in a few sizes, and computing the weights cost as much as using them."""
    weights = _antialiased_weights(size_in, size_out)
    largest, precision = weights.max(), 0  # the most fractional bits that keep the largest weight within int16
    while precision < 22 and int(0.5 + largest * (1 << (precision + 1))) < 1 << 15:
        precision += 1
    weights.data = (0.5 + weights.data * (1 << precision)).astype(np.int32)  # weights are >= 0: rounded half up
    return weights, precision


def _antialiased_weights(size_in: int, size_out: int) -> sparse.csr_matrix:
    """(size_out, size_in) weights of bilinear resampling along one axis, the triangle filter widened
    by the shrink factor when shrinking (antialiasing), each row summing to 1: Pillow's and PyTorch's
    filter, in float64 and in the order of PyTorch's kernel so that its fixed-point rounding is met exactly."""
    scale = size_in / size_out
    support = max(scale, 1.0)
    taps = math.ceil(support) * 2 + 1
    centers = scale * (np.arange(size_out) + 0.5)
    first = np.maximum((centers - support + 0.5).astype(np.int64), 0)
    count = np.clip(np.minimum((centers + support + 0.5).astype(np.int64), size_in) - first, 0, taps)
    offsets = np.arange(taps)
    weights = np.maximum(1 - np.abs((offsets + first[:, None] - centers[:, None] + 0.5) * (1 / support)), 0)
    weights[offsets >= count[:, None]] = 0
    total = np.zeros(size_out)
    for column in weights.T:  # summed tap by tap, as the kernel does
        total += column
    weights /= total[:, None]
    sources = np.minimum(first[:, None] + offsets, size_in - 1)  # taps past the edge weigh 0
    return sparse.csr_matrix((weights.ravel(), (np.repeat(np.arange(size_out), taps), sources.ravel())), (size_out, size_in))
