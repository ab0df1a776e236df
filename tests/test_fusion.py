"""Batch-norm folding: same outputs, no BatchNorm left, and a fused model refuses to be saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from petnet.config import PetNetConfig
from petnet.errors import WeightsError
from petnet.hub import load_model
from petnet.models.fusion import fold_batchnorm
from petnet.models.network import PetNet
from petnet.models.pretrained import BACKBONE_PACKAGES


def model_with_trained_looking_norms(backbone: str) -> PetNet:
    """A random PetNet whose batch norms have non-trivial statistics, so folding them really changes weights."""
    torch.manual_seed(0)
    model = PetNet(PetNetConfig(backbone=backbone, image_size=64))
    for norm in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("backbone", sorted(BACKBONE_PACKAGES))
def test_folding_keeps_the_outputs_and_removes_every_batchnorm(backbone: str) -> None:
    model = model_with_trained_looking_norms(backbone)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    images = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        before = model(images)
        model.fuse_for_inference()
        after = model(images)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.is_fused and norms > 50
    for expected, actual in zip(before, after):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_folding_twice_is_a_no_op() -> None:
    model = model_with_trained_looking_norms("tf_efficientnet_lite0").fuse_for_inference()
    weights = [p.clone() for p in model.parameters()]
    model.fuse_for_inference()
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))


def test_folding_needs_eval_mode() -> None:
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    with pytest.raises(RuntimeError, match="eval mode"):
        fold_batchnorm(block)


def test_a_fused_model_cannot_be_saved(tmp_path: Path) -> None:
    model = model_with_trained_looking_norms("tf_efficientnet_lite0").fuse_for_inference()
    with pytest.raises(WeightsError, match="fuse=False"):
        model.save_pretrained(tmp_path)


def test_load_model_fuses_unless_asked_not_to() -> None:
    assert load_model(runtime="torch").is_fused
    assert not load_model(runtime="torch", fuse=False).is_fused
