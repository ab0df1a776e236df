"""A tiny generated folder in the layout of ``shared/data/non-pets`` (``list.tsv`` + ``images/``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from petnet.data.datasets import NOT_A_PET, PetRecord


def make_non_pets(root: Path, count: int = 8, size: tuple[int, int] = (80, 60)) -> Path:
    """``count`` striped pictures of varying aspect, listed as ImageNet-style classes."""
    (root / "images").mkdir(parents=True)
    lines = ["file\twnid\tclass"]
    for n in range(count):
        rng = np.random.default_rng(n)
        pixels = np.repeat(rng.integers(0, 255, (1, size[0] + 4 * n, 3), dtype=np.uint8), size[1], axis=0)
        name = f"n0000{n:04d}_thing{n}.jpg"
        Image.fromarray(pixels).save(root / "images" / name, quality=90)
        lines.append(f"{name}\tn0000{n:04d}\tthing {n}")
    (root / "list.tsv").write_text("\n".join(lines) + "\n")
    return root


def other_animal_photo(directory: Path) -> PetRecord:
    """A plain light photo in ``directory`` named like ImageNet's hippopotamus: another animal, by its class."""
    path = directory / "n02398521_hippopotamus.jpg"
    Image.new("RGB", (64, 48), (250, 250, 250)).save(path)
    return PetRecord(path.stem, NOT_A_PET, NOT_A_PET, path, None)
