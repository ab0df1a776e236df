"""The README front matter is a valid Hugging Face Space config that runs the pinned Gradio on app.py."""

from __future__ import annotations

import re

import yaml

from tests.conftest import PROJECT_ROOT


def _front_matter() -> dict:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, flags=re.DOTALL)
    assert match, "README.md must start with a '---' delimited YAML block (Spaces config)"
    return yaml.safe_load(match.group(1))


def _pinned(package: str) -> str:
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise AssertionError(f"{package} is not pinned with == in requirements.txt")


def test_front_matter_declares_a_gradio_space_running_app_py() -> None:
    config = _front_matter()
    assert config["sdk"] == "gradio"
    assert config["app_file"] == "app.py" and (PROJECT_ROOT / config["app_file"]).is_file()
    for key in ("title", "emoji", "license"):
        assert isinstance(config.get(key), str) and config[key].strip(), f"front matter needs a {key}"


def test_space_runs_the_gradio_version_pinned_in_requirements() -> None:
    assert str(_front_matter()["sdk_version"]) == _pinned("gradio")
