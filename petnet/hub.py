"""Find PetNet weights and load them: a local directory, a Hugging Face Hub repo, or the bundled copy.

Resolution order of :func:`load_model`:

1. an explicit local directory (``config.json`` + ``model.safetensors`` and/or ONNX graphs) or Hub repo id;
2. the Hub repo named by ``$PETNET_REPO``;
3. :data:`DEFAULT_REPO_ID` at the pinned :data:`DEFAULT_REVISION`, used only if its files are
   byte-for-byte the packaged ones (SHA-256), because that repo is not under this project's control;
4. the weights bundled inside the package, ``petnet/weights``.

A repo the user names (argument or ``$PETNET_REPO``) loads what it holds, unchecked: the user chose it.
Only the files the runtime needs are fetched (:func:`choose_runtime`): ``config.json`` and two ONNX
graphs for ONNX Runtime (:data:`~petnet.inference.onnx_network.ONNX_FILES`), ``config.json`` and
``model.safetensors`` for PyTorch; each is checked on its own.

Downloads and the cache are huggingface_hub's own (``hf_hub_download``); ``HF_ENDPOINT``,
``HF_HOME`` and ``HF_HUB_OFFLINE`` work as usual. When the Hub cannot deliver (offline mode, no
network, unknown repo) or the default repo's files fail the SHA-256 check, the bundled weights are
used and one log line says which and why. One bounded metadata request (``HF_HUB_ETAG_TIMEOUT``
seconds, no retries) decides whether the Hub is reachable, so an offline start never waits on
huggingface_hub's retry-with-backoff path.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from petnet import __version__, paths
from petnet.config import PetNetConfig
from petnet.errors import WeightsError
from petnet.inference.animal_check import ANIMAL_CHECK_FILE, AnimalCheck
from petnet.inference.onnx_network import OnnxModel, OnnxNetwork, graph_files

if TYPE_CHECKING:
    from petnet.models.network import PetNet

    Model = PetNet | OnnxModel

log = logging.getLogger(__name__)

DEFAULT_REPO_ID = "petnet/petnet"
"""Hub repo tried when neither an argument nor ``$PETNET_REPO`` names one."""
DEFAULT_REVISION = f"v{__version__}"
"""The revision of :data:`DEFAULT_REPO_ID` asked for: the release tag of this package version.

