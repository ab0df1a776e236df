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

import asyncio
import hashlib
import io
import ipaddress
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import gradio as gr
import numpy as np
from gradio.routes import file_upload_statuses
from PIL import Image
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import EXAMPLES_DIR, REPO_ROOT, results_html
from petnet import InvalidImageError, load_model
from petnet.images import MAX_IMAGE_PIXELS, TOO_LARGE, load_image
from petnet.inference.results import Prediction
from petnet.inference.visualize import animal_map, on_checkerboard, overlay_mask, palette_mask, pet_cutout
from petnet.memory import return_freed_memory

if TYPE_CHECKING:
    from petnet.models.network import PetNet

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
FAILED = "Something went wrong with this photo. Please try another one."
BAD_OPACITY = "The mask opacity must be a number from 0 to 1."
"""Refusal of a call whose opacity is not a number (an API call's "0.5", NaN): said before the photo
is opened, not blamed on the photo after the network ran."""
TOO_BIG = "This file is larger than {size}; please send a smaller photo."
"""Refusal of an upload over :attr:`DemoSettings.max_file_size`, given in the page before any upload."""


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
    max_calls_per_visitor: int = 8
    """Calls one visitor (one address, :func:`visitor_address`) may have waiting or running at once
    (0: no cap). The queue's places are shared, and one stranger's script sending calls faster than
    the server answers them filled all of them. The page sends one call per photo and one for the
    opacity slider, each after the last is answered, so one person in one tab never meets the cap;
    people behind one address (an office, a carrier's NAT) share it."""
    max_file_size: str = "10mb"
    """Largest accepted upload; :data:`petnet.images.MAX_IMAGE_PIXELS` also bounds decoded size."""
    default_opacity: float = 0.5
    screen_max_side: int = 1024
    """The overlay is for the screen: larger photos are shown (and re-blended) downscaled."""
    state_session_capacity: int = 1000
    """Sessions whose bookkeeping Gradio keeps (its default 10,000): a stranger's sessions that never
    read their results each held about 50 KB until pushed out."""
    delete_cache: tuple[int, int] = (60, 600)
    """Every minute, Gradio deletes uploads older than ten minutes; the demo's own result folders
    go after the same age (:meth:`PetDemo.sweep`), so a busy public server's disk does not fill. A
    visitor's opacity slider works for those ten minutes."""

    @property
    def max_file_bytes(self) -> int:
        """:attr:`max_file_size` in bytes, as Gradio counts its upload limit (10mb is 10,485,760)."""
        return gr.utils._parse_file_size(self.max_file_size)

    @property
    def network_threads(self) -> int:
        """Intra-op threads per batch, so that the batches running at once use each core once: on 2
        cores two one-thread batches served 10.9-11.1 requests/s in the 20-client load test, two
        two-thread batches (four threads fighting over two cores) 9.6."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, cores // self.concurrency_limit)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> DemoSettings:
        """Defaults, with ``PETNET_MAX_BATCH_SIZE`` overriding the batch size (the load test's A/B
        switch) and ``PETNET_CALLS_PER_VISITOR`` the cap on one visitor's calls (0 turns it off: for
        a server that sees every visitor from one address and is given no forwarded header)."""
        overrides: dict[str, int] = {}
        if value := environ.get("PETNET_MAX_BATCH_SIZE", "").strip():
            overrides["max_batch_size"] = max(1, int(value))
        if value := environ.get("PETNET_CALLS_PER_VISITOR", "").strip():
            if int(value) < 0:
                raise ValueError(f"PETNET_CALLS_PER_VISITOR must be 0 (no cap) or more, not {value}")
            overrides["max_calls_per_visitor"] = int(value)
        return cls(**overrides)


@dataclass(frozen=True)
class ShownPrediction:
    """What the opacity slider needs to redraw the overlay without running the model again."""

    photo: Image.Image
    """The photo at screen size (see :attr:`DemoSettings.screen_max_side`)."""
    mask: np.ndarray
    """HxW mask at the size of :attr:`photo`: 0 = pet, 1 = background, 2 = boundary."""
    animals: np.ndarray
    """HxW animal map at the size of :attr:`photo` (see :func:`petnet.inference.visualize.animal_map`)."""


Outputs = tuple[str | None, str, dict[str, Any] | None, str | None, list[str] | None]
"""Overlay JPEG path, results panel HTML, API details, cut-out preview path, download paths."""


class PetDemo:
    """The demo's event handlers around one loaded model; results are written to ``output_dir``."""

    def __init__(
        self,
        model: PetNet,
        settings: DemoSettings | None = None,
        output_dir: str | Path | None = None,
        upload_dir: str | Path | None = None,
    ):
        self.model = model
        self.settings = settings or DemoSettings()
        upload_dir = Path(upload_dir or gr.utils.get_upload_folder())
        # Gradio serves files from its own cache folder without copying them and deletes them with
        # `delete_cache`, so results written there neither pile up nor get duplicated.
        self.output_dir = Path(output_dir or upload_dir) / "petnet"
        self._last_sweep = 0.0
        self.readable_dirs = (upload_dir.resolve(), EXAMPLES_DIR.resolve())
        """Where the prediction endpoint may open a file: Gradio's upload folder and the bundled
        examples. The event skips Gradio's preprocessing (and with it Gradio's "uploaded by a user"
        check), so a raw API call can name any server path; everything else is refused unopened."""

    def predict_batch(self, uploads: Sequence[Any], opacities: Sequence[float]) -> list[list[Any]]:
        """The batched event: one list per output, one entry per visitor (see :meth:`predict`)."""
        results = self.predict_many(list(zip(uploads, opacities, strict=True)))
        return [list(column) for column in zip(*results, strict=True)] if results else [[] for _ in range(5)]

    def predict(self, upload: str | Mapping[str, Any] | None, opacity: float) -> Outputs:
        """Overlay JPEG path, results panel HTML, details for API clients, checkerboard cut-out
        preview and the downloads named after the photo (the overlay JPEG, the cut-out and palette
        mask PNGs).

        ``details`` is ``Prediction.to_dict()`` (``has_pet``, ``pets`` ...) or ``{"error": message}``
        for a file that is not a usable photo; everything is empty when the input was cleared.
        ``upload`` is a file path or Gradio's file payload (the event runs with ``preprocess=False``).
        """
        return self.predict_many([(upload, opacity)])[0]

    def predict_many(self, requests: Sequence[tuple[Any, float]]) -> list[Outputs]:
        """:meth:`predict` for several visitors, their usable photos in one ``predict_batch`` call."""
        outputs: list[Outputs | None] = [None] * len(requests)
        photos: dict[int, tuple[Image.Image, str, float]] = {}
        for index, (upload, asked_opacity) in enumerate(requests):
            located = _upload_location(upload)
            if located is None:
                outputs[index] = (None, results_html.placeholder(), None, None, None)
                continue
            path, shown_name = located
            opacity = _opacity(asked_opacity, self.settings.default_opacity)
            if opacity is None:
                outputs[index] = _refusal(shown_name, BAD_OPACITY)
                continue
            if not self._readable(path):  # the same words whether the file exists or not
                outputs[index] = _refusal(shown_name, MISSING_UPLOAD)
                continue
            try:
                photos[index] = (load_image(path), shown_name, opacity)
            except InvalidImageError as error:
                log.info("Refused upload %s: %s", shown_name, error)
                outputs[index] = _refusal(shown_name, str(error))
        predictions = self._predict_each(photos)
        for index, (photo, shown_name, opacity) in photos.items():
            outputs[index] = _refusal(shown_name, FAILED)  # unless drawn below
            if index in predictions:
                try:
                    outputs[index] = self._show(photo, shown_name, predictions[index], opacity)
                except Exception:  # one visitor's failure must not fail the batch's others
                    log.exception("Drawing the results of %s failed", shown_name)
        self.sweep()
        return_freed_memory()
        return outputs  # type: ignore[return-value]  # every slot is filled above

    def _readable(self, path: str) -> bool:
        """Whether ``path`` is a file the endpoint may open: inside Gradio's upload folder (not our
        own results) or the bundled examples, symbolic links resolved first."""
        if not path:
            return False
        try:
            resolved = Path(path).resolve()
        except (OSError, RuntimeError):  # a symlink loop
            return False
        inside = any(resolved.is_relative_to(root) for root in self.readable_dirs)
        return inside and not resolved.is_relative_to(self.output_dir.resolve()) and resolved.is_file()

    def _predict_each(self, photos: Mapping[int, tuple[Image.Image, str, float]]) -> dict[int, Prediction]:
        """Predictions by request index: the photos in one network pass, or, should that fail, one
        by one so that only the photo at fault goes without (logged)."""
        if not photos:
            return {}
        try:
            return dict(zip(photos, self.model.predict_batch([photo for photo, *_ in photos.values()]), strict=True))
        except Exception:
            log.exception("A batch of %d photos failed; predicting them one by one", len(photos))
        predictions = {}
        for index, (photo, shown_name, _) in photos.items():
            try:
                predictions[index] = self.model.predict_batch([photo])[0]
            except Exception:
                log.exception("Predicting %s failed", shown_name)
        return predictions

    def redraw(
        self, downloads: Sequence[Mapping[str, Any] | str] | None, opacity: object
    ) -> tuple[str | None, list[str] | None] | tuple[dict, dict]:
        """The shown prediction's overlay at a new mask opacity (0..1, :func:`_opacity`) and the
        downloads with that overlay; no model call. ``downloads`` is the download list's raw value
        (``preprocess=False``). An opacity that is no number leaves both as they are (``gr.skip()``)."""
        if (shown_opacity := _opacity(opacity, self.settings.default_opacity)) is None:
            return gr.skip(), gr.skip()
        paths = [str(item.get("path") if isinstance(item, Mapping) else item) for item in downloads or ()]
        view = self._view_file(paths)
        if view is None:
            return None, None
        with np.load(view, allow_pickle=False) as stored:
            shown = ShownPrediction(Image.fromarray(stored["photo"]), stored["mask"], stored["animals"])
        # by its name's start: a page loaded before the overlay became a JPEG sends back overlay-x.png
        old_overlay = next((p for p in paths if Path(p).name.startswith("overlay-")), None)
        if old_overlay is None:
            return None, None
        name = Path(old_overlay).with_suffix(DOWNLOAD_SUFFIXES["overlay"]).name
        [overlay] = self._publish({name: _jpeg(_draw(shown, shown_opacity))}).values()
        return overlay, [overlay, *(p for p in paths if p != old_overlay)]

    def _show(self, photo: Image.Image, shown_name: str, prediction: Prediction, opacity: float) -> Outputs:
        """Write the files of one prediction and describe it."""
        stem = _file_stem(shown_name)
        animals = animal_map([pet.region for pet in prediction.pets], tuple(prediction.full_mask.shape))
        shown = _for_screen(photo, prediction.full_mask, animals, self.settings.screen_max_side)
        cutout = pet_cutout(photo, prediction.mask_probabilities) if prediction.has_pet else None
        downloads = {_download_name("overlay", stem): _jpeg(_draw(shown, opacity))}
        shown_only = {VIEW_FILE: _npz(shown)}
        if cutout is not None:
            downloads[_download_name("cutout", stem)] = _png(cutout)
            shown_only[PREVIEW_FILE] = _jpeg(on_checkerboard(_fit(cutout, self.settings.screen_max_side)))
        downloads[_download_name("mask", stem)] = _png(palette_mask(prediction.full_mask))
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
        os.utime(folder)  # a reused folder is as fresh as a new one for :meth:`sweep`
        paths = {}
        for name, data in files.items():
            path = folder / name
            if not path.is_file():
                partial = path.with_name(f".{name}.{os.getpid()}.{id(data)}")
                partial.write_bytes(data)
                partial.replace(path)
            paths[name] = str(path)
        return paths

    def sweep(self, now: float | None = None) -> int:
        """Delete result folders not written for ``delete_cache[1]`` seconds, at most once every
        ``delete_cache[0]`` seconds (Gradio's own sweep sees only the files it served, not the stored
        views); returns how many went. Called after each prediction."""
        frequency, age = self.settings.delete_cache
        now = time.time() if now is None else now
        if now - self._last_sweep < frequency:
            return 0
        self._last_sweep = now
        removed = 0
        for folder in self.output_dir.glob("*/"):
            try:
                if now - folder.stat().st_mtime > age:
                    shutil.rmtree(folder)
                    removed += 1
            except OSError:  # deleted meanwhile by a concurrent sweep or Gradio's
                continue
        return removed

    def _view_file(self, paths: Sequence[str]) -> Path | None:
        """The stored view beside the mask download, if it is one of ours."""
        root = self.output_dir.resolve()
        for path in paths:
            if _download_kind(path) == "mask":
                view = Path(path).resolve().with_name(VIEW_FILE)
                if view.is_relative_to(root) and view.is_file():
                    return view
        return None


