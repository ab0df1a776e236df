"""Decoding network outputs: species-conditioned breeds, pet presence, one answer per animal."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.special import expit, softmax

from petnet.config import PetNetConfig
from petnet.inference.decoding import PetNetOutput, decode_output, mean_probability_logits
from petnet.inference.regions import box_region, crop_box, partial_crop_box, pet_regions, region_box
from petnet.inference.results import Pet, Prediction
from petnet.labels import BREED_NAMES, BREED_SPECIES
from petnet.models.network import PetNet

SIZE = 64


def _mask_with_blobs(*boxes: tuple[int, int, int, int], size: int = SIZE) -> np.ndarray:
    """Background mask with a pet rectangle per (left, top, right, bottom) box, each ringed by boundary."""
    mask = np.ones((size, size), dtype=np.uint8)
    for left, top, right, bottom in boxes:
        mask[top - 1 : bottom + 1, left - 1 : right + 1] = 2
        mask[top:bottom, left:right] = 0
    return mask


BREED_SPECIES_INDEX = np.array([0 if s == "cat" else 1 for s in BREED_SPECIES])
CAT_BREEDS = [i for i, s in enumerate(BREED_SPECIES) if s == "cat"]
DOG_BREEDS = [i for i, s in enumerate(BREED_SPECIES) if s == "dog"]


def _output(species_logits: list[float], breed_logits: np.ndarray) -> PetNetOutput:
    return PetNetOutput(np.array([species_logits], dtype=np.float32), breed_logits[None], np.zeros((1, 3, 4, 4), np.float32),
                        np.array([3.0], dtype=np.float32), np.zeros((1, 37, 1, 1), np.float32))  # fmt: skip


def test_decode_output_names_the_species_of_the_top_breed_and_ranks_only_its_breeds() -> None:
    breed_logits = np.zeros(37, dtype=np.float32)
    breed_logits[DOG_BREEDS[0]] = 9  # a dog breed scores highest; the species head says cat
    breed_logits[CAT_BREEDS[:2]] = 8  # the next two are cats', yet only dog breeds are ranked
    decoded = decode_output(_output([2.0, 0.0], breed_logits), BREED_SPECIES_INDEX)
    assert decoded.species_index.tolist() == [1]
    assert decoded.top_breeds[0, 0] == DOG_BREEDS[0]
    assert all(BREED_SPECIES[i] == "dog" for i in decoded.top_breeds[0].tolist())
    assert decoded.top_breed_confidences[0].sum() <= 1 + 1e-6
    assert decoded.pet_scores[0] == pytest.approx(expit(3.0))
    assert np.allclose(decoded.mask_probabilities.sum(axis=1), 1)
    assert all(values.dtype == np.float32 for values in (decoded.breed_probabilities, decoded.mask_probabilities, decoded.pet_scores))


def test_species_probabilities_sum_each_species_breeds_even_when_the_top_breed_is_of_the_other() -> None:
    breed_logits = np.zeros(37, dtype=np.float32)
    breed_logits[CAT_BREEDS[0]] = 2.0  # the likeliest single breed is a cat's, but 25 dog breeds hold more in all
    decoded = decode_output(_output([0.0, 2.0], breed_logits), BREED_SPECIES_INDEX)
    probabilities = softmax(breed_logits)
    assert decoded.species_index.tolist() == [0]
    assert decoded.species_probabilities[0].tolist() == pytest.approx(
        [probabilities[CAT_BREEDS].sum(), probabilities[DOG_BREEDS].sum()]
    )
    assert decoded.species_probabilities[0, 0] < 0.5


def test_decoding_equals_the_torch_operations_it_replaced() -> None:
    """The numpy decoding gives what the torch one gave (softmax, sigmoid, top-k of a species' breeds)."""
    rng = np.random.default_rng(0)
    breed_logits = rng.normal(0, 3, (5, 37)).astype(np.float32)
    output = PetNetOutput(rng.normal(size=(5, 2)).astype(np.float32), breed_logits, rng.normal(size=(5, 3, 6, 6)).astype(np.float32),
                          rng.normal(size=5).astype(np.float32), np.zeros((5, 37, 1, 1), np.float32))  # fmt: skip
    decoded = decode_output(output, BREED_SPECIES_INDEX, temperature=0.7)
    tensors = output.apply(torch.from_numpy)
    probabilities = (tensors.breed_logits / 0.7).softmax(dim=1)
    species = torch.from_numpy(BREED_SPECIES_INDEX)[probabilities.argmax(dim=1)]
    allowed = torch.from_numpy(BREED_SPECIES_INDEX)[None] == species[:, None]
    np.testing.assert_allclose(decoded.breed_probabilities, probabilities.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(decoded.top_breeds, (tensors.breed_logits / 0.7).masked_fill(~allowed, -torch.inf).topk(3).indices)
    np.testing.assert_allclose(decoded.pet_scores, tensors.pet_logits.sigmoid().numpy(), rtol=1e-6)
    np.testing.assert_allclose(decoded.mask_probabilities, tensors.mask_logits.softmax(dim=1).numpy(), rtol=1e-5, atol=1e-7)


NO_BREED_EVIDENCE = np.zeros((37, 2, 2), dtype=np.float32)
"""Breed maps that see every breed everywhere alike."""


def _breed_maps(left_breed: int, right_breed: int) -> np.ndarray:
    """Breed maps that see one breed, confidently, in the left half and another in the right half."""
    maps = np.zeros((37, 2, 2), dtype=np.float32)
    maps[left_breed, :, 0] = maps[right_breed, :, 1] = 20.0
    return maps


def test_pet_regions_one_per_animal_largest_first_with_their_outlines() -> None:
    mask = _mask_with_blobs((5, 5, 25, 30), (35, 30, 60, 60))
    regions = pet_regions(mask, NO_BREED_EVIDENCE)
    assert len(regions) == 2
    assert regions[0].sum() > regions[1].sum()
    assert region_box(regions[0]) == (34, 29, 61, 61)  # the boundary ring belongs to its animal
    assert region_box(regions[1]) == (4, 4, 26, 31)
    assert not (regions[0] & regions[1]).any()


def test_specks_and_fragments_are_not_animals() -> None:
    assert pet_regions(np.ones((SIZE, SIZE), dtype=np.uint8), NO_BREED_EVIDENCE) == []
    speck = _mask_with_blobs((5, 5, 40, 40), (50, 50, 53, 53))  # 9 pixels: under 1% of the photo
    assert len(pet_regions(speck, NO_BREED_EVIDENCE)) == 1
    fragment = _mask_with_blobs((2, 2, 52, 52), (55, 5, 62, 22))  # 119 pixels, under 1/20 of the first
    assert len(pet_regions(fragment, NO_BREED_EVIDENCE)) == 1


def _one_outline_cut_in_two() -> np.ndarray:
    """Two pet rectangles inside one ring of boundary, parted by a boundary line down the middle:
    one animal cut by a collar, or two animals that touch."""
    mask = _mask_with_blobs((8, 10, 56, 54))
    mask[10:54, 31:33] = 2
    return mask


def test_pieces_of_one_outline_are_one_animal_unless_their_breeds_differ() -> None:
    mask = _one_outline_cut_in_two()
    assert len(pet_regions(mask, NO_BREED_EVIDENCE)) == 1, "a collar line does not make two pets"
    assert len(pet_regions(mask, _breed_maps(0, 0))) == 1, "the same breed on both sides"
    regions = pet_regions(mask, _breed_maps(5, 20))
    assert len(regions) == 2 and not (regions[0] & regions[1]).any()
    lefts = sorted(region_box(region)[0] for region in regions)
    assert lefts[0] < SIZE // 2 <= lefts[1], "one animal on each side of the line"


def test_class_map_averages_to_the_head_output(model: PetNet) -> None:
    features = torch.randn(2, model.breed_head[-1].in_features, 3, 4)
    assert model.breed_head.class_map(features).mean(dim=(2, 3)).allclose(model.breed_head(features), atol=1e-5)


class _StubNetwork:
    """Makes a random PetNet see a fixed mask and pet score, and counts its forward passes."""

    def __init__(self, model: PetNet, mask: np.ndarray, pet_logit: float) -> None:
        self.mask_logits = torch.nn.functional.one_hot(torch.from_numpy(mask).long(), 3).permute(2, 0, 1).float() * 10
        self.pet_logit = pet_logit
        self.forward = model.forward
        self.images_seen: list[int] = []

    def __call__(self, images: torch.Tensor) -> PetNetOutput:
        self.images_seen.append(len(images))
        output = self.forward(images)
        mask = torch.nn.functional.interpolate(self.mask_logits[None], size=images.shape[-2:])
        return output._replace(mask_logits=mask.expand(len(images), -1, -1, -1),
                               pet_logits=torch.full((len(images),), self.pet_logit))  # fmt: skip


@pytest.fixture
def model() -> PetNet:
    torch.manual_seed(0)
    return PetNet(PetNetConfig(image_size=SIZE, mirror_averaged_mask=False))


def test_two_animals_get_two_answers_for_one_extra_pass(model: PetNet, monkeypatch) -> None:
    stub = _StubNetwork(model, _mask_with_blobs((4, 8, 28, 56), (36, 20, 60, 50)), pet_logit=5.0)
    monkeypatch.setattr(model, "forward", stub)
    photo = Image.new("RGB", (256, 128), (90, 120, 30))
    prediction = model.predict(photo)
    assert prediction.has_pet and len(prediction.pets) == 2
    assert stub.images_seen == [1, 2], "the photo, then both crops in one batch"
    first, second = prediction.pets
    assert first.region.sum() > second.region.sum() and first.region.shape == (128, 256)
    left, top, right, bottom = first.box
    assert 0 <= left < right <= 256 and 0 <= top < bottom <= 128
    assert (prediction.species, prediction.breed) == (first.species, first.breed), "top level = largest animal"
    assert [pet["box"] for pet in prediction.to_dict()["pets"]] == [list(first.box), list(second.box)]


def test_no_pet_below_the_threshold(model: PetNet, monkeypatch) -> None:
    stub = _StubNetwork(model, _mask_with_blobs((4, 8, 28, 56)), pet_logit=-5.0)
    monkeypatch.setattr(model, "forward", stub)
    prediction = model.predict(Image.new("RGB", (80, 80), (200, 200, 200)))
    assert not prediction.has_pet and prediction.pets == ()
    assert prediction.pet_score == pytest.approx(expit(-5.0))
    assert prediction.species in {"cat", "dog"} and len(prediction.breed) == 3, "the PetNet contract still holds"
    assert stub.images_seen == [1]


def test_threshold_travels_in_the_config(model: PetNet, monkeypatch, tmp_path) -> None:
    lenient = PetNet(dataclasses.replace(model.config, pet_threshold=0.0))
    lenient.load_state_dict(model.state_dict())
    lenient.save_pretrained(tmp_path)
    assert PetNet.from_pretrained(tmp_path).config.pet_threshold == 0.0
    prediction = lenient.predict(torch.randn(3, 128, 128))
    assert prediction.has_pet and len(prediction.pets) == 1
    assert prediction["mask"].shape == (128, 128)


def test_crop_box_widens_the_region_by_the_margin_within_the_image() -> None:
    region = np.zeros((SIZE, SIZE), dtype=bool)
    region[10:30, 20:40] = True
    assert crop_box(region, margin=0.1) == (18, 8, 42, 32)
    region[0:50, 2:62] = True
    assert crop_box(region, margin=0.1) == (0, 0, SIZE, 55), "clipped to the image"


def test_a_crop_box_that_is_the_whole_image_is_no_crop() -> None:
    region = np.zeros((SIZE, SIZE), dtype=bool)
    region[10:30, 20:40] = True
    assert partial_crop_box(region) == crop_box(region)
    assert np.array_equal(box_region(region.shape, region_box(region)), region), "a box's pixels give the box back"
    region[:, :] = True
    assert partial_crop_box(region) is None


def test_infer_classification_is_the_forward_pass_without_the_decoder(model: PetNet) -> None:
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.inference_mode():
        full, (species, breeds, pets) = model(images), model.infer_classification(images)
    torch.testing.assert_close(species, full.species_logits)
    torch.testing.assert_close(breeds, full.breed_logits)
    torch.testing.assert_close(pets, full.pet_logits)


@pytest.fixture
def closer_model(model: PetNet) -> PetNet:
    closer = PetNet(dataclasses.replace(model.config, closer_look=True))
    closer.load_state_dict(model.state_dict())
    return closer


def test_a_closer_look_averages_the_photo_and_the_crop_probabilities(closer_model: PetNet, monkeypatch) -> None:
    mask = _mask_with_blobs((4, 8, 28, 56))  # pet and boundary pixels span (3, 7, 29, 57) of the 64 px input
    stub = _StubNetwork(closer_model, mask, pet_logit=5.0)
    monkeypatch.setattr(closer_model, "forward", stub)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8))
    prediction = closer_model.predict(photo)
    assert stub.images_seen == [1], "the crop skips the decoder"
    left, top, right, bottom = crop_box(mask != 1)  # (0, 2, 32, 62), in input pixels; the photo is 200x100
    assert (left, top, right, bottom) == (0, 2, 32, 62)
    with torch.inference_mode():
        photo_breeds = stub.forward(closer_model.preprocess(photo)[None]).breed_logits.softmax(1)
        crop = closer_model.preprocess(photo.crop((0, 3, 100, 97)))  # scaled by 200/64 and 100/64
        crop_breeds = closer_model.infer_classification(crop[None])[1].softmax(1)
    expected = ((photo_breeds + crop_breeds) / 2)[0]
    assert list(prediction.breed_probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-6)


