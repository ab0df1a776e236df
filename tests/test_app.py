"""The Gradio demo without a server: wiring, batched predictions, one result per animal, downloads,
plain in-page messages for unusable files.

Most tests drive :class:`PetDemo` with a stub model whose predictions are drawn by hand (no pet, one
pet, two pets), so what the page says is checked deterministically; one test runs a real (random)
PetNet through the same path.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs

import gradio as gr
import numpy as np
import pytest
import torch
from conftest import png_header_only
from gradio.route_utils import FileUploadProgressNotTrackedError
from gradio.routes import file_upload_statuses
from PIL import Image, ImageDraw
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import petnet
from app import demo as demo_module
from app import results_html
from app.demo import (
    API_NAME,
    BAD_OPACITY,
    BUSY_VISITOR,
    FAILED,
    MISSING_UPLOAD,
    TRUSTED_PROXIES,
    VIEW_FILE,
    DemoSettings,
    PetDemo,
    RequestGuard,
    build_demo,
    example_paths,
    sweep_lost_uploads,
    visitor_address,
)
from petnet.config import PetNetConfig
from petnet.images import MAX_SIDE, NOT_A_PICTURE, load_image
from petnet.inference.results import Pet, Prediction
from petnet.inference.visualize import MASK_COLORS, animal_color
from petnet.labels import BREED_NAMES, BREEDS, MASK_CLASSES, display_name

DISPLAY_NAMES = {display_name(breed.name) for breed in BREEDS}
NETWORK_SIZE = 64


def _prediction(photo: Image.Image, animals: int) -> Prediction:
    """A hand-drawn prediction: ``animals`` ellipse pets side by side (pet core, boundary ring)."""
    width, height = photo.size
    trimap = Image.new("L", (width, height), MASK_CLASSES.index("background"))
    draw = ImageDraw.Draw(trimap)
    boxes = [
        (i * width // max(animals, 1), height // 5, (i + 1) * width // max(animals, 1), height * 4 // 5)
        for i in range(animals)
    ]
    for left, top, right, bottom in boxes:
        draw.ellipse((left + 2, top, right - 2, bottom), fill=MASK_CLASSES.index("boundary"))
        draw.ellipse((left + 6, top + 4, right - 6, bottom - 4), fill=MASK_CLASSES.index("pet"))
    full_mask = np.array(trimap)
    mask = np.array(trimap.resize((NETWORK_SIZE, NETWORK_SIZE), Image.Resampling.NEAREST))
    probabilities = np.eye(3, dtype=np.float32)[mask].transpose(2, 0, 1)
    pets = []
    for i, (left, _, right, _) in enumerate(boxes):
        region = full_mask != MASK_CLASSES.index("background")
        region[:, :left] = False
        region[:, right:] = False
        breeds = ("beagle", "pug", "boxer") if i == 0 else ("Bengal", "Birman", "Sphynx")
        pets.append(
            Pet("dog" if i == 0 else "cat", 0.9 - 0.1 * i, breeds, (0.6, 0.25, 0.1), (left, 0, right, height), region)
        )
    first = (
        pets[0]
        if pets
        else Pet("dog", 0.55, ("pug", "boxer", "beagle"), (0.4, 0.3, 0.2), (0, 0, width, height), full_mask >= 0)
    )
    return Prediction(
        species=first.species,
        breed=first.breed,
        mask=mask,
        species_confidence=first.species_confidence,
        breed_confidences=first.breed_confidences,
        species_probabilities={"cat": 0.5, "dog": 0.5},
        breed_probabilities=dict.fromkeys(BREED_NAMES, 1 / len(BREED_NAMES)),
        full_mask=full_mask,
        mask_probabilities=probabilities,
        pet_score=0.9 if pets else 0.05,
        has_pet=bool(pets),
        pets=tuple(pets),
    )


class StubModel:
    """Stands in for PetNet: ``animals`` pets per photo, every ``predict_batch`` call recorded."""

    weights_source = "stub: tests"

    def __init__(self, animals: int = 1):
        self.animals = animals
        self.batches: list[int] = []

    def predict_batch(self, images: list[Image.Image]) -> list[Prediction]:
        self.batches.append(len(images))
        return [_prediction(image, self.animals) for image in images]


def _handlers(tmp_path: Path, animals: int = 1) -> PetDemo:
    """Handlers writing into ``tmp_path`` that take the photos of ``tmp_path.parent`` as uploads
    (the tests' photos sit there or in ``tmp_path`` itself)."""
    return PetDemo(StubModel(animals), output_dir=tmp_path, upload_dir=tmp_path.parent)  # type: ignore[arg-type]


def _photo(tmp_path: Path, name: str = "my cat.jpg", size: tuple[int, int] = (200, 120)) -> str:
    path = tmp_path / name
    Image.new("RGB", size, (120, 160, 90)).save(path)
    return str(path)


def test_examples_are_real_photos_with_attribution() -> None:
    paths = example_paths()
    assert 4 <= len(paths) <= 6
    assert {petnet.labels.species_of(Path(p).stem.rsplit("_", 1)[0]) for p in paths} == {"cat", "dog"}
    assert all(Image.open(p).size == (256, 256) for p in paths)
    attribution = (Path(paths[0]).parent / "ATTRIBUTION.md").read_text()
    assert "Parkhi" in attribution and "CC BY-SA 4.0" in attribution


def test_interface_batches_the_public_endpoint_behind_a_concurrency_limit() -> None:
    demo = build_demo(StubModel(), DemoSettings())  # type: ignore[arg-type]
    assert isinstance(demo, gr.Blocks)
    assert demo._queue.max_size == 64
    public = [fn for fn in demo.fns.values() if fn.api_visibility == "public"]
    assert [fn.api_name for fn in public] == [API_NAME]
    endpoint = public[0]
    assert endpoint.preprocess is False  # the upload reaches petnet.images.load_image undecoded
    assert endpoint.batch and endpoint.max_batch_size == 4 and endpoint.concurrency_limit == 2


def test_concurrent_batches_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    assert DemoSettings(concurrency_limit=2).network_threads == 1
    assert DemoSettings(concurrency_limit=1).network_threads == 2
    assert DemoSettings(concurrency_limit=4).network_threads == 1  # never zero


def test_an_unsure_first_breed_says_so_in_words() -> None:
    region = np.ones((4, 4), dtype=bool)
    sure = Pet("dog", 0.97, ("pug", "boxer", "beagle"), (0.8, 0.1, 0.05), (0, 0, 4, 4), region)
    unsure = Pet("dog", 0.95, ("pug", "american_bulldog", "boxer"), (0.45, 0.4, 0.05), (0, 0, 4, 4), region)
    assert results_html.breed_heading(sure) == "" and "Not sure" not in results_html._card(sure, 0, False)
    assert results_html.breed_heading(unsure) == "Not sure: Pug or American Bulldog"
    assert "Not sure: Pug or American Bulldog" in results_html._card(unsure, 0, False)


def test_a_small_animal_is_said_to_be_less_sure() -> None:
    region = np.zeros((400, 600), dtype=bool)
    small = Pet("dog", 0.97, ("pug", "boxer", "beagle"), (0.8, 0.1, 0.05), (10, 10, 100, 80), region)
    large = Pet("dog", 0.97, ("pug", "boxer", "beagle"), (0.8, 0.1, 0.05), (10, 10, 300, 380), region)
    assert results_html.is_small(small) and results_html.SMALL_NOTE in results_html._card(small, 0, False)
    assert not results_html.is_small(large) and results_html.SMALL_NOTE not in results_html._card(large, 0, False)


def test_species_text_marks_a_species_that_holds_under_half() -> None:
    region = np.ones((4, 4), dtype=bool)
    sure = Pet("dog", 0.9, ("pug", "boxer", "beagle"), (0.6, 0.2, 0.1), (0, 0, 4, 4), region)
    unsure = Pet("cat", 0.42, ("Bengal", "Birman", "Bombay"), (0.2, 0.1, 0.1), (0, 0, 4, 4), region)
    assert results_html.species_text(sure) == "Dog · 90% sure"
    assert results_html.species_text(unsure) == "Cat? · 42% sure"


def test_batch_size_and_calls_per_visitor_come_from_the_environment() -> None:
    assert DemoSettings.from_environ({"PETNET_MAX_BATCH_SIZE": "1"}).max_batch_size == 1
    assert DemoSettings.from_environ({"PETNET_CALLS_PER_VISITOR": "0"}).max_calls_per_visitor == 0
    with pytest.raises(ValueError, match="PETNET_CALLS_PER_VISITOR"):
        DemoSettings.from_environ({"PETNET_CALLS_PER_VISITOR": "-1"})
    assert DemoSettings.from_environ({}) == DemoSettings()


def test_one_pet_gives_species_breeds_overlay_cutout_and_named_downloads(tmp_path: Path) -> None:
    overlay, verdict, details, preview, downloads = _handlers(tmp_path).predict(_photo(tmp_path), 0.5)

    assert Path(overlay).name == "overlay-my_cat.jpg" and Image.open(overlay).size == (200, 120)
    assert "Dog · 90% sure" in verdict and verdict.count('class="breed"') == 3
    assert "Beagle" in verdict and "60%" in verdict and results_html.NO_PET not in verdict
    assert details["has_pet"] is True and len(details["pets"]) == 1 and details["pets"][0]["breed"][0] == "beagle"
    assert [Path(p).name for p in downloads] == ["overlay-my_cat.jpg", "cutout-my_cat.png", "mask-my_cat.png"]

    mask = Image.open(downloads[2])
    assert mask.mode == "P" and mask.size == (200, 120)
    values = np.asarray(mask)
    assert set(np.unique(values)) == {0, 1, 2}  # the values stay class indices ...
    colours = np.asarray(mask.convert("RGB"))
    assert tuple(colours[values == 1][0]) == MASK_COLORS["background"]  # ... shown in visible colours

    cutout = Image.open(downloads[1])
    assert cutout.mode == "RGBA" and cutout.width < 200 and cutout.height < 120  # cropped to the pet
    alpha = np.asarray(cutout)[..., 3]
    assert alpha.max() == 255 and ((alpha > 0) & (alpha < 255)).any()  # opaque pet, feathered boundary
    shown = Image.open(preview)
    assert shown.mode == "RGB" and shown.size == cutout.size and preview not in downloads  # on a checkerboard


def test_another_kind_of_animal_is_said_to_be_one() -> None:
    from dataclasses import replace

    [no_pet] = StubModel(animals=0).predict_batch([Image.new("RGB", (64, 64))])
    verdict = results_html.verdict(replace(no_pet, other_animal=True))
    assert results_html.OTHER_ANIMAL in verdict and results_html.NO_PET not in verdict
    assert results_html.NO_PET in results_html.verdict(no_pet)


def test_no_pet_says_so_and_offers_no_cutout(tmp_path: Path) -> None:
    overlay, verdict, details, preview, downloads = _handlers(tmp_path, animals=0).predict(_photo(tmp_path), 0.5)
    assert results_html.NO_PET == "No cat or dog found in this photo."
    assert results_html.NO_PET in verdict and "sure" not in verdict
    assert details["has_pet"] is False and details["pets"] == []
    assert preview is None and [Path(p).name for p in downloads] == ["overlay-my_cat.jpg", "mask-my_cat.png"]
    assert overlay == downloads[0]


def test_two_pets_get_one_result_each_and_their_own_colour(tmp_path: Path) -> None:
    overlay, verdict, details, _, _ = _handlers(tmp_path, animals=2).predict(_photo(tmp_path), 1.0)
    assert verdict.count('class="pet-card"') == 2 and "2 animals found" in verdict
    assert "Dog · 90% sure" in verdict and "Cat · 80% sure" in verdict and "Bengal" in verdict
    assert [pet["species"] for pet in details["pets"]] == ["dog", "cat"]
    pixels = np.asarray(Image.open(overlay)).astype(int)  # a JPEG: colours within a few levels
    assert np.abs(pixels[60, 50] - animal_color(0)).max() <= 4 and np.abs(pixels[60, 150] - animal_color(1)).max() <= 4
    assert f"rgb{animal_color(1)}" in verdict  # each card's swatch matches its overlay colour


def test_concurrent_visitors_share_one_network_pass_and_a_bad_file_stays_theirs(tmp_path: Path) -> None:
    handlers = _handlers(tmp_path)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    uploads = [_photo(tmp_path, "a.jpg"), {"path": str(bad), "orig_name": "notes.jpg"}, _photo(tmp_path, "b.png")]
    columns = handlers.predict_batch(uploads, [0.5, 0.5, 0.5])
    assert handlers.model.batches == [2]  # the two usable photos went through the network together
    assert len(columns) == 5 and all(len(column) == 3 for column in columns)
    overlays, verdicts, details, _, downloads = columns
    assert Path(overlays[0]).name == "overlay-a.jpg" and Path(overlays[2]).name == "overlay-b.jpg"
    assert overlays[1] is None and downloads[1] is None and details[1] == {"error": NOT_A_PICTURE}
    assert "notes.jpg" in verdicts[1] and "Dog · 90% sure" in verdicts[0] + verdicts[2]


def test_opacity_redraws_from_the_stored_view_without_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = _handlers(tmp_path, animals=2)
    photo = _photo(tmp_path)
    _, _, _, _, downloads = handlers.predict(photo, 0.5)
    assert (Path(downloads[-1]).parent / VIEW_FILE).is_file()
    monkeypatch.setattr(handlers.model, "predict_batch", lambda *_: pytest.fail("the slider must not rerun the model"))

    payload = [{"path": path} for path in downloads]  # the download list as the page sends it back
    clear, clear_downloads = handlers.redraw(payload, 0.0)
    difference = np.abs(np.asarray(Image.open(clear)).astype(int) - np.asarray(load_image(photo)).astype(int))
    assert difference.max() <= 4, "the photo itself, within a JPEG's few levels"
    assert (
        clear_downloads[0] == clear
        and clear_downloads[1:] == downloads[1:]
        and Path(clear).name == "overlay-my_cat.jpg"
    )
    opaque, _ = handlers.redraw(clear_downloads, 1.0)  # works again from the redrawn list
    assert np.abs(np.asarray(Image.open(opaque))[60, 150].astype(int) - animal_color(1)).max() <= 4
    assert handlers.redraw(None, 0.5) == (None, None)
    # a page loaded before the overlay became a JPEG sends its old name back: redrawn as a JPEG
    legacy = Path(downloads[0]).with_name("overlay-my_cat.png")
    legacy.write_bytes(b"")
    redrawn, redrawn_downloads = handlers.redraw([str(legacy), *downloads[1:]], 0.5)
    assert Path(redrawn).name == "overlay-my_cat.jpg" and Image.open(redrawn).format == "JPEG"
    assert str(legacy) not in redrawn_downloads
    assert handlers.redraw(downloads[1:], 0.5) == (None, None), "no overlay in the list: nothing to redraw"


@pytest.mark.parametrize("opacity", [float("nan"), float("inf"), "0.5", [0.5], True])
def test_an_opacity_that_is_no_number_is_refused_before_the_model_runs(tmp_path: Path, opacity: object) -> None:
    handlers = _handlers(tmp_path, animals=2)
    overlay, verdict, details, preview, downloads = handlers.predict(_photo(tmp_path), opacity)
    assert details == {"error": BAD_OPACITY} and BAD_OPACITY in verdict
    assert overlay is preview is downloads is None and handlers.model.batches == []
    _, _, _, _, shown = handlers.predict(_photo(tmp_path), 1)  # an int from the API is a fine opacity
    assert handlers.redraw([{"path": path} for path in shown], opacity) == (gr.skip(), gr.skip())


def test_an_opacity_typed_past_the_slider_is_clamped_and_a_cleared_one_is_the_default(tmp_path: Path) -> None:
    """The slider's number box sends what is typed (1.5, -1) or, cleared, nothing, before it clamps."""
    handlers = _handlers(tmp_path, animals=2)
    drawn = {}
    for opacity in (-1, 0.0, 1.5, 1.0, None, handlers.settings.default_opacity):
        overlay = handlers.predict(_photo(tmp_path), opacity)[0]
        drawn[opacity] = np.asarray(Image.open(overlay)).astype(int)
    assert np.array_equal(drawn[-1], drawn[0.0]) and np.array_equal(drawn[1.5], drawn[1.0])
    assert np.array_equal(drawn[None], drawn[handlers.settings.default_opacity])
    assert not np.array_equal(drawn[0.0], drawn[1.0])


def test_redraw_ignores_files_outside_its_results_folder(tmp_path: Path) -> None:
    handlers = _handlers(tmp_path / "results")
    foreign = tmp_path / "elsewhere" / "mask-x.png"
    foreign.parent.mkdir()
    foreign.write_bytes(b"")
    (foreign.parent / VIEW_FILE).write_bytes(b"")
    assert handlers.redraw([str(foreign)], 0.5) == (None, None)


def test_cleared_input_clears_outputs(tmp_path: Path) -> None:
    assert _handlers(tmp_path).predict(None, 0.5) == (None, results_html.placeholder(), None, None, None)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    path.write_bytes(png_header_only(width, height))
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
        ("text-renamed-jpg", "This file isn't a picture we can read (JPEG, PNG, WebP, HEIC, AVIF, GIF, BMP or TIFF)."),
        ("truncated-jpeg", "This photo is only partly there; try saving it again."),
        ("20000x20000", "This picture is too large (at most 64 megapixels)."),
        ("empty-file", "This file is empty."),
    ],
)
def test_bad_files_get_one_plain_message_in_the_page(tmp_path: Path, kind: str, expected: str) -> None:
    bad = _bad_file(kind, tmp_path)
    overlay, verdict, details, preview, downloads = _handlers(tmp_path / "out").predict(
        {"path": str(bad), "orig_name": f"Kitty {bad.name}"}, 0.5
    )
    assert details == {"error": expected}
    assert 'role="alert"' in verdict and expected.replace("'", "&#x27;") in verdict and f"Kitty {bad.name}" in verdict
    assert overlay is preview is downloads is None  # no stale results beside the message
    assert str(tmp_path) not in verdict  # no server paths in what the visitor sees
    for jargon in ("identify", "truncated", "decompression", "bytes not processed", " pixels"):
        assert jargon not in verdict.lower()


