"""Every awkward input ends as an upright 8-bit RGB image or as InvalidImageError."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import png_header_only
from PIL import Image, JpegImagePlugin

from petnet import images
from petnet.config import PetNetConfig
from petnet.errors import InvalidImageError
from petnet.images import (
    EMPTY_FILE,
    MAX_IMAGE_PIXELS,
    MAX_SIDE,
    NOT_A_PICTURE,
    PARTLY_THERE,
    PHOTO_FORMATS,
    READABLE_FORMATS,
    TOO_LARGE,
    UNREADABLE,
    PhotoFormat,
    load_image,
)
from petnet.models.network import PetNet


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model() -> PetNet:
    torch.manual_seed(0)
    return PetNet(PetNetConfig(image_size=64))


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(b"definitely not an image", id="text-bytes"),
        pytest.param(b"", id="empty-bytes"),
        pytest.param(_encode(Image.new("RGB", (64, 64), "red"), "JPEG")[:300], id="truncated-jpeg"),
        pytest.param(png_header_only(20_000, 20_000), id="huge-png-header"),
        pytest.param(np.zeros((8, 8, 3), dtype=np.float32), id="float-array"),
        pytest.param(np.zeros((8, 8, 5), dtype=np.uint8), id="five-channel-array"),
        pytest.param(np.zeros(8, dtype=np.uint8), id="1d-array"),
        pytest.param(np.zeros((0, 8, 3), dtype=np.uint8), id="empty-array"),
        pytest.param(42, id="int"),
        pytest.param("/no/such/photo.jpg", id="missing-path"),
    ],
)
def test_unusable_inputs_raise_invalid_image_error(source: object) -> None:
    with pytest.raises(InvalidImageError):
        load_image(source)


@pytest.mark.parametrize("size", [(20_000, 20_000), (10_000, 7_000)], ids=["over-pillow-limit", "over-petnet-limit"])
def test_huge_image_is_refused_before_decoding_with_one_limit(size: tuple[int, int]) -> None:
    assert size[0] * size[1] > MAX_IMAGE_PIXELS
    with pytest.raises(InvalidImageError) as raised:
        load_image(png_header_only(*size))
    assert str(raised.value) == "This picture is too large (at most 64 megapixels)." == TOO_LARGE


def test_a_large_jpeg_is_decoded_reduced_to_the_nearest_scale_at_least_the_working_size(monkeypatch) -> None:
    """A 6000x4000 photo is decoded at half its size (3000x2000, a quarter of the memory), which
    still covers the 2048x1365 it is read at."""
    decoded: list[tuple[int, int]] = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spied(image, mode, size):
        answer = draft(image, mode, size)
        decoded.append(image.size)
        return answer

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spied)
    image = load_image(_encode(Image.new("RGB", (6000, 4000), (90, 120, 30)), "JPEG"))
    assert decoded[0] == (3000, 2000) and image.size == (MAX_SIDE, 1365)


@pytest.mark.parametrize(
    "fmt, options, pixels",
    [("JPEG", {}, 3000 * 2000), ("JPEG", {"progressive": True}, 6000 * 4000), ("PNG", {}, 6000 * 4000), ("HEIF", {}, 6000 * 4000)],
    ids=["jpeg", "progressive-jpeg", "png", "heif"],
)
def test_a_decode_counts_the_pixels_it_holds(fmt: str, options: dict, pixels: int, monkeypatch) -> None:
    """Only a baseline JPEG holds less than its header says while decoded; a progressive one buffers
    every coefficient. HEIF's draft, which would decode an embedded thumbnail there and then, is not
    asked."""
    data = _encode(Image.new("RGB", (6000, 4000), (90, 120, 30)), fmt, **options)
    with Image.open(io.BytesIO(data)) as image:
        if fmt != "JPEG":
            monkeypatch.setattr(type(image), "draft", lambda *_: pytest.fail(f"draft asked of {fmt}"))
        assert images._plan_decoding(image, data, MAX_SIDE) == pixels


def test_a_jpeg_of_several_scans_is_told_from_one_with_a_thumbnail_or_a_second_image() -> None:
    """libjpeg buffers the whole image of a progressive JPEG or one whose first scan holds fewer
    colours than the frame (which Pillow does not flag); an EXIF thumbnail before the image and an
    MPO's second image after it change nothing; stray bytes before the first scan count as several."""
    baseline = _encode(Image.new("RGB", (64, 48), (90, 120, 30)), "JPEG")
    thumbnail = b"Exif\0\0" + baseline
    with_thumbnail = baseline[:2] + b"\xff\xe1" + (len(thumbnail) + 2).to_bytes(2, "big") + thumbnail + baseline[2:]
    frames = io.BytesIO()
    Image.new("RGB", (64, 48)).save(frames, "MPO", save_all=True, append_images=[Image.new("RGB", (64, 48))])
    scan = baseline.index(b"\xff\xda")
    colours_apart = baseline[: scan + 4] + b"\x01" + baseline[scan + 5 :]  # the first scan: one colour of three
    stray = baseline[:2] + b"\x00" + baseline[2:]
    progressive = _encode(Image.new("RGB", (64, 48)), "JPEG", progressive=True)
    several = [images._several_scans(data) for data in (baseline, with_thumbnail, frames.getvalue(), colours_apart, stray, progressive)]
    assert several == [False, False, False, True, True, True]