Nobody has published that tag from this project, and a tag can be moved by whoever owns the repo,
so the pin only says which files to ask for; the SHA-256 comparison with the packaged files decides
whether they are used."""
REPO_ENV_VAR = "PETNET_REPO"
RUNTIMES = ("auto", "onnx", "torch")
ALL_PRECISIONS = ("auto", "float32", "bfloat16", "int8")
"""``precision`` values across the runtimes: bfloat16 is PyTorch's, int8 ONNX Runtime's."""
RUNTIME_ENV_VAR = "PETNET_RUNTIME"
BUNDLED_MODEL_DIR = paths.BUNDLED_MODEL_DIR
"""Weights shipped inside the package (``petnet/weights``), the offline fallback."""

_NOT_ON_HUB = (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError)
# Everything hf_hub_download raises when the Hub cannot deliver: HTTP errors and cache misses are
# OSErrors, OfflineModeIsEnabled is a ConnectionError, transport failures are httpx2 errors.
_HUB_FAILURES = (OSError, httpx2.HTTPError)


def load_model(
    path_or_repo: str | Path | None = None,
    *,
    revision: str | None = None,
    device: str = "cpu",
    fuse: bool = True,
    precision: str = "auto",
    runtime: str | None = None,
    threads: int | None = None,
) -> Model:
    """A ready-to-predict PetNet: ``model.predict(image)``, ``model.predict_batch(images)``, ``model.config``.

    ``path_or_repo`` is a model folder (``config.json`` + weights) or a Hub repo id (``owner/name``;
    ``revision`` picks a branch, tag or commit). ``model.weights_source`` tells which weights were
    loaded (``local: ...``, ``hub: repo@commit``, ``bundled: ...``), ``model.runtime`` what runs them.
    With no repo named, :data:`DEFAULT_REPO_ID` is asked for ``revision`` or :data:`DEFAULT_REVISION`
    and its files are used only if their SHA-256 equals the packaged files'; else one warning and the
    packaged weights.

    ``runtime`` (default ``$PETNET_RUNTIME``, else ``auto``) is ``onnx``, ``torch`` or ``auto``: ONNX
    Runtime on a CPU wherever onnxruntime is installed and the model has ONNX graphs, else PyTorch.
    ONNX Runtime gives a :class:`~petnet.inference.onnx_network.OnnxModel`; ``precision`` is then
    ``auto`` (the graphs ``config.onnx_precision`` names), ``float32`` or ``int8``, and ``threads``
    its threads (default: the CPUs this process may use; given for PyTorch, it sets the process's).
    A missing or corrupt graph falls back to PyTorch with one warning, or raises where PyTorch is
    not installed. ``device`` and ``fuse`` concern PyTorch alone.

    PyTorch gives the :class:`~petnet.models.network.PetNet` module in eval mode on ``device``;
    ``precision`` is ``auto`` (bfloat16 on CPUs that have it in hardware), ``float32`` or
    ``bfloat16``; with ``fuse`` (the default) batch norms are folded into the convolutions for speed:
    pass ``fuse=False`` for a model to fine-tune, save or load a state dict into.
    Raises :class:`~petnet.errors.WeightsError` when no usable weights can be found.
    """
    runtime = choose_runtime(runtime, device, precision)
    named = str(path_or_repo) if path_or_repo is not None else os.environ.get(REPO_ENV_VAR)
    source = named or DEFAULT_REPO_ID
    build = functools.partial(_build, runtime=runtime, device=device, fuse=fuse, precision=precision, threads=threads)
    if Path(source).expanduser().exists() or not _is_repo_id(source):
        directory = Path(source).expanduser()
        if not directory.is_dir():
            raise WeightsError(
                f"No model directory at {directory}. Pass a directory written by PetNet.save_pretrained "
                "(config.json + model.safetensors) or a Hugging Face Hub repo id such as 'owner/name'."
            )
        return build(lambda name: directory / name, f"local: {directory.resolve()}")
    revision = DEFAULT_REVISION if not named and revision is None else revision
    try:
        fetch, label = _hub_fetcher(source, revision, verify=not named)
        return build(fetch, label)
    except (*_HUB_FAILURES, _NotPackagedWeights) as error:
        reason = _explain(error, source, revision)
        log.warning("Running on the bundled weights in %s because %s.", BUNDLED_MODEL_DIR, reason)
    if not (BUNDLED_MODEL_DIR / constants.CONFIG_NAME).is_file():
        raise WeightsError(
            f"No weights available: {reason}, and the bundled weights are missing from {BUNDLED_MODEL_DIR}. "
            f"Connect to the Hugging Face Hub, set ${REPO_ENV_VAR} to a repo id, or pass load_model() "
            "a directory written by PetNet.save_pretrained (e.g. the model/ folder of a training run)."
        )
    return build(lambda name: BUNDLED_MODEL_DIR / name, f"bundled: {BUNDLED_MODEL_DIR.resolve()}")


def choose_runtime(runtime: str | None, device: str = "cpu", precision: str = "auto") -> str:
    """The runtime asked for (one of :data:`RUNTIMES`; default ``$PETNET_RUNTIME``, else ``auto``),
    checked: ``auto`` stays ``auto`` (ONNX Runtime if the model has graphs) on a CPU where onnxruntime
    is installed, and becomes ``torch`` elsewhere or for PyTorch's own ``bfloat16``."""
    runtime = runtime or os.environ.get(RUNTIME_ENV_VAR) or "auto"
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r} (${RUNTIME_ENV_VAR}?).")
    on_cpu = str(device).startswith("cpu")
    if runtime == "auto" and not (on_cpu and _installed("onnxruntime") and precision != "bfloat16"):
        runtime = "torch"
    if runtime == "torch" and not _installed("torch"):
        raise WeightsError("PyTorch runs this model here (runtime, device or precision), and it is not installed: "
                           "pip install 'petnet[torch]'.")  # fmt: skip
    if runtime == "onnx" and not _installed("onnxruntime"):
        raise WeightsError("runtime 'onnx' needs onnxruntime: pip install onnxruntime")
    if runtime == "onnx" and not on_cpu:
        raise ValueError(f"The ONNX runtime runs on the CPU only; use runtime='torch' for device {device!r}.")
    return runtime


