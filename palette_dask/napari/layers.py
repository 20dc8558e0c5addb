"""A store's label raster as a napari Labels layer: its data, colours, features and scale, converted once.

The reader and the widget both show a run through :func:`labels_layer`. It
imports no napari (doctest imports every module): it gives plain data, and
:meth:`LabelsLayer.layer_data` napari's ``(data, kwargs, "labels")`` tuple,
whose colours are a ``DirectLabelColormap`` (each id its palette colour,
0 and any other value transparent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from ..errors import StoreError
from ..outputs.render import palette_bar
from ..outputs.result import PaletteResult
from ..outputs.store import zarr_store

__all__ = ["LabelsLayer", "labels_layer", "label_colours", "labels_colormap", "bar_layer", "TRANSPARENT"]

#: The colour of id 0 (pixels left out: masked, no-data, excluded) and of any value not in the palette.
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def label_colours(colors) -> dict:
    """Each id (colour index + 1) to its colour as RGBA from 0 to 1; 0 and ``None`` (any other) transparent.

    Examples
    --------
    >>> label_colours([[255, 0, 0], [0, 0, 51]])
    {0: (0.0, 0.0, 0.0, 0.0), None: (0.0, 0.0, 0.0, 0.0), 1: (1.0, 0.0, 0.0, 1.0), 2: (0.0, 0.0, 0.2, 1.0)}
    """
    colours = np.asarray(colors, dtype=np.float64).reshape(-1, 3) / 255.0
    return {0: TRANSPARENT, None: TRANSPARENT} | {
        j + 1: (*(round(float(v), 12) for v in colour), 1.0) for j, colour in enumerate(colours)
    }


def labels_colormap(colours: dict):
    """The ``DirectLabelColormap`` of napari for :func:`label_colours`."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict=colours)


@dataclass(frozen=True)
class LabelsLayer:
    """An image's label raster as napari shows it.

    ``levels``: the raster's levels, full resolution first, read lazily from
    the store (dask arrays); ``colours``: :func:`label_colours`;
    ``features``: one row per id, 0 (left out) first: ``index``, ``name``,
    ``hex``, ``pixels``, ``share`` (of the image's valid pixels), ``area``
    (pixels x the pixel's height x width, in ``unit`` squared);
    ``scale``, ``translate``: a pixel's height and width, the raster's
    origin, in ``unit`` (``None``: pixels).
    """

    levels: list
    colours: dict
    features: dict
    scale: tuple[float, float]
    translate: tuple[float, float]
    unit: str | None
    name: str

    @property
    def area_unit(self) -> str:
        """The unit of the ``area`` feature: ``unit`` squared, or ``"pixels"`` (no unit: the raster's)."""
        return "pixels" if self.unit is None else f"{self.unit}²"

    def layer_data(self) -> tuple:
        """The layer data tuple napari adds: ``(data, kwargs, "labels")``."""
        meta = {
            "name": self.name,
            "colormap": labels_colormap(self.colours),
            "features": self.features,
            "scale": self.scale,
            "translate": self.translate,
            "multiscale": len(self.levels) > 1,
        }
        if self.unit is not None:
            meta["units"] = (self.unit, self.unit)
        return (self.levels if len(self.levels) > 1 else self.levels[0], meta, "labels")


def labels_layer(
    result: PaletteResult,
    index: int = 0,
    *,
    scale=None,
    translate=(0.0, 0.0),
    unit: str | None = None,
    name: str | None = None,
    palette: list[dict] | None = None,
) -> LabelsLayer:
    """Image ``index``'s label raster in ``result``'s store, as a :class:`LabelsLayer`.

    ``scale`` and ``unit`` (a pixel's height and width, napari's unit name):
    by default the store's own, the OME metadata of ``labels/<index>`` (the
    input's pixel size, in micrometres or metres; pixels where it declared none).
    ``palette``: ``result.palette()``, when the caller has it (one layer per image: computed once).

    Raises
    ------
    StoreError
        When the store holds no label raster of that image (a run without ``labels``).
    """
    if result.store is None:
        raise StoreError("the label rasters are in a store: run with labels=True and store=")
    group = zarr.open_group(zarr_store(result.store), mode="r")
    if f"labels/{index}/0" not in group:
        raise StoreError(
            f"{result.store}: image {index} has no label raster (run with labels=True, --labels)"
        )
    import dask.array as da

    label = group[f"labels/{index}"]
    multiscale = label.attrs["ome"]["multiscales"][0]
    levels = [da.from_zarr(label[entry["path"]]) for entry in multiscale["datasets"]]
    if scale is None:
        scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
        unit = multiscale["axes"][0].get("unit")
    scale = tuple(float(side) for side in scale)
    counts = np.asarray(result.image_counts[index], dtype=np.int64)
    valid, masked = int(result.image_valid[index]), int(result.image_masked[index])
    names = {entry["id"]: entry for entry in (result.palette() if palette is None else palette)}
    pixels = [masked, *map(int, counts)]
    features = {
        "index": list(range(result.k + 1)),
        "name": ["left out"] + [names[j]["name"] for j in range(1, result.k + 1)],
        "hex": [""] + [names[j]["hex"] for j in range(1, result.k + 1)],
        "pixels": pixels,
        "share": [float("nan")] + [int(n) / valid if valid else float("nan") for n in counts],  # none: blank
        "area": [n * scale[0] * scale[1] for n in pixels],
    }
    return LabelsLayer(
        levels=levels,
        colours=label_colours(result.colors),
        features=features,
        scale=scale,
        translate=tuple(float(v) for v in translate),
        unit=unit,
        name=name or f"palette of {result.image_names[index]}",
    )


def bar_layer(result: PaletteResult, below: LabelsLayer | None = None) -> tuple:
    """The palette bar (:func:`~palette_dask.outputs.render.palette_bar`) as napari's image layer data tuple.

    Each colour as wide as its share of all images; placed under ``below``
    (a label raster), as wide as it, when given.
    """
    bar = palette_bar(result.colors, result.proportions)
    meta = {"name": "palette bar", "rgb": True}
    if below is not None:
        rows, columns = below.levels[0].shape
        side = columns * below.scale[1] / bar.shape[1]
        meta["scale"] = (side, side)
        gap = 0.05 * columns * below.scale[1]
        meta["translate"] = (below.translate[0] + rows * below.scale[0] + gap, below.translate[1])
        if below.unit is not None:
            meta["units"] = (below.unit, below.unit)
    return (bar, meta, "image")
