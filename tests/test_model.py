"""PetNet behaviour: output shapes, predictions, input kinds, batching, save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_pet
from PIL import Image
from safetensors.torch import load_file, save_file

from petnet.config import PetNetConfig
from petnet.errors import WeightsError
from petnet.inference.results import Prediction
from petnet.labels import BREED_NAMES, BREED_SPECIES
from petnet.models.network import PetNet

SIZE = 64
SPECIES_OF = dict(zip(BREED_NAMES, BREED_SPECIES))


@pytest.fixture(scope="module")
def model() -> PetNet:
    torch.manual_seed(0)
    return PetNet(PetNetConfig(image_size=SIZE))


@pytest.fixture(scope="module")
def saved_dir(model: PetNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("saved")
    model.save_pretrained(directory)
    return directory


def test_forward_shapes(model: PetNet) -> None:
    with torch.inference_mode():
        output = model(torch.randn(2, 3, SIZE, SIZE + 32))
    assert output.species_logits.shape == (2, 2)
    assert output.breed_logits.shape == (2, 37)
    assert output.mask_logits.shape == (2, 3, SIZE, SIZE + 32)


def test_infer_averages_only_the_mask_with_the_mirror_image(model: PetNet) -> None:
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.inference_mode():
        plain, mirrored, inferred = model(images), model(images.flip(-1)), model.infer(images)
    torch.testing.assert_close(inferred.mask_logits, (plain.mask_logits + mirrored.mask_logits.flip(-1)) / 2)
    torch.testing.assert_close(inferred.species_logits, plain.species_logits)
    torch.testing.assert_close(inferred.breed_logits, plain.breed_logits)


def test_infer_is_forward_without_mirror_averaging() -> None:
    torch.manual_seed(0)
    single_view = PetNet(PetNetConfig(image_size=SIZE, mirror_averaged_mask=False))
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.inference_mode():
        torch.testing.assert_close(single_view.infer(images).mask_logits, single_view(images).mask_logits)


def _check_prediction(prediction: Prediction, mask_shape: tuple[int, int]) -> None:
    assert prediction.species in {"cat", "dog"}
    assert isinstance(prediction.breed, tuple) and len(prediction.breed) == 3
    assert {SPECIES_OF[name] for name in prediction.breed} == {prediction.species}
    assert list(prediction.breed_confidences) == sorted(prediction.breed_confidences, reverse=True)
    assert sum(prediction.breed_confidences) <= 1 + 1e-5
    assert sum(prediction.species_probabilities.values()) == pytest.approx(1, abs=1e-5)
    assert isinstance(prediction.mask, np.ndarray) and prediction.mask.dtype == np.uint8
    assert prediction.mask.shape == mask_shape and set(np.unique(prediction.mask).tolist()) <= {0, 1, 2}
    assert dict(prediction) == {"species": prediction.species, "breed": prediction.breed, "mask": prediction.mask}


def test_predict_on_a_preprocessed_tensor(model: PetNet) -> None:
    tensor = torch.randn(3, 128, 128)
    prediction = model.predict(tensor)
    _check_prediction(prediction, (128, 128))
    assert np.array_equal(prediction.full_mask, prediction.mask)
    assert set(prediction.to_dict()) >= {"species", "breed", "breed_confidences", "pet_fraction"}
    from_array = model.predict(tensor.numpy())
    assert from_array.breed == prediction.breed and np.array_equal(from_array.mask, prediction.mask), (
        "a float numpy array is a preprocessed input too"
    )


def test_pil_array_and_path_inputs_agree(model: PetNet, tmp_path: Path) -> None:
    image = synthetic_pet(80, seed=1)[0].resize((90, 70))
    path = tmp_path / "pet.png"
    image.save(path)
    predictions = [model.predict(source) for source in (image, np.asarray(image), path, str(path))]
    for prediction in predictions:
        _check_prediction(prediction, (SIZE, SIZE))
        assert prediction.full_mask.shape == (70, 90), "full_mask is at the photo's size"
        assert prediction.breed == predictions[0].breed
        assert np.array_equal(prediction.mask, predictions[0].mask)
    grey = image.convert("L")
    assert model.predict(np.asarray(grey)).breed == model.predict(grey).breed, "an HxW uint8 array is a grey photo"


def test_predict_batch_equals_one_by_one(model: PetNet) -> None:
    images = [synthetic_pet(size, seed=n)[0] for n, size in enumerate([64, 80, 48, 100, 72])]
    batched = model.predict_batch(images, batch_size=2)
    single = [model.predict(image) for image in images]
    assert len(batched) == len(images)
    for b, s in zip(batched, single):
        assert (b.species, b.breed) == (s.species, s.breed)
        assert b.species_confidence == pytest.approx(s.species_confidence, abs=1e-4)
        assert b.full_mask.shape == s.full_mask.shape
        assert (b.full_mask == s.full_mask).mean() > 0.99


def test_predict_batch_mixes_tensor_sizes(model: PetNet) -> None:
    predictions = model.predict_batch([torch.randn(3, 64, 64), torch.randn(3, 96, 96), torch.randn(1, 3, 64, 64)])
    assert [p.mask.shape for p in predictions] == [(64, 64), (96, 96), (64, 64)]


@pytest.mark.parametrize(
    "tensor", [torch.zeros(3, 64, 64, dtype=torch.uint8), torch.zeros(4, 64, 64), np.zeros((64, 64, 3), np.float32)]
)
def test_predict_rejects_unprocessed_tensors(model: PetNet, tensor: torch.Tensor | np.ndarray) -> None:
    with pytest.raises(ValueError, match="preprocessed"):
        model.predict(tensor)


def test_round_trip_keeps_weights_and_config(model: PetNet, saved_dir: Path, capsys: pytest.CaptureFixture) -> None:
    loaded = PetNet.from_pretrained(saved_dir)
    assert capsys.readouterr().out == "", "loading a local directory prints nothing"
    assert isinstance(loaded.config, PetNetConfig) and loaded.config == model.config
    assert json.loads((saved_dir / "config.json").read_text())["breed_names"] == list(BREED_NAMES)
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key, value in original.items():  # saved as fp16
        expected = value.half().to(value.dtype) if value.is_floating_point() else value
        assert torch.equal(restored[key], expected), key
    assert loaded.weights_source == str(saved_dir)
    assert not loaded.training


def test_custom_labels_travel_with_the_weights(tmp_path: Path) -> None:
    config = PetNetConfig(
        image_size=SIZE,
        breed_names=["Abyssinian", "Bengal", "beagle", "pug"],
        breed_species=["cat", "cat", "dog", "dog"],
    )
    PetNet(config).save_pretrained(tmp_path)
    loaded = PetNet.from_pretrained(tmp_path)
    assert loaded.config.breed_names == config.breed_names
    assert loaded.breed_head[-1].out_features == 4
    with torch.inference_mode():
        assert loaded(torch.randn(1, 3, SIZE, SIZE)).breed_logits.shape == (1, 4)


def _edit_weights(saved_dir: Path, target: Path, edit) -> Path:
    target.mkdir()
    (target / "config.json").write_text((saved_dir / "config.json").read_text())
    tensors = load_file(saved_dir / "model.safetensors")
    edit(tensors)
    save_file(tensors, target / "model.safetensors")
    return target


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: t.pop("species_head.3.weight"), id="missing"),
        pytest.param(lambda t: t.update(extra=torch.zeros(1)), id="unexpected"),
        pytest.param(lambda t: t.update({"species_head.3.bias": torch.zeros(5)}), id="wrong-shape"),
    ],
)
def test_strict_loading_rejects_mismatched_weights(saved_dir: Path, tmp_path: Path, edit) -> None:
    broken = _edit_weights(saved_dir, tmp_path / "broken", edit)
    with pytest.raises(WeightsError):
        PetNet.from_pretrained(broken)


def test_plain_state_dict_file_loads_with_weights_only(model: PetNet, tmp_path: Path) -> None:
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    fresh = PetNet(PetNetConfig(image_size=SIZE))
    fresh.load_state_dict(torch.load(tmp_path / "weights.pth", map_location="cpu", weights_only=True))
    image = torch.randn(1, 3, SIZE, SIZE)
    with torch.inference_mode():
        assert torch.equal(fresh(image).breed_logits, model(image).breed_logits)


def test_preprocess_output(model: PetNet) -> None:
    tensor = model.preprocess(Image.new("RGB", (30, 50), (255, 0, 0)))
    assert tensor.shape == (3, SIZE, SIZE) and tensor.dtype == torch.float32
    assert tensor[0].max().item() == pytest.approx(1.0) and tensor[1].min().item() == pytest.approx(-1.0)
