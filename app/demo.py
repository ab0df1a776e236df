"""The PetNet Gradio demo: one photo in; verdict per animal, mask overlay, cut-out and downloads out.

:func:`build_demo` returns the queued ``gr.Blocks`` without launching it (tests and ``app.py`` share
it); :func:`launch_options` holds the upload-size and file-access limits ``launch()`` must get.
The model is loaded once, when the demo is built. Uploads reach the handler as files and are
decoded by :func:`petnet.images.load_image` (pixel limit, EXIF rotation, HEIC, odd modes), never by
Gradio. Concurrent visitors' photos are batched through ``PetNet.predict_batch`` (faster per image
on a CPU), so an unusable file cannot raise: it ends as a plain message in the results panel, for
that visitor only, and stays on screen until the next photo.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from app import results_html
from petnet import InvalidImageError, PetNet, load_model
from petnet.images import load_image
from petnet.inference import Prediction
from petnet.paths import EXAMPLES_DIR, PROJECT_ROOT
from petnet.visualize import animal_map, on_checkerboard, overlay_mask, palette_mask, pet_cutout

log = logging.getLogger(__name__)

API_NAME = "predict"
VIEW_FILE = "view.npz"
"""Screen-size photo, mask and animal map of one prediction, stored beside its downloads so the
opacity slider redraws without the model and without per-session state (batched events cannot
write ``gr.State``)."""
PREVIEW_FILE = "cutout_preview.jpg"
"""The cut-out over a checkerboard, as shown in the page (written here as a JPEG: Gradio would
otherwise encode and hash a PIL image on every request)."""
MISSING_UPLOAD = "The upload did not arrive. Please add the photo again."


@dataclass(frozen=True)
class DemoSettings:
    """Serving limits; the defaults suit a 2-core CPU machine such as a free Hugging Face Space."""

    concurrency_limit: int = 2
    """Batches running at once: one works on the network while the other decodes, draws and encodes;
    more would only make the CPU cores thrash."""
    max_batch_size: int = 4
    """Photos waiting in the queue that one network pass takes together (1 = no batching). Gradio
    never waits to fill a batch, so a lone visitor is served at once; 2-4 photos per pass cost
    about 0.7x the time per photo of one-by-one passes on a 2-core CPU."""
    max_queue_size: int = 64
    """Requests allowed to wait; beyond that a visitor is told the queue is full."""
    max_file_size: str = "10mb"
    """Largest accepted upload; :data:`petnet.images.MAX_IMAGE_PIXELS` also bounds decoded size."""
    default_opacity: float = 0.5
    screen_max_side: int = 1024
    """The overlay is for the screen: larger photos are shown (and re-blended) downscaled."""
    delete_cache: tuple[int, int] = (3600, 3600)
    """Every hour, delete uploads and result files older than an hour."""

    @property
    def torch_threads(self) -> int:
        """Intra-op threads per batch, so that the batches running at once use each core once: on 2
        cores two one-thread batches served 10.9-11.1 requests/s in the 20-client load test, two
        two-thread batches (four threads fighting over two cores) 9.6."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, cores // self.concurrency_limit)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> DemoSettings:
        """Defaults, with ``PETNET_MAX_BATCH_SIZE`` overriding the batch size (the load test's A/B switch)."""
        value = environ.get("PETNET_MAX_BATCH_SIZE", "").strip()
        return cls(max_batch_size=max(1, int(value))) if value else cls()


@dataclass(frozen=True)
class ShownPrediction:
    """What the opacity slider needs to redraw the overlay without running the model again."""

    photo: Image.Image
    """The photo at screen size (see :attr:`DemoSettings.screen_max_side`)."""
    mask: np.ndarray
    """HxW mask at the size of :attr:`photo`: 0 = pet, 1 = background, 2 = boundary."""
    animals: np.ndarray
    """HxW animal map at the size of :attr:`photo` (see :func:`petnet.visualize.animal_map`)."""


Outputs = tuple[str | None, str, dict[str, Any] | None, str | None, list[str] | None]
"""Overlay PNG path, results panel HTML, API details, cut-out preview path, download paths."""


