"""PetNet: one backbone; heads for species, breed, pet presence and the trimap mask, and optionally animal centres.

The timm backbone is swappable by name; the heads only depend on the channels it reports in
``feature_info``. Weights and ``config.json`` (labels + preprocessing) are saved and loaded with
huggingface_hub's ``PyTorchModelHubMixin``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import timm
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, constants
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from petnet.centers import CENTER_DECODER_BLOCK, CenterHead
from petnet.config import PetNetConfig
from petnet.decoder import UNetDecoder
from petnet.errors import WeightsError
from petnet.fusion import fold_batchnorm
from petnet.images import ImageInput, load_image
from petnet.inference import (
    DecodedOutput,
    Pet,
    Prediction,
    center_regions,
    crop_box,
    decode_output,
    mask_from_logits,
    mean_probability_logits,
    pet_regions,
    region_box,
)
from petnet.pretrained import load_imagenet_backbone
from petnet.transforms import eval_transform

PREDICT_BATCH_SIZE = 2
"""Images per batch when predicting on CPU: with mirror-averaged masks the network then sees
4 images, the most a 2-core CPU runs faster per image than one at a time (``python -m petnet.bench``);
the closer look's crops follow as one more batch through the backbone."""


class _Input(NamedTuple):
    """One image ready for the network: input tensor, original (H, W), and the photo when there is one."""

    tensor: torch.Tensor
    size: tuple[int, int]
    photo: Image.Image | None


