"""Fit: cluster the sampled colours with dask-ml's k-means|| ``KMeans``.

dask-ml 2025.1.0's ``KMeans`` has defects this module works around, each
covered by a test (``tests/test_fit.py``):

- ``inertia_`` is a sum of plain distances unless the last shift is tiny:
  inertia is recomputed here, as a sum of squared distances;
- an empty cluster's centre becomes all zeros (a phantom black): a polishing
  pass of Lloyd iterations on the sample reseeds every empty cluster with the
  pixel farthest from its centre, so every colour owns pixels;
- integer input gives truncated integer centres: the sample is float32;
- k-means|| starts from row 0: the sample comes in random order (see sample);
- ``tol`` is an absolute squared shift: it is scaled here by the sample's
  variance, as scikit-learn does;
- few init rounds give fewer than k candidates: each of its 2 rounds draws
  about ``5k`` candidates (``oversampling_factor``; 2 rounds of 5k fitted as
  well as 5 rounds of 2k on the scikit-image photos at k=5 and 10, in half the
  time: every round is a pass over the sample and a round trip);
- its k-means|| reduces the candidates without their weights and lands in a
  poor local optimum now and then: ``n_init`` fits are run (k-means||, then
  greedy k-means++ seeds) and the lowest inertia is kept;
- fewer distinct colours than k: the palette is those colours, smaller than
  k, with a :class:`~palette_dask.errors.PaletteDaskWarning`; never duplicates.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass

import dask
import dask.array as da
import numba
import numpy as np

from ..constants import DEFAULT_N_INIT
from ..errors import NoValidPixelsError, PaletteDaskWarning, plural
from ..options import check_k

__all__ = ["FittedPalette", "fit_palette", "nearest_center", "polish", "lloyd_step"]


@functools.cache
def _import_kmeans():
    """dask-ml's ``KMeans``, imported when a fit needs it: with scikit-learn and SciPy, a second of imports.

    Importing it while the first pass reads was measured slower (the import
    holds the GIL the worker threads need): 2,000 crops 7.6-9.4 s against
    6.3-7.3 s.
    """
    from dask_ml.cluster import KMeans

    return KMeans


@contextlib.contextmanager
def _lloyd_cached():
    """dask-ml's Lloyd kernel (numba) loaded from numba's disk cache, not compiled, while a fit runs.

    The kernel's cache setting is dask-ml's again afterwards; another dask-ml,
    or one whose kernel cannot be cached, is only slower to compile.
    """
    try:
        from dask_ml.cluster import k_means

        kernel = k_means._centers_dense
        saved = kernel._cache
        kernel.enable_caching()
    except Exception:
        yield
        return
    try:
        yield
    finally:
        kernel._cache = saved


#: k-means|| rounds; each draws about ``10 / INIT_ROUNDS * k`` candidates (a pass and a round trip each).
INIT_ROUNDS = 2
#: A sample up to this size (5.6 million pixels) is fitted in the calling
#: process on dask's threaded scheduler. k-means|| and Lloyd's iterations make
#: some twenty passes over it; for a sample of a few megabytes a round trip to
#: the cluster's workers costs more than the pass (measured: 1.6 s → 0.4 s at
#: the default 100,000 pixels on a 2-worker LocalCluster).
LOCAL_FIT_BYTES = 64 * 2**20
#: Lloyd iterations dask-ml runs after its k-means|| (each one a pass over the
#: sample and several round trips); :func:`polish` converges the rest in memory.
DASK_ML_ITERATIONS = 3


@dataclass(frozen=True)
class FittedPalette:
    """Cluster centres fitted on the sample.

    Attributes
    ----------
    centers : ndarray of float32, shape (k, 3)
        In the sample's space, the clustering space: CIELAB, or sRGB 0–255.
    sample_inertia : float
        Sum of squared distances of the sample pixels to their nearest centre.
    sample_size : int
        Pixels in the sample.
    k_requested : int
        The ``k`` asked for; ``len(centers)`` is smaller only when the sample
        has fewer distinct colours.
    n_iter : int
        Lloyd iterations dask-ml ran after its k-means||.
    """

    centers: np.ndarray
    sample_inertia: float
    sample_size: int
    k_requested: int
    n_iter: int


@numba.njit(nogil=True, cache=True, inline="always")
def nearest(f0, f1, f2, centers):
    """The centre nearest to a point of three float64 features (lowest index on ties), its squared distance.

    The one nearest-centre rule of the package: the fit's assignments and the
    counting loop (:mod:`palette_dask.kernels.count`) both call it.
    """
    label, smallest = 0, np.inf
    for j in range(centers.shape[0]):
        d0 = f0 - centers[j, 0]
        d1 = f1 - centers[j, 1]
        d2 = f2 - centers[j, 2]
        distance = d0 * d0 + d1 * d1 + d2 * d2
        if distance < smallest:
            label, smallest = j, distance
    return label, smallest


@numba.njit(nogil=True, cache=True)
def _assign(x, centers, labels, best):
    """:func:`nearest` of every row of ``(n, 3)`` features, in float64."""
    for i in range(x.shape[0]):
        labels[i], best[i] = nearest(np.float64(x[i, 0]), np.float64(x[i, 1]), np.float64(x[i, 2]), centers)


def nearest_center(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre of each row, and its squared distance.

    Computed in float64; ties go to the lower index, as ``numpy.argmin`` does.

    Examples
    --------
    >>> labels, d2 = nearest_center(np.array([[0, 0, 1.0], [9, 9, 9]]), np.array([[0, 0, 0], [9, 9, 8.0]]))
    >>> labels.tolist(), d2.tolist()
    ([0, 1], [1.0, 1.0])
    """
    x = np.ascontiguousarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    labels = np.empty(len(x), dtype=np.intp)
    best = np.empty(len(x), dtype=np.float64)
    _assign(x, np.ascontiguousarray(centers, dtype=np.float64), labels, best)
    return labels, best


