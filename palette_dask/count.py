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
from .pixels import block_features
from .read import ImageInfo

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


def block_stats(block: np.ndarray, info: ImageInfo, centers: np.ndarray) -> np.ndarray:
    """``[counts (k), squared errors (k), masked]`` of one block, as float64.

    Examples
    --------
    >>> from palette_dask.read import ImageInfo
    >>> info = ImageInfo("a", "pillow", (1, 3, 4), "uint8", "RGBA")
    >>> block = np.array([[[0, 0, 0, 255], [250, 250, 250, 255], [9, 9, 9, 0]]], dtype=np.uint8)
    >>> block_stats(block, info, np.array([[0, 0, 0], [255, 255, 255.0]])).tolist()
    [1.0, 1.0, 0.0, 75.0, 1.0]
    """
    features, valid = block_features(block, info.channels, info.nodata)
    labels, d2 = nearest_center(features[valid], centers)
    k = len(centers)
    return np.concatenate(
        [
            np.bincount(labels, minlength=k),
            np.bincount(labels, weights=d2, minlength=k),
            [valid.size - np.count_nonzero(valid)],
        ]
    ).astype(np.float64)


def image_stats(image: da.Array, info: ImageInfo, centers: np.ndarray) -> da.Array:
    """Lazy ``(2k + 1,)`` vector of :func:`block_stats` summed over an image's chunks."""
    centers = np.asarray(centers, dtype=np.float32)
    width = 2 * len(centers) + 1
    per_block = image.map_blocks(
        lambda block: block_stats(block, info, centers)[np.newaxis, np.newaxis, :],
        chunks=((1,) * image.numblocks[0], (1,) * image.numblocks[1], (width,)),
        dtype=np.float64,
        name="count-" + da.core.tokenize(image.name, centers),
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
