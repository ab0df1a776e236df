"""Does a second look at the pet, cropped by the predicted mask, name the breed or draw the mask better?

``python benchmarks/crop_views.py [--model DIR] [--margin 0.1]`` runs each validation pet (carved
from ``trainval`` as in training) through the network as a photo and as its mirror image, then as a
crop to the box of the pet and boundary pixels predicted (plus ``--margin`` of the box on each
side, stretched to the input square; the box from the photo's mask alone, and from the mean of the
photo's and the mirror's). It prints breed top-1 / top-3 / log loss of the photo alone (what
``predict`` does), of the mean of the photo's and the mirror's breed probabilities (the mirror view
``predict`` already computes for the mask) and of the mean of the photo's and the crop's, and the
mask IoUs (validation trimaps) of the photo alone, photo + mirror (what ``predict`` does), photo +
crop (the crop's mask pasted back into its box; the same compute as the mirror, but two passes one
after the other instead of one batch of two) and all three.
``predict`` takes such a second look for species and breeds when the model's config says
``closer_look`` (:meth:`petnet.model.PetNet.look_closer`: the box of the one animal it answers for,
on the network-size photo + mirror mask, the crop through the backbone and heads only);
``python -m petnet.evaluate --split val`` scores that rule.
Validation data only: a rule chosen here is reported on test by ``petnet.evaluate``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from petnet.config import TrainConfig
from petnet.data import read_trimap, split_records
from petnet.hub import load_model
from petnet.inference import crop_box, resize_scores
from petnet.labels import BACKGROUND_INDEX, MASK_CLASSES
from petnet.metrics import binary_pet_iou, confusion_matrix, iou_per_class
from petnet.paths import BUNDLED_MODEL_DIR


def pet_box(mask: torch.Tensor, margin: float) -> tuple[int, int, int, int] | None:
    """:func:`~petnet.inference.crop_box` of the non-background pixels of ``mask``; None when there are none."""
    pet = mask != BACKGROUND_INDEX
    return crop_box(pet, margin) if pet.any() else None


def classification(probabilities: torch.Tensor, truth: torch.Tensor) -> str:
    top = probabilities.topk(3, dim=1).indices
    top1 = int((top[:, 0] == truth).sum())
    top3 = int((top == truth[:, None]).any(dim=1).sum())
    loss = float(-probabilities[torch.arange(len(truth)), truth].clamp_min(1e-8).log().mean())
    return f"top-1 {top1:>4}  top-3 {top3:>4}  log loss {loss:.4f}"


def segmentation(confusion: np.ndarray) -> str:
    ious = iou_per_class(confusion)
    return f"mean IoU {ious.mean():.4f}  worst {ious.min():.4f}  binary {binary_pet_iou(confusion, BACKGROUND_INDEX):.4f}"


def crop_view(model, photo: Image.Image, box: tuple[int, int, int, int] | None, size: tuple[int, int],
              photo_scores: torch.Tensor, photo_breeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Breed probabilities (mean of photo and crop) and mask probabilities (the crop's pasted into
    its box, the photo's elsewhere) of one crop; the photo's own without a box."""
    if box is None:
        return photo_breeds, photo_scores
    left, top, right, bottom = box
    crop = model.infer_single_view(model.preprocess(photo.crop(box))[None].to(model.device))
    scores = photo_scores.clone()
    scores[:, top:bottom, left:right] = resize_scores(crop.mask_logits[0].softmax(0), (bottom - top, right - left))
    return (photo_breeds + crop.breed_logits[0].softmax(0)) / 2, scores


def main() -> None:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR))
    parser.add_argument("--margin", type=float, default=0.1)
    args = parser.parse_args()
    model = load_model(args.model)
    records = split_records(defaults.data_root, "val", defaults.val_fraction, defaults.split_seed)
    truth = torch.tensor([r.breed_index for r in records])
    breed_ways = ("photo", "photo + mirror", "photo + crop, box from the photo", "photo + crop, box from photo + mirror")
    mask_ways = ("photo", "photo + mirror", "photo + crop, box from the photo", "photo + mirror + crop")
    breeds = {way: [] for way in breed_ways}
    confusions = {way: np.zeros((len(MASK_CLASSES),) * 2, dtype=np.int64) for way in mask_ways}
    with torch.inference_mode():
        for record in tqdm(records, unit="photo"):
            photo = Image.open(record.image_path).convert("RGB")
            size = (photo.height, photo.width)
            tensor = model.preprocess(photo)[None].to(model.device)
            views = model.infer_single_view(torch.cat([tensor, tensor.flip(-1)]))
            photo_breeds = views.breed_logits[0].softmax(0)
            photo_scores = resize_scores(views.mask_logits[0].softmax(0), size)
            mirror_scores = resize_scores(views.mask_logits[1].flip(-1).softmax(0), size)
            alone = crop_view(model, photo, pet_box(photo_scores.argmax(0), args.margin), size, photo_scores, photo_breeds)
            mirrored = crop_view(model, photo, pet_box((photo_scores + mirror_scores).argmax(0), args.margin), size,
                                 photo_scores, photo_breeds)  # fmt: skip
            mirror_breeds = (photo_breeds + views.breed_logits[1].softmax(0)) / 2
            for way, probabilities in zip(breed_ways, (photo_breeds, mirror_breeds, alone[0], mirrored[0])):
                breeds[way].append(probabilities.cpu())
            if record.trimap_path is None:
                continue
            trimap = read_trimap(record.trimap_path)
            combined = (photo_scores, photo_scores + mirror_scores, photo_scores + alone[1],
                        photo_scores + mirror_scores + mirrored[1])  # fmt: skip
            for way, scores in zip(mask_ways, combined):
                confusions[way] += confusion_matrix(trimap, scores.argmax(0).numpy(), len(MASK_CLASSES))
    print(f"{len(records)} validation pets, margin {args.margin}")
    for way, probabilities in breeds.items():
        print(f"{'breeds, ' + way:<46} {classification(torch.stack(probabilities), truth)}")
    for way, confusion in confusions.items():
        print(f"{'mask, ' + way:<46} {segmentation(confusion)}")


if __name__ == "__main__":
    main()
