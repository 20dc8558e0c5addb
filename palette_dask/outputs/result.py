"""Result: a run's palette and histograms as read back from its store (:func:`load_result`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import zarr
import zarr.storage

from ..errors import Failure, StoreError
from ..options import RunConfig
from .store import DONE, FAILED_TRANSIENT, is_failed, open_store, read_centers_rgb, store_path

__all__ = ["PaletteResult", "load_result"]


@dataclass
class PaletteResult:
    """A run's palette and histograms, as read back from its store.

    Attributes
    ----------
    centers : ndarray of float32, shape (k, 3)
        The cluster centres in the clustering space (``attrs["space"]``:
        CIELAB or sRGB 0–255): what every pixel is labelled by.
    centers_rgb : ndarray of float32, shape (k, 3)
        The same centres as sRGB floats, 0–255.
    colors : ndarray of uint8, shape (k, 3)
        The colours shown: ``centers_rgb`` rounded to 8 bits.
    counts : ndarray of int64, shape (k,)
        Valid pixels per colour over all images.
    image_names, image_counts, image_valid, image_masked, image_status, image_errors
        The per-image arrays of the store.
    attrs : dict
        The store's attributes (parameters, version, ``space``, ``complete``, ``inertia``, ``lab_error``...).
    store : str or None
        Path of the store, None when it was in memory.
    image_lab_squared_error : ndarray of float64, shape (n,), or None
        Per image, the sum of squared CIELAB distances to the nearest colour shown.
    image_error_pixels : ndarray of int64, shape (n,), or None
        Per image, the valid pixels its two errors were measured on: fewer than
        ``image_valid`` where they are estimates scaled up from those pixels
        (see :attr:`errors_exact`); None: a store made before it was stored, exact.
    image_palettes : ndarray of uint8, shape (n, K, 3), or None
        With ``per_image=K``: each image's own K colours (8-bit sRGB), largest share first.
    image_palette_shares : ndarray of float64, shape (n, K), or None
        Their shares of the image's valid pixels (zero past its distinct colours).
    vocabulary : dict or None
        ``{name: "#rrggbb"}`` the colours are named from (see
        :mod:`palette_dask.outputs.names`); None: the CSS colour names.
    image_pixel_size : ndarray of float64, shape (n, 2), or None
        Each image's pixel height and width in metres, as its format declares
        them (:mod:`palette_dask.inputs.physical`); 0 where it declares none.
    image_shape : ndarray of int64, shape (n, 2), or None
        Each image's rows and columns as read; 0 where it failed (None: a
        store made before it was stored).
    image_datetime, image_crs : list of str, or None
        Each image's acquisition time and CRS (``EPSG:<code>``), as its input
        declares them (a STAC item's); ``""`` where it does not (None: a store
        made before they were stored).
    """

    centers: np.ndarray
    centers_rgb: np.ndarray
    colors: np.ndarray
    counts: np.ndarray
    image_names: list[str]
    image_counts: np.ndarray
    image_valid: np.ndarray
    image_masked: np.ndarray
    image_status: np.ndarray
    image_errors: list[str]
    attrs: dict = field(default_factory=dict)
    store: str | None = None
    image_lab_squared_error: np.ndarray | None = None
    vocabulary: dict | None = None
    image_palettes: np.ndarray | None = None
    image_palette_shares: np.ndarray | None = None
    image_pixel_size: np.ndarray | None = None
    image_shape: np.ndarray | None = None
    image_error_pixels: np.ndarray | None = None
    image_datetime: list[str] | None = None
    image_crs: list[str] | None = None

    @property
    def k(self) -> int:
        """Number of colours in the palette."""
        return len(self.centers)

    @property
    def error_pixels(self) -> int:
        """The valid pixels the inertia and ``lab_error`` were measured on (all of them when exact)."""
        if self.image_error_pixels is None:
            return int(self.counts.sum())
        return int(self.image_error_pixels[np.asarray(self.image_status) == DONE].sum())

    @property
    def errors_exact(self) -> bool:
        """Whether the inertia and ``lab_error`` were measured on every valid pixel, else estimated."""
        return self.error_pixels == int(self.counts.sum())

    @property
    def config(self) -> RunConfig:
        """The options of the run, as the store records them."""
        return RunConfig.from_parameters(self.attrs.get("parameters", {}))

    @property
    def proportions(self) -> np.ndarray:
        """Share of the valid pixels of each colour (sums to 1)."""
        total = self.counts.sum()
        return self.counts / total if total else np.zeros(len(self.counts))

    @property
    def order(self) -> np.ndarray:
        """Colour indices by share, largest first (ties by index)."""
        return self.ordered("share")

    def ordered(self, by: str = "share") -> np.ndarray:
        """Colour indices by ``share`` (largest first), ``lightness`` (CIELAB L*, dark first) or ``hue``.

        ``hue`` goes round the colour wheel from red; grays (saturation below 0.1) come first, dark to light.
        """
        index = np.arange(self.k)
        if by == "share":
            return np.lexsort((index, -self.counts))
        from skimage.color import rgb2hsv, rgb2lab

        rgb = np.clip(self.centers_rgb.astype(np.float64) / 255.0, 0, 1)[np.newaxis]
        lightness = rgb2lab(rgb)[0, :, 0]
        if by == "lightness":
            return np.lexsort((index, lightness))
        if by == "hue":
            hsv = rgb2hsv(rgb)[0]
            gray = hsv[:, 1] < 0.1
            return np.lexsort((index, lightness, np.where(gray, -1.0, hsv[:, 0])))
        raise ValueError(f"order must be share, lightness or hue, got {by!r}")

    @property
    def image_proportions(self) -> np.ndarray:
        """``(n, k)`` share of each colour in each image (rows of failed images are 0)."""
        valid = np.maximum(self.image_valid, 1)[:, None]
        return self.image_counts / valid

    @property
    def image_areas(self) -> np.ndarray:
        """``(n, k)`` area of each colour in each image in m²: pixels x pixel height x width (NaN unknown)."""
        size = self.image_pixel_size
        if size is None:  # an older store
            size = np.zeros((len(self.image_names), 2))
        area = size[:, 0] * size[:, 1]
        return self.image_counts * np.where(area > 0, area, np.nan)[:, None]

    @property
    def areas(self) -> np.ndarray | None:
        """Area of each colour over all images in m²; None unless every image done declares its pixel size."""
        done = np.asarray(self.image_status) == DONE
        areas = self.image_areas[done]
        if not done.any() or np.isnan(areas).any():
            return None
        return areas.sum(axis=0)

    @property
    def area_unit(self) -> tuple[str, float]:
        """The unit areas are shown in, ``(name, m² in one)``: by the images' largest pixel.

        Examples
        --------
        >>> one = np.zeros((1, 3), np.float32)
        >>> r = PaletteResult(one, one, one.astype(np.uint8), np.array([4]), ["a"], np.array([[4]]),
        ...                   np.array([4]), np.array([0]), np.array([1]), [""],
        ...                   image_pixel_size=np.array([[0.5e-6, 0.5e-6]]))
        >>> r.area_unit
        ('µm²', 1e-12)
        """
        from ..inputs.physical import area_unit

        sizes = np.asarray(self.image_pixel_size, dtype=np.float64).reshape(-1, 2)
        return area_unit(float(np.max(sizes[:, 0] * sizes[:, 1], initial=0.0)))

    @property
    def complete(self) -> bool:
        """Whether every image is done or failed."""
        return bool(self.attrs.get("complete", False))

    @property
    def failures(self) -> list[Failure]:
        """Each failed image, why, and whether on a transient fault, in input order.

        ``image_errors`` holds each one's whole line; a transient failure
        (``Failure.transient``) is read again by ``resume``, a permanent one is not.
        """
        return [
            Failure.of(name, error, status == FAILED_TRANSIENT)
            for name, error, status in zip(self.image_names, self.image_errors, self.image_status)
            if is_failed(status)
        ]

    @property
    def nodata(self) -> dict | None:
        """The no-data value applied: ``{"values": [...], "from": "option" | "inputs"}``, or None.

        The value given (``nodata=``, ``--nodata``), else those the inputs
        declare (GeoTIFF ``GDAL_NODATA``, ``_FillValue``...); NaN as ``"nan"``, for JSON.
        """
        given = self.attrs.get("parameters", {}).get("nodata")
        values = [given] if given is not None else self.attrs.get("nodata_applied") or []
        if not values:
            return None
        shown = ["nan" if math.isnan(v) else (int(v) if float(v).is_integer() else v) for v in values]
        return {"values": shown, "from": "option" if given is not None else "inputs"}

    def palette(self, order: str = "share") -> list[dict]:
        """The palette as a list of dicts, largest share first unless ``order`` says (see :meth:`ordered`).

        Each colour keeps its ``id`` whatever the order: its value in the label
        rasters, and ``id - 1`` its index in ``colors``, ``counts`` and the
        columns of ``image_counts`` and ``image_proportions``. ``area_m2``,
        its area in m², is there when every image done declares its pixel
        size (:attr:`areas`), with ``area`` in ``area_unit``, the unit
        ``show`` prints (:attr:`area_unit`: ``µm²`` for a slide). ``name`` is the
        nearest named colour by CIEDE2000 (:attr:`vocabulary`), distinct within
        the palette, and ``name_delta_e`` the CIEDE2000 difference to it
        (over :data:`~palette_dask.outputs.names.FAR`, the colour is only near it).
        """
        from ..kernels.colour import hex_code
        from .names import named_colours

        proportions, names, areas = self.proportions, named_colours(self.colors, self.vocabulary), self.areas
        entries = [
            {
                "id": int(i) + 1,
                "name": names[i][0],
                "name_delta_e": round(names[i][1], 2),
                "hex": hex_code(self.colors[i]),
                "rgb": [float(v) for v in self.centers_rgb[i]],
                "count": int(self.counts[i]),
                "proportion": float(proportions[i]),
            }
            for i in self.ordered(order)
        ]
        if areas is not None:  # every image done declares its pixel size
            unit, m2 = self.area_unit
            for entry in entries:
                area = float(areas[entry["id"] - 1])
                entry.update(area_m2=area, area=area / m2, area_unit=unit)
        return entries

    def labels(self, index: int, like=None):
        """Image ``index``'s label raster as an ``xarray.DataArray`` of colour ids (0: left out), lazily read.

        ``like``, the image as it was given (an xarray DataArray, a rioxarray
        scene), lends its dimension names, coordinates, CRS and transform; see
        :func:`palette_dask.outputs.labels.label_array`.
        """
        from .labels import label_array

        if self.store is None:
            raise StoreError("the label rasters are in a store: run with labels=True and store=")
        return label_array(self.store, index, self.palette(), like)

    def to_dict(self) -> dict:
        """The JSON document of the command line (docs/outputs.md, "JSON")."""
        status, n = np.asarray(self.image_status), len(self.image_names)
        done, failed = int((status == DONE).sum()), int(is_failed(status).sum())
        transient = int((status == FAILED_TRANSIENT).sum())  # of the failed: read again by a resume
        params = self.attrs.get("parameters", {})
        return {
            "k": self.k,
            "k_requested": params.get("k", self.k),
            "space": self.attrs.get("space", "rgb"),
            "store": self.store,
            "complete": self.complete,
            "pixels": {"valid": int(self.counts.sum()), "masked": int(self.image_masked.sum())},
            "nodata": self.nodata,
            "display_range": self.attrs.get("display_range"),
            "palette_from": params.get("palette"),
            "inertia": self.attrs.get("inertia"),
            "lab_error": self.attrs.get("lab_error"),
            "errors": {"exact": self.errors_exact, "measured_pixels": self.error_pixels},
            "palette": self.palette(),
            "images": {"total": n, "done": done, "failed": failed, "transient": transient},
            "failures": [
                {"image": f.image, "error": f.reason, "transient": f.transient} for f in self.failures
            ],
        }


def load_result(source: str | os.PathLike | zarr.Group) -> PaletteResult:
    """Read a store back as a :class:`PaletteResult`.

    Examples
    --------
    >>> from palette_dask.kernels.count import BatchCounts, ImageCounts
    >>> from palette_dask.outputs.store import create_store, finish_store, write_batch, write_palette
    >>> group = create_store(None, ["a.png"], attrs={"parameters": {"k": 1}})
    >>> write_palette(group, np.array([[10, 20, 30]], dtype=np.float32))
    >>> batch = BatchCounts.empty(0, 1, 1)
    >>> batch.done(0, ImageCounts(np.array([4]), np.zeros(1), masked=1))
    >>> write_batch(group, batch)
    >>> finish_store(group)
    >>> result = load_result(group)
    >>> result.palette()[0]["hex"], result.to_dict()["pixels"]
    ('#0a141e', {'valid': 4, 'masked': 1})
    """
    group = source if isinstance(source, zarr.Group) else open_store(source)
    n = group["image_status"].shape[0]
    if "centers" in group:
        centers, colors = group["centers"][:], group["colors"][:]
        centers_rgb = read_centers_rgb(group)
        image_counts = group["image_counts"][:]
    else:  # nothing could be fitted
        centers = centers_rgb = np.zeros((0, 3), np.float32)
        colors, image_counts = np.zeros((0, 3), np.uint8), np.zeros((n, 0), np.int64)
    counts = group["counts"][:] if "counts" in group else image_counts.sum(axis=0)
    path = store_path(group)
    return PaletteResult(
        centers=centers,
        centers_rgb=centers_rgb,
        colors=colors,
        counts=counts,
        image_names=[str(s) for s in group["image_names"][:]],
        image_counts=image_counts,
        image_valid=group["image_valid"][:],
        image_masked=group["image_masked"][:],
        image_status=group["image_status"][:],
        image_errors=[str(s) for s in group["image_errors"][:]],
        attrs=dict(group.attrs),
        store=path,
        image_lab_squared_error=(
            group["image_lab_squared_error"][:] if "image_lab_squared_error" in group else None
        ),
        image_palettes=group["image_palettes"][:] if "image_palettes" in group else None,
        image_palette_shares=group["image_palette_shares"][:] if "image_palette_shares" in group else None,
        image_pixel_size=group["image_pixel_size"][:] if "image_pixel_size" in group else None,
        image_shape=group["image_shape"][:] if "image_shape" in group else None,
        image_error_pixels=group["image_error_pixels"][:] if "image_error_pixels" in group else None,
        image_datetime=[str(s) for s in group["image_datetime"][:]] if "image_datetime" in group else None,
        image_crs=[str(s) for s in group["image_crs"][:]] if "image_crs" in group else None,
    )
