"""Turn whatever a user hands us into a clean RGB ``PIL.Image``, or raise ``InvalidImageError``.

Real photos arrive rotated by EXIF tags, as grayscale, palette, RGBA, CMYK or 16-bit PNGs,
animated GIFs, truncated downloads or renamed text files; every one of them ends here either as
an upright 8-bit RGB image or as one exception type with a message a person can act on.
"""

from __future__ import annotations

import io
import math
import os
import threading
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from petnet.errors import InvalidImageError
from petnet.memory import return_freed_memory

pillow_heif.register_heif_opener()  # iPhone photos (HEIC/HEIF) open like any other Pillow format

MAX_IMAGE_PIXELS = 64_000_000
"""Largest accepted image (width x height): 64 megapixels, above today's 48-50 MP phone photos
(8160x6120). Larger inputs are refused from their header, before decoding, so a small compressed
file cannot expand into gigabytes (decompression bomb)."""
MAX_SIDE = 2048
"""Longest side an image is read at, so masks, boxes and overlays are at most this size. It leaves the
closer look (:mod:`petnet.inference.decoding`) 8x the network's input size to crop a small pet from.
A larger JPEG is decoded reduced (DCT scaling, ``Image.draft``, to the nearest scale at least this
size): a 50 MP phone photo is decoded at 12.5 MP (50 MB), not 50 (200 MB), and its working size
may differ by a pixel on the short side from a whole decode's. Other formats have no reduced
decoding and are decoded whole, then reduced (``Image.thumbnail``)."""
FULL_SIZE_DECODE_PIXELS = 16_000_000
"""Decodes above this many pixels (after JPEG's reduced decoding, which a JPEG of several scans does
not save: it buffers the whole image's coefficients) run one at a time in a process, each giving its
memory back when done: a 64 MP PNG takes 300-600 MB while it is decoded, and the demo's two batches
or the batch tool's reading threads decoding such files side by side, or one after another in
different threads' malloc arenas, would add them up."""
_full_size_decodes = threading.Lock()


@dataclass(frozen=True)
class PhotoFormat:
    """One photo format we read, in the three spellings that name it."""

    name: str
    """As people know it, in messages."""
    decoders: tuple[str, ...]
    """Pillow's names for its decoders (HEIF through pillow-heif; a phone's MPO is opened by JPEG's)."""
    suffixes: tuple[str, ...]
    """File name endings a folder is searched for."""


PHOTO_FORMATS = (
    PhotoFormat("JPEG", ("JPEG",), (".jpg", ".jpeg")),
    PhotoFormat("PNG", ("PNG",), (".png",)),
    PhotoFormat("WebP", ("WEBP",), (".webp",)),
    PhotoFormat("HEIC", ("HEIF",), (".heic", ".heif")),
    PhotoFormat("AVIF", ("AVIF",), (".avif",)),
    PhotoFormat("GIF", ("GIF",), (".gif",)),
    PhotoFormat("BMP", ("BMP",), (".bmp",)),
    PhotoFormat("TIFF", ("TIFF",), (".tif", ".tiff")),
)
"""The photo formats people send, the only ones read. Pillow knows some 45 formats and would hand a
stranger's EPS file to Ghostscript where it is installed: a file in any other format is refused as
not a picture, unopened (``Image.open``'s ``formats``)."""
READABLE_FORMATS = ", ".join(kind.name for kind in PHOTO_FORMATS[:-1]) + f" or {PHOTO_FORMATS[-1].name}"
PILLOW_FORMATS = tuple(decoder for kind in PHOTO_FORMATS for decoder in kind.decoders)
IMAGE_SUFFIXES = frozenset(suffix for kind in PHOTO_FORMATS for suffix in kind.suffixes)
"""Files picked up from a folder (a file named explicitly is tried whatever its suffix)."""

EMPTY_FILE = "This file is empty."
UNREADABLE = "This file could not be read."
NOT_A_PICTURE = f"This file isn't a picture we can read ({READABLE_FORMATS})."
PARTLY_THERE = "This photo is only partly there; try saving it again."
TOO_LARGE = f"This picture is too large (at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels)."
"""The messages of :class:`InvalidImageError` for unusable files: plain words a visitor can act on
(the demo shows them as they are), one limit per message, no decoder jargon."""

_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"II*\0", b"MM\0*")
"""Leading bytes of formats whose files, when Pillow cannot finish them, were cut short."""

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray


def load_image(source: ImageInput, max_side: int | None = MAX_SIDE) -> Image.Image:
    """Read ``source`` (path, encoded bytes, PIL image or HxW[xC] uint8 array) as upright RGB, at
    most ``max_side`` pixels on its longer side (``None``: as large as it is)."""
    if isinstance(source, np.ndarray):
        return _fit(_from_array(source), max_side)
    if isinstance(source, Image.Image):
        return _fit(_to_rgb(_check_size(source)), max_side)
    if isinstance(source, (bytes, bytearray)):
        return _decode(bytes(source), max_side)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InvalidImageError(f"No image file at {path}.")
        try:
            data = path.read_bytes()
        except OSError as error:  # permissions, a device or /proc file, an I/O error: one plain message
            raise InvalidImageError(UNREADABLE) from error
        return _decode(data, max_side)
    raise InvalidImageError(
        f"Unsupported image input of type {type(source).__name__}; "
        "pass a file path, encoded bytes, a PIL image or an HxWx3 uint8 array."
    )