@functools.cache
def int8_may_saturate() -> bool:
    """Whether ONNX Runtime's uint8 x int8 convolutions may overflow on this CPU.

    On x86 without VNNI they multiply-add byte pairs into saturating 16-bit sums (``vpmaddubsw``),
    which the shipped graphs, quantized on VNNI machines with the full 8-bit range, overflow: on a
    2-core AVX2-only AMD EPYC, validation breed top-1 was 89.9% against 92.9% in float32 and mean IoU
    0.764 against 0.789 (docs/serving.md). Other architectures (Arm) have no such path. numpy's table
    of the CPU's features is private API; without it nothing is assumed.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "x86", "i386", "i686"):
        return False
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        return False
    return not __cpu_features__.get("AVX512VNNI", False)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _build(fetch: Callable[[str], Path], label: str, *, runtime: str, device: str, fuse: bool, precision: str,
           threads: int | None) -> Model:  # fmt: skip
    """The model of the files ``fetch(name)`` gives (a local path, or a verified download) on ``runtime``."""
    config = PetNetConfig.from_dict(json.loads(_read(fetch(constants.CONFIG_NAME))), label)
    animal_check = _animal_check(fetch, config, threads)
    onnx_precision = config.onnx_precision if precision == "auto" else precision
    if (precision == "auto" and onnx_precision == "int8" and int8_may_saturate()
            and _has_file(fetch, graph_files("float32")[0])):  # fmt: skip
        log.warning("This CPU has no AVX-512 VNNI, where ONNX Runtime's int8 convolutions can overflow and "
                    "answer worse; float32 runs instead (precision='int8' insists).")
        onnx_precision = "float32"  # its graphs were just found: no need to look again below
    elif runtime == "auto" and not _has_file(fetch, graph_files(onnx_precision)[0]):
        log.info("%s has no ONNX graphs (python -m petnet.training.export makes them): PyTorch runs it.", label)
        runtime = "torch"  # a model folder fresh from training, say
    if runtime != "torch":
        try:
            graphs = [fetch(name) for name in graph_files(onnx_precision)]
            model = OnnxModel(OnnxNetwork.from_directory(graphs[0].parent, config, onnx_precision, threads), animal_check)
        except (WeightsError, *_HUB_FAILURES) as error:
            if not _installed("torch"):
                raise WeightsError(f"No usable ONNX graphs ({error}), and PyTorch, the other runtime, is not installed.") from error
            log.warning("Running on PyTorch instead of ONNX Runtime because %s.", error)
            precision = "auto"
        else:
            model.weights_source = label
            return model
    if not _installed("torch"):
        raise WeightsError(f"{label} has no ONNX graphs, and PyTorch, which would run it instead, is not installed "
                           "(pip install 'petnet[torch]').")  # fmt: skip
    import torch  # PyTorch only when it runs the network

    from petnet.models.network import PetNet
    from petnet.models.precision import inference_dtype

    dtype = inference_dtype(precision, device)
    if threads:
        torch.set_num_threads(threads)  # process-wide: PyTorch has no per-model thread count
    model = PetNet.from_pretrained(fetch(constants.SAFETENSORS_SINGLE_FILE).parent)  # beside its config.json
    model.weights_source = label
    model = model.to(device).eval()
    model.inference_dtype = dtype
    model.predictor.animal_check = animal_check
    return model.fuse_for_inference() if fuse else model


def _animal_check(fetch: Callable[[str], Path], config: PetNetConfig, threads: int | None) -> AnimalCheck | None:
    """The other-animal check ``config`` asks for (``None`` where it sets no ``animal_check_threshold``);
    whichever runtime runs the network, ONNX Runtime runs the check. A model folder without its graph
    raises :class:`WeightsError`; a Hub repo without it, the Hub's error (``load_model`` then falls
    back to the packaged weights)."""
    if config.animal_check_threshold is None:
        return None
    return AnimalCheck.from_file(fetch(ANIMAL_CHECK_FILE), threads)


def _has_file(fetch: Callable[[str], Path], name: str) -> bool:
    """Whether the model has file ``name`` (on the Hub: whether the repo or the cache holds it)."""
    try:
        return fetch(name).is_file()
    except (RemoteEntryNotFoundError, LocalEntryNotFoundError):
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise WeightsError(f"Cannot read {path}: {error}") from error


def display_source(model: str) -> str:
    """A local model folder relative to the working directory (``petnet/weights``), else the Hub id."""
    return os.path.relpath(model) if Path(model).exists() else model


def _is_repo_id(name: str) -> bool:
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _hub_fetcher(repo_id: str, revision: str | None, verify: bool) -> tuple[Callable[[str], Path], str]:
    """A function that downloads (or finds in the cache) one file of the repo with
    ``hf_hub_download``; with ``verify``, it raises :class:`_NotPackagedWeights` unless the file is
    the packaged one. Also the ``weights_source`` label of the repo's snapshot."""
    local_files_only = constants.is_offline_mode() or not _hub_answers(repo_id, revision)

    @functools.cache  # the label's config.json, or a graph looked for and then loaded: fetched and checked once
    def fetch(name: str) -> Path:
        path = Path(hf_hub_download(repo_id, name, revision=revision, local_files_only=local_files_only))
        if verify:
            _check_packaged(path, repo_id, revision)
        return path

    snapshot = fetch(constants.CONFIG_NAME).parent  # every file sits in the cache's snapshots/<commit>/ folder
    return fetch, f"hub: {repo_id}@{snapshot.name[:12]}" + (" (cached copy)" if local_files_only else "")