@numba.njit(nogil=True, cache=True)
def lloyd_step(points, weights, centers, used, labels, distances, mass, sums):
    """One weighted Lloyd assignment over ``(m, 3)`` float64 points: the package's one.

    Each point's :func:`nearest` of the first ``used`` centres goes into
    ``labels`` (its squared distance into ``distances``), and each centre's
    weight of points into ``mass`` and their weighted sums into ``sums``.
    Returns whether a label changed. :func:`polish` (the fit) and the
    per-image palettes (:mod:`palette_dask.kernels.per_image`) iterate it.
    """
    changed = False
    mass[:used] = 0.0
    sums[:used] = 0.0
    for j in range(points.shape[0]):
        best, distances[j] = nearest(points[j, 0], points[j, 1], points[j, 2], centers[:used])
        if best != labels[j]:
            changed, labels[j] = True, best
        mass[best] += weights[j]
        for f in range(3):
            sums[best, f] += weights[j] * points[j, f]
    return changed


def polish(x: np.ndarray, centers: np.ndarray, *, max_iter: int = 300, tol: float = 0.0):
    """Lloyd iterations (:func:`lloyd_step`) on the sample that leave no cluster empty.

    An empty cluster is reseeded with the pixel farthest from its current centre
    (as scikit-learn does), so no centre is a phantom colour. Stops when the
    squared centre shift is at most ``tol``.

    Returns
    -------
    centers : ndarray of float32, shape (k, 3)
    inertia : float
        Sum of squared distances to the nearest centre.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    centers = np.array(centers, dtype=np.float64)
    k, ones = len(centers), np.ones(len(x))
    labels, d2 = np.full(len(x), -1, dtype=np.int64), np.empty(len(x))
    mass, sums = np.empty(k), np.empty((k, 3))
    for _ in range(max_iter):
        lloyd_step(x, ones, centers, k, labels, d2, mass, sums)
        empty = np.flatnonzero(mass == 0)
        for j in empty:
            far = int(np.argmax(d2))
            centers[j], d2[far] = x[far], 0.0
            labels[far] = j
        if len(empty):  # the moved pixels' clusters, summed again
            mass = np.bincount(labels, minlength=k).astype(np.float64)
            sums = np.stack([np.bincount(labels, weights=x[:, f], minlength=k) for f in range(3)], 1)
        new = sums / mass[:, None]
        shift = float(np.square(new - centers).sum())
        centers = new
        if shift <= tol:
            break
    lloyd_step(x, ones, centers, k, labels, d2, mass, sums)
    return centers.astype(np.float32), float(d2.sum())


def _distinct_rows(x: np.ndarray, limit: int) -> np.ndarray:
    """Up to ``limit`` distinct rows of ``x`` (all of them when there are fewer)."""
    x = np.asarray(x)
    # cheap early exit on big samples: distinct rows of a prefix
    prefix = np.unique(x[: 50 * limit], axis=0)
    if len(prefix) >= limit:
        return prefix[:limit]
    return np.unique(x, axis=0)[:limit]


def _kmeans_plusplus(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """scikit-learn's greedy k-means++ seeds on the (small, in-memory) sample."""
    from sklearn.cluster import kmeans_plusplus

    return kmeans_plusplus(np.asarray(x, dtype=np.float32), k, random_state=seed)[0]


