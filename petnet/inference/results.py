"""What PetNet answers for one photo: :class:`Prediction`, with one :class:`Pet` per animal."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

_COMPAT_KEYS = ("species", "breed", "mask")


@dataclass(frozen=True, eq=False)
class Pet:
    """One animal found in a photo."""

    species: str
    species_confidence: float
    breed: tuple[str, ...]
    """Top-3 breeds of ``species``, best first."""
    breed_confidences: tuple[float, ...]
    box: tuple[int, int, int, int]
    """(left, top, right, bottom) in photo pixels, right and bottom exclusive."""
    region: np.ndarray
    """HxW bool at the photo's size: this animal's pet and boundary pixels, or for an animal the mask
    missed (found by the centre head away from any pet pixel) the box its heatmap peak implies."""

    def to_dict(self) -> dict:
        """JSON-ready summary (no region)."""
        return {
            "species": self.species,
            "species_confidence": self.species_confidence,
            "breed": list(self.breed),
            "breed_confidences": list(self.breed_confidences),
            "box": list(self.box),
            "area_fraction": float(self.region.mean()),
        }


@dataclass(frozen=True, eq=False)
class Prediction(Mapping):
    """What PetNet sees in one image.

    Reads like the original PetNet result dict (``result["species"]``, ``result["breed"]``,
    ``result["mask"]``) and carries the probabilities, a full-size mask for overlays, whether there
    is a pet at all and one entry per animal. The top-level species and breeds, and their
    probabilities, describe the largest animal (the whole photo when there is at most one).
    """

    species: str
    """'cat' or 'dog'."""
    breed: tuple[str, ...]
    """Top-3 breed names (dataset spelling), restricted to the predicted species, best first."""
    mask: np.ndarray
    """HxW uint8 mask at the network's input size: 0 = pet, 1 = background, 2 = boundary."""
    species_confidence: float
    """Probability of the predicted species: its breeds' summed probability (under one half only
    when the single most likely breed belongs to the species whose breeds hold less in all)."""
    breed_confidences: tuple[float, ...]
    """Probability of each top-3 breed, out of all breeds like ``species_confidence`` (so the three
    sum to at most that); calibrated on validation (``config.breed_temperature``)."""
    species_probabilities: dict[str, float]
    """Probability of every species: its breeds' summed probability."""
    breed_probabilities: dict[str, float]
    """Unconditional probability of every breed, in label order."""
    full_mask: np.ndarray
    """HxW uint8 mask at the original image size (equal to ``mask`` for preprocessed inputs)."""
    mask_probabilities: np.ndarray
    """(3, S, S) float probabilities of pet, background and boundary at the network's input size,
    for soft cut-outs (resample them to the photo with :func:`resize_scores`)."""
    pet_score: float
    """Probability that the photo holds a cat or dog: the first look's, or for a photo whose pet the
    second look (``config.presence_second_look``) or the tile look (``config.tile_look_side``)
    found, the score of the crop or tile it found it in; for a photo answered past other animals
    (``config.look_past_other_animals``), that of the photo with them painted out."""
    has_pet: bool
    """``pet_score`` reached the model's ``config.pet_threshold`` (``petnet.training.calibrate`` chose it
    on validation), and the other-animal check did not take the photo for another animal."""
    other_animal: bool = False
    """The pet score reached the threshold (or the second look's did), but ImageNet's classifier took
    every animal found, cut out, for another kind of animal (``config.animal_check_threshold``, a
    model with the check only), and with those animals painted out no pet was found that it passed
    (``config.look_past_other_animals``): ``has_pet`` is False."""
    pets: tuple[Pet, ...] = ()
    """One entry per animal, largest first; empty when ``has_pet`` is False. With a pet but no
    connected pet region big enough to count (:data:`MIN_ANIMAL_FRACTION`), one entry for the whole photo."""

    def __getitem__(self, key: str):
        if key not in _COMPAT_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_COMPAT_KEYS)

    def __len__(self) -> int:
        return len(_COMPAT_KEYS)

    def to_dict(self) -> dict:
        """JSON-ready summary (no masks). Without a pet there is no species or breed to tell: those
        fields are null (or empty), not the guess the attributes keep for the original contract.
        ``image_size`` is the (width, height) the boxes and masks refer to: the photo as read, at
        most :data:`petnet.images.MAX_SIDE` on its longer side."""
        found = self.has_pet
        height, width = self.full_mask.shape
        return {
            "has_pet": found,
            "pet_score": self.pet_score,
            "other_animal": self.other_animal,
            "species": self.species if found else None,
            "species_confidence": self.species_confidence if found else None,
            "breed": list(self.breed) if found else [],
            "breed_confidences": list(self.breed_confidences) if found else [],
            "species_probabilities": self.species_probabilities if found else None,
            "pet_fraction": float((self.full_mask == 0).mean()),
            "image_size": [width, height],
            "pets": [pet.to_dict() for pet in self.pets],
        }

