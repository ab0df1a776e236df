"""The training and validation samples of ``petnet.training.train``: photos with their masks and labels as tensors.

Kept apart from :mod:`petnet.data.datasets`, whose readers (records, trimaps, non-pet splits) the
evaluation, the dashboard and the light install use without PyTorch.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate
from torchvision import tv_tensors

from petnet.data.datasets import (
    PetRecord,
    is_other_animal,
    load_record_image,
    pseudo_mask_path,
    read_pseudo_mask,
    read_trimap,
)
from petnet.errors import InvalidImageError
from petnet.labels import BACKGROUND_INDEX, IGNORE_INDEX

log = logging.getLogger(__name__)


class OxfordPetDataset(Dataset):
    """Samples as dicts: ``image`` (3xSxS float), ``mask`` (SxS long, 255 = ignore), ``pseudo_mask``
    (the same for pseudo labels, from ``pseudo_mask_dir``, only where there is no real trimap),
    ``species``, ``breed`` (``NOT_A_PET`` for a photo with no pet), ``is_pet``, ``has_mask``, ``in_scene``, ``index``.
    A sample that fails to load is returned as ``None``, logged and remembered in ``failures``;
    :func:`collate_skipping_failures` drops it from the batch.

    With ``scenes`` (a :class:`petnet.data.scenes.ScenePlacer`), a share ``scene_probability`` of the
    pet photos is first placed into a photo with no pet, masks along, and then augmented by
    ``scene_transform``: a transform that crops little, so the placed pet stays in the picture. With
    ``scene_other_animals`` the photos of other animals are placed into scenes as well (hard negatives);
    without ``scene_masks`` a scene's masks are ignored (``IGNORE_INDEX``)."""

    def __init__(
        self,
        records: Sequence[PetRecord],
        transform: Callable,
        pseudo_mask_dir: str | Path | None = None,
        scenes: Callable | None = None,
        scene_probability: float = 0.0,
        scene_transform: Callable | None = None,
        scene_other_animals: bool = False,
        scene_masks: bool = True,
    ) -> None:
        self.records = list(records)
        self.transform = transform
        self.pseudo_mask_dir = Path(pseudo_mask_dir) if pseudo_mask_dir else None
        self.scenes = scenes if scene_probability > 0 else None
        self.scene_probability = scene_probability
        self.scene_transform = scene_transform or transform
        self.scene_other_animals = scene_other_animals
        self.scene_masks = scene_masks
        self.failures: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict | None:
        record = self.records[index]
        try:
            image = load_record_image(record)
            shape = (image.height, image.width)
            mask = self._real_mask(record, shape)
            pseudo = self._pseudo_mask(record, shape)
            transform = self.transform
            placeable = record.is_pet or (self.scene_other_animals and is_other_animal(record))
            in_scene = self.scenes is not None and placeable and random.random() < self.scene_probability
            if in_scene:
                image, mask, pseudo = self.scenes(image, mask, pseudo, random)
                if not self.scene_masks:
                    mask = pseudo = np.full(mask.shape, IGNORE_INDEX, dtype=np.uint8)
                transform = self.scene_transform
        except (InvalidImageError, OSError) as error:
            self.failures[record.name] = str(error)
            log.warning("Skipping %s: %s", record.name, error)
            return None
        image_tensor, mask_tensor, pseudo_tensor = transform(
            image, tv_tensors.Mask(torch.from_numpy(mask)), tv_tensors.Mask(torch.from_numpy(pseudo))
        )
        return {
            "image": image_tensor.as_subclass(torch.Tensor),
            "mask": mask_tensor.as_subclass(torch.Tensor).long(),
            "pseudo_mask": pseudo_tensor.as_subclass(torch.Tensor).long(),
            "species": record.species_index,
            "breed": record.breed_index,
            "is_pet": record.is_pet,
            "has_mask": record.has_trimap,
            "in_scene": in_scene,
            "index": index,
        }

    @staticmethod
    def _real_mask(record: PetRecord, shape: tuple[int, int]) -> np.ndarray:
        if not record.is_pet:
            return np.full(shape, BACKGROUND_INDEX, dtype=np.uint8)
        if record.trimap_path is None:
            return np.full(shape, IGNORE_INDEX, dtype=np.uint8)
        mask = read_trimap(record.trimap_path)
        if mask.shape != shape:
            raise InvalidImageError(f"trimap {mask.shape} does not match image {shape}")
        return mask

    def _pseudo_mask(self, record: PetRecord, shape: tuple[int, int]) -> np.ndarray:
        path = pseudo_mask_path(self.pseudo_mask_dir, record.name) if self.pseudo_mask_dir else None
        if record.has_trimap or path is None or not path.is_file():
            return np.full(shape, IGNORE_INDEX, dtype=np.uint8)
        mask = read_pseudo_mask(path)
        if mask.shape != shape:
            raise InvalidImageError(f"pseudo mask {mask.shape} does not match image {shape}")
        return mask


def collate_skipping_failures(samples: list[dict | None]) -> dict | None:
    """Batch the samples that loaded; ``None`` if none did."""
    loaded = [sample for sample in samples if sample is not None]
    return default_collate(loaded) if loaded else None
