"""Pixels: from raw image blocks to float32 colour features and a validity mask.

The feature space is display sRGB on the 0–255 scale, three float32 features
per pixel, whatever the input, or CIELAB (``space="lab"``, see
:mod:`palette_dask.kernels.colour`). A :class:`PixelSpec` says, for one image:

- which bands are the colour: three (red, green, blue) or one (gray, which is
  repeated three times; clustering is unchanged); ``bands`` picks three of a
  multispectral image;
- which band is alpha: a pixel with alpha 0 is left out, every other pixel is
  kept with its colour (alpha is a mask, never a colour);
- the nodata value: a pixel whose bands all equal it is left out, as GDAL's
  dataset mask does; a pixel with a NaN colour band is left out too;
- the colours excluded: a pixel whose display colour is within ΔE00
  ``within`` of one of them is left out too (a white background, say);
- the display range: band values ``low`` map to 0 and ``high`` to 255, then
  clipped. :func:`pixel_spec` sets it from the dtype (``scale="dtype"``:
  0–255 for 8-bit, 0–65535 for 16-bit, 0–1 for floats), from explicit
  values (``scale=(0, 10000)``), or leaves it to be measured
  (``"minmax"``, ``"percentile"``; see :func:`band_range`, :func:`percentile_range`);
  ``"auto"`` is ``"dtype"`` for 8-bit data and ``"percentile"`` for wider
  (:func:`wider_than_8_bits`), as QGIS shows a raster by default.

:func:`block_features` works on one numpy block and is what every task calls;
:func:`pixel_features` and :func:`pixel_table` are the dask versions for notebooks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import dask
import dask.array as da
import numba
import numpy as np

from ..constants import EXCLUDE_WITHIN, SCALES
from ..errors import ImageReadError
from ..inputs.formats import ImageInfo
from ..options import RunConfig
from .colour import excluded, hex_rgb, srgb_to_lab

__all__ = [
    "N_FEATURES",
    "SCALES",
    "PixelSpec",
    "pixel_spec",
    "run_spec",
    "SpecCache",
    "valid_mask",
    "colour_values",
    "to_display",
    "to_features",
    "exclusion",
    "block_features",
    "pixel_features",
    "pixel_table",
    "band_range",
    "block_range",
    "combine_ranges",
    "percentile_range",
    "wider_than_8_bits",
    "auto_measures",
    "range_kind",
]

N_FEATURES = 3
#: The percentiles of ``scale="percentile"``.
PERCENTILES = (2.0, 98.0)


@dataclass(frozen=True)
class PixelSpec:
    """How the bands of one image become colour features (see the module docstring).

    Attributes
    ----------
    bands : tuple of int
        Indices of the colour bands: three, or one for gray.
    alpha : int or None
        Index of the alpha band.
    nodata : float or None
        Pixels whose non-alpha bands all equal this are left out.
    low, high : tuple of float, or None
        Per colour band, the values shown as 0 and 255; None until measured.
    space : {"rgb", "lab"}
        The feature space: display sRGB 0–255, or CIELAB.
    exclude : tuple of (L, a, b)
        CIELAB of the colours left out, with every display colour within
        ΔE00 ``within`` of one of them.
    within : float
        That CIEDE2000 difference.
    """

    bands: tuple[int, ...]
    alpha: int | None = None
    nodata: float | None = None
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    space: str = "rgb"
    exclude: tuple[tuple[float, float, float], ...] = ()
    within: float = EXCLUDE_WITHIN

    def with_range(self, low: Sequence[float], high: Sequence[float]) -> PixelSpec:
        """The same spec with a display range (one value per colour band, or three)."""
        low, high = tuple(float(v) for v in low), tuple(float(v) for v in high)
        if len(low) == N_FEATURES and len(self.bands) == 1:
            low, high = low[:1], high[:1]
        return replace(self, low=low, high=high)


def wider_than_8_bits(dtype) -> bool:
    """Whether data of this type are wider than 8 bits: ``scale="auto"`` measures their range.

    QGIS stretches every band but a byte one to its cumulative 2%–98% cut by
    default, floats too, whatever their values (0–1 reflectance included).

    Examples
    --------
    >>> [wider_than_8_bits(t) for t in ("uint8", "bool", "int8", "uint16", "float32")]
    [False, False, False, True, True]
    """
    return np.dtype(dtype).itemsize > 1


def auto_measures(scale, dtype) -> bool:
    """Whether ``scale`` shows data of this type by the range measured on a run's sample as ``auto`` does.

    The one home of auto's rule: 8-bit data keep their type's range (as
    ``"dtype"``), data wider than 8 bits are shown by the measured cut.

    Examples
    --------
    >>> auto_measures("auto", "uint16"), auto_measures("auto", "uint8"), auto_measures("dtype", "uint16")
    (True, False, False)
    """
    return isinstance(scale, str) and scale == "auto" and wider_than_8_bits(dtype)


def range_kind(dtypes) -> str | None:
    """What a display range was measured on: ``"integer"`` or ``"float"`` data, None for both or neither.

    Stored beside the range (``display_range_kind``): a range of integers
    (0-10000) shows floats (0-1) as one colour, and the other way round.

    Examples
    --------
    >>> range_kind(["uint16"]), range_kind({"float32", "float64"}), range_kind(["uint16", "float32"])
    ('integer', 'float', None)
    """
    kinds = {"float" if np.issubdtype(np.dtype(d), np.floating) else "integer" for d in dtypes}
    return kinds.pop() if len(kinds) == 1 else None


def _dtype_range(dtype: np.dtype) -> tuple[float, float]:
    if dtype == np.bool_:
        return 0.0, 1.0
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(min(info.min, 0)), float(info.max)
    return 0.0, 1.0


def _alpha_band(info: ImageInfo, alpha) -> int | None:
    """The alpha band: the one the user names (``alpha``, 0-based), or the last if the format says so.

    A band is alpha only where the format declares it (a PNG's colour type,
    a TIFF's extra-sample tag) or the user does: zarr, OME-Zarr and arrays
    declare nothing, whatever their number of bands.
    """
    count = info.shape[2]
    if alpha is None:
        return count - 1 if info.alpha else None
    if isinstance(alpha, bool) or not isinstance(alpha, (int, np.integer)) or not -count <= alpha < count:
        typed = alpha + 1 if isinstance(alpha, (int, np.integer)) and not isinstance(alpha, bool) else alpha
        raise ImageReadError(
            f"{info.source}: alpha={alpha!r} (--alpha {typed}) is not one of its {count} bands "
            f"(0 to {count - 1} from Python, 1 to {count} on the command line)"
        )
    return int(alpha) % count


def _undeclared(count: int, alpha: int | None, shape=None) -> str:
    """Why the colours of an image with ``count`` bands are not known, and what to pass.

    Examples
    --------
    >>> _undeclared(2, None).split(": ")[0]
    '2 bands, and nothing says which are colours or alpha'
    """
    said = f"{count} bands" + (f" (shape {shape})" if shape else "")
    said += f", band {alpha + 1} alpha" if alpha is not None else ""
    said += ", and nothing says which are colours" + (" or alpha" if alpha is None else "")
    if count == 2 and alpha is None:
        return (
            f"{said}: choose the band shown as gray with --bands 1 (bands=(0,) from Python), "
            "and --alpha 2 if the other one is alpha"
        )
    if count == 4 and alpha is None:
        return (
            f"{said}: choose three with --bands 1,2,3 (bands=(0, 1, 2) from Python), "
            "and --alpha 4 if the fourth is alpha"
        )
    return (
        f"{said}: choose three for the display colours with --bands 4,3,2 (counted from 1; "
        "bands=(3, 2, 1) from Python), or one shown as gray"
    )


def _parse_bands(info: ImageInfo, bands, alpha: int | None) -> tuple[int, ...]:
    """The colour bands: those chosen, those the format shows as red, green, blue, or all but alpha."""
    count = info.shape[2]
    if bands is None and info.shown_bands is not None and alpha not in info.shown_bands:
        return info.shown_bands  # as the format says to show them (OME's channel colours)
    if bands is None:
        colour = tuple(b for b in range(count) if b != alpha)
        if len(colour) not in (1, 3):
            raise ImageReadError(f"{info.source}: {_undeclared(count, alpha, info.shape)}")
        return colour
    bands = tuple(int(b) for b in bands)
    if len(bands) not in (1, 3) or not all(-count <= b < count for b in bands):
        typed = ",".join(str(b + 1) for b in bands)  # as the command line counts, from 1
        raise ImageReadError(
            f"{info.source}: bands={bands} (--bands {typed}) must be one or three of its {count} bands "
            f"(0 to {count - 1} from Python, 1 to {count} on the command line)"
        )
    return tuple(b % count for b in bands)


def pixel_spec(
    info: ImageInfo,
    *,
    bands: Sequence[int] | None = None,
    alpha: int | None = None,
    nodata: float | None = None,
    scale: str | tuple[float, float] = "dtype",
    space: str = "rgb",
    exclude: Sequence[str] = (),
    within: float = EXCLUDE_WITHIN,
) -> PixelSpec:
    """The spec of one image from its header and the user's choices.

    ``bands`` are 0-based indices of the colour bands, by default all but
    alpha when they are one or three; ``alpha`` the index of the alpha band,
    by default the last where the format declares one (see :func:`_alpha_band`):
    a declared alpha band not among the chosen ones still masks, another
    unchosen band is never read. ``nodata`` overrides the file's own;
    ``scale`` is ``"auto"``, ``"dtype"``, ``"minmax"``, ``"percentile"`` or a
    ``(low, high)`` pair. With ``"minmax"`` and ``"percentile"`` the range is
    left empty, to be measured over all images, and so is it with ``"auto"``
    for data wider than 8 bits (8-bit data: as ``"dtype"``; :func:`auto_measures`).
    The default stays ``"dtype"``: one image's spec knows no sample (a run's
    options, ``"auto"`` by default, give :func:`run_spec`). ``exclude`` holds
    ``#rrggbb`` colours: display colours within ΔE00 ``within`` of them are left out.

    Examples
    --------
    >>> info = ImageInfo("scene.tif", "tiff", (100, 100, 7), "uint16")
    >>> spec = pixel_spec(info, bands=(3, 2, 1), nodata=0)
    >>> spec.bands, spec.alpha, spec.high
    ((3, 2, 1), None, (65535.0, 65535.0, 65535.0))
    >>> pixel_spec(info, bands=(3, 2, 1), scale="auto").high is None  # to be measured on the sample
    True
    """
    named, alpha = alpha is not None, _alpha_band(info, alpha)
    colour = _parse_bands(info, bands, alpha)
    if alpha in colour and named:
        raise ImageReadError(f"{info.source}: band {alpha + 1} is both alpha (--alpha) and colour (--bands)")
    if alpha in colour:  # the format's alpha band chosen as a colour shows as one
        alpha = None
    RunConfig(nodata=nodata, scale=scale, space=space, exclude=exclude, exclude_within=within)  # the checks
    dtype = np.dtype(info.dtype)
    if nodata is None and info.nodata_conflict:  # the input's parts disagree: --nodata decides
        raise ImageReadError(info.nodata_conflict)
    if nodata is None:  # the input's own (GDAL_NODATA, _FillValue...), if its data can hold it
        nodata = info.nodata if info.nodata is not None and _can_hold(dtype, info.nodata) else None
    elif not _can_hold(dtype, nodata):
        limits = np.iinfo(dtype)
        raise ImageReadError(
            f"{info.source}: nodata={nodata:g} cannot occur in {dtype} data "
            f"({limits.min} to {limits.max}); pass a value of that type"
        )
    spec = PixelSpec(
        bands=colour,
        alpha=alpha,
        nodata=None if nodata is None else float(nodata),
        space=space,
        exclude=tuple(tuple(srgb_to_lab(np.array(hex_rgb(c), np.float64)).tolist()) for c in exclude),
        within=float(within),
    )
    if isinstance(scale, str):
        if scale != "dtype" and (scale != "auto" or auto_measures(scale, dtype)):
            return spec
        low, high = _dtype_range(dtype)
    else:
        low, high = (float(v) for v in scale)
    return spec.with_range([low] * len(colour), [high] * len(colour))


def _can_hold(dtype: np.dtype, value: float) -> bool:
    """Whether data of this type can hold ``value``: integers hold their whole numbers in range."""
    if np.isnan(value) or not np.issubdtype(dtype, np.integer):
        return True
    limits = np.iinfo(dtype)
    return bool(limits.min <= value <= limits.max and float(value).is_integer())


def run_spec(info: ImageInfo, config: RunConfig, display_range=None) -> PixelSpec:
    """The spec of one image under a run's options (a store's: :meth:`RunConfig.from_parameters`).

    ``display_range`` (``[low, high]``, the store's ``display_range``) is
    applied when given: the range a ``minmax`` or ``percentile`` run measured,
    or an ``auto`` run for its data wider than 8 bits (its 8-bit data keep
    their type's range).

    Examples
    --------
    >>> info = ImageInfo("a.tif", "tiff", (8, 8, 3), "uint16")
    >>> run_spec(info, RunConfig(scale=(0, 4095))).high, run_spec(info, RunConfig.from_parameters({})).space
    ((4095.0, 4095.0, 4095.0), 'rgb')
    >>> measured, photo = [[100.0] * 3, [3000.0] * 3], ImageInfo("b.png", "pillow", (8, 8, 3), "uint8")
    >>> run_spec(info, RunConfig(), measured).high, run_spec(photo, RunConfig(), measured).high
    ((3000.0, 3000.0, 3000.0), (255.0, 255.0, 255.0))
    """
    spec = pixel_spec(
        info,
        bands=config.bands,
        alpha=config.alpha,
        nodata=config.nodata,
        scale=config.scale,
        space=config.space,
        exclude=config.exclude,
        within=config.exclude_within,
    )
    if display_range is None or (config.scale == "auto" and not auto_measures(config.scale, info.dtype)):
        return spec
    return spec.with_range(*display_range)


class SpecCache(dict):
    """The specs of a run's images, made once per kind of image (dtype, bands, alpha, nodata).

    A batch of thousands of photos has a few kinds; a bad image still fails
    with its own name, as its error is not kept.

    Examples
    --------
    >>> known = SpecCache(RunConfig(space="lab"))
    >>> spec = known.spec(ImageInfo("a.png", "pillow", (8, 8, 3), "uint8"))
    >>> spec is known.spec(ImageInfo("b.png", "pillow", (5, 9, 3), "uint8")), len(known)
    (True, 1)
    """

    def __init__(self, config: RunConfig, display_range=None):
        super().__init__()
        self.config, self.display_range = config, display_range

    def spec(self, info: ImageInfo) -> PixelSpec:
        """:func:`run_spec` of this image."""
        kind = (info.dtype, info.shape[2], info.alpha, info.nodata, info.shown_bands, info.nodata_conflict)
        if kind not in self:
            self[kind] = run_spec(info, self.config, self.display_range)
        return self[kind]


class LoopSpec(NamedTuple):
    """What the compiled loops take of a spec, for pixels of one dtype (:func:`loop_spec`).

    Attributes
    ----------
    low, scale : ndarray of float64, shape (3,)
        The display range: ``low`` and ``255 / span``.
    bands : ndarray of int64, shape (3,)
        The three colour bands (a gray band three times).
    alpha : int
        The alpha band, or -1.
    nodata : ndarray, shape (0,) or (1,)
        The nodata value as an array of the pixels' dtype, or none.
    nodata_is_nan, check_nan, eight_bit : bool
        Whether NaN is nodata, whether to check colour bands for NaN, and
        whether the pixels are 8-bit colours that are their own features.
    """

    low: np.ndarray
    scale: np.ndarray
    bands: np.ndarray
    alpha: int
    nodata: np.ndarray
    nodata_is_nan: bool
    check_nan: bool
    eight_bit: bool


@functools.lru_cache(maxsize=64)
def loop_spec(spec: PixelSpec, dtype: np.dtype) -> LoopSpec:
    """The :class:`LoopSpec` of a spec for pixels of one dtype; made once, not per block."""
    low = np.resize(np.asarray(spec.low, dtype=np.float64), N_FEATURES)
    high = np.resize(np.asarray(spec.high, dtype=np.float64), N_FEATURES)
    scale = 255.0 / np.where(high > low, high - low, 1.0)  # as to_features does
    bands = np.resize(np.asarray(spec.bands, dtype=np.int64), N_FEATURES)
    nodata_is_nan = bool(spec.nodata is not None and np.isnan(spec.nodata))
    nodata = (
        np.asarray([spec.nodata], dtype=dtype)
        if spec.nodata is not None and not nodata_is_nan
        else np.empty(0, dtype=dtype)
    )
    eight_bit = dtype == np.uint8 and bool(np.all(low == 0.0)) and bool(np.all(scale == 1.0))
    alpha = -1 if spec.alpha is None else int(spec.alpha)
    check_nan = bool(np.issubdtype(dtype, np.floating))
    return LoopSpec(low, scale, bands, alpha, nodata, nodata_is_nan, check_nan, bool(eight_bit))


@functools.lru_cache(maxsize=64)
def exclusion(spec: PixelSpec) -> tuple[np.ndarray, float]:
    """What the compiled loops take of the excluded colours: CIELAB as ``(m, 3)`` float64, ``within``."""
    return np.asarray(spec.exclude, dtype=np.float64).reshape(-1, 3), float(spec.within)


@numba.njit(nogil=True, cache=True)
def is_valid(pixels, i, loop):
    """Whether pixel ``i`` of ``(n, bands)`` pixels counts, as :func:`valid_mask` says; for compiled loops.

    ``loop`` is the pixels' :class:`LoopSpec`. The sampling loop calls it (for
    the few pixels whose key is low enough); the counting loop has it written
    out, a twin tested equal to :func:`valid_mask` (``tests/test_count.py``):
    called there, even inlined by numba (``inline="always"``), it made the loop
    2-4x slower (2026-12-03, 4 MP: 16-30 ns a pixel written out, 67-102 called).
    """
    valid = not (loop.alpha >= 0 and not pixels[i, loop.alpha] > 0)
    if valid and (loop.nodata_is_nan or loop.nodata.shape[0] > 0):
        all_nodata = True
        for f in range(3):
            value = pixels[i, loop.bands[f]]
            if loop.nodata_is_nan:
                if value == value:
                    all_nodata = False
            elif value != loop.nodata[0]:
                all_nodata = False
        valid = not all_nodata
    if valid and loop.check_nan:
        for f in range(3):
            value = pixels[i, loop.bands[f]]
            if value != value:
                valid = False
    return valid


def valid_mask(block: np.ndarray, spec: PixelSpec) -> np.ndarray:
    """Which pixels of a ``(..., bands)`` block count: alpha > 0, not nodata, no NaN, no excluded colour."""
    valid = np.ones(block.shape[:-1], dtype=bool)
    if spec.alpha is not None:
        valid &= block[..., spec.alpha] > 0
    if spec.nodata is not None:  # the colour bands all equal to it (unchosen bands are not read)
        data = block[..., list(spec.bands)]
        if np.isnan(spec.nodata):
            valid &= ~np.all(np.isnan(data), axis=-1)
        else:
            valid &= ~np.all(data == np.asarray(spec.nodata, dtype=block.dtype), axis=-1)
    if np.issubdtype(block.dtype, np.floating):
        valid &= ~np.any(np.isnan(block[..., list(spec.bands)]), axis=-1)
    if spec.exclude and spec.high is not None:
        valid &= ~excluded(to_display(colour_values(block, spec), spec), *exclusion(spec))
    return valid


def colour_values(block: np.ndarray, spec: PixelSpec) -> np.ndarray:
    """The colour bands of a ``(..., bands)`` block as float64 ``(..., 3)``, unscaled."""
    values = block[..., list(spec.bands)].astype(np.float64)
    return np.repeat(values, N_FEATURES, axis=-1) if values.shape[-1] == 1 else values


def to_display(values: np.ndarray, spec: PixelSpec) -> np.ndarray:
    """Map :func:`colour_values` to display sRGB, float32 0–255, by the spec's range."""
    low = np.resize(np.asarray(spec.low, dtype=np.float64), N_FEATURES)
    high = np.resize(np.asarray(spec.high, dtype=np.float64), N_FEATURES)
    span = np.where(high > low, high - low, 1.0)  # a constant band shows as its low end
    display = ((values - low) * (255.0 / span)).astype(np.float32)
    return np.clip(display, 0.0, 255.0, out=display)


def to_features(values: np.ndarray, spec: PixelSpec) -> np.ndarray:
    """Map :func:`colour_values` to the features: :func:`to_display`, then CIELAB if the spec's space is."""
    display = to_display(values, spec)
    return srgb_to_lab(display).astype(np.float32) if spec.space == "lab" else display


def block_features(block: np.ndarray, spec: PixelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Colour features and validity of one ``(rows, cols, bands)`` block.

    Returns
    -------
    features : ndarray of float32, shape (rows, cols, 3)
        sRGB on the 0–255 scale.
    valid : ndarray of bool, shape (rows, cols)

    Examples
    --------
    >>> rgba = np.array([[[255, 0, 0, 255], [0, 255, 0, 0]]], dtype=np.uint8)
    >>> spec = pixel_spec(ImageInfo("a.png", "pillow", (1, 2, 4), "uint8", alpha=True))
    >>> features, valid = block_features(rgba, spec)
    >>> features[0, 0].tolist(), valid.tolist()
    ([255.0, 0.0, 0.0], [[True, False]])
    """
    return to_features(colour_values(block, spec), spec), valid_mask(block, spec)


def pixel_features(image: da.Array, spec: PixelSpec) -> tuple[da.Array, da.Array]:
    """Lazy :func:`block_features` over a whole image.

    Returns
    -------
    features : dask array of float32, shape (rows, cols, 3)
    valid : dask array of bool, shape (rows, cols)
    """
    image = image.rechunk({2: -1})
    features = image.map_blocks(
        lambda b: block_features(b, spec)[0], chunks=image.chunks[:2] + ((N_FEATURES,),), dtype=np.float32
    )
    valid = image.map_blocks(lambda b: valid_mask(b, spec), drop_axis=2, dtype=bool)
    return features, valid


def pixel_table(image: da.Array, spec: PixelSpec) -> da.Array:
    """The tutorial's ``(pixels × channels)`` table, of valid pixels only.

    The number of rows is unknown until computed (masked pixels are dropped).

    Examples
    --------
    >>> rgba = da.from_array(np.array([[[9, 9, 9, 255], [1, 1, 1, 0]]], dtype=np.uint8))
    >>> spec = pixel_spec(ImageInfo("a", "array", (1, 2, 4), "uint8", alpha=True))
    >>> pixel_table(rgba, spec).compute().tolist()
    [[9.0, 9.0, 9.0]]
    """
    features, valid = pixel_features(image, spec)
    return features.reshape(-1, N_FEATURES)[valid.reshape(-1)]


def block_range(block: np.ndarray, spec: PixelSpec) -> np.ndarray:
    """``(2, 3)``: the least and greatest valid value of each colour band of one block (±inf if none)."""
    values = colour_values(block, spec)[valid_mask(block, spec)]
    if len(values) == 0:
        return np.array([[np.inf] * N_FEATURES, [-np.inf] * N_FEATURES])
    return np.stack([values.min(axis=0), values.max(axis=0)])


def band_range(image: da.Array, spec: PixelSpec) -> dask.delayed:
    """Delayed ``(2, 3)`` array: the least and greatest value of each colour band over valid pixels.

    One pass over the image, chunk by chunk (``scale="minmax"``).
    """
    parts = [dask.delayed(block_range)(block, spec) for block in image.to_delayed().ravel()]
    return dask.delayed(combine_ranges)(parts)


def combine_ranges(ranges: Sequence[np.ndarray]) -> np.ndarray:
    """The overall ``(2, 3)`` range of several :func:`band_range` results."""
    return np.stack([np.min([r[0] for r in ranges], axis=0), np.max([r[1] for r in ranges], axis=0)])


def percentile_range(values: np.ndarray, percentiles=PERCENTILES) -> np.ndarray:
    """``(2, 3)``: the low and high percentiles of each band of sampled raw values."""
    return np.percentile(np.asarray(values, dtype=np.float64), percentiles, axis=0)
