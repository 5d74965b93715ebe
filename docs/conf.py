"""Sphinx configuration for the txamqp091 documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` from the repository root.
The build needs no network access: there is no intersphinx.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Document the pure-Python codec, the reference behaviour; the optional C
# accelerator only speeds up the same functions.
os.environ["TXAMQP091_PURE_PYTHON"] = "1"

# Document the source tree this file belongs to, installed or not.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import txamqp091  # noqa: E402

project = "txamqp091"
author = "txamqp091 developers"
copyright = "txamqp091 developers"
release = txamqp091.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]

exclude_patterns = ["_build"]
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}

html_theme = "alabaster"
html_theme_options = {
    "description": "A Twisted-first AMQP 0-9-1 client for RabbitMQ",
}
