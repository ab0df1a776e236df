"""Configuration dataclasses: the model's (``config.json`` next to the weights) and a training run's.

Labels, preprocessing and the pet-detection threshold live in :class:`PetNetConfig` so they travel
with the weights (never a second hard-coded copy): a model loaded from the Hub predicts with the
label names it was trained with. :class:`TrainConfig` nests the model config it trains, so the
backbone and input size are written down once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from petnet.errors import WeightsError
from petnet.labels import BREED_NAMES, BREED_SPECIES, MASK_CLASSES, SPECIES
from petnet.paths import OXFORD_PET_ROOT

SMALLEST_SCENE_PET = 0.12
"""The smallest pet training places into a scene by default, as a share of the scene's shorter side
(:class:`petnet.data.scenes.ScenePlacer`, ``TrainConfig.scene_smallest``); the largest fills it."""


@dataclass
class PetNetConfig:
    """Architecture, labels and preprocessing of one PetNet model."""

    backbone: str = "tf_efficientnet_lite0"
    image_size: int = 160
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    decoder_channels: list[int] = field(default_factory=lambda: [96, 64, 32, 24])
    dropout: float = 0.2
    drop_path_rate: float = 0.0
    """Stochastic depth in the backbone while training (timm ``drop_path_rate``); no effect on predictions."""
    species_names: list[str] = field(default_factory=lambda: list(SPECIES))
    breed_names: list[str] = field(default_factory=lambda: list(BREED_NAMES))
    breed_species: list[str] = field(default_factory=lambda: list(BREED_SPECIES))
    mask_classes: list[str] = field(default_factory=lambda: list(MASK_CLASSES))
    mirror_averaged_mask: bool = True
    """Predict masks from the mean of the photo's and its mirror image's mask logits. On validation
    it raised mean and worst-class IoU for all seven models we trained (+0.001 to +0.013), for twice
    the compute; averaging the classification logits as well did not help (the mirror shows nothing
    new), so classification takes its second view from a crop instead (``closer_look``)."""
    closer_look: bool = False
    """Classify a photo's lone pet a second time, cropped to its box (:meth:`petnet.inference.pipeline.Predictor.look_closer`), and
    average the two views' species and breed probabilities: a fine-grained look at more of the pet's
    pixels for one more pass of the backbone (no decoder), under half a network pass. On validation
    with the shipped soup's weights: breed top-1 344 of 367 against 341, top-3 362 either way, breed
    log loss 0.758 against 0.775 nats, species 366 against 367. Off for models saved before it."""
    closer_look_below: float = 1.0
    """With ``closer_look``, look closer only at photos whose first look gives the top breed less
    than this probability (the photo's own view, at ``breed_temperature``): a photo named surely
    already is not looked at again. 1 looks closer at every photo with one animal. Chosen on
    validation (docs/experiments.md): at 0.6 the shipped model looks closer at 26 of 367 photos and
    names as many breeds as looking at all of them."""
    presence_second_look: bool = False
    """Look again at a photo whose pet score misses ``pet_threshold``: crop it to where the centre
    heatmap most suspects an animal and ask the network about the crop
    (:meth:`petnet.inference.pipeline.Predictor.look_again`). A pet that fills a tenth to a half of
    the photo is averaged away by the first look, which learnt from close-ups; zoomed in, the pet
    head sees it as one and still says no to other animals. Costs a backbone pass for each crop
    (``second_look_peaks``), one more for each crop that reaches the threshold, to confirm it
    (``second_look_confirm_side``), and a whole-network pass where a pet is found. Off for models
    saved before it."""
    second_look_peaks: int = 1
    """How many of the centre heatmap's highest peaks the second look crops around, asked together;
    the crop with the highest pet score that reaches ``pet_threshold`` (and is confirmed) decides.
    The highest peak is not always on a small pet (in 35 of 50 validation scenes at 20-45%, one of
    the three highest in 44); each peak costs a backbone pass on a photo without a pet. 1 for models
    saved before it."""
    second_look_side: float | None = None
    """The second look's crop around each peak: a square of the network input (the photo stretched
    square), this fraction of its side, centred on the peak; of a photo that is not square, this
    fraction of its width and of its height. ``None`` (models saved before it): the box the peak's
    hill implies (:func:`~petnet.inference.regions.hill_region`), which for a small pet is several times the
    pet, so the crop is still a zoomed-out photo. Chosen on validation (docs/experiments.md): 0.25-0.4
    find about as many pets; 0.35 is shipped."""
    second_look_confirm_side: float | None = None
    """Keep a second-look find only where a closer crop, a square of this fraction of the input's
    side around the same peak, also reaches ``pet_threshold`` (asked for every crop that reaches the
    threshold, in one batch): a pet is a pet at any zoom, while a patch that fools the pet head at
    one framing seldom does at another. On validation, at 0.25 after a 0.35 crop, it dropped two
    other animals and two objects and kept 36 of the 37 scene pets found (docs/experiments.md). The
    photo's find is its highest-scoring crop that is confirmed: a crop beside a small pet that takes
    in part of it can score a hair higher than the crop on it and fail its closer look.
    ``None``: no confirmation."""
    tile_look_side: float | None = None
    """For a photo in which neither look found a pet but one suspected one (``tile_look_from``), look
    at a tile of it, this fraction of its width and of its height, as a photo of its own: the
    network's first look (one view) and, where that finds no pet and ``presence_second_look`` is on,
    the second look around the tile's own centre peaks (:meth:`petnet.inference.pipeline.Predictor.look_at_tiles`). A pet the whole
    photo's scale shows the centre head no peak for is seen at 1/side times the scale. The tile is
    the corner one nearest the second look's best crop, or all four corners where only the first
    look suspected a pet; at 0.6 the corner tiles overlap by a fifth of each side, so a pet up to a
    fifth of the photo's width and height lies whole in one of them wherever it is. Costs a
    whole-network pass and its second look for each tile; nothing for a photo the first look finds a
    pet in. ``None`` (models saved before it): no tile look."""
    tile_look_threshold: float = 0.95
    """The pet score (a tile's first look's, or its second look's crop's) that a tile must reach to
    hold a pet: meant to be higher than ``pet_threshold`` (below it, ``pet_threshold`` is the bar),
    since each tile is one more chance for an animal that is not a pet (a ram, an Angora rabbit) to
    pass. Chosen on validation (docs/experiments.md)."""
    tile_look_from: float = 0.0
    """With ``tile_look_side``, look at tiles only of a photo where a look already suspected a pet:
    its second look's best crop, or else its first look, scored at least this. Most photos without a
    pet come near neither, and the tile look would cost each of them three times what the other looks
    do. Chosen on validation (docs/experiments.md); 0 looks at every photo without a pet."""
    look_past_other_animals: bool = False
    """Look once more at a photo the other-animal check turns away, with the animals it turned away
    painted grey (:meth:`petnet.inference.pipeline.Predictor.look_past`): a dog beside a bear whose
    looks found only the bear is a dog, not another animal. Every pet found then is asked about by
    the check. Costs a second pass of the pipeline on those photos only. Off for models saved before it."""
    pet_pooling_sharpness: float = 0.0
    """How the pet-presence head pools its per-location logits over the photo: 0 averages them (a
    pet must fill much of the frame to raise the mean), ``r > 0`` takes their log-mean-exp at
    sharpness ``r``, ``log(mean(exp(r * logits))) / r``, which leans towards the locations that show
    a pet, so a pet in a corner of the photo counts. Re-fitted on frozen features by
    ``python -m petnet.training.refit_pet_head``, which chooses ``r`` on held-out training photos."""
    pet_threshold: float = 0.5
    """``pet_score`` at or above which a photo holds a cat or dog. Chosen on validation pets and the
    calibration part of the non-pet photos (``python -m petnet.training.calibrate``), never on test."""
    animal_check_threshold: float | None = None
    """Turn away a photo taken to hold a pet when ImageNet's classifier gives other animals at least
    this log-odds against dogs and domestic cats (:mod:`petnet.inference.animal_check`; its graph
    beside the model's, ``animals.int8.onnx``). Fitted on the training pets alone by ``python -m
    petnet.training.animal_check`` (kept 99.9%); ``None``, models saved before it, checks nothing."""
    animal_check_below: float = 1.0
    """With ``animal_check_threshold``, turn away only photos where PetNet is unsure: a top breed (the
    first look's, at ``breed_temperature``) below this, or a pet the second or the tile look found; 1
    asks about every photo that holds a pet. Each animal of a photo with several is asked about
    anyway, to set apart those that look like other animals."""
    breed_temperature: float = 1.0
    """The final breed logits (the mirror and closer-look views combined) are divided by it before
    the softmax, so that the breed and species probabilities people see are calibrated: of photos
    shown "90%", about 90% right. Fitted on validation by ``python -m petnet.training.calibrate`` (temperature
    scaling, Guo et al. 2017: the validation breed log loss minimised); it changes no ranking, so no
    prediction. Label smoothing, weight soups and averaged views leave the network under-confident,
    hence a temperature below 1. 1 = as the network says (models saved before it)."""
    center_head: bool = False
    """An animal-centre heatmap head (:class:`petnet.models.centers.CenterHead`, trained by
    ``python -m petnet.training.train_centers``): one peak per animal, which is how a photo of several
    animals gets one answer each. Without it, animals are told apart by the breed maps."""
    center_threshold: float = 0.5
    """Heatmap peak height at or above which a peak on the mask's pet pixels is an animal; chosen
    on validation composites and single pets (``python -m petnet.training.train_centers`` writes it), never on test."""
    center_off_mask_threshold: float = 0.5
    """The same for a peak far from every pet pixel of the mask (an animal the mask missed), which
    needs its own, usually higher, bar; chosen with ``center_threshold``."""
    onnx_precision: str = "float32"
    """Which of the model's ONNX graphs (``python -m petnet.training.export``) ONNX Runtime runs by
    default: ``float32`` or ``int8``, chosen on validation against a tolerance written down first
    (docs/experiments.md); the thresholds and temperature above are then calibrated on its outputs."""

    @classmethod
    def from_dict(cls, values: dict, source: str) -> PetNetConfig:
        """The config of ``config.json``'s ``values``; a :class:`~petnet.errors.WeightsError` naming
        ``source`` when they are not a valid one (an unknown key, an inconsistent label list)."""
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise WeightsError(f"config.json of {source} is not a valid PetNetConfig: {error}") from error

    def __post_init__(self) -> None:
        if len(self.breed_names) != len(self.breed_species):
            raise ValueError("breed_names and breed_species must have the same length")
        unknown = set(self.breed_species) - set(self.species_names)
        if unknown:
            raise ValueError(f"breed_species names unknown species {sorted(unknown)}")
        if len(self.decoder_channels) != 4:
            raise ValueError("decoder_channels needs 4 entries (strides 16, 8, 4, 2)")
        if not isinstance(self.second_look_peaks, int) or isinstance(self.second_look_peaks, bool) or self.second_look_peaks < 1:
            raise ValueError(f"second_look_peaks must be a whole number of at least 1; got {self.second_look_peaks!r}")
        for name in ("second_look_side", "second_look_confirm_side", "tile_look_side"):
            side = getattr(self, name)
            if side is not None and not (isinstance(side, (int, float)) and 0 < side <= 1):
                raise ValueError(f"{name} must be a fraction of the input's side in (0, 1], or null; got {side!r}")
        if not (isinstance(self.tile_look_threshold, (int, float)) and 0 < self.tile_look_threshold < 1):
            raise ValueError(f"tile_look_threshold must be a pet score in (0, 1); got {self.tile_look_threshold!r}")
        if not (isinstance(self.tile_look_from, (int, float)) and 0 <= self.tile_look_from < 1):
            raise ValueError(f"tile_look_from must be a pet score in [0, 1); got {self.tile_look_from!r}")


MODEL_FLAGS = ("backbone", "image_size", "dropout", "drop_path_rate")
"""The model settings a training run chooses (the rest of :class:`PetNetConfig` is labels and preprocessing)."""


@dataclass
class LossWeights:
    """Weights of the terms of :func:`petnet.training.losses.multitask_loss`."""

    species: float = 1.0
    breed: float = 1.0
    segmentation: float = 1.0
    dice: float = 0.5
    lovasz: float = 0.0
    """Lovász-softmax on the labelled mask pixels (trimaps, and the all-background masks of non-pet
    photos; :func:`petnet.training.losses.lovasz_softmax_loss`): a surrogate of per-class IoU, the figure masks
    are scored by. Like every weighted term it counts in the validation loss that picks ``model/``."""
    pseudo_mask: float = 0.0
    """Cross-entropy on pseudo-labelled pixels of photos without a trimap (a training aid only)."""
    pet: float = 0.0
    """Binary cross-entropy of the pet-presence head (pets against the non-pet photos)."""
    outlier: float = 0.0
    """Cross-entropy of non-pet photos' species and breed logits to the uniform distribution
    (outlier exposure, Hendrycks et al., ICLR 2019)."""
    distill: float = 0.0
    """KL divergence to the teacher's species and breed probabilities on the same augmented batch
    (``TrainConfig.teacher``; :func:`petnet.training.losses.distillation_loss`)."""
    mask_distill: float = 0.0
    """The same KL divergence, pixel by pixel, to the teacher's mask probabilities on the pets not placed
    into scenes: holds the close-ups' masks (a soup's, which a fine-tune drifts from) while a run
    learns other things."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``train_config.json`` and in checkpoints."""

    data_root: str = str(OXFORD_PET_ROOT)
    non_pet_root: str = ""
    """Folder of photos with no cat or dog (``list.tsv`` + ``images/``); empty trains on pets only."""
    pseudo_mask_dir: str = ""
    """Pseudo-labelled masks of the training photos without a trimap (``python -m petnet.training.pseudolabel``)."""
    output_dir: str = "runs/petnet"
    model: PetNetConfig = field(default_factory=PetNetConfig)
    train_image_size: int = 0
    """Training crop size; 0 trains at ``model.image_size``. Smaller trains faster, and because random
    crops magnify objects, testing at a larger size than training matches them again (FixRes)."""
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    backbone_lr_scale: float = 1.0
    """The backbone's learning rate as a fraction of the heads' (its ImageNet features need less change)."""
    weight_decay: float = 0.02
    warmup_epochs: float = 1.0
    freeze_epochs: int = 0
    grad_clip: float = 2.0
    label_smoothing: float = 0.0
    trivial_augment: bool = False
    """Photometric TrivialAugmentWide on top of the random crop and flip (geometric ops left out:
    they would move the photo without its mask)."""
    cutmix_probability: float = 0.0
    """Share of training batches in which each pet photo gets a box of another pet photo pasted in,
    its mask targets along with it, the labels mixed by area (:func:`petnet.data.cutmix.cutmix_pets`)."""
    cutmix_alpha: float = 1.0
    """The box's area is drawn from Beta(alpha, alpha): 1 is uniform, as in the CutMix paper."""
    copy_paste_probability: float = 0.0
    """Share of the other training batches (those CutMix left alone) in which each pet photo gets
    another pet of the batch pasted onto it along its mask (:func:`petnet.data.cutmix.copy_paste_pets`)."""
    scene_probability: float = 0.0
    """Share of the training pet photos placed into a training non-pet photo first, small or large,
    cut out along their mask or zoomed out whole (:class:`petnet.data.scenes.ScenePlacer`): users'
    pets do not always fill the frame as Oxford-IIIT's do. Needs ``non_pet_root``."""
    scene_smallest: float = SMALLEST_SCENE_PET
    """The smallest placed pet's longer side, as a share of the scene's shorter side (the largest fills
    it; log-uniform between). A re-fit of the breed head alone raises it: the head names a pet from
    the closer look's crop, where the pet fills most of the view, not from a whole scene."""
    scene_other_animals: bool = False
    """Place the training photos of other animals into scenes too, at the same ``scene_probability``
    (zoomed out whole; their masks are all background): a bear or a guinea pig seen small in a street is
    the hard negative of a pet seen small, so the presence decision learns the animal, not its size."""
    scene_masks: bool = True
    """Train the mask on photos placed into scenes too. Off, every scene's masks are ignored: the
    cut-outs', whose pasted, blurred edge is a boundary band no real photo has, and with them the
    zoomed-out photos' and the other animals' all-background ones; the mask then learns from
    close-ups and the photos with no pet as they are."""
    other_animal_repeats: int = 1
    """How many times each training non-pet photo of another animal (a bear, a guinea pig ...) is
    seen per epoch: the hard negatives of the pet-presence decision, weighted up."""
    ema_decay: float = 0.0
    """Decay of an exponential moving average of the weights, validated and exported instead of the
    raw weights; 0 turns it off."""
    patience: int = 6
    val_fraction: float = 0.1
    seed: int = 0
    """Seeds the shuffling and the augmentation of a run."""
    init_seed: int = 0
    """Seeds the random initial weights of the decoder and heads. Runs that share it start from the
    same weights, which is what lets ``petnet.training.soup`` average their decoders."""
    split_seed: int = 0
    """Seeds the validation split alone, so runs with different ``seed`` validate on the same photos
    (and can be compared, or averaged, on them)."""
    num_workers: int = 1
    amp: bool = True
    pretrained: bool = True
    init_from: str = ""
    """A PetNet folder (``save_pretrained``: config.json + weights) to start from instead of
    ImageNet; its model configuration replaces ``model``. For re-fitting parts of a finished model."""
    train_only: str = ""
    """Comma-separated parameter-name prefixes (``decoder.blocks.3.,decoder.classifier.``) that train;
    every other module is frozen: no gradients, and in eval mode (batch-norm statistics, dropout and
    stochastic depth as at inference). Empty: everything trains."""
    teacher: str = ""
    """A local PetNet folder (``save_pretrained``) whose species and breed probabilities (the
    ``distill`` loss) and mask probabilities (``mask_distill``) on each training batch the run also
    learns; validation scores the student alone: a soup of finished runs taught to one network.
    Needs ``loss_weights.distill`` or ``loss_weights.mask_distill`` above 0. Photos placed into
    scenes are not distilled: there the teacher, trained on close-ups, is the model being corrected."""
    distill_temperature: float = 2.0
    """Softens both sides of the distillation loss; above 1 the teacher's runner-up breeds weigh more."""
    limit: int = 0
    loss_weights: LossWeights = field(default_factory=LossWeights)

    @property
    def crop_size(self) -> int:
        return self.train_image_size or self.model.image_size

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Inverse of ``dataclasses.asdict``; older flat files with ``backbone``/``image_size`` load too."""
        values = dict(values)
        model = dict(values.pop("model", {}))
        for name in ("backbone", "image_size"):
            if name in values:
                model[name] = values.pop(name)
        values["model"] = PetNetConfig(**model)
        values["loss_weights"] = LossWeights(**values.get("loss_weights", {}))
        for name in ("split_seed", "init_seed"):  # files from before these existed: ``seed`` seeded both
            values.setdefault(name, values.get("seed", 0))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
