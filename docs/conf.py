"""Sphinx configuration for the dpsynth documentation (MyST markdown, built with -W)."""

from __future__ import annotations

project = "dpsynth"
author = "dpsynth developers"
copyright = "2026, dpsynth developers"
release = "0.1.0"

extensions = ["myst_parser", "sphinx.ext.mathjax"]
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
html_theme = "pydata_sphinx_theme"
html_title = "dpsynth"
html_static_path: list[str] = []
suppress_warnings = ["myst.header"]