def _region(left: int, top: int, right: int, bottom: int) -> np.ndarray:
    region = np.zeros((SIZE, SIZE), dtype=bool)
    region[top:bottom, left:right] = True
    return region


def _random_output(count: int, rng: np.random.Generator) -> PetNetOutput:
    return PetNetOutput(rng.normal(size=(count, 2)).astype(np.float32), rng.normal(size=(count, 37)).astype(np.float32),
                        np.zeros((count, 3, SIZE, SIZE), np.float32), np.zeros(count, np.float32),
                        np.zeros((count, 37, 1, 1), np.float32))  # fmt: skip


def test_a_closer_look_only_at_lone_animals_that_do_not_fill_the_image(closer_model: PetNet) -> None:
    rng = np.random.default_rng(0)
    tensors = [rng.normal(size=(3, SIZE, SIZE)).astype(np.float32) for _ in range(4)]
    output = _random_output(4, rng)
    lone, whole = _region(10, 12, 40, 50), _region(0, 0, SIZE, SIZE)
    animals = [[lone], [], [lone, _region(44, 4, 60, 20)], [whole]]  # looked at: row 0 only
    photos_asked: list[int] = []
    looked = closer_model.predictor.look_closer(output, animals, tensors, lambda i: photos_asked.append(i))
    assert photos_asked == [0], "a photo is fetched only for a crop"
    np.testing.assert_array_equal(looked.breed_logits[1:], output.breed_logits[1:])
    np.testing.assert_array_equal(looked.species_logits[1:], output.species_logits[1:])
    crop = torch.nn.functional.interpolate(torch.from_numpy(tensors[0][None, :, 8:54, 7:43]), size=(SIZE, SIZE), mode="bilinear",
                                           antialias=True)  # crop_box(lone): (7, 8, 43, 54)  # fmt: skip
    with torch.inference_mode():
        species, breeds, _ = (logits.numpy() for logits in closer_model.infer_classification(crop))
    np.testing.assert_allclose(softmax(looked.breed_logits[:1], axis=1), (softmax(output.breed_logits[:1], axis=1) + softmax(breeds, axis=1)) / 2,
                               atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(softmax(looked.species_logits[:1], axis=1),
                               (softmax(output.species_logits[:1], axis=1) + softmax(species, axis=1)) / 2, atol=1e-5)  # fmt: skip


def test_a_closer_look_at_a_speck_of_a_small_photo_still_crops_a_pixel(closer_model: PetNet) -> None:
    rng = np.random.default_rng(0)
    photo = Image.new("RGB", (20, 20), (120, 80, 40))
    tensors = [rng.normal(size=(3, SIZE, SIZE)).astype(np.float32)]
    looked = closer_model.predictor.look_closer(_random_output(1, rng), [[_region(7, 7, 8, 8)]], tensors, lambda i: photo)
    assert np.isfinite(looked.breed_logits).all()


def test_mean_probability_logits_stay_finite_where_both_views_are_sure() -> None:
    first = np.array([[0.0, 200.0, -200.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    second = np.array([[0.0, 150.0, -300.0], [3.0, 2.0, 1.0]], dtype=np.float32)
    mean = mean_probability_logits(first, second)
    assert np.isfinite(mean).all()
    np.testing.assert_allclose(softmax(mean, axis=1), (softmax(first, axis=1) + softmax(second, axis=1)) / 2, atol=1e-6)


def test_a_temperature_changes_the_probabilities_shown_but_no_answer() -> None:
    """Calibration (``config.breed_temperature``): sharper probabilities, the same species and
    breeds in the same order; breed confidences share the species' denominator."""
    breed_logits = np.random.default_rng(0).permutation(np.linspace(-2, 2, 37, dtype=np.float32))
    output = _output([0.0, 0.0], breed_logits)
    plain, sharp = decode_output(output, BREED_SPECIES_INDEX), decode_output(output, BREED_SPECIES_INDEX, temperature=0.4)
    assert np.array_equal(plain.top_breeds, sharp.top_breeds) and np.array_equal(plain.species_index, sharp.species_index)
    assert sharp.top_breed_confidences[0, 0] > plain.top_breed_confidences[0, 0]
    assert np.allclose(sharp.breed_probabilities, softmax(breed_logits / 0.4)[None])
    assert np.allclose(sharp.top_breed_confidences, np.take_along_axis(sharp.breed_probabilities, sharp.top_breeds, axis=1))
    named = sharp.species_probabilities[0, sharp.species_index[0]]
    assert sharp.top_breed_confidences[0].sum() <= named + 1e-6  # never a breed surer than its species


class _SecondLookNetwork:
    """A numpy ``Network`` whose first look sees no pet but a centre peak, and whose crops show one
    (or not): the second look's inputs and outputs, with every pass recorded."""

    def __init__(self, config: PetNetConfig, crop_pet_logit: float, peak_logit: float = 0.0) -> None:
        self.config, self.crop_pet_logit, self.peak_logit = config, crop_pet_logit, peak_logit
        self.passes: list[tuple[str, int]] = []

    def _output(self, count: int, pet_logit: float, species: float) -> PetNetOutput:
        mask = np.zeros((count, 3, SIZE, SIZE), np.float32)
        mask[:, 1] = 5  # background everywhere but a square in the middle
        mask[:, 0, 16:48, 16:48] = 10
        centers = np.full((count, 16, 16), -8.0, np.float32)
        centers[:, 4, 12] = self.peak_logit  # a peak near the top right: an animal there?
        breeds = np.zeros((count, 37), np.float32)
        breeds[:, CAT_BREEDS[2] if species > 0 else DOG_BREEDS[3]] = 6
        return PetNetOutput(np.array([[species, -species]] * count, np.float32), breeds, mask,
                            np.full(count, pet_logit, np.float32), np.zeros((count, 37, 1, 1), np.float32), centers)  # fmt: skip

    def infer(self, images: np.ndarray) -> PetNetOutput:
        self.passes.append(("first look", len(images)))
        output = self._output(len(images), -6.0, species=-3.0)
        output.mask_logits[:, 0] = -10  # the photo's mask sees no pet
        return output

    def infer_single_view(self, images: np.ndarray) -> PetNetOutput:
        self.passes.append(("second look", len(images)))
        return self._output(len(images), self.crop_pet_logit, species=3.0)

    def infer_classification(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.passes.append(("backbone", len(images)))
        output = self._output(len(images), self.crop_pet_logit, species=3.0)
        return output.species_logits, output.breed_logits, output.pet_logits


def _second_look(crop_pet_logit: float, peak_logit: float = 0.0, second_look: bool = True):
    from petnet.inference.pipeline import Predictor

    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, presence_second_look=second_look)
    network = _SecondLookNetwork(config, crop_pet_logit, peak_logit)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    return Predictor(network).predict(photo), network.passes


def test_a_second_look_finds_a_small_pet_where_the_centre_heatmap_peaks() -> None:
    prediction, passes = _second_look(crop_pet_logit=4.0)
    assert passes == [("first look", 1), ("backbone", 1), ("second look", 1)], "asked, then seen whole; no closer look"
    assert prediction.has_pet and len(prediction.pets) == 1
    assert prediction.pet_score == pytest.approx(expit(4.0)), "the crop's score decided"
    assert prediction.species == "cat" and prediction.breed[0] == BREED_NAMES[CAT_BREEDS[2]], "named by the crop"
    left, top, right, bottom = prediction.pets[0].box  # in the 128 px photo; the peak's cell (4, 12) of 16
    assert 64 < (left + right) / 2 < 128 and 0 < (top + bottom) / 2 < 64, "the animal is where the peak was"
    assert (prediction.full_mask[top:bottom, left:right] == 0).any(), "the crop's mask pasted into its box"
    assert (prediction.full_mask[100:, :40] == 1).all(), "the rest keeps the photo's mask"


def test_no_second_look_without_a_peak_or_when_the_crop_says_no_or_when_off() -> None:
    for kwargs in ({"crop_pet_logit": -4.0}, {"crop_pet_logit": 4.0, "peak_logit": -5.0}, {"crop_pet_logit": 4.0, "second_look": False}):
        prediction, passes = _second_look(**kwargs)
        assert not prediction.has_pet and prediction.pets == ()
        assert prediction.pet_score == pytest.approx(expit(-6.0)), "the first look's score stands"
        expected = [("first look", 1), ("backbone", 1)] if kwargs == {"crop_pet_logit": -4.0} else [("first look", 1)]
        assert passes == expected, kwargs


class _SureNetwork(_SecondLookNetwork):
    """A first look that sees one pet in the middle, its top breed at a chosen logit."""

    def __init__(self, config: PetNetConfig, top_logit: float) -> None:
        super().__init__(config, crop_pet_logit=4.0, peak_logit=-9.0)
        self.top_logit = top_logit

    def infer(self, images: np.ndarray) -> PetNetOutput:
        self.passes.append(("first look", len(images)))
        output = self._output(len(images), 6.0, species=3.0)
        output.breed_logits[:, CAT_BREEDS[2]] = self.top_logit
        output.center_logits[:, 8, 8] = 4.0  # the pet's centre, on the mask's square
        return output


def test_the_closer_look_only_where_the_first_look_is_unsure() -> None:
    from petnet.inference.pipeline import Predictor

    for top_logit, below, looked in ((6.0, 1.0, True), (6.0, 0.6, False), (2.0, 0.6, True)):
        config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, closer_look_below=below)
        network = _SureNetwork(config, top_logit)
        photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))
        prediction = Predictor(network).predict(photo)
        assert prediction.has_pet and len(prediction.pets) == 1
        sure = softmax(network.infer(np.zeros((1, 3, SIZE, SIZE), np.float32)).breed_logits, axis=1).max()
        assert (sure < below) == looked, (top_logit, sure)  # 6 among zeros: 0.92; 2: 0.17
        assert (("backbone", 1) in network.passes) == looked, (top_logit, below)


class _FakeAnimalCheck:
    """An other-animal check that gives every image the same odds and records the batches it saw."""

    size = 32

    def __init__(self, odds: float) -> None:
        self.value, self.batches = odds, []

    def odds(self, images: np.ndarray) -> np.ndarray:
        assert images.shape[1:] == (3, self.size, self.size)
        self.batches.append(len(images))
        return np.full(len(images), self.value)


def _checked(network: _SecondLookNetwork, odds: float, threshold: float | None = 2.0):
    from petnet.inference.pipeline import Predictor

    network.config.animal_check_threshold = threshold
    check = _FakeAnimalCheck(odds)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    return Predictor(network, check).predict(photo), check


def test_the_animal_check_turns_away_a_pet_score_that_imagenet_calls_another_animal() -> None:
    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, closer_look_below=0.6)
    prediction, check = _checked(_SureNetwork(config, top_logit=6.0), odds=3.0)
    assert prediction.pet_score >= 0.8, "the network's score stands"
    assert not prediction.has_pet and prediction.other_animal and prediction.pets == ()
    assert prediction.to_dict()["other_animal"] is True and prediction.to_dict()["species"] is None
    assert check.batches == [1]
    for odds, threshold in ((1.0, 2.0), (3.0, None)):  # odds under the threshold, or no threshold
        prediction, check = _checked(_SureNetwork(config, top_logit=6.0), odds, threshold)
        assert prediction.has_pet and not prediction.other_animal and len(prediction.pets) == 1
        assert check.batches == ([1] if threshold is not None else [])


