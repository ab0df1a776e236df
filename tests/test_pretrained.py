"""ImageNet initialisation: hash check, strict position rename with shape checks, exact weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import timm
import torch

from petnet.config import PetNetConfig
from petnet.errors import WeightsError
from petnet.models.network import PetNet
from petnet.models.pretrained import imagenet_weights_path, rename_by_position, verify_hash_prefix

BACKBONES = ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]


def test_packaged_file_passes_its_hash_check() -> None:
    path = imagenet_weights_path("tf_efficientnet_lite0")
    assert path.suffix == ".pth"
    verify_hash_prefix(path)


def test_tampered_copy_is_refused(tmp_path: Path) -> None:
    original = imagenet_weights_path("tf_efficientnet_lite0")
    tampered = tmp_path / original.name
    shutil.copyfile(original, tampered)
    with tampered.open("r+b") as file:
        file.seek(-100, 2)
        byte = file.read(1)
        file.seek(-100, 2)
        file.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsError, match="corrupt"):
        verify_hash_prefix(tampered)


def test_file_without_hash_in_its_name_is_refused(tmp_path: Path) -> None:
    unnamed = tmp_path / "weights.pth"
    unnamed.write_bytes(b"anything")
    with pytest.raises(WeightsError, match="prefix"):
        verify_hash_prefix(unnamed)


def test_rename_by_position_pairs_in_order_and_checks_shapes() -> None:
    source = {"a.w": torch.zeros(2, 3), "a.b": torch.ones(2)}
    renamed = rename_by_position(source, {"conv.weight": torch.Size([2, 3]), "conv.bias": torch.Size([2])})
    assert list(renamed) == ["conv.weight", "conv.bias"]
    assert renamed["conv.bias"] is source["a.b"]
    with pytest.raises(WeightsError, match="Shape mismatch"):
        rename_by_position(source, {"conv.weight": torch.Size([2, 3]), "conv.bias": torch.Size([3])})
    with pytest.raises(WeightsError, match="tensors"):
        rename_by_position(source, {"conv.weight": torch.Size([2, 3])})


def test_unknown_backbone_has_no_packaged_weights() -> None:
    with pytest.raises(WeightsError, match="No packaged ImageNet weights"):
        imagenet_weights_path("resnet18")


@pytest.mark.parametrize("backbone", BACKBONES)
def test_backbone_receives_exactly_the_files_tensors(backbone: str) -> None:
    model = PetNet.from_imagenet(PetNetConfig(backbone=backbone, image_size=64))
    state = torch.load(imagenet_weights_path(backbone), map_location="cpu", weights_only=True)
    classifier_keys = list(timm.create_model(backbone, pretrained=False).state_dict())
    from_file = dict(zip(classifier_keys, state.values()))
    encoder_state = model.encoder.state_dict()
    assert encoder_state, "the encoder has weights"
    for key, tensor in encoder_state.items():
        assert torch.equal(tensor, from_file[key]), key
    assert model.weights_source.startswith("ImageNet")