def test_a_large_decode_that_fails_gives_its_memory_back(monkeypatch) -> None:
    monkeypatch.setattr(images, "FULL_SIZE_DECODE_PIXELS", 1_000)  # the truncated PNG is 96x64
    trims = []
    monkeypatch.setattr(images, "return_freed_memory", lambda: trims.append(images._full_size_decodes.locked()))
    with pytest.raises(InvalidImageError, match="only partly there"):
        load_image(_truncated("PNG"))
    assert trims == [True]  # once, before the next large decode may start


@pytest.mark.parametrize("threshold, most_at_once", [(10_000, 1), (10**9, 4)], ids=["large", "small"])
def test_large_decodes_run_one_at_a_time(threshold: int, most_at_once: int, monkeypatch) -> None:
    """Four threads reading photos above ``FULL_SIZE_DECODE_PIXELS`` decode them one after another
    (each full-size decode costs hundreds of megabytes); smaller ones side by side."""
    monkeypatch.setattr(images, "FULL_SIZE_DECODE_PIXELS", threshold)
    data = _encode(Image.new("RGB", (160, 120), (90, 120, 30)), "PNG")
    at_once, most, lock, together = 0, 0, threading.Lock(), threading.Barrier(4, timeout=2)
    to_rgb = images._to_rgb

    def counted(image: Image.Image) -> Image.Image:
        nonlocal at_once, most
        with lock:
            at_once += 1
            most = max(most, at_once)
        try:
            together.wait()  # all four meet here only if nothing holds them apart
        except threading.BrokenBarrierError:
            pass
        with lock:
            at_once -= 1
        return to_rgb(image)

    monkeypatch.setattr(images, "_to_rgb", counted)
    with ThreadPoolExecutor(4) as pool:
        assert all(image.size == (160, 120) for image in pool.map(load_image, [data] * 4))
    assert most == most_at_once


def _truncated(fmt: str) -> bytes:
    data = _encode(Image.effect_noise((96, 64), 60).convert("RGB"), fmt)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "This file is empty.", id="empty"),
        pytest.param(b"hello, this is text", NOT_A_PICTURE, id="text"),
        pytest.param(b"%PDF-1.7\n" + bytes(200), NOT_A_PICTURE, id="pdf"),
        *(pytest.param(_truncated(fmt), "This photo is only partly there; try saving it again.", id=f"truncated-{fmt}")
          for fmt in ("JPEG", "PNG", "WEBP", "HEIF", "AVIF")),
    ],
)  # fmt: skip
def test_unusable_files_get_plain_messages(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageError) as raised:
        load_image(data)
    assert str(raised.value) == message


def test_plain_messages_carry_no_decoder_jargon() -> None:
    assert "HEIC" in NOT_A_PICTURE and "WebP" in NOT_A_PICTURE and "JPEG" in NOT_A_PICTURE
    for message in (EMPTY_FILE, NOT_A_PICTURE, PARTLY_THERE, TOO_LARGE):
        assert not any(
            word in message.lower() for word in ("identify", "truncated", "decompression", "pillow", "bytes")
        )


