"""The Gradio demo without a server: interface wiring, prediction outputs, friendly input errors."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import petnet
from app.demo import API_NAME, PetDemo, ShownPrediction, build_demo, example_paths
from petnet.labels import BREEDS, display_name
from petnet.visualize import MASK_COLORS

DISPLAY_NAMES = {display_name(breed.name) for breed in BREEDS}


@pytest.fixture(scope="module")
def model() -> petnet.PetNet:
    return petnet.load_model()


@pytest.fixture(scope="module")
def handlers(model: petnet.PetNet, tmp_path_factory: pytest.TempPathFactory) -> PetDemo:
    return PetDemo(model, output_dir=tmp_path_factory.mktemp("results"))


def test_examples_are_real_photos_with_attribution() -> None:
    paths = example_paths()
    assert 4 <= len(paths) <= 6
    assert {petnet.labels.species_of(Path(p).stem.rsplit("_", 1)[0]) for p in paths} == {"cat", "dog"}
    assert all(Image.open(p).size == (256, 256) for p in paths)
    attribution = (Path(paths[0]).parent / "ATTRIBUTION.md").read_text()
    assert "Parkhi" in attribution and "CC BY-SA 4.0" in attribution


def test_interface_builds_with_queue_and_api_endpoint(model: petnet.PetNet) -> None:
    demo = build_demo(model)
    assert isinstance(demo, gr.Blocks)
    assert demo._queue.max_size == 64
    public = [fn for fn in demo.fns.values() if fn.api_visibility == "public"]
    assert [fn.api_name for fn in public] == [API_NAME]
    assert public[0].preprocess is False  # the upload reaches petnet.images.load_image undecoded


def test_predict_returns_documented_outputs(handlers: PetDemo) -> None:
    path = example_paths()[0]
    overlay, species, breeds, cutout_path, mask_path, shown = handlers.predict(path, 0.5)

    assert isinstance(overlay, Image.Image) and overlay.size == (256, 256)
    assert species.split(" ")[0] in {"Cat", "Dog"} and species.endswith("% sure")
    assert len(breeds) == 3 and set(breeds) <= DISPLAY_NAMES
    assert all(0.0 <= p <= 1.0 for p in breeds.values()) and sum(breeds.values()) <= 1.0 + 1e-6
    assert list(breeds.values()) == sorted(breeds.values(), reverse=True)
    assert {petnet.labels.BREED_BY_NAME[b.name].species for b in BREEDS if b.display_name in breeds} == {
        species.split(" ")[0].lower()
    }

    cutout = Image.open(cutout_path)
    assert Path(cutout_path).name == "pet_cutout.png" and cutout.mode == "RGBA" and cutout.size == (256, 256)
    mask = np.asarray(Image.open(mask_path))
    assert Path(mask_path).name == "pet_mask.png" and mask.shape == (256, 256)
    assert set(np.unique(mask)) <= {0, 1, 2}
    assert np.array_equal(np.asarray(cutout)[..., 3] == 0, mask == 1)  # background is transparent
    assert isinstance(shown, ShownPrediction) and np.array_equal(shown.mask, mask)


def test_predict_accepts_gradio_file_payload(handlers: PetDemo) -> None:
    path = example_paths()[1]
    species = handlers.predict({"path": path, "orig_name": "my pet.jpg"}, 0.3)[1]
    assert species.split(" ")[0] in {"Cat", "Dog"}


def test_opacity_redraws_from_state_without_the_model(handlers: PetDemo, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = handlers.predict(example_paths()[0], 0.5)[-1]
    monkeypatch.setattr(handlers.model, "predict", lambda *_: pytest.fail("the slider must not rerun the model"))

    assert np.array_equal(np.asarray(PetDemo.redraw(shown, 0.0)), np.asarray(shown.photo))
    opaque = np.asarray(PetDemo.redraw(shown, 1.0))
    pet = np.argwhere(shown.mask == 0)
    if len(pet):
        y, x = pet[0]
        assert tuple(opaque[y, x]) == MASK_COLORS["pet"]
    assert PetDemo.redraw(None, 0.5) is None


def test_cleared_input_clears_outputs(handlers: PetDemo) -> None:
    assert handlers.predict(None, 0.5) == (None, "", None, None, None, None)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` with almost no data: a decompression-bomb shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")))
    return path


def _bad_file(kind: str, directory: Path) -> Path:
    """A file a visitor might upload that is not a usable photo."""
    if kind == "text-renamed-jpg":
        path = directory / "notes.jpg"
        path.write_text("not a photo")
    elif kind == "truncated-jpeg":
        path = directory / "cut.jpg"
        path.write_bytes(Path(example_paths()[0]).read_bytes()[:3000])
    elif kind == "empty-file":
        path = directory / "empty.png"
        path.write_bytes(b"")
    else:
        path = _png_header_only(directory / "huge.png", 20000, 20000)
    return path


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("text-renamed-jpg", "Cannot read notes.jpg as an image"),
        ("truncated-jpeg", "cut.jpg is damaged or truncated"),
        ("20000x20000", "huge.png is too large to decode safely"),
        ("empty-file", "Cannot read empty.png as an image"),
    ],
)
def test_bad_files_raise_friendly_gradio_error(handlers: PetDemo, tmp_path: Path, kind: str, expected: str) -> None:
    with pytest.raises(gr.Error) as raised:
        handlers.predict(str(_bad_file(kind, tmp_path)), 0.5)
    message = raised.value.message
    assert expected in message and ("try another photo" in message or "try again" in message)
    assert str(tmp_path) not in message  # no server paths in what the visitor sees


def test_error_names_the_uploaded_file_not_the_server_copy(handlers: PetDemo, tmp_path: Path) -> None:
    path = tmp_path / "upload123.jpg"
    path.write_text("hello")
    with pytest.raises(gr.Error, match="Cannot read Kitty.jpg") as raised:
        handlers.predict({"path": str(path), "orig_name": "Kitty.jpg"}, 0.5)
    assert "upload123" not in raised.value.message


def test_missing_upload_path_is_a_friendly_error(handlers: PetDemo) -> None:
    with pytest.raises(gr.Error, match="add the photo again"):
        handlers.predict({"path": None, "url": "data:image/png;base64,"}, 0.5)


@pytest.mark.parametrize("kind", ["grayscale", "rgba", "animated-gif", "cmyk-jpeg"])
def test_unusual_but_valid_images_are_accepted(handlers: PetDemo, tmp_path: Path, kind: str) -> None:
    photo = Image.open(example_paths()[0]).convert("RGB")
    if kind == "grayscale":
        path = tmp_path / "gray.png"
        photo.convert("L").save(path)
    elif kind == "rgba":
        path = tmp_path / "rgba.png"
        photo.convert("RGBA").save(path)
    elif kind == "animated-gif":
        path = tmp_path / "anim.gif"
        photo.save(path, save_all=True, append_images=[photo.rotate(90)], duration=100, loop=0)
    else:
        path = tmp_path / "cmyk.jpg"
        photo.convert("CMYK").save(path)
    overlay, species, breeds, *_ = handlers.predict(str(path), 0.5)
    assert overlay.size == photo.size and species and len(breeds) == 3


def test_large_photo_keeps_full_size_downloads_and_small_state(handlers: PetDemo, tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.open(example_paths()[0]).resize((1600, 1200)).save(path)
    overlay, _, _, cutout_path, mask_path, shown = handlers.predict(str(path), 0.5)
    assert Image.open(cutout_path).size == Image.open(mask_path).size == (1600, 1200)
    limit = handlers.settings.screen_max_side
    assert overlay.size == shown.photo.size == (limit, limit * 3 // 4)
    assert shown.mask.shape == (limit * 3 // 4, limit) and set(np.unique(shown.mask)) <= {0, 1, 2}