def _decode(data: bytes, max_side: int | None) -> Image.Image:
    """Decode an encoded file, reduced to ``max_side`` while decoding where the format allows (JPEG);
    every failure becomes one of the plain messages above."""
    if not data:
        raise InvalidImageError(EMPTY_FILE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as image:
                _check_size(image)
                image.seek(0)  # first frame of animated GIF/WebP/TIFF
                large = _plan_decoding(image, data, max_side) > FULL_SIZE_DECODE_PIXELS
                with _full_size_decodes if large else nullcontext():
                    try:
                        if max_side is not None and max(image.size) > max_side:
                            image.thumbnail((max_side, max_side))  # decodes, reduces, resamples
                        image.load()
                        return _to_rgb(ImageOps.exif_transpose(image))  # a copy: the file's image can go
                    finally:
                        if large:  # the full-size raster goes with the file, whether it was read or not
                            image.close()
                            return_freed_memory()
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidImageError(TOO_LARGE) from error
    except UnidentifiedImageError as error:
        raise InvalidImageError(PARTLY_THERE if _is_cut_short(data) else NOT_A_PICTURE) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:  # the format was recognised, its data is not whole
        raise InvalidImageError(PARTLY_THERE) from error


def _plan_decoding(image: Image.Image, data: bytes, max_side: int | None) -> int:
    """Set a large photo to decode reduced where it can, and return the pixels it holds while it is
    decoded. A JPEG (or a phone's MPO) larger than ``max_side`` decodes at the smallest DCT scale
    still at least its working size (``Image.draft``, halving up to three times), unless it holds
    more than one scan (progressive, or its colours scanned apart): libjpeg then buffers the whole
    image's coefficients, so it counts at its full size, as every other format does. HEIF's draft is
    not asked: it would pick an embedded thumbnail, decoded there and then, outside the lock of
    large decodes."""
    width, height = image.size
    if max_side is not None and image.format in ("JPEG", "MPO") and max(width, height) > max_side:
        scale = max_side / max(width, height)
        image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))  # sets the scale, decodes nothing
        if not _several_scans(data):
            width, height = image.size
    return width * height


def _several_scans(jpeg: bytes) -> bool:
    """Whether libjpeg decodes a JPEG through a buffer of the whole image's coefficients: by its own
    rule (``jdinput.c``), when the image is progressive or its first scan holds fewer colour
    components than the frame. The segments before the first scan are walked (an EXIF thumbnail
    inside one is skipped with it); anything else there (stray bytes, a cut-off file) counts as
    several scans, the safe side."""
    at, components = 2, None  # after the start-of-image marker
    while at + 4 <= len(jpeg):
        if jpeg[at] != 0xFF:
            return True
        marker = jpeg[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in (0xC2, 0xC6, 0xCA, 0xCE):  # progressive frames
            return True
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and at + 10 <= len(jpeg):
            components = jpeg[at + 9]  # a frame: length, precision, height, width, then Nf
        if marker == 0xDA:
            return components is None or at + 5 > len(jpeg) or jpeg[at + 4] < components  # Ns < Nf
        at += 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big")
    return True


def _is_cut_short(data: bytes) -> bool:
    """Whether unidentifiable ``data`` starts like a known photo format (a truncated download)."""
    is_heif_or_avif = data[4:8] == b"ftyp"
    is_webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return is_heif_or_avif or is_webp or data.startswith(_IMAGE_SIGNATURES)


def _check_size(image: Image.Image) -> Image.Image:
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImageError("The image is empty (zero width or height).")
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidImageError(TOO_LARGE)
    return image


def _fit(image: Image.Image, max_side: int | None) -> Image.Image:
    """``image`` itself, or a copy at most ``max_side`` pixels on its longer side."""
    if max_side is None or max(image.size) <= max_side:
        return image
    small = image.copy()
    small.thumbnail((max_side, max_side))
    return small


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited onto white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        # 16-bit range 0..65535 -> 0..255; a 32-bit "I" image (a TIFF, say) may hold 8-bit values,
        # which divided by 257 would come out black
        sixteen_bit = image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255)
        scale = 257.0 if sixteen_bit else 1.0
        image = Image.fromarray(np.clip(values / scale, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidImageError(f"Expected an HxW, HxWx3 or HxWx4 array, got shape {array.shape}.")
    if array.dtype != np.uint8:
        raise InvalidImageError(f"Expected a uint8 array (values 0..255), got {array.dtype}.")
    return _to_rgb(_check_size(Image.fromarray(np.ascontiguousarray(array))))
