"""PetNet's network on ONNX Runtime: the prediction pipeline without PyTorch.

:class:`OnnxNetwork` gives :class:`~petnet.inference.pipeline.Predictor` the three passes of its
``Network`` protocol from the graphs ``python -m petnet.training.export`` writes beside a model's
``config.json`` (:data:`ONNX_FILES`). It needs onnxruntime and numpy only: no torch, no timm, no
network to build, so a server starts in a fraction of a second and installs in a fraction of the
space. ``petnet.load_model`` picks it on CPUs wherever onnxruntime is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from petnet.config import PetNetConfig
from petnet.errors import WeightsError
from petnet.inference.decoding import PetNetOutput
from petnet.inference.pipeline import Predictor
from petnet.inference.sessions import default_threads, load_session

if TYPE_CHECKING:
    from petnet.inference.animal_check import AnimalCheck

OPSET = 17
INPUT_NAME = "images"
FULL_OUTPUTS = ("species_logits", "breed_logits", "mask_logits", "pet_logits", "breed_maps", "center_logits")
"""The full graph's outputs: :class:`PetNetOutput`'s fields in order (no ``center_logits`` without the centre head)."""
CLASSIFY_OUTPUTS = ("species_logits", "breed_logits", "pet_logits")
"""The classification cut's outputs: the backbone's heads, without the decoder."""
ONNX_PRECISIONS = ("float32", "int8")
ONNX_FILES = {
    "float32": "model.onnx",
    "float32-classify": "classify.onnx",
    "int8": "model.int8.onnx",
    "int8-classify": "classify.int8.onnx",
}
"""File names in a model folder: each precision's full graph and its classification cut."""


def graph_files(precision: str) -> tuple[str, str]:
    """The full graph's and the classification graph's file names for ``precision``."""
    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"ONNX precision must be one of {', '.join(ONNX_PRECISIONS)}; got {precision!r}.")
    return ONNX_FILES[precision], ONNX_FILES[f"{precision}-classify"]


class OnnxNetwork:
    """The ``Network`` protocol over two ONNX Runtime sessions (full graph, classification cut)."""

    def __init__(self, config: PetNetConfig, full, classify, precision: str) -> None:
        self.config = config
        self.precision = precision
        """``float32`` or ``int8``: which graphs run (reports and benchmarks name it)."""
        self._full, self._classify = full, classify
        outputs = tuple(output.name for output in full.get_outputs())
        expected = FULL_OUTPUTS if config.center_head else FULL_OUTPUTS[:-1]
        shape = full.get_inputs()[0].shape
        problems = []
        if outputs != expected:
            problems.append(f"outputs {outputs}, expected {expected}")
        if list(shape[1:]) != [3, config.image_size, config.image_size]:
            problems.append(f"input {shape}, expected (batch, 3, {config.image_size}, {config.image_size})")
        cut = tuple(output.name for output in classify.get_outputs())
        # graphs exported before the cut gave the pet logit still serve a model that never asks for it
        accepted_cuts = {CLASSIFY_OUTPUTS} if config.presence_second_look else {CLASSIFY_OUTPUTS, CLASSIFY_OUTPUTS[:2]}
        if cut not in accepted_cuts:
            problems.append(f"the classification graph does not give {', '.join(CLASSIFY_OUTPUTS)}")
        if problems:
            raise WeightsError(f"The ONNX graphs do not match config.json ({'; '.join(problems)}); "
                               "export them again with python -m petnet.training.export.")  # fmt: skip
        self._outputs = list(outputs)
        self._classify_outputs = list(cut)

    @classmethod
    def from_directory(cls, directory: Path, config: PetNetConfig, precision: str, threads: int | None = None) -> OnnxNetwork:
        """Sessions for ``directory``'s graphs of ``precision``. Raises :class:`WeightsError` when a
        file is missing or ONNX Runtime cannot load it (a truncated or corrupt download)."""
        threads = threads or default_threads()
        sessions = [load_session(Path(directory) / name, "python -m petnet.training.export", threads) for name in graph_files(precision)]
        return cls(config, *sessions, precision=precision)

    def infer_single_view(self, images: np.ndarray) -> PetNetOutput:
        values = self._full.run(self._outputs, {INPUT_NAME: _batch(images)})
        return PetNetOutput(*values) if len(values) == len(FULL_OUTPUTS) else PetNetOutput(*values, center_logits=None)

    def infer(self, images: np.ndarray) -> PetNetOutput:
        """As ``PetNet.infer``: with ``config.mirror_averaged_mask`` the images and their mirror
        images run as one batch, masks and centre heatmaps averaged with the flipped-back mirror
        half; everything else from the images as given."""
        if not self.config.mirror_averaged_mask:
            return self.infer_single_view(images)
        count = len(images)
        both = self.infer_single_view(np.concatenate([images, images[..., ::-1]]))

        def mirrored(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else (values[:count] + values[count:, ..., ::-1]) / 2

        return PetNetOutput(
            species_logits=both.species_logits[:count],
            breed_logits=both.breed_logits[:count],
            mask_logits=mirrored(both.mask_logits),
            pet_logits=both.pet_logits[:count],
            breed_maps=both.breed_maps[:count],
            center_logits=mirrored(both.center_logits),
        )

    def infer_classification(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        species, breeds, *pets = self._classify.run(self._classify_outputs, {INPUT_NAME: _batch(images)})
        return species, breeds, pets[0] if pets else None


def _batch(images: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 (B, 3, S, S) array, as the graphs take."""
    return np.ascontiguousarray(images, dtype=np.float32)


class OnnxModel(Predictor):
    """A PetNet model on ONNX Runtime, as ``petnet.load_model`` gives it: ``predict``,
    ``predict_batch``, ``config`` and the rest of :class:`Predictor`, with ``weights_source`` and
    ``runtime`` as on the PyTorch model."""

    def __init__(self, network: OnnxNetwork, animal_check: AnimalCheck | None = None) -> None:
        super().__init__(network, animal_check)
        self.weights_source = ""
        self.runtime = f"onnxruntime {network.precision}"

    @property
    def predictor(self) -> Predictor:
        """Itself: the pipeline (the PyTorch model's ``predictor`` is the same thing around its network)."""
        return self