class _NotPackagedWeights(Exception):
    """Files from the default repo differ from the packaged ones; the message says which and how."""


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (about 10 ms for the 9 MB weights, so computed when needed)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_packaged(path: Path, repo_id: str, revision: str | None) -> None:
    """Raise :class:`_NotPackagedWeights` unless the downloaded file hashes like its packaged twin.

    The packaged files are the reference, hashed at run time rather than through a stored digest,
    so the check cannot go stale when the weights in ``petnet/weights`` are replaced.
    """
    packaged = BUNDLED_MODEL_DIR / path.name
    where = f"{path.name} of Hub repo {repo_id}@{revision}"
    if not packaged.is_file():
        raise _NotPackagedWeights(f"{where} cannot be checked: {packaged} is missing")
    got, expected = _sha256(path), _sha256(packaged)
    if got != expected:
        raise _NotPackagedWeights(
            f"{where} has SHA-256 {got[:12]}..., not the packaged {expected[:12]}...; "
            f"name the repo (load_model({repo_id!r}) or ${REPO_ENV_VAR}) to load it anyway"
        )


def _hub_answers(repo_id: str, revision: str | None) -> bool:
    """Whether the Hub answers one metadata request in ``HF_HUB_ETAG_TIMEOUT`` seconds (no retries).

    A missing repo, revision or file is raised (the Hub answered: "no"); network trouble returns
    False so only the cache is consulted, skipping huggingface_hub's minute-long retries.
    """
    url = hf_hub_url(repo_id, constants.CONFIG_NAME, revision=revision)
    try:
        get_hf_file_metadata(url, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except _NOT_ON_HUB:
        raise
    except _HUB_FAILURES as error:
        log.debug("The Hub did not answer for %s: %s", repo_id, error)
        return False
    return True


def _explain(error: BaseException, repo_id: str, revision: str | None) -> str:
    """One short phrase saying why ``repo_id`` could not be loaded from the Hub."""
    if isinstance(error, _NotPackagedWeights):
        return str(error)
    if isinstance(error, RevisionNotFoundError):
        return f"revision {revision!r} of Hub repo {repo_id} does not exist"
    if isinstance(error, RepositoryNotFoundError):
        return f"Hub repo {repo_id} was not found (or is private/gated) at {constants.ENDPOINT}"
    if isinstance(error, RemoteEntryNotFoundError):
        return f"Hub repo {repo_id} lacks a model file ({error})"
    if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        why = "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else f"{constants.ENDPOINT} is unreachable"
        return f"{why} and Hub repo {repo_id} is not in the cache ({constants.HF_HUB_CACHE})"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"loading Hub repo {repo_id} failed ({type(error).__name__}: {first_line})"
