"""Model configuration: a dataclass saved as ``config.json`` next to the weights.

Labels and preprocessing live here so they travel with the weights (never a second hard-coded copy):
a model loaded from the Hub predicts with the label names it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from petnet.labels import BREED_NAMES, BREED_SPECIES, MASK_CLASSES, SPECIES


@dataclass
class PetNetConfig:
    """Architecture, labels and preprocessing of one PetNet model."""

    backbone: str = "tf_efficientnet_lite0"
    image_size: int = 160
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    decoder_channels: list[int] = field(default_factory=lambda: [96, 64, 32, 24])
    dropout: float = 0.2
    species_names: list[str] = field(default_factory=lambda: list(SPECIES))
    breed_names: list[str] = field(default_factory=lambda: list(BREED_NAMES))
    breed_species: list[str] = field(default_factory=lambda: list(BREED_SPECIES))
    mask_classes: list[str] = field(default_factory=lambda: list(MASK_CLASSES))
    mirror_averaged_mask: bool = True
    """Predict masks from the mean of the photo's and its mirror image's mask logits. On validation
    it raised mean and worst-class IoU for all seven models we trained (+0.001 to +0.013), for twice
    the compute; averaging the classification logits as well did not help, so they stay single-view."""

    def __post_init__(self) -> None:
        if len(self.breed_names) != len(self.breed_species):
            raise ValueError("breed_names and breed_species must have the same length")
        unknown = set(self.breed_species) - set(self.species_names)
        if unknown:
            raise ValueError(f"breed_species names unknown species {sorted(unknown)}")
        if len(self.decoder_channels) != 4:
            raise ValueError("decoder_channels needs 4 entries (strides 16, 8, 4, 2)")
