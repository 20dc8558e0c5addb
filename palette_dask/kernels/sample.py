"""Sample: a seeded, uniform random sample of the valid pixels of all images.

Each pixel gets a pseudo-random key from a counter-based hash of
``(seed, image index, row, column)``: it depends on nothing else, so the
sample is the same whatever the chunking, the scheduler or the number of
workers. The sample is the ``size`` valid pixels with the smallest keys (a
bottom-k sample: uniform, without replacement), in key order, which is a
random order; dask-ml's k-means|| always starts from row 0, which is then a
random pixel rather than the image's corner.

A batch of small images finds its own ``size`` smallest keys
(:func:`sample_batch`, an exact bottom-k, which needs no total of pixels
first); a chunk of a mosaic keeps the pixels whose key is below a threshold
a little above ``size / total pixels`` (:func:`image_candidates`). Either
way the candidates that travel are few, only their colours are made
features, and the run's sample is the smallest keys of them all.

A large collection of small images (``sample_images="auto"``) is sampled
from a seeded subset of its images, so that most are decoded only once, by
the counting pass (:func:`sample_chosen`): image ``i`` of ``N_i`` pixels is
chosen with probability ``p_i`` (:func:`image_share`), larger for larger
images, and the pixels of a chosen image are candidates below ``fraction / p_i``, their keys times
``p_i``. Every pixel is then a candidate with probability ``fraction``, its
key uniform below it, as when every image is read: the sample is as
uniform, drawn from fewer images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dask
import dask.array as da
import numba
import numpy as np

from ..constants import DEFAULT_SAMPLE_SIZE, IMAGE_SAMPLE_PIXELS
from ..errors import Failure, ImageReadError, image_error
from ..inputs.formats import ImageInfo
from ..inputs.read import Batch, cell_grid, decode_cells
from ..inputs.retry import is_transient
from ..options import RunConfig
from .colour import excluded, srgb_to_lab
from .pixels import (
    N_FEATURES,
    PixelSpec,
    SpecCache,
    block_range,
    combine_ranges,
    exclusion,
    is_valid,
    loop_spec,
    to_display,
)

__all__ = [
    "DEFAULT_SAMPLE_SIZE",
    "pixel_keys",
    "sampling_fraction",
    "next_fraction",
    "image_candidates",
    "cell_share",
    "cell_count",
    "sampled_cells",
    "cell_candidates",
    "BatchSummary",
    "sample_batch",
    "image_key",
    "image_share",
    "image_subset",
    "sample_chosen",
    "merge_candidates",
    "as_features",
    "draw_sample",
]

#: Candidates kept per chunk, relative to the expected need; covers masked pixels.
OVERSAMPLING = 1.5
#: A mosaic sampled from a share of its cells (``sample_chunks`` below 1, an explicit choice: see
#: :func:`sampled_cells`) reads at least this many of them.
MIN_CELLS = 64

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_CELL_STREAM = np.uint64(0x5CE11)  # cells' keys come from a stream of their own
_IMAGE_STREAM = np.uint64(0x1A6E5)  # and images' choices from another
_GOLDEN = (5**0.5 - 1) / 2  # 1 / φ: the most evenly spread rotation


@numba.njit(nogil=True, cache=True, inline="always")
def _mix_one(x):
    """splitmix64's finaliser of one uint64 (wrapping arithmetic): the package's one hash."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


#: :func:`_mix_one` over arrays of uint64 (a ufunc compiled from the same function).
_mix = numba.vectorize(["uint64(uint64)"], nopython=True, cache=True)(_mix_one.py_func)


