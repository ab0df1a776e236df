"""Multi-task loss: unlabelled pixels are ignored, a batch without trimaps still trains, gradients flow."""

from __future__ import annotations

import pytest
import torch

from petnet.config import PetNetConfig
from petnet.labels import IGNORE_INDEX
from petnet.losses import LossWeights, multitask_loss, soft_dice_loss
from petnet.model import PetNet, PetNetOutput


def _output(batch: int = 2, size: int = 8, seed: int = 0) -> PetNetOutput:
    generator = torch.Generator().manual_seed(seed)
    return PetNetOutput(
        species_logits=torch.randn(batch, 2, generator=generator, requires_grad=True),
        breed_logits=torch.randn(batch, 37, generator=generator, requires_grad=True),
        mask_logits=torch.randn(batch, 3, size, size, generator=generator, requires_grad=True),
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
    changed = PetNetOutput(output.species_logits, output.breed_logits, output.mask_logits.detach().clone())
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
    for part in (model.encoder, model.species_head, model.breed_head, model.decoder):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0
