"""The wheel carries the default weights: built from the project's files, installed into a bare
directory and run offline from another working directory, the library predicts with the packaged
weights (what ``pip install git+...`` gives a user, who has no clone beside site-packages)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

from petnet import hub, paths

pytestmark = pytest.mark.slow

BUILD_INPUTS = ("pyproject.toml", "README.md", "requirements.txt")
"""Files the build reads besides the package itself (readme, dynamic dependencies)."""
PREDICT = """
import sys
import petnet
model = petnet.load_model()
print(petnet.__file__)
print(model.weights_source)
print(model.predict(sys.argv[1]).species)
"""


def _run(command: list[str], **options: object) -> subprocess.CompletedProcess:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False, **options)
    assert completed.returncode == 0, f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only the installed wheel (``pip install --target``), built from a copy of
    the project's files so the build's own scratch folders stay out of the source tree."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(paths.PACKAGE_DIR, source / "petnet", ignore=shutil.ignore_patterns("__pycache__"))
    for name in BUILD_INPUTS:
        shutil.copy2(PROJECT_ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(root / "dist")])
    [wheel] = (root / "dist").glob("petnet-*.whl")
    _run([*pip, "install", "--no-deps", "--target", str(root / "site"), str(wheel)])
    return root / "site"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_wheel_ships_the_default_weights(site_dir: Path) -> None:
    for name in ("config.json", "model.safetensors", "README.md"):
        installed = site_dir / "petnet" / "weights" / name
        assert installed.is_file(), f"the wheel lacks petnet/weights/{name}"
        assert _sha256(installed) == _sha256(paths.BUNDLED_MODEL_DIR / name)


def test_installed_wheel_predicts_offline_from_another_directory(
    site_dir: Path, tmp_path: Path, real_image_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(site_dir), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    env.pop(hub.REPO_ENV_VAR, None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    completed = _run([sys.executable, "-c", PREDICT, str(real_image_path)], cwd=elsewhere, env=env)
    module_file, weights_source, species = completed.stdout.splitlines()[-3:]
    installed = site_dir.resolve() / "petnet"
    assert Path(module_file).resolve() == installed / "__init__.py", "imported petnet from somewhere else"
    assert weights_source == f"bundled: {installed / 'weights'}"
    assert species in {"cat", "dog"}