def _opacity(value: object, default: float) -> float | None:
    """``value`` as a mask opacity from 0 to 1: a number clamped to that range, as the slider clamps
    what is typed in its box (which sends 1.5, -1 or, cleared, nothing before it does), ``default``
    for nothing, None for what is no number (a string, NaN, a list)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return min(max(float(value), 0.0), 1.0)


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


DOWNLOAD_SUFFIXES = {"overlay": ".jpg", "cutout": ".png", "mask": ".png"}
"""The downloads by kind, and their file types: the overlay is a photo, a JPEG (encoded in a
thirtieth of a PNG's time, which a busy server feels); the cut-out keeps its transparency and the
mask its exact values in PNGs."""


def _download_name(kind: str, stem: str) -> str:
    """``overlay-my_cat.jpg``: the kind first, so that a phone, which shortens long names at their
    end, still shows which download is which."""
    return f"{kind}-{stem}{DOWNLOAD_SUFFIXES[kind]}"


def _download_kind(path: str) -> str | None:
    """The kind of one of our download paths (:func:`_download_name`), else None."""
    kind, dash, _ = Path(path).name.partition("-")
    return kind if dash and Path(path).suffix == DOWNLOAD_SUFFIXES.get(kind) else None


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
    kind, _, where = model.weights_source.replace(f"{REPO_ROOT}{os.sep}", "").partition(": ")
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

REFUSED_BUTTON = "refused"
"""``elem_id`` of the hidden button whose click event puts a refusal made in the page on screen."""

UPLOAD_CHECK = """() => {
  const check = __CHECK__;
  if (window.petnetUploadCheck) return;  // installed once per page
  window.petnetUploadCheck = check;
  const passed = new WeakSet();  // the events re-sent to Gradio after the check
  const escape = (text) => text.replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"})[c]);
  const pixels = (file) => new Promise((resolve) => {
    // The browser reads the size from the header; a detached image is never decoded.
    if (file.type === "image/svg+xml") return resolve(0);
    const url = URL.createObjectURL(file);
    const image = new Image();
    const done = (count) => { URL.revokeObjectURL(url); resolve(count); };
    image.onload = () => done(image.naturalWidth * image.naturalHeight);
    image.onerror = () => done(0);  // not a picture the browser reads (HEIC, TIFF, text): the server says
    image.src = url;
  });
  const refusal = async (file) => {
    if (file.size > check.max_bytes) return check.too_big;
    if ((await pixels(file)) > check.max_pixels) return check.too_large;
    return null;
  };
  const show = (file, [panel, message]) => {
    const button = document.getElementById(check.button);
    if (!button) return false;
    window.petnetRefusal = [null, panel.replace("{name}", () => escape(file.name || "your photo")), {error: message}, null, null];
    button.click();
    return true;
  };
  const vet = (event, files, resend) => {
    if (passed.has(event) || !files?.length || !event.target?.closest?.("#photo")) return false;
    event.preventDefault();
    event.stopImmediatePropagation();
    const file = files[0];  // the one Gradio takes
    refusal(file).then((found) => (found && show(file, found)) || resend(), () => resend());
    return true;
  };
  document.addEventListener("change", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file") return;
    vet(event, input.files, () => {
      const again = new Event("change", {bubbles: true});
      passed.add(again);
      input.dispatchEvent(again);
    });
  }, true);
  document.addEventListener("drop", (event) => {
    const files = Array.from(event.dataTransfer?.files || []);
    const held = vet(event, files, () => {
      const transfer = new DataTransfer();
      files.forEach((file) => transfer.items.add(file));
      const again = new DragEvent("drop", {bubbles: true, cancelable: true, dataTransfer: transfer});
      passed.add(again);
      event.target.dispatchEvent(again);
    });
    // The drag is over either way: let the upload area drop its highlight (its own drop never came).
    if (held) document.querySelector("#photo input[type=file]")?.dispatchEvent(new DragEvent("dragleave", {bubbles: true}));
  }, true);
}"""
"""Installed on page load: a photo chosen or dropped on the upload is checked in the browser first.
A file over the upload limit, or a picture whose header claims more than
:data:`petnet.images.MAX_IMAGE_PIXELS`, is refused there, in the results panel like the server's
refusals, and never reaches Gradio: no upload, no error toast, and no preview for the browser to
decode: the server refuses a 20000x20000 picture from its header at once, but Chromium then spent
1.5-3 s drawing the preview of a header-only PNG of 54 bytes, 6-10 s for a real 20000x20000 JPEG,
before the refusal reached the screen (0.1 s now). Other files go on to Gradio unchanged, a few
milliseconds later; the server's checks stay the authority."""


