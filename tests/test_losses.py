"""Multi-task loss: unlabelled pixels are ignored, a batch without trimaps still trains, gradients flow;
non-pet photos teach the pet head and flatten the classifiers; pseudo masks, a teacher and Lovász-softmax add their own terms."""

from __future__ import annotations

import pytest
import torch

from petnet.config import LossWeights, PetNetConfig
from petnet.inference.decoding import PetNetOutput
from petnet.labels import IGNORE_INDEX
from petnet.models.network import PetNet
from petnet.training.losses import (
    distillation_loss,
    lovasz_softmax_loss,
    multitask_loss,
    soft_dice_loss,
    uniform_cross_entropy,
)


def _output(batch: int = 2, size: int = 8, seed: int = 0) -> PetNetOutput:
    generator = torch.Generator().manual_seed(seed)
    return PetNetOutput(
        species_logits=torch.randn(batch, 2, generator=generator, requires_grad=True),
        breed_logits=torch.randn(batch, 37, generator=generator, requires_grad=True),
        mask_logits=torch.randn(batch, 3, size, size, generator=generator, requires_grad=True),
        pet_logits=torch.randn(batch, generator=generator, requires_grad=True),
        breed_maps=torch.randn(batch, 37, 2, 2, generator=generator),
    )


def _batch(mask: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"species": torch.tensor([0, 1]), "breed": torch.tensor([0, 1]), "mask": mask}


def test_batch_without_trimaps_has_zero_segmentation_loss() -> None:
    output = _output()
    losses = multitask_loss(output, _batch(torch.full((2, 8, 8), IGNORE_INDEX)), LossWeights())
    assert losses["segmentation"].item() == 0 and losses["dice"].item() == 0
    assert torch.isfinite(losses["total"])
    assert losses["total"].item() == pytest.approx((losses["species"] + losses["breed"]).item())
    losses["total"].backward()
    assert output.species_logits.grad.abs().sum() > 0 and output.breed_logits.grad.abs().sum() > 0
    assert output.mask_logits.grad is not None and output.mask_logits.grad.abs().sum() == 0


def test_ignored_pixels_do_not_change_the_loss() -> None:
    mask = torch.randint(0, 3, (2, 8, 8))
    mask[1] = IGNORE_INDEX  # second image has no trimap
    output = _output()
    changed = output._replace(mask_logits=output.mask_logits.detach().clone())
    changed.mask_logits[1] = torch.randn(3, 8, 8) * 10
    first, second = (multitask_loss(o, _batch(mask), LossWeights()) for o in (output, changed))
    for key in ("segmentation", "dice", "total"):
        assert first[key].item() == pytest.approx(second[key].item(), rel=1e-6), key
    assert first["segmentation"].item() > 0


def test_soft_dice_rewards_a_correct_mask() -> None:
    target = torch.randint(0, 3, (1, 8, 8))
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 20
    assert soft_dice_loss(perfect, target).item() < 0.01
    assert soft_dice_loss(-perfect, target).item() > 0.9


def test_weights_scale_the_total() -> None:
    mask = torch.randint(0, 3, (2, 8, 8))
    losses = multitask_loss(_output(), _batch(mask), LossWeights(species=2, breed=0, segmentation=0, dice=0))
    assert losses["total"].item() == pytest.approx(2 * losses["species"].item())


def test_gradients_reach_every_part_of_the_model() -> None:
    torch.manual_seed(0)
    model = PetNet(PetNetConfig(image_size=32)).train()
    mask = torch.randint(0, 3, (2, 32, 32))
    mask[0] = IGNORE_INDEX
    losses = multitask_loss(model(torch.randn(2, 3, 32, 32)), _batch(mask), LossWeights())
    losses["total"].backward()
    for part in (model.encoder, model.species_head, model.breed_head, model.decoder):  # pet head: weight 0
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0


def test_non_pets_train_the_pet_head_and_not_the_breed_labels() -> None:
    output = _output()
    batch = {**_batch(torch.full((2, 8, 8), IGNORE_INDEX)), "is_pet": torch.tensor([True, False])}
    batch["breed"] = torch.tensor([0, -1])  # a non-pet has no breed; it must not reach cross-entropy
    losses = multitask_loss(output, batch, LossWeights(pet=1, outlier=1))
    first_only = output.apply(lambda tensor: tensor[:1])
    pets_only = multitask_loss(first_only, {k: v[:1] for k, v in batch.items()}, LossWeights())
    assert losses["breed"].item() == pytest.approx(pets_only["breed"].item())
    assert losses["outlier"].item() == pytest.approx(
        (uniform_cross_entropy(output.species_logits[1:]) + uniform_cross_entropy(output.breed_logits[1:])).item() / 2
    )
    expected_pet = torch.nn.functional.binary_cross_entropy_with_logits(output.pet_logits, torch.tensor([1.0, 0.0]))
    assert losses["pet"].item() == pytest.approx(expected_pet.item())
    losses["total"].backward()
    assert output.pet_logits.grad.abs().sum() > 0


def test_uniform_cross_entropy_is_smallest_for_flat_logits() -> None:
    flat, peaked = torch.zeros(1, 37), torch.zeros(1, 37)
    peaked[0, 0] = 10
    assert uniform_cross_entropy(flat).item() == pytest.approx(torch.log(torch.tensor(37.0)).item())
    assert uniform_cross_entropy(peaked) > uniform_cross_entropy(flat)