def test_the_animal_check_sees_the_animals_found_by_either_look_and_nothing_else() -> None:
    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, presence_second_look=True)
    prediction, check = _checked(_SecondLookNetwork(config, crop_pet_logit=-4.0), odds=3.0)
    assert not prediction.has_pet and not prediction.other_animal, "no pet found: nothing to check"
    assert check.batches == []
    prediction, check = _checked(_SecondLookNetwork(config, crop_pet_logit=4.0), odds=3.0)
    assert check.batches == [1], "the pet the second look found"
    assert not prediction.has_pet and prediction.other_animal and prediction.pets == ()
    prediction, _ = _checked(_SecondLookNetwork(config, crop_pet_logit=4.0), odds=1.0)
    assert prediction.has_pet and not prediction.other_animal and len(prediction.pets) == 1


class _BrightIsAnotherAnimal(_FakeAnimalCheck):
    """A check that takes a bright view for another animal and a dark one for a pet."""

    def __init__(self) -> None:
        super().__init__(0.0)

    def odds(self, images: np.ndarray) -> np.ndarray:
        self.batches.append(len(images))
        return np.where(images.mean(axis=(1, 2, 3)) > 0, 10.0, -10.0)


def test_the_animal_check_is_shown_each_animal_cut_out() -> None:
    from petnet.inference.pipeline import Predictor, PreparedImage

    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True)
    predictor = Predictor(_SureNetwork(config, top_logit=6.0))
    photo = Image.fromarray(np.full((128, 128, 3), 255, dtype=np.uint8))  # white: 1 once normalised
    region = np.zeros((128, 128), bool)
    region[32:96, 32:64] = region[64:96, 64:96] = True  # an L in the box (32, 32, 96, 96)
    view = predictor.animal_view(predictor.prepare(photo), region, 64)
    assert view.shape == (3, 64, 64) and set(np.unique(view.round(3))) == {0.0, 1.0}, "the animal white, the rest grey"
    np.testing.assert_array_equal(view[0] == 1, region[32:96, 32:96])  # the 64 px box fills the 64 px view
    assert predictor.animal_view(predictor.prepare(photo), region, 32).shape == (3, 32, 32)
    tensor = PreparedImage(np.ones((3, 128, 128), np.float32), (128, 128), None)  # the same photo, preprocessed
    np.testing.assert_allclose(predictor.animal_view(tensor, region, 64), view, atol=1e-6)