class PetDemo:
    """The demo's event handlers around one loaded model; results are written to ``output_dir``."""

    def __init__(self, model: PetNet, settings: DemoSettings | None = None, output_dir: str | Path | None = None):
        self.model = model
        self.settings = settings or DemoSettings()
        # Gradio serves files from its own cache folder without copying them and deletes them with
        # `delete_cache`, so results written there neither pile up nor get duplicated.
        self.output_dir = Path(output_dir or gr.utils.get_upload_folder()) / "petnet"

    def predict_batch(self, uploads: Sequence[Any], opacities: Sequence[float]) -> list[list[Any]]:
        """The batched event: one list per output, one entry per visitor (see :meth:`predict`)."""
        results = self.predict_many(list(zip(uploads, opacities, strict=True)))
        return [list(column) for column in zip(*results, strict=True)] if results else [[] for _ in range(5)]

    def predict(self, upload: str | Mapping[str, Any] | None, opacity: float) -> Outputs:
        """Overlay PNG path, results panel HTML, details for API clients, checkerboard cut-out
        preview and the downloads (overlay, cut-out and palette mask PNGs named after the photo).

        ``details`` is ``Prediction.to_dict()`` (``has_pet``, ``pets`` ...) or ``{"error": message}``
        for a file that is not a usable photo; everything is empty when the input was cleared.
        ``upload`` is a file path or Gradio's file payload (the event runs with ``preprocess=False``).
        """
        return self.predict_many([(upload, opacity)])[0]

    def predict_many(self, requests: Sequence[tuple[Any, float]]) -> list[Outputs]:
        """:meth:`predict` for several visitors, their usable photos in one ``predict_batch`` call."""
        outputs: list[Outputs | None] = [None] * len(requests)
        photos: dict[int, tuple[Image.Image, str]] = {}
        for index, (upload, _) in enumerate(requests):
            located = _upload_location(upload)
            if located is None:
                outputs[index] = (None, results_html.placeholder(), None, None, None)
                continue
            path, shown_name = located
            if not path or not Path(path).is_file():
                outputs[index] = _refusal(shown_name, MISSING_UPLOAD)
                continue
            try:
                photos[index] = (load_image(path), shown_name)
            except InvalidImageError as error:
                log.info("Refused upload %s: %s", shown_name, error)
                outputs[index] = _refusal(shown_name, str(error))
        predictions = self.model.predict_batch([photo for photo, _ in photos.values()]) if photos else []
        for (index, (photo, shown_name)), prediction in zip(photos.items(), predictions, strict=True):
            outputs[index] = self._show(photo, shown_name, prediction, float(requests[index][1]))
        return outputs  # type: ignore[return-value]  # every slot is filled above

    def redraw(
        self, downloads: Sequence[Mapping[str, Any] | str] | None, opacity: float
    ) -> tuple[str | None, list[str] | None]:
        """The shown prediction's overlay at a new mask opacity (0..1) and the downloads with that
        overlay; no model call. ``downloads`` is the download list's raw value (``preprocess=False``)."""
        paths = [str(item.get("path") if isinstance(item, Mapping) else item) for item in downloads or ()]
        view = self._view_file(paths)
        if view is None:
            return None, None
        with np.load(view, allow_pickle=False) as stored:
            shown = ShownPrediction(Image.fromarray(stored["photo"]), stored["mask"], stored["animals"])
        stem = next(Path(p).name.removesuffix("_overlay.png") for p in paths if p.endswith("_overlay.png"))
        [overlay] = self._publish({f"{stem}_overlay.png": _png(_draw(shown, opacity))}).values()
        return overlay, [overlay, *(p for p in paths if not p.endswith("_overlay.png"))]

    def _show(self, photo: Image.Image, shown_name: str, prediction: Prediction, opacity: float) -> Outputs:
        """Write the files of one prediction and describe it."""
        stem = _file_stem(shown_name)
        animals = animal_map([pet.region for pet in prediction.pets], tuple(prediction.full_mask.shape))
        shown = _for_screen(photo, prediction.full_mask.numpy(), animals, self.settings.screen_max_side)
        cutout = pet_cutout(photo, prediction.mask_probabilities) if prediction.has_pet else None
        downloads = {f"{stem}_overlay.png": _png(_draw(shown, opacity))}
        shown_only = {VIEW_FILE: _npz(shown)}
        if cutout is not None:
            downloads[f"{stem}_cutout.png"] = _png(cutout)
            shown_only[PREVIEW_FILE] = _jpeg(on_checkerboard(_fit(cutout, self.settings.screen_max_side)))
        downloads[f"{stem}_mask.png"] = _png(palette_mask(prediction.full_mask))
        published = self._publish({**downloads, **shown_only})
        download_paths = [published[name] for name in downloads]
        return (download_paths[0], results_html.verdict(prediction), prediction.to_dict(),
                published.get(PREVIEW_FILE), download_paths)  # fmt: skip

    def _publish(self, files: dict[str, bytes]) -> dict[str, str]:
        """Write ``files`` into ``<output_dir>/<hash of all of them>/``; same content, same folder.
        Returns each name's path.

        Each file is written atomically, so a concurrent request never serves a half-written one."""
        digest = hashlib.sha256()
        for name, data in files.items():
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        folder = self.output_dir / digest.hexdigest()[:32]
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, data in files.items():
            path = folder / name
            if not path.is_file():
                partial = path.with_name(f".{name}.{os.getpid()}.{id(data)}")
                partial.write_bytes(data)
                partial.replace(path)
            paths[name] = str(path)
        return paths

    def _view_file(self, paths: Sequence[str]) -> Path | None:
        """The stored view beside the mask download, if it is one of ours."""
        root = self.output_dir.resolve()
        for path in paths:
            if path.endswith("_mask.png"):
                view = Path(path).resolve().with_name(VIEW_FILE)
                if view.is_relative_to(root) and view.is_file():
                    return view
        return None


