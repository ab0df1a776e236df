"""The demo served for real on a loopback port and called the way users' scripts call it: gradio_client."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import PROJECT_ROOT
from gradio_client import Client, handle_file
from PIL import Image

from app.demo import (
    BAD_OPACITY,
    MAX_CALL_BYTES,
    MISSING_UPLOAD,
    REMOTE_FILE,
    DemoSettings,
    build_demo,
    example_paths,
    launch_options,
)
from petnet.images import NOT_A_PICTURE
from petnet.paths import BUNDLED_MODEL_DIR

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
    assert Image.open(overlay).size == (256, 256) and Path(overlay).name == "overlay-Abyssinian_202.jpg"
    assert set(details) >= {"has_pet", "pet_score", "pets", "species", "breed"}
    assert len(details["pets"]) >= 1 if details["has_pet"] else details["pets"] == []
    for pet in details["pets"]:
        assert pet["species"] in {"cat", "dog"} and len(pet["breed"]) == 3 and len(pet["box"]) == 4
    names = [Path(path).name for path in downloads]
    assert names[0] == "overlay-Abyssinian_202.jpg" and names[-1] == "mask-Abyssinian_202.png"
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


def test_an_upload_form_holds_one_photos_worth(server_url: str) -> None:
    """Gradio limits each file of an upload form, not their number (up to 1,000): files that are
    each within the limit but together over it are refused, and one photo at the limit is not. A
    body must say its length: the server would read chunks whatever length is declared beside them."""
    limit = DemoSettings().max_file_bytes

    def upload(*sizes: int, chunked: bool = False) -> httpx.Response:
        files = [("files", (f"photo{i}.jpg", b"\xff\xd8" + bytes(size - 2), "image/jpeg")) for i, size in enumerate(sizes)]
        form = httpx.Request("POST", f"{server_url}/gradio_api/upload", files=files)
        body = form.read()
        content = (body[start : start + (1 << 20)] for start in range(0, len(body), 1 << 20)) if chunked else body
        return httpx.post(form.url, content=content, headers={"content-type": form.headers["content-type"]}, timeout=30)

    assert upload(*[limit // 8] * 12).status_code == 413
    accepted = upload(limit - 1024)
    assert accepted.status_code == 200 and len(accepted.json()) == 1
    assert upload(1024, chunked=True).status_code == 411
    form = httpx.Request("POST", f"{server_url}/gradio_api/upload", files=[("files", ("p.jpg", bytes(limit // 8), "image/jpeg"))] * 12)
    body = form.read()
    chunks = b"".join(b"%x\r\n%b\r\n" % (len(body[at : at + 65536]), body[at : at + 65536]) for at in range(0, len(body), 65536))
    head = (f"POST /gradio_api/upload HTTP/1.1\r\nHost: {form.url.host}\r\nContent-Type: {form.headers['content-type']}\r\n"
            "Content-Length: 1000\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")  # fmt: skip
    with socket.create_connection((form.url.host, form.url.port), timeout=30) as raw, ThreadPoolExecutor(1) as sender:
        sender.submit(raw.sendall, head.encode() + chunks + b"0\r\n\r\n")  # refused unread: the send may be cut off
        assert raw.recv(64).startswith(b"HTTP/1.1 411")


def test_the_server_fetches_no_link_and_takes_files_only_as_uploads(server_url: str) -> None:
    """``GET /file=<link>`` would make the server a proxy to any public address; forms sent to
    Gradio's recording and component routes land in the system's temporary folder, where a form
    left mid-way stays. Upload progress ids are the page's short ones."""
    for link in ("http://example.com/cat.jpg", "HTTPS://example.com/cat.jpg"):
        refused = httpx.get(f"{server_url}/gradio_api/file={link}", timeout=30)
        assert refused.status_code == 400 and refused.json() == {"error": REMOTE_FILE}
    for route in ("process_recording", "component_server", "component_server/"):
        form = httpx.post(f"{server_url}/gradio_api/{route}", files={"video": ("a.webm", b"x" * 1000)}, timeout=30)
        assert form.status_code == 404, route
    photo = {"files": ("cat.jpg", Path(example_paths()[0]).read_bytes(), "image/jpeg")}
    assert httpx.post(f"{server_url}/gradio_api/upload?upload_id=k3j9x0q2m1", files=photo, timeout=30).status_code == 200
    assert httpx.post(f"{server_url}/gradio_api/upload?upload_id={'x' * 4096}", files=photo, timeout=30).status_code == 400


def test_sessions_are_named_as_clients_name_them(server_url: str) -> None:
    """Gradio keeps bookkeeping per session id until the session's stream closes: a stranger's
    60 KB ids cost 360 KB each, so only ids of the page's and gradio_client's kind are taken."""
    long_id = "a" * 60_000
    join = {"data": [None, 0.5], "fn_index": 1, "session_hash": long_id}
    assert httpx.post(f"{server_url}/gradio_api/queue/join", json=join, timeout=30).status_code == 400
    assert httpx.get(f"{server_url}/gradio_api/queue/data", params={"session_hash": long_id}, timeout=30).status_code == 400
    assert httpx.get(f"{server_url}/gradio_api/heartbeat/{long_id}", timeout=30).status_code == 400
    assert httpx.post(f"{server_url}/gradio_api/queue/join", json={**join, "session_hash": "k3j9x0q2m1"}, timeout=30).status_code == 200
    assert launch_options()["state_session_capacity"] == DemoSettings().state_session_capacity