def test_the_animal_check_judges_each_photo_and_each_animal_on_its_own() -> None:
    from dataclasses import replace

    from petnet.inference.pipeline import Predictor

    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, animal_check_threshold=2.0)
    check = _BrightIsAnotherAnimal()
    predictor = Predictor(_SureNetwork(config, top_logit=6.0), check)
    bright, dark = (Image.fromarray(np.full((128, 128, 3), value, dtype=np.uint8)) for value in (250, 5))
    turned_away, kept = predictor.predict_batch([bright, dark])
    assert check.batches == [2], "one batch for the photos' animals"
    assert (turned_away.has_pet, turned_away.other_animal) == (False, True) and turned_away.pets == ()
    assert (kept.has_pet, kept.other_animal, len(kept.pets)) == (True, False, 1)
    half = np.zeros((128, 128, 3), np.uint8)
    half[:, :64] = 250  # a bright animal on the left, a dark one on the right
    photo = Image.fromarray(half)
    item = predictor.prepare(photo)
    first = predictor.answer([item])[0].prediction
    left, right = np.zeros((128, 128), bool), np.zeros((128, 128), bool)
    left[40:80, 8:56], right[40:80, 72:120] = True, True
    two = replace(first, pets=(replace(first.pets[0], region=left), replace(first.pets[0], region=right)))
    [checked] = predictor.check_animals([item], [two], [True])
    assert checked.has_pet and len(checked.pets) == 2, "one passes: check_animals alone keeps both (answer sets one apart first)"
    [checked] = predictor.check_animals([item], [replace(two, pets=two.pets[:1])], [True])
    assert checked.other_animal and not checked.has_pet


class _TwoAnimalsNetwork(_SureNetwork):
    """A sure first look with two separate animals: pet squares left (the larger) and right, a centre
    peak on each."""

    def __init__(self, config: PetNetConfig, top_logit: float = 6.0) -> None:
        super().__init__(config, top_logit=top_logit)

    def infer(self, images: np.ndarray) -> PetNetOutput:
        output = super().infer(images)
        output.mask_logits[:, 0] = -10
        output.mask_logits[:, 0, 16:52, 2:30] = output.mask_logits[:, 0, 20:44, 40:62] = 10
        output.center_logits[:] = -8.0
        output.center_logits[:, 8, 4] = output.center_logits[:, 8, 12] = 4.0
        return output


def test_an_animal_the_check_takes_for_another_kind_is_set_apart_from_a_photo_with_several() -> None:
    from petnet.inference.pipeline import Predictor

    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, closer_look_below=0.6,
                          animal_check_threshold=2.0, animal_check_below=0.6)  # fmt: skip
    halves = np.zeros((128, 128, 3), np.uint8)
    halves[:, :64] = 5  # a dark animal on the left (a pet to the check), a bright one on the right
    halves[:, 64:] = 250
    network, check = _TwoAnimalsNetwork(config), _BrightIsAnotherAnimal()
    predictor = Predictor(network, check)
    answer = predictor.answer([predictor.prepare(Image.fromarray(halves))])[0]
    prediction = answer.prediction
    assert check.batches == [2], "both animals asked once, though the pipeline is sure of the photo"
    assert prediction.has_pet and not prediction.other_animal and len(prediction.pets) == 1
    assert prediction.pets[0].box[2] <= 64 and answer.animals_found == 1, "the pet on the left alone"
    assert (prediction.mask[20:44, 40:62] == 1).all() and (prediction.mask[16:52, 2:30] == 0).all(), (
        "the animal set apart is background in the mask, the pet's pixels stay"
    )
    assert not (prediction.full_mask[:, 70:] != 1).any() and (prediction.full_mask[:, :60] == 0).any()
    assert (prediction.mask_probabilities[1, 20:44, 40:62] > 0.99).all() and (answer.mask_logits[1, 20:44, 40:62] > 0).all()
    assert network.passes.count(("second look", 2)) == 1, "both animals' crops seen once, before one was set apart"
    assert Predictor(_TwoAnimalsNetwork(config)).predict(Image.fromarray(halves)).pets.__len__() == 2, "no check: both"
    check = _BrightIsAnotherAnimal()
    both_bright = Predictor(_TwoAnimalsNetwork(config), check).predict(Image.fromarray(np.full((128, 128, 3), 250, np.uint8)))
    assert check.batches == [2] and both_bright.has_pet and len(both_bright.pets) == 2, (
        "all look like other animals: kept here, and the photo, which the pipeline is sure of, is not turned away"
    )


