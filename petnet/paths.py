"""Where the project's files are: the one module that knows the folder layout.

``PACKAGE_DIR`` holds what ships inside the wheel; the others exist in a source checkout, with the
shared datasets beside it (``../shared/data``), as on the development machines and in CI.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_MODEL_DIR = PACKAGE_DIR / "weights"
"""The default weights (``config.json`` + ``model.safetensors`` + model card), shipped inside the
package so an installed wheel predicts offline; the one copy of them in the repository."""
PROJECT_ROOT = PACKAGE_DIR.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
REPORTS_DIR = ASSETS_DIR / "reports"
EXAMPLES_DIR = ASSETS_DIR / "examples"
DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"
OXFORD_PET_ROOT = DATA_DIR / "oxford-iiit-pet"
NON_PET_ROOT = DATA_DIR / "non-pets"
