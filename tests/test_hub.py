"""load_model: resolution order, the real huggingface_hub download path against a loopback Hub,
offline mode with a warm cache, the pinned and SHA-256-checked default repo, and the bundled
fallback (one log line, no retry loop)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch
from huggingface_hub import constants

from petnet import hub, paths
from petnet.config import PetNetConfig
from petnet.errors import WeightsError
from petnet.hub import load_model
from petnet.models.network import PetNet

REPO_ID = "petnet-tests/tiny"
BUNDLED_COPY_REPO_ID = "petnet-tests/bundled-copy"
"""Serves the same files as the tests' bundled weights: what the pinned default repo should hold."""
TAMPERED_REPO_ID = "petnet-tests/tampered"
"""The bundled config.json beside a model.safetensors that differs in one weight."""
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")


class LoopbackHub:
    """The two Hub endpoints ``hf_hub_download`` uses (HEAD/GET ``/{repo}/resolve/{rev}/{file}``),
    serving model directories from memory, with the headers and error codes the real Hub sends.
    Every repo has one commit, reachable as ``main``, by its id or by one of ``tags``."""

    def __init__(self, repos: dict[str, Path], tags: tuple[str, ...] = ()) -> None:
        self.files = {repo: {p.name: p.read_bytes() for p in folder.iterdir()} for repo, folder in repos.items()}
        self.commits = {repo: hashlib.sha1(repo.encode()).hexdigest() for repo in repos}
        self.tags = tags
        self.requests: list[str] = []
        hub_state = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                hub_state._answer(self, with_body=False)

            def do_GET(self) -> None:
                hub_state._answer(self, with_body=True)

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _answer(self, request: BaseHTTPRequestHandler, with_body: bool) -> None:
        self.requests.append(f"{request.command} {request.path}")
        match = _RESOLVE.match(unquote(request.path))
        repo, revision, filename = match.group("repo", "revision", "filename") if match else (None, None, None)
        if repo not in self.files:
            return self._error(request, "RepoNotFound")
        commit = self.commits[repo]
        if revision not in ("main", commit, *self.tags):
            return self._error(request, "RevisionNotFound")
        if filename not in self.files[repo]:
            return self._error(request, "EntryNotFound", commit)
        body = self.files[repo][filename]
        request.send_response(200)
        request.send_header("X-Repo-Commit", commit)
        request.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if with_body:
            request.wfile.write(body)

    @staticmethod
    def _error(request: BaseHTTPRequestHandler, code: str, commit: str | None = None) -> None:
        request.send_response(404)
        request.send_header("X-Error-Code", code)
        if commit:
            request.send_header("X-Repo-Commit", commit)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _save_tiny_model(directory: Path, image_size: int) -> Path:
    """A small random PetNet; ``image_size`` tells the copies apart after loading."""
    torch.manual_seed(image_size)
    PetNet(PetNetConfig(image_size=image_size)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    dirs = {name: _save_tiny_model(root / name, size) for name, size in [("hub", 64), ("local", 96), ("bundled", 32)]}
    dirs["tampered"] = shutil.copytree(dirs["bundled"], root / "tampered")
    _flip_last_byte(dirs["tampered"] / "model.safetensors")
    return dirs


def _flip_last_byte(path: Path) -> None:
    """Change one weight of a safetensors file (the last byte is tensor data), keeping it loadable."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def loopback_hub(model_dirs: dict[str, Path]) -> Iterator[LoopbackHub]:
    repos = {REPO_ID: model_dirs["hub"], BUNDLED_COPY_REPO_ID: model_dirs["bundled"],
             TAMPERED_REPO_ID: model_dirs["tampered"]}  # fmt: skip
    server = LoopbackHub(repos, tags=(hub.DEFAULT_REVISION,))
    yield server
    server.close()


def _point_hub_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, cache: Path, offline: bool = False) -> None:
    """What HF_ENDPOINT / HF_HUB_CACHE / HF_HUB_OFFLINE set at import time, changed for one test."""
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


@pytest.fixture
def hub_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, loopback_hub: LoopbackHub, model_dirs: dict[str, Path]
) -> LoopbackHub:
    """Loopback Hub, empty cache, no $PETNET_REPO, a tiny model as the bundled weights, which have no
    ONNX graphs: PyTorch runs them (tests/test_onnx.py covers the other runtime's files)."""
    _point_hub_at(monkeypatch, loopback_hub.endpoint, tmp_path / "hf-cache")
    monkeypatch.delenv(hub.REPO_ENV_VAR, raising=False)
    monkeypatch.setenv(hub.RUNTIME_ENV_VAR, "torch")
    monkeypatch.setattr(hub, "BUNDLED_MODEL_DIR", model_dirs["bundled"])
    loopback_hub.requests.clear()
    return loopback_hub


def _fallback_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "petnet.hub" and r.levelno >= logging.WARNING]


def test_downloads_from_the_hub_through_hf_hub_download(hub_env: LoopbackHub, tmp_path: Path) -> None:
    model = load_model(REPO_ID)
    assert model.config.image_size == 64
    assert model.weights_source.startswith(f"hub: {REPO_ID}@")
    assert not model.training
    snapshots = list((tmp_path / "hf-cache").glob("models--petnet-tests--tiny/snapshots/*/model.safetensors"))
    assert len(snapshots) == 1, "the file must land in huggingface_hub's cache layout"
    assert any(r.startswith("GET") and r.endswith("model.safetensors") for r in hub_env.requests)


def test_hub_weights_equal_the_saved_ones(hub_env: LoopbackHub, model_dirs: dict[str, Path]) -> None:
    from_hub = load_model(REPO_ID, fuse=False).state_dict()
    from_disk = PetNet.from_pretrained(model_dirs["hub"]).state_dict()
    assert from_hub.keys() == from_disk.keys()
    assert all(torch.equal(from_hub[k], from_disk[k]) for k in from_hub)


def test_petnet_repo_env_names_the_repo(hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hub.REPO_ENV_VAR, REPO_ID)
    assert load_model().config.image_size == 64


def test_explicit_directory_beats_petnet_repo(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, model_dirs: dict[str, Path]
) -> None:
    monkeypatch.setenv(hub.REPO_ENV_VAR, REPO_ID)
    model = load_model(model_dirs["local"])
    assert model.config.image_size == 96
    assert model.weights_source == f"local: {model_dirs['local'].resolve()}"
    assert hub_env.requests == [], "a local directory must not touch the network"


def test_explicit_repo_beats_petnet_repo(hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hub.REPO_ENV_VAR, "petnet-tests/other")
    assert load_model(REPO_ID).config.image_size == 64


def _requested_revisions(hub_state: LoopbackHub) -> set[str]:
    return {_RESOLVE.match(unquote(r.split()[1])).group("revision") for r in hub_state.requests}


def test_default_repo_is_asked_for_the_pinned_revision_and_used_when_it_holds_the_packaged_files(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hub, "DEFAULT_REPO_ID", BUNDLED_COPY_REPO_ID)
    model = load_model()
    assert model.weights_source.startswith(f"hub: {BUNDLED_COPY_REPO_ID}@")
    assert _requested_revisions(hub_env) == {hub.DEFAULT_REVISION}
    assert _fallback_records(caplog) == []


def test_default_repo_with_other_weights_gives_one_warning_and_the_packaged_weights(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, model_dirs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hub, "DEFAULT_REPO_ID", TAMPERED_REPO_ID)
    model = load_model()
    assert model.weights_source == f"bundled: {model_dirs['bundled'].resolve()}"
    assert any(r.startswith("GET") and r.endswith("model.safetensors") for r in hub_env.requests)
    [record] = _fallback_records(caplog)
    message = record.getMessage()
    assert f"model.safetensors of Hub repo {TAMPERED_REPO_ID}@{hub.DEFAULT_REVISION} has SHA-256" in message
    assert hashlib.sha256((model_dirs["bundled"] / "model.safetensors").read_bytes()).hexdigest()[:12] in message


def test_a_cached_copy_of_the_default_repo_is_checked_too(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hub, "DEFAULT_REPO_ID", BUNDLED_COPY_REPO_ID)
    assert load_model().weights_source.startswith("hub: ")
    [cached] = (tmp_path / "hf-cache").glob("models--petnet-tests--bundled-copy/snapshots/*/model.safetensors")
    _flip_last_byte(cached.resolve())  # the snapshot entry links to the blob
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert load_model().weights_source.startswith("bundled: ")
    [record] = _fallback_records(caplog)
    assert "has SHA-256" in record.getMessage()


@pytest.mark.parametrize("named_by", ["argument", "environment"])
def test_naming_the_default_repo_loads_what_it_holds_at_main(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, named_by: str
) -> None:
    monkeypatch.setattr(hub, "DEFAULT_REPO_ID", TAMPERED_REPO_ID)
    if named_by == "environment":
        monkeypatch.setenv(hub.REPO_ENV_VAR, TAMPERED_REPO_ID)
    model = load_model(TAMPERED_REPO_ID if named_by == "argument" else None)
    assert model.weights_source.startswith(f"hub: {TAMPERED_REPO_ID}@")
    assert _requested_revisions(hub_env) == {"main"}
    assert _fallback_records(caplog) == []


def test_unknown_repo_falls_back_to_bundled_with_one_log_line(
    hub_env: LoopbackHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    model = load_model("petnet-tests/does-not-exist")
    assert model.config.image_size == 32
    assert model.weights_source.startswith("bundled: ")
    [record] = _fallback_records(caplog)
    assert "bundled weights" in record.getMessage() and "was not found" in record.getMessage()


def test_unknown_revision_falls_back_and_says_so(hub_env: LoopbackHub, caplog: pytest.LogCaptureFixture) -> None:
    model = load_model(REPO_ID, revision="v9")
    assert model.weights_source.startswith("bundled: ")
    [record] = _fallback_records(caplog)
    assert "revision 'v9'" in record.getMessage()


def test_offline_mode_with_warm_cache_loads_the_cached_copy(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    load_model(REPO_ID)  # populate the cache
    hub_env.requests.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = load_model(REPO_ID)
    assert model.config.image_size == 64
    assert model.weights_source.endswith("(cached copy)")
    assert hub_env.requests == []
    assert _fallback_records(caplog) == []


def test_unreachable_hub_with_warm_cache_loads_the_cached_copy(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    load_model(REPO_ID)
    _point_hub_at(monkeypatch, f"http://127.0.0.1:{_closed_port()}", tmp_path / "hf-cache")
    assert load_model(REPO_ID).weights_source.endswith("(cached copy)")


def test_offline_mode_without_cache_falls_back_quickly(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    model = load_model(REPO_ID)
    elapsed = time.perf_counter() - start
    assert model.weights_source.startswith("bundled: ")
    assert hub_env.requests == []
    [record] = _fallback_records(caplog)
    assert "HF_HUB_OFFLINE is set" in record.getMessage()
    assert elapsed < 15, f"offline fallback took {elapsed:.1f}s"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_refused_connection_falls_back_without_retry_backoff(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """huggingface_hub alone would retry 5 times with 1+2+4+8+8 s of backoff before giving up."""
    _point_hub_at(monkeypatch, f"http://127.0.0.1:{_closed_port()}", tmp_path / "empty-cache")
    start = time.perf_counter()
    model = load_model(REPO_ID)
    elapsed = time.perf_counter() - start
    assert model.weights_source.startswith("bundled: ")
    [record] = _fallback_records(caplog)
    assert "unreachable" in record.getMessage()
    assert elapsed < 15, f"fallback took {elapsed:.1f}s"


def test_silent_server_is_bounded_by_the_etag_timeout(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A Hub that accepts the connection but never answers costs HF_HUB_ETAG_TIMEOUT, not minutes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        _point_hub_at(monkeypatch, f"http://127.0.0.1:{silent.getsockname()[1]}", tmp_path / "empty-cache")
        monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)
        start = time.perf_counter()
        model = load_model(REPO_ID)
        elapsed = time.perf_counter() - start
    assert model.weights_source.startswith("bundled: ")
    assert elapsed < 15, f"fallback took {elapsed:.1f}s"


def test_missing_bundled_weights_raise_weights_error(
    hub_env: LoopbackHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(hub, "BUNDLED_MODEL_DIR", tmp_path / "nowhere")
    with pytest.raises(WeightsError, match="bundled weights are missing"):
        load_model("petnet-tests/does-not-exist")


@pytest.mark.parametrize("name", ["no/such/dir/model", "./missing-model"])
def test_missing_local_directory_raises_weights_error(hub_env: LoopbackHub, name: str) -> None:
    with pytest.raises(WeightsError, match="No model directory"):
        load_model(name)
    assert hub_env.requests == []


def test_directory_without_weights_raises_weights_error(hub_env: LoopbackHub, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match="model.safetensors"):
        load_model(tmp_path)


def test_bundled_weights_are_the_offline_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With nothing configured and the Hub out of reach, the project's own weights answer."""
    if not (hub.BUNDLED_MODEL_DIR / "model.safetensors").is_file():
        pytest.skip("no bundled weights in this checkout")
    _point_hub_at(monkeypatch, f"http://127.0.0.1:{_closed_port()}", tmp_path / "empty-cache", offline=True)
    monkeypatch.delenv(hub.REPO_ENV_VAR, raising=False)
    for runtime in hub.RUNTIMES[1:]:
        model = load_model(runtime=runtime)
        assert model.weights_source == f"bundled: {paths.BUNDLED_MODEL_DIR}" and model.runtime.startswith(runtime)
        assert model.predict(torch.zeros(3, model.config.image_size, model.config.image_size)).species in {"cat", "dog"}


def _run_python(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_environment_variables_drive_a_fresh_process(loopback_hub: LoopbackHub, tmp_path: Path) -> None:
    """HF_ENDPOINT / HF_HOME / PETNET_REPO / HF_HUB_OFFLINE as a user sets them (read at import)."""
    script = "import petnet; m = petnet.load_model(); print(m.weights_source, m.config.image_size)"
    env = {**os.environ, "HF_ENDPOINT": loopback_hub.endpoint, "HF_HOME": str(tmp_path / "hf-home"),
           hub.REPO_ENV_VAR: REPO_ID, hub.RUNTIME_ENV_VAR: "torch"}  # fmt: skip
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_HUB_CACHE", None)
    online = _run_python(script, env)
    assert online.returncode == 0, online.stderr
    assert online.stdout.startswith(f"hub: {REPO_ID}@") and online.stdout.split()[-1] == "64"
    assert online.stderr.strip() == "", "loading from the Hub prints nothing"
    loopback_hub.requests.clear()
    offline = _run_python(script, {**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr
    assert "(cached copy)" in offline.stdout and offline.stdout.split()[-1] == "64"
    assert loopback_hub.requests == []


def test_package_exports_load_lazily() -> None:
    """``import petnet`` alone does not pull in torch; the exported names resolve on first use."""
    script = (
        "import sys, petnet; assert 'torch' not in sys.modules, 'torch imported eagerly'; "
        "print(petnet.__version__, len(petnet.BREEDS), petnet.SPECIES, petnet.WeightsError.__name__); "
        "from petnet import load_model, PetNet, PetNetConfig, Prediction; print(load_model.__module__)"
    )
    completed = _run_python(script, dict(os.environ))
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["0.1.0 37 ('cat', 'dog') WeightsError", "petnet.hub"]
