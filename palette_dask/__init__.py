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
    "connect": "run.cluster",
    "dashboard_link": "run.cluster",
    "image_stats": "kernels.count",
    "ClusterError": "errors",
    "ClusterLostError": "errors",
    "ImageFailedError": "errors",
    "ImageReadError": "errors",
    "InputError": "errors",
    "NoValidPixelsError": "errors",
    "PaletteDaskError": "errors",
    "PaletteDaskWarning": "errors",
    "ParameterError": "errors",
    "RunIncompleteError": "errors",
    "StoreError": "errors",
    "FittedPalette": "kernels.fit",
    "fit_palette": "kernels.fit",
    "nearest_center": "kernels.fit",
    "extract_palette": "run.pipeline",
    "sweep_k": "run.pipeline",
    "Sweep": "run.choose",
    "PixelSpec": "kernels.pixels",
    "pixel_features": "kernels.pixels",
    "pixel_spec": "kernels.pixels",
    "pixel_table": "kernels.pixels",
    "Progress": "run.progress",
    "ImageInfo": "inputs.formats",
    "probe": "inputs.read",
    "read_image": "inputs.read",
    "resolve_inputs": "inputs.sources",
    "format_table": "outputs.render",
    "palette_bar": "outputs.render",
    "palette_figure": "outputs.render",
    "save_png": "outputs.render",
    "thumbnail": "outputs.render",
    "draw_sample": "kernels.sample",
    "PaletteResult": "outputs.result",
    "load_result": "outputs.result",
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
    "ClusterLostError",
    "ImageFailedError",
    "RunIncompleteError",
    "PaletteDaskWarning",
]
