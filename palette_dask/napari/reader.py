"""napari's reader of palette_dask stores: each image's label raster in its colours, and the palette bar.

The manifest (``napari.yaml``) names :func:`get_reader`; napari asks it of
every path opened (File > Open Folder, ``napari store.zarr``).
"""

from __future__ import annotations

import os
import warnings

import zarr

from ..errors import PaletteDaskWarning
from ..outputs.result import load_result
from ..outputs.store import DONE, is_store, zarr_store
from .layers import bar_layer, labels_layer

__all__ = ["get_reader", "read_store", "MOST_LAYERS"]

#: The reader's Labels layers at most, the first images' (a store of thousands: napari would slow to a crawl).
MOST_LAYERS = 16


def get_reader(path):
    """:func:`read_store` when ``path`` is a palette_dask store (``is_store``), else None (another reader).

    Examples
    --------
    >>> get_reader(".") is None, get_reader(["a.zarr", "b.zarr"]) is None
    (True, True)
    """
    if isinstance(path, list | tuple):  # several paths: each is asked of its own
        if len(path) != 1:
            return None
        path = path[0]
    return read_store if is_store(os.fspath(path)) else None


def read_store(path) -> list[tuple]:
    """The layers of a store: a Labels layer per counted image with a raster (``labels/<i>``), then the bar.

    An image that failed, or that a stopped run never finished, has no layer
    (its raster, made before it was counted, holds no colours). Each Labels
    layer is :func:`~palette_dask.napari.layers.labels_layer`'s:
    the palette's colours, the image's pixels, share and area of each
    colour as its features, the store's pixel size as its scale. A store
    made without ``labels`` gives the bar alone. The first :data:`MOST_LAYERS`
    images only, with a warning naming how many are not shown (napari
    shows it), for a store of more (open one as :func:`~.layers.labels_layer` in Python).
    """
    path = os.fspath(path[0] if isinstance(path, list | tuple) else path)
    result = load_result(path)
    group = zarr.open_group(zarr_store(path), mode="r")
    held = sorted(int(key) for key in group["labels"].group_keys()) if "labels" in group else []
    held = [index for index in held if result.image_status[index] == DONE]
    if len(held) > MOST_LAYERS:
        warnings.warn(
            PaletteDaskWarning(f"{path}: the label rasters of the first {MOST_LAYERS} of {len(held):,} "
                               "images shown; palette_dask.napari.layers.labels_layer gives any"),
            stacklevel=2,
        )  # fmt: skip
        held = held[:MOST_LAYERS]
    palette = result.palette()
    layers = [labels_layer(result, index, palette=palette) for index in held]
    return [layer.layer_data() for layer in layers] + [bar_layer(result, layers[0] if layers else None)]