def test_calls_go_through_the_queue_and_each_visitor_has_a_share_of_it(server_url: str) -> None:
    """Gradio's direct routes would run the network outside the queue's bound and concurrency limit,
    any number at once and a batch of any size per call: they are closed. The guard knows each
    visitor's calls in the queue (the visitor as uvicorn tells it, here from the forwarded header
    of a loopback proxy)."""
    photo = {"path": example_paths()[0]}
    for route in ("run", "api"):
        direct = httpx.post(f"{server_url}/gradio_api/{route}/predict", json={"data": [[photo] * 8, [0.5] * 8], "batched": True}, timeout=30)
        assert direct.status_code == 404, direct.text
    share = DemoSettings.from_environ().max_calls_per_visitor
    assert launch_options()["app_kwargs"]["middleware"][0].kwargs["max_calls"] == share
    with ThreadPoolExecutor(40) as pool:  # one stranger's 40 calls at once: 8 at a time are taken, more as some end
        posted = list(pool.map(lambda _: httpx.post(f"{server_url}/gradio_api/call/predict", json={"data": [photo, 0.5]},
                                                     headers={"x-forwarded-for": "203.0.113.7"}, timeout=60), range(40)))  # fmt: skip
    statuses = [answer.status_code for answer in posted]
    assert set(statuses) == {200, 429} and statuses.count(200) >= share
    assert "has_pet" in _raw_call(server_url, example_paths()[0])[2]  # another visitor (this one) is served


def _raw_call(server_url: str, path: str) -> list:
    """POST /gradio_api/call/predict with a bare ``{"path": ...}`` (no upload, no meta), as a
    hostile script would; returns the outputs of the ``complete`` event."""
    posted = httpx.post(f"{server_url}/gradio_api/call/predict", json={"data": [{"path": path}, 0.5]}, timeout=30)
    event_id = posted.json()["event_id"]
    with httpx.stream("GET", f"{server_url}/gradio_api/call/predict/{event_id}", timeout=120) as stream:
        lines = list(stream.iter_lines())
    event = next(i for i, line in enumerate(lines) if line.startswith("event:"))
    assert lines[event] == "event: complete", lines
    return json.loads(lines[event + 1].removeprefix("data:"))


def test_raw_api_calls_cannot_read_server_files(server_url: str, tmp_path: Path) -> None:
    server_photo = tmp_path / "server_photo.jpg"
    Image.open(example_paths()[0]).save(server_photo)
    link = tmp_path / "link.jpg"
    link.symlink_to(server_photo)
    for path in (server_photo, "/etc/hostname", tmp_path / "missing.jpg", link, "/proc/self/mem"):
        overlay, _, details, preview, downloads = _raw_call(server_url, str(path))
        assert details == {"error": MISSING_UPLOAD} and overlay is preview is downloads is None
    assert "has_pet" in _raw_call(server_url, example_paths()[0])[2]  # the bundled examples stay open


def test_a_hostile_request_fails_alone_in_a_batch(server_url: str) -> None:
    hostile = ("/proc/self/mem", "/etc/hostname")
    paths = [*example_paths()[:3], hostile[0], *example_paths()[3:6], hostile[1]]
    with ThreadPoolExecutor(len(paths)) as pool:
        answers = list(pool.map(lambda path: _raw_call(server_url, path)[2], paths))
    for path, details in zip(paths, answers, strict=True):
        assert details == {"error": MISSING_UPLOAD} if path in hostile else "has_pet" in details


def test_a_file_named_by_a_link_is_refused_before_gradio_fetches_it(server_url: str) -> None:
    """Gradio would download a linked file (no size limit) before the event runs: the server refuses it."""
    for link in ("https://example.com/cat.jpg", " HTTP://example.com/big.bin"):
        data = {"data": [{"path": link, "meta": {"_type": "gradio.FileData"}}, 0.5]}
        for route in ("/gradio_api/call/predict", "/gradio_api/queue/join"):
            body = data if route.endswith("predict") else {**data, "fn_index": 0, "session_hash": "probe"}
            # FastAPI reads each as JSON: +json types, a non-breaking space, the first of two headers
            for content_type in (["application/json"], [], ["application/x-petnet+json"], ["application/json\xa0"],
                                 ["application/json", "multipart/form-data; boundary=x"]):  # fmt: skip
                headers = [(b"content-type", kind.encode("latin-1")) for kind in content_type]
                refused = httpx.post(f"{server_url}{route}", content=json.dumps(body).encode(), headers=headers, timeout=30)
                assert refused.status_code == 400 and refused.json() == {"error": REMOTE_FILE}, content_type
    # a call is a few hundred bytes; a large one costs Gradio's parser hundreds of megabytes
    padded = httpx.post(f"{server_url}/gradio_api/call/predict", json={"data": [None, 0.5], "pad": "x" * MAX_CALL_BYTES}, timeout=30)
    assert padded.status_code == 413
    deep = b'{"data": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    unreadable = httpx.post(f"{server_url}/gradio_api/call/predict", content=deep, headers={"content-type": "application/json"}, timeout=30)
    assert unreadable.status_code == 400
    assert "has_pet" in _raw_call(server_url, example_paths()[0])[2]  # a photo's path still goes through


def test_an_opacity_that_is_no_number_is_refused_in_words(server_url: str) -> None:
    posted = httpx.post(f"{server_url}/gradio_api/call/predict", json={"data": [{"path": example_paths()[0]}, "0.5"]}, timeout=30)
    with httpx.stream("GET", f"{server_url}/gradio_api/call/predict/{posted.json()['event_id']}", timeout=120) as stream:
        lines = list(stream.iter_lines())
    assert json.loads(lines[lines.index("event: complete") + 1].removeprefix("data:"))[2] == {"error": BAD_OPACITY}
