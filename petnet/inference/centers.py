"""Animal centres: the heatmap's training target and its peaks (the head itself: :mod:`petnet.models.centers`).

One peak per animal (CenterNet, Zhou et al. 2019, "Objects as Points") is what lets a photo of a
cat and a dog that touch or overlap get two answers: the trimap mask alone shows one blob of pet
pixels. The head reads the decoder's stride-8 features, which know where the pet pixels are, and
the backbone's stride-32 features, which see the whole animal; it is trained on its own with the
rest of the network frozen (``python -m petnet.training.train_centers``), so adding it changes no other output.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

SIGMA_SCALE = 0.1
"""Gaussian spread of an animal's target peak as a fraction of its box's geometric mean side:
large animals get broad peaks (their centre is less precise), small ones narrow ones."""
MIN_SIGMA = 1.0
"""Smallest spread, in heatmap cells."""
PEAK_WINDOW = 5
"""Side, in heatmap cells, of the window in which a peak must be the highest value."""
PEAK_VALLEY = 0.6
"""How far the heatmap must fall between two peaks, as a fraction of the lower one's height, for
them to be two animals. Chosen on validation with the shipped head (150 two-animal composites,
367 single pets; 0.5 to 0.9 tried, docs/experiments.md): without it, 1 in 25 single pets got two answers."""


def center_heatmap(instances: np.ndarray, size: tuple[int, int], min_area: int = 1) -> np.ndarray:
    """Target heatmap (h, w) = ``size`` (float32) for an (H, W) map of animal ids (0 = none, 1..k one
    animal each; an array or a CPU tensor): a Gaussian at each animal's centroid, 1 exactly at its cell.
    Animals with fewer than ``min_area`` pixels get no peak (too little of them is in view)."""
    instances = np.asarray(instances)
    height, width = instances.shape
    rows = (np.arange(size[0], dtype=np.float32) + 0.5) * height / size[0] - 0.5
    cols = (np.arange(size[1], dtype=np.float32) + 0.5) * width / size[1] - 0.5
    target = np.zeros(size, dtype=np.float32)
    for animal in np.unique(instances):
        if animal == 0:
            continue
        ys, xs = np.nonzero(instances == animal)
        if len(ys) < min_area:
            continue
        cy, cx = ys.mean(dtype=np.float32), xs.mean(dtype=np.float32)
        side = math.sqrt(float((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)))
        sigma_y = max(MIN_SIGMA, SIGMA_SCALE * side * size[0] / height)
        sigma_x = max(MIN_SIGMA, SIGMA_SCALE * side * size[1] / width)
        dy = (rows - cy) * size[0] / height
        dx = (cols - cx) * size[1] / width
        peak = np.exp(-((dy[:, None] / sigma_y) ** 2) / 2 - (dx[None, :] / sigma_x) ** 2 / 2)
        peak[int(np.abs(dy).argmin()), int(np.abs(dx).argmin())] = 1.0
        np.maximum(target, peak, out=target)
    return target


def find_peaks(
    heatmap: np.ndarray, threshold: float, window: int = PEAK_WINDOW, valley: float = PEAK_VALLEY
) -> list[tuple[int, int, float]]:
    """(row, col, height) of each animal's peak in an (h, w) probability heatmap, highest first.

    A peak is a local maximum within ``window`` at or above ``threshold`` that is a hill of its
    own: the heatmap on the straight line to every higher peak dips below ``valley`` times its
    height. Without the dip it is a second top of the same animal's hill (a long body, a head
    apart from it), which would split one pet into two answers."""
    heatmap = np.asarray(heatmap)
    pooled = ndimage.maximum_filter(heatmap, size=window, mode="constant", cval=-np.inf)  # a max pool, edges padded
    candidates = np.argwhere((heatmap == pooled) & (heatmap >= threshold)).tolist()
    candidates.sort(key=lambda cell: -float(heatmap[cell[0], cell[1]]))
    peaks: list[tuple[int, int, float]] = []
    for row, col in candidates:
        height = float(heatmap[row, col])
        if all(_separate(heatmap, (row, col), (r, c), window, valley * height) for r, c, _ in peaks):
            peaks.append((row, col, height))
    return peaks


def _separate(heatmap: np.ndarray, cell: tuple[int, int], higher: tuple[int, int], window: int, floor: float) -> bool:
    """``cell`` lies outside ``higher``'s window and the heatmap between them dips below ``floor``."""
    steps = max(abs(cell[0] - higher[0]), abs(cell[1] - higher[1]))
    if steps <= window // 2:
        return False
    rows = np.linspace(cell[0], higher[0], 2 * steps + 1).round().astype(np.int64)
    cols = np.linspace(cell[1], higher[1], 2 * steps + 1).round().astype(np.int64)
    return float(heatmap[rows, cols].min()) < floor


_WIDTH_AT_VALLEY = 2 * math.sqrt(2 * math.log(1 / PEAK_VALLEY)) * SIGMA_SCALE
"""Width of a target peak where it falls to ``PEAK_VALLEY`` of its height, as a fraction of its
animal's box side (a Gaussian's width at level f is 2 sigma sqrt(2 ln(1/f)))."""


def hill_box(heatmap: np.ndarray, peak: tuple[int, int, float]) -> tuple[float, float, float, float]:
    """(top, left, bottom, right), in heatmap cells, of a square-ish box for the animal whose
    ``peak`` this is, read from the width of its hill at ``PEAK_VALLEY`` of its height, for an
    animal the mask did not see: :func:`center_heatmap`'s spread undone, so the box's sides are
    about the animal's geometric-mean side (larger for small animals, whose spread is
    ``MIN_SIGMA``). At that level two peaks :func:`find_peaks` keeps never share a hill."""
    row, col, height = peak
    hill, _ = ndimage.label(heatmap >= PEAK_VALLEY * height)
    rows, cols = np.nonzero(hill == hill[row, col])
    half_height = (rows.max() - rows.min() + 1) / _WIDTH_AT_VALLEY / 2
    half_width = (cols.max() - cols.min() + 1) / _WIDTH_AT_VALLEY / 2
    return row + 0.5 - half_height, col + 0.5 - half_width, row + 0.5 + half_height, col + 0.5 + half_width
