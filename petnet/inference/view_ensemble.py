"""Two networks, one view each: the photo to one, its mirror image to the other, their answers averaged.

The first look has always run the network twice, on the photo and on its mirror image. Where a
model's ``config.mirror_network`` names a second network, :class:`ViewEnsemble` gives the mirror image
to that network instead, so two networks trained differently (the close-up soup and the scene soup)
cost what one network's two views cost. Their mistakes differ more than a view's and its mirror's:
on validation the close-up soup lets in other animals and the scene soup objects, and their mean
fewer than either (docs/experiments.md, "Two networks, one view each"). Every pass of the pipeline
goes through both, crops too, so each answer is the two networks' mean.
"""

from __future__ import annotations

import numpy as np

from petnet.config import PetNetConfig
from petnet.inference.decoding import PetNetOutput

SPATIAL_OUTPUTS = ("mask_logits", "breed_maps", "center_logits")
"""Outputs laid out as the image is: the mirror view's are flipped back before averaging."""


class ViewEnsemble:
    """The pipeline's ``Network`` over two networks: ``first`` sees the images as given, ``second``
    their mirror images; logits and maps are averaged (the mirror's flipped back). ``config`` is the
    model's, ``first``'s architecture and labels with the ensemble's own thresholds."""

    def __init__(self, config: PetNetConfig, first, second) -> None:
        if list(second.config.breed_names) != list(config.breed_names) or second.config.image_size != config.image_size:
            raise ValueError("The mirror network must name the same breeds at the same input size.")
        self.config = config
        self.first, self.second = first, second

    @property
    def precision(self) -> str | None:
        """The graphs' precision where ONNX Runtime runs both networks (reports name it), else None."""
        return getattr(self.first, "precision", None)

    def infer(self, images: np.ndarray) -> PetNetOutput:
        """Everything, each output the mean of the two networks' (the mirror's spatial outputs flipped back)."""
        seen, mirrored = self.first.infer_single_view(images), self.second.infer_single_view(_mirror(images))
        averaged = {}
        for name in PetNetOutput._fields:
            ours, theirs = getattr(seen, name), getattr(mirrored, name)
            if ours is None or theirs is None:
                averaged[name] = None
                continue
            averaged[name] = (ours + (_mirror(theirs) if name in SPATIAL_OUTPUTS else theirs)) / 2
        return PetNetOutput(**averaged)

    def infer_single_view(self, images: np.ndarray) -> PetNetOutput:
        """As :meth:`infer`: each network sees one view of the crops, as of a photo."""
        return self.infer(images)

    def infer_classification(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Species, breed and pet logits, each the mean of the two networks'."""
        ours, theirs = self.first.infer_classification(images), self.second.infer_classification(_mirror(images))
        return tuple(None if a is None or b is None else (a + b) / 2 for a, b in zip(ours, theirs, strict=True))


def _mirror(values: np.ndarray) -> np.ndarray:
    """``values`` flipped left to right (the last axis), C-contiguous as the runtimes take it."""
    return np.ascontiguousarray(values[..., ::-1])
