"""Sphinx configuration (offline build: ``make -C doc html``)."""

import os
import sys
from pathlib import Path

import mne_wasserstein

# doc/ holds the gallery's scraper of MNE's 3D Brain figures (_brain_scraper.py)
sys.path.insert(0, str(Path(__file__).parent))
# a fixed theme for MNE's 3D figures (the automatic one prints a notice)
os.environ.setdefault("MNE_3D_OPTION_THEME", "light")

project = "mne-wasserstein"
copyright = "2026, mne-wasserstein developers"
version = release = mne_wasserstein.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
numpydoc_show_class_members = False
# no network at build time: intersphinx inventories are not fetched
intersphinx_mapping = {}
html_theme = "pydata_sphinx_theme"
# README.rst: notes for developers, not a page of the site
exclude_patterns = ["_build", "auto_tutorials/*.ipynb", "README.rst"]
sphinx_gallery_conf = {
    "examples_dirs": "../tutorials",
    "gallery_dirs": "auto_tutorials",
    # tutorials named plot_*.py are executed; the others (real_data.py, which
    # would download MNE's datasets) are shown without being run
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    # matplotlib figures, and screenshots of MNE's Brain (3D, drawn off-screen
    # under Xvfb in CI; without a display the plots fall back to matplotlib)
    "image_scrapers": ("matplotlib", "_brain_scraper.scrape_brains"),
    "download_all_examples": False,
    # show what the tutorials print, not the repr of a cell's last expression
    "capture_repr": (),
    # sphinx_gallery_* comments (e.g. the thumbnail) are not shown in the code
    "remove_config_comments": True,
}
