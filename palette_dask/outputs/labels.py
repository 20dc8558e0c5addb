"""Labels: each image's label raster, an OME-Zarr 0.5 label image under the store's ``labels/<i>``.

Values are colour index + 1 (0 for masked pixels); the metadata gives each
value its palette colour. A raster with a side over :data:`PYRAMID_ABOVE`
has a multiscale pyramid. An image decoded whole has its raster written by
the task that counts it (:func:`write_label_image`, which the batch's
counting task calls); a mosaic's by the tasks that count its chunks, each its
own shard of tiles (:func:`create_labels` gives them a :class:`LabelLevel` to
write to), then :func:`write_label_pyramid`. Every write from a task goes
through :func:`~palette_dask.outputs.store.task_writes`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import zarr

from ..errors import StoreError
from ..inputs.physical import MICROSCOPE_BELOW
from ..kernels.count import label_dtype
from .store import dims, rounded_colours, store_path, task_writes, zarr_store

__all__ = [
    "label_levels",
    "LabelLevel",
    "create_labels",
    "write_label_pyramid",
    "write_label_image",
    "keep_georeference",
    "label_array",
    "label_properties",
    "write_label_properties",
]


#: A label raster with a side longer than this gets a multiscale pyramid ...
PYRAMID_ABOVE = 2048
#: ... of levels halving each side (nearest: every other pixel), down to a level no side of which is longer.
PYRAMID_DOWN_TO = 1024


#: Level 0 of a big label raster is stored in tiles of at most this side (as viewers read it) ...
LABEL_TILE = 512


def tile_side(side: int) -> int:
    """The side of tiles dividing a shard (a counting task's chunk) of this side: at most :data:`LABEL_TILE`.

    The largest divisor of ``side`` up to :data:`LABEL_TILE`, if at least 64;
    else ``side`` itself (the shard is one tile that way).

    Examples
    --------
    >>> tile_side(300), tile_side(2048), tile_side(16384), tile_side(1000), tile_side(2 * 1021)
    (300, 512, 512, 500, 2042)
    """
    if side <= LABEL_TILE:
        return side
    best = next((t for t in range(LABEL_TILE, 63, -1) if side % t == 0), side)
    return best


def label_chunks(shape) -> tuple[int, int]:
    """Chunks of a label raster written whole by one task: one up to 1024 a side, else tiles of 512."""
    rows, cols = shape[:2]
    if max(rows, cols) <= PYRAMID_DOWN_TO:
        return rows, cols
    return min(rows, LABEL_TILE), min(cols, LABEL_TILE)


def label_levels(shape) -> int:
    """How many levels the label raster of an image of this ``(rows, cols, ...)`` shape has.

    Examples
    --------
    >>> label_levels((2048, 900)), label_levels((2600, 2100)), label_levels((100_000, 100_000))
    (1, 3, 8)
    """
    side, levels = max(shape[:2]), 1
    if side <= PYRAMID_ABOVE:
        return 1
    while side > PYRAMID_DOWN_TO:
        side, levels = -(-side // 2), levels + 1
    return levels


def physical_scale(pixel_size) -> tuple[list[float], str | None]:
    """A pixel's ``[height, width]`` and OME unit: micrometres under 0.1 mm, else metres; ``[1, 1]`` unknown.

    Examples
    --------
    >>> physical_scale((3.25e-7, 3.25e-7)), physical_scale((10.0, 10.0)), physical_scale(None)
    (([0.325, 0.325], 'micrometer'), ([10.0, 10.0], 'meter'), ([1.0, 1.0], None))
    """
    if pixel_size is None or not np.isfinite(pixel_size).all():
        return [1.0, 1.0], None
    if max(pixel_size) < MICROSCOPE_BELOW:
        return [round(float(side) * 1e6, 12) for side in pixel_size], "micrometer"
    return [float(side) for side in pixel_size], "meter"


def label_properties(counts, colors, pixel_size=None) -> list[dict]:
    """OME ``properties`` of an image's label raster: per value, its colour's name, hex code, pixels, share.

    ``area_m2`` too where the image's ``pixel_size`` (metres) is known. The
    names are those of ``show`` with the CSS colour names.

    Examples
    --------
    >>> label_properties(np.array([3, 1]), [[0, 0, 0], [255, 255, 255]], (2.0, 0.5))[1]
    {'label-value': 2, 'name': 'white', 'hex': '#ffffff', 'pixels': 1, 'share': 0.25, 'area_m2': 1.0}
    """
    from ..kernels.colour import hex_code
    from .names import named_colours

    colors, counts = rounded_colours(colors), np.asarray(counts)
    names, total = named_colours(colors), int(counts.sum())
    area = float(pixel_size[0] * pixel_size[1]) if pixel_size is not None and min(pixel_size) > 0 else None
    return [
        {
            "label-value": j + 1,
            "name": names[j][0],
            "hex": hex_code(colors[j]),
            "pixels": int(counts[j]),
            "share": int(counts[j]) / total if total else 0.0,
            **({"area_m2": int(counts[j]) * area} if area else {}),
        }
        for j in range(len(colors))
    ]


def write_label_properties(label: zarr.Group, properties: list[dict]) -> None:
    """Add ``properties`` (:func:`label_properties`) to the metadata of a label image (``labels/<i>``)."""
    ome = label.attrs["ome"]
    ome["image-label"]["properties"] = properties
    label.attrs["ome"] = ome


def _label_group(
    labels: zarr.Group, index: int, name: str, colors, levels: int, pixel_size=None
) -> zarr.Group:
    """``labels/<index>``: an OME-Zarr 0.5 label image whose metadata gives each value's palette colour.

    Level ``l`` holds every ``2**l``-th pixel of each row and column of level
    0; its scale is the image's pixel size (``pixel_size``, metres, where the
    input declares it: see :func:`physical_scale`) times ``2**l``, so viewers
    place the labels on their image.
    """
    colors = rounded_colours(colors).astype(int)
    label = labels.require_group(str(index))
    scale, unit = physical_scale(pixel_size)
    datasets = [
        {
            "path": str(level),
            "coordinateTransformations": [{"type": "scale", "scale": [side * 2.0**level for side in scale]}],
        }
        for level in range(levels)
    ]
    axes = [{"name": axis, "type": "space", **({"unit": unit} if unit else {})} for axis in "yx"]
    label.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"name": name, "axes": axes, "datasets": datasets}],
        "image-label": {
            "version": "0.5",
            "colors": [{"label-value": j + 1, "rgba": [*map(int, c), 255]} for j, c in enumerate(colors)],
            "source": {"image": name},
        },
    }
    return label


@dataclass(frozen=True)
class LabelLevel:
    """A level of a label raster (``labels/<i>/<level>``) as tasks write it: ``level[rows, cols] = block``.

    Each write opens the array and goes through
    :func:`~palette_dask.outputs.store.task_writes`; each block is one task's
    (a counting task's chunk, a chunk of a level above), so no two tasks write one
    shard. It is ``dask.array.store``'s target too.
    """

    path: str

    def __setitem__(self, index, block) -> None:
        with task_writes(os.path.dirname(self.path)):
            zarr.open_array(zarr_store(self.path), mode="r+")[index] = block


def create_labels(group: zarr.Group, index: int, image, colors: np.ndarray, pixel_size=None) -> LabelLevel:
    """Make ``labels/<index>`` for the tasks that count ``image`` (read tile by tile); returns its level 0.

    Values are colour index + 1, and 0 for masked pixels. The counting tasks
    write level 0 (:func:`~palette_dask.kernels.count.image_stats` given it),
    each its chunk of ``image`` as one zarr shard of tiles (:func:`tile_side`:
    viewers read tiles, no two tasks write one shard); :func:`write_label_pyramid`
    the levels above it.
    """
    root = store_path(group)
    if root is None:
        raise StoreError("label rasters need a store on disk or in object storage")
    name, levels = str(group["image_names"][index]), label_levels(image.shape)
    label = _label_group(group.require_group("labels"), index, name, colors, levels, pixel_size)
    shard = (image.chunks[0][0], image.chunks[1][0])  # a counting task's, written whole by it
    tiles = tuple(map(tile_side, shard))
    label.create_array(
        "0",
        shape=image.shape[:2],
        chunks=tiles,
        shards=shard if tiles != shard else None,
        dtype=label_dtype(len(colors)),
        fill_value=0,
        overwrite=True,
        **dims("y", "x"),
    )
    return LabelLevel(f"{root}/labels/{index}/0")


def write_label_pyramid(level0: LabelLevel) -> None:
    """Write the levels above a label raster's level 0 (``labels/<i>/0``, written), on the current scheduler.

    Each level is every other pixel of the level below it, read back from the
    store and written in chunks of 1024², each chunk by one task.
    """
    import dask.array as da

    parent = os.path.dirname(level0.path)
    label = zarr.open_group(zarr_store(parent), mode="r+")
    for level in range(1, len(label.attrs["ome"]["multiscales"][0]["datasets"])):
        stored = label[str(level - 1)]
        below = da.from_zarr(stored, chunks=stored.shards or stored.chunks)  # a task per shard, not per tile
        shape = tuple(-(-n // 2) for n in below.shape)
        chunks = tuple(min(PYRAMID_DOWN_TO, n) for n in shape)
        label.create_array(
            str(level), shape=shape, chunks=chunks, dtype=below.dtype, fill_value=0, overwrite=True,
            **dims("y", "x"),
        )  # fmt: skip
        da.store(below[::2, ::2].rechunk(chunks), LabelLevel(f"{parent}/{level}"), lock=False)


def write_label_image(
    root: str, index: int, name: str, labels: np.ndarray, colors, pixel_size=None, counts=None
) -> None:
    """Write an image decoded whole's label raster and its pyramid to ``labels/<index>`` (in a task).

    With its ``counts`` per colour, its metadata gives each value's properties (:func:`label_properties`).
    """
    levels = label_levels(labels.shape)
    with task_writes(f"{root}/labels/{index}"):
        labels_group = zarr.open_group(zarr_store(f"{root}/labels"), mode="r+")
        label = _label_group(labels_group, index, name, colors, levels, pixel_size)
        if counts is not None:
            write_label_properties(label, label_properties(counts, colors, pixel_size))
        for level in range(levels):
            step = 2**level
            label.create_array(
                str(level),
                shape=labels[::step, ::step].shape,
                chunks=label_chunks(labels[::step, ::step].shape),
                dtype=labels.dtype,
                fill_value=0,
                overwrite=True,
                **dims("y", "x"),
            )[:] = labels[::step, ::step]


def keep_georeference(group: zarr.Group, index: int, array, axes: str) -> None:
    """Keep in ``labels/<index>`` what lines an xarray input's label raster up with it (in the driver).

    Its row and column dimension names (attribute ``georeference``), their
    numeric 1-D coordinates (arrays ``coordinates/<dim>``), and, where
    rioxarray gives them, its CRS (WKT and EPSG code) and affine transform.
    :func:`label_array` gives them back, and the label GeoTIFF of the input
    is georeferenced by them. ``axes`` is the array's layout (``"cyx"``...).
    """
    if not hasattr(array, "dims") or len(axes) != array.ndim:  # numpy or dask: nothing declared
        return
    rows, columns = (array.dims[axes.index(axis)] for axis in "yx")
    label = group[f"labels/{index}"]
    reference: dict = {"dims": [str(rows), str(columns)]}
    coordinates = label.require_group("coordinates")
    for name in (rows, columns):
        if name in array.coords and np.issubdtype(array[name].dtype, np.number):
            values = np.asarray(array[name].values)
            coordinates.create_array(str(name), data=values, overwrite=True, **dims(str(name)))
    try:
        crs = array.rio.crs  # rioxarray's accessor, there when the caller imported rioxarray
    except AttributeError:
        crs = None
    if crs is not None:
        epsg = crs.to_epsg()
        reference.update(crs_wkt=crs.to_wkt(), epsg=epsg, geographic=bool(crs.is_geographic))
        reference["transform"] = [float(v) for v in tuple(array.rio.transform())[:6]]
    label.attrs["georeference"] = reference


def label_array(store: str, index: int, palette: list[dict], like=None):
    """Image ``index``'s label raster (level 0) as an ``xarray.DataArray``, lazily read from ``store``.

    Values are colour ids, 0 for a pixel left out. Its attributes name the
    categories as CF does (``flag_values``, ``flag_meanings``: the colour
    names; ``colors``: their hex codes). It lines up with the image given:
    an xarray input's row and column dimension names and coordinates, and
    with rioxarray its CRS and transform (no-data 0), as the store kept them
    (:func:`keep_georeference`); or those of ``like``, the image as it was
    given (an ``xarray.DataArray``, a rioxarray scene), for any input.
    """
    import dask.array as da
    import xarray as xr

    group = zarr.open_group(zarr_store(store), mode="r")
    if f"labels/{index}/0" not in group:
        raise StoreError(f"{store}: image {index} has no label raster (run with labels=True, --labels)")
    data = da.from_zarr(group[f"labels/{index}/0"])
    entries = sorted(palette, key=lambda entry: entry["id"])
    attrs = {
        "flag_values": [entry["id"] for entry in entries],
        "flag_meanings": " ".join(entry["name"].replace(" ", "_") for entry in entries),
        "colors": [entry["hex"] for entry in entries],
        "source": str(group["image_names"][index]),
    }
    if like is not None:
        rows, columns, coords, crs, transform = _like(like, data.shape)
    else:
        label = group[f"labels/{index}"]
        reference = label.attrs.get("georeference", {})
        rows, columns = reference.get("dims", ("y", "x"))
        found = label["coordinates"].arrays() if "coordinates" in label else ()
        coords = {name: (name, array[:]) for name, array in found}
        crs, transform = reference.get("crs_wkt"), reference.get("transform")
    labels = xr.DataArray(data, dims=(rows, columns), name="labels", attrs=attrs).assign_coords(coords)
    if crs is None:
        return labels
    try:
        import rioxarray  # noqa: F401  (its accessor)
        from affine import Affine
    except ImportError:  # the CRS as attributes
        return labels.assign_attrs(crs_wkt=str(crs), transform=list(transform))
    return labels.rio.write_crs(crs).rio.write_transform(Affine(*transform)).rio.write_nodata(0)


def _like(like, shape):
    """``(rows, columns, coords, crs, transform)`` of ``like`` (an xarray DataArray of ``shape`` pixels)."""
    from ..inputs.formats import layout

    axes = layout("like", [str(d) for d in like.dims], like.shape)
    rows, columns = like.dims[axes.index("y")], like.dims[axes.index("x")]
    if (like.sizes[rows], like.sizes[columns]) != shape:
        height, width = like.sizes[rows], like.sizes[columns]
        raise ValueError(f"like has {height} x {width} pixels, the labels {shape[0]} x {shape[1]}")
    coords = {name: c for name, c in like.coords.items() if set(c.dims) <= {rows, columns}}  # and scalars
    if "rioxarray" in sys.modules and like.rio.crs is not None:  # rioxarray's accessor: the caller's
        return rows, columns, coords, like.rio.crs, tuple(like.rio.transform())[:6]
    return rows, columns, coords, None, None
