"""The PetNet Gradio demo: one photo in; mask overlay, species, top-3 breeds and downloads out.

:func:`build_demo` returns the queued ``gr.Blocks`` without launching it (tests and ``app.py`` share
it); :func:`launch_options` holds the upload-size and file-access limits ``launch()`` must get.
The model is loaded once, when the demo is built. Uploads reach the handler as files and are
decoded by :func:`petnet.images.load_image` (pixel limit, EXIF rotation, odd modes), never by
Gradio, so every unusable file ends as one friendly ``gr.Error`` instead of a stack trace.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from petnet import InvalidImageError, PetNet, load_model
from petnet.images import load_image
from petnet.labels import MASK_CLASSES, display_name
from petnet.visualize import MASK_COLORS, overlay_mask, pet_cutout

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = PROJECT_ROOT / "assets" / "examples"
API_NAME = "predict"


@dataclass(frozen=True)
class DemoSettings:
    """Serving limits; the defaults suit a 2-core CPU machine such as a free Hugging Face Space."""

    concurrency_limit: int = 2
    """Predictions running at once; more would only make the CPU cores thrash."""
    max_queue_size: int = 64
    """Requests allowed to wait; beyond that a visitor is told the queue is full."""
    max_file_size: str = "10mb"
    """Largest accepted upload; :data:`petnet.images.MAX_IMAGE_PIXELS` also bounds decoded size."""
    default_opacity: float = 0.5
    screen_max_side: int = 1024
    """The overlay is for the screen: larger photos are shown (and re-blended) downscaled."""
    delete_cache: tuple[int, int] = (3600, 3600)
    """Every hour, delete uploads and result files older than an hour."""


@dataclass(frozen=True)
class ShownPrediction:
    """What the opacity slider needs to redraw the overlay without running the model again."""

    photo: Image.Image
    """The photo at screen size (see :attr:`DemoSettings.screen_max_side`)."""
    mask: np.ndarray
    """HxW mask at the size of :attr:`photo`: 0 = pet, 1 = background, 2 = boundary."""


class PetDemo:
    """The demo's event handlers around one loaded model; results are written to ``output_dir``."""

    def __init__(self, model: PetNet, settings: DemoSettings | None = None, output_dir: str | Path | None = None):
        self.model = model
        self.settings = settings or DemoSettings()
        # Gradio serves files from its own cache folder without copying them and deletes them with
        # `delete_cache`, so results written there neither pile up nor get duplicated.
        self.output_dir = Path(output_dir or gr.utils.get_upload_folder()) / "petnet"

    def predict(
        self, upload: str | Mapping[str, Any] | None, opacity: float
    ) -> tuple[Image.Image | None, str, dict[str, float] | None, str | None, str | None, ShownPrediction | None]:
        """Overlay, species text, top-3 breeds {display name: probability}, cut-out PNG path, mask
        PNG path (values 0/1/2) and the state for :meth:`redraw`; all empty when there is no image.

        ``upload`` is a file path or Gradio's file payload (the event runs with ``preprocess=False``).
        Raises ``gr.Error`` with a message for people when the file is not a usable photo.
        """
        located = _upload_location(upload)
        if located is None:
            return None, "", None, None, None, None
        path, shown_name = located
        try:
            photo = load_image(path)
        except InvalidImageError as error:
            message = str(error).replace(path, shown_name)
            if "try again" not in message:
                message += " Please try another photo (JPEG, PNG or WebP)."
            log.info("Refused upload %s: %s", shown_name, error)
            raise gr.Error(message, title="Not a usable photo", print_exception=False) from error
        prediction = self.model.predict(photo)
        mask = prediction.full_mask.numpy()
        shown = _for_screen(photo, mask, self.settings.screen_max_side)
        breeds = {
            display_name(name): confidence
            for name, confidence in zip(prediction.breed, prediction.breed_confidences, strict=True)
        }
        return (
            self.redraw(shown, opacity),
            f"{prediction.species.capitalize()} · {prediction.species_confidence:.0%} sure",
            breeds,
            self._save_png(pet_cutout(photo, mask), "pet_cutout.png"),
            self._save_png(Image.fromarray(mask), "pet_mask.png"),
            shown,
        )

    @staticmethod
    def redraw(shown: ShownPrediction | None, opacity: float) -> Image.Image | None:
        """The cached prediction's overlay at a new mask opacity (0..1); no model call."""
        if shown is None:
            return None
        return overlay_mask(shown.photo, shown.mask, float(opacity))

    def _save_png(self, image: Image.Image, name: str) -> str:
        """Write ``image`` as ``<output_dir>/<content hash>/<name>``; same content, same file."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=False)
        data = buffer.getvalue()
        path = self.output_dir / hashlib.sha256(data).hexdigest()[:32] / name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{name}.{os.getpid()}.{id(data)}")
            partial.write_bytes(data)
            partial.replace(path)  # atomic: a concurrent request never serves a half-written file
        return str(path)


def _upload_location(upload: str | Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(server path, name to show the user) of an upload, or None when the input was cleared."""
    if upload is None:
        return None
    if isinstance(upload, Mapping):
        path = upload.get("path")
        if not path:
            raise gr.Error("The upload did not arrive. Please add the photo again.")
        return str(path), str(upload.get("orig_name") or Path(path).name)
    return str(upload), Path(upload).name


