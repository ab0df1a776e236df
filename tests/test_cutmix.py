import numpy as np
import torch

from petnet.config import LossWeights
from petnet.data.cutmix import copy_paste_pets, cutmix_pets, random_box
from petnet.inference.decoding import PetNetOutput
from petnet.labels import BACKGROUND_INDEX, BOUNDARY_INDEX, IGNORE_INDEX, PET_INDEX
from petnet.training.losses import multitask_loss


def _batch() -> dict:
    images = torch.stack([torch.full((3, 8, 8), float(i)) for i in range(4)])
    masks = torch.stack([torch.full((8, 8), i % 3) for i in range(4)])
    pseudo = torch.full((4, 8, 8), IGNORE_INDEX)
    return {
        "image": images,
        "mask": masks,
        "pseudo_mask": pseudo,
        "species": torch.tensor([0, 1, 1, -1]),
        "breed": torch.tensor([0, 1, 2, -1]),
        "is_pet": torch.tensor([True, True, True, False]),
    }


def test_random_box_stays_inside_the_image() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        top, bottom, left, right = random_box(8, 10, float(rng.random()), rng)
        assert 0 <= top <= bottom <= 8 and 0 <= left <= right <= 10


def test_cutmix_moves_image_and_mask_together_and_spares_non_pets() -> None:
    batch = _batch()
    mixed = cutmix_pets(batch, 1.0, np.random.default_rng(3))
    partner, weight = mixed["mix_partner"], mixed["mix_weight"]
    assert partner[3] == 3 and weight[3] == 1.0
    assert torch.equal(mixed["image"][3], batch["image"][3])
    assert set(partner[:3].tolist()) == {0, 1, 2}
    for i in range(3):
        from_partner = mixed["image"][i, 0] == float(partner[i])
        own = mixed["image"][i, 0] == float(i)
        assert torch.all(from_partner | own)
        # the mask pixel comes from the photo its image pixel came from
        assert torch.equal(mixed["mask"][i][from_partner], batch["mask"][partner[i]][from_partner])
        if partner[i] != i:
            assert torch.isclose(weight[i], own.float().mean())
    assert torch.equal(batch["image"][0], torch.zeros(3, 8, 8))  # the input is left as it was


def test_mixed_label_loss_weighs_own_and_partner_labels() -> None:
    batch = _batch()
    batch["mix_partner"] = torch.tensor([1, 0, 2, 3])
    batch["mix_weight"] = torch.tensor([0.25, 0.25, 1.0, 1.0])
    breed_logits = torch.randn(4, 37)
    output = PetNetOutput(torch.randn(4, 2), breed_logits, torch.randn(4, 3, 8, 8), torch.randn(4), torch.randn(4, 37, 2, 2))
    loss = multitask_loss(output, batch, LossWeights())["breed"]
    ce = torch.nn.functional.cross_entropy
    expected = (
        0.25 * ce(breed_logits[0:1], torch.tensor([0])) + 0.75 * ce(breed_logits[0:1], torch.tensor([1]))
        + 0.25 * ce(breed_logits[1:2], torch.tensor([1])) + 0.75 * ce(breed_logits[1:2], torch.tensor([0]))
        + ce(breed_logits[2:3], torch.tensor([2]))
    ) / 3
    assert torch.isclose(loss, expected)


def _animals_batch() -> dict:
    """Two 8x8 pet photos (values 1 and 2), each a 2x2 animal (pet with a boundary pixel) at its own place,
    the second one's from a pseudo mask, and one photo with no pet."""
    images = torch.stack([torch.full((3, 8, 8), float(i)) for i in (1, 2, 3)])
    masks = torch.full((3, 8, 8), IGNORE_INDEX)
    masks[0] = BACKGROUND_INDEX
    masks[0, 0:2, 0:2] = PET_INDEX
    masks[0, 0, 0] = BOUNDARY_INDEX
    masks[2] = BACKGROUND_INDEX
    pseudo = torch.full((3, 8, 8), IGNORE_INDEX)
    pseudo[1] = BACKGROUND_INDEX
    pseudo[1, 6:8, 6:8] = PET_INDEX
    return {"image": images, "mask": masks, "pseudo_mask": pseudo, "species": torch.tensor([0, 1, -1]),
            "breed": torch.tensor([0, 1, -1]), "is_pet": torch.tensor([True, True, False])}  # fmt: skip


def test_copy_paste_moves_the_partners_animal_with_its_labels_and_spares_non_pets() -> None:
    batch = _animals_batch()
    for seed in range(20):
        mixed = copy_paste_pets(batch, np.random.default_rng(seed))
        if torch.equal(mixed["mix_partner"], torch.tensor([0, 1, 2])):
            continue  # the permutation left both pets with themselves
        assert mixed["mix_partner"].tolist() == [1, 0, 2]
        assert torch.equal(mixed["image"][2], batch["image"][2]) and mixed["mix_weight"][2] == 1.0
        for photo, partner in ((0, 1), (1, 0)):
            pasted = mixed["image"][photo, 0] == float(partner + 1)
            assert int(pasted.sum()) <= 4  # only the partner's animal moves, never its background
            labels = torch.where(mixed["mask"][photo] != IGNORE_INDEX, mixed["mask"][photo], mixed["pseudo_mask"][photo])
            assert torch.isin(labels[pasted], torch.tensor([PET_INDEX, BOUNDARY_INDEX])).all()
        own_left = int((mixed["image"][0, 0, 0:2, 0:2] == 1.0).sum())
        pasted_into_first = int((mixed["image"][0, 0] == 2.0).sum())
        assert torch.isclose(mixed["mix_weight"][0], torch.tensor(own_left / (own_left + pasted_into_first)))
        break
    else:
        raise AssertionError("no seed paired the two pets")
    assert torch.equal(batch["image"][0], torch.ones(3, 8, 8))  # the input is left as it was


def test_copy_paste_leaves_a_batch_with_one_pet_alone() -> None:
    batch = _animals_batch()
    batch["is_pet"] = torch.tensor([True, False, False])
    assert copy_paste_pets(batch, np.random.default_rng(0)) is batch
