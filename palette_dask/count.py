"""Count: one fused pass over all pixels that labels and counts them per chunk.

Each chunk's task reads its tile, and one compiled loop (numba) turns every
pixel into its features, checks its mask, finds its nearest centre and counts
it: the task returns only a small vector (the pixels per cluster, their
squared distances for the true inertia, and the masked pixels), and holds no
per-pixel temporary array. The label raster is never materialised, unless
label rasters are asked for, and then only one chunk at a time.

The loop computes exactly what :func:`~palette_dask.pixels.block_features`
and :func:`~palette_dask.fit.nearest_center` compute, in the same order and
precision, so its counts equal ``numpy.bincount`` of their labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numba
import numpy as np

from .pixels import N_FEATURES, PixelSpec

__all__ = ["ImageCounts", "block_stats", "image_stats", "unpack_stats"]


@dataclass(frozen=True)
class ImageCounts:
    """Counts of one image over the palette.

    Attributes
    ----------
    counts : ndarray of int64, shape (k,)
        Valid pixels nearest to each centre.
    squared_error : ndarray of float64, shape (k,)
        Sum of squared distances of those pixels to their centre.
    masked : int
        Pixels left out (alpha 0, nodata, NaN).
    """

    counts: np.ndarray
    squared_error: np.ndarray
    masked: int

    @property
    def valid(self) -> int:
        """Valid pixels (the sum of ``counts``)."""
        return int(self.counts.sum())


@numba.njit(nogil=True, cache=True)
def _count_pixels(pixels, bands, alpha, nodata, nodata_is_nan, check_nan, low, scale, centers, labels_out):
    """The fused per-pixel loop; ``pixels`` is ``(n, bands)``; returns counts, squared errors, masked."""
    k = centers.shape[0]
    counts = np.zeros(k, dtype=np.int64)
    squared = np.zeros(k, dtype=np.float64)
    masked = 0
    n_bands = pixels.shape[1]
    feature = np.empty(3, dtype=np.float64)
    for i in range(pixels.shape[0]):
        valid = True
        if alpha >= 0 and not pixels[i, alpha] > 0:
            valid = False
        if valid and (nodata_is_nan or nodata.shape[0] > 0):
            all_nodata = True
            for b in range(n_bands):
                if b != alpha:
                    value = pixels[i, b]
                    if nodata_is_nan:
                        if value == value:
                            all_nodata = False
                    elif value != nodata[0]:
                        all_nodata = False
            if all_nodata:
                valid = False
        if valid and check_nan:
            for f in range(3):
                value = pixels[i, bands[f]]
                if value != value:
                    valid = False
        if not valid:
            masked += 1
            if labels_out.shape[0] > 0:
                labels_out[i] = 0
            continue
        for f in range(3):
            v = np.float32((np.float64(pixels[i, bands[f]]) - low[f]) * scale[f])
            v = min(max(v, np.float32(0.0)), np.float32(255.0))
            feature[f] = np.float64(v)
        best = 0
        best_d2 = np.inf
        for j in range(k):
            d2 = 0.0
            for f in range(3):
                diff = feature[f] - centers[j, f]
                d2 += diff * diff
            if d2 < best_d2:
                best_d2 = d2
                best = j
        counts[best] += 1
        squared[best] += best_d2
        if labels_out.shape[0] > 0:
            labels_out[i] = best + 1
    return counts, squared, masked


def block_stats(
    block: np.ndarray, spec: PixelSpec, centers: np.ndarray, *, labels_out: np.ndarray | None = None
) -> np.ndarray:
    """``[counts (k), squared errors (k), masked]`` of one block, as float64.

    With ``labels_out`` (a ``(rows, cols)`` integer array), also writes each
    pixel's colour index + 1 into it, and 0 for masked pixels.

    Examples
    --------
    >>> from palette_dask.pixels import PixelSpec
    >>> spec = PixelSpec(bands=(0, 1, 2), alpha=3, low=(0, 0, 0), high=(255, 255, 255))
    >>> block = np.array([[[0, 0, 0, 255], [250, 250, 250, 255], [9, 9, 9, 0]]], dtype=np.uint8)
    >>> block_stats(block, spec, np.array([[0, 0, 0], [255, 255, 255.0]])).tolist()
    [1.0, 1.0, 0.0, 75.0, 1.0]
    """
    pixels = block.reshape(-1, block.shape[-1])
    if pixels.dtype == np.bool_:
        pixels = pixels.view(np.uint8)
    low = np.resize(np.asarray(spec.low, dtype=np.float64), N_FEATURES)
    high = np.resize(np.asarray(spec.high, dtype=np.float64), N_FEATURES)
    scale = 255.0 / np.where(high > low, high - low, 1.0)  # as pixels.to_features does
    bands = np.resize(np.asarray(spec.bands, dtype=np.int64), N_FEATURES)
    nodata_is_nan = spec.nodata is not None and np.isnan(spec.nodata)
    nodata = (
        np.asarray([spec.nodata], dtype=pixels.dtype)
        if spec.nodata is not None and not nodata_is_nan
        else np.empty(0, dtype=pixels.dtype)
    )
    flat_labels = labels_out.reshape(-1) if labels_out is not None else np.empty(0, dtype=np.uint8)
    counts, squared, masked = _count_pixels(
        pixels,
        bands,
        -1 if spec.alpha is None else spec.alpha,
        nodata,
        nodata_is_nan,
        np.issubdtype(pixels.dtype, np.floating),
        low,
        scale,
        np.asarray(centers, dtype=np.float32).astype(np.float64),
        flat_labels,
    )
    return np.concatenate([counts, squared, [masked]]).astype(np.float64)


def _stats_task(block, spec, centers, labels_path=None, block_info=None):
    if labels_path is None:
        stats = block_stats(block, spec, centers)
    else:  # this task owns exactly this chunk of the label raster
        import zarr

        target = zarr.open_array(labels_path, mode="r+")
        (r0, r1), (c0, c1), _ = block_info[0]["array-location"]
        labels = np.zeros((r1 - r0, c1 - c0), dtype=target.dtype)
        stats = block_stats(block, spec, centers, labels_out=labels)
        target[r0:r1, c0:c1] = labels
    return stats[np.newaxis, np.newaxis, :]


def image_stats(
    image: da.Array, spec: PixelSpec, centers: np.ndarray, labels_path: str | None = None
) -> da.Array:
    """Lazy ``(2k + 1,)`` vector of :func:`block_stats` summed over an image's chunks.

    With ``labels_path`` (a zarr array chunked like ``image``), every chunk's
    task also writes its labels there, in the same pass.
    """
    centers = np.asarray(centers, dtype=np.float32)
    width = 2 * len(centers) + 1
    per_block = image.map_blocks(
        _stats_task,
        spec,
        centers,
        labels_path,
        chunks=((1,) * image.numblocks[0], (1,) * image.numblocks[1], (width,)),
        dtype=np.float64,
        name="count-" + da.core.tokenize(image.name, spec, centers, labels_path),
    )
    return per_block.sum(axis=(0, 1), split_every=16)


def unpack_stats(stats: np.ndarray) -> ImageCounts:
    """Split an :func:`image_stats` vector into an :class:`ImageCounts`."""
    k = (len(stats) - 1) // 2
    return ImageCounts(
        counts=np.rint(stats[:k]).astype(np.int64),
        squared_error=np.asarray(stats[k : 2 * k], dtype=np.float64),
        masked=int(round(stats[-1])),
    )
