"""A sphinx-gallery image scraper for MNE's 3D ``Brain`` figures.

sphinx-gallery's own scrapers see matplotlib figures (and bare pyvista
plotters); MNE's scraper is private. This one uses public API only: after
each code block it looks for :class:`mne.viz.Brain` objects among the
tutorial's variables, saves a screenshot of each new one as the block's
next image and closes it. A tutorial keeps its brain in a variable (e.g.
``brain = plot_group_sources(...)``) for it to be found. Without a 3D
backend or a display, the plotting functions of mne-wasserstein fall back
to matplotlib figures, which the matplotlib scraper collects.
"""

import weakref

_SCRAPED = weakref.WeakSet()


def scrape_brains(block, block_vars, gallery_conf):
    """Save the new ``Brain`` figures of a code block; return their rST."""
    import matplotlib.pyplot as plt
    from sphinx_gallery.scrapers import figure_rst

    try:
        from mne.viz import Brain
    except ImportError:  # no 3D stack: nothing to scrape
        return ""
    brains = [
        obj
        for obj in block_vars["example_globals"].values()
        if isinstance(obj, Brain) and obj not in _SCRAPED
    ]
    paths = []
    for brain in brains:
        path = next(block_vars["image_path_iterator"])
        plt.imsave(path, brain.screenshot())
        brain.close()
        _SCRAPED.add(brain)
        paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])
