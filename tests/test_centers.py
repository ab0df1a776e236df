"""The animal-centre head: targets, loss, peaks, regions from peaks, its training data, the head in PetNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from non_pet_factory import other_animal_photo
from PIL import Image

from petnet.config import PetNetConfig
from petnet.data.center_data import KINDS, CenterTrainingSet
from petnet.data.composites import different_sizes, overlapping, side_by_side
from petnet.data.datasets import read_split
from petnet.data.transforms import center_transform
from petnet.inference.centers import center_heatmap, find_peaks, hill_box
from petnet.inference.decoding import mask_from_logits
from petnet.inference.regions import candidate_boxes, center_regions, hill_region, partial_crop_box, square_box
from petnet.labels import BACKGROUND_INDEX
from petnet.models.network import PetNet
from petnet.training.losses import center_focal_loss
from petnet.training.train_centers import THRESHOLDS, animal_counts, choose_center_threshold, with_center_head


def _two_animals(size: int = 64) -> np.ndarray:
    instances = np.zeros((size, size), dtype=np.uint8)
    instances[8:24, 4:20] = 1  # a 16x16 animal centred at (15.5, 11.5)
    instances[30:62, 30:62] = 2  # a 32x32 one centred at (45.5, 45.5)
    return instances


def test_heatmap_has_one_peak_per_animal_at_its_centre() -> None:
    heatmap = center_heatmap(_two_animals(), (8, 8))
    peaks = np.argwhere(heatmap == 1).tolist()
    assert sorted(peaks) == [[1, 1], [5, 5]], "centroids (15.5, 11.5) and (45.5, 45.5) fall in cells 1 and 5"
    assert heatmap.min() >= 0 and heatmap.max() == 1 and heatmap.dtype == np.float32
    assert center_heatmap(np.zeros((64, 64), dtype=np.uint8), (8, 8)).sum() == 0, "no animal, no peak"
    assert (center_heatmap(_two_animals(), (8, 8), min_area=300) == 1).sum() == 1, "the 256-pixel animal is too small"


def test_focal_loss_rewards_the_right_peaks() -> None:
    target = torch.from_numpy(center_heatmap(_two_animals(), (8, 8)))[None]
    right = torch.where(target == 1, 8.0, -8.0)
    wrong = torch.where(target == 1, -8.0, 8.0)
    assert center_focal_loss(right, target) < 0.01 < center_focal_loss(torch.zeros_like(target), target) < center_focal_loss(wrong, target)
    logits = torch.zeros_like(target, requires_grad=True)
    center_focal_loss(logits, target).backward()
    assert torch.isfinite(logits.grad).all()
    assert center_focal_loss(torch.full((1, 8, 8), -8.0), torch.zeros(1, 8, 8)) < 0.01, "a photo with no pet"


def test_peaks_are_local_maxima_above_the_threshold() -> None:
    heatmap = center_heatmap(_two_animals(), (16, 16)) * np.float32(0.9)
    heatmap[2, 14] = 0.3  # a low bump
    peaks = find_peaks(heatmap, threshold=0.5)
    assert sorted((r, c) for r, c, _ in peaks) == [(3, 2), (11, 11)], "the centroids' cells, as in the target"
    assert len(find_peaks(heatmap, threshold=0.2)) == 3
    assert find_peaks(heatmap, threshold=0.95) == []
    plateau = np.zeros((8, 8), dtype=np.float32)
    plateau[3:5, 3:5] = 0.8
    assert len(find_peaks(plateau, threshold=0.5)) == 1, "equal neighbours are one peak"


def test_two_tops_of_one_hill_are_one_animal() -> None:
    cols = np.arange(24, dtype=np.float32)
    ridge = 0.8 * np.exp(-((cols - 6) ** 2) / 8) + 0.7 * np.exp(-((cols - 15) ** 2) / 8)
    two_hills = np.tile(ridge, (8, 1))
    assert len(find_peaks(two_hills, threshold=0.3)) == 2, "the line between them falls to ~0.03"
    one_hill = np.tile(0.85 * (ridge + 0.6 * np.exp(-((cols - 10.5) ** 2) / 30)), (8, 1))  # the dip filled in
    assert len(find_peaks(one_hill, threshold=0.3)) == 1
    assert len(find_peaks(one_hill, threshold=0.3, valley=1.0)) == 2, "any dip separates at valley 1"


def _mask_of(instances: np.ndarray) -> np.ndarray:
    """Trimap labels (0 pet, 1 background) of an animal-id map."""
    return np.where(instances > 0, 0, 1).astype(np.uint8)


def _heatmap(*peaks: tuple[int, int, float], size: int = 8) -> np.ndarray:
    """An (size, size) heatmap with a sharp peak of the given height at each (row, col)."""
    heatmap = np.zeros((size, size), dtype=np.float32)
    for row, col, height in peaks:
        heatmap[row, col] = height
    return heatmap


def test_regions_split_one_outline_between_its_peaks() -> None:
    instances = np.zeros((64, 64), dtype=np.uint8)
    instances[10:50, 4:34] = 1
    instances[10:50, 34:60] = 2  # touching: one outline of pet pixels
    heatmap = _heatmap((3, 2, 0.9), (3, 5, 0.8))  # cells of an 8x8 heatmap over the two halves
    regions = center_regions(_mask_of(instances), heatmap, 0.5, 0.5)
    assert len(regions) == 2
    assert regions[0][30, 10] and regions[1][30, 55]
    assert not (regions[0] & regions[1]).any()
    assert int(regions[0].sum() + regions[1].sum()) == int((instances > 0).sum())
    assert len(center_regions(_mask_of(instances), heatmap, 0.85, 0.85)) == 1, "the 0.8 peak is below the threshold"


def test_an_outline_with_one_peak_is_one_animal() -> None:
    mask = _mask_of(_two_animals())
    [alone] = center_regions(mask, _heatmap((5, 5, 0.9)), 0.5, 0.5)
    assert np.array_equal(alone, mask != BACKGROUND_INDEX), "the outline without a peak joins the animal"
    regions = center_regions(mask, _heatmap((5, 5, 0.9), (1, 1, 0.7)), 0.5, 0.5)
    assert [int(r.sum()) for r in regions] == [32 * 32, 16 * 16], "largest first, each its own outline"
    assert center_regions(mask, _heatmap(), 0.5, 0.5) == []


def test_a_peak_the_mask_missed_needs_the_higher_threshold_and_gets_its_hill_box() -> None:
    mask = _mask_of(_two_animals())  # pet pixels at rows 8-24 x cols 4-20 and 30-62 x 30-62
    heatmap = _heatmap((5, 5, 0.9))
    heatmap[0:3, 5:8] = 0.2
    heatmap[1, 6] = 0.6  # a one-cell hill on cell (1, 6), pixels 8-16 x 48-56, no pet pixel near
    assert len(center_regions(mask, heatmap, 0.5, 0.7)) == 1, "below the off-mask threshold"
    regions = center_regions(mask, heatmap, 0.5, 0.5)
    assert len(regions) == 2
    box = regions[1]
    rows, cols = np.nonzero(box)
    # a hill one cell wide at 60% of its height is the target peak of an animal 1 / 0.202 = 4.9 cells across
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (0, 31, 32, 63), "the box the hill implies"
    assert not (box & (mask == 0)).any(), "without the other animal's pixels"
    assert len(center_regions(np.ones((64, 64), dtype=np.uint8), _heatmap((3, 3, 0.9)), 0.5, 0.5)) == 1, (
        "a mask with no pet at all: the peak's own box"
    )


def test_choose_center_threshold_keeps_single_pets_whole() -> None:
    thresholds = [(0.2, 0.2), (0.4, 0.5), (0.6, 0.6)]
    composites = np.array([[2, 2, 1], [2, 2, 1], [3, 2, 1]])
    singles = np.array([[2, 1, 1]] * 5 + [[1, 1, 1]] * 95)
    threshold, table = choose_center_threshold(composites, singles, thresholds, max_single_split=0.02)
    assert threshold == (0.4, 0.5), "0.2 splits 5% of single pets; 0.4 counts all composites right"
    assert table["0.40/0.50"] == {"composites_count_right": 1.0, "single_pets_split": 0.0}
    singles[:1, 1] = 2  # 0.4 now splits one single pet; 0.6 counts fewer composites: 0.4 stays
    assert choose_center_threshold(composites, singles, thresholds)[0] == (0.4, 0.5)
    composites[:, 2] = 2  # 0.6 counts as many and splits none
    assert choose_center_threshold(composites, singles, thresholds)[0] == (0.6, 0.6)


def test_label_maps_lay_out_like_their_photos() -> None:
    from PIL import Image

    first, second = Image.new("L", (40, 30), 1), Image.new("L", (40, 30), 2)
    assert np.unique(np.asarray(side_by_side(first, second))).tolist() == [1, 2]
    smaller = np.asarray(different_sizes(first, second, 0.5, labels=True))
    assert np.unique(smaller).tolist() == [0, 1, 2], "0 around the smaller animal, no blended labels"
    trimap = np.ones((30, 40), dtype=np.uint8)
    trimap[5:25, 10:30] = 0
    pasted = np.asarray(overlapping(first, second, trimap, labels=True))
    assert np.unique(pasted).tolist() == [0, 1, 2]


@pytest.mark.parametrize("kind", [k for k in KINDS])
def test_training_samples_have_a_peak_per_animal(tiny_pet_root, kind: str, monkeypatch) -> None:
    records = read_split(tiny_pet_root, "trainval")
    non_pets = [r for r in records[:2]]  # stand-ins: any photo, read as if it held no pet
    config = PetNetConfig(image_size=64)
    dataset = CenterTrainingSet(records, non_pets, center_transform(config), (8, 8), length=4, fixed=True)
    monkeypatch.setattr("random.Random.choices", lambda self, population, weights=None: [kind])
    sample = dataset[0]
    assert sample["image"].shape == (3, 64, 64) and sample["heatmap"].shape == (8, 8)
    expected = {"single": 1, "no_pet": 0, "three": 3}.get(kind, 2)
    assert int((sample["heatmap"] == 1).sum()) <= expected, "a random crop may cut an animal out"
    if kind in ("single", "no_pet"):
        assert int((sample["heatmap"] == 1).sum()) == expected


@pytest.mark.parametrize("other_animal", [False, True])
def test_a_scene_holds_its_placed_pet_s_peak_or_none_for_another_animal(tiny_pet_root, tmp_path, monkeypatch,
                                                                         other_animal: bool) -> None:  # fmt: skip
    from torchvision.transforms import v2

    from petnet.data.scenes import ScenePlacer

    records = read_split(tiny_pet_root, "trainval")
    animal = other_animal_photo(tmp_path)
    monkeypatch.setattr("petnet.data.center_data.OTHER_ANIMAL_SCENES", 1.0 if other_animal else 0.0)
    resize = v2.Compose([v2.ToImage(), v2.Resize((64, 64)), v2.ToDtype(torch.float32, scale=True)])
    placer = ScenePlacer(records[:2], sizes=(0.7, 0.7))  # stand-in backgrounds
    dataset = CenterTrainingSet(records, [animal], resize, (8, 8), length=3, fixed=True, scenes=placer, scene_share=1.0)
    for index in range(len(dataset)):
        assert int((dataset[index]["heatmap"] == 1).sum()) == (0 if other_animal else 1)


@pytest.fixture(scope="module")
def centered() -> PetNet:
    torch.manual_seed(0)
    return with_center_head(PetNet(PetNetConfig(image_size=128))).eval()


def test_adding_the_head_changes_no_other_output() -> None:
    torch.manual_seed(0)
    plain = PetNet(PetNetConfig(image_size=128)).eval()
    with_head = with_center_head(plain).eval()
    images = torch.randn(2, 3, 128, 128)
    before, after = plain(images), with_head(images)
    for name in ("species_logits", "breed_logits", "mask_logits", "pet_logits"):
        assert torch.equal(getattr(before, name), getattr(after, name)), name
    assert before.center_logits is None and after.center_logits.shape == (2, 16, 16)
    trainable = {name for name, p in with_head.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("center_head.") for name in trainable)


def test_predict_contract_with_the_head(centered: PetNet, tmp_path) -> None:
    prediction = centered.predict(torch.randn(3, 128, 128))
    assert prediction.mask.shape == (128, 128) and len(prediction.breed) == 3
    centered.save_pretrained(tmp_path)
    loaded = PetNet.from_pretrained(str(tmp_path))
    assert loaded.config.center_head and loaded.center_head is not None
    fused = PetNet.from_pretrained(str(tmp_path)).fuse_for_inference()
    images = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        assert torch.allclose(loaded.infer(images).center_logits, fused.infer(images).center_logits, atol=1e-3)


def test_animal_counts_equal_the_region_rule_at_every_threshold_pair() -> None:
    torch.manual_seed(0)
    model = with_center_head(PetNet(PetNetConfig(image_size=128))).eval()
    with torch.no_grad():  # steep random heatmaps: peaks of many heights, so the pairs count differently
        model.center_head.body[-1].bias.zero_()
        model.center_head.body[-1].weight.mul_(10)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) for _ in range(4)]
    counts = animal_counts(model, images, THRESHOLDS)
    for image, row in zip(images, counts):
        output = model.predictor.network.infer(model.predictor.prepare(image).pixels[None])
        mask = mask_from_logits(output.mask_logits[0])
        assert row.tolist() == [max(1, len(model.predictor.regions(mask, output, 0, pair))) for pair in THRESHOLDS]
    assert len(set(counts.ravel().tolist())) > 2


def test_mirrored_heatmaps_are_averaged(centered: PetNet) -> None:
    images = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        single = centered(images).center_logits
        mirrored = centered(images.flip(-1)).center_logits.flip(-1)
        assert torch.allclose(centered.infer(images).center_logits, (single + mirrored) / 2, atol=1e-5)


def test_train_centers_adds_a_trained_head_and_writes_thresholds(tiny_pet_root, tmp_path) -> None:
    import json

    from petnet.training.train_centers import main

    start = tmp_path / "start"
    torch.manual_seed(0)
    PetNet(PetNetConfig(image_size=64)).save_pretrained(start)
    out = tmp_path / "centers"
    main(["--model", str(start), "--output-dir", str(out), "--data-root", str(tiny_pet_root), "--non-pet-root", "",
          "--epochs", "1", "--samples-per-epoch", "8", "--val-samples", "4", "--batch-size", "4",
          "--composites-per-layout", "2", "--val-fraction", "0.25", "--num-workers", "0"])  # fmt: skip
    exported = PetNet.from_pretrained(str(out / "final"))
    assert exported.config.center_head and exported.center_head is not None
    chosen = json.loads((out / "center_thresholds.json").read_text())["chosen"]
    assert chosen == f"{exported.config.center_threshold:.2f}/{exported.config.center_off_mask_threshold:.2f}"
    assert (out / "training_log.csv").read_text().count("\n") == 2, "a header and one epoch"
    original = PetNet.from_pretrained(str(start))
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(original(images).mask_logits, exported(images).mask_logits), "the rest is frozen"


def test_train_centers_can_start_from_another_models_head(tiny_pet_root, tmp_path) -> None:
    from petnet.training.train_centers import CenterTrainer, parse_args

    start, donor = tmp_path / "start", tmp_path / "donor"
    PetNet(PetNetConfig(image_size=64)).save_pretrained(start)
    PetNet(PetNetConfig(image_size=64, center_head=True)).save_pretrained(donor)

    def trainer(head_from) -> CenterTrainer:
        return CenterTrainer(parse_args(["--model", str(start), "--head-from", str(head_from), "--data-root",
                                         str(tiny_pet_root), "--non-pet-root", "", "--val-fraction", "0.25"]))  # fmt: skip

    started = trainer(donor).model.center_head.state_dict()
    for name, tensor in PetNet.from_pretrained(str(donor)).center_head.state_dict().items():
        assert torch.equal(started[name], tensor), name
    with pytest.raises(ValueError, match="no centre head"):
        trainer(start)


def test_the_box_of_a_peak_stops_at_the_dip_to_its_neighbour() -> None:
    cols = np.arange(30, dtype=np.float32)
    ridge = 0.8 * (np.exp(-((cols - 8) ** 2) / 8) + 0.9 * np.exp(-((cols - 14.5) ** 2) / 8))
    heatmap = np.tile(ridge, (30, 1)) * np.exp(-((np.arange(30, dtype=np.float32) - 15) ** 2) / 8)[:, None]
    peaks = find_peaks(heatmap, 0.3)
    assert len(peaks) == 2, "the dip falls to 0.56 of the lower peak: two animals"
    _, left, _, right = hill_box(heatmap, peaks[1])
    # its hill at 60% of its height is cells 12-16 (a box 5 / 0.202 = 25 cells wide); shared with the
    # higher peak's it would be cells 6-16 and the box 54 cells wide
    assert 20 < right - left < 30


def test_an_animal_the_mask_missed_keeps_its_box_at_the_photo_size(centered: PetNet) -> None:
    output = centered.predictor.network.infer(np.random.default_rng(0).normal(size=(1, 3, 128, 128)).astype(np.float32))
    decoded = centered.predictor.decode(output)
    mask = np.ones((128, 128), dtype=np.uint8)  # background at network size ...
    mask[:, :40] = 0  # ... but for the first animal
    box = np.zeros((128, 128), dtype=bool)
    box[20:100, 60:120] = True
    full_mask = np.ones((300, 500), dtype=np.uint8)
    full_mask[:, :160] = 0
    full_mask[100:105, 240:245] = 0  # a few pet pixels the bilinear upsampling put inside the box
    pet = centered.predictor._pet(decoded, 0, box, mask, (300, 500), full_mask)
    left, top, right, bottom = pet.box
    assert (left, top, right, bottom) == (235, 47, 469, 235), "the whole box, not the few pet pixels"
    assert not pet.region[100:105, 240:245].any()


def test_candidate_boxes_are_squares_around_the_highest_peaks_kept_inside_the_image() -> None:
    heatmap = np.zeros((16, 16), np.float32)
    heatmap[2, 14], heatmap[8, 4], heatmap[12, 12] = 0.5, 0.3, 0.1
    candidates = candidate_boxes(heatmap, (128, 128), 0.02, count=2, side=0.25)
    assert [centre for centre, _ in candidates] == [(20.0, 116.0), (68.0, 36.0)], "the two highest, at their cells' centres"
    assert [box for _, box in candidates] == [(96, 4, 128, 36), (20, 52, 52, 84)], "the first moved in from the right edge"
    (_, box), = candidate_boxes(heatmap, (128, 128), 0.02)  # no side: one peak, its hill's box
    assert box == partial_crop_box(hill_region(heatmap, find_peaks(heatmap, 0.02)[0], (128, 128)))
    assert candidate_boxes(heatmap, (128, 128), 0.6, count=2, side=0.25) == [], "no peak that high"


def test_square_boxes_stay_inside_images_of_any_shape() -> None:
    assert square_box((100, 200), (2.0, 3.0), 0.3) == (0, 0, 30, 30), "moved in from the top left"
    assert square_box((100, 200), (99.0, 199.0), 0.3) == (170, 70, 200, 100), "and from the bottom right"
    assert square_box((100, 200), (50.0, 100.0), 1.0) == (50, 0, 150, 100), "a side of the shorter side"
    assert square_box((100, 200), (50.0, 100.0), 0.001) == (100, 50, 101, 51), "at least a pixel"
