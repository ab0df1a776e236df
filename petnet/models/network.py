"""PetNet: one backbone; heads for species, breed, pet presence and the trimap mask, and optionally animal centres.

The timm backbone is swappable by name; the heads only depend on the channels it reports in
``feature_info``. Weights and ``config.json`` (labels + preprocessing) are saved and loaded with
huggingface_hub's ``PyTorchModelHubMixin``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, constants
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from petnet.config import PetNetConfig
from petnet.errors import WeightsError
from petnet.images import ImageInput
from petnet.inference.animal_check import ANIMAL_CHECK_FILE
from petnet.inference.decoding import PetNetOutput
from petnet.inference.pipeline import PREDICT_BATCH_SIZE, Predictor
from petnet.inference.results import Prediction
from petnet.models.centers import CENTER_DECODER_BLOCK, CenterHead
from petnet.models.decoder import UNetDecoder
from petnet.models.fusion import fold_batchnorm
from petnet.models.precision import precision_name
from petnet.models.pretrained import load_imagenet_backbone


class ClassificationHead(nn.Sequential):
    """Global average pool -> dropout -> linear."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels, num_classes))

    def class_map(self, features: torch.Tensor) -> torch.Tensor:
        """The linear layer applied at every location of (B, C, h, w) ``features``: (B, classes, h, w)
        logits whose mean over the locations equals the head's output at inference (pooling and a
        linear layer commute)."""
        linear = self[-1]
        return F.conv2d(features, linear.weight[:, :, None, None], linear.bias)


def pool_sharply(logits: torch.Tensor, sharpness: float) -> torch.Tensor:
    """``log(mean(exp(sharpness * logits))) / sharpness`` over the last dimension: the mean of the
    logits as ``sharpness`` nears 0, their largest as it grows."""
    return (torch.logsumexp(logits.float() * sharpness, dim=-1) - math.log(logits.shape[-1])) / sharpness