def _for_screen(photo: Image.Image, mask: np.ndarray, max_side: int) -> ShownPrediction:
    """Photo and mask downscaled to at most ``max_side`` pixels: a session's state stays small."""
    if max(photo.size) <= max_side:
        return ShownPrediction(photo=photo, mask=mask)
    small = photo.copy()
    small.thumbnail((max_side, max_side))
    return ShownPrediction(
        photo=small, mask=np.asarray(Image.fromarray(mask).resize(small.size, Image.Resampling.NEAREST))
    )


def _weights_description(model: PetNet) -> str:
    """``model.weights_source`` for people, e.g. ``bundled: /abs/assets/model`` -> ``bundled (assets/model)``."""
    kind, _, where = model.weights_source.replace(f"{PROJECT_ROOT}{os.sep}", "").partition(": ")
    return f"{kind} ({where})" if where else kind


def _legend_html() -> str:
    swatches = (
        f'<span style="display:inline-block;width:0.8em;height:0.8em;border-radius:2px;'
        f'background:rgb{color};margin:0 0.3em 0 0.8em"></span>{name}'
        for name, color in MASK_COLORS.items()
    )
    values = ", ".join(f"{value} = {name}" for value, name in enumerate(MASK_CLASSES))
    return f'<div style="font-size:0.9em">Mask:{"".join(swatches)}<br>Mask PNG values: {values}</div>'


def example_paths() -> list[str]:
    """The bundled example photos, sorted by name."""
    return sorted(str(path) for path in EXAMPLES_DIR.glob("*.jpg"))


def build_demo(model: PetNet | None = None, settings: DemoSettings | None = None) -> gr.Blocks:
    """The demo's interface with its queue configured; loads the model (once) unless given one."""
    settings = settings or DemoSettings()
    handlers = PetDemo(model or load_model(), settings)
    with gr.Blocks(title="PetNet", delete_cache=settings.delete_cache) as demo:
        gr.Markdown(
            "# PetNet\nCat or dog, its top-3 breeds and where the pet is, from one photo.  \n"
            f"<small>Weights: {_weights_description(handlers.model)}</small>"
        )
        shown = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column():
                photo = gr.Image(
                    label="Your pet photo",
                    elem_id="photo",
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard", "webcam"],
                    height=360,
                )
                gr.Examples(
                    examples=example_paths(),
                    inputs=photo,
                    label="Or try one of these (Oxford-IIIT Pet test photos)",
                    cache_examples=False,
                    examples_per_page=6,
                )
            with gr.Column():
                overlay = gr.Image(label="Mask overlay", type="pil", height=360, interactive=False, elem_id="overlay")
                opacity = gr.Slider(
                    0.0, 1.0, value=settings.default_opacity, step=0.05, label="Mask opacity", elem_id="opacity"
                )
                gr.HTML(_legend_html())
        with gr.Row(equal_height=False):
            with gr.Column():
                species = gr.Textbox(label="Species", interactive=False, elem_id="species")
                breeds = gr.Label(label="Top-3 breeds", num_top_classes=3, elem_id="breeds")
            cutout = gr.Image(
                label="Cut-out (transparent PNG)", type="filepath", format="png", height=240, interactive=False
            )
            mask_file = gr.File(label="Mask PNG", interactive=False)

        photo.change(
            handlers.predict,
            inputs=[photo, opacity],
            outputs=[overlay, species, breeds, cutout, mask_file, shown],
            api_name=API_NAME,
            preprocess=False,  # hand the uploaded file to petnet.images.load_image undecoded
            trigger_mode="always_last",
        )
        opacity.change(
            handlers.redraw,
            inputs=[shown, opacity],
            outputs=overlay,
            api_visibility="private",
            trigger_mode="always_last",
            show_progress="hidden",
        )
    demo.queue(max_size=settings.max_queue_size, default_concurrency_limit=settings.concurrency_limit)
    return demo


def launch_options(settings: DemoSettings | None = None) -> dict[str, Any]:
    """Keyword arguments for ``demo.launch()``: upload size limit, no file access beyond the examples.

    Host and port come from Gradio's own ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``
    (default 127.0.0.1:7860), which is also how Hugging Face Spaces configures it.
    """
    settings = settings or DemoSettings()
    return {
        "max_file_size": settings.max_file_size,
        "allowed_paths": [str(EXAMPLES_DIR)],
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="amber"),
    }
