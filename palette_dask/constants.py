"""The constants every layer shares: defaults, limits, the clustering spaces, colour codes and names.

A leaf: it imports nothing from palette_dask (the import contract in
pyproject.toml says so), so the lowest layers (``inputs/``, ``options.py``)
read these without importing anything above them. :mod:`palette_dask.options`
declares the options whose defaults and limits these are.

Examples
--------
>>> bool(HEX_COLOUR.fullmatch("#c74c32")), css_colours()["tomato"]
(True, '#ff6347')
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "DEFAULT_K",
    "DEFAULT_SAMPLE_SIZE",
    "SAMPLE_IMAGES",
    "IMAGE_SAMPLE_PIXELS",
    "DEFAULT_N_INIT",
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MEMORY_BUDGET",
    "EXCLUDE_WITHIN",
    "MAX_PER_IMAGE",
    "MAX_BATCH_SIZE",
    "SPACES",
    "SCALES",
    "DEFAULT_SCALE",
    "HEX_COLOUR",
    "css_colours",
]

DEFAULT_K = 5
#: Valid pixels sampled to fit the palette (benchmarks/RESULTS.md, "Sample size").
DEFAULT_SAMPLE_SIZE = 100_000
#: Which images of a collection the sample is drawn from (``sample_images``): ``auto``, a seeded
#: subset chosen by pixel count where that saves decodes; ``all``, every image (the strict twin).
SAMPLE_IMAGES = ("auto", "all")
#: The sample's candidates expected from each image chosen by ``sample_images="auto"``: fewer
#: draws more images (more decodes), more draws fewer (a coarser sample of the collection)
#: (benchmarks/RESULTS.md, "One decode per image").
IMAGE_SAMPLE_PIXELS = 50
#: Starts of the fit (benchmarks/RESULTS.md: three missed the best optimum of the 2 GB mosaic).
DEFAULT_N_INIT = 6
#: Target bytes of a chunk of an image read tile by tile: bigger images are read so.
DEFAULT_CHUNK_BYTES = 32 * 2**20
#: Pillow's decompression-bomb error threshold: the most pixels of an image decoded whole.
DEFAULT_MAX_PIXELS = 178_956_970
#: Decoded images kept on the workers between the passes, in bytes, all workers together: past it
#: they are decoded again (with ``sample_images`` auto, most images of a large collection are
#: decoded by the counting pass alone: once). Keeping is worth it only where decoding costs more
#: than first touching fresh memory (benchmarks/RESULTS.md, "Memory between the passes").
DEFAULT_MEMORY_BUDGET = 2**30
#: Tries of each request to a remote input or store before a transient fault (a 503, a reset
#: connection...) fails its image: about two minutes of capped backoff (:mod:`palette_dask.inputs.retry`).
DEFAULT_TRIES = 10
#: Seconds one request may take, connection and body (a whole download too): past it, a transient fault.
DEFAULT_REQUEST_TIMEOUT = 300.0
#: CIEDE2000 difference within which ``exclude`` leaves a pixel out.
EXCLUDE_WITHIN = 6.0
#: The most colours of a per-image palette (``per_image``).
MAX_PER_IMAGE = 64
#: The most images per batch: a batch is one chunk of the store's per-image arrays.
MAX_BATCH_SIZE = 8192
#: Clustering spaces: display sRGB, or CIELAB (D65).
SPACES = ("rgb", "lab")
#: Ways band values map to display 0-255, besides an explicit ``(low, high)``.
SCALES = ("auto", "dtype", "minmax", "percentile")
#: The default ``scale``: 8-bit data by their type's range, wider data (uint16, int32, floats) by the
#: cumulative 2%-98% cut of the sample, as QGIS shows every band but a byte one by default.
DEFAULT_SCALE = "auto"
#: ``#rrggbb`` (the ``#`` optional).
HEX_COLOUR = re.compile(r"#?[0-9a-fA-F]{6}")


@functools.cache
def css_colours() -> dict[str, str]:
    """The CSS Color Module's 148 named colours, ``{name: "#rrggbb"}`` (synonyms such as gray/grey too)."""
    from matplotlib.colors import CSS4_COLORS  # only when a colour name is looked up

    return {name: code.lower() for name, code in sorted(CSS4_COLORS.items())}