def _refusal(shown_name: str, message: str) -> Outputs:
    """Outputs for an unusable upload: cleared results and the message, in the page and for the API."""
    return None, results_html.refusal(shown_name, message), {"error": message}, None, None


def _upload_location(upload: str | Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(server path or "" when it did not arrive, name to show the user), or None when cleared."""
    if upload is None:
        return None
    if isinstance(upload, Mapping):
        path = str(upload.get("path") or "")
        return path, str(upload.get("orig_name") or Path(path).name or "your photo")
    return str(upload), Path(upload).name


def _file_stem(name: str) -> str:
    """A safe file-name stem from the photo's name: ``My cat (1).HEIC`` -> ``My_cat_1``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._")
    return stem[:80] or "photo"


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    if max(image.size) <= max_side:
        return image
    small = image.copy()
    small.thumbnail((max_side, max_side))
    return small


def _for_screen(photo: Image.Image, mask: np.ndarray, animals: np.ndarray, max_side: int) -> ShownPrediction:
    """Photo, mask and animal map downscaled to at most ``max_side`` pixels: stored views stay small."""
    small = _fit(photo, max_side)
    if small is photo:
        return ShownPrediction(photo=photo, mask=mask, animals=animals)

    def shrink(array: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(array).resize(small.size, Image.Resampling.NEAREST))

    return ShownPrediction(photo=small, mask=shrink(mask), animals=shrink(animals))


def _draw(shown: ShownPrediction, opacity: float) -> Image.Image:
    return overlay_mask(shown.photo, shown.mask, float(opacity), animals=shown.animals)


def _png(image: Image.Image) -> bytes:
    """PNG bytes at low zlib effort, Huffman coding only: several times faster than the default on 2
    busy cores and, for photos, no larger than zlib's fastest string matching."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1, compress_type=zlib.Z_HUFFMAN_ONLY)
    return buffer.getvalue()


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _npz(shown: ShownPrediction) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, photo=np.asarray(shown.photo.convert("RGB")), mask=shown.mask, animals=shown.animals)
    return buffer.getvalue()


def _weights_description(model: PetNet) -> str:
    """``model.weights_source`` for people, e.g. ``bundled: /abs/petnet/weights`` -> ``bundled (petnet/weights)``."""
    kind, _, where = model.weights_source.replace(f"{PROJECT_ROOT}{os.sep}", "").partition(": ")
    return f"{kind} ({where})" if where else kind


def example_paths() -> list[str]:
    """The bundled example photos, sorted by name."""
    return sorted(str(path) for path in EXAMPLES_DIR.glob("*.jpg"))


SCROLL_TO_RESULTS = """() => {
  const results = document.getElementById("results");
  if (!results) return;
  const box = results.getBoundingClientRect();
  if (box.top < 0 || box.top > window.innerHeight * 0.4) results.scrollIntoView({behavior: "smooth", block: "start"});
}"""
"""After each prediction: bring the results panel to the top of the screen unless it is already in
its upper part (phones stack it 1.5-2 screens below the upload; desktops show it beside it)."""


def build_demo(model: PetNet | None = None, settings: DemoSettings | None = None) -> gr.Blocks:
    """The demo's interface with its queue configured; loads the model (once) unless given one."""
    settings = settings or DemoSettings.from_environ()
    handlers = PetDemo(model or load_model(), settings)
    with gr.Blocks(title="PetNet", delete_cache=settings.delete_cache) as demo:
        gr.Markdown(
            "# PetNet\nCat or dog, its top-3 breeds and where the pet is, from one photo.  \n"
            f"<small>Weights: {_weights_description(handlers.model)}</small>"
        )
        with gr.Row(equal_height=False):
            with gr.Column():
                photo = gr.Image(
                    label="Your pet photo",
                    elem_id="photo",
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard", "webcam"],
                    height=300,
                )
                gr.Examples(
                    examples=example_paths(),
                    inputs=photo,
                    label="Or try one of these (Oxford-IIIT Pet test photos)",
                    cache_examples=False,
                    examples_per_page=6,
                )
            with gr.Column():
                verdict = gr.HTML(results_html.placeholder(), elem_id="results", css_template=results_html.CSS)
                overlay = gr.Image(
                    label="Mask overlay", type="filepath", height=300, interactive=False, elem_id="overlay"
                )
                opacity = gr.Slider(
                    0.0, 1.0, value=settings.default_opacity, step=0.05, label="Mask opacity", elem_id="opacity"
                )
                gr.HTML(results_html.legend())
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.Markdown("**Cut-out** (transparent PNG, shown on a checkerboard)")
                cutout = gr.Image(
                    show_label=False,
                    type="filepath",
                    height=240,
                    interactive=False,
                    elem_id="cutout",
                    buttons=["fullscreen"],
                )
            with gr.Column():
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
                with gr.Accordion("Details (as the API returns them)", open=False):
                    details = gr.JSON(show_label=False, elem_id="details")

        photo.change(
            handlers.predict_batch,
            inputs=[photo, opacity],
            outputs=[overlay, verdict, details, cutout, downloads],
            api_name=API_NAME,
            preprocess=False,  # hand the uploaded file to petnet.images.load_image undecoded
            trigger_mode="always_last",
            batch=True,
            max_batch_size=settings.max_batch_size,
            concurrency_limit=settings.concurrency_limit,
        ).then(None, js=SCROLL_TO_RESULTS)
        opacity.change(
            handlers.redraw,
            inputs=[downloads, opacity],
            outputs=[overlay, downloads],
            api_visibility="private",
            preprocess=False,  # the download list's file paths, without Gradio copying each file
            trigger_mode="always_last",
            show_progress="hidden",
        )
    demo.queue(max_size=settings.max_queue_size, default_concurrency_limit=settings.concurrency_limit)
    return demo


def use_serving_threads(settings: DemoSettings | None = None) -> None:
    """Set torch's intra-op threads for serving (:attr:`DemoSettings.torch_threads`); for the
    server process only, since it changes the whole process (``app.py`` calls it)."""
    torch.set_num_threads((settings or DemoSettings.from_environ()).torch_threads)


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
