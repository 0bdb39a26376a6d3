"""Where the flow's own files are: the engine templates (hls_templates/) and the board files (boards/).

In a checkout (and an editable install) they are the top-level folders beside the package, where
the layout shows the flow; a wheel carries them inside the package as codesign/_data/hls_templates
and codesign/_data/boards (setup.py). Every module that reads them takes the folder from here.
No imports beyond the standard library: the board's runtime copy imports it through hw/config.py.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED_DIR = PACKAGE_DIR / "_data"  # in a wheel
CHECKOUT_DIR = PACKAGE_DIR.parent  # in a checkout


def locate(name: str) -> Path:
    """The folder `name` (hls_templates or boards): the installed copy when there is one, else the
    checkout's. When neither exists (the runtime copy in a deploy package has no use for them), the
    checkout's path, so that a reader fails naming it."""
    installed = INSTALLED_DIR / name
    return installed if installed.is_dir() else CHECKOUT_DIR / name


HLS_TEMPLATES = locate("hls_templates")
BOARDS = locate("boards")