class PetNet(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="petnet",
    tags=["image-classification", "image-segmentation", "oxford-iiit-pet"],
    license="apache-2.0",
    pipeline_tag="image-segmentation",
):
    """Multi-task pet model. ``PetNet(config)`` is randomly initialised; use
    :meth:`from_imagenet` to start training, :func:`petnet.load_model` to predict."""

    def __init__(self, config: PetNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or PetNetConfig()
        self._hub_mixin_config = self.config  # always written to config.json, defaults included
        self.encoder = timm.create_model(
            self.config.backbone, features_only=True, pretrained=False, drop_path_rate=self.config.drop_path_rate
        )
        channels = self.encoder.feature_info.channels()
        self.species_head = ClassificationHead(channels[-1], len(self.config.species_names), self.config.dropout)
        self.breed_head = ClassificationHead(channels[-1], len(self.config.breed_names), self.config.dropout)
        self.pet_head = ClassificationHead(channels[-1], 1, self.config.dropout)
        self.decoder = UNetDecoder(channels, self.config.decoder_channels, len(self.config.mask_classes))
        self.center_head = (
            CenterHead(channels[-1], self.config.decoder_channels[CENTER_DECODER_BLOCK]) if self.config.center_head else None
        )
        self._predictor: Predictor | None = None
        self.weights_source = "random initialisation"
        """Where the weights came from, for people (set by the loaders; shown by the apps)."""
        self.is_fused = False
        """True once :meth:`fuse_for_inference` has folded the batch norms (predict-only from then on)."""
        self.inference_dtype = torch.float32
        """What :meth:`infer` computes in: float32, or bfloat16 under autocast (set by
        :func:`petnet.load_model` from its ``precision``; see :mod:`petnet.models.precision`)."""
        # NHWC convolutions: about 1.3x faster on CPU for this network (oneDNN), and the layout GPUs prefer.
        self.to(memory_format=torch.channels_last)
        self.eval()

    @classmethod
    def from_imagenet(cls, config: PetNetConfig | None = None) -> PetNet:
        """A fresh model whose backbone starts from the packaged ImageNet weights."""
        model = cls(config)
        load_imagenet_backbone(model.encoder, model.config.backbone)
        model.weights_source = f"ImageNet {model.config.backbone} backbone, untrained heads"
        return model

    def fuse_for_inference(self) -> PetNet:
        """Fold every batch norm into its convolution: about 1.2x faster on CPU, same predictions.

        The folded network has a different set of tensors, so it can no longer be trained, saved or
        given a state dict; :func:`petnet.load_model` does this unless called with ``fuse=False``.
        """
        if not self.is_fused:
            fold_batchnorm(self.eval())
            self.is_fused = True
        return self

    def pet_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) pet-presence logits of the last backbone features: the head's mean over the locations,
        or their log-mean-exp at ``config.pet_pooling_sharpness`` when it is above 0 (without the
        head's dropout: such a head is fitted on frozen features, ``petnet.training.refit_pet_head``)."""
        sharpness = self.config.pet_pooling_sharpness
        if sharpness <= 0:
            return self.pet_head(features)[:, 0]
        return pool_sharply(self.pet_head.class_map(features).flatten(1), sharpness)

    def forward(self, images: torch.Tensor) -> PetNetOutput:
        features = self.encoder(images)
        blocks = self.decoder.block_outputs(features)
        return PetNetOutput(
            species_logits=self.species_head(features[-1]),
            breed_logits=self.breed_head(features[-1]),
            mask_logits=self.decoder.classify(blocks[-1], output_size=images.shape[-2:]),
            pet_logits=self.pet_logits(features[-1]),
            breed_maps=self.breed_head.class_map(features[-1]),
            center_logits=self.center_logits(features, blocks) if self.center_head else None,
        )

    def center_logits(self, features: list[torch.Tensor], blocks: list[torch.Tensor]) -> torch.Tensor:
        """The centre head on the encoder's ``features`` and the decoder's ``blocks``
        (:meth:`~petnet.models.decoder.UNetDecoder.block_outputs`); ``petnet.training.train_centers`` calls it with
        the rest of the network run without gradients."""
        return self.center_head(features[-1].float(), blocks[CENTER_DECODER_BLOCK].float())

    def infer(self, images: torch.Tensor) -> PetNetOutput:
        """The forward pass behind every prediction (``predict`` and ``petnet.evaluate``).

        With ``config.mirror_averaged_mask``, the images and their mirror images run as one batch
        and the mask logits are averaged (the mirrored ones flipped back), centre heatmaps too;
        species and breed logits come from the images as given (breed maps too). The network runs in
        :attr:`inference_dtype`; the outputs are float32. Training calls ``forward`` itself (and a
        distillation teacher :meth:`infer_single_view`).
        """
        if not self.config.mirror_averaged_mask:
            return self.infer_single_view(images)
        both = torch.cat([images, images.flip(-1)]).contiguous(memory_format=torch.channels_last)
        output = self.infer_single_view(both)
        count = len(images)
        centers = output.center_logits
        return PetNetOutput(
            species_logits=output.species_logits[:count],
            breed_logits=output.breed_logits[:count],
            mask_logits=(output.mask_logits[:count] + output.mask_logits[count:].flip(-1)) / 2,
            pet_logits=output.pet_logits[:count],
            breed_maps=output.breed_maps[:count],
            center_logits=None if centers is None else (centers[:count] + centers[count:].flip(-1)) / 2,
        )

    def _autocast(self) -> torch.autocast:
        """Autocast to :attr:`inference_dtype` (disabled for float32): how every inference pass runs."""
        low_precision = self.inference_dtype != torch.float32
        return torch.autocast(self.device.type, dtype=self.inference_dtype, enabled=low_precision)

    def infer_single_view(self, images: torch.Tensor) -> PetNetOutput:
        """``forward`` in :attr:`inference_dtype`, with float32 outputs and no mirror image: for crops
        of one photo's animals, and for a distillation teacher (``petnet.training.train --teacher``), which
        needs only the classification logits of the training batch."""
        with self._autocast():
            output = self(images)
        return output.apply(torch.Tensor.float)

    def infer_classification(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Species, breed and pet logits alone (float32): the backbone and its three heads in
        :attr:`inference_dtype`, without the decoder, which costs the network as much again."""
        with self._autocast():
            features = self.encoder(images)[-1]
            return self.species_head(features).float(), self.breed_head(features).float(), self.pet_logits(features).float()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def runtime(self) -> str:
        """What computes the network: ``torch bfloat16`` or ``torch float32`` (reports name it)."""
        return f"torch {precision_name(self.inference_dtype)}"

    @property
    def predictor(self) -> Predictor:
        """The prediction pipeline around this network (:class:`~petnet.inference.pipeline.Predictor`
        over :class:`TorchNetwork`)."""
        if self._predictor is None:
            self._predictor = Predictor(TorchNetwork(self), self.__dict__.pop("_carried_check", None))
        return self._predictor

    def preprocess(self, image: ImageInput) -> torch.Tensor:
        """Read an image input and turn it into the normalised 3xSxS tensor the network expects."""
        return torch.from_numpy(self.predictor.prepare(image).pixels)

    def predict(self, image: ImageInput | torch.Tensor) -> Prediction:
        """Whether there is a cat or dog, and for each animal its species, top-3 breeds (of that
        species) and mask region; the top-level fields describe the largest animal.

        ``image`` is a preprocessed 3xHxW tensor or float array (mask comes back HxW) or anything
        :func:`petnet.images.load_image` reads (mask at ``config.image_size``, ``full_mask`` at
        the photo's size as read); the result's masks are numpy arrays. Raises
        :class:`petnet.errors.InvalidImageError` for unusable input.
        """
        return self.predictor.predict(image)

    def predict_batch(
        self, images: Sequence[ImageInput | torch.Tensor], batch_size: int = PREDICT_BATCH_SIZE
    ) -> list[Prediction]:
        """Predict many images, running the network on batches of up to ``batch_size``.

        The default suits CPUs, where larger batches spill out of the caches and run slower per
        image; on a GPU pass a larger one."""
        return self.predictor.predict_batch(images, batch_size)

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the prediction pipeline, a cache :attr:`predictor` builds again,
        behind, but keep its other-animal check (shared by a copy, pickled as its graph's file)."""
        state = super().__getstate__()
        predictor = state.get("_predictor")
        if predictor is not None:
            state["_carried_check"] = predictor.animal_check
        state["_predictor"] = None
        return state

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> str | None:
        """The Hub mixin's ``save_pretrained``, refused before anything is written (the mixin first
        removes an existing ``config.json``) where the config sets ``animal_check_threshold`` and
        this model has no check to save with it."""
        if self.config.animal_check_threshold is not None and self._check_file() is None:
            raise WeightsError("config.animal_check_threshold is set but this model has no animal check to save with it: "
                               "load the model with petnet.load_model, or set the threshold to None.")  # fmt: skip
        return super().save_pretrained(save_directory, **kwargs)

    def _check_file(self) -> Path | None:
        """The other-animal check's graph this model was loaded with, if any."""
        predictor = self._predictor
        check = predictor.animal_check if predictor is not None else self.__dict__.get("_carried_check")
        return check.path if check is not None else None

    def _save_pretrained(self, save_directory: Path) -> None:
        """Save weights as fp16 safetensors (half the size, no measurable accuracy change) and
        ``config.json`` (:func:`write_config_file`; the mixin then leaves it). A config that sets
        ``animal_check_threshold`` needs the check's graph beside it: the one this model was loaded
        with is copied, as a re-fitted head (``train_centers``) needs it; training a network anew
        drops the threshold instead (``petnet.training.train``), since it was fitted on views cut
        with the old network's masks."""
        if self.is_fused:
            raise WeightsError("A fused model cannot be saved; load it with load_model(..., fuse=False) to save it.")
        if self.config.animal_check_threshold is not None:  # save_pretrained made sure there is a file
            source, target = self._check_file(), Path(save_directory) / ANIMAL_CHECK_FILE
            if not (target.exists() and os.path.samefile(source, target)):
                shutil.copyfile(source, target)
        write_config_file(save_directory, dataclasses.asdict(self.config))
        state = {
            key: value.half() if value.is_floating_point() else value
            for key, value in self.state_dict().items()
        }
        save_file({k: v.contiguous() for k, v in state.items()}, str(save_directory / "model.safetensors"))

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        config: PetNetConfig | dict | None = None,
        map_location: str = "cpu",
        strict: bool = True,
        **hub_kwargs: Any,
    ) -> PetNet:
        """Load strictly by default: a missing or unexpected tensor is an error, not a warning.

        A local directory is read directly (the mixin would ``print`` a notice) and must hold
        ``config.json`` and ``model.safetensors``; Hub ids go through the mixin (``hf_hub_download``).
        """
        if isinstance(config, dict):  # the mixin cannot decode the postponed `PetNetConfig | None` annotation
            config = PetNetConfig.from_dict(config, model_id)
        if os.path.isdir(model_id):
            weights = Path(model_id) / constants.SAFETENSORS_SINGLE_FILE
            if config is None or not weights.is_file():
                raise WeightsError(
                    f"{model_id} needs {constants.CONFIG_NAME} and {constants.SAFETENSORS_SINGLE_FILE}; "
                    "write both with PetNet.save_pretrained()."
                )
            model = cls._load_as_safetensor(cls(config), str(weights), map_location, strict)
        else:
            model = super()._from_pretrained(
                model_id=model_id, config=config, map_location=map_location, strict=strict, **hub_kwargs
            )
        model.weights_source = model_id
        return model

    @classmethod
    def _load_as_safetensor(cls, model: PetNet, model_file: str, map_location: str, strict: bool) -> PetNet:
        try:
            return super()._load_as_safetensor(model, model_file, map_location, strict)
        except (RuntimeError, SafetensorError) as error:
            raise WeightsError(
                f"{model_file} does not fit this PetNet configuration ({error}). "
                "Load it with the config.json saved next to it."
            ) from error


class TorchNetwork:
    """A :class:`PetNet` as the prediction pipeline's :class:`~petnet.inference.pipeline.Network`:
    numpy batches in, float32 numpy outputs out. In between, the module's own passes
    (:meth:`PetNet.infer` and the others, which training calls with tensors) run on its device, in
    its channels-last layout, without autograd; they compute in its ``inference_dtype`` themselves."""

    def __init__(self, model: PetNet) -> None:
        self.model = model

    @property
    def config(self) -> PetNetConfig:
        return self.model.config

    def infer(self, images: np.ndarray) -> PetNetOutput:
        return self._run(self.model.infer, images).apply(_to_numpy)

    def infer_single_view(self, images: np.ndarray) -> PetNetOutput:
        return self._run(self.model.infer_single_view, images).apply(_to_numpy)

    def infer_classification(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(_to_numpy(logits) for logits in self._run(self.model.infer_classification, images))

    def _run(self, network_pass: Callable[[torch.Tensor], Any], images: np.ndarray) -> Any:
        batch = torch.from_numpy(images).to(self.model.device, torch.float32, memory_format=torch.channels_last)
        with torch.inference_mode():
            return network_pass(batch)


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A float32 C-contiguous array: the mask logits come out channels-last, a layout in which numpy's
    per-pixel softmax and argmax over the classes ran several times slower."""
    return tensor.float().cpu().contiguous().numpy()


def write_config_file(directory: Path, config: Mapping[str, Any]) -> Path:
    """``directory/config.json`` as every PetNet writer leaves it (saving, ``petnet.training.calibrate``):
    sorted keys and a two-space indent as the Hub mixin writes them, and a final newline."""
    path = Path(directory) / constants.CONFIG_NAME
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path
