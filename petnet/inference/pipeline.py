"""The one prediction pipeline: from preprocessed images to :class:`~petnet.inference.results.Prediction`.

``PetNet.predict``, ``petnet.evaluate``, ``petnet.training.train_centers``, ``petnet-predict`` and
the demo all answer through :class:`Predictor`, so what is scored is what users get. Its steps:

1. the network's first look (:meth:`Network.infer`: masks averaged with the mirror image's);
2. the label map, and the animal regions it holds (:func:`~petnet.inference.regions.animal_regions`);
3. the pet check (``pet_score >= config.pet_threshold``), and for a photo that misses it, the second
   look (``config.presence_second_look``): the network asked again about crops around its likeliest animals,
   and for a photo still without one that a look suspected, the tile look (``config.tile_look_side``): a
   corner of it looked at as a photo of its own;
4. the closer look (``config.closer_look``): a photo's lone pet cropped and classified again where
   the first look is unsure of its breed (``config.closer_look_below``), the two views' probabilities averaged;
5. decoding (:func:`~petnet.inference.decoding.decode_output`, with the calibration
   ``config.breed_temperature``); a photo with several animals is named by a pass over their crops
   (made in step 6 where the model has the check, else here);
6. the other-animal check (``config.animal_check_threshold``, :mod:`~petnet.inference.animal_check`):
   ImageNet's classifier, shown each animal found cut out, sets apart the animals of a photo with
   several that it takes for other kinds of animal, or that neither it nor the network's crop of the
   animal takes for a pet (before the closer look, while one animal passes),
   and where the pipeline is unsure (``config.animal_check_below``, or a pet the second or tile look
   found) turns away a photo whose animals it all takes for other kinds of animal; with
   ``config.look_past_other_animals`` such a photo is looked at once more with those animals painted
   out (:meth:`Predictor.look_past`), for a pet beside them.

The network call is one seam (:class:`Network`): any runtime that gives the three kinds of pass
over numpy arrays plugs in without a second pipeline (the PyTorch model through
:class:`petnet.models.network.TorchNetwork`, ONNX Runtime through
:class:`petnet.inference.onnx_network.OnnxNetwork`). Everything here is numpy, scipy and Pillow:
predicting needs no PyTorch.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.special import expit, softmax

from petnet.config import PetNetConfig
from petnet.images import ImageInput, load_image
from petnet.inference.animal_check import AnimalCheck, check_input
from petnet.inference.decoding import (
    DecodedOutput,
    PetNetOutput,
    decode_output,
    mask_from_logits,
    mean_probability_logits,
    resize_scores,
)
from petnet.inference.preprocess import eval_transform, resize_channels
from petnet.inference.regions import (
    animal_regions,
    box_region,
    candidate_boxes,
    corner_boxes,
    crop_box,
    partial_crop_box,
    region_box,
    square_box,
)
from petnet.inference.results import Pet, Prediction
from petnet.labels import BACKGROUND_INDEX

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CANDIDATE_PEAK = 0.02
"""Lowest centre-heatmap peak the second look crops around (``config.presence_second_look``): a
proposal, not a decision, so it is low; the crop's pet score decides. On validation, with the
shipped weights, pets at 20-45% of a scene got peaks of 0.02-0.3 where the pet score said no."""
MAX_CROPS_PER_PASS = 4
"""Most crops the network is asked about at once (the second look's, and its finds seen whole): the
demo's batch of 4 photos without a pet makes 8 (``config.second_look_peaks`` 2 each),
``petnet-predict --batch-size 8`` 16. A process
predicting the load test's 227 photos in batches of 1-8 peaked at 300-302 MB in passes of 4,
310-311 MB in passes of 8 and 338-343 MB in one pass (309-312 MB with the second look of before,
one crop a photo), at the same speed (44-51 images/s, throwaway script, alternated runs). Models
without ``config.second_look_peaks`` (one crop a photo) are asked in the same passes."""
TILES_PER_PASS = 2
"""Tiles the tile look runs through the whole network at once: as many images as one photo's first
look with its mirror, so that it asks ONNX Runtime for no larger allocations than predicting one
photo does (the tile look's first build, all four corners of every photo without a pet in passes of
4, took the load test's server to 428 MB; asked only where a look suspected a pet, in pairs, 411 MB;
as shipped, 394 MB)."""
SET_APART_ODDS = 0.0
"""An animal of a photo with several whose own crop misses ``config.pet_threshold`` is set apart when
the other-animal check's log-odds for it are at least this: even, ImageNet's classifier taking it for
a dog or cat no more than for another animal. Neither signal alone sets an animal apart: in the 280
validation composites with two or more animals found, the crops of 4 real pets missed the threshold,
and pets' odds of 0-7 are common; a horse behind a dog placed into its photo meets both (docs/experiments.md)."""
SET_APART_LOGIT = 10.0
"""The mask logit an animal set apart as another kind gets for background (its negative for pet and
boundary): sure, so that every mask made from the logits marks it background."""
PREDICT_BATCH_SIZE = 2
"""Images per batch when predicting on CPU: with mirror-averaged masks the network then sees
4 images, the most a 2-core CPU runs faster per image than one at a time (``python -m petnet.bench``);
the crops of the second and the closer look follow in batches of their own."""


class Network(Protocol):
    """What the pipeline needs of a runtime: three kinds of pass over a float32 (B, 3, S, S) numpy
    batch, each returning float32 numpy arrays; ``config`` is the model's."""

    config: PetNetConfig

    def infer(self, images: np.ndarray) -> PetNetOutput:
        """Everything, masks (and centre heatmaps) averaged with the mirror image's when the config says so."""

    def infer_single_view(self, images: np.ndarray) -> PetNetOutput:
        """Everything, from the images as given (crops of a photo's animals)."""

    def infer_classification(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Species, breed and pet logits alone, without the decoder (the closer look, and the second
        look's crops and their confirmation). The pet logits may be None where the model has no second look (ONNX
        graphs exported before the classification cut gave them)."""


class PreparedImage(NamedTuple):
    """One image ready for the network: its float32 (3, H, W) input, original (H, W), and the photo
    when there is one."""

    pixels: np.ndarray
    size: tuple[int, int]
    photo: Image.Image | None


class _Crop(NamedTuple):
    """One crop the second look asks about: image ``index`` in the batch, the centre-heatmap peak
    it is around (row, col in input pixels), its ``box`` and, once asked, the crop and its pet,
    species and breed logits (the backbone's; a confirmation crop's help name its find)."""

    index: int
    centre: tuple[float, float]
    box: tuple[int, int, int, int]
    pixels: np.ndarray | None = None
    pet_logit: float = -np.inf
    species_logits: np.ndarray | None = None
    breed_logits: np.ndarray | None = None


class Answer(NamedTuple):
    """What the pipeline answers for one image, with what scoring it needs beyond the prediction."""

    prediction: Prediction
    mask_logits: np.ndarray
    """(3, S, S) mask logits at the network's input size (mirror-averaged; inside the box of a pet the
    second or the tile look found, the crop's or the tile's)."""
    animals_found: int
    """Animals ``predict`` answers for were the photo taken to hold a pet (at least 1)."""


class Predictor:
    """The steps after preprocessing, around one :class:`Network` (``config`` is read at each call,
    so a changed threshold or temperature takes effect at once) and the other-animal check
    (``animal_check``, which :func:`petnet.load_model` attaches where the config has a threshold; a
    predictor without one checks nothing)."""

    def __init__(self, network: Network, animal_check: AnimalCheck | None = None) -> None:
        self.network = network
        self.animal_check = animal_check
        self._warned_unchecked = False
        self.preprocess = eval_transform(network.config)
        """Photo -> normalised float32 (3, S, S) array, the network's input."""
        species = {name: i for i, name in enumerate(network.config.species_names)}
        self.breed_species_index = np.array([species[name] for name in network.config.breed_species])

    @property
    def config(self) -> PetNetConfig:
        return self.network.config

    def predict(self, image: ImageInput | torch.Tensor) -> Prediction:
        """See :meth:`petnet.models.network.PetNet.predict`."""
        return self.predict_batch([image])[0]

    def predict_batch(
        self, images: Sequence[ImageInput | torch.Tensor], batch_size: int = PREDICT_BATCH_SIZE
    ) -> list[Prediction]:
        """Predict many images, running the network on batches of up to ``batch_size``."""
        results: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            prepared = [self.prepare(image) for image in images[start : start + batch_size]]
            results.extend(answer.prediction for answer in self.answer(prepared))
        return results

    def prepare(self, image: ImageInput | torch.Tensor) -> PreparedImage:
        """Read and preprocess one input: a PyTorch tensor or a float numpy array is a preprocessed
        3xHxW input and is taken as it is; anything else is a photo for :func:`~petnet.images.load_image`."""
        preprocessed = _preprocessed_input(image)
        if preprocessed is not None:
            return PreparedImage(preprocessed, preprocessed.shape[-2:], None)
        picture = load_image(image)
        return PreparedImage(self.preprocess(picture), (picture.height, picture.width), picture)

    def first_look(self, tensors: Sequence[np.ndarray]) -> tuple[PetNetOutput, list[np.ndarray]]:
        """The network's pass over a batch of equal-sized inputs and each label map."""
        output = self.network.infer(np.stack(tensors))
        return output, [mask_from_logits(logits) for logits in output.mask_logits]

    def regions(self, mask: np.ndarray, output: PetNetOutput, i: int, thresholds: tuple[float, float] | None = None) -> list[np.ndarray]:
        """:func:`~petnet.inference.regions.animal_regions` of image ``i`` at the config's thresholds (or ``thresholds``)."""
        return animal_regions(mask, output, i, self.config, thresholds)

    def answer(self, inputs: Sequence[PreparedImage], *, painted_out: Sequence[np.ndarray] | None = None) -> list[Answer]:
        """The whole pipeline for prepared images (of any sizes). ``painted_out`` is for
        :meth:`look_past`'s second pass: each input's region (at its size) painted grey, whose pixels
        are then background in every mask, every pet found is asked about by the other-animal
        check, and no photo is looked past again."""
        shapes = {tuple(item.pixels.shape) for item in inputs}
        if len(shapes) > 1:  # preprocessed tensors of different sizes cannot share a batch
            return [
                answer
                for k, item in enumerate(inputs)
                for answer in self.answer([item], painted_out=None if painted_out is None else [painted_out[k]])
            ]
        output, masks = self.first_look([item.pixels for item in inputs])
        output = self._paint_background(output, masks, painted_out)
        first_scores = expit(output.pet_logits)
        output, found, holds_pet, seen_again, suspects = self.look_for_pets(output, masks, inputs)
        tiled: dict[int, list[np.ndarray]] = {}
        if self.config.tile_look_side is not None:
            suspected = self.suspected(holds_pet, first_scores, suspects)
            if suspected:
                output, tiled = self.look_at_tiles(output, masks, inputs, suspected)
            for i, regions in tiled.items():
                found[i], holds_pet[i] = regions, True
        output = self._paint_background(output, masks, painted_out)  # a crop's or a tile's mask may cover the grey
        animals = [regions if pet else [] for regions, pet in zip(found, holds_pet, strict=True)]
        unsure = self.unsure(output, self.config.animal_check_below)
        doubted = [painted_out is not None or i in seen_again or i in tiled or unsure[i] for i in range(len(inputs))]
        # each photo's label map at its own size: the mask logits are final here (the closer look reads crops only)
        full_masks = [mask_from_logits(output.mask_logits[i], item.size) for i, item in enumerate(inputs)]
        output, kept, all_other, classified = self.set_apart_other_animals(output, inputs, masks, full_masks, animals)
        for i, regions in kept.items():
            found[i] = animals[i] = regions
        # the closer look: not where the first look is sure, nor where the second look classified a crop of
        # the pet (a tile is not one: a pet the tile look found is looked at closer where its breed is unsure)
        if self.config.closer_look:
            unsure = self.unsure(output, self.config.closer_look_below)
            asked = [regions if unsure[i] and i not in seen_again else [] for i, regions in enumerate(animals)]
            output = self.look_closer(output, asked, [item.pixels for item in inputs], lambda i: inputs[i].photo)
        decoded = self.decode(output)
        predictions = [
            self._prediction(item, decoded, i, masks[i], full_masks[i], holds_pet[i], animals[i], classified.get(i))
            for i, item in enumerate(inputs)
        ]
        checked = self.check_animals(inputs, predictions, doubted, all_other)
        answers = [
            Answer(prediction, output.mask_logits[i], max(1, len(found[i])))
            for i, prediction in enumerate(checked)
        ]
        if painted_out is None and self.config.look_past_other_animals:
            answers = self.look_past(inputs, predictions, answers)
        return answers

    def look_past(self, inputs: Sequence[PreparedImage], unchecked: Sequence[Prediction], answers: list[Answer]) -> list[Answer]:
        """``answers`` with each photo the other-animal check turned away asked once more
        (``config.look_past_other_animals``), the animals it turned away (``unchecked``: the
        predictions before the check) painted grey (:func:`_painted_out`), and every pet found
        then asked about by the check: where that answer holds a pet, it is the photo's. A dog
        beside a bear whose looks found only the bear is a dog, not "another animal" (in six
        validation draws of scenes, 5 pets at 20-45% of the side were turned away beside another
        animal, against 12); a photo left with no pet, or with only more animals the check turns
        away, stays turned away."""
        turned_away = [i for i, answer in enumerate(answers) if answer.prediction.other_animal]
        if not turned_away:
            return answers
        regions = [_grown(np.logical_or.reduce([pet.region for pet in unchecked[i].pets])) for i in turned_away]
        painted = [_painted_out(inputs[i], region, self.preprocess) for i, region in zip(turned_away, regions, strict=True)]
        again = self.answer(painted, painted_out=regions)
        answers = list(answers)
        for i, answer in zip(turned_away, again, strict=True):
            if answer.prediction.has_pet:
                answers[i] = answer
        return answers

    def _paint_background(
        self, output: PetNetOutput, masks: list[np.ndarray], painted_out: Sequence[np.ndarray] | None
    ) -> PetNetOutput:
        """``output`` (and the label ``masks``, in place) with each image's ``painted_out`` region,
        stretched to the network's size, background (:func:`_as_background`); unchanged without one."""
        for i, region in enumerate(painted_out or ()):
            output = _as_background(output, masks, i, [_stretched(region, masks[i].shape)])
        return output

    def look_for_pets(self, output: PetNetOutput, masks: list[np.ndarray], inputs: Sequence[PreparedImage]) -> _Found:
        """The pet check of a first look's ``output`` (``masks`` its label maps, updated in place) and,
        with ``config.presence_second_look``, the second look (:meth:`look_again`) for the images
        that miss it: what a photo, and a tile of one (:meth:`look_at_tiles`), is first asked."""
        found = [self.regions(mask, output, i) for i, mask in enumerate(masks)]
        holds_pet = (expit(output.pet_logits) >= self.config.pet_threshold).tolist()
        seen_again: dict[int, np.ndarray] = {}
        suspects: dict[int, _Crop] = {}
        if self.config.presence_second_look and not all(holds_pet):
            output, seen_again, suspects = self.look_again(output, masks, inputs, holds_pet)
            for i, region in seen_again.items():
                found[i], holds_pet[i] = [region], True
        return _Found(output, found, holds_pet, seen_again, suspects)

    def decode(self, output: PetNetOutput) -> DecodedOutput:
        """:func:`decode_output` with this model's calibration (``config.breed_temperature``)."""
        return decode_output(output, self.breed_species_index, temperature=self.config.breed_temperature)

    def unsure(self, output: PetNetOutput, below: float) -> list[bool]:
        """Whether each image's look so far gives its top breed less than ``below`` (at
        ``config.breed_temperature``; always, at 1): with ``config.closer_look_below``, the photos the
        closer look is for; with ``config.animal_check_below``, those the other-animal check is for."""
        if below >= 1:
            return [True] * len(output.breed_logits)
        logits = np.asarray(output.breed_logits, dtype=np.float32) / self.config.breed_temperature
        return (softmax(logits, axis=1).max(axis=1) < below).tolist()

    def look_again(
        self, output: PetNetOutput, masks: list[np.ndarray], inputs: Sequence[PreparedImage], holds_pet: Sequence[bool]
    ) -> tuple[PetNetOutput, dict[int, np.ndarray], dict[int, _Crop]]:
        """The second look for a small pet: ``output`` and the label ``masks`` (updated in place) of
        the first look, with each photo that holds no pet by its score cropped around its centre
        heatmap's highest peaks (:func:`~petnet.inference.regions.candidate_boxes`, from
        :data:`CANDIDATE_PEAK` up; ``config.second_look_peaks`` of them, squares of
        ``config.second_look_side``, or without it the highest peak's hill box, as models saved
        before these keys do) and asked again, backbone only
        (:meth:`Network.infer_classification`): most such photos hold no pet, and the decoder would
        double the cost of saying so. Where a photo's best crop (by pet score) reaches the
        threshold, and with ``config.second_look_confirm_side`` a closer square around the same
        peak does too (else the photo's next crop that reaches the threshold and is confirmed,
        :meth:`_confirmed`), that crop runs through the whole network (:meth:`Network.infer_single_view`):
        the photo's pet score becomes the crop's, its species and breed logits the crop's (with the
        confirmation, the log of the mean of the two crops' probabilities, which :func:`decode_output`
        then calibrates like any look's: the closer view was asked anyway, and naming a small pet from
        both views gets its species, which follows the top breed, right more often), and the
        crop's mask logits replace the photo's inside the box. Returns the updated output; for
        each such photo, its one animal: the pet and boundary pixels in the box, or the box when
        there are none; and for each photo asked, its crop with the highest pet score (where the
        tile look looks, :meth:`suspected`)."""
        config, looks = self.config, []
        for i, (item, pet) in enumerate(zip(inputs, holds_pet, strict=True)):
            if pet or output.center_logits is None:
                continue
            heatmap = expit(output.center_logits[i])
            for centre, box in candidate_boxes(heatmap, masks[i].shape, CANDIDATE_PEAK, config.second_look_peaks, config.second_look_side):
                looks.append(_Crop(i, centre, box))
        asked = sorted(self._ask(looks, inputs), key=lambda look: -look.pet_logit)  # each photo's best crop first
        suspects = _best_per_image(asked)
        finds, confirmations = self._confirmed([look for look in asked if self._is_pet(look)], masks, inputs)
        if not finds:
            return output, {}, suspects
        seen = self._seen_whole([look.pixels for look in finds])
        placed = []
        for j, look in enumerate(finds):
            species, breeds = seen.species_logits[j], seen.breed_logits[j]
            if (closer_view := confirmations.get(look.index)) is not None:
                species = mean_probability_logits(species[None], closer_view.species_logits[None])[0]
                breeds = mean_probability_logits(breeds[None], closer_view.breed_logits[None])[0]
            placed.append(_Placed(look.index, look.box, look.pet_logit, species, breeds, seen.mask_logits[j]))
        output = _place(output, masks, placed)
        return output, {look.index: _box_animal(masks[look.index], look.box) for look in finds}, suspects

    def _confirmed(
        self, passing: Sequence[_Crop], masks: list[np.ndarray], inputs: Sequence[PreparedImage]
    ) -> tuple[list[_Crop], dict[int, _Crop]]:
        """The second look's finds among the crops that reach the pet threshold (``passing``, best
        first), and their closer views by photo: without ``config.second_look_confirm_side``, each
        photo's best (no closer views); with it, each photo's best whose closer square around the same
        peak reaches the threshold too (all of a photo's passing crops are asked, at most
        ``config.second_look_peaks``, in passes of :data:`MAX_CROPS_PER_PASS`). A photo's best crop
        can fail its confirmation where a crop beside the pet takes in part of it (0.95-0.98 both, on
        validation), and its next crop is then the pet's."""
        side = self.config.second_look_confirm_side
        if side is None:
            return list(_best_per_image(passing).values()), {}
        closer = self._ask([_Crop(look.index, look.centre, square_box(masks[look.index].shape, look.centre, side)) for look in passing], inputs)
        finds: list[_Crop] = []
        confirmations: dict[int, _Crop] = {}
        for look, closer_view in zip(passing, closer, strict=True):
            if look.index not in confirmations and self._is_pet(closer_view):
                confirmations[look.index] = closer_view
                finds.append(look)
        return finds, confirmations

    def suspected(
        self, holds_pet: Sequence[bool], first_scores: np.ndarray, suspects: Mapping[int, _Crop]
    ) -> dict[int, tuple[float, float] | None]:
        """The photos without a pet that the tile look asks about, and where: those whose second look's
        best crop (``suspects``) scored at least ``config.tile_look_from``, at that crop's centre, and
        else those whose first look did (``first_scores``), anywhere (``None``). Most photos without a
        pet come near neither, and the tile look would cost them three times what the other looks do."""
        asked: dict[int, tuple[float, float] | None] = {}
        for i, pet in enumerate(holds_pet):
            if pet:
                continue
            if (crop := suspects.get(i)) is not None and expit(crop.pet_logit) >= self.config.tile_look_from:
                asked[i] = crop.centre
            elif first_scores[i] >= self.config.tile_look_from:
                asked[i] = None
        return asked

    def look_at_tiles(
        self, output: PetNetOutput, masks: list[np.ndarray], inputs: Sequence[PreparedImage],
        asked: Mapping[int, tuple[float, float] | None],
    ) -> tuple[PetNetOutput, dict[int, list[np.ndarray]]]:  # fmt: skip
        """The tile look for a pet neither look found (``config.tile_look_side``): ``output`` and the
        label ``masks`` (updated in place) with each photo ``asked`` about (:meth:`suspected`) seen
        again as the corner tile (:func:`~petnet.inference.regions.corner_boxes`) nearest the point
        it is asked about, or as all four where it is asked about no point, each tile as a photo of its own:
        the first look and, where it finds no pet and the model has it, the second. A small pet the first look saw at a
        scale its centre head has no peak for gets one at 1/side times that scale. A photo's tile
        with the highest pet score, where that reaches ``config.tile_look_threshold`` (each tile is one
        more chance for another animal to pass as a pet), takes the photo's place as a
        second-look find does (pet score, species and breed logits, mask logits inside the tile),
        and its animals are the tile's, mapped onto the photo. Returns the updated output and, for
        each such photo, its animals."""
        config = self.config
        boxes = []
        for i, point in asked.items():
            corners = corner_boxes(masks[i].shape, config.tile_look_side)
            if point is not None:  # the tile whose centre is nearest the point
                corners = [min(corners, key=lambda box: ((box[1] + box[3]) / 2 - point[0]) ** 2 + ((box[0] + box[2]) / 2 - point[1]) ** 2)]
            boxes += [(i, box) for box in corners]
        tiles = [self._tile(inputs[i], box) for i, box in boxes]
        # one view (the mirror found no more pets), in pairs: one photo's first look, mirrored, is no smaller
        tile_output = self._seen_whole([tile.pixels for tile in tiles], TILES_PER_PASS)
        tile_masks = [mask_from_logits(logits) for logits in tile_output.mask_logits]
        tile_output, found, tile_pets, _, _ = self.look_for_pets(tile_output, tile_masks, tiles)
        scores = expit(tile_output.pet_logits)
        best: dict[int, int] = {}  # each photo's tile with the highest pet score, of those that hold a pet
        for k, pet in enumerate(tile_pets):
            if pet and scores[k] >= config.tile_look_threshold and (boxes[k][0] not in best or scores[k] > scores[best[boxes[k][0]]]):
                best[boxes[k][0]] = k
        output = _place(output, masks, [
            _Placed(i, boxes[k][1], tile_output.pet_logits[k], tile_output.species_logits[k], tile_output.breed_logits[k],
                    tile_output.mask_logits[k])
            for i, k in best.items()
        ])  # fmt: skip
        animals: dict[int, list[np.ndarray]] = {}
        for i, k in best.items():
            left, top, right, bottom = boxes[k][1]
            placed = []
            for region in found[k]:
                animal = np.zeros(masks[i].shape, dtype=bool)
                animal[top:bottom, left:right] = _stretched(region, (bottom - top, right - left))
                if animal.any():
                    placed.append(animal)
            animals[i] = placed or [_box_animal(masks[i], boxes[k][1])]
        return output, animals

    def _seen_whole(self, crops: Sequence[np.ndarray], per_pass: int = MAX_CROPS_PER_PASS) -> PetNetOutput:
        """:meth:`Network.infer_single_view` of network-size ``crops`` in passes of up to ``per_pass``."""
        passes = [
            self.network.infer_single_view(np.stack(crops[start : start + per_pass]))
            for start in range(0, len(crops), per_pass)
        ]
        return PetNetOutput(*(None if passes[0][k] is None else np.concatenate([seen[k] for seen in passes]) for k in range(len(passes[0]))))

    def _is_pet(self, look: _Crop) -> bool:
        """Whether a crop asked about reaches the pet threshold."""
        return bool(expit(look.pet_logit) >= self.config.pet_threshold)

    def _ask(self, looks: Sequence[_Crop], inputs: Sequence[PreparedImage]) -> list[_Crop]:
        """``looks`` with their crop and logits filled in: the crops asked in passes of up to
        :data:`MAX_CROPS_PER_PASS`, backbone only."""
        if not looks:
            return []
        crops = [self._crop(inputs[look.index].pixels, inputs[look.index].photo, look.box) for look in looks]
        passes = [
            self.network.infer_classification(np.stack(crops[start : start + MAX_CROPS_PER_PASS]))
            for start in range(0, len(crops), MAX_CROPS_PER_PASS)
        ]
        species, breeds, pet_logits = (np.concatenate([asked[k] for asked in passes]) for k in range(3))
        return [
            look._replace(
                pixels=crop, pet_logit=float(pet_logits[k]), species_logits=species[k], breed_logits=breeds[k]
            )
            for k, (look, crop) in enumerate(zip(looks, crops, strict=True))
        ]

    def look_closer(
        self,
        output: PetNetOutput,
        animals: Sequence[Sequence[np.ndarray]],
        tensors: Sequence[np.ndarray],
        photo_of: Callable[[int], Image.Image | None],
    ) -> PetNetOutput:
        """``output`` of the first look with a second look at each lone pet.

        ``animals`` are the regions the pipeline answers for in each image (none for an image
        without a pet). An image with exactly one is cropped to that animal's box
        (:func:`~petnet.inference.regions.partial_crop_box`), from its photo (``photo_of(i)``, called only
        for those images) when there is one, else from its network input ``tensors[i]``, and
        classified again at the input size: the pet is seen with more pixels. Its species and breed
        logits become the log of the mean of the photo's and the crop's probabilities
        (:func:`~petnet.inference.decoding.mean_probability_logits`), which :func:`decode_output`
        turns back into that mean. A box covering the whole image would show the photo again and is
        skipped; an image with several animals has each cropped anyway. Masks, pet scores and maps
        stay the photo's.
        """
        looks = []
        for i, (regions, _) in enumerate(zip(animals, tensors, strict=True)):
            if len(regions) == 1 and (box := partial_crop_box(regions[0])) is not None:
                looks.append((i, box))
        if not looks:
            return output
        crops = np.stack([self._crop(tensors[i], photo_of(i), box) for i, box in looks])
        species, breeds, _ = self.network.infer_classification(crops)
        rows = [i for i, _ in looks]

        def averaged(photo_logits: np.ndarray, crop_logits: np.ndarray) -> np.ndarray:
            merged = np.array(photo_logits, dtype=np.float32)
            merged[rows] = mean_probability_logits(merged[rows], crop_logits)
            return merged

        return output._replace(
            species_logits=averaged(output.species_logits, species), breed_logits=averaged(output.breed_logits, breeds)
        )

    def set_apart_other_animals(
        self, output: PetNetOutput, inputs: Sequence[PreparedImage], masks: list[np.ndarray], full_masks: list[np.ndarray],
        animals: Sequence[Sequence[np.ndarray]],
    ) -> _SetApart:  # fmt: skip
        """The other-animal check on every animal of each photo with several (``animals``: regions on
        the label ``masks`` of ``output``, ``full_masks`` the same at the photos' sizes), whether or not
        the pipeline doubts it. A dog in front of a pelican should get one card, not a second one
        calling the pelican an Abyssinian: in the validation scenes most pets found but not as one
        animal were beside the background photo's own animal (docs/experiments.md). The animals that
        look like other animals (odds at or above ``config.animal_check_threshold``, or at least
        :data:`SET_APART_ODDS` for an animal whose own crop misses ``config.pet_threshold``; where every
        animal of a photo meets the looser rule, the threshold alone decides) are set apart while one
        passes, and their pixels become background in
        every mask (``masks`` and ``full_masks`` updated in place): the check has overruled the network
        there, and the demo should not paint the pelican as a pet. A photo whose animals all look like
        other animals keeps them here, and :meth:`check_animals` turns it away where the pipeline doubts
        it. Nothing without a threshold or a check; on photos with several animals only, one check view
        and one network crop per animal, the crops' pass the one :meth:`_prediction` names the animals
        kept by (their rows in ``classified``; a photo left with one animal is named as a one-animal photo)."""
        threshold = self.config.animal_check_threshold
        asked = [i for i, regions in enumerate(animals) if len(regions) > 1]
        if threshold is None or self.animal_check is None or not asked:
            return _SetApart(output, {}, {}, {})
        looks = [(i, region) for i in asked for region in animals[i]]
        size = self.animal_check.size
        odds = self.animal_check.odds(np.stack([
            self.animal_view(inputs[i], _photo_region(region, masks[i], inputs[i].size, full_masks[i]), size) for i, region in looks
        ]))  # fmt: skip
        crops = self._classify_crops([(inputs[i], region) for i, region in looks])
        other = odds >= threshold
        not_pet = other | ((expit(crops.pet_logits) < self.config.pet_threshold) & (odds >= SET_APART_ODDS))
        kept, all_other, classified = {}, {}, {}
        for i in asked:
            rows = np.flatnonzero([owner == i for owner, _ in looks])
            all_other[i] = bool(other[rows].all())
            flags = not_pet[rows] if not not_pet[rows].all() else other[rows]  # one animal always passes
            if flags.any() and not flags.all():
                kept[i] = [region for region, flag in zip(animals[i], flags, strict=True) if not flag]
                output = _as_background(output, masks, i, [region for region, flag in zip(animals[i], flags, strict=True) if flag])
                full_masks[i] = mask_from_logits(output.mask_logits[i], inputs[i].size)
                rows = rows[~flags]
            classified[i] = crops.apply(lambda values, rows=rows: values[rows])
        return _SetApart(output, kept, all_other, classified)

    def check_animals(
        self, inputs: Sequence[PreparedImage], predictions: list[Prediction], doubted: Sequence[bool],
        all_other: Mapping[int, bool] | None = None,
    ) -> list[Prediction]:  # fmt: skip
        """``predictions`` with those the other-animal check takes for another animal turned away
        (``has_pet`` False, ``other_animal`` True, no pets). Asked only about photos that hold a pet
        and are ``doubted`` (found by the second or the tile look, or a top breed below
        ``config.animal_check_below``): every animal found, cut out on its own (:meth:`animal_view`),
        given ImageNet's log-odds of other animals against dogs and domestic cats at or above
        ``config.animal_check_threshold``. A photo is turned away only when all its animals look like
        other animals. ``all_other`` tells, for the photos :meth:`set_apart_other_animals` already asked
        about, whether all their animals looked like other animals; they are not asked again. Unchanged without a
        threshold or a check (a :class:`Predictor` built without :func:`petnet.load_model` says so once)."""
        threshold = self.config.animal_check_threshold
        if threshold is None:
            return predictions
        if self.animal_check is None:
            if not self._warned_unchecked:
                log.warning("config.json sets animal_check_threshold, but this predictor has no animal check "
                            "(petnet.load_model attaches it): other animals are not turned away.")  # fmt: skip
                self._warned_unchecked = True
            return predictions
        all_other = all_other or {}
        doubted_pets = [i for i, prediction in enumerate(predictions) if prediction.has_pet and doubted[i]]
        turned_away = {i for i in doubted_pets if all_other.get(i)}
        asked = [i for i in doubted_pets if i not in all_other]
        looks = [(i, pet) for i in asked for pet in predictions[i].pets]
        if looks:
            size = self.animal_check.size
            odds = self.animal_check.odds(np.stack([self.animal_view(inputs[i], pet.region, size) for i, pet in looks]))
            turned_away |= set(asked) - {i for (i, _), other in zip(looks, odds >= threshold, strict=True) if not other}
        if not turned_away:
            return predictions
        return [
            replace(prediction, has_pet=False, other_animal=True, pets=()) if i in turned_away else prediction
            for i, prediction in enumerate(predictions)
        ]

    def animal_view(self, item: PreparedImage, region: np.ndarray, size: int) -> np.ndarray:
        """What the other-animal check is shown of one animal found (``region``, bool at the photo's
        size, as :attr:`Pet.region`): the box around it at ``size`` x ``size`` (the check's input), every
        pixel outside the region mid-grey (:func:`~petnet.inference.animal_check.check_input`). So a pet
        beside another animal, or placed into a photo of one, is judged by itself."""
        left, top, right, bottom = box = region_box(region)
        photo = item.photo if item.photo is not None else _photo_of(item.pixels, self.config)
        return check_input(photo.crop(box), region[top:bottom, left:right], size)

    def _prediction(
        self, item: PreparedImage, decoded: DecodedOutput, i: int, mask: np.ndarray, full_mask: np.ndarray,
        has_pet: bool, animals: list[np.ndarray], crops: PetNetOutput | None = None,
    ) -> Prediction:  # fmt: skip
        """One image's result (``mask`` its label map, ``full_mask`` the same at the photo's size,
        ``animals`` its regions when it holds a pet); photos with several animals are classified by a
        pass over their crops (``crops``, one row an animal, where :meth:`set_apart_other_animals` made it)."""
        names = self.config
        whole_photo = np.ones(mask.shape, dtype=bool)
        regions = (animals or [whole_photo]) if has_pet else []
        classified, row = decoded, i  # what the top-level fields read: the largest animal's crop, or the photo
        if len(regions) > 1:
            classified, row = self.decode(crops if crops is not None else self._classify_crops([(item, region) for region in regions])), 0
            pets = [self._pet(classified, j, region, mask, item.size, full_mask) for j, region in enumerate(regions)]
        else:
            pets = [self._pet(decoded, i, region, mask, item.size, full_mask) for region in regions]
        first = pets[0] if pets else self._pet(decoded, i, whole_photo, mask, item.size, full_mask)
        return Prediction(
            species=first.species,
            breed=first.breed,
            mask=mask,
            species_confidence=first.species_confidence,
            breed_confidences=first.breed_confidences,
            species_probabilities=dict(zip(names.species_names, classified.species_probabilities[row].tolist())),
            breed_probabilities=dict(zip(names.breed_names, classified.breed_probabilities[row].tolist())),
            full_mask=full_mask,
            mask_probabilities=decoded.mask_probabilities[i],
            pet_score=float(decoded.pet_scores[i]),
            has_pet=has_pet,
            pets=tuple(pets),
        )

    def _classify_crops(self, looks: Sequence[tuple[PreparedImage, np.ndarray]]) -> PetNetOutput:
        """The network's passes over a crop around each (image, region on its label map) of ``looks``."""
        return self._seen_whole([self._crop(item.pixels, item.photo, crop_box(region)) for item, region in looks])

    def _crop(self, tensor: np.ndarray, photo: Image.Image | None, box: tuple[int, int, int, int]) -> np.ndarray:
        """The network input showing ``box`` (pixels of the network-size input ``tensor``), cut from
        the photo's own pixels when there is a photo (a large photo has more detail than the input)."""
        if photo is None:
            left, top, right, bottom = box
            return resize_channels(tensor[:, top:bottom, left:right], tensor.shape[-2:])
        return self.preprocess(photo.crop(_photo_box(tensor.shape[-2:], photo, box)))

    def _tile(self, item: PreparedImage, box: tuple[int, int, int, int]) -> PreparedImage:
        """``box`` of a prepared image (input pixels) as a prepared image of its own, its photo cut
        from the photo's pixels when there is one (as :meth:`_crop` cuts it)."""
        if item.photo is None:
            return PreparedImage(self._crop(item.pixels, None, box), (box[3] - box[1], box[2] - box[0]), None)
        photo = item.photo.crop(_photo_box(item.pixels.shape[-2:], item.photo, box))
        return PreparedImage(self.preprocess(photo), (photo.height, photo.width), photo)

    def _pet(
        self, decoded: DecodedOutput, i: int, region: np.ndarray, mask: np.ndarray, size: tuple[int, int],
        full_mask: np.ndarray,
    ) -> Pet:  # fmt: skip
        """Row ``i`` of ``decoded`` as one animal whose ``region`` (network size, on the label ``mask``)
        maps onto the photo's label map ``full_mask`` as :func:`_photo_region` maps it."""
        species = int(decoded.species_index[i])
        full_region = _photo_region(region, mask, size, full_mask)
        names = self.config
        return Pet(
            species=names.species_names[species],
            species_confidence=float(decoded.species_probabilities[i, species]),
            breed=tuple(names.breed_names[j] for j in decoded.top_breeds[i].tolist()),
            breed_confidences=tuple(decoded.top_breed_confidences[i].tolist()),
            box=region_box(full_region),
            region=full_region,
        )


def _best_per_image(crops: Sequence[_Crop]) -> dict[int, _Crop]:
    """Each image's first crop among ``crops``, by image: its best, as the second look orders them."""
    best: dict[int, _Crop] = {}
    for crop in crops:
        best.setdefault(crop.index, crop)
    return best


def _as_background(output: PetNetOutput, masks: list[np.ndarray], i: int, regions: Sequence[np.ndarray]) -> PetNetOutput:
    """``output`` with image ``i``'s mask logits sure of background (:data:`SET_APART_LOGIT`) over the
    pet and boundary pixels of ``regions``, and its label map ``masks[i]`` so too (in place)."""
    pixels = np.logical_or.reduce(regions) & (masks[i] != BACKGROUND_INDEX)
    masks[i][pixels] = BACKGROUND_INDEX
    logits = np.array(output.mask_logits, dtype=np.float32)  # a copy: the arrays may be the network's
    logits[i][:, pixels] = -SET_APART_LOGIT
    logits[i, BACKGROUND_INDEX][pixels] = SET_APART_LOGIT
    return output._replace(mask_logits=logits)


PAINT_GROW = 0.03
"""How far past its region an animal turned away is painted out before the photo is looked at again
(:meth:`Predictor.look_past`), as a fraction of the photo's shorter side: a region's edge misses some
of the fur, which could pass for a pet on its own."""
MID_GREY = 128
"""What an animal turned away is painted with (8-bit): no colour or texture for the network to read,
the middle of the range the inputs are normalised over."""


def _grown(region: np.ndarray) -> np.ndarray:
    """A bool ``region`` grown by :data:`PAINT_GROW` of its shorter side: a square dilation
    (a maximum filter, linear in the photo's size)."""
    grow = max(1, round(PAINT_GROW * min(region.shape)))
    return ndimage.maximum_filter(region, size=2 * grow + 1)


def _painted_out(item: PreparedImage, region: np.ndarray, preprocess: Callable[[Image.Image], np.ndarray]) -> PreparedImage:
    """``item`` with ``region`` (at its size) :data:`MID_GREY`: painted on the photo where there is
    one, on the preprocessed input where there is not (the grey as ``preprocess`` makes it, so the
    two agree)."""
    if item.photo is None:
        pixels = item.pixels.copy()
        pixels[:, region] = preprocess(Image.new("RGB", (1, 1), (MID_GREY,) * 3))[:, :1, 0]
        return PreparedImage(pixels, item.size, None)
    rgb = np.array(item.photo.convert("RGB"))
    rgb[region] = MID_GREY
    painted = Image.fromarray(rgb)
    return PreparedImage(preprocess(painted), item.size, painted)


def _photo_region(region: np.ndarray, mask: np.ndarray, size: tuple[int, int], full_mask: np.ndarray) -> np.ndarray:
    """An animal's ``region`` (network size, on the label ``mask``) on the photo (``size``, its label map
    ``full_mask``): the photo's pet and boundary pixels in it where the region holds pet pixels, else
    (an animal the mask missed, or no pet pixels anywhere) its background ones, else the region stretched."""
    stretched = _stretched(region, size)
    on_mask = bool((region & (mask != BACKGROUND_INDEX)).any())
    full_region = stretched & ((full_mask != BACKGROUND_INDEX) if on_mask else (full_mask == BACKGROUND_INDEX))
    return full_region if full_region.any() else stretched


def _photo_of(pixels: np.ndarray, config: PetNetConfig) -> Image.Image:
    """The 8-bit photo a preprocessed (3, H, W) input shows: its normalisation undone."""
    mean, std = np.asarray(config.mean, dtype=np.float32), np.asarray(config.std, dtype=np.float32)
    rgb = pixels.transpose(1, 2, 0) * std + mean
    return Image.fromarray((rgb * 255).round().clip(0, 255).astype(np.uint8))


class _Found(NamedTuple):
    """What :meth:`Predictor.look_for_pets` found in a batch of images."""

    output: PetNetOutput
    """The first look's output, with the second look's finds in their images' places."""
    regions: list[list[np.ndarray]]
    """Each image's animal regions (a second-look find's one region for an image it found a pet in)."""
    holds_pet: list[bool]
    seen_again: dict[int, np.ndarray]
    """The second look's finds, by image."""
    suspects: dict[int, _Crop]
    """Each image the second look asked about, its crop with the highest pet score."""


class _SetApart(NamedTuple):
    """What :meth:`Predictor.set_apart_other_animals` leaves of a batch."""

    output: PetNetOutput
    """The output, its mask logits background where an animal was set apart."""
    kept: dict[int, list[np.ndarray]]
    """The photos that keep fewer animals, with the animals kept."""
    all_other: dict[int, bool]
    """For every photo asked about, whether all its animals looked like other animals (by
    ``config.animal_check_threshold`` alone: only that turns a photo away)."""
    classified: dict[int, PetNetOutput]
    """For every photo asked about, the network's pass over its crops, one row per animal it keeps."""


class _Placed(NamedTuple):
    """What a crop of image ``index`` (its ``box``, input pixels) says, put in the image's place by :func:`_place`."""

    index: int
    box: tuple[int, int, int, int]
    pet_logit: float
    species_logits: np.ndarray
    breed_logits: np.ndarray
    mask_logits: np.ndarray


def _place(output: PetNetOutput, masks: list[np.ndarray], placed: Sequence[_Placed]) -> PetNetOutput:
    """``output`` with each crop a look found a pet in taking its image's place: the image's pet score
    becomes the crop's (the score that decided, so ``has_pet`` and ``pet_score`` agree), its species
    and breed logits the crop's, and the crop's mask logits replace the image's inside the box; the
    label ``masks`` are updated in place."""
    if not placed:
        return output
    names = ("pet_logits", "species_logits", "breed_logits", "mask_logits")
    updated = {name: np.array(getattr(output, name), dtype=np.float32) for name in names}
    for crop in placed:
        i, (left, top, right, bottom) = crop.index, crop.box
        updated["pet_logits"][i] = crop.pet_logit
        updated["species_logits"][i], updated["breed_logits"][i] = crop.species_logits, crop.breed_logits
        updated["mask_logits"][i][:, top:bottom, left:right] = resize_scores(crop.mask_logits, (bottom - top, right - left))
        masks[i] = mask_from_logits(updated["mask_logits"][i])
    return output._replace(**updated)


def _photo_box(shape: tuple[int, int], photo: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``box`` of an input of ``shape`` (H, W) in the pixels of the ``photo`` it was made from (at least one pixel)."""
    scale_y, scale_x = photo.height / shape[0], photo.width / shape[1]
    left, top = round(box[0] * scale_x), round(box[1] * scale_y)
    return left, top, max(left + 1, round(box[2] * scale_x)), max(top + 1, round(box[3] * scale_y))


def _box_animal(mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The animal a look found in ``box`` of a label ``mask``: its pet and boundary pixels there, or
    the box when there are none."""
    inside = box_region(mask.shape, box)
    animal = inside & (mask != BACKGROUND_INDEX)
    return animal if animal.any() else inside


def _nearest(size_in: int, size_out: int) -> np.ndarray:
    """The source pixel of each of ``size_out`` pixels along an axis stretched by nearest neighbour:
    ``floor(i * size_in / size_out)`` in float32, PyTorch's ``"nearest"`` (not Pillow's, which takes
    pixel centres), so an animal's region lands on the photo's pixels where it always has."""
    scale = np.float32(size_in) / np.float32(size_out)
    return np.minimum((np.arange(size_out, dtype=np.float32) * scale).astype(np.int64), size_in - 1)


def _stretched(region: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool ``region`` stretched to ``size`` (H, W) by nearest neighbour (:func:`_nearest`)."""
    return region[np.ix_(_nearest(region.shape[0], size[0]), _nearest(region.shape[1], size[1]))]


def _preprocessed_input(image: object) -> np.ndarray | None:
    """``image`` as a float32 (3, H, W) array when it is a preprocessed input (a PyTorch tensor, as
    the original PetNet took, or a float numpy array; a batch of one too), ``None`` for a photo.
    Tensors are told without importing torch: one exists only where its caller imported torch."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        array = (image.float() if image.is_floating_point() else image).numpy()  # bfloat16 has no numpy type
    elif isinstance(image, np.ndarray) and np.issubdtype(image.dtype, np.floating):
        array = image
    else:
        return None
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[0] != 3 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"A tensor or float array input must be a preprocessed float 3xHxW image, got {array.shape} {array.dtype}.")
    return array.astype(np.float32, copy=False)