class PetNetOutput(NamedTuple):
    """Raw logits: species (B, 2), breed (B, 37), mask (B, 3, H, W) at input resolution, and pet
    presence (B,): the logit of "this photo holds a cat or dog"."""

    species_logits: torch.Tensor
    breed_logits: torch.Tensor
    mask_logits: torch.Tensor
    pet_logits: torch.Tensor
    breed_maps: torch.Tensor
    """(B, n_breeds, h, w) breed logits of each location of the last feature map (a class activation
    map, :meth:`ClassificationHead.class_map`): where in the photo which breed is seen, which tells
    touching animals apart (:func:`petnet.inference.pet_regions`). Training does not use them."""
    center_logits: torch.Tensor | None = None
    """(B, h, w) animal-centre heatmap logits at stride 8 (:mod:`petnet.centers`); ``None`` for a
    model without the head (``config.center_head``)."""

    def apply(self, function: Callable[[torch.Tensor], torch.Tensor]) -> PetNetOutput:
        """Every tensor through ``function`` (e.g. to the CPU); absent centre logits stay ``None``."""
        return PetNetOutput(*(None if tensor is None else function(tensor) for tensor in self))


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
        species_index = {name: i for i, name in enumerate(self.config.species_names)}
        self.register_buffer(
            "breed_species_index",
            torch.tensor([species_index[s] for s in self.config.breed_species]),
            persistent=False,
        )
        self._preprocess = eval_transform(self.config)
        self.weights_source = "random initialisation"
        """Where the weights came from, for people (set by the loaders; shown by the apps)."""
        self.is_fused = False
        """True once :meth:`fuse_for_inference` has folded the batch norms (predict-only from then on)."""
        self.inference_dtype = torch.float32
        """What :meth:`infer` computes in: float32, or bfloat16 under autocast (set by
        :func:`petnet.load_model` from its ``precision``; see :mod:`petnet.precision`)."""
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

    def forward(self, images: torch.Tensor) -> PetNetOutput:
        features = self.encoder(images)
        blocks = self.decoder.block_outputs(features)
        return PetNetOutput(
            species_logits=self.species_head(features[-1]),
            breed_logits=self.breed_head(features[-1]),
            mask_logits=self.decoder.classify(blocks[-1], output_size=images.shape[-2:]),
            pet_logits=self.pet_head(features[-1])[:, 0],
            breed_maps=self.breed_head.class_map(features[-1]),
            center_logits=self.center_logits(features, blocks) if self.center_head else None,
        )

    def center_logits(self, features: list[torch.Tensor], blocks: list[torch.Tensor]) -> torch.Tensor:
        """The centre head on the encoder's ``features`` and the decoder's ``blocks``
        (:meth:`~petnet.decoder.UNetDecoder.block_outputs`); ``petnet.train_centers`` calls it with
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
        of one photo's animals, and for a distillation teacher (``petnet.train --teacher``), which
        needs only the classification logits of the training batch."""
        with self._autocast():
            output = self(images)
        return output.apply(torch.Tensor.float)

    def infer_classification(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Species and breed logits alone (float32): the backbone and the two heads in
        :attr:`inference_dtype`, without the decoder, which costs the network as much again."""
        with self._autocast():
            features = self.encoder(images)[-1]
            return self.species_head(features).float(), self.breed_head(features).float()

    def holds_pet(self, output: PetNetOutput) -> torch.Tensor:
        """(B,) bool: the pet score is at or above ``config.pet_threshold``."""
        return output.pet_logits.float().sigmoid() >= self.config.pet_threshold

    @torch.inference_mode()
    def look_closer(
        self,
        output: PetNetOutput,
        animals: Sequence[Sequence[torch.Tensor]],
        tensors: Sequence[torch.Tensor],
        photo_of: Callable[[int], Image.Image | None],
    ) -> PetNetOutput:
        """``output`` of :meth:`infer` (on the CPU) with a second look at each lone pet (``config.closer_look``).

        ``animals`` are the regions ``predict`` answers for in each image (:meth:`animal_regions` of
        an image that holds a pet, none otherwise). An image with exactly one is cropped to that
        animal's box (:func:`~petnet.inference.crop_box`), from its photo (``photo_of(i)``, called
        only for those images) when there is one, else from its network input ``tensors[i]``, and
        classified again at the input size: the pet is seen with more pixels. Its species and breed
        logits become the log of the mean of the photo's and the crop's probabilities
        (:func:`~petnet.inference.mean_probability_logits`), which :func:`decode_output` turns back
        into that mean. A box covering the whole image would show the photo again and is skipped;
        an image with several animals has each cropped anyway (``predict``). Masks, pet scores and
        maps stay the photo's.
        """
        looks = []
        for i, (regions, tensor) in enumerate(zip(animals, tensors, strict=True)):
            if len(regions) == 1 and (box := crop_box(regions[0])) != (0, 0, tensor.shape[-1], tensor.shape[-2]):
                looks.append((i, box))
        if not looks:
            return output
        crops = torch.stack([self._crop(tensors[i], photo_of(i), box) for i, box in looks])
        species, breeds = self.infer_classification(crops.to(self.device, memory_format=torch.channels_last))
        rows = torch.tensor([i for i, _ in looks])

        def averaged(photo_logits: torch.Tensor, crop_logits: torch.Tensor) -> torch.Tensor:
            mean = mean_probability_logits(photo_logits.index_select(0, rows), crop_logits.cpu())
            return photo_logits.float().index_copy(0, rows, mean)

        return output._replace(
            species_logits=averaged(output.species_logits, species), breed_logits=averaged(output.breed_logits, breeds)
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def preprocess(self, image: ImageInput) -> torch.Tensor:
        """Read an image input and turn it into the normalised 3xSxS tensor the network expects."""
        return self._preprocess(load_image(image))

    def predict(self, image: ImageInput | torch.Tensor) -> Prediction:
        """Whether there is a cat or dog, and for each animal its species, top-3 breeds (of that
        species) and mask region; the top-level fields describe the largest animal.

        ``image`` is a preprocessed 3xHxW tensor (mask comes back HxW) or anything
        :func:`petnet.images.load_image` reads (mask at ``config.image_size``, ``full_mask`` at
        the photo's size). Raises :class:`petnet.errors.InvalidImageError` for unusable input.
        """
        return self.predict_batch([image])[0]

    def predict_batch(
        self, images: Sequence[ImageInput | torch.Tensor], batch_size: int = PREDICT_BATCH_SIZE
    ) -> list[Prediction]:
        """Predict many images, running the network on batches of up to ``batch_size``.

        The default suits CPUs, where larger batches spill out of the caches and run slower per
        image; on a GPU pass a larger one."""
        results: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            inputs = [self._as_input(image) for image in images[start : start + batch_size]]
            results.extend(self._predict_inputs(inputs))
        return results

    def _as_input(self, image: ImageInput | torch.Tensor) -> _Input:
        if isinstance(image, torch.Tensor):
            if image.ndim == 4 and image.shape[0] == 1:
                image = image[0]
            if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
                raise ValueError(
                    f"A tensor input must be a preprocessed float 3xHxW image, got {tuple(image.shape)} {image.dtype}."
                )
            return _Input(image, tuple(image.shape[-2:]), None)
        picture = load_image(image)
        return _Input(self._preprocess(picture), (picture.height, picture.width), picture)

    @torch.inference_mode()
    def _predict_inputs(self, inputs: list[_Input]) -> list[Prediction]:
        shapes = {tuple(item.tensor.shape) for item in inputs}
        if len(shapes) > 1:  # preprocessed tensors of different sizes cannot share a batch
            return [prediction for item in inputs for prediction in self._predict_inputs([item])]
        batch = torch.stack([item.tensor for item in inputs]).to(self.device, memory_format=torch.channels_last)
        output = self.infer(batch).apply(torch.Tensor.cpu)
        masks = [mask_from_logits(logits) for logits in output.mask_logits]
        holds_pet = self.holds_pet(output).tolist()
        animals = [self.animal_regions(mask, output, i) if holds_pet[i] else [] for i, mask in enumerate(masks)]
        if self.config.closer_look:
            output = self.look_closer(output, animals, [item.tensor for item in inputs], lambda i: inputs[i].photo)
        decoded = self._decode(output)
        return [
            self._prediction(item, decoded, i, output, masks[i], holds_pet[i], animals[i])
            for i, item in enumerate(inputs)
        ]

    def _prediction(
        self, item: _Input, decoded: DecodedOutput, i: int, output: PetNetOutput, mask: torch.Tensor, has_pet: bool,
        animals: list[torch.Tensor],
    ) -> Prediction:  # fmt: skip
        """One image's result (``mask`` its label map, ``animals`` its :meth:`animal_regions` when it
        holds a pet); photos with several animals get one more pass over their crops."""
        names = self.config
        full_mask = mask_from_logits(output.mask_logits[i], item.size)
        pet_score = float(decoded.pet_scores[i])
        whole_photo = torch.ones_like(mask, dtype=torch.bool)
        regions = (animals or [whole_photo]) if has_pet else []
        classified, row = decoded, i  # what the top-level fields read: the largest animal's crop, or the photo
        if len(regions) > 1:
            classified, row = self._decode(self._classify_crops(item, regions)), 0
            pets = [self._pet(classified, j, region, mask, item.size, full_mask) for j, region in enumerate(regions)]
        else:
            pets = [self._pet(decoded, i, region, mask, item.size, full_mask) for region in regions]
        first = pets[0] if pets else self._pet(decoded, i, whole_photo, mask, item.size, full_mask)
        return Prediction(
            species=first.species,
            breed=first.breed,
            mask=mask,
            species_confidence=first.species_confidence,
            breed_confidences=first.breed_confidences,
            species_probabilities=dict(zip(names.species_names, classified.species_probabilities[row].tolist())),
            breed_probabilities=dict(zip(names.breed_names, classified.breed_probabilities[row].tolist())),
            full_mask=full_mask,
            mask_probabilities=decoded.mask_probabilities[i],
            pet_score=pet_score,
            has_pet=has_pet,
            pets=tuple(pets),
        )

    def animal_regions(
        self, mask: torch.Tensor, output: PetNetOutput, i: int, thresholds: tuple[float, float] | None = None
    ) -> list[torch.Tensor]:
        """One region per animal in image ``i`` of a (CPU) batch ``output`` whose label map is
        ``mask``: from the centre heatmap's peaks when the model has the head (at ``thresholds``,
        on and off the mask, default the config's), otherwise from the breed maps. Empty when no
        region stands out (``predict`` then answers for the whole photo)."""
        if output.center_logits is None:
            return pet_regions(mask, output.breed_maps[i])
        on_mask, off_mask = thresholds or (self.config.center_threshold, self.config.center_off_mask_threshold)
        return center_regions(mask, output.center_logits[i].sigmoid(), on_mask, off_mask)

    def answer_count(
        self, mask: torch.Tensor, output: PetNetOutput, i: int, thresholds: tuple[float, float] | None = None
    ) -> int:
        """How many animals ``predict`` answers for in image ``i``, were it taken to hold a pet."""
        return max(1, len(self.animal_regions(mask, output, i, thresholds)))

    def _decode(self, output: PetNetOutput) -> DecodedOutput:
        """:func:`decode_output` with this model's calibration (``config.breed_temperature``)."""
        return decode_output(output, self.breed_species_index, temperature=self.config.breed_temperature)

    def _classify_crops(self, item: _Input, regions: list[torch.Tensor]) -> PetNetOutput:
        """One forward pass over a crop around each region."""
        crops = [self._crop(item.tensor, item.photo, crop_box(region)) for region in regions]
        return self.infer_single_view(torch.stack(crops).to(self.device, memory_format=torch.channels_last))

    def _crop(self, tensor: torch.Tensor, photo: Image.Image | None, box: tuple[int, int, int, int]) -> torch.Tensor:
        """The network input showing ``box`` (pixels of the network-size ``tensor``), cut from the
        photo's own pixels when there is a photo (a large photo has more detail than the tensor)."""
        left, top, right, bottom = box
        if photo is None:
            crop = tensor[:, top:bottom, left:right]
            return F.interpolate(crop[None], size=tensor.shape[-2:], mode="bilinear", antialias=True)[0]
        scale_y, scale_x = photo.height / tensor.shape[-2], photo.width / tensor.shape[-1]
        left, top = round(left * scale_x), round(top * scale_y)
        right, bottom = max(left + 1, round(right * scale_x)), max(top + 1, round(bottom * scale_y))  # a small photo
        return self._preprocess(photo.crop((left, top, right, bottom)))

    def _pet(
        self, decoded: DecodedOutput, i: int, region: torch.Tensor, mask: torch.Tensor, size: tuple[int, int],
        full_mask: torch.Tensor,
    ) -> Pet:  # fmt: skip
        """Row ``i`` of ``decoded`` as one animal whose ``region`` (network size, on the label ``mask``)
        maps onto the photo: onto ``full_mask``'s pet and boundary pixels when the region holds pet
        pixels, else (an animal the mask missed, or no pet pixels anywhere) onto its background ones."""
        background = self.config.mask_classes.index("background")
        species = int(decoded.species_index[i])
        stretched = F.interpolate(region[None, None].float(), size=size, mode="nearest")[0, 0].bool()
        on_mask = bool((region & (mask != background)).any())
        full_region = stretched & ((full_mask != background) if on_mask else (full_mask == background))
        if not full_region.any():
            full_region = stretched
        names = self.config
        return Pet(
            species=names.species_names[species],
            species_confidence=float(decoded.species_probabilities[i, species]),
            breed=tuple(names.breed_names[j] for j in decoded.top_breeds[i].tolist()),
            breed_confidences=tuple(decoded.top_breed_confidences[i].tolist()),
            box=region_box(full_region),
            region=full_region,
        )

    def _save_pretrained(self, save_directory: Path) -> None:
        """Save weights as fp16 safetensors (half the size, no measurable accuracy change) and
        ``config.json`` (:func:`write_config_file`; the mixin then leaves it)."""
        if self.is_fused:
            raise WeightsError("A fused model cannot be saved; load it with load_model(..., fuse=False) to save it.")
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
            config = _config_from_dict(config, model_id)
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


def _config_from_dict(values: dict, source: str) -> PetNetConfig:
    try:
        return PetNetConfig(**values)
    except (TypeError, ValueError) as error:
        raise WeightsError(f"config.json of {source} is not a valid PetNetConfig: {error}") from error


def write_config_file(directory: Path, config: Mapping[str, Any]) -> Path:
    """``directory/config.json`` as every PetNet writer leaves it (saving, ``petnet.calibrate``):
    sorted keys and a two-space indent as the Hub mixin writes them, and a final newline."""
    path = Path(directory) / constants.CONFIG_NAME
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path
