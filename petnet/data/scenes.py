"""Pets in ordinary scenes: test photos of a pet that does not fill the frame, with known answers.

Oxford-IIIT Pet photos are close-ups; users' photos often are not (a dog in the garden, a cat on a
sofa across the room). These scenes place one pet from the split being evaluated into a non-pet
photo (the part of ``non-pets/`` meant for that split) at a known size, in one of two ways: cut out
along its real trimap with a softened edge (:data:`CUTOUT`), or the whole photo shrunk into the
scene as a zoomed-out shot (:data:`ZOOMED_OUT`). The pet's size is the longer side of its box as a
fraction of the scene's shorter side, drawn within one of :data:`SIZE_BANDS`. Built
deterministically from a seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from petnet.config import SMALLEST_SCENE_PET
from petnet.data.datasets import PetRecord, is_other_animal, load_record_image, read_trimap
from petnet.images import load_image
from petnet.labels import ANIMAL_INDICES, BACKGROUND_INDEX, BREEDS, IGNORE_INDEX

SIZE_BANDS: tuple[tuple[float, float], ...] = ((0.10, 0.20), (0.20, 0.45), (0.45, 0.70), (0.70, 1.00))
"""Pet sizes (longer side of its box over the scene's shorter side) the scenes are built in."""
CUTOUT = "cutout"
ZOOMED_OUT = "zoomed_out"
KINDS = (CUTOUT, ZOOMED_OUT)
SCENE_SHORT_SIDE = 480
"""Scenes are the background photo scaled to this shorter side (the non-pet photos are at most 384 px)."""
EDGE_BLUR = 1.5
"""Radius (pixels, at the pasted size) by which a cut-out's edge is softened, so no hard seam gives it away."""


@dataclass(frozen=True)
class Scene:
    """A made-up photo of one pet in a scene, and what is in it."""

    image: Image.Image
    kind: str
    band: tuple[float, float]
    name: str
    species: str
    breed: str
    on_animal: bool = False
    """Whether the scene is a photo of another animal: the pet is then found beside it, which is harder."""


def band_key(band: tuple[float, float]) -> str:
    """``"20-45%"``: how reports name a size band."""
    return f"{round(100 * band[0])}-{round(100 * band[1])}%"


def _pet_cutout(record: PetRecord) -> Image.Image:
    """The pet cropped to its trimap's pet and boundary pixels, as RGBA with a soft edge."""
    photo = load_image(record.image_path, max_side=None)
    trimap = read_trimap(record.trimap_path)
    alpha = Image.fromarray(np.isin(trimap, ANIMAL_INDICES).astype(np.uint8) * 255).resize(photo.size)
    box = alpha.getbbox() or (0, 0, *photo.size)
    pet = photo.crop(box).convert("RGBA")
    pet.putalpha(alpha.crop(box))
    return pet


def _place(scene: Image.Image, pet: Image.Image, fraction: float, rng: random.Random) -> tuple[int, int, int, int]:
    """Paste ``pet`` (RGB or RGBA) into ``scene`` with its longer side ``fraction`` of the scene's
    shorter side, at a random position that keeps it whole; its brightness matched to the scene's.
    Returns the box it took, ``(left, top, width, height)``."""
    side = max(8, round(fraction * min(scene.size)))
    scale = side / max(pet.size)
    pet = pet.resize((max(1, round(pet.width * scale)), max(1, round(pet.height * scale))), Image.Resampling.LANCZOS)
    mask = None
    if pet.mode == "RGBA":
        mask = pet.getchannel("A").filter(ImageFilter.GaussianBlur(EDGE_BLUR))
        pet = pet.convert("RGB")
    pet_mean = np.asarray(pet, dtype=np.float32).mean()
    scene_mean = np.asarray(scene, dtype=np.float32).mean()
    gain = float(np.clip((scene_mean + 2 * pet_mean) / (3 * max(pet_mean, 1.0)), 0.7, 1.3))  # a third of the way
    pet = Image.fromarray(np.clip(np.asarray(pet, dtype=np.float32) * gain, 0, 255).astype(np.uint8))
    left = rng.randint(0, max(0, scene.width - pet.width))
    top = rng.randint(0, max(0, scene.height - pet.height))
    scene.paste(pet, (left, top), mask)
    return left, top, pet.width, pet.height


@dataclass(frozen=True)
class ScenePlacer:
    """Training photos that look like users' photos: a pet photo placed, with its masks, into a
    photo with no pet, as a cut-out along its mask (real trimap or pseudo mask) or as the whole photo
    zoomed out (:data:`KINDS`, half each; a cut-out needs pet pixels, else the photo is zoomed out).

    The pet's longer side is a log-uniform fraction ``sizes`` of the scene's shorter side. The scene
    is the background photo at the pet photo's size, so the masks' background outside the pet is a
    real label (the background photo has no cat or dog); inside, the pet's own labels follow it.
    Backgrounds come from the training part of the non-pet photos only."""

    backgrounds: Sequence[PetRecord]
    sizes: tuple[float, float] = (SMALLEST_SCENE_PET, 1.0)

    def __post_init__(self) -> None:
        if not 0 < self.sizes[0] <= self.sizes[1] <= 1:
            raise ValueError(
                f"Scene pet sizes must satisfy 0 < smallest <= largest <= 1 (shares of the scene's shorter side), "
                f"got {self.sizes}."
            )

    def __call__(
        self, image: Image.Image, mask: np.ndarray, pseudo: np.ndarray, rng: random.Random
    ) -> tuple[Image.Image, np.ndarray, np.ndarray]:
        background = load_record_image(rng.choice(self.backgrounds)).resize(image.size, Image.Resampling.BICUBIC)
        labelled = mask if (mask != IGNORE_INDEX).any() else pseudo
        animal = np.isin(labelled, ANIMAL_INDICES)
        box = (0, 0, image.width, image.height)
        pet = image
        if rng.random() < 0.5 and animal.any():  # a cut-out along the mask
            rows, cols = np.nonzero(animal)
            box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
            pet = image.crop(box).convert("RGBA")
            pet.putalpha(Image.fromarray(animal.astype(np.uint8) * 255).crop(box))
            mask = np.where(animal, mask, BACKGROUND_INDEX).astype(np.uint8)
            pseudo = np.where(animal, pseudo, IGNORE_INDEX).astype(np.uint8)
        low, high = np.log(self.sizes[0]), np.log(self.sizes[1])
        left, top, width, height = _place(background, pet, float(np.exp(rng.uniform(low, high))), rng)
        scene_masks = []
        for values, outside in ((mask, BACKGROUND_INDEX), (pseudo, IGNORE_INDEX)):
            placed = Image.fromarray(values[box[1] : box[3], box[0] : box[2]]).resize((width, height), Image.Resampling.NEAREST)
            scene_mask = np.full((image.height, image.width), outside, dtype=np.uint8)
            scene_mask[top : top + height, left : left + width] = np.asarray(placed)[: image.height - top, : image.width - left]
            scene_masks.append(scene_mask)
        return background, scene_masks[0], scene_masks[1]


def build_scenes(
    pets: Sequence[PetRecord], backgrounds: Sequence[PetRecord], per_cell: int, seed: int = 0
) -> list[Scene]:
    """``per_cell`` scenes for each of :data:`KINDS` x :data:`SIZE_BANDS`, pets alternately cats and
    dogs where the split has both; cut-outs only from pets with a real trimap."""
    rng = random.Random(seed)
    if not backgrounds:
        return []
    pools = {CUTOUT: [r for r in pets if r.trimap_path is not None], ZOOMED_OUT: list(pets)}
    scenes = []
    for kind in KINDS:
        by_species = [[r for r in pools[kind] if r.species_index == s] for s in (0, 1)]
        by_species = [pool for pool in by_species if pool]
        if not by_species:
            continue
        for band in SIZE_BANDS:
            for n in range(per_cell):
                record = rng.choice(by_species[n % len(by_species)])
                background_record = rng.choice(backgrounds)
                background = load_image(background_record.image_path)
                scale = SCENE_SHORT_SIDE / min(background.size)
                scene = background.resize((round(background.width * scale), round(background.height * scale)))
                pet = _pet_cutout(record) if kind == CUTOUT else load_image(record.image_path)
                _place(scene, pet, rng.uniform(*band), rng)
                breed = BREEDS[record.breed_index]
                scenes.append(Scene(scene, kind, band, record.name, breed.species, breed.name, is_other_animal(background_record)))
    return scenes
