"""The demo served for real on a loopback port and called the way users' scripts call it: gradio_client."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app.demo import build_demo, example_paths, launch_options
from petnet.images import NOT_A_PICTURE
from petnet.paths import BUNDLED_MODEL_DIR, PROJECT_ROOT

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    demo = build_demo()
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True, **launch_options()
    )
    try:
        yield url.rstrip("/")
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Client:
    return Client(server_url, verbose=False, analytics_enabled=False, download_files=tmp_path_factory.mktemp("dl"))


def test_predict_endpoint_returns_results(client: Client) -> None:
    overlay, verdict, details, preview, downloads = client.predict(
        handle_file(example_paths()[0]), 0.5, api_name="/predict"
    )
    assert Image.open(overlay).size == (256, 256) and Path(overlay).name == "Abyssinian_202_overlay.png"
    assert set(details) >= {"has_pet", "pet_score", "pets", "species", "breed"}
    assert len(details["pets"]) >= 1 if details["has_pet"] else details["pets"] == []
    for pet in details["pets"]:
        assert pet["species"] in {"cat", "dog"} and len(pet["breed"]) == 3 and len(pet["box"]) == 4
    names = [Path(path).name for path in downloads]
    assert names[0] == "Abyssinian_202_overlay.png" and names[-1] == "Abyssinian_202_mask.png"
    mask = Image.open(downloads[-1])
    assert mask.mode == "P" and set(np.unique(np.asarray(mask))) <= {0, 1, 2}
    assert ("sure" in verdict) == details["has_pet"] == (preview is not None)


def test_bad_upload_is_reported_and_server_keeps_serving(client: Client, tmp_path: Path) -> None:
    fake = tmp_path / "cat.jpg"
    fake.write_text("definitely not a jpeg")
    overlay, verdict, details, _, downloads = client.predict(handle_file(str(fake)), 0.5, api_name="/predict")
    assert details == {"error": NOT_A_PICTURE} and overlay is None and downloads is None
    assert "cat.jpg" in verdict
    assert "has_pet" in client.predict(handle_file(example_paths()[1]), 0.5, api_name="/predict")[2]


def test_concurrent_calls_are_batched_and_all_answered(client: Client) -> None:
    jobs = [client.submit(handle_file(path), 0.5, api_name="/predict") for path in example_paths()]
    assert all("has_pet" in job.result(timeout=120)[2] for job in jobs)


def test_only_the_examples_are_served_from_disk(server_url: str) -> None:
    def status(path: Path | str) -> int:
        return httpx.get(f"{server_url}/gradio_api/file={path}", timeout=10).status_code

    assert status(example_paths()[0]) == 200
    assert status(PROJECT_ROOT / "app.py") == 403
    assert status(BUNDLED_MODEL_DIR / "config.json") == 403
    assert status(PROJECT_ROOT / "assets" / "examples") != 200  # no directory listing
    assert status("/etc/passwd") == 403


def test_uploads_over_the_size_limit_are_refused(server_url: str) -> None:
    too_big = b"\xff\xd8" + bytes(11 * 1024 * 1024)
    response = httpx.post(
        f"{server_url}/gradio_api/upload", files={"files": ("big.jpg", too_big, "image/jpeg")}, timeout=30
    )
    assert response.status_code == 413
