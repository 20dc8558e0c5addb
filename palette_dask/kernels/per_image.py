"""Per-image palettes: every image's own K colours and their shares, as the tutorial computes for one photo.

Computed in the counting pass, by the task that counts the image, from the
pixels it counts (masked and excluded pixels left out):

1. the image's valid display colours are binned, 4 bits a channel (4,096 bins),
   each bin keeping its pixel count and the sum of its colours, so each bin
   stands for its pixels by their mean colour; an image with few colours is
   binned finer (up to 6 bits a channel);
2. the bins' mean colours, in CIELAB, weighted by their pixels, are clustered
   by k-means: greedy k-means++ as scikit-learn's, seeded by the run's seed
   and the image's index, then Lloyd's iterations; twice, the lower
   weighted inertia kept;
3. the centres are then refined by Lloyd's steps over the pixels themselves
   (at most 4,096, evenly spaced: every pixel of a 64 x 64 thumbnail), and
   each colour's share is the share of those pixels nearest to it (within
   about a percentage point of counting every pixel, on bigger images).

An image read tile by tile (a mosaic) has its palette found the same way
from its chunks, computed by the tasks that count them (:func:`image_parts`):
the bins add up across chunks (kept at 6 bits, the coarser ones are their
sums: the same bins as the image decoded whole), and the centres are refined
and the shares found on the pixels of a lattice over the image.

A thumbnail of 12,288 pixels occupies a few hundred bins, so its palette
costs about what counting it costs; the palette's CIELAB error is within 2 %
of scikit-learn's ``KMeans`` fitted to every pixel in CIELAB (tested).
Colours are 8-bit sRGB, largest share first; centres that round to the same
8-bit colour are one, and an image with fewer distinct colours than K has
zero shares in its last rows.

Examples
--------
>>> pixels = np.array([[[255, 0, 0], [255, 0, 0], [0, 0, 255]]], np.uint8)
>>> spec = PixelSpec(bands=(0, 1, 2), low=(0, 0, 0), high=(255, 255, 255), space="lab")
>>> colours, shares = image_palette(pixels, spec, np.ones((1, 3), np.uint8), 2, seed=0, index=0)
>>> colours.tolist(), shares.round(3).tolist()
([[255, 0, 0], [0, 0, 255]], [0.667, 0.333])
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .colour import lab_of, srgb_of, srgb_to_lab
from .fit import lloyd_step, nearest
from .pixels import PixelSpec, colour_values, loop_spec, to_display

__all__ = ["image_palette", "image_parts", "palette_of_parts", "Parts", "BITS", "MIN_BINS"]

#: Bits kept of each display channel to bin an image's colours.
BITS = 4
#: k-means runs over the bins, from successive seeds: the lowest inertia is kept.
INITS = 2
#: Images with fewer occupied bins than this many per colour are binned finer, up to MAX_BITS.
MIN_BINS = 16
MAX_BITS = 6
#: Lloyd's iterations at most (they stop once no bin changes colour).
ITERATIONS = 50
#: Then the centres are refined by Lloyd's steps over at most this many of the image's pixels.
REFINE_PIXELS = 4096
REFINE_STEPS = 2


@numba.njit(nogil=True, cache=True, inline="always")
def _next(state):
    """xorshift64*: the next state and a uniform float in [0, 1)."""
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    return state, np.float64((state * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(11)) * 2.0**-53


@numba.njit(nogil=True, cache=True)
def _bins(display, bands, labels, bits):
    """Occupied bins of the valid display colours: their CIELAB (of the mean colour) and pixel counts.

    ``display[i, bands]`` is pixel ``i``'s display colour; it counts where ``labels[i] > 0``.
    """
    shift = 8 - bits
    size = 1 << (3 * bits)
    counts = np.zeros(size, dtype=np.int64)
    sums = np.zeros((size, 3), dtype=np.float64)
    for i in range(display.shape[0]):
        if labels[i] == 0:
            continue
        r, g, b = (
            np.float64(display[i, bands[0]]),
            np.float64(display[i, bands[1]]),
            np.float64(display[i, bands[2]]),
        )
        key = ((int(r) >> shift) << (2 * bits)) | ((int(g) >> shift) << bits) | (int(b) >> shift)
        counts[key] += 1
        sums[key, 0] += r
        sums[key, 1] += g
        sums[key, 2] += b
    occupied = np.flatnonzero(counts)
    lab = np.empty((len(occupied), 3), dtype=np.float64)
    weights = np.empty(len(occupied), dtype=np.float64)
    for j in range(len(occupied)):
        key = occupied[j]
        n = counts[key]
        lab[j, 0], lab[j, 1], lab[j, 2] = lab_of(sums[key, 0] / n, sums[key, 1] / n, sums[key, 2] / n)
        weights[j] = n
    return lab, weights


@numba.njit(nogil=True, cache=True, inline="always")
def _squared(lab, j, point):
    return (lab[j, 0] - point[0]) ** 2 + (lab[j, 1] - point[1]) ** 2 + (lab[j, 2] - point[2]) ** 2


@numba.njit(nogil=True, cache=True)
def _draw(weights, d2, first, state):
    """A bin drawn with probability ∝ weight (the first centre) or weight × squared distance."""
    mass = 0.0
    for j in range(weights.shape[0]):
        mass += weights[j] if first else weights[j] * d2[j]
    state, u = _next(state)
    target, running = u * mass, 0.0
    for j in range(weights.shape[0]):
        running += weights[j] if first else weights[j] * d2[j]
        if running > target:
            return j, state
    return weights.shape[0] - 1, state


@numba.njit(nogil=True, cache=True)
def _kmeans(lab, weights, k, state, iterations, trials):
    """Weighted greedy k-means++ (as scikit-learn's), then Lloyd's iterations: centres, pixels of each."""
    m = lab.shape[0]
    used = min(k, m)
    centers = np.zeros((k, 3), dtype=np.float64)
    first, state = _draw(weights, weights, True, state)
    centers[0] = lab[first]
    d2 = np.empty(m)
    for j in range(m):
        d2[j] = _squared(lab, j, centers[0])
    for c in range(1, used):  # of a few draws ∝ weight × d², the one that lowers the weighted inertia most
        best, best_potential = 0, np.inf
        for _ in range(trials):
            candidate, state = _draw(weights, d2, False, state)
            potential = 0.0
            for j in range(m):
                potential += weights[j] * min(d2[j], _squared(lab, j, lab[candidate]))
            if potential < best_potential:
                best, best_potential = candidate, potential
        centers[c] = lab[best]
        for j in range(m):
            d2[j] = min(d2[j], _squared(lab, j, centers[c]))
    return _lloyd(lab, weights, centers, used, iterations), state


@numba.njit(nogil=True, cache=True)
def _inertia(lab, weights, centers, used):
    total = 0.0
    for j in range(lab.shape[0]):
        total += weights[j] * nearest(lab[j, 0], lab[j, 1], lab[j, 2], centers[:used])[1]
    return total


@numba.njit(nogil=True, cache=True)
def _shares(lab, weights, centers, used, k):
    """The weight of the points nearest each centre."""
    counts = np.zeros(k)
    for j in range(lab.shape[0]):
        counts[nearest(lab[j, 0], lab[j, 1], lab[j, 2], centers[:used])[0]] += weights[j]
    return counts


@numba.njit(nogil=True, cache=True)
def _lloyd(lab, weights, centers, used, iterations):
    """Lloyd's iterations (:func:`~palette_dask.kernels.fit.lloyd_step`) over weighted points, in place.

    They stop once no point changes centre; an empty cluster keeps its centre.
    """
    m = lab.shape[0]
    labels, distances = np.full(m, -1, dtype=np.int64), np.empty(m)
    mass, sums = np.zeros(used), np.zeros((used, 3))
    for _ in range(iterations):
        if not lloyd_step(lab, weights, centers, used, labels, distances, mass, sums):
            break
        for c in range(used):
            if mass[c] > 0:
                for f in range(3):
                    centers[c, f] = sums[c, f] / mass[c]
    return centers


@numba.njit(nogil=True, cache=True)
def _pixels_lab(display, bands, labels, most):
    """CIELAB of at most ``most`` valid pixels, evenly spaced: to refine the centres found on the bins."""
    n = 0
    for i in range(display.shape[0]):
        n += labels[i] > 0
    out = np.empty((min(n, most), 3))
    step, position, j = out.shape[0], n - 1, 0
    for i in range(display.shape[0]):
        if labels[i] > 0:
            position += step  # one pixel in every n / most, evenly (no division per pixel)
            if position >= n:
                position -= n
                out[j, 0], out[j, 1], out[j, 2] = lab_of(
                    np.float64(display[i, bands[0]]),
                    np.float64(display[i, bands[1]]),
                    np.float64(display[i, bands[2]]),
                )
                j += 1
    return out


@numba.njit(nogil=True, cache=True)
def _shown(centers, counts, k):
    """The centres as 8-bit colours, those shown alike merged, largest share first: colours, shares."""
    keys = np.full(k, -1, dtype=np.int64)
    merged = np.zeros(k)
    for c in range(k):
        if counts[c] <= 0:
            continue
        r, g, b = srgb_of(centers[c, 0], centers[c, 1], centers[c, 2])
        key = (int(np.rint(r)) << 16) | (int(np.rint(g)) << 8) | int(np.rint(b))
        target = c
        for earlier in range(c):
            if keys[earlier] == key:  # shown alike: one colour
                target = earlier
                break
        keys[target] = key
        merged[target] += counts[c]
    order = np.argsort(-merged, kind="mergesort")  # stable
    colours = np.zeros((k, 3), dtype=np.uint8)
    shares = np.zeros(k)
    total = max(merged.sum(), 1.0)
    for position in range(k):
        c = order[position]
        if merged[c] > 0:
            colours[position, 0] = keys[c] >> 16
            colours[position, 1] = (keys[c] >> 8) & 255
            colours[position, 2] = keys[c] & 255
            shares[position] = merged[c] / total
    return colours, shares


@numba.njit(nogil=True, cache=True)
def _fit(lab, weights, pixels, k, state, inits, iterations, refine_steps):
    """Steps 2 and 3 of the module docstring: k-means over the bins, refined over ``pixels`` (CIELAB)."""
    used = min(k, lab.shape[0])
    centers, best = np.zeros((k, 3)), np.inf
    for _ in range(inits if used else 0):  # the lowest weighted inertia over the bins
        candidate, state = _kmeans(lab, weights, k, state, iterations, 2 + int(np.log(k)))
        inertia = _inertia(lab, weights, candidate, used)
        if inertia < best:
            centers, best = candidate, inertia
    if lab.shape[0] <= k or pixels.shape[0] == 0:  # a colour per bin
        return _shown(centers, _shares(lab, weights, centers, used, k), k)
    ones = np.ones(pixels.shape[0])  # refined on the pixels, which give the shares
    centers = _lloyd(pixels, ones, centers, used, refine_steps)
    return _shown(centers, _shares(pixels, ones, centers, used, k), k)


@numba.njit(nogil=True, cache=True)
def _own_palette(
    display, bands, labels, k, state, min_bins, max_bits, inits, iterations, refine_pixels, refine_steps
):
    """The steps of the module docstring in one compiled call: the colours and their shares."""
    bits = BITS
    lab, weights = _bins(display, bands, labels, bits)
    while lab.shape[0] < min_bins * k and bits < max_bits:  # few colours: finer bins
        bits += 1
        lab, weights = _bins(display, bands, labels, bits)
    pixels = _pixels_lab(display, bands, labels, refine_pixels) if lab.shape[0] > k else np.empty((0, 3))
    return _fit(lab, weights, pixels, k, state, inits, iterations, refine_steps)


def _state(seed: int, index: int) -> np.uint64:
    """The k-means' random state of an image: from the run's seed and the image's index, never zero."""
    return np.uint64(((((seed << 32) ^ index) * 0x9E3779B97F4A7C15) | 1) % 2**64)


def image_palette(
    pixels: np.ndarray, spec: PixelSpec, labels: np.ndarray, k: int, *, seed: int, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """One image's own ``k`` colours (8-bit sRGB, ``(k, 3)``) and shares (summing to 1), largest first.

    ``pixels`` is the image as decoded (``(rows, cols, bands)``), shown by
    ``spec``; ``labels`` its labels from the counting loop (0: masked or
    excluded); ``seed`` and ``index`` (the image's index in the run) seed the
    k-means, so a palette does not depend on batches.
    """
    flat = pixels.reshape(-1, pixels.shape[-1])
    loop = loop_spec(spec, flat.dtype)
    bands = loop.bands
    if not loop.eight_bit:  # other data: their display colours, computed
        flat, bands = to_display(colour_values(flat, spec), spec), np.arange(3)
    return _own_palette(
        flat,
        bands,
        labels.reshape(-1),
        k,
        _state(seed, index),
        MIN_BINS,
        MAX_BITS,
        INITS,
        ITERATIONS,
        REFINE_PIXELS,
        REFINE_STEPS,
    )


# An image read tile by tile (a mosaic): the bins add up across its chunks


@dataclass(frozen=True)
class Parts:
    """What an image's chunks say of its own palette, added up: its bins at :data:`MAX_BITS`, and pixels.

    Attributes
    ----------
    keys, counts : ndarray of int64
        The occupied bins of the valid display colours (``MAX_BITS`` a channel), and their pixels.
    sums : ndarray of float64, shape (m, 3)
        The sums of their display colours (exact for 8-bit data, whatever the order of the chunks).
    pixels : ndarray of float64, shape (p, 3)
        CIELAB of the valid pixels on a lattice over the whole image (:func:`lattice_step`).
    """

    keys: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    pixels: np.ndarray


def lattice_step(shape) -> int:
    """Every ``step``-th row and column: at most about :data:`REFINE_PIXELS` pixels of an image this shape.

    Examples
    --------
    >>> lattice_step((64, 64)), lattice_step((20_000, 20_000))
    (1, 313)
    """
    return max(1, int(np.ceil(np.sqrt(shape[0] * shape[1] / REFINE_PIXELS))))


def block_parts(block: np.ndarray, spec: PixelSpec, location, step: int) -> Parts:
    """The :class:`Parts` of one chunk at ``location`` (``((r0, r1), (c0, c1))`` in the image)."""
    from .pixels import valid_mask

    (r0, _), (c0, _) = location
    valid = valid_mask(block, spec)
    flat = block.reshape(-1, block.shape[-1])
    loop = loop_spec(spec, flat.dtype)
    if loop.eight_bit:
        display = flat[:, loop.bands].astype(np.float64)
    else:
        display = to_display(colour_values(flat, spec), spec)
    display = display.astype(np.float64).reshape(block.shape[:2] + (3,))
    shift = 8 - MAX_BITS
    whole = display[valid].astype(np.int64) >> shift
    keys = (whole[:, 0] << (2 * MAX_BITS)) | (whole[:, 1] << MAX_BITS) | whole[:, 2]
    keys, inverse = np.unique(keys, return_inverse=True)
    sums = np.stack([np.bincount(inverse, display[valid][:, f], len(keys)) for f in range(3)], axis=1)
    rows = np.arange(r0, r0 + block.shape[0]) % step == 0
    cols = np.arange(c0, c0 + block.shape[1]) % step == 0
    on_lattice = valid & rows[:, None] & cols[None, :]
    pixels = srgb_to_lab(display[on_lattice]) if on_lattice.any() else np.empty((0, 3))
    return Parts(keys, np.bincount(inverse, minlength=len(keys)).astype(np.int64), sums, pixels)


def add_parts(parts: list[Parts]) -> Parts:
    """The :class:`Parts` of several chunks of one image, added up (in row-major order of the chunks)."""
    keys = np.concatenate([p.keys for p in parts])
    merged, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse, np.concatenate([p.counts for p in parts]), len(merged)).astype(np.int64)
    sums = np.concatenate([p.sums for p in parts])
    sums = np.stack([np.bincount(inverse, sums[:, f], len(merged)) for f in range(3)], axis=1)
    return Parts(merged, counts, sums, np.concatenate([p.pixels for p in parts]))


def bins_of(parts: Parts, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The bins at ``bits`` a channel, from :class:`Parts`: CIELAB of their mean colours, and their pixels.

    The same bins as an image decoded whole has (:func:`_bins`), in the same order.
    """
    shift = MAX_BITS - bits
    mask = (1 << MAX_BITS) - 1
    r, g, b = parts.keys >> (2 * MAX_BITS), (parts.keys >> MAX_BITS) & mask, parts.keys & mask
    keys = ((r >> shift) << (2 * bits)) | ((g >> shift) << bits) | (b >> shift)
    coarse, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse, parts.counts, len(coarse))
    sums = np.stack([np.bincount(inverse, parts.sums[:, f], len(coarse)) for f in range(3)], axis=1)
    return srgb_to_lab(sums / counts[:, None]), counts.astype(np.float64)


def palette_of_parts(parts: Parts, k: int, *, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """An image's own ``k`` colours and shares from its chunks' :class:`Parts`, as :func:`image_palette`.

    The same bins as the image decoded whole, the same k-means; the centres
    are refined, and the shares found, on the pixels of a lattice over the
    image instead of evenly spaced valid pixels.
    """
    bits = BITS
    lab, weights = bins_of(parts, bits)
    while lab.shape[0] < MIN_BINS * k and bits < MAX_BITS:  # few colours: finer bins
        bits += 1
        lab, weights = bins_of(parts, bits)
    pixels = np.ascontiguousarray(parts.pixels, dtype=np.float64)
    return _fit(lab, weights, pixels, k, _state(seed, index), INITS, ITERATIONS, REFINE_STEPS)


def image_parts(image, spec: PixelSpec):
    """A delayed :class:`Parts` of a dask image, chunk by chunk, added up in a tree of 16."""
    import dask

    blocks = image.to_delayed().reshape(image.numblocks[:2])
    rows, cols = np.cumsum((0, *image.chunks[0])), np.cumsum((0, *image.chunks[1]))
    step = lattice_step(image.shape)
    parts = [
        dask.delayed(block_parts, pure=True)(
            blocks[i, j], spec, ((rows[i], rows[i + 1]), (cols[j], cols[j + 1])), step
        )
        for i in range(blocks.shape[0])
        for j in range(blocks.shape[1])
    ]
    while len(parts) > 1:
        parts = [dask.delayed(add_parts, pure=True)(parts[i : i + 16]) for i in range(0, len(parts), 16)]
    return parts[0]