def test_pseudo_masks_count_only_with_their_weight() -> None:
    output = _output()
    batch = {**_batch(torch.full((2, 8, 8), IGNORE_INDEX)), "pseudo_mask": torch.randint(0, 3, (2, 8, 8))}
    off = multitask_loss(output, batch, LossWeights())
    on = multitask_loss(output, batch, LossWeights(pseudo_mask=0.5))
    assert off["pseudo_mask"].item() == 0 and on["pseudo_mask"].item() > 0
    assert on["total"].item() == pytest.approx(off["total"].item() + 0.5 * on["pseudo_mask"].item())


def test_label_smoothing_raises_the_loss_of_a_confident_right_answer() -> None:
    output = _output()._replace(species_logits=torch.tensor([[10.0, -10.0], [-10.0, 10.0]]))
    batch = _batch(torch.full((2, 8, 8), IGNORE_INDEX))
    sharp = multitask_loss(output, batch, LossWeights())["species"]
    smoothed = multitask_loss(output, batch, LossWeights(), label_smoothing=0.1)["species"]
    assert smoothed > sharp


def test_distillation_is_zero_at_the_teacher_and_scaled_by_the_temperature_squared() -> None:
    student, teacher = torch.randn(4, 37), torch.randn(4, 37)
    assert distillation_loss(teacher, teacher, 2.0).item() == pytest.approx(0, abs=1e-6)
    softened = torch.nn.functional.kl_div((student / 3).log_softmax(1), (teacher / 3).softmax(1), reduction="batchmean")
    assert distillation_loss(student, teacher, 3.0).item() == pytest.approx(9 * softened.item(), rel=1e-5)


def test_a_teacher_adds_a_distillation_term_over_the_pets_only() -> None:
    output, teacher = _output(), _output(seed=1)
    batch = {**_batch(torch.full((2, 8, 8), IGNORE_INDEX)), "is_pet": torch.tensor([True, False])}
    without = multitask_loss(output, batch, LossWeights(distill=1))
    losses = multitask_loss(output, batch, LossWeights(distill=1), teacher=teacher, temperature=2.0)
    expected = (distillation_loss(output.species_logits[:1], teacher.species_logits[:1], 2.0)
                + distillation_loss(output.breed_logits[:1], teacher.breed_logits[:1], 2.0)) / 2  # fmt: skip
    assert without["distill"].item() == 0
    assert losses["distill"].item() == pytest.approx(expected.item())
    assert (losses["total"] - without["total"]).item() == pytest.approx(expected.item(), rel=1e-5)


def test_photos_placed_into_scenes_are_not_distilled() -> None:
    output, teacher = _output(), _output(seed=1)
    batch = {**_batch(torch.full((2, 8, 8), IGNORE_INDEX)), "is_pet": torch.tensor([True, True])}
    first_only = {**batch, "in_scene": torch.tensor([False, True])}
    losses = multitask_loss(output, first_only, LossWeights(distill=1), teacher=teacher, temperature=2.0)
    expected = (distillation_loss(output.species_logits[:1], teacher.species_logits[:1], 2.0)
                + distillation_loss(output.breed_logits[:1], teacher.breed_logits[:1], 2.0)) / 2  # fmt: skip
    assert losses["distill"].item() == pytest.approx(expected.item())
    all_scenes = {**batch, "in_scene": torch.tensor([True, True])}
    assert multitask_loss(output, all_scenes, LossWeights(distill=1), teacher=teacher)["distill"].item() == 0


def test_mask_distillation_compares_each_pixel_of_the_close_ups_only() -> None:
    output, teacher = _output(), _output(seed=1)
    batch = {**_batch(torch.full((2, 8, 8), IGNORE_INDEX)), "is_pet": torch.tensor([True, True]),
             "in_scene": torch.tensor([False, True])}  # fmt: skip
    losses = multitask_loss(output, batch, LossWeights(mask_distill=1), teacher=teacher, temperature=2.0)
    pixels = [logits[:1].permute(0, 2, 3, 1).reshape(-1, 3) for logits in (output.mask_logits, teacher.mask_logits)]
    assert losses["mask_distill"].item() == pytest.approx(distillation_loss(*pixels, 2.0).item(), rel=1e-5)
    assert multitask_loss(teacher, batch, LossWeights(mask_distill=1), teacher=teacher)["mask_distill"].item() == pytest.approx(0, abs=1e-6)
    assert multitask_loss(output, batch, LossWeights(distill=1), teacher=teacher)["mask_distill"].item() == 0, "off unless weighted"


def test_lovasz_softmax_is_one_minus_mean_iou_on_hard_predictions() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (2, 8, 8), generator=generator)
    target[0, :2] = IGNORE_INDEX
    predicted = torch.randint(0, 3, (2, 8, 8), generator=generator)
    logits = torch.nn.functional.one_hot(predicted, 3).permute(0, 3, 1, 2).float() * 1e4  # softmax = one-hot
    valid = target != IGNORE_INDEX
    ious = [((predicted == c) & (target == c) & valid).sum() / (((predicted == c) | (target == c)) & valid).sum()
            for c in range(3)]  # fmt: skip
    assert lovasz_softmax_loss(logits, target).item() == pytest.approx(1 - torch.stack(ious).mean().item(), abs=1e-6)
    assert lovasz_softmax_loss(logits, torch.full_like(target, IGNORE_INDEX)).item() == 0


def test_lovasz_term_only_when_weighted_and_its_gradient_reaches_the_logits() -> None:
    output, mask = _output(), torch.randint(0, 3, (2, 8, 8))
    assert multitask_loss(output, _batch(mask), LossWeights())["lovasz"].item() == 0
    losses = multitask_loss(output, _batch(mask), LossWeights(lovasz=1))
    assert losses["lovasz"].item() > 0
    losses["lovasz"].backward()
    assert output.mask_logits.grad.abs().sum() > 0
