"""Find PetNet weights and load them: a local directory, a Hugging Face Hub repo, or the bundled copy.

Resolution order of :func:`load_model`:

1. an explicit local directory (``config.json`` + ``model.safetensors``) or Hub repo id;
2. the Hub repo named by ``$PETNET_REPO``;
3. :data:`DEFAULT_REPO_ID` at the pinned :data:`DEFAULT_REVISION`, used only if its files are
   byte-for-byte the packaged ones (SHA-256), because that repo is not under this project's control;
4. the weights bundled inside the package, ``petnet/weights``.

A repo the user names (argument or ``$PETNET_REPO``) loads what it holds, unchecked: the user chose it.

Downloads and the cache are huggingface_hub's own (``hf_hub_download``); ``HF_ENDPOINT``,
``HF_HOME`` and ``HF_HUB_OFFLINE`` work as usual. When the Hub cannot deliver (offline mode, no
network, unknown repo) or the default repo's files fail the SHA-256 check, the bundled weights are
used and one log line says which and why. One bounded metadata request (``HF_HUB_ETAG_TIMEOUT``
seconds, no retries) decides whether the Hub is reachable, so an offline start never waits on
huggingface_hub's retry-with-backoff path.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

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
from petnet.errors import WeightsError
from petnet.models.network import PetNet
from petnet.models.precision import inference_dtype

log = logging.getLogger(__name__)

DEFAULT_REPO_ID = "petnet/petnet"
"""Hub repo tried when neither an argument nor ``$PETNET_REPO`` names one."""
DEFAULT_REVISION = f"v{__version__}"
"""The revision of :data:`DEFAULT_REPO_ID` asked for: the release tag of this package version.

Nobody has published that tag from this project, and a tag can be moved by whoever owns the repo,
so the pin only says which files to ask for; the SHA-256 comparison with the packaged files decides
whether they are used."""
REPO_ENV_VAR = "PETNET_REPO"
BUNDLED_MODEL_DIR = paths.BUNDLED_MODEL_DIR
"""Weights shipped inside the package (``petnet/weights``), the offline fallback."""

_MODEL_FILES = (constants.CONFIG_NAME, constants.SAFETENSORS_SINGLE_FILE)
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
) -> PetNet:
    """A ready-to-predict :class:`PetNet` in eval mode on ``device``.

    ``path_or_repo`` is a directory written by ``PetNet.save_pretrained`` or a Hub repo id
    (``owner/name``; ``revision`` picks a branch, tag or commit). ``model.weights_source`` tells
    which weights were loaded (``local: ...``, ``hub: repo@commit``, ``bundled: ...``).
    With no repo named, :data:`DEFAULT_REPO_ID` is asked for ``revision`` or :data:`DEFAULT_REVISION`
    and its files are used only if their SHA-256 equals the packaged files'; else one warning and the
    packaged weights. With ``fuse`` (the default) batch norms are folded into the convolutions for speed
    (:meth:`PetNet.fuse_for_inference`); pass ``fuse=False`` for a model to fine-tune, save or
    load a state dict into. ``precision`` is what the network computes in (``auto``, ``float32`` or
    ``bfloat16``; ``auto`` = bfloat16 on CPUs that have it in hardware, :mod:`petnet.models.precision`).
    Raises :class:`~petnet.errors.WeightsError` when no usable weights can be found.
    """
    dtype = inference_dtype(precision, device)
    named = str(path_or_repo) if path_or_repo is not None else os.environ.get(REPO_ENV_VAR)
    source = named or DEFAULT_REPO_ID
    if Path(source).expanduser().exists() or not _is_repo_id(source):
        model = _load_directory(Path(source).expanduser(), "local")
    else:
        revision = DEFAULT_REVISION if not named and revision is None else revision
        try:
            model = _load_from_hub(source, revision, verify=not named)
        except (*_HUB_FAILURES, _NotPackagedWeights) as error:
            reason = _explain(error, source, revision)
            log.warning("Running on the bundled weights in %s because %s.", BUNDLED_MODEL_DIR, reason)
            model = _load_bundled(reason)
    model = model.to(device).eval()
    model.inference_dtype = dtype
    return model.fuse_for_inference() if fuse else model


def display_source(model: str) -> str:
    """A local model folder relative to the working directory (``petnet/weights``), else the Hub id."""
    return os.path.relpath(model) if Path(model).exists() else model


def _is_repo_id(name: str) -> bool:
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _load_directory(directory: Path, kind: str) -> PetNet:
    if not directory.is_dir():
        raise WeightsError(
            f"No model directory at {directory}. Pass a directory written by PetNet.save_pretrained "
            "(config.json + model.safetensors) or a Hugging Face Hub repo id such as 'owner/name'."
        )
    model = PetNet.from_pretrained(directory)
    model.weights_source = f"{kind}: {directory.resolve()}"
    return model


def _load_bundled(reason: str) -> PetNet:
    if not all((BUNDLED_MODEL_DIR / name).is_file() for name in _MODEL_FILES):
        raise WeightsError(
            f"No weights available: {reason}, and the bundled weights are missing from {BUNDLED_MODEL_DIR}. "
            f"Connect to the Hugging Face Hub, set ${REPO_ENV_VAR} to a repo id, or pass load_model() "
            "a directory written by PetNet.save_pretrained (e.g. the model/ folder of a training run)."
        )
    return _load_directory(BUNDLED_MODEL_DIR, "bundled")


def _load_from_hub(repo_id: str, revision: str | None, verify: bool) -> PetNet:
    """Download (or find in the cache) config + weights with ``hf_hub_download``, then load them;
    with ``verify``, only if they are the packaged files (raises :class:`_NotPackagedWeights`)."""
    local_files_only = constants.is_offline_mode() or not _hub_answers(repo_id, revision)
    files = [
        Path(hf_hub_download(repo_id, name, revision=revision, local_files_only=local_files_only))
        for name in _MODEL_FILES
    ]
    if verify:
        _check_packaged(files, repo_id, revision)
    snapshot = files[0].parent  # both files sit in the cache's snapshots/<commit>/ folder
    model = PetNet.from_pretrained(snapshot)
    model.weights_source = f"hub: {repo_id}@{snapshot.name[:12]}" + (" (cached copy)" if local_files_only else "")
    return model


class _NotPackagedWeights(Exception):
    """Files from the default repo differ from the packaged ones; the message says which and how."""


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (about 10 ms for the 9 MB weights, so computed when needed)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_packaged(downloaded: list[Path], repo_id: str, revision: str | None) -> None:
    """Raise :class:`_NotPackagedWeights` unless each downloaded file hashes like its packaged twin.

    The packaged files are the reference, hashed at run time rather than through a stored digest,
    so the check cannot go stale when the weights in ``petnet/weights`` are replaced.
    """
    for path in downloaded:
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
        return f"Hub repo {repo_id} has no {' + '.join(_MODEL_FILES)}"
    if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        why = "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else f"{constants.ENDPOINT} is unreachable"
        return f"{why} and Hub repo {repo_id} is not in the cache ({constants.HF_HUB_CACHE})"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"loading Hub repo {repo_id} failed ({type(error).__name__}: {first_line})"
