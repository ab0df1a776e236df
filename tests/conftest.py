"""Shared fixtures: a tiny generated dataset in the official Oxford-IIIT Pet layout, real files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from petnet import paths
from petnet.labels import BREED_BY_NAME, SPECIES

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the names other test modules import from here
REAL_DATA_ROOT = paths.OXFORD_PET_ROOT
TINY_BREEDS = ("Abyssinian", "Bengal", "beagle", "pug")


def synthetic_pet(size: int, seed: int) -> tuple[Image.Image, np.ndarray]:
    """An RGB picture of an ellipse 'pet' on a noisy background and its trimap (1 pet, 2 bg, 3 edge)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    box = [size * 0.2, size * 0.25, size * 0.8, size * 0.85]
    ImageDraw.Draw(image).ellipse(box, fill=tuple(int(c) for c in rng.integers(120, 255, 3)))
    trimap = Image.new("L", (size, size), 2)
    ImageDraw.Draw(trimap).ellipse(box, fill=3)
    ImageDraw.Draw(trimap).ellipse([box[0] + 2, box[1] + 2, box[2] - 2, box[3] - 2], fill=1)
    return image, np.asarray(trimap)


def make_tiny_dataset(root: Path, per_breed: int = 6, test_per_breed: int = 3, size: int = 64) -> Path:
    """Write a small dataset in the official layout; every other image gets a trimap."""
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    for breed_name in TINY_BREEDS:
        breed = BREED_BY_NAME[breed_name]
        for n in range(1, per_breed + test_per_breed + 1):
            name = f"{breed_name}_{n}"
            image, trimap = synthetic_pet(size, seed=breed.class_id * 100 + n)
            image.save(root / "images" / f"{name}.jpg", quality=90)
            if n % 2:
                Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{name}.png")
            split = "trainval" if n <= per_breed else "test"
            species_id = SPECIES.index(breed.species) + 1
            lines[split].append(f"{name} {breed.class_id} {species_id} {n}")
    for split, split_lines in lines.items():
        (root / "annotations" / f"{split}.txt").write_text("\n".join(split_lines) + "\n")
    header = "#Image CLASS-ID SPECIES BREED ID\n"
    (root / "annotations" / "list.txt").write_text(header + "\n".join(lines["trainval"] + lines["test"]) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_pet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a generated 4-breed dataset (24 trainval + 12 test images, half with trimaps)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("oxford-iiit-pet"))


@pytest.fixture(scope="session")
def real_image_path() -> Path:
    """One real Oxford-IIIT Pet photo: from the shared dataset, else the bundled examples."""
    candidates = [REAL_DATA_ROOT / "images" / "Abyssinian_1.jpg", *sorted(paths.EXAMPLES_DIR.glob("*.jpg"))]
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip("no real image available")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with almost no pixel data: the shape of a
    decompression bomb, which costs nothing to make."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))


@pytest.fixture(scope="session")
def tiny_onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random PetNet (Lite0, 64 px, centre head, sharp pet pooling) saved with its float32 and int8 ONNX graphs,
    made by the steps of ``python -m petnet.training.export`` (int8 calibrated on a few generated images)."""
    import torch

    from petnet.config import PetNetConfig
    from petnet.hub import load_model
    from petnet.models.network import PetNet
    from petnet.training.export import write_graphs

    directory = tmp_path_factory.mktemp("tiny-onnx")
    torch.manual_seed(0)
    PetNet(PetNetConfig(image_size=64, center_head=True, pet_pooling_sharpness=2.0)).save_pretrained(directory)
    model = load_model(directory, runtime="torch", precision="float32")
    write_graphs(model, directory, np.random.default_rng(0).normal(size=(4, 3, 64, 64)).astype(np.float32))
    return directory
