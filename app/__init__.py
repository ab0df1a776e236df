"""User interfaces over the ``petnet`` library: the Gradio demo (:mod:`app.demo`) and the dashboard.

``app`` imports ``petnet``, never the other way round; UI libraries are imported only here. The apps
live in a source checkout (or a Space, which is one), so they find their files beside them.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout (or Space) the apps run from."""
EXAMPLES_DIR = REPO_ROOT / "assets" / "examples"
"""The demo's example photos, the only files on the server it serves or opens besides uploads."""
REPORTS_DIR = REPO_ROOT / "assets" / "reports"
"""The shipped evaluation reports the dashboard shows by default."""