class _ByBrightness(_TwoAnimalsNetwork):
    """Two animals, or with ``third`` three (a small one at the bottom), and crops the network judges by
    their brightness (their mean input): a very bright crop (above 0.5) is no pet (``pet_logit`` -3)
    unless ``bright_is_pet``, any other a pet unless ``none_is_pet``; a bright crop (above 0) a dog, a
    dark one a cat."""

    def __init__(self, config: PetNetConfig, top_logit: float = 6.0, bright_is_pet: bool = False, third: bool = False,
                 none_is_pet: bool = False) -> None:  # fmt: skip
        super().__init__(config, top_logit=top_logit)
        self.bright_is_pet, self.third, self.none_is_pet = bright_is_pet, third, none_is_pet

    def infer(self, images: np.ndarray) -> PetNetOutput:
        output = super().infer(images)
        if self.third:
            output.mask_logits[:, 0, 54:62, 36:60] = 10
            output.center_logits[:, 14, 12] = 4.0
        return output

    def infer_single_view(self, images: np.ndarray) -> PetNetOutput:
        output = super().infer_single_view(images)
        brightness = images.mean(axis=(1, 2, 3))
        breeds = np.zeros_like(output.breed_logits)
        breeds[np.arange(len(images)), np.where(brightness > 0, DOG_BREEDS[3], CAT_BREEDS[2])] = 6
        pet = np.where(((brightness > 0.5) & (not self.bright_is_pet)) | self.none_is_pet, -3.0, 3.0).astype(np.float32)
        return output._replace(pet_logits=pet, breed_logits=breeds)


class _OddsByBrightness(_FakeAnimalCheck):
    """A check with odds ``bright`` for a very bright view (mean above 0.5), ``other`` for any other."""

    def __init__(self, bright: float, other: float = -10.0) -> None:
        super().__init__(bright)
        self.other = other

    def odds(self, images: np.ndarray) -> np.ndarray:
        self.batches.append(len(images))
        return np.where(images.mean(axis=(1, 2, 3)) > 0.5, self.value, self.other)


def test_an_animal_of_several_that_neither_its_own_crop_nor_the_check_takes_for_a_pet_is_set_apart() -> None:
    from petnet.inference.pipeline import SET_APART_ODDS, Predictor

    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, closer_look_below=0.6,
                          animal_check_threshold=2.0, animal_check_below=0.6)  # fmt: skip
    halves = np.zeros((128, 128, 3), np.uint8)
    halves[:, :64], halves[:, 64:] = 5, 250  # a dark pet on the left, a very bright animal on the right

    def predict(network: _ByBrightness, check: _OddsByBrightness, photo: np.ndarray = halves) -> Prediction:
        return Predictor(network, check).predict(Image.fromarray(photo))

    prediction = predict(_ByBrightness(config), _OddsByBrightness(SET_APART_ODDS))
    assert len(prediction.pets) == 1 and prediction.pets[0].box[2] <= 64, "the bright one set apart"
    assert len(predict(_ByBrightness(config), _OddsByBrightness(SET_APART_ODDS - 1)).pets) == 2, "the check leans pet: kept"
    network = _ByBrightness(config, bright_is_pet=True)
    kept = predict(network, _OddsByBrightness(SET_APART_ODDS))
    assert [pet.species for pet in kept.pets] == ["cat", "dog"], "its crop is a pet: kept, each named by its own crop"
    assert network.passes.count(("second look", 2)) == 1, "the crops seen once, for the check and the names"
    prediction = predict(_ByBrightness(config, none_is_pet=True), _OddsByBrightness(10.0, other=SET_APART_ODDS))
    assert len(prediction.pets) == 1 and prediction.pets[0].box[2] <= 64, (
        "every crop misses the threshold at even odds or more: the threshold alone sets the bright one apart"
    )
    unsure = _ByBrightness(config, top_logit=0.0)  # doubted, so check_animals may turn the photo away
    both_bright = predict(unsure, _OddsByBrightness(SET_APART_ODDS), photo=np.full((128, 128, 3), 250, np.uint8))
    assert both_bright.has_pet and not both_bright.other_animal and len(both_bright.pets) == 2, (
        "one always passes, and only the threshold turns a photo away"
    )


def test_the_animals_kept_beside_one_set_apart_are_named_by_their_own_crops() -> None:
    from petnet.inference.pipeline import SET_APART_ODDS, Predictor

    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, closer_look_below=0.6,
                          animal_check_threshold=2.0, animal_check_below=0.6)  # fmt: skip
    photo = np.full((128, 128, 3), 170, np.uint8)  # bright: a dog to the network, a pet to the check
    photo[:64, :64] = 250  # the largest animal (top left) very bright: neither a pet to its crop nor to the check
    photo[32:104, 80:128] = 5  # the one on the right dark: a cat; the small one at the bottom stays a dog
    network = _ByBrightness(config, third=True)
    prediction = Predictor(network, _OddsByBrightness(SET_APART_ODDS)).predict(Image.fromarray(photo))
    assert len(prediction.pets) == 2 and all(pet.box[0] >= 64 for pet in prediction.pets), "the top left one set apart"
    species = {("bottom" if pet.box[1] >= 100 else "right"): pet.species for pet in prediction.pets}
    assert species == {"right": "cat", "bottom": "dog"}, "the crops' rows of the animals kept, in their order"
    assert network.passes.count(("second look", 3)) == 1 and ("second look", 2) not in network.passes


class _LeftElseRightNetwork(_SureNetwork):
    """It sees the animal on the left where that square is bright, else only the one on the right: a
    look that found the other animal and not the pet beside it. Unsure of its breed on the left;
    on the right, unsure too or, with ``sure_on_the_right``, sure (which a first pass would not check)."""

    def __init__(self, config: PetNetConfig, sure_on_the_right: bool = False) -> None:
        super().__init__(config, top_logit=2.0)
        self.sure_on_the_right = sure_on_the_right

    def infer(self, images: np.ndarray) -> PetNetOutput:
        output = super().infer(images)
        output.mask_logits[:, 0] = -10
        output.center_logits[:] = -8.0
        for k, image in enumerate(images):
            left = image[:, 20:44, 4:28].mean() > 0.5
            output.mask_logits[k, 0, 20:44, slice(4, 28) if left else slice(36, 60)] = 10
            output.center_logits[k, 8, 4 if left else 12] = 4.0
            if not left and self.sure_on_the_right:
                output.breed_logits[k, CAT_BREEDS[2]] = 6.0
        return output


def _looking_past(sure_on_the_right: bool = False, look_past: bool = True) -> tuple:
    from petnet.inference.pipeline import Predictor

    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, closer_look_below=0.6,
                          animal_check_threshold=2.0, animal_check_below=0.6, look_past_other_animals=look_past)  # fmt: skip
    check = _BrightIsAnotherAnimal()
    return Predictor(_LeftElseRightNetwork(config, sure_on_the_right), check), check


