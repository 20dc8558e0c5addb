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

import importlib

#: Public names and the module (one per stage) each comes from. They are
#: imported on first use, so a worker process unpickling a counting task
#: imports the reading and counting stages, not dask-ml and scikit-learn.
_EXPORTS = {
    "__version__": "_version",
    "connect": "cluster",
    "dashboard_link": "cluster",
    "image_stats": "count",
    "ClusterError": "errors",
    "ImageFailedError": "errors",
    "ImageReadError": "errors",
    "InputError": "errors",
    "NoValidPixelsError": "errors",
    "PaletteDaskError": "errors",
    "PaletteDaskWarning": "errors",
    "ParameterError": "errors",
    "RunIncompleteError": "errors",
    "StoreError": "errors",
    "FittedPalette": "fit",
    "fit_palette": "fit",
    "nearest_center": "fit",
    "extract_palette": "pipeline",
    "sweep_k": "pipeline",
    "Sweep": "choose",
    "PixelSpec": "pixels",
    "pixel_features": "pixels",
    "pixel_spec": "pixels",
    "pixel_table": "pixels",
    "Progress": "progress",
    "ImageInfo": "formats",
    "probe": "read",
    "read_image": "read",
    "resolve_inputs": "inputs",
    "format_table": "render",
    "palette_bar": "render",
    "palette_figure": "render",
    "save_png": "render",
    "thumbnail": "render",
    "draw_sample": "sample",
    "PaletteResult": "store",
    "load_result": "store",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'palette_dask' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "__version__",
    "extract_palette",
    "sweep_k",
    "Sweep",
    "PaletteResult",
    "load_result",
    "resolve_inputs",
    "dashboard_link",
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
