"""Training photos for the animal-centre head: single pets, photos with no pet, and random
composites of two or three pets, each with the map of which pixels belong to which animal.

Oxford-IIIT Pet has one animal per photo, so photos with several are made up from it, in the three
layouts of :mod:`petnet.data.composites` with random sizes and overlaps (and stacked as well as side by
side). An animal's pixels come from its real trimap or, without one, its pseudo mask
(``python -m petnet.training.pseudolabel``): where each animal is, not ground truth for the mask scores.
With a :class:`~petnet.data.scenes.ScenePlacer`, a share of the photos are pets placed small into
photos with no pet, and other animals placed the same way with no animal to find.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from petnet.data.composites import different_sizes, overlapping, side_by_side
from petnet.data.datasets import PetRecord, is_other_animal, pseudo_mask_path, read_pseudo_mask, read_trimap
from petnet.data.scenes import ScenePlacer
from petnet.errors import InvalidImageError
from petnet.images import load_image
from petnet.inference.centers import center_heatmap
from petnet.inference.regions import MIN_ANIMAL_FRACTION
from petnet.labels import ANIMAL_INDICES, BACKGROUND_INDEX, IGNORE_INDEX

log = logging.getLogger("petnet.data.center_data")

KINDS = {
    "single": 0.35,
    "no_pet": 0.10,
    "side_by_side": 0.20,
    "different_sizes": 0.15,
    "overlapping": 0.15,
    "three": 0.05,
}
"""What a training photo is, and how often: mostly the single pets the app mostly sees."""
OTHER_ANIMAL_SCENES = 0.25
"""Of the photos placed into scenes, the share that place another animal (nothing to find) instead
of a pet, where there are photos of other animals."""
MAX_ATTEMPTS = 10
"""Draws of other photos when one is unreadable, before the error is raised."""


class CenterTrainingSet(Dataset):
    """``length`` samples as dicts of ``image`` (3xSxS) and ``heatmap`` (the target, ``heatmap_size``).

    Training draws each sample at random (from the torch generator the DataLoader seeds); with
    ``fixed`` sample ``i`` is the same every time, for validation. With ``scenes`` (a
    :class:`~petnet.data.scenes.ScenePlacer`), a share ``scene_share`` of the samples are placed into
    a scene (:meth:`_scene`) instead: the second look for a small pet crops around the highest peaks,
    so the head must peak on small pets, and not on another animal seen as small."""

    def __init__(
        self,
        pets: Sequence[PetRecord],
        non_pets: Sequence[PetRecord],
        transform: Callable,
        heatmap_size: tuple[int, int],
        length: int,
        pseudo_mask_dir: str | Path | None = None,
        fixed: bool = False,
        scenes: ScenePlacer | None = None,
        scene_share: float = 0.0,
    ) -> None:
        self.pseudo_mask_dir = Path(pseudo_mask_dir) if pseudo_mask_dir else None
        self.pets = [record for record in pets if self._mask_path(record) is not None]
        if not self.pets:
            raise ValueError("No pet photo has a trimap or pseudo mask to tell where its animal is.")
        self.non_pets = list(non_pets)
        self.transform = transform
        self.heatmap_size = heatmap_size
        self.length = length
        self.fixed = fixed
        self.scenes = scenes if scene_share > 0 else None
        self.scene_share = scene_share
        self.other_animals = [record for record in self.non_pets if is_other_animal(record)]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = random.Random(index if self.fixed else int(torch.randint(2**62, ())))
        kinds = [k for k in KINDS if k != "no_pet" or self.non_pets]
        kind = rng.choices(kinds, weights=[KINDS[k] for k in kinds])[0]
        if self.scenes is not None and rng.random() < self.scene_share:
            kind = "scene"
        for attempt in range(MAX_ATTEMPTS):
            try:
                image, animals = self._compose(kind, rng)
                break
            except (InvalidImageError, OSError) as error:  # one unreadable photo should not end a run
                log.warning("Skipping a %s sample: %s", kind, error)
                if attempt == MAX_ATTEMPTS - 1:
                    raise
        image_tensor, animal_tensor = self.transform(image, tv_tensors.Mask(torch.from_numpy(np.array(animals))))
        animal_tensor = animal_tensor.as_subclass(torch.Tensor)
        min_area = round(MIN_ANIMAL_FRACTION * animal_tensor.numel())
        return {
            "image": image_tensor.as_subclass(torch.Tensor),
            "heatmap": center_heatmap(animal_tensor, self.heatmap_size, min_area),
        }

    def _compose(self, kind: str, rng: random.Random) -> tuple[Image.Image, Image.Image]:
        """A photo and its animal map ("L": 0 = no animal, n = the n-th animal)."""
        if kind == "scene":
            return self._scene(rng)
        if kind == "no_pet":
            photo = load_image(rng.choice(self.non_pets).image_path)
            return photo, Image.new("L", photo.size)
        count = {"single": 1, "three": 3}.get(kind, 2)
        animals = [self._animal(rng.choice(self.pets), n) for n in range(1, count + 1)]
        (first, first_map, _), (second, second_map, second_trimap) = animals[0], animals[-1]
        if kind == "single":
            return first, first_map
        if kind == "different_sizes":
            scale = rng.uniform(0.35, 0.8)
            return different_sizes(first, second, scale), different_sizes(first_map, second_map, scale, labels=True)
        if kind == "overlapping":
            scale, overlap = rng.uniform(0.7, 1.0), rng.uniform(0.15, 0.5)
            size = (round(second.width * scale), round(second.height * scale))
            second = second.resize(size, Image.Resampling.BICUBIC)
            second_map = second_map.resize(size, Image.Resampling.NEAREST)
            second_trimap = np.asarray(Image.fromarray(second_trimap).resize(size, Image.Resampling.NEAREST))
            return (
                overlapping(first, second, second_trimap, overlap),
                overlapping(first_map, second_map, second_trimap, overlap, labels=True),
            )
        stacked = rng.random() < 0.25  # one above the other: side by side, transposed
        turn = (lambda image: image.transpose(Image.Transpose.TRANSPOSE)) if stacked else (lambda image: image)
        image, animal_map = turn(first), turn(first_map)
        for photo, photo_map, _ in animals[1:]:
            image, animal_map = side_by_side(image, turn(photo)), side_by_side(animal_map, turn(photo_map))
        return turn(image), turn(animal_map)

    def _scene(self, rng: random.Random) -> tuple[Image.Image, Image.Image]:
        """A pet placed into a photo with no pet, its animal map placed along with it; or, a share
        :data:`OTHER_ANIMAL_SCENES` of the time, another animal placed the same way, with no animal."""
        if self.other_animals and rng.random() < OTHER_ANIMAL_SCENES:
            photo = load_image(rng.choice(self.other_animals).image_path)
            labels = np.full((photo.height, photo.width), BACKGROUND_INDEX, dtype=np.uint8)  # no pet: zoomed out whole
        else:
            photo, _, labels = self._animal(rng.choice(self.pets), 1)
        scene, placed, _ = self.scenes(photo, labels, np.full_like(labels, IGNORE_INDEX), rng)
        return scene, Image.fromarray(np.isin(placed, ANIMAL_INDICES).astype(np.uint8))

    def _animal(self, record: PetRecord, number: int) -> tuple[Image.Image, Image.Image, np.ndarray]:
        """The photo, its animal map with the animal's pixels at ``number``, and its trimap."""
        photo = load_image(record.image_path)
        trimap = read_trimap(record.trimap_path) if record.trimap_path else read_pseudo_mask(self._mask_path(record))
        if trimap.shape != (photo.height, photo.width):
            raise InvalidImageError(f"mask of {record.name} {trimap.shape} does not match its photo")
        animal_map = Image.fromarray(np.where(np.isin(trimap, ANIMAL_INDICES), number, 0).astype(np.uint8))
        return photo, animal_map, trimap

    def _mask_path(self, record: PetRecord) -> Path | None:
        if record.trimap_path is not None:
            return record.trimap_path
        path = pseudo_mask_path(self.pseudo_mask_dir, record.name) if self.pseudo_mask_dir else None
        return path if path is not None and path.is_file() else None
