"""Count: one fused pass over all pixels that labels and counts them per chunk.

Each chunk's task reads its tile, turns it into features, labels every valid
pixel with its nearest centre and returns only a small vector: the pixels per
cluster, their squared distances (for the true inertia), and the masked
pixels. The label raster is never materialised.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np

from .fit import nearest_center
from .pixels import PixelSpec, block_features

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
    features, valid = block_features(block, spec)
    labels, d2 = nearest_center(features[valid], centers)
    if labels_out is not None:
        labels_out[...] = 0
        labels_out[valid] = labels + 1
    k = len(centers)
    return np.concatenate(
        [
            np.bincount(labels, minlength=k),
            np.bincount(labels, weights=d2, minlength=k),
            [valid.size - np.count_nonzero(valid)],
        ]
    ).astype(np.float64)


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
