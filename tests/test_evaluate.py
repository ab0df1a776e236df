"""petnet.evaluate end to end on the tiny generated dataset with a tiny random model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from non_pet_factory import make_non_pets
from PIL import Image

from petnet.config import PetNetConfig
from petnet.data.datasets import non_pet_split, read_non_pets, read_split, train_val_split
from petnet.errors import WeightsError
from petnet.evaluate import OFFICIAL_TEST_TOTAL, main, run_model, segmentation_metrics, split_description
from petnet.evaluation.report import load_report
from petnet.labels import BREED_NAMES, MASK_CLASSES
from petnet.models.network import PetNet


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    PetNet(PetNetConfig(image_size=64)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def non_pet_root(tmp_path_factory):
    return make_non_pets(tmp_path_factory.mktemp("non-pets"), count=8)


@pytest.fixture(scope="module")
def test_report(tiny_pet_root, tiny_model_dir, non_pet_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports") / "test.json"
    argv = ["--split", "test", "--model", str(tiny_model_dir), "--data-root", str(tiny_pet_root), "--out", str(out),
            "--batch-size", "5", "--num-workers", "0", "--worst", "8", "--lowest-iou", "3",
            "--non-pet-root", str(non_pet_root), "--composites", "2", "--scenes", "2"]  # fmt: skip
    main(argv)
    return out, load_report(out)


def test_counts_match_the_split(test_report, tiny_pet_root):
    _, report = test_report
    records = read_split(tiny_pet_root, "test")
    assert report["split"] == "test"
    assert report["num_images"] == len(records) == 12
    assert report["num_images_with_trimap"] == sum(r.has_trimap for r in records) == 8
    assert report["split_description"] == f"official test split, 12 of {OFFICIAL_TEST_TOTAL:,} images (8 with trimaps)"
    assert report["model"]["image_size"] == 64
    assert report["model"]["mirror_averaged_mask"] is True
    assert report["labels"]["breeds"] == list(BREED_NAMES)


def test_single_view_mask_flag_is_recorded(tiny_pet_root, tiny_model_dir, tmp_path):
    out = tmp_path / "single.json"
    main(["--split", "test", "--model", str(tiny_model_dir), "--data-root", str(tiny_pet_root), "--out", str(out),
          "--num-workers", "0", "--limit", "2", "--single-view-mask", "--non-pet-root", "",
          "--precision", "float32"])  # fmt: skip
    report = load_report(out)
    assert report["model"]["mirror_averaged_mask"] is False
    assert report["model"]["precision"] == "float32"
    assert "detection" not in report, "no non-pet photos, no detection figures"


def test_detection_figures_score_the_held_out_non_pets_and_two_animal_composites(test_report, non_pet_root):
    _, report = test_report
    detection = report["detection"]
    assert detection["num_pets"] == 12
    assert detection["num_non_pets"] == len(non_pet_split(read_non_pets(non_pet_root), "holdout")) == 2
    assert detection["threshold"] == report["model"]["pet_threshold"] == 0.5
    assert report["model"]["center_threshold"] is report["model"]["center_off_mask_threshold"] is None, "no centre head"
    for key in ("pets_kept", "non_pets_accepted", "auroc", "single_pets_one_answer"):
        assert 0.0 <= detection[key] <= 1.0
    animals, others = detection["other_animals"], detection["other_non_pets"]
    assert animals["num_images"] + others["num_images"] == 2 and animals["accepted"] + others["accepted"] <= 2
    assert list(detection["scenes"]) == ["cutout", "zoomed_out"]
    for bands in detection["scenes"].values():
        assert list(bands) == ["10-20%", "20-45%", "45-70%", "70-100%"]
        for cell in bands.values():
            assert cell["num_images"] == 2 and cell["found"] >= cell["found_one"] >= cell["species_right"] >= cell["breed_right"]
            for key in ("num_images", "found_one", "species_right"):
                assert 0 <= cell[f"{key}_on_animals"] <= cell[key]
    two = detection["two_animal"]
    assert two["num_images"] == 6 and set(two["by_layout"]) == {"side_by_side", "different_sizes", "overlapping"}
    assert 0 <= two["both_species_right"] <= two["count_right"] <= 6


def test_binary_pet_iou_merges_pet_and_boundary(test_report):
    _, report = test_report
    confusion = np.array(report["segmentation"]["confusion"])
    foreground = confusion[np.ix_([0, 2], [0, 2])].sum()
    union = confusion[[0, 2]].sum() + confusion[:, [0, 2]].sum() - foreground
    assert report["segmentation"]["binary_pet_iou"] == pytest.approx(foreground / union)


def test_lowest_iou_cases_are_the_worst_masks(test_report):
    _, report = test_report
    cases = report["segmentation"]["lowest_iou"]
    ious = [case["iou"] for case in cases]
    assert len(ious) == 3 and ious == sorted(ious)
    assert all(case["predicted_mask"] for case in cases)


def test_a_model_with_other_labels_is_refused(tiny_pet_root, tmp_path):
    config = PetNetConfig(image_size=64, breed_names=["Abyssinian", "beagle"], breed_species=["cat", "dog"])
    PetNet(config).save_pretrained(tmp_path / "model")
    with pytest.raises(WeightsError, match="labels"):
        main(["--split", "test", "--model", str(tmp_path / "model"), "--data-root", str(tiny_pet_root),
              "--out", str(tmp_path / "r.json"), "--num-workers", "0", "--limit", "2"])  # fmt: skip


def test_confusion_matrices_add_up(test_report):
    _, report = test_report
    species = np.array(report["species"]["confusion"])
    breed = np.array(report["breed"]["confusion"])
    pixels = np.array(report["segmentation"]["confusion"])
    assert species.shape == (2, 2) and species.sum() == 12
    assert species.sum(axis=1).tolist() == [6, 6]  # 2 cat breeds and 2 dog breeds, 3 test images each
    assert breed.shape == (37, 37) and breed.sum() == 12
    assert pixels.shape == (3, 3) and pixels.sum() == 8 * 64 * 64  # trimap resolution of the tiny images
    assert report["segmentation"]["resolution"] == "64x64 (trimap)"
    assert report["species"]["accuracy"] == pytest.approx(np.trace(species) / 12)
    assert sum(entry["support"] for entry in report["breed"]["per_class"]) == 12


def test_rates_are_fractions_or_null(test_report):
    _, report = test_report
    segmentation = report["segmentation"]
    for name in MASK_CLASSES:
        for section in ("per_class_iou", "per_class_dice"):
            value = segmentation[section][name]
            assert value is None or 0.0 <= value <= 1.0
    assert 0.0 <= segmentation["min_iou"] <= segmentation["mean_iou"] <= 1.0
    assert 0.0 <= report["breed"]["top1_accuracy"] <= report["breed"]["top3_accuracy"] <= 1.0


def test_worst_cases_are_ranked_and_their_masks_saved(test_report):
    out, report = test_report
    worst = report["worst_cases"]
    assert len(worst) == 8
    keys = [(w["predicted_species"] == w["true_species"], w["true_breed_probability"]) for w in worst]
    assert keys == sorted(keys, key=lambda k: (k[0], k[1]))
    for entry in worst:
        if entry["trimap"] is None:
            assert entry["predicted_mask"] is None and entry["iou"] is None
            continue
        assert 0.0 <= entry["iou"] <= 1.0
        mask = np.asarray(Image.open(out.parent / entry["predicted_mask"]))
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 1, 2}
        assert len(entry["predicted_breeds"]) == 3
    listed = worst + report["segmentation"]["lowest_iou"]
    assert {p.name for p in (out.parent / "test_masks").iterdir()} == {
        w["predicted_mask"].split("/")[1] for w in listed if w["predicted_mask"]
    }


def test_val_split_recreates_the_training_split_and_limit(tiny_pet_root, tiny_model_dir, tmp_path):
    out = tmp_path / "val.json"
    report = main(["--split", "val", "--model", str(tiny_model_dir), "--data-root", str(tiny_pet_root), "--out", str(out),
                   "--num-workers", "0", "--val-fraction", "0.5", "--seed", "3", "--limit", "3", "--non-pet-root", ""])  # fmt: skip
    expected = train_val_split(read_split(tiny_pet_root, "trainval"), 0.5, 3)[1][:3]
    assert report["num_images"] == 3
    assert {w["name"] for w in report["worst_cases"]} == {r.name for r in expected}
    assert "val_fraction 0.5, seed 3" in report["split_description"]
    assert "--limit" in report["split_description"]


def test_segmentation_is_undefined_without_trimaps(tiny_pet_root, tiny_model_dir):
    records = [r for r in read_split(tiny_pet_root, "test") if not r.has_trimap][:2]
    outcomes, skipped = run_model(PetNet.from_pretrained(tiny_model_dir), records, batch_size=2)
    assert not skipped and all(o.mask is None and math.isnan(o.iou) for o in outcomes)
    segmentation = segmentation_metrics(outcomes)
    assert segmentation["resolution"] == "none (no trimaps)"
    assert all(math.isnan(segmentation[k]) for k in ("mean_iou", "min_iou", "mean_dice", "pixel_accuracy"))
    assert split_description("trainval", records, 0.1, 0).endswith("2 images (0 with trimaps)")


def test_the_closer_look_scores_what_predict_returns(tiny_pet_root, monkeypatch):
    model = PetNet(PetNetConfig(image_size=64, closer_look=True, pet_threshold=0.0))
    forward = model.forward

    def pet_in_the_middle(images):  # a random network's mask, with a pet where the crop will look
        output = forward(images)
        mask_logits = torch.zeros_like(output.mask_logits)
        mask_logits[:, 1] = 1.0
        mask_logits[:, 0, 20:40, 16:36] = 2.0
        return output._replace(mask_logits=mask_logits)

    monkeypatch.setattr(model, "forward", pet_in_the_middle)
    records = read_split(tiny_pet_root, "test")[:4]
    outcomes, _ = run_model(model, records, batch_size=2)
    model.config.closer_look = False
    photo_only, _ = run_model(model, records, batch_size=2)
    model.config.closer_look = True
    looked_closer = [not np.allclose(a.breed_logits, b.breed_logits) for a, b in zip(outcomes, photo_only)]
    assert any(looked_closer)
    for record, outcome in zip(records, outcomes, strict=True):
        prediction = model.predict(record.image_path)
        evaluated = np.exp(outcome.breed_logits - outcome.breed_logits.max())
        assert list(prediction.breed_probabilities.values()) == pytest.approx(evaluated / evaluated.sum(), abs=1e-5)


def test_detection_counts_what_predict_decided_and_ranks_by_score() -> None:
    from petnet.evaluate import detection_metrics

    # a pet found by its crop (score 0.2), a non-pet over the threshold that the check turned away (0.9)
    metrics = detection_metrics([0.95, 0.2], [0.9, 0.1], 0.5, pets_found=[True, True], non_pets_found=[False, False])
    assert metrics["pets_kept"] == 1.0 and metrics["non_pets_accepted"] == 0.0
    assert metrics["auroc"] == pytest.approx(0.75) and metrics["threshold"] == 0.5
