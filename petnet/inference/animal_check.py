"""The other-animal check: ImageNet's classifier asked whether a photo taken for a pet shows another animal.

PetNet's pet head learnt "no cat or dog" from a few hundred non-pet photos, 132 of them other
animals, and it takes some it never saw for pets, confidently: a polar bear for a Great Pyrenees,
an Angora rabbit for a Ragdoll. The ImageNet classifier our backbone started from was trained on
about 400 kinds of animal, those among them. So in a model that has the check, each animal found
in a photo the pipeline takes to hold a pet, where it is unsure (``config.animal_check_below``) or where it
found several animals, is cut out
(:meth:`~petnet.inference.pipeline.Predictor.animal_view`, :func:`check_input`) and shown to that
classifier (EfficientNet-Lite0, int8, :data:`ANIMAL_CHECK_FILE` beside the model's graphs, written
by ``python -m petnet.training.animal_check``); the photo is turned away when, for every one of
them, its other animal classes outweigh its dog and domestic-cat classes by
``config.animal_check_threshold`` in log-odds (:func:`other_animal_odds`), a threshold that keeps
99.9% of the training pets.

numpy, Pillow and onnxruntime only, like the rest of the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy.special import logsumexp

from petnet.errors import WeightsError
from petnet.inference.sessions import load_session

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

ANIMAL_CHECK_FILE = "animals.int8.onnx"
"""The check's graph in a model folder: a normalised square input (``images``, its size fixed in the
graph), ImageNet's 1,000 logits out."""
IMAGENET_CLASSES = 1000
IMAGENET_PETS = np.r_[151:269, 281:286]
"""ImageNet classes of dogs (151-268) and domestic cats (281-285)."""
IMAGENET_OTHER_ANIMALS = np.r_[0:151, 294:398]
"""ImageNet's other animal classes (0-397 are animals): fish, birds, reptiles, insects, other
mammals. Wolves, foxes, wild dogs, the hyena (269-280) and wild cats (286-293) count for neither side: a
husky may look like a wolf, and a wild cat is no pet either; the pet head judges those alone."""


def check_input(crop: Image.Image, keep: np.ndarray, size: int) -> np.ndarray:
    """The check's float32 (3, size, size) input: ``crop`` resized as ImageNet classifiers' inputs are
    (Pillow's antialiased bilinear; four times faster here than the network's exact resize, and the
    check was never trained on that), normalised to [-1, 1] as Lite0 was, and every pixel outside
    ``keep`` (a bool mask of the crop's size) mid-grey, 0."""
    pixels = np.asarray(crop.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    kept = np.asarray(Image.fromarray(keep.astype(np.uint8)).resize((size, size), Image.Resampling.NEAREST), dtype=bool)
    return np.ascontiguousarray(((pixels / 127.5 - 1) * kept[..., None]).transpose(2, 0, 1))


def other_animal_odds(logits: np.ndarray) -> np.ndarray:
    """(B,) log-odds of ImageNet's other animals against its dogs and domestic cats, from (B, 1000) logits."""
    logits = np.asarray(logits, dtype=np.float64)
    return logsumexp(logits[:, IMAGENET_OTHER_ANIMALS], axis=1) - logsumexp(logits[:, IMAGENET_PETS], axis=1)


class AnimalCheck:
    """The check's graph on ONNX Runtime (:meth:`from_file`); :meth:`odds` runs it."""

    def __init__(self, session: InferenceSession, path: Path | None = None) -> None:
        self._session = session
        self.path = path
        """The graph's file (None for a session made elsewhere): saving a model that has the check
        copies it beside the model's weights (:meth:`petnet.models.network.PetNet.save_pretrained`)."""
        graph_input, output = session.get_inputs()[0], session.get_outputs()[0]
        if output.shape[-1] != IMAGENET_CLASSES:  # a graph with a background class would shift every index
            raise WeightsError(f"The animal check's graph gives {output.shape[-1]} logits, not ImageNet's {IMAGENET_CLASSES}; "
                               "write it again with python -m petnet.training.animal_check.")  # fmt: skip
        self._input = graph_input.name
        self.size: int = graph_input.shape[-1]
        """The side of the square images the graph takes."""

    @classmethod
    def from_file(cls, path: Path, threads: int | None = None) -> AnimalCheck:
        """A session for the graph at ``path`` (without ONNX Runtime's memory arena, see
        :func:`~petnet.inference.sessions.make_session`); :class:`WeightsError` when it is missing or unreadable."""
        return cls(load_session(path, "python -m petnet.training.animal_check", threads, memory_arena=False), Path(path))

    def __deepcopy__(self, memo: dict) -> AnimalCheck:
        """Itself: an ONNX Runtime session cannot be copied, and copies of a model (an EMA during
        training, ``export``'s copy) may share one; ``run`` is safe from several threads."""
        return self

    def __reduce__(self) -> tuple:
        """Pickled as its graph's file, read again when unpickled."""
        if self.path is None:
            raise TypeError("An AnimalCheck made from a session, not a file, cannot be pickled.")
        return AnimalCheck.from_file, (self.path,)

    def odds(self, images: np.ndarray) -> np.ndarray:
        """:func:`other_animal_odds` of a float32 (B, 3, S, S) batch, ``S`` the graph's :attr:`size`."""
        (logits,) = self._session.run(None, {self._input: np.ascontiguousarray(images, dtype=np.float32)})
        return other_animal_odds(logits)
