"""The demo in a real browser: headless Chromium uploads a photo and sees species and breed bars.

Set ``PETNET_SCREENSHOTS=1`` to refresh the README screenshot ``docs/images/app.png``; otherwise the
screenshot goes to pytest's temporary directory.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.demo import PROJECT_ROOT, build_demo, example_paths, launch_options

CHROMIUM = Path("/usr/bin/chromium")
SPECIES_TEXT = re.compile(r"^(Cat|Dog) · \d+% sure$")
"""Species text as the demo writes it, e.g. 'Dog · 95% sure'."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (CI installs the chromium package)"),
]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = build_demo()
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options()
    )
    try:
        yield url
    finally:
        demo.close()


def test_upload_shows_results_slider_redraws_bad_file_gets_friendly_error(server_url: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server_url, timeout=30_000)  # Gradio keeps a connection open: no "networkidle"
            page.locator("#photo input[type=file]").set_input_files(example_paths()[3])

            species = page.locator("#species textarea")
            sync_api.expect(species).to_have_value(SPECIES_TEXT, timeout=45_000)
            sync_api.expect(page.locator("#breeds")).to_contain_text("%", timeout=10_000)
            sync_api.expect(page.locator("#overlay img")).to_be_visible(timeout=10_000)

            wanted = os.environ.get("PETNET_SCREENSHOTS") == "1"
            target = PROJECT_ROOT / "docs" / "images" / "app.png" if wanted else tmp_path / "app.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target), full_page=True)
            assert target.stat().st_size > 10_000

            overlay = page.locator("#overlay img")
            before = overlay.get_attribute("src")
            page.locator("#opacity input[type=range]").fill("1")  # redrawn from the cached prediction
            sync_api.expect(overlay).not_to_have_attribute("src", before, timeout=20_000)

            fake = tmp_path / "holiday.jpg"
            fake.write_text("this is a text file, not a photo")
            page.get_by_role("button", name="Remove Image").click()
            page.locator("#photo input[type=file]").set_input_files(str(fake))
            toast = page.get_by_text("Cannot read holiday.jpg as an image")
            sync_api.expect(toast).to_be_visible(timeout=20_000)
            sync_api.expect(toast).to_contain_text("Please try another photo")
            assert "Traceback" not in page.content()
        finally:
            browser.close()