def test_a_photo_turned_away_as_another_animal_is_looked_at_again_without_it() -> None:
    halves = np.full((128, 128, 3), 250, np.uint8)  # another animal on the left (bright: so says the check) ...
    halves[:, 64:] = 5  # ... and a pet on the right
    predictor, check = _looking_past()
    answer = predictor.answer([predictor.prepare(Image.fromarray(halves))])[0]
    prediction = answer.prediction
    assert check.batches == [1, 1], "the animal on the left turned away, then the pet on the right asked about"
    assert prediction.has_pet and not prediction.other_animal and len(prediction.pets) == 1
    assert prediction.pets[0].box[0] >= 64, "the pet on the right"
    assert (prediction.full_mask[:, :56] == 1).all() and (answer.mask_logits[1, :, :28] > 0).all(), "the grey is background"
    predictor, check = _looking_past(look_past=False)
    assert predictor.predict(Image.fromarray(halves)).other_animal and check.batches == [1], "off: turned away"
    tensor = np.where(np.arange(SIZE) < SIZE // 2, 0.96, -0.96).astype(np.float32)[None, None].repeat(3, 0).repeat(SIZE, 1)
    from_tensor = _looking_past()[0].predict(tensor)
    assert from_tensor.has_pet and from_tensor.pets[0].box[0] >= SIZE // 2, "a preprocessed input is painted too"


def test_what_a_look_past_other_animals_finds_is_always_checked_and_never_looked_past_again() -> None:
    bright = Image.fromarray(np.full((128, 128, 3), 250, np.uint8))  # other animals on the left and on the right
    for sure in (False, True):
        predictor, check = _looking_past(sure_on_the_right=sure)
        prediction = predictor.predict(bright)
        assert check.batches == [1, 1], "the animal on the right asked about, even named with a sure breed"
        assert prediction.other_animal and not prediction.has_pet, "turned away again: no third look"


def test_photos_with_several_animals_are_checked_once_in_a_batch_sure_or_unsure() -> None:
    from petnet.inference.pipeline import Predictor

    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, closer_look_below=0.6,
                          animal_check_threshold=2.0, animal_check_below=0.6)  # fmt: skip
    halves = np.zeros((128, 128, 3), np.uint8)
    halves[:, 64:] = 250  # a pet on the left, another animal on the right
    photos = [Image.fromarray(halves), Image.fromarray(np.full((128, 128, 3), 250, np.uint8))]  # ... and two others
    for top_logit, doubted in ((6.0, False), (2.0, True)):  # the top breed at 0.92, or at 0.17: unsure
        check = _BrightIsAnotherAnimal()
        one_pet, others = Predictor(_TwoAnimalsNetwork(config, top_logit), check).predict_batch(photos)
        assert check.batches == [4], "the four animals in one batch, none asked again"
        assert one_pet.has_pet and len(one_pet.pets) == 1 and one_pet.pets[0].box[2] <= 64
        assert others.other_animal == doubted and others.has_pet != doubted and len(others.pets) == (0 if doubted else 2), (
            "all look like other animals: turned away only where the pipeline is unsure"
        )


def test_a_predictor_without_the_check_its_config_asks_for_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    from petnet.inference.pipeline import Predictor

    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, animal_check_threshold=2.0)
    predictor = Predictor(_SureNetwork(config, top_logit=6.0))
    photo = Image.fromarray(np.full((128, 128, 3), 250, dtype=np.uint8))
    with caplog.at_level("WARNING"):
        assert predictor.predict(photo).has_pet and predictor.predict(photo).has_pet
    assert [r.getMessage() for r in caplog.records].count(
        "config.json sets animal_check_threshold, but this predictor has no animal check "
        "(petnet.load_model attaches it): other animals are not turned away.") == 1


def test_other_animal_odds_weigh_imagenets_other_animals_against_its_dogs_and_cats() -> None:
    from petnet.inference.animal_check import IMAGENET_OTHER_ANIMALS, IMAGENET_PETS, other_animal_odds

    assert len(IMAGENET_PETS) == 118 + 5 and len(set(IMAGENET_PETS) & set(IMAGENET_OTHER_ANIMALS)) == 0
    logits = np.zeros((4, 1000))
    logits[0, 294] = 10  # brown bear
    logits[1, 208] = 10  # Labrador retriever
    logits[2, 269] = 10  # timber wolf: neither side
    logits[3, 500] = 10  # a cliff dwelling: neither side
    odds = other_animal_odds(logits)
    assert odds[0] > 4 > -4 > odds[1]
    expected = np.log(len(IMAGENET_OTHER_ANIMALS)) - np.log(len(IMAGENET_PETS))
    np.testing.assert_allclose(odds[2:], expected, atol=1e-9)


def test_the_animal_check_can_be_kept_to_photos_petnet_is_unsure_of() -> None:
    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, closer_look=True, closer_look_below=0.6, animal_check_below=0.6)
    prediction, check = _checked(_SureNetwork(config, top_logit=6.0), odds=3.0)  # the top breed at 0.92
    assert prediction.has_pet and not prediction.other_animal and check.batches == [], "sure: not asked"
    prediction, check = _checked(_SureNetwork(config, top_logit=2.0), odds=3.0)  # at 0.17
    assert prediction.other_animal and check.batches == [1]
    config = PetNetConfig(image_size=SIZE, pet_threshold=0.8, presence_second_look=True, animal_check_below=0.01)
    prediction, check = _checked(_SecondLookNetwork(config, crop_pet_logit=4.0), odds=3.0)
    assert prediction.other_animal and check.batches == [1], "a pet the second look found is always asked about"


