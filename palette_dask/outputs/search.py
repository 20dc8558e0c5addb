"""Search: the images of a store where colours near a given one cover at least a share of the pixels.

A colour is near when its CIEDE2000 difference to the one asked for is at
most ``within`` (10 by default: clearly the same hue and about the same
lightness). An image's share is the sum of its shares of the palette's near
colours, from the store's per-image histograms; reading them costs a pass
over ``image_status``, ``image_valid`` and ``image_counts`` (a chunk per
batch, read a million rows at a time), and the names of the images found only.

Examples
--------
>>> parse_colour("#C74C32"), parse_colour("tomato")
((199, 76, 50), (255, 99, 71))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..constants import HEX_COLOUR, css_colours
from ..errors import ParameterError
from ..kernels.colour import delta_e00, hex_rgb

__all__ = ["parse_colour", "near_colours", "search_store", "Match"]

DEFAULT_WITHIN = 10.0
#: Images whose histograms are read at once: whole chunks, about 2**20 rows (k=8: 64 MB of counts).
SLAB_ROWS = 2**20


def parse_colour(text: str, vocabulary: dict[str, str] | None = None) -> tuple[int, int, int]:
    """``#rrggbb``, ``rrggbb``, or a name of the vocabulary (default: the CSS names), as 8-bit sRGB."""
    code = (vocabulary or css_colours()).get(text.strip(), text.strip())
    if not HEX_COLOUR.fullmatch(code):
        raise ParameterError(f"{text!r} is not a colour: give #rrggbb or a colour name such as 'tomato'")
    return hex_rgb(code)


def near_colours(colors, colour, within: float = DEFAULT_WITHIN) -> np.ndarray:
    """Indices of the ``colors`` (8-bit sRGB) within ΔE00 ``within`` of ``colour``."""
    colors = np.asarray(colors).reshape(-1, 3)
    if not len(colors):
        return np.zeros(0, np.intp)
    return np.flatnonzero(delta_e00(colors, [colour])[:, 0] <= within)


@dataclass(frozen=True)
class Match:
    """An image found: its index in the store, its name, and the share of its pixels near the colour."""

    index: int
    image: str
    share: float


def search_store(
    store: str | os.PathLike,
    colour: tuple[int, int, int],
    *,
    within: float = DEFAULT_WITHIN,
    min_share: float = 0.2,
    top: int | None = None,
) -> tuple[list[int], list[Match], int]:
    """The ids of the palette colours near ``colour``, and the images they cover ``min_share`` of.

    Returns the ids, the images most covered first (the ``top`` ones), and how
    many images are covered that much in all.

    Where the store holds per-image palettes, an image's share is the larger
    of its shared-palette colours' and its own colours' near ``colour``.

    Examples
    --------
    >>> import tempfile, os
    >>> from palette_dask.outputs.store import create_store, write_palette
    >>> path = os.path.join(tempfile.mkdtemp(), "s.zarr")
    >>> group = create_store(path, ["a.png", "b.png"], attrs={"parameters": {"k": 2}})
    >>> write_palette(group, np.array([[200, 76, 50], [20, 20, 200]], np.float32))
    >>> group["image_counts"][:] = [[30, 70], [90, 10]]
    >>> group["image_valid"][:], group["image_status"][:] = [100, 100], [1, 1]
    >>> search_store(path, parse_colour("#c74c32"), top=1)
    ([1], [Match(index=1, image='b.png', share=0.9)], 2)
    """
    from .store import DONE, open_store

    group = open_store(store)
    if "colors" not in group:
        return [], [], 0
    near = near_colours(group["colors"][:], colour, within)
    own = "image_palettes" in group  # each image's own palette (per_image=K), searched too
    found, shares = [], []
    n, batch = group["image_status"].shape[0], group["image_status"].chunks[0]
    slab = batch * max(1, SLAB_ROWS // batch)  # whole chunks, read together (zarr fetches them concurrently)
    for start in range(0, n, slab) if len(near) or own else []:
        rows = slice(start, min(start + slab, n))
        status, valid = group["image_status"][rows], group["image_valid"][rows]
        covered = group["image_counts"][rows][:, near].sum(axis=1)
        share = np.where(valid > 0, covered / np.maximum(valid, 1), 0.0)
        if own:  # the larger of the two: the shared palette's colours near it, or the image's own
            colours, own_shares = group["image_palettes"][rows], group["image_palette_shares"][rows]
            close = delta_e00(colours.reshape(-1, 3), [colour]).reshape(own_shares.shape) <= within
            share = np.maximum(share, np.where(close, own_shares, 0.0).sum(axis=1))
        keep = np.flatnonzero((status == DONE) & (share >= min_share))
        found.append(keep + start)
        shares.append(share[keep])
    if not found:
        return (near + 1).tolist(), [], 0
    index, share = np.concatenate(found), np.concatenate(shares)
    total = len(index)
    order = np.lexsort((index, -share))[:top]
    index, share = index[order], share[order]
    names = group["image_names"].get_coordinate_selection(index) if len(index) else []
    matches = [Match(int(i), str(n), round(float(s), 6)) for i, n, s in zip(index, names, share)]
    return (near + 1).tolist(), matches, total