def test_text_file_with_image_suffix(tmp_path: Path) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_text("hello")
    with pytest.raises(InvalidImageError, match="isn't a picture we can read"):
        load_image(fake)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "WEBP"])
def test_phone_and_web_formats_are_read(fmt: str, tmp_path: Path) -> None:
    """iPhone photos (HEIC), AVIF and WebP, from bytes and from a file as the CLI reads them."""
    original = Image.new("RGB", (48, 32), (200, 30, 30))
    data = _encode(original, fmt, quality=95)
    path = tmp_path / f"photo.{'heic' if fmt == 'HEIF' else fmt.lower()}"
    path.write_bytes(data)
    for source in (data, path):
        image = load_image(source)
        red, green, blue = image.getpixel((24, 16))
        assert image.mode == "RGB" and image.size == (48, 32) and red > 170 and green < 70 and blue < 70


@pytest.mark.parametrize("kind", PHOTO_FORMATS, ids=lambda kind: kind.name)
def test_every_photo_format_is_read_from_every_suffix_a_folder_is_searched_for(kind: PhotoFormat, tmp_path: Path) -> None:
    """The one table of formats holds together: each suffix is written by one of its format's
    decoders and read back, so the folder search never picks up a file the reader then refuses."""
    original = Image.new("RGB", (24, 16), (200, 30, 30))
    for suffix in kind.suffixes:
        path = tmp_path / f"photo{suffix}"
        original.save(path)
        assert Image.registered_extensions()[suffix] in kind.decoders and kind.name in READABLE_FORMATS
        assert load_image(path).size == (24, 16)


def test_invalid_image_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        load_image(b"nope")


def test_one_pixel_image_is_predicted(model: PetNet) -> None:
    image = load_image(Image.new("RGB", (1, 1), (200, 100, 50)))
    assert image.size == (1, 1)
    prediction = model.predict(image)
    assert prediction.species in {"cat", "dog"} and tuple(prediction.full_mask.shape) == (1, 1)


def test_grayscale_becomes_equal_channels() -> None:
    image = load_image(Image.new("L", (5, 4), 77))
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (77, 77, 77)