def _size_text(max_file_size: str) -> str:
    """Gradio's size setting as people write it: ``"10mb"`` -> ``"10 MB"``."""
    compact = max_file_size.replace(" ", "")
    number = compact.rstrip("bBkKmMgGtT")
    return f"{number} {compact[len(number) :].upper()}"


def upload_check_js(settings: DemoSettings) -> str:
    """:data:`UPLOAD_CHECK` with its limits and refusals: the panel HTML comes from
    :func:`results_html.refusal` with ``{name}`` standing for the file name (escaped in the page)."""
    too_big = TOO_BIG.format(size=_size_text(settings.max_file_size))
    check = {
        "max_bytes": settings.max_file_bytes,
        "max_pixels": MAX_IMAGE_PIXELS,
        "too_big": [results_html.refusal("{name}", too_big), too_big],
        "too_large": [results_html.refusal("{name}", TOO_LARGE), TOO_LARGE],
        "button": REFUSED_BUTTON,
    }
    return UPLOAD_CHECK.replace("__CHECK__", json.dumps(check))


def build_demo(model: PetNet | None = None, settings: DemoSettings | None = None) -> gr.Blocks:
    """The demo's interface with its queue configured; loads the model (once) unless given one."""
    settings = settings or DemoSettings.from_environ()
    handlers = PetDemo(model or load_model(threads=settings.network_threads), settings)
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
        refused = gr.Button("Refused upload", visible="hidden", elem_id=REFUSED_BUTTON)
        refused.click(  # in the page only: outputs as the server's refusals give them (_refusal)
            None,
            outputs=[overlay, verdict, details, cutout, downloads],
            js="() => window.petnetRefusal",
            api_visibility="private",
            queue=False,
        ).then(None, js=SCROLL_TO_RESULTS)
        demo.load(None, js=upload_check_js(settings), api_visibility="private", queue=False)
        opacity.change(
            handlers.redraw,
            inputs=[downloads, opacity],
            outputs=[overlay, downloads],
            api_visibility="private",
            preprocess=False,  # the download list's file paths, without Gradio copying each file
            trigger_mode="always_last",
            show_progress="hidden",
        )
    # api_open=False: Gradio's direct routes (/run/predict, /api/predict) skip the queue, its bound and
    # its concurrency limit (any number of network passes at once, a batch of any size in one call);
    # Gradio closes them on a Space only
    demo.queue(max_size=settings.max_queue_size, default_concurrency_limit=settings.concurrency_limit, api_open=False)
    return demo