def pixel_keys(seed: int, image_index: int, rows: slice, cols: slice, width: int) -> np.ndarray:
    """Uniform keys in [0, 1) of the pixels of one region; a pure function of its arguments.

    Examples
    --------
    >>> a = pixel_keys(0, 0, slice(0, 2), slice(0, 4), width=4)
    >>> b = pixel_keys(0, 0, slice(1, 2), slice(2, 4), width=4)
    >>> bool((a[1, 2:] == b).all()), a.shape
    (True, (2, 4))
    """
    salt = _salt(seed, image_index)
    row = np.arange(rows.start, rows.stop, dtype=np.uint64)[:, None] * np.uint64(width)
    index = row + np.arange(cols.start, cols.stop, dtype=np.uint64)[None, :]
    # splitmix64: the i-th output of the stream is mix(salt + (i + 1) * gamma)
    return (_mix(salt + (index + np.uint64(1)) * _GAMMA) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _salt(seed: int, image_index: int) -> np.uint64:
    stream = np.array([(seed % 2**32) << 32 | (image_index % 2**32)], dtype=np.uint64)
    return _mix(stream * _GAMMA + _GAMMA)[0]


@numba.njit(nogil=True, cache=True, inline="always")
def _key_bits(salt, index):
    """The top 53 bits of splitmix64's output for pixel ``index`` of a stream, as :func:`pixel_keys`."""
    return _mix_one(salt + (index + np.uint64(1)) * _GAMMA) >> np.uint64(11)


@numba.njit(nogil=True, cache=True)
def _candidates(pixels, cols, r0, c0, width, salt, fraction, loop):
    """``[key, colour bands]`` of a block's valid pixels whose :func:`pixel_keys` key is below ``fraction``.

    ``pixels`` is the block as ``(rows * cols, bands)``, its first pixel at row
    ``r0``, column ``c0`` of an image ``width`` wide; ``loop`` is its
    :class:`~palette_dask.kernels.pixels.LoopSpec`. The same keys as :func:`pixel_keys`,
    computed a pixel at a time with no temporary arrays: a sampling pass hashes
    every pixel it reads and keeps about one in ten thousand. Two passes
    (count, then fill) keep the loops simple enough for the compiler to vectorise.
    """
    # key = m * 2**-53 with m a whole number below 2**53, so key < fraction
    # exactly when m < ceil(fraction * 2**53): compared as integers
    threshold = np.uint64(np.ceil(fraction * 2.0**53))
    rows = pixels.shape[0] // max(cols, 1)
    found = 0
    for r in range(rows):
        base = np.uint64(r0 + r) * np.uint64(width) + np.uint64(c0)
        for c in range(cols):
            if _key_bits(salt, base + np.uint64(c)) < threshold:
                found += 1
    out = np.empty((found, 4), dtype=np.float64)
    n = 0
    for r in range(rows):
        base = np.uint64(r0 + r) * np.uint64(width) + np.uint64(c0)
        for c in range(cols):
            m = _key_bits(salt, base + np.uint64(c))
            i = r * cols + c
            if m < threshold and is_valid(pixels, i, loop):
                out[n, 0] = np.float64(m) * 2.0**-53
                for f in range(3):
                    out[n, 1 + f] = np.float64(pixels[i, loop.bands[f]])
                n += 1
    return out[:n]


def _block_candidates(
    block: np.ndarray,
    spec: PixelSpec,
    width: int,
    image_index: int,
    seed: int,
    fraction: float,
    location,
    *,
    raw: bool = False,
) -> np.ndarray:
    """``(m, 1 + 3)`` rows of ``[key, colour]`` for this block's valid pixels with key < fraction.

    The colour is the display features when the spec has its range, else (or
    with ``raw``) the raw band values.
    """
    (r0, _), (c0, c1) = location
    pixels = block.reshape(-1, block.shape[-1])
    if pixels.dtype == np.bool_:
        pixels = pixels.view(np.uint8)
    salt = _salt(seed, image_index)
    candidates = _candidates(pixels, c1 - c0, r0, c0, width, salt, fraction, loop_spec(spec, pixels.dtype))
    return candidates if spec.high is None or raw else as_features(candidates, spec)


def merge_candidates(candidates: Sequence[np.ndarray], size: int) -> np.ndarray:
    """The ``size`` rows with the smallest keys, sorted by key.

    Examples
    --------
    >>> a = np.array([[0.5, 1, 1, 1], [0.1, 2, 2, 2]])
    >>> merge_candidates([a, np.array([[0.3, 3, 3, 3]])], 2)[:, 0].tolist()
    [0.1, 0.3]
    """
    rows = np.concatenate([np.empty((0, 1 + N_FEATURES))] + list(candidates))
    if len(rows) > size:
        rows = rows[np.argpartition(rows[:, 0], size - 1)[:size]]
    return rows[np.argsort(rows[:, 0], kind="stable")]


def sampling_fraction(total_pixels: int, size: int) -> float:
    """The first key threshold: the share of pixels each chunk keeps as candidates."""
    return min(1.0, OVERSAMPLING * size / max(total_pixels, 1))


def next_fraction(fraction: float, found: int, size: int) -> float | None:
    """A larger threshold when a draw found fewer than ``size`` valid pixels, else None.

    Heavily masked images (a no-data border, transparency) leave fewer valid
    candidates than planned; drawing again with a threshold scaled to what was
    found keeps the sample exactly the ``size`` smallest keys.

    Examples
    --------
    >>> next_fraction(0.25, 500, 1000), next_fraction(0.1, 1000, 1000), next_fraction(1.0, 5, 1000)
    (0.75, None, None)
    """
    if found >= size or fraction >= 1.0:
        return None
    return min(1.0, fraction * OVERSAMPLING * size / max(found, 1))


def image_candidates(
    image: da.Array, spec: PixelSpec, image_index: int, *, seed: int, fraction: float, size: int
) -> dask.delayed:
    """A delayed ``(m, 4)`` array of ``[key, r, g, b]``: one image's best sample candidates."""
    blocks = image.to_delayed().reshape(image.numblocks[:2])
    row_edges = np.cumsum((0,) + image.chunks[0])
    col_edges = np.cumsum((0,) + image.chunks[1])
    parts = [
        dask.delayed(_block_candidates, pure=True)(
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
    return dask.delayed(merge_candidates, pure=True)(parts, size)


def cell_share(cells: int, wanted: float) -> float:
    """The share of a mosaic's cells (its stored chunks) read to sample it (see :func:`cell_candidates`).

    ``wanted`` is the run's ``sample_chunks``; at least :data:`MIN_CELLS` cells are read.

    Examples
    --------
    >>> cell_share(676, 0.25), cell_share(128, 0.25), cell_share(16, 0.25), cell_share(676, 1.0)
    (0.25, 0.5, 1.0, 1.0)
    """
    return min(1.0, max(wanted, MIN_CELLS / max(cells, 1)))


def _grid_size(shape, grid: tuple[int, int]) -> tuple[int, int]:
    """Rows and columns of cells ``grid`` big over an image of this shape (edge cells are smaller)."""
    return -(-shape[0] // grid[0]), -(-shape[1] // grid[1])


def cell_count(info: ImageInfo) -> int:
    """How many cells (stored chunks, see :func:`~palette_dask.inputs.read.cell_grid`) a mosaic has."""
    n_rows, n_cols = _grid_size(info.shape, cell_grid(info))
    return n_rows * n_cols


def sampled_cells(shape, grid: tuple[int, int], image_index: int, *, seed: int, share: float) -> list:
    """The cells ``((r0, r1), (c0, c1))`` of an image read for its sample: those whose key is below ``share``.

    A cell's key is its place in van der Corput's sequence over the cells in
    Morton order, rotated by a hash of ``(seed, image index)``: every cell is
    drawn with probability ``share``, and the cells drawn are spread evenly
    over the image (a stratified sample, not clumps). They depend on the
    file's own chunk grid and the share, never on the run's chunks, batches or
    workers; a larger share draws the same cells and more.

    Unbiased on average over seeds, but one seed's cells can alias with a
    periodic layout (tiles the size of the chunks, a scanner's stripes) and
    miss whole kinds of content: a palette 27% worse was measured. So a
    share of cells is only read when the user asks (``sample_chunks``);
    by default every cell is.

    Examples
    --------
    >>> few, more, every = (
    ...     sampled_cells((4096, 4000, 3), (1024, 1024), 0, seed=0, share=share) for share in (0.25, 0.5, 1)
    ... )
    >>> len(every), every[3], set(few) <= set(more)
    (16, ((0, 1024), (3072, 4000)), True)
    """
    n_rows, n_cols = _grid_size(shape, grid)
    index = np.arange(n_rows * n_cols, dtype=np.int64)
    rows, cols = index // n_cols, index % n_cols
    # van der Corput's sequence over the cells' Morton order, rotated by the seed's
    # key: the cells below a share are spread evenly over the image
    spread = np.zeros(len(index))
    for bit in range(max(n_rows, n_cols).bit_length()):
        spread += ((rows >> bit) & 1) * 2.0 ** -(2 * bit + 1) + ((cols >> bit) & 1) * 2.0 ** -(2 * bit + 2)
    shift = float(_mix(np.array([_salt(seed, image_index) ^ _CELL_STREAM]))[0] >> np.uint64(11)) * 2.0**-53
    keys = (spread + shift) % 1.0
    return [
        (
            (int(i // n_cols) * grid[0], min(shape[0], (int(i // n_cols) + 1) * grid[0])),
            (int(i % n_cols) * grid[1], min(shape[1], (int(i % n_cols) + 1) * grid[1])),
        )
        for i in np.flatnonzero(keys < share)
    ]


def _cells_task(info: ImageInfo, spec: PixelSpec, image_index, seed, fraction, share, cells, size):
    """The ``size`` best candidates of some cells of an image, each decoded alone, keys times ``share``."""
    parts = []
    for cell, block in zip(cells, decode_cells(info, cells)):
        part = _block_candidates(
            block, spec, info.shape[1], image_index, seed, min(1.0, fraction / share), cell
        )
        part[:, 0] *= share
        parts.append(part)
    return merge_candidates(parts, size)


def cell_candidates(
    info: ImageInfo,
    spec: PixelSpec,
    image_index: int,
    *,
    seed: int,
    fraction: float,
    share: float,
    size: int,
    cell_bytes: int,
) -> dask.delayed:
    """A delayed ``(m, 4)`` array of ``[key, colour]``: a mosaic's candidates from a share of its cells.

    Two-stage sampling: the cells (the file's own chunks or tiles, see
    :func:`~palette_dask.inputs.read.cell_grid`) whose key is below ``share`` are
    read, each alone, and nothing else of the image; their pixels' keys are
    multiplied by ``share``. Every pixel of the run is then as likely to be
    in the sample (the ``size`` smallest keys) as any other while the
    sample's largest key stays below ``share``: the pipeline checks it, and
    draws more cells otherwise. Tasks read up to ``cell_bytes`` of cells each.
    """
    grid = cell_grid(info)
    cells = sampled_cells(info.shape, grid, image_index, seed=seed, share=share)
    itemsize = np.dtype(info.dtype).itemsize
    per_task = max(1, cell_bytes // (grid[0] * grid[1] * info.shape[2] * itemsize))
    parts = [
        dask.delayed(_cells_task, pure=True)(
            info, spec, image_index, seed, fraction, share, cells[i : i + per_task], size
        )
        for i in range(0, len(cells), per_task)
    ]
    return dask.delayed(merge_candidates, pure=True)(parts, size)


@dataclass(frozen=True)
class BatchSummary:
    """What the driver learns of a batch from its first pass.

    Attributes
    ----------
    pixels, nbytes : int
        Pixels and decoded bytes of the images the batch decodes itself.
    failures : list of (int, str, bool)
        Images that cannot be read, why, and whether on a fault that may pass (``--resume`` reads them again).
    tiled : list of (int, ImageInfo)
        Images too big for the batch: each is read tile by tile by its own tasks.
    candidates : ndarray, shape (m, 4)
        ``[key, colour]`` of the batch's ``size`` valid pixels with the
        smallest keys (colour as features, or raw band values while the
        display range is still to be measured).
    band_range : ndarray of shape (2, 3), or None
        With ``ranges``, the least and greatest valid value of each colour band.
    nodata : tuple of float
        The no-data values of the files' own headers (GeoTIFF ``GDAL_NODATA``) applied to its images.
    dtypes : tuple of str
        The data types of its images.
    """

    pixels: int
    nbytes: int
    failures: list
    tiled: list
    candidates: np.ndarray
    band_range: np.ndarray | None = None
    nodata: tuple = ()
    dtypes: tuple = ()


def sample_batch(
    batch: Batch, config: RunConfig, *, seed: int, size: int, ranges: bool = False
) -> BatchSummary:
    """A batch's :class:`BatchSummary`: its totals, failures, big images, and its own exact sample.

    The candidates are the batch's ``size`` valid pixels with the smallest
    :func:`pixel_keys`, found with a threshold that starts at what the batch
    alone would need and grows while masks leave too few: the run's sample,
    the ``size`` smallest keys of all the batches' candidates, is then the
    same whatever the batches, and needs no total of pixels before it starts.
    With ``size`` 0 and no ``ranges``, nothing is decoded: the headers' totals,
    failures and big images (a decoder's failure is then the counting pass's to find).
    """
    failures = [
        (batch.start + i, str(f), f.transient) for i, f in enumerate(batch.infos) if isinstance(f, Failure)
    ]
    tiled = [
        (batch.start + i, info)
        for i, info in enumerate(batch.infos)
        if isinstance(info, ImageInfo) and not batch.in_batch(i)
    ]
    specs, known = {}, SpecCache(config)
    for position, info in enumerate(batch.infos):
        if batch.in_batch(position):
            try:
                specs[batch.start + position] = known.spec(info)
            except Exception as exc:  # a bad band choice: this image alone fails
                failures.append((batch.start + position, image_error(info.source, exc), is_transient(exc)))
    total = sum(batch.infos[index - batch.start].pixels for index in specs)
    fraction, found, band_range = sampling_fraction(total, size), np.empty((0, 1 + N_FEATURES)), None
    if not size and not ranges:  # headers only: the counting pass is the one decode
        fraction = None
    while fraction is not None:
        parts, extremes = (
            {},
            [],
        )  # raw candidates by spec, made features together: one call, not one per image
        for index, info, pixels in batch.images():
            if index not in specs:
                continue
            if info is None:  # a decoder failed on it
                failures.append((index, str(pixels), pixels.transient))
                del specs[index]
                continue
            whole = ((0, info.shape[0]), (0, info.shape[1]))
            if size:  # size 0: only the totals, failures and big images are wanted
                raw = _block_candidates(
                    pixels, specs[index], info.shape[1], index, seed, fraction, whole, raw=True
                )
                parts.setdefault(specs[index], []).append(raw)
            if ranges:
                extremes.append(block_range(pixels, specs[index]))
        found = merge_candidates(
            [_features_once_ranged(np.concatenate(p), spec) for spec, p in parts.items()], size
        )
        band_range = combine_ranges(extremes) if extremes else band_range
        fraction = next_fraction(fraction, len(found), size) if size or ranges else None
    decoded = [batch.infos[index - batch.start] for index in specs]
    headers = [info for info in decoded + [info for _, info in tiled] if info.nodata is not None]
    return BatchSummary(
        pixels=sum(info.pixels for info in decoded),
        nbytes=sum(info.nbytes for info in decoded),
        failures=sorted(failures),
        tiled=tiled,
        candidates=found,
        band_range=band_range,
        nodata=tuple(sorted({float(info.nodata) for info in headers})) if config.nodata is None else (),
        dtypes=tuple(sorted({info.dtype for info in decoded + [info for _, info in tiled]})),
    )


def image_key(seed: int, image_index: int) -> float:
    """A key in [0, 1) of an image: uniform over seeds, and the images below a share spread evenly.

    The image's place in the golden-ratio sequence (Weyl's, ``index / φ``
    modulo 1), rotated by the seed's key from a stream of the pixel keys'
    hash of its own: each image's key is uniform, as a hash's, while
    those below a share are spread evenly along the collection, as
    :func:`sampled_cells` spreads cells over a mosaic. A collection in a
    meaningful order (sorted by content, by date) is then sampled in
    proportion along it: on tests/test_sample_images.py's collection, its
    palettes were at worst 0.77% worse than every image's over five seeds
    where independent draws (a hash of each image) gave 0.98% (1.26% and
    1.94% with 100 candidates per image chosen).

    Examples
    --------
    >>> image_key(0, 3) == image_key(0, 3) != image_key(1, 3)
    True
    >>> sum(image_key(5, i) < 0.1 for i in range(100))
    10
    """
    shift = float(_mix(np.array([_salt(seed, 0) ^ _IMAGE_STREAM]))[0] >> np.uint64(11)) * 2.0**-53
    return (shift + (image_index % 2**32) * _GOLDEN) % 1.0


def image_share(pixels: int, fraction: float, per_image: int | None = IMAGE_SAMPLE_PIXELS) -> float:
    """The probability that an image of ``pixels`` pixels is chosen for a sample drawn at ``fraction``.

    ``fraction`` times the image's pixels over ``per_image`` (each chosen image
    then gives ``per_image`` candidates, on average), at least ``fraction``,
    at most 1; 1 with ``per_image`` None (every image). It grows with
    ``fraction``, so a larger one chooses the same images and more.

    Examples
    --------
    >>> image_share(1000, 0.01, 100), image_share(50, 0.01, 100), image_share(10**6, 0.01, 100)
    (0.1, 0.01, 1.0)
    """
    if per_image is None:
        return 1.0
    return min(1.0, fraction * max(1.0, pixels / per_image))


def image_subset(images: int, size: int, per_image: int = IMAGE_SAMPLE_PIXELS) -> bool:
    """Whether a sample of ``size`` is drawn from a subset of ``images`` small images (:func:`sample_chosen`).

    ``OVERSAMPLING * size / per_image`` images are expected to be chosen, for
    images of at least ``per_image`` pixels, at the first threshold: a smaller
    image is chosen as often as one of ``per_image`` pixels, and a re-draw at
    a larger share chooses more (:func:`image_share`). Only where that is
    under half of them does a subset save decodes.

    Examples
    --------
    >>> image_subset(8000, 100_000), image_subset(4000, 100_000), image_subset(320, 4000)
    (True, False, True)
    """
    return 2 * OVERSAMPLING * size / per_image < images


def sample_chosen(
    batch: Batch,
    config: RunConfig,
    *,
    seed: int,
    size: int,
    fraction: float,
    per_image: int | None = IMAGE_SAMPLE_PIXELS,
    keep: float = 0.0,
) -> tuple[Batch, BatchSummary]:
    """The candidates of a batch's images chosen at ``fraction``, and the batch keeping those it decoded.

    Image ``i`` is chosen when :func:`image_key` is below its share ``p_i``
    (:func:`image_share`); its pixels whose key is below ``fraction / p_i`` are
    candidates, their keys times ``p_i``. Every pixel is then a candidate with
    probability ``fraction``, its key uniform below it: the ``size`` smallest
    keys of all candidates are a uniform sample, as with every image, as long
    as there are ``size`` of them (the driver draws again at a larger
    ``fraction`` otherwise, which chooses the same images and more). Only the
    chosen images are decoded (or read as kept); the batch returned keeps
    those decoded here, up to ``keep`` bytes in all, for the counting pass. The
    summary holds the candidates and the decoders' failures; the header pass
    (:func:`sample_batch` with ``size`` 0) gave the rest.
    """
    known, parts, failures = SpecCache(config), {}, []
    pixels = list(batch.pixels) if batch.pixels is not None else [None] * len(batch.infos)
    left = keep - sum(p.nbytes for p in pixels if p is not None)
    for position, info in enumerate(batch.infos):
        index = batch.start + position
        if not batch.in_batch(position):
            continue
        share = image_share(info.pixels, fraction, per_image)
        if image_key(seed, index) >= share:
            continue
        try:
            spec = known.spec(info)
        except Exception:  # a bad band choice: the header pass failed the image
            continue
        try:
            decoded = batch.decoded(position)
        except ImageReadError as exc:
            failures.append((index, image_error(info.source, exc), is_transient(exc)))
            continue
        if pixels[position] is None and decoded.nbytes <= left:
            pixels[position], left = decoded, left - decoded.nbytes
        whole = ((0, info.shape[0]), (0, info.shape[1]))
        below = min(1.0, fraction / share)
        raw = _block_candidates(decoded, spec, info.shape[1], index, seed, below, whole, raw=True)
        raw[:, 0] *= share
        parts.setdefault(spec, []).append(raw)
    found = merge_candidates(
        [_features_once_ranged(np.concatenate(p), spec) for spec, p in parts.items()], size
    )
    holds = any(p is not None for p in pixels)
    kept = Batch(batch.start, batch.infos, batch.chunk_bytes, pixels if holds else None)
    return kept, BatchSummary(pixels=0, nbytes=0, failures=sorted(failures), tiled=[], candidates=found)


def _features_once_ranged(candidates: np.ndarray, spec: PixelSpec) -> np.ndarray:
    """:func:`as_features` of candidates whose spec has its range; raw ones stay raw until it is measured."""
    return candidates if spec.high is None else as_features(candidates, spec)


def as_features(candidates: np.ndarray, spec: PixelSpec) -> np.ndarray:
    """Candidates of raw band values with their colours as features, less the excluded colours' pixels.

    The spec needs its display range. A pixel within ΔE00 ``spec.within`` of an
    excluded colour is left out as a masked one is: before the smallest keys
    are taken, so the sample is the same as with those pixels masked.
    """
    display = to_display(candidates[:, 1:], spec)
    if spec.exclude:
        kept = ~excluded(display, *exclusion(spec))
        candidates, display = candidates[kept], display[kept]
    out = np.empty_like(candidates)
    out[:, 0] = candidates[:, 0]
    out[:, 1:] = srgb_to_lab(display).astype(np.float32) if spec.space == "lab" else display  # as to_features
    return out


def draw_sample(
    images: Sequence[da.Array], specs: Sequence[PixelSpec], size: int = DEFAULT_SAMPLE_SIZE, *, seed: int = 0
) -> np.ndarray:
    """Draw the sample of valid pixels of several images, as ``(m, 3)`` float32 (m ≤ size).

    For notebooks and tests; the pipeline does the same with per-image error
    handling. Every spec needs its display range here.

    Examples
    --------
    >>> from palette_dask.kernels.pixels import pixel_spec
    >>> from palette_dask.inputs.formats import ImageInfo
    >>> image = da.from_array(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), chunks=(2, 2, 3))
    >>> spec = pixel_spec(ImageInfo("array", "array", (4, 4, 3), "uint8"))
    >>> draw_sample([image], [spec], size=5, seed=1).shape
    (5, 3)
    """
    fraction = sampling_fraction(sum(image.shape[0] * image.shape[1] for image in images), size)
    while fraction is not None:
        parts = [
            image_candidates(image, spec, index, seed=seed, fraction=fraction, size=size)
            for index, (image, spec) in enumerate(zip(images, specs))
        ]
        merged = dask.delayed(merge_candidates)(parts, size).compute()
        fraction = next_fraction(fraction, len(merged), size)
    return merged[:, 1:].astype(np.float32)
