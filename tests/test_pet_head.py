"""The pet head's sharp pooling and its re-fit on frozen features (``petnet.training.refit_pet_head``)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from non_pet_factory import make_non_pets

from petnet.config import PetNetConfig
from petnet.models.network import PetNet, pool_sharply
from petnet.training import refit_pet_head
from petnet.training.train import FINAL_DIR_NAME

SIZE = 64


def test_sharp_pooling_runs_from_the_mean_to_the_largest() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0, 9.0]])
    assert pool_sharply(logits, 1e-4).item() == pytest.approx(3.0, abs=1e-2)
    assert pool_sharply(logits, 50.0).item() == pytest.approx(9.0 - math.log(4) / 50, abs=1e-3)
    assert pool_sharply(logits, 1.0).item() == pytest.approx(math.log(sum(math.exp(v) for v in (0, 1, 2, 9)) / 4))


def test_the_pet_logit_pools_the_heads_locations_as_the_config_says() -> None:
    torch.manual_seed(0)
    model = PetNet(PetNetConfig(image_size=SIZE)).eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.inference_mode():
        features = model.encoder(images)[-1]
        assert torch.allclose(model(images).pet_logits, model.pet_head(features)[:, 0])  # 0: the mean, as before
        model.config.pet_pooling_sharpness = 2.0
        locations = model.pet_head.class_map(features).flatten(1)
        expected = (torch.logsumexp(2.0 * locations, dim=1) - math.log(locations.shape[1])) / 2.0
        assert torch.allclose(model(images).pet_logits, expected, atol=1e-5)


def test_refit_changes_only_the_pet_head_and_saves_its_sharpness(tiny_pet_root, tmp_path) -> None:
    torch.manual_seed(0)
    start = PetNet(PetNetConfig(image_size=SIZE))
    start.save_pretrained(tmp_path / "start")
    output = tmp_path / "refit"
    final = refit_pet_head.main([
        "--model", str(tmp_path / "start"), "--output-dir", str(output), "--data-root", str(tiny_pet_root),
        "--non-pet-root", str(make_non_pets(tmp_path / "non-pets", count=6)), "--sharpness", "1", "2",
        "--steps", "3", "--val-fraction", "0.34", "--batch-size", "8", "--num-workers", "0",
    ])  # fmt: skip
    assert final == output / FINAL_DIR_NAME
    refit = PetNet.from_pretrained(str(final))
    assert refit.config.pet_pooling_sharpness in (1.0, 2.0)
    before, after = PetNet.from_pretrained(str(tmp_path / "start")).state_dict(), refit.state_dict()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed == {"pet_head.3.weight", "pet_head.3.bias"}
    summary = json.loads((output / "pet_head.json").read_text())
    assert summary["chosen_sharpness"] == refit.config.pet_pooling_sharpness
    assert summary["photos"]["pets"] == summary["photos"]["scenes"] > 0 and 0 < summary["photos"]["non-pets"] < 6  # the training part of the non-pets