def launch_options(settings: DemoSettings | None = None) -> dict[str, Any]:
    """Keyword arguments for ``demo.launch()``: upload size limit, no file access beyond the
    examples, bounded requests, a cap on each visitor's calls and no file fetched from a link
    (:class:`RequestGuard`).

    Host and port come from Gradio's own ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``
    (default 127.0.0.1:7860), which is also how Hugging Face Spaces configures it.
    """
    settings = settings or DemoSettings.from_environ()
    return {
        "max_file_size": settings.max_file_size,
        "state_session_capacity": settings.state_session_capacity,
        "allowed_paths": [str(EXAMPLES_DIR)],
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="amber"),
        "app_kwargs": {"middleware": [Middleware(
            RequestGuard,
            max_upload=settings.max_file_bytes,
            upload_dir=gr.utils.get_upload_folder(),
            delete_cache=settings.delete_cache,
            max_calls=settings.max_calls_per_visitor,
        )]},
    }


TRUSTED_PROXIES = (
    "127.0.0.1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,::1,fc00::/7,"  # loopback and private networks,
    "::ffff:127.0.0.1,::ffff:10.0.0.0/104,::ffff:172.16.0.0/108,::ffff:192.168.0.0/112"  # as IPv6 sockets show IPv4 ones
)
"""Addresses whose ``X-Forwarded-For`` the server believes (uvicorn's ``FORWARDED_ALLOW_IPS``, which
``app.py`` sets to this unless given): loopback and private networks, where a Space's proxy and
other reverse proxies sit. The visitor is then the last address in the header outside them, the one
the proxy saw (an address a client writes into the header itself comes before it); a client reaching
the server straight from a public address is its own address, whatever header it sends."""