def test_rgba_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 255, 0))
    image = load_image(_encode(rgba, "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((1, 1)) == (255, 0, 0)


def test_palette_with_transparency() -> None:
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    image = load_image(_encode(palette, "PNG", transparency=0))
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((2, 2)) == (0, 200, 0)


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red
    image = load_image(_encode(cmyk, "JPEG", quality=95))
    red, green, blue = image.getpixel((8, 8))
    assert image.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_sixteen_bit_grayscale_png_is_scaled_to_eight_bits() -> None:
    values = np.array([[0, 32768], [65535, 65535]], dtype=np.uint16)
    sixteen_bit = Image.fromarray(values)
    assert sixteen_bit.mode.startswith("I;16")
    image = load_image(_encode(sixteen_bit, "PNG"))
    pixels = np.asarray(image)
    assert image.mode == "RGB"
    assert pixels[0, 0, 0] == 0 and 126 <= pixels[0, 1, 0] <= 128 and pixels[1, 0, 0] == 255


@pytest.mark.parametrize("values", [np.array([[0, 128], [255, 255]]), np.array([[0, 32896], [65535, 65535]])])
def test_thirty_two_bit_tiff_is_scaled_by_its_range(values: np.ndarray) -> None:
    """A 32-bit integer ("I") TIFF holding 8-bit values stays as bright as it is (it came out black,
    divided as 16-bit data), one holding 16-bit values is scaled like a 16-bit PNG."""
    image = load_image(_encode(Image.fromarray(values.astype(np.int32), mode="I"), "TIFF"))
    pixels = np.asarray(image)
    assert pixels[0, 0, 0] == 0 and 127 <= pixels[0, 1, 0] <= 128 and pixels[1, 0, 0] == 255


@pytest.mark.parametrize("fmt", ["ICO", "TGA", "PPM"])
def test_formats_beyond_the_photo_formats_are_not_opened(fmt: str) -> None:
    """Pillow's other decoders are never offered a stranger's file (its EPS one runs Ghostscript)."""
    with pytest.raises(InvalidImageError, match="isn't a picture we can read"):
        load_image(_encode(Image.new("RGB", (16, 16), (200, 30, 30)), fmt))


def test_postscript_is_not_handed_to_ghostscript(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import EpsImagePlugin

    def no_ghostscript(*args: object, **kwargs: object) -> None:
        raise AssertionError("an EPS file reached Pillow's Ghostscript decoder")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n0 0 moveto 16 16 lineto stroke\nshowpage\n"
    with pytest.raises(InvalidImageError, match="isn't a picture we can read"):
        load_image(eps)


def test_a_phones_multi_picture_jpeg_is_read() -> None:
    image = load_image(_encode(Image.new("RGB", (16, 16), (200, 30, 30)), "MPO"))
    assert image.size == (16, 16) and image.getpixel((8, 8))[0] > 170


def test_exif_orientation_is_applied() -> None:
    """Stored 40x20 with red left / blue right; Orientation=6 (rotate 90 deg clockwise to show)."""
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = load_image(_encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert image.size == (20, 40)
    top, bottom = image.getpixel((10, 5)), image.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60, "the left (red) half ends up on top"
    assert bottom[2] > 200 and bottom[0] < 60


def test_a_50_megapixel_phone_photo_is_read_reduced_and_upright() -> None:
    """8160x6120 (a 50 MP phone camera), stored on its side with Orientation=6: decoded at most
    MAX_SIDE on its longer side (JPEG draft scaling, then a resample), rotated upright."""
    stored = Image.new("RGB", (8160, 6120), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 4080, 6120))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(stored, "JPEG", quality=80, exif=exif.tobytes())
    del stored
    image = load_image(data)
    assert image.size == (MAX_SIDE * 6120 // 8160, MAX_SIDE)
    top, bottom = image.getpixel((700, 100)), image.getpixel((700, MAX_SIDE - 100))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
    assert load_image(_encode(Image.new("RGB", (3000, 1000)), "PNG"), max_side=None).size == (3000, 1000)
    assert load_image(Image.new("RGB", (3000, 1000))).size == (MAX_SIDE, round(MAX_SIDE / 3))
    assert load_image(np.zeros((100, 4100), np.uint8)).size == (MAX_SIDE, 50)


def test_a_file_that_cannot_be_read_is_one_plain_message() -> None:
    """A device or /proc file: ``is_file`` says yes, reading fails (EIO); never an OSError upward."""
    with pytest.raises(InvalidImageError) as raised:
        load_image("/proc/self/mem")
    assert str(raised.value) == UNREADABLE


def test_animated_gif_gives_the_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = load_image(data)
    assert image.mode == "RGB" and image.getpixel((4, 4)) == (255, 0, 0)


@pytest.mark.parametrize(
    ("array", "pixel"),
    [
        (np.full((3, 4), 9, dtype=np.uint8), (9, 9, 9)),
        (np.full((3, 4, 1), 9, dtype=np.uint8), (9, 9, 9)),
        (np.dstack([np.full((3, 4), c, dtype=np.uint8) for c in (1, 2, 3)]), (1, 2, 3)),
        (np.dstack([np.full((3, 4), c, dtype=np.uint8) for c in (1, 2, 3, 255)]), (1, 2, 3)),
    ],
)
def test_uint8_arrays(array: np.ndarray, pixel: tuple[int, int, int]) -> None:
    image = load_image(array)
    assert image.mode == "RGB" and image.size == (4, 3) and image.getpixel((0, 0)) == pixel


def test_model_predicts_awkward_inputs_and_refuses_bad_ones(model: PetNet) -> None:
    for source in (_encode(Image.new("CMYK", (30, 20)), "JPEG"), Image.new("LA", (10, 12)), np.zeros((5, 7), np.uint8)):
        assert model.predict(source).species in {"cat", "dog"}
    with pytest.raises(InvalidImageError):
        model.predict(b"not an image")
    with pytest.raises(InvalidImageError):
        model.predict_batch([Image.new("RGB", (8, 8)), b"not an image"])
