"""Pixels: from raw image blocks to float32 colour features and a validity mask.

The feature space is sRGB on the 0–255 scale, three float32 features per
pixel, whatever the input:

- gray images repeat their one channel three times (clustering is unchanged),
- alpha is a mask, never a colour: a pixel with alpha 0 is left out, every
  other pixel is kept with its colour,
- a pixel whose bands all equal the ``nodata`` value is left out, as GDAL's
  dataset mask does, and so is a pixel with any NaN band,
- integers are scaled by their dtype's range (16-bit 65535 → 255), floats
  are taken as 0–1 and clipped.

:func:`block_features` works on one numpy block and is what every task calls;
:func:`pixel_features` and :func:`pixel_table` are the dask versions for
notebooks.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

__all__ = ["block_features", "pixel_features", "pixel_table", "N_FEATURES"]

N_FEATURES = 3


def _scale(dtype: np.dtype) -> float:
    if dtype == np.bool_:
        return 255.0
    if np.issubdtype(dtype, np.integer):
        return 255.0 / np.iinfo(dtype).max
    return 255.0


def block_features(
    block: np.ndarray, channels: str, nodata: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Colour features and validity of one ``(rows, cols, channels)`` block.

    Returns
    -------
    features : ndarray of float32, shape (rows, cols, 3)
        sRGB on the 0–255 scale.
    valid : ndarray of bool, shape (rows, cols)

    Examples
    --------
    >>> rgba = np.array([[[255, 0, 0, 255], [0, 255, 0, 0]]], dtype=np.uint8)
    >>> features, valid = block_features(rgba, "RGBA")
    >>> features[0, 0].tolist(), valid.tolist()
    ([255.0, 0.0, 0.0], [[True, False]])
    """
    has_alpha = channels in ("LA", "RGBA")
    colour = block[..., :-1] if has_alpha else block
    valid = np.ones(block.shape[:2], dtype=bool)
    if has_alpha:
        valid &= block[..., -1] > 0
    if nodata is not None:
        if np.isnan(nodata):
            valid &= ~np.all(np.isnan(colour), axis=-1)
        else:
            valid &= ~np.all(colour == np.asarray(nodata).astype(colour.dtype), axis=-1)
    features = colour.astype(np.float32) * np.float32(_scale(block.dtype))
    if np.issubdtype(block.dtype, np.floating):
        valid &= ~np.any(np.isnan(features), axis=-1)
        np.clip(features, 0.0, 255.0, out=features)
    if features.shape[-1] == 1:
        features = np.repeat(features, N_FEATURES, axis=-1)
    return features, valid


def pixel_features(image: da.Array, channels: str, nodata: float | None = None) -> tuple[da.Array, da.Array]:
    """Lazy :func:`block_features` over a whole image.

    Returns
    -------
    features : dask array of float32, shape (rows, cols, 3)
    valid : dask array of bool, shape (rows, cols)
    """
    image = image.rechunk({2: -1})
    features = image.map_blocks(
        lambda b: block_features(b, channels, nodata)[0],
        chunks=image.chunks[:2] + ((N_FEATURES,),),
        dtype=np.float32,
    )
    valid = image.map_blocks(
        lambda b: block_features(b, channels, nodata)[1],
        drop_axis=2,
        dtype=bool,
    )
    return features, valid


def pixel_table(image: da.Array, channels: str, nodata: float | None = None) -> da.Array:
    """The tutorial's ``(pixels × channels)`` table, of valid pixels only.

    The number of rows is unknown until computed (masked pixels are dropped).

    Examples
    --------
    >>> import dask.array as da
    >>> rgba = da.from_array(np.array([[[9, 9, 9, 255], [1, 1, 1, 0]]], dtype=np.uint8))
    >>> pixel_table(rgba, "RGBA").compute().tolist()
    [[9.0, 9.0, 9.0]]
    """
    features, valid = pixel_features(image, channels, nodata)
    return features.reshape(-1, N_FEATURES)[valid.reshape(-1)]
