"""Where PetNet finds its files: the one module that knows.

Only the bundled weights ship inside the package (``BUNDLED_MODEL_DIR``). Data, reports and the
benchmark's photos are working folders a command is told about, by an argument or the environment
(``PETNET_DATA``, ``PETNET_REPORTS_DIR``, ``PETNET_EXAMPLES_DIR``); the defaults are relative to the
working directory (resolved when ``petnet.paths`` is first imported) and fit a source checkout run from its root, with the shared datasets beside it
(``../shared/data``), as on the development machines and in CI. Nothing here depends on where the
package is installed, and a command whose folder is missing says which argument or variable to set.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_MODEL_DIR = PACKAGE_DIR / "weights"
"""The default weights (``config.json`` + ``model.safetensors`` + model card), shipped inside the
package so an installed wheel predicts offline; the one copy of them in the repository."""
DATA_DIR = Path(os.environ.get("PETNET_DATA") or "../shared/data").resolve()
"""Holds ``oxford-iiit-pet/`` and ``non-pets/``."""
OXFORD_PET_ROOT = DATA_DIR / "oxford-iiit-pet"
NON_PET_ROOT = DATA_DIR / "non-pets"
REPORTS_DIR = Path(os.environ.get("PETNET_REPORTS_DIR") or "assets/reports").resolve()
"""Where ``petnet.evaluate`` writes ``<split>.json`` and the dashboard and model card read them."""
EXAMPLES_DIR = Path(os.environ.get("PETNET_EXAMPLES_DIR") or "assets/examples").resolve()
"""The example photos ``petnet.bench`` times by default."""
