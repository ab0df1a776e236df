"""Screenshot the running dashboard with headless Chromium, for the README.

Starts ``streamlit run app/dashboard.py`` on a free port, waits until the charts are drawn, saves a
full-page PNG and stops the server. Arguments after ``--`` go to the dashboard::

    python app/dashboard_screenshot.py docs/images/dashboard.png -- --report assets/reports/test.json
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from app import REPO_ROOT as PROJECT_ROOT

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, timeout: float = 90.0) -> None:
    """Poll Streamlit's health endpoint; server start-up includes importing torch, so allow a while."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"Streamlit did not answer at {url} within {timeout:.0f} s")


def _capture(page, out: Path, width: int) -> None:
    """Full-height PNG of the page; Streamlit scrolls inside its own container, so grow the viewport to fit."""
    page.wait_for_timeout(3000)  # let Plotly finish layout and fonts settle
    height = page.evaluate('document.querySelector("[data-testid=stMainBlockContainer]").scrollHeight')
    page.set_viewport_size({"width": width, "height": int(height) + 80})
    page.wait_for_timeout(1500)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    page.set_viewport_size({"width": width, "height": 1000})


def screenshot(url: str, out: Path, width: int, chromium: str, every_tab: bool) -> list[Path]:
    """Load the page, wait for metrics and Plotly charts, capture it (and each further tab if asked)."""
    saved = [out]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 1000}, device_scale_factor=1)
        page.goto(url, wait_until="networkidle", timeout=120_000)
        page.wait_for_selector('[data-testid="stMetric"]', timeout=120_000)
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
        _capture(page, out, width)
        tabs = page.get_by_role("tab")
        for index in range(1, tabs.count() if every_tab else 0):
            tab = tabs.nth(index)
            slug = tab.inner_text().strip().lower().replace(" & ", "_").replace(" ", "_")
            tab.click()
            saved.append(out.with_name(f"{out.stem}_{slug}{out.suffix}"))
            _capture(page, saved[-1], width)
        browser.close()
    return saved


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    own, dashboard_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=PROJECT_ROOT / "docs" / "images" / "dashboard.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--every-tab", action="store_true", help="also save <out>_<tab>.png for each further tab")
    args = parser.parse_args(own)
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app" / "dashboard.py"),
               "--server.headless", "true", "--server.port", str(port), "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "minimal",
               "--", *dashboard_args]  # fmt: skip
    server = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url)
        saved = screenshot(url, args.out, args.width, args.chromium, args.every_tab)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("\n".join(map(str, saved)))


if __name__ == "__main__":
    main()
