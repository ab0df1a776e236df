"""Turn whatever a user hands us into a clean RGB ``PIL.Image``, or raise ``InvalidImageError``.

Real photos arrive rotated by EXIF tags, as grayscale, palette, RGBA, CMYK or 16-bit PNGs,
animated GIFs, truncated downloads or renamed text files; every one of them ends here either as
an upright 8-bit RGB image or as one exception type with a message a person can act on.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from petnet.errors import InvalidImageError

pillow_heif.register_heif_opener()  # iPhone photos (HEIC/HEIF) open like any other Pillow format

MAX_IMAGE_PIXELS = 40_000_000
"""Largest accepted image (width x height): about a 40-megapixel photo. Larger inputs are refused
before decoding so a small compressed file cannot expand into gigabytes (decompression bomb)."""

READABLE_FORMATS = "JPEG, PNG, WebP, HEIC, AVIF, GIF, BMP or TIFF"
"""The photo formats people send, all read by Pillow (HEIC/HEIF through pillow-heif)."""

EMPTY_FILE = "This file is empty."
NOT_A_PICTURE = f"This file isn't a picture we can read ({READABLE_FORMATS})."
PARTLY_THERE = "This photo is only partly there; try saving it again."
TOO_LARGE = f"This picture is too large (at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels)."
"""The messages of :class:`InvalidImageError` for unusable files: plain words a visitor can act on
(the demo shows them as they are), one limit per message, no decoder jargon."""

_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"II*\0", b"MM\0*")
"""Leading bytes of formats whose files, when Pillow cannot finish them, were cut short."""

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray


def load_image(source: ImageInput) -> Image.Image:
    """Read ``source`` (path, encoded bytes, PIL image or HxW[xC] uint8 array) as upright RGB."""
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, Image.Image):
        return _to_rgb(_check_size(source))
    if isinstance(source, (bytes, bytearray)):
        return _decode(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InvalidImageError(f"No image file at {path}.")
        return _decode(path.read_bytes())
    raise InvalidImageError(
        f"Unsupported image input of type {type(source).__name__}; "
        "pass a file path, encoded bytes, a PIL image or an HxWx3 uint8 array."
    )


def _decode(data: bytes) -> Image.Image:
    """Decode an encoded file; every failure becomes one of the plain messages above."""
    if not data:
        raise InvalidImageError(EMPTY_FILE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                _check_size(image)
                image.seek(0)  # first frame of animated GIF/WebP/TIFF
                image.load()
                upright = ImageOps.exif_transpose(image)
                return _to_rgb(upright)
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidImageError(TOO_LARGE) from error
    except UnidentifiedImageError as error:
        raise InvalidImageError(PARTLY_THERE if _is_cut_short(data) else NOT_A_PICTURE) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:  # the format was recognised, its data is not whole
        raise InvalidImageError(PARTLY_THERE) from error


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


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited onto white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        scale = 1.0 if image.mode == "F" else 257.0  # 16-bit range 0..65535 -> 0..255
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
