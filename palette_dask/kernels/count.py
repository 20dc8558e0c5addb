"""Count: one fused pass over all pixels that labels and counts them per chunk.

Each chunk's task reads its tile, and one compiled loop (numba) turns every
pixel into its features, checks its mask, finds its nearest centre and counts
it: the task returns only a small vector (the pixels per cluster, their
squared distances for the true inertia, the masked pixels, and the palette's
CIELAB error: the squared ΔE*ab of each pixel to its nearest palette colour
as shown, rounded to 8-bit sRGB), and holds no per-pixel temporary array.
The label raster is never materialised, unless label rasters are asked for,
and then only one chunk at a time, handed to the writer the caller gives
(:mod:`palette_dask.outputs.labels`): this module writes nothing.

A run of many 8-bit pixels (:data:`LOOKUP_PIXELS`) labels and counts them
from a table of every colour's label, one or two bytes a colour (it stays in
the processor's cache), and measures the squared errors on a fixed 1 in 32
of the pixels (:func:`sampled`): those errors are then estimates, and each
block says on how many pixels they were measured (``error_pixels``).

The loop shares its compiled helpers with the sample's and the fit's code:
each pixel's CIELAB comes from :func:`~palette_dask.kernels.colour.lab_of` (as in
:func:`~palette_dask.kernels.pixels.block_features`) and its centre from
:func:`~palette_dask.kernels.fit.nearest` (as in :func:`~palette_dask.kernels.fit.nearest_center`),
so its counts equal ``numpy.bincount`` of their labels (tested).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import dask.array as da
import numba
import numpy as np

from ..errors import Status, image_error, no_valid_pixels
from ..inputs.read import Batch
from ..inputs.retry import is_transient
from ..options import RunConfig
from .colour import is_excluded, lab_of, lab_to_srgb, palette_lab
from .fit import nearest
from .pixels import N_FEATURES, PixelSpec, SpecCache, exclusion, loop_spec

__all__ = [
    "ImageCounts",
    "BatchCounts",
    "block_stats",
    "image_stats",
    "unpack_stats",
    "batch_stats",
    "label_dtype",
]


@dataclass(frozen=True)
class ImageCounts:
    """Counts of one image over the palette.

    Attributes
    ----------
    counts : ndarray of int64, shape (k,)
        Valid pixels nearest to each centre.
    squared_error : ndarray of float64, shape (k,)
        Sum of squared distances of those pixels to their centre, in the clustering space.
    masked : int
        Pixels left out (alpha 0, nodata, NaN).
    lab_squared_error : float
        Sum over the valid pixels of the squared CIELAB distance to the nearest
        palette colour rounded to 8-bit sRGB.
    error_pixels : int or None
        The valid pixels the two errors were measured on: fewer than ``valid``
        when they are estimates scaled up from those pixels (see :func:`sampled`);
        None: all of them, the errors are exact.
    """

    counts: np.ndarray
    squared_error: np.ndarray
    masked: int
    lab_squared_error: float = 0.0
    error_pixels: int | None = None

    @property
    def valid(self) -> int:
        """Valid pixels (the sum of ``counts``)."""
        return int(self.counts.sum())

    @property
    def measured(self) -> int:
        """The valid pixels the errors were measured on (``valid`` when they are exact)."""
        return self.valid if self.error_pixels is None else self.error_pixels


#: Colours remembered by the counting loop of an 8-bit chunk (a power of two).
CACHE_SLOTS = 2**15
#: A run with at least this many 8-bit pixels counts them with lookup tables of all 2^24
#: colours, built once per worker process in 0.6 s while its other threads compute: a pixel is
#: labelled and counted from a table of labels (16 MB at k < 255) and its errors measured on a
#: 32nd of the pixels (:func:`sampled`): on a photo mosaic, 1.6x faster than a 16-byte record
#: looked up for every pixel, 9x faster than computing (RESULTS.md, "Counting in cache").
LOOKUP_PIXELS = 2**26
#: The errors of a block counted with the tables are measured on the pixels :func:`sampled`
#: selects, those whose image-global index ``i`` has ``frac(i / golden ratio) < 2**-SAMPLE_SHIFT``.
SAMPLE_SHIFT = 5
#: A block whose sampled pixels hold fewer valid ones is measured whole: its errors are exact.
MEASURED_AT_LEAST = 4096
_PHI64 = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd: frac(i / φ) as a 64-bit fraction
_SAMPLED_BELOW = np.uint64(2 ** (64 - SAMPLE_SHIFT))


def _return_gaps() -> np.ndarray:
    """The gaps between successive sampled indices: three (the three-distance theorem), found by stepping."""
    fractions = np.arange(1 << 20, dtype=np.uint64) * _PHI64  # wraps modulo 2^64, as meant
    return np.unique(np.diff(np.flatnonzero(fractions < _SAMPLED_BELOW))).astype(np.int64)


_GAPS = _return_gaps()
_GAP_STEPS = _GAPS.astype(np.uint64) * _PHI64


class Palette(NamedTuple):
    """A palette as the compiled loops take it.

    Attributes
    ----------
    lab : bool
        Whether the clustering features are CIELAB (else the display colour).
    centers : ndarray of float64, shape (k, 3)
        The centres, in those features.
    colors_lab : ndarray of float64, shape (k, 3)
        The colours shown (the centres rounded to 8-bit sRGB), in CIELAB.
    exclude_lab : ndarray of float64, shape (m, 3)
        Colours left out, in CIELAB; a colour within ΔE00 ``within`` of one is masked.
    within : float
    """

    lab: bool
    centers: np.ndarray
    colors_lab: np.ndarray
    exclude_lab: np.ndarray
    within: float


@numba.njit(nogil=True, cache=True, inline="always")
def _colour_result(red, green, blue, palette):
    """Nearest centre, its squared distance, and the squared CIELAB distance to the nearest colour shown.

    ``red, green, blue`` are the display colour as float64 0–255 (float32 values). The
    CIELAB error is rounded to float32, as :func:`colour_lookup` stores it. An excluded
    colour (see :class:`Palette`) gets the label -1: left out, as masked.
    """
    lightness, green_red, blue_yellow = lab_of(red, green, blue)
    if palette.exclude_lab.shape[0] > 0 and is_excluded(
        lightness, green_red, blue_yellow, palette.exclude_lab, palette.within
    ):
        return -1, 0.0, 0.0
    if palette.lab:  # the features are the pixel's Lab, as float32 like the sample's
        f0 = np.float64(np.float32(lightness))
        f1 = np.float64(np.float32(green_red))
        f2 = np.float64(np.float32(blue_yellow))
    else:
        f0, f1, f2 = red, green, blue
    best, best_d2 = nearest(f0, f1, f2, palette.centers)
    _, nearest_shown = nearest(lightness, green_red, blue_yellow, palette.colors_lab)
    return best, best_d2, np.float64(np.float32(nearest_shown))


#: One entry of the lookup table: a colour's squared distance to its centre (float64, as
#: computed), its CIELAB error (float32 in both paths) and its label, in 16 bytes: one read a pixel.
LOOKUP_ENTRY = np.dtype([("squared", "f8"), ("lab", "f4"), ("label", "i2"), ("pad", "i2")])


@numba.njit(nogil=True, cache=True)
def _fill_lookup(palette, table):
    """The results of every 8-bit colour ``(r << 16) | (g << 8) | b``, as the counting loop computes them."""
    for key in range(table.shape[0]):
        red = np.float64(np.float32(key >> 16))
        green = np.float64(np.float32((key >> 8) & 255))
        blue = np.float64(np.float32(key & 255))
        label, squared, lab_error = _colour_result(red, green, blue, palette)
        table[key].label = label
        table[key].squared = squared
        table[key].lab = lab_error


_lookups: dict = {}
_lookup_lock = threading.Lock()


def colour_lookup(palette: Palette):
    """The results of all 2^24 8-bit colours for one palette: ``(records, labels)``.

    ``records`` are :data:`LOOKUP_ENTRY` records (256 MB; excluded colours
    have the label -1), ``labels`` each colour's label + 1, 0 where excluded,
    as label rasters hold them (of :func:`label_dtype`: 16 MB at k < 255,
    within the shared cache). Built once per worker process and palette
    (0.6 s) and shared by its threads; the counting loops then look each
    pixel up instead of converting it to Lab and searching the palette: the
    same labels, counts and errors per colour, though a block counted from the
    labels has its errors estimated (:func:`sampled`). A thread that finds
    another building them waits (one that counted by computing meanwhile
    crashed numba's dispatcher, and left exact what others estimate).
    """
    key = tuple(field.tobytes() if isinstance(field, np.ndarray) else field for field in palette)
    found = _lookups.get(key)  # one read: another thread may clear it for another palette
    if found is not None:
        return found
    with _lookup_lock:
        if key not in _lookups:
            _lookups.clear()  # one palette at a time
            table = np.zeros(2**24, dtype=LOOKUP_ENTRY)
            _fill_lookup(palette, table)
            labels = (table["label"] + 1).astype(label_dtype(len(palette.centers)))
            _lookups[key] = table, labels
        return _lookups[key]


_NO_LOOKUP = np.zeros(0, dtype=LOOKUP_ENTRY)


@numba.njit(nogil=True, cache=True)
def _count_by_lookup(pixels, loop, k, lookup, labels_out):
    """:func:`_count_pixels` of 8-bit colours without nodata, each pixel's record looked up: exact.

    For blocks too small for an estimate of their errors (thumbnails): a loop
    with nothing else in it, about 6 ns a pixel against 12 for the general
    one (measured), tested equal to :func:`_count_pixels`. Validity is alpha
    alone here, as :func:`_count_by_label`'s.
    """
    counts = np.zeros(k, dtype=np.int64)
    squared = np.zeros(k, dtype=np.float64)
    masked = 0
    lab_error = 0.0
    write_labels = labels_out.shape[0] > 0
    alpha, bands = loop.alpha, loop.bands
    for i in range(pixels.shape[0]):
        if alpha >= 0 and pixels[i, alpha] == 0:
            masked += 1
            if write_labels:
                labels_out[i] = 0
            continue
        key = (np.int32(pixels[i, bands[0]]) << 16) | (np.int32(pixels[i, bands[1]]) << 8)
        entry = lookup[key | np.int32(pixels[i, bands[2]])]
        best = entry.label
        if best < 0:  # an excluded colour
            masked += 1
            if write_labels:
                labels_out[i] = 0
            continue
        counts[best] += 1
        squared[best] += entry.squared
        lab_error += np.float64(entry.lab)
        if write_labels:
            labels_out[i] = best + 1
    return counts, squared, masked, lab_error


@numba.njit(nogil=True, cache=True)
def _count_by_label(pixels, loop, k, labels, labels_out):
    """Counts and masked pixels of 8-bit colours without nodata, looked up in ``labels``.

    ``labels`` as :func:`colour_lookup` gives them. The fast twin of
    :func:`_count_pixels`'s labels and counts (tested equal for every 8-bit
    colour): one read a pixel of a table in cache, alpha 0 and excluded
    colours both counted in column 0. Slower, measured (RESULTS.md, "Counting
    in cache"): a coarse level of 4³-colour cells read first, four rows of
    counts, a branch that skips alpha 0. Validity is alpha alone here (what
    :func:`~palette_dask.kernels.pixels.is_valid` says of 8-bit pixels without
    nodata): calling it more than doubled this loop's time (measured).
    """
    counts = np.zeros(k + 1, dtype=np.int64)  # column 0: masked, and excluded colours
    write_labels = labels_out.shape[0] > 0
    alpha, band0, band1, band2 = loop.alpha, loop.bands[0], loop.bands[1], loop.bands[2]
    for i in range(pixels.shape[0]):
        key = (np.int32(pixels[i, band0]) << 16) | (np.int32(pixels[i, band1]) << 8)
        value = labels[key | np.int32(pixels[i, band2])]
        if alpha >= 0 and pixels[i, alpha] == 0:
            value = 0
        counts[value] += 1
        if write_labels:
            labels_out[i] = value
    return counts[1:], counts[0]


@numba.njit(nogil=True, cache=True)
def _next_sampled(fraction, gaps, steps):
    """The fraction and the distance of the sampled index after one whose fraction is ``fraction``."""
    for j in range(gaps.shape[0]):  # the shortest gap that lands below the threshold
        landed = fraction + steps[j]
        if landed < _SAMPLED_BELOW:
            return landed, gaps[j]
    return fraction, 0  # not reached (the three gaps are every return); the caller steps by one


@numba.njit(nogil=True, cache=True)
def _measure_sampled(pixels, loop, k, lookup, cols, first, width, gaps, steps):
    """Squared errors of the sampled valid pixels (:func:`sampled`) by label: ``(squared, lab, pixels)``.

    ``pixels`` are a block of ``cols`` columns, its first pixel the image's
    ``first`` (row-major index), the image ``width`` columns wide.
    """
    squared = np.zeros(k, dtype=np.float64)
    lab = np.zeros(k, dtype=np.float64)
    measured = np.zeros(k, dtype=np.int64)
    alpha, bands = loop.alpha, loop.bands
    for row in range(pixels.shape[0] // max(cols, 1)):
        fraction = np.uint64(first + row * width) * _PHI64  # modulo 2^64
        col = 0
        while col < cols:
            if fraction >= _SAMPLED_BELOW:  # to the row's first sampled pixel (at most the longest gap)
                fraction += _PHI64
                col += 1
                continue
            i = row * cols + col
            if alpha < 0 or pixels[i, alpha] != 0:
                key = (np.int32(pixels[i, bands[0]]) << 16) | (np.int32(pixels[i, bands[1]]) << 8)
                entry = lookup[key | np.int32(pixels[i, bands[2]])]
                best = entry.label
                if best >= 0:
                    squared[best] += entry.squared
                    lab[best] += np.float64(entry.lab)
                    measured[best] += 1
            fraction, gap = _next_sampled(fraction, gaps, steps)
            if gap == 0:
                fraction += _PHI64
                gap = 1
            col += gap
    return squared, lab, measured


def sampled(first: int, n: int) -> np.ndarray:
    """Which of the image's pixels ``first .. first + n - 1`` (row-major) the tables measure errors on.

    A pixel's index ``i`` alone decides: ``frac(i / golden ratio) < 1/32``,
    so the pixels are the same however the image is chunked, and spread
    evenly (a Weyl sequence: no stride for a periodic layout to alias with).

    Examples
    --------
    >>> np.flatnonzero(sampled(0, 100)).tolist()
    [0, 34, 68, 89]
    """
    return (np.arange(first, first + n, dtype=np.uint64) * _PHI64) < _SAMPLED_BELOW


def _estimated(counts, squared, lab, measured) -> tuple[np.ndarray, float]:
    """Each label's squared error and the CIELAB error, scaled up from its measured pixels to its count.

    A label none of whose pixels was measured takes the block's mean error.
    """
    mean_squared, mean_lab = squared.sum() / measured.sum(), lab.sum() / measured.sum()
    some = measured > 0
    scale = np.where(some, counts / np.maximum(measured, 1), 0.0)
    estimated = np.where(some, squared * scale, counts * mean_squared)
    return estimated, float(np.where(some, lab * scale, counts * mean_lab).sum())


@numba.njit(nogil=True, cache=True)
def _count_pixels(pixels, loop, palette, lookup, labels_out):
    """The fused per-pixel loop over ``(n, bands)`` pixels: counts, squared errors, masked, Lab error.

    ``loop`` is the pixels' :class:`~palette_dask.kernels.pixels.LoopSpec`,
    ``palette`` a :class:`Palette`. 8-bit colours that are their own
    features are looked up: in the table of all colours when one is given
    (:func:`colour_lookup`), else in a small direct-mapped cache keyed by the
    colour, which remembers the colours seen in this block. Either way a
    colour's results are the ones computed here, added in the same order.
    """
    k = palette.centers.shape[0]
    counts = np.zeros(k, dtype=np.int64)
    squared = np.zeros(k, dtype=np.float64)
    masked = 0
    lab_error = 0.0
    use_cache = loop.eight_bit
    use_lookup = use_cache and lookup.shape[0] > 0
    slots = CACHE_SLOTS if use_cache and not use_lookup else 1
    cache_key = np.full(slots, -1, dtype=np.int32)
    cache_label = np.empty(slots, dtype=np.int32)
    cache_d2 = np.empty(slots, dtype=np.float64)
    cache_lab = np.empty(slots, dtype=np.float64)
    alpha, bands, nodata = loop.alpha, loop.bands, loop.nodata
    write_labels = labels_out.shape[0] > 0
    feature = np.empty(3, dtype=np.float64)
    for i in range(pixels.shape[0]):
        # pixels.is_valid, written out: called, even inlined, the loop ran 2-4x slower (measured)
        valid = not (alpha >= 0 and not pixels[i, alpha] > 0)
        if valid and (loop.nodata_is_nan or nodata.shape[0] > 0):
            all_nodata = True
            for f in range(3):
                value = pixels[i, bands[f]]
                if loop.nodata_is_nan:
                    if value == value:
                        all_nodata = False
                elif value != nodata[0]:
                    all_nodata = False
            valid = not all_nodata
        if valid and loop.check_nan:
            for f in range(3):
                value = pixels[i, bands[f]]
                if value != value:
                    valid = False
        best, best_d2, shown = -1, 0.0, 0.0  # masked, unless found below
        if valid:
            key = 0
            if use_cache:
                key = (np.int32(pixels[i, bands[0]]) << 16) | (np.int32(pixels[i, bands[1]]) << 8)
                key |= np.int32(pixels[i, bands[2]])
            slot = ((key * 2654435761) >> 13) & (CACHE_SLOTS - 1) if use_cache and not use_lookup else 0
            if use_lookup:
                entry = lookup[key]
                best, best_d2, shown = entry.label, entry.squared, np.float64(entry.lab)
            elif use_cache and cache_key[slot] == key:
                best, best_d2, shown = cache_label[slot], cache_d2[slot], cache_lab[slot]
            else:
                for f in range(3):
                    v = np.float32((np.float64(pixels[i, bands[f]]) - loop.low[f]) * loop.scale[f])
                    feature[f] = np.float64(min(max(v, np.float32(0.0)), np.float32(255.0)))
                best, best_d2, shown = _colour_result(feature[0], feature[1], feature[2], palette)
                if use_cache:
                    cache_key[slot] = key
                    cache_label[slot] = best
                    cache_d2[slot] = best_d2
                    cache_lab[slot] = shown
        if best < 0:  # masked, or an excluded colour
            masked += 1
            if write_labels:
                labels_out[i] = 0
            continue
        counts[best] += 1
        squared[best] += best_d2
        lab_error += shown
        if write_labels:
            labels_out[i] = best + 1
    return counts, squared, masked, lab_error


def _centers_rgb(spec: PixelSpec, centers, centers_rgb) -> np.ndarray:
    """The centres as sRGB floats: ``centers_rgb`` when given, else the centres (converted from Lab)."""
    if centers_rgb is not None:
        return np.ascontiguousarray(centers_rgb, dtype=np.float64)
    return lab_to_srgb(centers) if spec.space == "lab" else np.asarray(centers, dtype=np.float64)


_NO_LABELS = np.empty(0, dtype=np.uint8)


def label_dtype(k: int) -> str:
    """The dtype of label rasters for ``k`` colours (values up to k, 0 for masked)."""
    return "uint8" if k < 255 else "uint16"


@functools.lru_cache(maxsize=4)
def _palette(centers: bytes, centers_rgb: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A palette as the counting loop takes it, prepared once for every block a worker counts with it."""
    centers64 = np.frombuffer(centers, np.float32).reshape(-1, N_FEATURES).astype(np.float64)
    return centers64, palette_lab(np.frombuffer(centers_rgb, np.float64).reshape(-1, 3))


def loop_palette(spec: PixelSpec, centers: np.ndarray, centers_rgb: np.ndarray | None = None) -> Palette:
    """The :class:`Palette` the compiled loops take (``centers``, ``centers_rgb`` as :func:`block_stats`)."""
    centers = np.asarray(centers, dtype=np.float32)
    centers_rgb = _centers_rgb(spec, centers, centers_rgb)
    centers, colors_lab = _palette(centers.tobytes(), centers_rgb.tobytes())
    return Palette(spec.space == "lab", centers, colors_lab, *exclusion(spec))


def block_stats(
    block: np.ndarray,
    spec: PixelSpec,
    centers: np.ndarray,
    centers_rgb: np.ndarray | None = None,
    *,
    labels_out: np.ndarray | None = None,
    lookup: bool = False,
    first: int = 0,
    width: int | None = None,
) -> np.ndarray:
    """``[counts (k), squared errors (k), masked, CIELAB squared error, error pixels]`` of a block (float64).

    ``centers`` are in the spec's space; ``centers_rgb`` (default: the
    centres, as sRGB) are the same centres as sRGB floats 0–255: rounded to
    8 bits, they are the colours shown, to which the CIELAB error is measured. With
    ``labels_out`` (a ``(rows, cols)`` integer array), also writes each
    pixel's colour index + 1 into it, and 0 for masked pixels. With
    ``lookup``, 8-bit colours are looked up in the tables of all colours
    (:func:`colour_lookup`): faster for many pixels, the same labels and
    counts; the errors are then measured on the pixels :func:`sampled` picks
    and scaled up, unless fewer than :data:`MEASURED_AT_LEAST` are valid.
    The error pixels are the valid pixels the errors were measured on (all
    of them: exact). ``first`` is the image's index of the block's first
    pixel (row-major), ``width`` the image's columns (default: the block's).

    Examples
    --------
    >>> from palette_dask.kernels.pixels import PixelSpec
    >>> spec = PixelSpec(bands=(0, 1, 2), alpha=3, low=(0, 0, 0), high=(255, 255, 255))
    >>> block = np.array([[[0, 0, 0, 255], [250, 250, 250, 255], [9, 9, 9, 0]]], dtype=np.uint8)
    >>> block_stats(block, spec, np.array([[0, 0, 0], [255, 255, 255.0]])).round(2).tolist()
    [1.0, 1.0, 0.0, 75.0, 1.0, 2.99, 2.0]
    """
    pixels = block.reshape(-1, block.shape[-1])
    if pixels.dtype == np.bool_:
        pixels = pixels.view(np.uint8)
    loop = loop_spec(spec, pixels.dtype)
    flat_labels = labels_out.reshape(-1) if labels_out is not None else _NO_LABELS
    palette = loop_palette(spec, centers, centers_rgb)
    centers = palette.centers
    # whether the errors are estimated follows from the block alone, never from a table being ready:
    # every thread waits for the tables (computing meanwhile, numba crashed: tests/test_count.py)
    estimable = spec.nodata is None and len(pixels) >= MEASURED_AT_LEAST << SAMPLE_SHIFT
    tables = colour_lookup(palette) if lookup and loop.eight_bit else None
    table, labels = (_NO_LOOKUP, None) if tables is None else tables
    k, cols = len(centers), block.shape[1] if block.ndim == 3 else len(pixels)
    if labels is not None and spec.nodata is None and not estimable:  # exact: every pixel's record
        counts, squared, masked, lab_error = _count_by_lookup(pixels, loop, k, table, flat_labels)
        return np.concatenate([counts, squared, [masked, lab_error, counts.sum()]]).astype(np.float64)
    if labels is not None and estimable:
        measured = _measure_sampled(pixels, loop, k, table, cols, first, width or cols, _GAPS, _GAP_STEPS)
        if measured[2].sum() >= MEASURED_AT_LEAST:  # labels and counts from the labels, errors estimated
            counts, masked = _count_by_label(pixels, loop, k, labels, flat_labels)
            squared, lab_error = _estimated(counts, *measured)
            stats = [counts, squared, [masked, lab_error, measured[2].sum()]]
            return np.concatenate(stats).astype(np.float64)
    counts, squared, masked, lab_error = _count_pixels(pixels, loop, palette, table, flat_labels)
    return np.concatenate([counts, squared, [masked, lab_error, counts.sum()]]).astype(np.float64)


def _stats_task(block, spec, centers, centers_rgb, labels=None, lookup=False, block_info=None):
    (r0, r1), (c0, c1), _ = block_info[0]["array-location"]
    width = block_info[0]["shape"][1]
    where = {"lookup": lookup, "first": r0 * width + c0, "width": width}  # the image's pixels sampled
    if labels is None:
        stats = block_stats(block, spec, centers, centers_rgb, **where)
    else:  # this task's chunk of the label raster, given whole to the writer: no other task writes it
        chunk = np.zeros((r1 - r0, c1 - c0), dtype=label_dtype(len(centers)))
        stats = block_stats(block, spec, centers, centers_rgb, labels_out=chunk, **where)
        labels[r0:r1, c0:c1] = chunk
    return stats[np.newaxis, np.newaxis, :]


def image_stats(
    image: da.Array,
    spec: PixelSpec,
    centers: np.ndarray,
    labels=None,
    centers_rgb: np.ndarray | None = None,
    lookup: bool = False,
) -> da.Array:
    """Lazy ``(2k + 3,)`` vector of :func:`block_stats` summed over an image's chunks.

    ``centers`` are in the spec's space, ``centers_rgb`` as :func:`block_stats`.
    With ``labels`` (what takes ``labels[rows, cols] = chunk`` in a task, such
    as the label raster :func:`~palette_dask.outputs.labels.create_labels`
    makes, chunked like ``image``), every chunk's task also gives its labels
    (of :func:`label_dtype`) to it, in the same pass. ``lookup`` as :func:`block_stats`.
    """
    centers = np.asarray(centers, dtype=np.float32)
    centers_rgb = _centers_rgb(spec, centers, centers_rgb)
    width = 2 * len(centers) + 3
    per_block = image.map_blocks(
        _stats_task,
        spec,
        centers,
        centers_rgb,
        labels,
        lookup,
        chunks=((1,) * image.numblocks[0], (1,) * image.numblocks[1], (width,)),
        dtype=np.float64,
        name="count-" + da.core.tokenize(image.name, spec, centers, centers_rgb, labels),
    )
    return per_block.sum(axis=(0, 1), split_every=16)


def unpack_stats(stats: np.ndarray) -> ImageCounts:
    """Split an :func:`image_stats` vector into an :class:`ImageCounts`."""
    k = (len(stats) - 3) // 2
    counts, measured = np.rint(stats[:k]).astype(np.int64), int(round(stats[2 * k + 2]))
    return ImageCounts(
        counts=counts,
        squared_error=np.asarray(stats[k : 2 * k], dtype=np.float64),
        masked=int(round(stats[2 * k])),
        lab_squared_error=float(stats[2 * k + 1]),
        error_pixels=None if measured == counts.sum() else measured,
    )


@dataclass
class BatchCounts:
    """The per-image results of one batch: one row per image, as the store's per-image arrays hold them.

    ``status`` (:class:`~palette_dask.errors.Status`) is DONE or FAILED (FAILED_TRANSIENT: on a
    fault that may pass) for the images the batch decoded, and PENDING for the others (images read
    tile by tile, arrays), whose rows the driver fills in from their own tasks.
    """

    start: int
    counts: np.ndarray
    masked: np.ndarray
    squared_error: np.ndarray
    lab_squared_error: np.ndarray
    status: np.ndarray
    errors: list
    palettes: np.ndarray | None = None  # (n, K, 3) uint8: each image's own colours (per_image=K)
    palette_shares: np.ndarray | None = None  # (n, K)
    pixel_size: np.ndarray | None = None  # (n, 2) float64: a pixel's height and width in metres, 0 unknown
    shape: np.ndarray | None = None  # (n, 2) int64: rows and columns as read, 0 unless done
    error_pixels: np.ndarray | None = None  # (n,) int64: the valid pixels the errors were measured on
    datetime: list | None = None  # (n,) str: when each image was acquired, as its input says ("" unknown)
    crs: list | None = None  # (n,) str: its CRS, EPSG:<code> ("" unknown)

    @classmethod
    def empty(cls, start: int, n: int, k: int, per_image: int = 0) -> BatchCounts:
        """Rows for ``n`` pending images (and their own palettes of ``per_image`` colours)."""
        return cls(
            start,
            np.zeros((n, k), np.int64),
            np.zeros(n, np.int64),
            np.zeros(n, np.float64),
            np.zeros(n, np.float64),
            np.zeros(n, np.uint8),
            [""] * n,
            np.zeros((n, per_image, 3), np.uint8) if per_image else None,
            np.zeros((n, per_image), np.float64) if per_image else None,
            np.zeros((n, 2), np.float64),
            np.zeros((n, 2), np.int64),
            np.zeros(n, np.int64),
            [""] * n,
            [""] * n,
        )

    def done(self, row: int, result: ImageCounts, own=None, pixel_size=None, shape=None, info=None) -> None:
        """Record one image's counts; its own palette ``(colours, shares)``, pixel size in metres, shape.

        ``info`` (its :class:`~palette_dask.inputs.formats.ImageInfo`) gives its datetime and CRS.
        """
        self.counts[row] = result.counts
        if info is not None and self.datetime is not None:
            self.datetime[row], self.crs[row] = info.datetime, info.crs
        if pixel_size is not None:
            self.pixel_size[row] = pixel_size
        if shape is not None:
            self.shape[row] = shape[:2]
        self.masked[row] = result.masked
        self.squared_error[row] = float(result.squared_error.sum())
        self.lab_squared_error[row] = result.lab_squared_error
        if self.error_pixels is not None:
            self.error_pixels[row] = result.measured
        if own is not None and self.palettes is not None:
            self.palettes[row], self.palette_shares[row] = own
        self.status[row] = Status.DONE

    def fail(self, row: int, error: str, transient: bool = False) -> None:
        """Record why one image failed, and whether on a fault that may pass (``--resume`` reads it again)."""
        self.status[row] = Status.FAILED_TRANSIENT if transient else Status.FAILED
        self.errors[row] = error


def batch_stats(
    batch: Batch,
    config: RunConfig,
    display_range,
    centers: np.ndarray,
    centers_rgb: np.ndarray,
    write_labels: Callable | None = None,
    lookup: bool = False,
) -> BatchCounts:
    """Count every image a batch decodes (see :func:`block_stats`); one image failing fails alone.

    With ``write_labels`` (``write_labels(index, name, labels, centers_rgb,
    pixel_size, counts)``: :func:`~palette_dask.outputs.labels.write_label_image`
    bound to the store), each image's label raster is given to it by this
    task, the only one that writes it.
    A palette with no colours (``k=0``: no image had a valid pixel) fails
    every readable image as having no valid pixels. ``lookup`` as :func:`block_stats`.
    With ``config.per_image`` (K), each image's own K colours and their
    shares come from the pixels it counts (:func:`~palette_dask.kernels.per_image.image_palette`).
    """
    from .per_image import image_palette

    centers = np.asarray(centers, dtype=np.float32)
    per_image, seed = config.per_image, config.seed
    result, known = (
        BatchCounts.empty(batch.start, len(batch.infos), len(centers), per_image),
        SpecCache(config, display_range),
    )
    for index, info, pixels in batch.images():
        row = index - batch.start
        if info is None:  # pixels: why not (a Failure)
            result.fail(row, str(pixels), pixels.transient)
            continue
        try:
            spec = known.spec(info)
            if len(centers) == 0:
                raise no_valid_pixels(info.source)
            wanted = write_labels or per_image  # the labels say which pixels count, exclusions included
            labels = np.zeros(info.shape[:2], label_dtype(len(centers))) if wanted else None
            counted = unpack_stats(
                block_stats(pixels, spec, centers, centers_rgb, labels_out=labels, lookup=lookup)
            )
            if counted.valid == 0:
                raise no_valid_pixels(info.source)
            if write_labels:
                write_labels(index, info.name, labels, centers_rgb, info.pixel_size, counted.counts)
            if per_image:
                result.palettes[row], result.palette_shares[row] = image_palette(
                    pixels, spec, labels, per_image, seed=seed, index=index
                )
            result.done(row, counted, pixel_size=info.pixel_size, shape=info.shape, info=info)
        except Exception as exc:  # this image alone fails
            result.fail(row, image_error(info.source, exc), is_transient(exc))
    return result
