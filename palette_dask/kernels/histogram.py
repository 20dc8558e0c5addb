"""Histogram: an 8-bit mosaic's exact colour histogram, gathered as it is sampled, counted from.

A mosaic of 8-bit colours that are their own features is summed up exactly
by how many valid pixels hold each of its colours: its sample is drawn in the
same tasks (:func:`image_summary`: each chunk read once gives its sample
candidates and its histogram), and once the palette is fitted its counts,
squared errors and CIELAB error follow from the histogram
(:func:`histogram_stats`), each distinct colour's label and distances from
the counting loop's own helper (:func:`~palette_dask.kernels.count._colour_result`):
no second read. The errors are exact, not estimates.

A histogram is ``(keys, counts, masked)``: the distinct 24-bit colours
``(r << 16) | (g << 8) | b`` (uint32) of the valid pixels, how many pixels
hold each (uint64), and the pixels left out by alpha 0 or no-data (excluded
colours are left out when counted, from the colour alone). One image's
histogram holds at most 2^24 colours: 192 MB; each worker thread building
one keeps a table of every colour's count (64 MB, uint32), reused.
"""

from __future__ import annotations

import threading

import dask
import dask.array as da
import numba
import numpy as np

from .count import _colour_result, loop_palette
from .pixels import PixelSpec, loop_spec
from .sample import _block_candidates, merge_candidates

__all__ = [
    "COLOURS",
    "HISTOGRAM_BYTES",
    "block_histogram",
    "merge_histograms",
    "image_summary",
    "histogram_stats",
]

#: Every 8-bit colour: the size of the table of counts.
COLOURS = 2**24
#: The most one image's histogram takes (uint32 keys and uint64 counts of every colour).
HISTOGRAM_BYTES = COLOURS * 12
#: Histograms merged per task (a tree of merges over an image's chunks).
MERGE_EVERY = 16
_tables = threading.local()  # each thread's table of counts, all zero between uses


def _table(total: int) -> np.ndarray:
    """The thread's table of every colour's count (uint32); a fresh uint64 one where counts may overflow."""
    if total >= 2**32:
        return np.zeros(COLOURS, np.uint64)
    table = getattr(_tables, "counts", None)
    if table is None:
        table = _tables.counts = np.zeros(COLOURS, np.uint32)
    return table


@numba.njit(nogil=True, cache=True)
def _tally_pixels(pixels, loop, table, touched):
    """Count each valid pixel's colour into ``table``; the colours met first go in ``touched``.

    Validity as :func:`~palette_dask.kernels.pixels.is_valid` says of 8-bit
    pixels (written out, as the counting loop has it): alpha 0, or every
    colour band equal to the no-data value, is left out.
    """
    n, masked = 0, 0
    alpha, band0, band1, band2 = loop.alpha, loop.bands[0], loop.bands[1], loop.bands[2]
    check_nodata = loop.nodata.shape[0] > 0
    for i in range(pixels.shape[0]):
        if alpha >= 0 and pixels[i, alpha] == 0:
            masked += 1
            continue
        red, green, blue = pixels[i, band0], pixels[i, band1], pixels[i, band2]
        if check_nodata and red == loop.nodata[0] and green == loop.nodata[0] and blue == loop.nodata[0]:
            masked += 1
            continue
        key = (np.uint32(red) << 16) | (np.uint32(green) << 8) | np.uint32(blue)
        if table[key] == 0:
            touched[n] = key
            n += 1
        table[key] += 1
    return n, masked


@numba.njit(nogil=True, cache=True)
def _tally_histogram(keys, counts, table, touched, n):
    """Add a histogram's counts into ``table``; returns the colours touched so far."""
    for j in range(keys.shape[0]):
        key = keys[j]
        if table[key] == 0:
            touched[n] = key
            n += 1
        table[key] += counts[j]
    return n


@numba.njit(nogil=True, cache=True)
def _collect(table, touched, n):
    """The touched colours, in the order first met, and their counts; ``table`` left all zero.

    Not sorted: a sort (or a scan of the table) cost more than the tally of a
    chunk of a photo (30 ns a pixel, measured); the order is the graph's,
    the same in every run.
    """
    keys = touched[:n].copy()
    counts = np.empty(n, np.uint64)
    for j in range(n):
        counts[j] = table[keys[j]]
        table[keys[j]] = 0
    return keys, counts


def block_histogram(block: np.ndarray, spec: PixelSpec) -> tuple[np.ndarray, np.ndarray, int]:
    """The histogram ``(keys, counts, masked)`` of a block of 8-bit colours (see the module's docstring).

    Examples
    --------
    >>> spec = PixelSpec(bands=(0, 1, 2), alpha=3, low=(0, 0, 0), high=(255, 255, 255))
    >>> block = np.array([[[0, 0, 1, 255], [9, 9, 9, 0], [0, 0, 1, 7], [1, 0, 0, 255]]], dtype=np.uint8)
    >>> keys, counts, masked = block_histogram(block, spec)
    >>> keys.tolist(), counts.tolist(), masked
    ([1, 65536], [2, 1], 1)
    """
    pixels = block.reshape(-1, block.shape[-1])
    loop = loop_spec(spec, pixels.dtype)
    if not loop.eight_bit:
        raise ValueError("a colour histogram is made of 8-bit colours that are their own features")
    table = _table(len(pixels))
    touched = np.empty(min(len(pixels), COLOURS), np.uint32)
    try:
        n, masked = _tally_pixels(pixels, loop, table, touched)
    except BaseException:
        table[:] = 0  # left as it was found
        raise
    keys, counts = _collect(table, touched, n)
    return keys, counts, int(masked)


