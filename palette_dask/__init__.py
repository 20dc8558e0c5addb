"""palette_dask: the dominant colours of huge images and large collections.

The tutorial's recipe (flatten the pixels, k-means with k=5, count the labels,
draw a palette bar) on dask, dask-ml and zarr, for images too big or too many
for one process.

Examples
--------
>>> import palette_dask
>>> with palette_dask.connect(processes=False, dashboard_address="127.0.0.1:0") as client:  # doctest: +SKIP
...     result = palette_dask.extract_palette("photos/", k=5, store="photos.zarr", client=client)
>>> palette_dask.palette_bar([[255, 0, 0], [0, 0, 255]], [0.4, 0.6]).shape
(50, 300, 3)
"""

from ._version import __version__
from .cluster import connect
from .count import image_stats
from .errors import (
    ClusterError,
    ImageFailedError,
    ImageReadError,
    InputError,
    NoValidPixelsError,
    PaletteDaskError,
    PaletteDaskWarning,
    ParameterError,
    RunIncompleteError,
    StoreError,
)
from .fit import FittedPalette, fit_palette, nearest_center
from .pipeline import extract_palette
from .pixels import PixelSpec, pixel_features, pixel_spec, pixel_table
from .progress import Progress
from .read import ImageInfo, probe, read_image, resolve_inputs
from .render import format_table, palette_bar, palette_figure, save_png, thumbnail
from .sample import draw_sample
from .store import PaletteResult, load_result

__all__ = [
    "__version__",
    "extract_palette",
    "PaletteResult",
    "load_result",
    "resolve_inputs",
    "probe",
    "read_image",
    "ImageInfo",
    "PixelSpec",
    "pixel_spec",
    "pixel_features",
    "pixel_table",
    "draw_sample",
    "fit_palette",
    "FittedPalette",
    "nearest_center",
    "image_stats",
    "palette_bar",
    "palette_figure",
    "format_table",
    "save_png",
    "thumbnail",
    "connect",
    "Progress",
    "PaletteDaskError",
    "ParameterError",
    "InputError",
    "ImageReadError",
    "NoValidPixelsError",
    "StoreError",
    "ClusterError",
    "ImageFailedError",
    "RunIncompleteError",
    "PaletteDaskWarning",
]