def test_missing_upload_path_is_a_plain_message(tmp_path: Path) -> None:
    verdict = _handlers(tmp_path).predict({"path": None, "url": "data:image/png;base64,"}, 0.5)[1]
    assert "add the photo again" in verdict and 'role="alert"' in verdict


@pytest.mark.parametrize("kind", ["grayscale", "rgba", "animated-gif", "cmyk-jpeg", "heic"])
def test_unusual_but_valid_images_are_accepted(tmp_path: Path, kind: str) -> None:
    photo = Image.open(example_paths()[0]).convert("RGB")
    suffix, mode, options = {
        "grayscale": (".png", "L", {}),
        "rgba": (".png", "RGBA", {}),
        "animated-gif": (".gif", "RGB", {"save_all": True, "append_images": [photo.rotate(90)], "duration": 100}),
        "cmyk-jpeg": (".jpg", "CMYK", {}),
        "heic": (".heic", "RGB", {"format": "HEIF"}),
    }[kind]
    path = tmp_path / f"photo{suffix}"
    photo.convert(mode).save(path, **options)
    overlay, verdict, details, *_ = _handlers(tmp_path / "out").predict(str(path), 0.5)
    assert Image.open(overlay).size == photo.size and "sure" in verdict and details["has_pet"]


def test_large_photo_keeps_full_size_downloads_and_a_screen_size_overlay(tmp_path: Path) -> None:
    handlers = _handlers(tmp_path / "out")
    overlay, _, _, preview, downloads = handlers.predict(_photo(tmp_path, "big.jpg", (1600, 1200)), 0.5)
    assert Image.open(downloads[-1]).size == (1600, 1200)  # the mask
    limit = handlers.settings.screen_max_side
    assert Image.open(overlay).size == (limit, limit * 3 // 4) and max(Image.open(preview).size) <= limit
    with np.load(Path(downloads[-1]).parent / VIEW_FILE) as view:
        assert view["mask"].shape == view["animals"].shape == (limit * 3 // 4, limit)


def test_only_uploads_and_examples_are_opened_and_refusals_do_not_tell_what_exists(tmp_path: Path) -> None:
    """A raw API call can name any server path (the event skips Gradio's preprocessing): a photo
    elsewhere on the server, a non-image, a missing path and a symlink from the upload folder to
    outside get the same words, and nothing is opened; uploads and the bundled examples work."""
    uploads, outside = tmp_path / "uploads", tmp_path / "server"
    uploads.mkdir()
    outside.mkdir()
    handlers = PetDemo(StubModel(), output_dir=uploads, upload_dir=uploads)  # type: ignore[arg-type]
    server_photo = _photo(outside, "secret.jpg")
    link = uploads / "link.jpg"
    link.symlink_to(server_photo)
    hostile = [server_photo, "/etc/hostname", str(outside / "missing.jpg"), str(link), "/proc/self/mem", str(uploads)]
    for path in hostile:
        overlay, verdict, details, preview, downloads = handlers.predict({"path": path}, 0.5)
        assert details == {"error": MISSING_UPLOAD} and overlay is preview is downloads is None
        assert str(tmp_path) not in verdict
    assert handlers.model.batches == []  # nothing reached the network
    ours = handlers.predict({"path": _photo(uploads, "mine.jpg")}, 0.5)
    assert ours[2]["has_pet"] and handlers.predict(example_paths()[0], 0.5)[2]["has_pet"]
    assert handlers.predict({"path": ours[4][0]}, 0.5)[2] == {"error": MISSING_UPLOAD}  # not our own outputs


class FailingModel(StubModel):
    """A stub whose network fails on any batch that holds a photo of ``bad_width`` pixels."""

    def __init__(self, bad_width: int):
        super().__init__()
        self.bad_width = bad_width

    def predict_batch(self, images: list[Image.Image]) -> list[Prediction]:
        if any(image.width == self.bad_width for image in images):
            raise RuntimeError("the network fell over")
        return super().predict_batch(images)


def test_one_failing_photo_fails_alone_and_its_batch_mates_are_answered(tmp_path: Path) -> None:
    handlers = PetDemo(FailingModel(bad_width=77), output_dir=tmp_path, upload_dir=tmp_path)  # type: ignore[arg-type]
    uploads = [_photo(tmp_path, "a.jpg"), _photo(tmp_path, "bad.jpg", (77, 50)), _photo(tmp_path, "b.jpg"), "/proc/self/mem"]
    overlays, _, details, _, _ = handlers.predict_batch(uploads, [0.5] * 4)
    assert details[1] == {"error": FAILED} and details[3] == {"error": MISSING_UPLOAD}
    assert details[0]["has_pet"] and details[2]["has_pet"] and overlays[0] and overlays[2]
    assert handlers.model.batches == [1, 1]  # the failed batch of three, then one by one


def test_a_50_megapixel_photo_is_answered_at_working_size(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    Image.new("RGB", (8160, 6120), (120, 160, 90)).save(path, quality=80)
    _, verdict, details, _, downloads = _handlers(tmp_path / "out").predict(str(path), 0.5)
    assert "sure" in verdict and details["image_size"] == [MAX_SIDE, MAX_SIDE * 6120 // 8160]
    assert Image.open(downloads[-1]).size == (MAX_SIDE, MAX_SIDE * 6120 // 8160)  # the mask


def test_old_result_folders_are_swept(tmp_path: Path) -> None:
    handlers = _handlers(tmp_path / "out")
    downloads = handlers.predict(_photo(tmp_path), 0.5)[-1]
    folder = Path(downloads[0]).parent
    frequency, age = handlers.settings.delete_cache
    written = folder.stat().st_mtime
    assert handlers.sweep(now=written + frequency + 1) == 0 and folder.is_dir()  # still fresh
    assert handlers.sweep(now=written + age + 1) == 1 and not folder.exists()
    handlers.predict(_photo(tmp_path), 0.5)
    assert handlers.sweep(now=written + age + 2) == 0 and folder.is_dir()  # too soon after the last sweep


def test_uploads_gradio_lost_track_of_are_swept_as_uploads_arrive(tmp_path: Path) -> None:
    """Old temporary upload files and empty folders at the top of the upload folder go; other
    files, folders with files, symbolic links and fresh ones stay, and nothing is swept in the
    system's temporary folder itself. The request guard runs the sweep when an upload arrives."""
    frequency, age = DemoSettings().delete_cache
    old = time.time() - age - 5
    stale, fresh, other, empty, full, link = (tmp_path / name for name in ("tmpa1b2_c3d", "tmpe5f6g7h8", "app.pid", "0123abcd", "4567efgh", "link"))
    for file in (stale, fresh, other):
        file.write_bytes(b"\xff\xd8" + bytes(100))
    empty.mkdir()
    full.mkdir()
    (full / "photo.jpg").write_bytes(b"\xff\xd8")
    link.symlink_to(fresh)
    for path in (stale, other, empty, full):
        os.utime(path, (old, old))
    assert sweep_lost_uploads(tmp_path, age) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["4567efgh", "app.pid", "link", "tmpe5f6g7h8"]
    assert sweep_lost_uploads(Path(tempfile.gettempdir()), 0) == 0

    os.utime(fresh, (old, old))
    passed = []

    async def app(scope, receive, send) -> None:
        passed.append(scope["path"])

    guard = RequestGuard(app, max_upload=1000, upload_dir=tmp_path, delete_cache=(frequency, age))
    scope = {"type": "http", "method": "GET", "path": "/gradio_api/upload_progress", "headers": [], "query_string": b""}
    asyncio.run(guard(scope, None, None))
    assert fresh.exists()  # not an upload: no sweep
    asyncio.run(guard({**scope, "method": "POST", "path": "/gradio_api/upload"}, None, None))
    assert not fresh.exists() and passed == ["/gradio_api/upload_progress", "/gradio_api/upload"]


def test_upload_progress_ids_are_short_and_bounded(tmp_path: Path, monkeypatch) -> None:
    """Gradio keeps an upload's progress until someone follows it: ids the page would not make are
    refused, and past the bound the oldest is forgotten."""
    monkeypatch.setattr(demo_module, "MAX_UPLOAD_IDS", 3)
    answers: list[int] = []

    async def app(scope, receive, send) -> None:
        file_upload_statuses.track(parse_qs(scope["query_string"].decode())["upload_id"][0])

    async def send(message) -> None:
        if message["type"] == "http.response.start":
            answers.append(message["status"])

    guard = RequestGuard(app, max_upload=1000, upload_dir=tmp_path, delete_cache=DemoSettings().delete_cache)
    ids = [f"petnettest{i}" for i in range(5)]
    for upload_id in [*ids, "x" * 17, "Bad-Id"]:
        scope = {"type": "http", "method": "GET", "path": "/gradio_api/upload_progress", "headers": [], "query_string": f"upload_id={upload_id}".encode()}
        asyncio.run(guard(scope, None, send))
    assert answers == [400, 400]

    def tracked(upload_id: str) -> bool:
        try:
            file_upload_statuses.is_done(upload_id)
        except FileUploadProgressNotTrackedError:
            return False
        return True

    assert [tracked(upload_id) for upload_id in ids] == [False, False, True, True, True]
    for upload_id in ids:
        file_upload_statuses.stop_tracking(upload_id)


def test_one_visitor_holds_only_its_share_of_the_queue(tmp_path: Path) -> None:
    """A visitor's calls waiting or running in Gradio's queue, and those on their way in, count
    against its cap: past it a call is refused with a message, other visitors and other requests
    go on, and a finished call frees its place."""
    queue: dict[str, SimpleNamespace] = {}  # Gradio's event_ids_to_events: each event keeps its request
    gradio_app = SimpleNamespace(get_blocks=lambda: SimpleNamespace(_queue=SimpleNamespace(event_ids_to_events=queue)))
    held = asyncio.Event()
    numbers = itertools.count()

    async def app(scope, receive, send) -> None:
        if scope["method"] == "POST":
            await held.wait()  # Gradio parses the body before the event joins its queue
            queue[f"event{next(numbers)}"] = SimpleNamespace(request=SimpleNamespace(scope=scope), alive=True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = RequestGuard(app, max_upload=1000, upload_dir=tmp_path, delete_cache=DemoSettings().delete_cache, max_calls=3)

    async def call(address: str, path: str = "/gradio_api/queue/join", method: str = "POST") -> tuple[int, bytes]:
        answer: dict[str, object] = {}

        async def receive():
            await asyncio.sleep(0.01)  # the body arrives after the headers
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message) -> None:
            answer.update(message)

        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        scope = {"type": "http", "method": method, "path": path, "headers": headers, "query_string": b"",
                 "client": (address, 40000), "app": gradio_app}  # fmt: skip
        await guard(scope, receive, send)
        return answer["status"], answer["body"]

    async def scenario() -> None:
        stranger, visitor = "203.0.113.7", "198.51.100.2"
        on_the_way = [asyncio.create_task(call(stranger)) for _ in range(4)]  # sent at once
        await asyncio.sleep(0.05)  # all four in, their bodies read
        held.set()
        answers = await asyncio.gather(*on_the_way)
        refusal = (429, json.dumps({"error": BUSY_VISITOR.format(count=3)}, separators=(",", ":")).encode())
        assert sorted(status for status, _ in answers) == [200, 200, 200, 429] and refusal in answers
        assert await call(stranger, "/gradio_api/call/predict") == refusal
        assert await call(stranger, "/gradio_api/call/v2/predict") == refusal
        assert (await call(stranger, "/gradio_api/call/predict/event0", "GET"))[0] == 200  # reading results
        assert (await call(visitor))[0] == 200
        del queue["event0"]  # one of the stranger's calls was answered
        queue["event1"].alive = False  # another one's client left: Gradio may keep it for good
        assert [(await call(stranger, "/gradio_api/call/predict"))[0] for _ in range(3)] == [200, 200, 429]
        # an IPv6 subscriber holds a /64 whole: its addresses share one share
        assert [(await call(f"2001:db8:0:7::{i:x}"))[0] for i in range(1, 5)] == [200, 200, 200, 429]
        assert (await call("2001:db8:0:8::1"))[0] == 200

    asyncio.run(scenario())


def test_the_visitor_is_the_address_the_proxy_saw() -> None:
    """Behind a proxy on a private network (a Space's), uvicorn's proxy-header handling with
    :data:`TRUSTED_PROXIES` makes the visitor the last address in ``X-Forwarded-For`` outside them:
    what a client writes into the header itself comes before it, and a client reaching the server
    from a public address is its own address whatever it sends."""
    seen: list[str] = []

    async def app(scope, receive, send) -> None:
        seen.append(visitor_address(scope))

    proxied = ProxyHeadersMiddleware(app, trusted_hosts=TRUSTED_PROXIES)
    for peer, forwarded in (("10.16.3.80", "198.51.100.9, 203.0.113.7"), ("10.16.3.80", "203.0.113.7, 10.16.9.1"),
                            ("203.0.113.7", "198.51.100.9"), ("10.16.3.80", None), ("::ffff:10.16.3.80", "2001:db8:5:6::7")):  # fmt: skip
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        asyncio.run(proxied({"type": "http", "client": (peer, 40000), "headers": headers}, None, None))
    assert seen == ["203.0.113.7", "203.0.113.7", "203.0.113.7", "10.16.3.80", "2001:db8:5:6::/64"]


def test_photo_names_become_safe_download_names(tmp_path: Path) -> None:
    path = _photo(tmp_path, "upload.jpg")
    downloads = _handlers(tmp_path / "out").predict({"path": path, "orig_name": "../My cat (1).HEIC"}, 0.5)[-1]
    assert Path(downloads[0]).name == "overlay-My_cat_1.jpg"


def test_a_real_network_goes_through_the_same_path(tmp_path: Path) -> None:
    """A random PetNet: real Prediction objects (pets, regions, probabilities) fit the panel and files."""
    torch.manual_seed(0)
    handlers = PetDemo(petnet.PetNet(PetNetConfig(image_size=NETWORK_SIZE)), output_dir=tmp_path)
    columns = handlers.predict_batch(example_paths()[:2], [0.5, 0.5])
    for overlay, verdict, details, _, downloads in zip(*columns, strict=True):
        assert Image.open(overlay).size == load_image(example_paths()[0]).size
        assert set(details) >= {"has_pet", "pet_score", "pets", "species", "breed"}
        assert (results_html.NO_PET in verdict) != details["has_pet"]
        if details["has_pet"]:
            names = {display_name(name) for pet in details["pets"] for name in pet["breed"]}
            assert names <= DISPLAY_NAMES and all(name in verdict for name in names)
        assert set(np.unique(np.asarray(Image.open(downloads[-1])))) <= {0, 1, 2}


def test_results_html_escapes_names() -> None:
    html = results_html.refusal("<script>.jpg", "This file is empty.")
    assert "<script>" not in html and "&lt;script&gt;.jpg" in html
    assert io.StringIO(results_html.legend()).read().count("rgb") == 3 + 3  # three classes + three more animals


def test_a_download_s_kind_is_told_by_its_name_and_file_type() -> None:
    from app.demo import _download_kind, _download_name

    assert [_download_name(kind, "my_cat") for kind in ("overlay", "cutout", "mask")] == [
        "overlay-my_cat.jpg", "cutout-my_cat.png", "mask-my_cat.png"]  # fmt: skip
    assert _download_kind("/r/overlay-my_cat.jpg") == "overlay" and _download_kind("/r/mask-a-b.png") == "mask"
    for foreign in ("/r/overlay-my_cat.png", "/r/mask-my_cat.jpg", "/r/photo-my_cat.png", "/r/mask.png", "/r/MASK-x.PNG"):
        assert _download_kind(foreign) is None, foreign