def merge_histograms(parts) -> tuple[np.ndarray, np.ndarray, int]:
    """One histogram of several (their counts added, colour by colour).

    Examples
    --------
    >>> a = (np.array([1, 5], np.uint32), np.array([2, 1], np.uint64), 3)
    >>> b = (np.array([5, 9], np.uint32), np.array([4, 1], np.uint64), 0)
    >>> keys, counts, masked = merge_histograms([a, b])
    >>> keys.tolist(), counts.tolist(), masked
    ([1, 5, 9], [2, 5, 1], 3)
    """
    parts = list(parts)
    total = sum(int(counts.sum()) for _, counts, _ in parts)
    table = _table(total)
    touched = np.empty(min(sum(len(keys) for keys, _, _ in parts), COLOURS), np.uint32)
    n = 0
    try:
        for keys, counts, _ in parts:
            n = _tally_histogram(keys, counts.astype(table.dtype, copy=False), table, touched, n)
    except BaseException:
        table[:] = 0
        raise
    keys, counts = _collect(table, touched, n)
    return keys, counts, sum(masked for _, _, masked in parts)


def _block_summary(block, spec, width, image_index, seed, fraction, location):
    """A block's sample candidates and its histogram, from the one read of it."""
    candidates = _block_candidates(block, spec, width, image_index, seed, fraction, location)
    return candidates, block_histogram(block, spec)


def _merge_tree(parts: list):
    """The delayed merge of many delayed histograms, :data:`MERGE_EVERY` at a time."""
    while len(parts) > 1:
        groups = [parts[i : i + MERGE_EVERY] for i in range(0, len(parts), MERGE_EVERY)]
        parts = [dask.delayed(merge_histograms, pure=True)(group) for group in groups]
    return parts[0]


def image_summary(
    image: da.Array, spec: PixelSpec, image_index: int, *, seed: int, fraction: float, size: int
) -> tuple:
    """Delayed ``(candidates, histogram)`` of an image of 8-bit colours, each chunk read once for both.

    The candidates are :func:`~palette_dask.kernels.sample.image_candidates`'
    (the same pixels), the histogram the image's (merged on the workers).
    """
    blocks = image.to_delayed().reshape(image.numblocks[:2])
    row_edges = np.cumsum((0,) + image.chunks[0])
    col_edges = np.cumsum((0,) + image.chunks[1])
    both = [
        dask.delayed(_block_summary, pure=True, nout=2)(
            blocks[i, j],
            spec,
            image.shape[1],
            image_index,
            seed,
            fraction,
            ((row_edges[i], row_edges[i + 1]), (col_edges[j], col_edges[j + 1])),
        )
        for i in range(blocks.shape[0])
        for j in range(blocks.shape[1])
    ]
    candidates = dask.delayed(merge_candidates, pure=True)([part[0] for part in both], size)
    return candidates, _merge_tree([part[1] for part in both])


@numba.njit(nogil=True, cache=True)
def _count_colours(keys, counts, palette):
    """Counts, squared errors by label, the excluded pixels and the CIELAB error of a histogram's colours."""
    k = palette.centers.shape[0]
    by_label = np.zeros(k, np.int64)
    squared = np.zeros(k, np.float64)
    excluded, lab_error = 0, 0.0
    for j in range(keys.shape[0]):
        key = np.int64(keys[j])
        red = np.float64(np.float32(key >> 16))  # as the counting loop makes an 8-bit colour's features
        green = np.float64(np.float32((key >> 8) & 255))
        blue = np.float64(np.float32(key & 255))
        label, best_d2, shown = _colour_result(red, green, blue, palette)
        many = np.int64(counts[j])
        if label < 0:
            excluded += many
            continue
        by_label[label] += many
        squared[label] += many * best_d2
        lab_error += many * shown
    return by_label, squared, excluded, lab_error


def histogram_stats(
    histogram, spec: PixelSpec, centers: np.ndarray, centers_rgb: np.ndarray | None = None
) -> np.ndarray:
    """:func:`~palette_dask.kernels.count.image_stats`' vector of an image, from its histogram: exact.

    ``[counts (k), squared errors (k), masked, CIELAB squared error, error pixels]``
    (the error pixels every valid one), each distinct colour's results as the
    counting loop computes them, times its count.
    """
    keys, counts, masked = histogram
    palette = loop_palette(spec, centers, centers_rgb)
    by_label, squared, excluded, lab_error = _count_colours(keys, counts, palette)
    tail = [masked + excluded, lab_error, by_label.sum()]
    return np.concatenate([by_label, squared, tail]).astype(np.float64)