def fit_palette(
    sample: da.Array | np.ndarray,
    k: int = 5,
    *,
    random_state: int = 0,
    n_init: int = DEFAULT_N_INIT,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> FittedPalette:
    """Fit ``k`` colours to a sample of pixels with dask-ml's k-means||.

    Parameters
    ----------
    sample : (n, 3) float array, dask or numpy
        A numpy sample is fitted in this process on dask's threaded scheduler
        (right for samples up to :data:`LOCAL_FIT_BYTES`); a dask sample is
        fitted where it lives: persist it first, the fit makes dozens of passes.
    k : int
        Number of colours.
    random_state : int
        Seed of the initialisations.
    n_init : int
        Starts to try, keeping the lowest inertia: the first is dask-ml's
        k-means||, the others k-means++ seeds drawn on the sample. Six, not
        three: on the 2 GB benchmark mosaic three starts all missed the best
        optimum (3.5% worse), six found it; each start costs ~25 ms at the
        default sample size.
    max_iter : int
        Most Lloyd iterations of each start.
    tol : float
        Relative tolerance: the fit stops when the squared centre shift is
        below ``tol`` times the sample's mean feature variance (scikit-learn's rule).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(c, 2, (300, 3)) for c in (20, 120, 220)]).astype(np.float32)
    >>> fitted = fit_palette(x, 3)
    >>> np.sort(fitted.centers[:, 0]).round(-1).tolist()
    [20.0, 120.0, 220.0]
    """
    check_k(k)
    if isinstance(sample, np.ndarray):
        sample = da.from_array(sample.astype(np.float32, copy=False), chunks=(25_000, -1))
        with dask.config.set(scheduler="threads"):
            return _fit(sample, k, random_state, n_init, max_iter, tol)
    return _fit(sample, k, random_state, n_init, max_iter, tol)


def _fit(
    sample: da.Array, k: int, random_state: int, n_init: int, max_iter: int, tol: float
) -> FittedPalette:
    KMeans = _import_kmeans()
    sample = sample.astype(np.float32)
    n = sample.shape[0]
    if n == 0:
        raise NoValidPixelsError("no valid pixels to fit: every pixel is masked")
    distinct, variance = dask.compute(
        dask.delayed(_distinct_rows)(sample, k + 1), sample.var(axis=0, dtype=np.float64).mean()
    )
    if len(distinct) <= k:
        if len(distinct) < k:
            warnings.warn(
                f"only {plural(len(distinct), 'distinct colour')} among the sampled pixels, fewer than "
                f"k={k}: the palette has {plural(len(distinct), 'colour')}",
                PaletteDaskWarning,
                stacklevel=2,
            )
        centers, inertia = dask.compute(dask.delayed(polish)(sample, distinct, max_iter=1))[0]
        return FittedPalette(centers, inertia, n, k, 0)
    # dask-ml's k-means|| (with a few of its Lloyd iterations, each a pass over
    # the persisted sample) gives the first start; k-means++ seeds drawn on the
    # sample give the others, since Lloyd's algorithm lands in a local optimum
    # a few percent worse now and then. Every start is then polished in memory
    # where the sample lives, in parallel, and the lowest inertia wins.
    seeds = [int(s) for s in np.random.SeedSequence(random_state).generate_state(n_init)]
    model = KMeans(
        n_clusters=k,
        init="k-means||",
        oversampling_factor=max(2, 10 // INIT_ROUNDS * k),
        init_max_iter=INIT_ROUNDS,
        max_iter=DASK_ML_ITERATIONS,
        tol=tol * float(variance),
        random_state=seeds[0],
    )
    with _lloyd_cached():
        model.fit(sample)
    starts = [model.cluster_centers_] + [dask.delayed(_kmeans_plusplus)(sample, k, s) for s in seeds[1:]]
    polished = dask.compute(
        *[
            dask.delayed(polish)(sample, start, max_iter=max_iter, tol=tol * float(variance))
            for start in starts
        ]
    )
    best = min(range(len(polished)), key=lambda i: (polished[i][1], i))
    centers, inertia = polished[best]
    return FittedPalette(centers, inertia, n, k, int(model.n_iter_))