def visitor_address(scope: Scope) -> str:
    """The address a request came from, after uvicorn's proxy-header handling (:data:`TRUSTED_PROXIES`);
    an IPv6 address as its /64 network, which one subscriber holds whole (the usual unit of per-address
    limits), so that a stranger cannot take one share per address of it."""
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # no address (a Unix socket), or a name
        return host
    if isinstance(address, ipaddress.IPv6Address):
        return str(address.ipv4_mapped or ipaddress.ip_network((address, 64), strict=False))
    return host


REMOTE_FILE = "Send the photo itself, not a link to it: this server does not download files."
LARGE_REQUEST = "This request is too large."
UNREADABLE_REQUEST = "This request could not be read."
LENGTH_REQUIRED = "Send the request with its length (Content-Length), not in chunks."
NOT_OFFERED = "This server does not offer that."
BUSY_VISITOR = "You have {count} requests waiting already; send more once they are answered."
FORM_FRAMING = 64 * 1024
"""Bytes an upload form may add around its one file (boundaries, part headers, a long file name)."""
MAX_CALL_BYTES = 64 * 1024
"""Largest body of any other request (an API call's JSON). A call names its photo by an upload's
path, a few hundred bytes; Gradio parses and queues what it is sent, and a 10 MiB list of empty
objects cost the server 1.2 GB and 7.7 s during which it answered no one."""
UPLOAD_ID = re.compile(r"[a-z0-9]{1,16}")
"""An upload's progress id as the page makes them (a random number in base 36)."""
MAX_UPLOAD_IDS = 1000
"""Progress ids Gradio keeps at once: it forgets one only when someone follows its progress, so
ids nobody follows (1.8 KB each, 60 KB for a long one) would pile up without end."""
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A session id as the page (a random number in base 36) and ``gradio_client`` (a UUID) make them.
Gradio keeps each session's bookkeeping, keyed by its id, until the session's stream closes:
sessions that never open one, with 60 KB ids, cost the server 360 KB each."""
LOST_UPLOAD = re.compile(r"tmp[a-z0-9_]{8}")
"""Names of the temporary files Gradio writes uploads to (Python's ``tempfile``)."""


class RequestGuard:
    """ASGI middleware that bounds what a stranger can make this public server do, before Gradio
    sees the request:

    - **No downloads.** A file named by an http(s) link is refused (400): in a call's JSON Gradio
      would download it into its cache before any event runs, with no size limit, and ``GET
      /file=<link>`` would stream it through this server, an open proxy. Photos arrive as uploads.
    - **Files only as uploads.** A form is taken at the upload route alone (elsewhere 404: Gradio's
      recording and component routes write forms to the system's temporary folder and may leave
      them there). Every body must state its length (411 for chunked ones: browsers and
      ``gradio_client`` always do), which is refused (413) before the body is read when over its
      limit: one photo's worth for an upload form (``max_upload`` and its framing; Gradio limits each
      file, not how many a form holds, up to 1,000), :data:`MAX_CALL_BYTES` for anything else. A form
      within it streams on unread (the server delivers no more than declared, and the page shows the
      upload's progress); any other body is read, checked and passed on whole.
    - **Bounded bookkeeping.** Upload progress ids are short (:data:`UPLOAD_ID`) and at most
      :data:`MAX_UPLOAD_IDS` are kept; the temporary files and empty folders Gradio leaves in its
      upload folder are swept as uploads arrive (:func:`sweep_lost_uploads`).
    - **A share of the queue.** A call joining the queue is refused (429) while its visitor has
      ``max_calls`` calls waiting, running or on their way in (0: no cap).
    """

    def __init__(
        self, app: ASGIApp, max_upload: int, upload_dir: str | Path, delete_cache: tuple[int, int], max_calls: int = 0
    ) -> None:
        self.app = app
        self.max_upload = max_upload
        self.upload_dir = Path(upload_dir)
        self.delete_cache = delete_cache
        self.max_calls = max_calls
        self._last_sweep = -math.inf
        self._upload_ids: dict[str, None] = {}  # in the order first seen
        self._joining: Counter[str] = Counter()  # per visitor, joins passed on and not yet answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.endswith("/upload") and time.monotonic() - self._last_sweep >= self.delete_cache[0]:
            self._last_sweep = time.monotonic()
            await asyncio.to_thread(sweep_lost_uploads, self.upload_dir, self.delete_cache[1])
        query = parse_qs(scope["query_string"].decode("latin-1"))
        refusal = _refusal_of_path(path, query)
        if refusal is None and path.endswith(("/upload", "/upload_progress")):
            refusal = self._track_upload_ids(query)
        joining = scope["method"] == "POST" and self.max_calls > 0 and _joins_queue(path)
        visitor = visitor_address(scope) if joining else ""
        if refusal is None and joining and self._calls_of(scope["app"], visitor) >= self.max_calls:
            refusal = 429, BUSY_VISITOR.format(count=self.max_calls)
        reserved = refusal is None and joining
        if reserved:  # with no await since the count: joins whose bodies are still arriving count too
            self._joining[visitor] += 1
        try:
            if refusal is None and scope["method"] == "POST":
                refusal, body = await self._read(scope, receive)
                if refusal is None and body is not None:
                    receive = _replaying(body, receive)
            if refusal is not None:
                await JSONResponse({"error": refusal[1]}, status_code=refusal[0])(scope, receive, send)
                return
            await self.app(scope, receive, send)
        finally:
            if reserved:
                self._joining[visitor] -= 1
                if not self._joining[visitor]:
                    del self._joining[visitor]

    def _calls_of(self, app: Any, visitor: str) -> int:
        """The visitor's calls in the queue of Gradio's ``app``, waiting or running, and their joins on
        the way. Gradio 6.31 keeps each event, with the request that made it, from joining until its
        run ends; one whose client left is not counted (Gradio keeps such an event of a batch for good
        when its client leaves between the batch being taken and its run, and the visitor's share
        would shrink for good). A join whose event has joined but not yet been answered counts twice
        for that moment, which errs on the side of the queue."""
        events = list(app.get_blocks()._queue.event_ids_to_events.values())
        queued = sum(event.alive and event.request is not None and visitor_address(event.request.scope) == visitor for event in events)
        return queued + self._joining[visitor]

    def _track_upload_ids(self, query: Mapping[str, list[str]]) -> tuple[int, str] | None:
        """Refuse an upload progress id the page would not make; forget the oldest past the bound."""
        for upload_id in query.get("upload_id", []):
            if not UPLOAD_ID.fullmatch(upload_id):
                return 400, UNREADABLE_REQUEST
            self._upload_ids[upload_id] = None
            while len(self._upload_ids) > MAX_UPLOAD_IDS:
                oldest = next(iter(self._upload_ids))
                del self._upload_ids[oldest]
                _forget_upload_id(oldest)
        return None

    async def _read(self, scope: Scope, receive: Receive) -> tuple[tuple[int, str] | None, bytes | None]:
        """(refusal or None, the body read or None): a form within its limit is left unread."""
        headers = [(name, value) for name, value in scope["headers"] if name in (b"content-length", b"transfer-encoding")]
        if any(name == b"transfer-encoding" for name, _ in headers):  # the server would read chunks, whatever length is declared
            return (411, LENGTH_REQUIRED), None
        lengths = [value for _, value in headers]
        if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
            return (400, UNREADABLE_REQUEST), None
        declared = int(lengths[0]) if lengths else 0  # no length and no coding: no body
        form = _is_form(scope)
        if form and not scope["path"].endswith("/upload"):
            return (404, NOT_OFFERED), None
        if declared > (self.max_upload + FORM_FRAMING if form else MAX_CALL_BYTES):
            return (413, LARGE_REQUEST), None
        if form or not declared:  # files travel in forms; only a call's JSON names one by a path
            return None, None
        body = bytearray()  # at most the declared length: the server delivers no more
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to answer
                return (400, UNREADABLE_REQUEST), None
            body += message.get("body", b"")
            if not message.get("more_body"):
                return _refusal_of(bytes(body)), bytes(body)


def _forget_upload_id(upload_id: str) -> None:
    """Drop Gradio's progress record of an upload (its public ``stop_tracking``, and the signal
    that ``stop_tracking`` leaves behind in Gradio 6.31)."""
    file_upload_statuses.stop_tracking(upload_id)
    file_upload_statuses._signals.pop(upload_id, None)


def sweep_lost_uploads(upload_dir: Path, age: float, now: float | None = None) -> int:
    """Delete the temporary files (:data:`LOST_UPLOAD`) and empty folders at the top of Gradio's
    upload folder not written for ``age`` seconds; returns how many went. Gradio moves each upload
    into a folder of its own, whose files its cache sweep deletes in time (but not the folder), and
    leaves the temporary file behind, untracked, when the form's file part has another name, the
    form ends early or its sender leaves mid-upload: a stranger could fill the disk 10 MB at a time.
    (An upload idle for ``age`` seconds goes too; it fails.) Nothing is swept where the upload
    folder is the system's temporary folder itself, which other programs share. Run by
    :class:`RequestGuard` as uploads arrive, as often as Gradio's sweep."""
    if upload_dir.resolve() == Path(tempfile.gettempdir()).resolve():
        return 0
    now = time.time() if now is None else now
    removed = 0
    for path in upload_dir.glob("*"):
        try:
            if path.is_symlink() or now - path.stat().st_mtime <= age:
                continue
            if path.is_file() and LOST_UPLOAD.fullmatch(path.name):
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            else:
                continue
            removed += 1
        except OSError:  # deleted or filled meanwhile
            continue
    return removed


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app after the body was read: the body once, whole, then the server's."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def _refusal_of_path(path: str, query: Mapping[str, list[str]]) -> tuple[int, str] | None:
    """(status, message) for a request naming a file by an http(s) link in its path, or a session
    by an id no client makes (:data:`SESSION_ID`), else None."""
    _, found, target = path.partition("/file=")
    if found and _is_link(target):
        return 400, REMOTE_FILE
    _, found, session = path.partition("/heartbeat/")
    sessions = [session] if found else []
    if any(not SESSION_ID.fullmatch(session) for session in [*sessions, *query.get("session_hash", [])]):
        return 400, UNREADABLE_REQUEST
    return None


def _joins_queue(path: str) -> bool:
    """Whether a POST to ``path`` puts a call in Gradio's queue: the page's and ``gradio_client``'s
    ``/queue/join``, and the REST API's ``/call/<name>`` (and ``/call/v2/<name>``)."""
    return path.endswith("/queue/join") or "/call/" in path


def _is_form(scope: Scope) -> bool:
    """Whether a request's body is a form (the upload route's multipart files), not JSON: only when
    every content-type header says so. Anything else is read, not only ``application/json``: FastAPI
    parses any ``application/*+json`` body as JSON, takes the first of two content-type headers, and
    strips a non-breaking space from the type, each of which took a link past a narrower check."""
    types = [value.decode("latin-1").split(";")[0].strip().lower() for name, value in scope["headers"] if name == b"content-type"]
    return bool(types) and all(kind.startswith("multipart/") or kind == "application/x-www-form-urlencoded" for kind in types)


def _is_link(text: str) -> bool:
    """Whether a file's name is an http(s) link, as Gradio would fetch it (any case, spaces around)."""
    return text.strip().lower().startswith(("http://", "https://"))


def _refusal_of(body: bytes) -> tuple[int, str] | None:
    """(status, message) for a body that holds a file payload (a mapping with a ``path``) whose
    path is an http(s) link, names its session by an id no client makes, or nests too deep to be
    read; None for any other (a body that is not JSON is Gradio's to refuse)."""
    try:
        data = json.loads(body)
    except RecursionError:
        return 400, UNREADABLE_REQUEST
    except ValueError:
        return None
    if isinstance(data, Mapping) and "session_hash" in data and not SESSION_ID.fullmatch(str(data["session_hash"])):
        return 400, UNREADABLE_REQUEST
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            path = item.get("path")
            if isinstance(path, str) and _is_link(path):
                return 400, REMOTE_FILE
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None
