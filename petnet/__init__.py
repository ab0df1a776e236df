"""PetNet: species, breed and pet mask from one photo.

>>> import petnet
>>> model = petnet.load_model()          # Hub repo, else the bundled weights
>>> result = model.predict("photo.jpg")  # result["species"], result["breed"], result["mask"]

Heavy modules (torch, timm, huggingface_hub) load on first use of the names that need them, so
``import petnet`` stays fast for tools that only need labels or errors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from petnet.errors import DatasetError, InvalidImageError, PetNetError, WeightsError
from petnet.labels import BREED_NAMES, BREED_SPECIES, BREEDS, IGNORE_INDEX, MASK_CLASSES, SPECIES, Breed

if TYPE_CHECKING:
    from petnet.config import PetNetConfig
    from petnet.hub import load_model
    from petnet.inference.results import Pet, Prediction
    from petnet.models.network import PetNet

__version__ = "0.1.0"

_LAZY = {
    "load_model": "petnet.hub",
    "PetNet": "petnet.models.network",
    "PetNetConfig": "petnet.config",
    "Prediction": "petnet.inference.results",
    "Pet": "petnet.inference.results",
}

__all__ = [
    "BREEDS",
    "BREED_NAMES",
    "BREED_SPECIES",
    "IGNORE_INDEX",
    "MASK_CLASSES",
    "SPECIES",
    "Breed",
    "DatasetError",
    "InvalidImageError",
    "Pet",
    "PetNet",
    "PetNetConfig",
    "PetNetError",
    "Prediction",
    "WeightsError",
    "__version__",
    "load_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'petnet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