class _TwoPeakNetwork(_SecondLookNetwork):
    """Two centre peaks, the higher top right (cell 4, 12 of 16), the lower bottom left (12, 3): a
    crop's pet logit is 3 times its mean input, so a crop of a bright patch shows a pet and a
    brighter one a surer pet. The first ``candidates`` crops asked are the second look's; those
    after them confirm, and with ``closer_says_no`` see no pet."""

    def __init__(self, config: PetNetConfig, closer_says_no: bool = False, candidates: int = 2) -> None:
        super().__init__(config, crop_pet_logit=4.0)
        self.closer_says_no, self.candidates, self.asked = closer_says_no, candidates, 0

    def _output(self, count: int, pet_logit: float, species: float) -> PetNetOutput:
        output = super()._output(count, pet_logit, species)
        output.center_logits[:, 12, 3] = -1.0
        return output

    def infer_classification(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        species, breeds, _ = super().infer_classification(images)
        confirming = self.asked >= self.candidates
        self.asked += len(images)
        pet_logits = 3 * images.mean(axis=(1, 2, 3))
        return species, breeds, (np.full(len(images), -4.0) if confirming and self.closer_says_no else pet_logits).astype(np.float32)


def _photo(bottom_left: int = 230, top_right: int = 20) -> Image.Image:
    """A dark photo with patches of the given brightness under the two peaks."""
    pixels = np.full((128, 128, 3), 20, dtype=np.uint8)
    pixels[80:120, 8:48] = bottom_left  # under the lower peak
    pixels[16:56, 80:120] = top_right  # under the higher peak
    return Image.fromarray(pixels)


def _two_peak_config(confirm: float | None = 0.25) -> PetNetConfig:
    """The shipped second look's settings (two peaks, 0.35 crops, confirmed at ``confirm``) at the test's size."""
    return PetNetConfig(image_size=SIZE, pet_threshold=0.8, presence_second_look=True, second_look_peaks=2,
                        second_look_side=0.35, second_look_confirm_side=confirm)  # fmt: skip


def _two_peaks(
    closer_says_no: bool = False, confirm: float | None = 0.25, photos: Sequence[Image.Image] = ()
) -> tuple[list[Prediction], list[tuple[str, int]]]:
    from petnet.inference.pipeline import Predictor

    photos = list(photos) or [_photo()]
    network = _TwoPeakNetwork(_two_peak_config(confirm), closer_says_no, candidates=2 * len(photos))
    return Predictor(network).predict_batch(photos, batch_size=len(photos)), network.passes


def _centre(pet: Pet) -> tuple[float, float]:
    left, top, right, bottom = pet.box
    return (left + right) / 2, (top + bottom) / 2


def test_the_second_look_asks_the_highest_peaks_at_once_and_keeps_the_crop_that_shows_a_pet() -> None:
    (prediction,), passes = _two_peaks(confirm=None)
    assert passes == [("first look", 1), ("backbone", 2), ("second look", 1)], "both peaks' crops in one batch"
    assert prediction.has_pet and len(prediction.pets) == 1
    x, y = _centre(prediction.pets[0])
    assert x < 64 < y, "found under the lower peak, bottom left"
    (prediction,), _ = _two_peaks(confirm=None, photos=[_photo(bottom_left=230, top_right=250)])
    x, y = _centre(prediction.pets[0])
    assert y < 64 < x, "both crops show a pet: the surer one, top right, wins"


def test_a_second_look_find_must_be_a_pet_seen_closer_too() -> None:
    (prediction,), passes = _two_peaks()
    assert passes == [("first look", 1), ("backbone", 2), ("backbone", 1), ("second look", 1)], "the find alone asked again"
    assert prediction.has_pet and len(prediction.pets) == 1
    for photo, passing in ((_photo(), 1), (_photo(bottom_left=230, top_right=250), 2)):
        (prediction,), passes = _two_peaks(closer_says_no=True, photos=[photo])
        assert passes == [("first look", 1), ("backbone", 2), ("backbone", passing)], "each crop that passed asked closer"
        assert not prediction.has_pet and prediction.pets == (), "no crop confirmed"


class _BrightestFailsCloserNetwork(_TwoPeakNetwork):
    """Confirmation crops of the brightest patches (a crop beside the pet that takes in part of it)
    see no pet and name one dog breed; those of merely bright ones see a pet and name another."""

    def infer_classification(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        confirming = self.asked >= self.candidates
        species, breeds, pet_logits = super().infer_classification(images)
        if confirming:
            brightest = images.mean(axis=(1, 2, 3)) > 0.9
            pet_logits = np.where(brightest, -4.0, 4.0).astype(np.float32)
            breeds = np.zeros_like(breeds)
            breeds[np.arange(len(images)), np.where(brightest, DOG_BREEDS[0], DOG_BREEDS[1])] = 8
        return species, breeds, pet_logits


def test_a_best_crop_that_fails_its_closer_look_gives_way_to_the_next_that_passes_both() -> None:
    from petnet.inference.pipeline import Predictor

    network = _BrightestFailsCloserNetwork(_two_peak_config())
    prediction = Predictor(network).predict(_photo(bottom_left=230, top_right=250))
    assert network.passes == [("first look", 1), ("backbone", 2), ("backbone", 2), ("second look", 1)]
    assert prediction.has_pet and len(prediction.pets) == 1
    x, y = _centre(prediction.pets[0])
    assert x < 64 < y, "the top right crop scored higher but failed closer: the bottom left one is the find"
    assert prediction.breed[0] == BREED_NAMES[DOG_BREEDS[1]], "named by its own closer view"


class _CloserNamesADogNetwork(_TwoPeakNetwork):
    """The second look's crops name a cat breed; its confirmation crops, closer, the dog breed
    ``closer_breed(crop)`` at logit ``logit``."""

    def __init__(self, config: PetNetConfig, closer_breed: Callable[[np.ndarray], int], logit: float, candidates: int = 2) -> None:
        super().__init__(config, candidates=candidates)
        self.closer_breed, self.logit = closer_breed, logit

    def infer_classification(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        confirming = self.asked >= self.candidates
        species, breeds, pet_logits = super().infer_classification(images)
        if confirming:
            breeds = np.zeros_like(breeds)
            for row, image in enumerate(images):
                breeds[row, self.closer_breed(image)] = self.logit
        return species, breeds, pet_logits


def test_a_second_look_find_is_named_by_both_of_its_crops() -> None:
    from petnet.inference.pipeline import Predictor

    network = _CloserNamesADogNetwork(_two_peak_config(), lambda crop: DOG_BREEDS[3], logit=2)
    prediction = Predictor(network).predict(_photo())
    crop, closer = np.zeros(37), np.zeros(37)
    crop[CAT_BREEDS[2]], closer[DOG_BREEDS[3]] = 6, 2
    expected = (softmax(crop) + softmax(closer)) / 2  # the mean of the two views' probabilities
    probabilities = np.array([prediction.breed_probabilities[name] for name in BREED_NAMES])
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4)
    assert prediction.breed[0] == BREED_NAMES[CAT_BREEDS[2]] and prediction.species == "cat"


def test_each_second_look_find_is_named_by_its_own_closer_crop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Across photos and passes, a find's confirmation is the one cut around its own peak."""
    from petnet.inference.pipeline import Predictor

    def by_brightness(crop: np.ndarray) -> int:  # a dog breed told by the crop's brightness: the photo it was cut from
        return DOG_BREEDS[0] if crop.mean() > 0.9 else DOG_BREEDS[1]

    monkeypatch.setattr("petnet.inference.pipeline.MAX_CROPS_PER_PASS", 1)
    photos = [_photo(bottom_left=250), _photo(bottom_left=20, top_right=230)]
    network = _CloserNamesADogNetwork(_two_peak_config(), by_brightness, logit=8, candidates=4)
    first, second = Predictor(network).predict_batch(photos, batch_size=2)
    assert first.has_pet and second.has_pet
    assert first.breed[0] == BREED_NAMES[DOG_BREEDS[0]] and second.breed[0] == BREED_NAMES[DOG_BREEDS[1]]


def test_second_look_crops_go_in_passes_of_at_most_max_crops_per_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("petnet.inference.pipeline.MAX_CROPS_PER_PASS", 4)
    photos = [_photo(), _photo(bottom_left=20), _photo(bottom_left=20, top_right=230)]
    predictions, passes = _two_peaks(photos=photos)
    assert passes == [("first look", 3), ("backbone", 4), ("backbone", 2), ("backbone", 2), ("second look", 2)]
    assert [p.has_pet for p in predictions] == [True, False, True], "each find answers for its own photo"
    x, y = _centre(predictions[0].pets[0])
    assert x < 64 < y
    x, y = _centre(predictions[2].pets[0])
    assert y < 64 < x


@pytest.mark.parametrize("values", [{"second_look_peaks": 0}, {"second_look_peaks": 2.0}, {"second_look_side": 0.0},
                                    {"second_look_side": 1.5}, {"second_look_confirm_side": -0.25}])  # fmt: skip
def test_second_look_settings_out_of_range_are_refused(values: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(values))):
        PetNetConfig(**values)
    assert PetNetConfig().second_look_peaks == 1 and PetNetConfig().second_look_side is None, "models saved before: as before"


class _TileNetwork:
    """A numpy ``Network`` whose first look at the photo sees no pet and no centre peak, while a crop
    (a tile) shows a pet where it holds bright pixels: its pet logit ``scale`` times their share
    minus 2 (a tenth of a tile: 0.98 at 60), its mask's pet pixels and its centre peak where they
    are, and a cat breed."""

    def __init__(self, config: PetNetConfig, scale: float = 60.0, first_look_peak: bool = False) -> None:
        self.config, self.scale, self.first_look_peak = config, scale, first_look_peak
        self.passes: list[tuple[str, int]] = []

    def _output(self, images: np.ndarray) -> PetNetOutput:
        count = len(images)
        bright = images.mean(axis=1) > 0.5  # (B, S, S)
        mask = np.zeros((count, 3, SIZE, SIZE), np.float32)
        mask[:, 1] = 5
        mask[:, 0] = np.where(bright, 10, -10)
        centers = np.full((count, SIZE // 4, SIZE // 4), -8.0, np.float32)
        for row, pixels in enumerate(bright):
            if pixels.any():
                y, x = np.argwhere(pixels).mean(axis=0) // 4
                centers[row, int(y), int(x)] = 2.0
        breeds = np.zeros((count, 37), np.float32)
        breeds[:, CAT_BREEDS[1]] = 6
        pet_logits = (self.scale * bright.mean(axis=(1, 2)) - 2).astype(np.float32)
        return PetNetOutput(np.array([[3.0, -3.0]] * count, np.float32), breeds, mask, pet_logits,
                            np.zeros((count, 37, 1, 1), np.float32), centers)  # fmt: skip

    def infer(self, images: np.ndarray) -> PetNetOutput:
        self.passes.append(("first look", len(images)))
        output = self._output(images)
        output.mask_logits[:, 0] = -10  # the whole photo's look sees no pet, and no peak unless asked to
        if not self.first_look_peak:
            output.center_logits[:] = -8.0
        close_up = (images.mean(axis=1) > 0.5).mean(axis=(1, 2)) > 0.5  # a photo mostly bright: a pet filling it
        return output._replace(pet_logits=np.where(close_up, 6.0, -6.0).astype(np.float32))

    def infer_single_view(self, images: np.ndarray) -> PetNetOutput:
        self.passes.append(("single view", len(images)))
        return self._output(images)

    def infer_classification(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.passes.append(("backbone", len(images)))
        output = self._output(images)
        return output.species_logits, output.breed_logits, output.pet_logits


def _tile_config(side: float | None = 0.6, suspected_from: float = 0.0) -> PetNetConfig:
    return PetNetConfig(image_size=SIZE, pet_threshold=0.8, presence_second_look=True, second_look_peaks=2,
                        second_look_side=0.35, second_look_confirm_side=0.25, tile_look_side=side,
                        tile_look_threshold=0.95, tile_look_from=suspected_from)  # fmt: skip


def _small_pet_photo(left: int = 96, top: int = 96) -> Image.Image:
    """A dark 128 px photo with a bright 24 px square (a small pet) at ``left``, ``top``."""
    pixels = np.full((128, 128, 3), 20, dtype=np.uint8)
    pixels[top : top + 24, left : left + 24] = 250
    return Image.fromarray(pixels)


def test_corner_boxes_are_four_overlapping_tiles_of_the_side_at_the_corners() -> None:
    from petnet.inference.regions import corner_boxes

    assert corner_boxes((60, 100), 0.6) == [(0, 0, 60, 36), (40, 0, 100, 36), (0, 24, 60, 60), (40, 24, 100, 60)]
    assert corner_boxes((60, 100), 1.0) == [(0, 0, 100, 60)], "the whole image once, not four times"
    for left, top, right, bottom in corner_boxes((240, 240), 0.6):  # any pet of up to a fifth of the side is whole in one
        assert (right - left, bottom - top) == (144, 144)


def test_the_tile_look_finds_a_small_pet_the_first_look_has_no_peak_for() -> None:
    from petnet.inference.pipeline import Predictor

    network = _TileNetwork(_tile_config())
    prediction = Predictor(network).predict(_small_pet_photo())
    assert network.passes == [("first look", 1), ("single view", 2), ("single view", 2)], "no peak to look again at; four tiles"
    assert prediction.has_pet and len(prediction.pets) == 1
    left, top, right, bottom = prediction.pets[0].box
    assert (left, top) >= (90, 90) and (right, bottom) <= (124, 124), "the animal is the bright square, on the photo"
    assert prediction.pet_score > 0.95, "the tile's score decided"
    assert prediction.breed[0] == BREED_NAMES[CAT_BREEDS[1]], "named by the tile"
    assert (prediction.full_mask[96:120, 96:120] == 0).mean() > 0.8, "the tile's mask pasted into its place"
    assert (prediction.full_mask[:60, :60] == 1).all(), "the rest keeps the photo's mask"


def test_a_tile_looks_again_around_its_own_centre_peak() -> None:
    from petnet.inference.pipeline import Predictor

    pixels = np.full((128, 128, 3), 20, dtype=np.uint8)
    pixels[100:112, 100:112] = 250  # too small for the tile's pet score, not for a crop around its peak
    network = _TileNetwork(_tile_config())
    prediction = Predictor(network).predict(Image.fromarray(pixels))
    assert network.passes == [("first look", 1), ("single view", 2), ("single view", 2), ("backbone", 1), ("backbone", 1),
                              ("single view", 1)]  # fmt: skip
    assert prediction.has_pet and len(prediction.pets) == 1 and prediction.pet_score > 0.95
    left, top, right, bottom = prediction.pets[0].box
    assert left < 106 < right and top < 106 < bottom, "found where the square is"


def test_the_tile_look_on_a_preprocessed_input_and_in_a_batch_with_a_close_up() -> None:
    from petnet.inference.pipeline import Predictor

    network = _TileNetwork(_tile_config())
    pixels = np.full((3, SIZE, SIZE), 20 / 127.5 - 1, np.float32)  # the small-pet photo, preprocessed at the input size
    pixels[:, 48:60, 48:60] = 250 / 127.5 - 1
    prediction = Predictor(network).predict(torch.from_numpy(pixels))
    assert prediction.has_pet and prediction.full_mask.shape == (SIZE, SIZE)
    left, top, right, bottom = prediction.pets[0].box
    assert left < 54 < right and top < 54 < bottom, "found where the square is, in the input's pixels"
    close_up = Image.fromarray(np.full((128, 128, 3), 250, np.uint8))
    network = _TileNetwork(_tile_config())
    found, small = Predictor(network).predict_batch([close_up, _small_pet_photo()], batch_size=2)
    assert network.passes == [("first look", 2), ("single view", 2), ("single view", 2)], "the small pet's tiles alone"
    assert found.has_pet and small.has_pet and small.pets[0].box[0] >= 90


def test_a_tile_must_reach_the_tile_threshold_and_the_look_can_be_off() -> None:
    from petnet.inference.pipeline import Predictor

    network = _TileNetwork(_tile_config(), scale=43.0)  # the tile's score (0.9) between pet_threshold and tile_look_threshold
    prediction = Predictor(network).predict(_small_pet_photo())
    assert not prediction.has_pet and prediction.pets == ()
    assert prediction.pet_score == pytest.approx(expit(-6.0)), "the first look's score stands"
    network = _TileNetwork(_tile_config(side=None))
    prediction = Predictor(network).predict(_small_pet_photo())
    assert not prediction.has_pet and network.passes == [("first look", 1)], "off: models saved before it"


def test_tiles_go_in_passes_and_each_find_answers_for_its_own_photo(monkeypatch: pytest.MonkeyPatch) -> None:
    from petnet.inference.pipeline import Predictor

    monkeypatch.setattr("petnet.inference.pipeline.TILES_PER_PASS", 4)
    photos = [_small_pet_photo(left=4, top=4), Image.fromarray(np.full((128, 128, 3), 20, np.uint8)), _small_pet_photo()]
    network = _TileNetwork(_tile_config())
    first, empty, last = Predictor(network).predict_batch(photos, batch_size=3)
    assert network.passes == [("first look", 3), ("single view", 4), ("single view", 4), ("single view", 4)]
    assert first.has_pet and last.has_pet and not empty.has_pet
    assert first.pets[0].box[2] <= 32 and last.pets[0].box[0] >= 90, "top left in the first, bottom right in the last"


def test_the_tile_look_only_where_a_look_suspected_a_pet_and_around_the_suspect_crop() -> None:
    """The first look's score (0.0025) or a second-look crop's (about 0.7 here, a pet by no
    threshold) must reach tile_look_from; a suspect crop is looked at in the one tile nearest it."""
    from petnet.inference.pipeline import Predictor

    tile_finds = [("backbone", 1), ("backbone", 1), ("single view", 1)]  # a tile's own second look, confirmed, seen whole
    for suspected_from, first_look_peak, passes in (
        (0.002, False, [("first look", 1), ("single view", 2), ("single view", 2), *tile_finds]),  # all four tiles
        (0.05, False, [("first look", 1)]),
        (0.5, True, [("first look", 1), ("backbone", 1), ("single view", 1), *tile_finds]),  # the crop, then its tile
        (0.9, True, [("first look", 1), ("backbone", 1)]),
    ):
        network = _TileNetwork(_tile_config(suspected_from=suspected_from), scale=10.0, first_look_peak=first_look_peak)
        prediction = Predictor(network).predict(_small_pet_photo())
        assert network.passes == passes, (suspected_from, first_look_peak)
        assert prediction.has_pet is (len(passes) > 2)
        if prediction.has_pet:
            left, top, right, bottom = prediction.pets[0].box
            assert left < 108 < right and top < 108 < bottom, "the square, bottom right"


def test_a_pet_the_tile_look_found_is_shown_to_the_animal_check() -> None:
    from petnet.inference.pipeline import Predictor

    config = _tile_config()
    config.animal_check_threshold, config.animal_check_below = 2.0, 0.6  # the tile's breed is sure: asked anyway
    for odds, turned_away in ((3.0, True), (1.0, False)):
        check = _FakeAnimalCheck(odds)
        prediction = Predictor(_TileNetwork(config), check).predict(_small_pet_photo())
        assert check.batches == [1]
        assert prediction.other_animal is turned_away and prediction.has_pet is not turned_away


@pytest.mark.parametrize("values", [{"tile_look_side": 0.0}, {"tile_look_side": 1.2}, {"tile_look_threshold": 0.0},
                                    {"tile_look_threshold": 1.0}, {"tile_look_from": -0.1}, {"tile_look_from": 1.0}])  # fmt: skip
def test_tile_look_settings_out_of_range_are_refused(values: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(values))):
        PetNetConfig(**values)
    assert PetNetConfig().tile_look_side is None, "models saved before it: no tile look"
