"""Pipeline: read → pixels → sample → fit → count → store, wired once for every shell.

The CLI, the workflows and the notebooks all call :func:`extract_palette`.
It runs on a dask.distributed client and treats every image separately: an
image that cannot be read or has no valid pixels is recorded as failed in
the store with its error, and the others still finish.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import dask
import dask.array as da
import numpy as np
from distributed import Client, as_completed
from distributed.client import FutureCancelledError as CancelledError
from distributed.scheduler import KilledWorker

from . import store as stores
from .choose import Sweep, fit_sweep
from .cluster import connect
from .colour import lab_to_srgb
from .count import image_stats, unpack_stats
from .errors import (
    ImageFailedError,
    NoValidPixelsError,
    PaletteDaskError,
    ParameterError,
    RunIncompleteError,
    StoreError,
    one_line,
)
from .fetch import download_folder
from .fit import LOCAL_FIT_BYTES, check_k, fit_palette
from .pixels import (
    N_FEATURES,
    PixelSpec,
    band_range,
    check_options,
    combine_ranges,
    percentile_range,
    stored_spec,
)
from .read import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageInfo,
    array_image,
    is_array,
    probe,
    read_image,
    resolve_inputs,
)
from .sample import (
    DEFAULT_SAMPLE_SIZE,
    image_candidates,
    merge_candidates,
    next_fraction,
    sample_array,
    sampling_fraction,
    scale_candidates,
)
from .store import PaletteResult

__all__ = ["extract_palette", "sweep_k", "ImageFailedError", "RunIncompleteError"]

Reporter = Callable[[str], None]


def _error_text(name: str, exc: BaseException) -> str:
    """One line naming the image and the problem."""
    return one_line(exc if isinstance(exc, PaletteDaskError) else f"{name}: {type(exc).__name__}: {exc}")


def _check_parameters(k, sample_size, seed, nodata, scale, space) -> None:
    """Options no image could use are usage errors before anything runs, not a failure per image."""
    check_k(k)
    check_options(nodata=nodata, scale=scale, space=space)
    if not isinstance(sample_size, (int, np.integer)) or sample_size < k:
        raise ParameterError(f"sample_size must be a whole number >= k={k}, got {sample_size!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a whole number >= 0, got {seed!r}")


def _split_inputs(inputs) -> tuple[list[str], dict]:
    """Image names, and the arrays among the inputs by their index in the names."""
    if is_array(inputs) or isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)
    if not any(is_array(item) for item in inputs):
        return resolve_inputs(inputs), {}
    names, arrays = [], {}
    for position, item in enumerate(inputs):
        if is_array(item):
            name = getattr(item, "name", None) if hasattr(item, "dims") else None  # xarray's own name
            arrays[len(names)] = item
            names.append(f"array:{name}" if isinstance(name, str) and name else f"array:{position}")
        else:
            names.extend(resolve_inputs([item]))
    return names, arrays


#: Runs of at most this many images, whose decoded pixels total at most
#: KEEP_DECODED_BYTES, decode each image once: the pixels stay in the workers'
#: memory from the sampling pass to the counting pass (a 16 MP PNG: 0.35 s of
#: decoding saved). Bigger runs read their inputs twice, keeping memory flat.
KEEP_DECODED_IMAGES = 64
KEEP_DECODED_BYTES = 512 * 2**20
#: Finished images are written to the store in batches of up to this many,
#: or of what finished in this many seconds (2,000 photos: 12,000 single-chunk
#: writes one by one took 20 s of the 35 s counting pass).
WRITE_BATCH, WRITE_SECONDS = 500, 2.0
#: A kept image of at least this many pixels in fewer chunks than the
#: cluster has threads is split into one band of rows per thread.
SPLIT_PIXELS = 2**20


def extract_palette(
    inputs,
    k: int = 5,
    *,
    store: str | os.PathLike | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
    bands: tuple[int, ...] | None = None,
    nodata: float | None = None,
    scale: str | tuple[float, float] = "dtype",
    space: str = "lab",
    channel_axis: int | None = None,
    labels: bool = False,
    on_error: str = "skip",
    client: Client | str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    downloads: str | None = None,
    report: Reporter | None = None,
) -> PaletteResult:
    """Find the ``k`` dominant colours of images and each colour's share of every image.

    Parameters
    ----------
    inputs : path, URL, glob, directory, list file, array, or a list of them
        See :func:`palette_dask.read.resolve_inputs`; arrays are numpy, dask
        or xarray ``(rows, columns[, bands])`` in any axis order.
    k : int
        Number of colours.
    store : path, optional
        Where the zarr store goes; in memory when None.
    sample_size : int
        Valid pixels sampled (uniformly, seeded) to fit the palette.
    seed : int
        Seed of the sample and of k-means||; the same seed gives the same palette.
    bands : tuple of int, optional
        0-based indices of the three bands shown as red, green, blue (or one, gray);
        needed for images with other than 1, 2, 3 or 4 bands.
    nodata : float, optional
        Pixels whose bands all equal this are left out; overrides GeoTIFF's ``GDAL_NODATA``.
    scale : {"dtype", "minmax", "percentile"} or (low, high)
        How band values map to display 0–255: by the dtype's range (16-bit:
        0–65535), by the least and greatest valid value of each band over all
        images (one extra pass), by each band's 2nd and 98th percentile in the
        sample, or from ``low`` to ``high``.
    space : {"lab", "rgb"}
        Cluster in CIELAB (the default), where distances follow perceived
        differences, or in display sRGB, as the tutorial does; either way the
        palette is given in sRGB, and the store records the space. ``lab``
        gives the lower CIELAB error on every photo measured
        (benchmarks/RESULTS.md, "Palette quality"); ``rgb`` minimises the
        tutorial's RGB inertia.
    channel_axis : int, optional
        The axis of the bands, for zarr arrays and arrays whose layout is not named.
    labels : bool
        Also write a label raster per image to the store (``labels/<i>``).
    on_error : {"skip", "fail"}
        On a bad image, record it and go on (``skip``), or record it and stop
        (``fail``, raising :class:`ImageFailedError`). Images whose tasks kill
        their workers are left pending either way, and :class:`RunIncompleteError`
        says so after the others finish.
    client : distributed.Client or str, optional
        A client, a scheduler address, or None to start a LocalCluster for this run.
    overwrite, resume : bool
        What to do when ``store`` exists: replace it, or finish its pending images
        with its own palette.
    max_pixels : int
        Images decoded whole (PNG, JPEG...) may have at most this many pixels,
        and any block decoded whole (a TIFF tile or strip, a zarr chunk) at
        most ``4 * max_pixels`` bytes.
    chunk_bytes : int
        Target size of a chunk of a tiled image.
    downloads : str, optional
        Folder where URL inputs are downloaded, once each; by default a
        temporary one, removed at the end of the run.
    report : callable, optional
        Called with one line per stage and per failed image; if it has an
        ``update(stage, done, total)`` method (:class:`~palette_dask.progress.Progress`),
        that hears of every image finished.

    Returns
    -------
    PaletteResult
        Read back from the store.

    Examples
    --------
    >>> import os, skimage
    >>> logo = os.path.join(os.path.dirname(skimage.__file__), "data", "logo.png")
    >>> from palette_dask import connect
    >>> with connect(processes=False, n_workers=1, dashboard_address="127.0.0.1:0") as client:
    ...     result = extract_palette(logo, k=5, client=client)
    >>> result.k, round(float(result.proportions.sum()), 6), result.to_dict()["images"]
    (5, 1.0, {'total': 1, 'done': 1, 'failed': 0})
    """
    if labels and store is None:
        raise ParameterError("labels=True needs a store path to write the label rasters to")
    report = report or (lambda message: None)
    names, arrays = _split_inputs(inputs)
    parameters = _parameters(k, sample_size, seed, chunk_bytes, bands, nodata, scale, space, channel_axis)
    parameters["labels"] = bool(labels)
    if on_error not in ("skip", "fail"):
        raise ParameterError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    group = _open_or_create(store, names, parameters, overwrite=overwrite, resume=resume)
    with connect(client) as run_client, run_client.as_current():
        with download_folder(names, downloads, run_client) as folder:
            run_parameters = {**parameters, "on_error": on_error}
            run = _Run(group, names, arrays, run_client, run_parameters, max_pixels, report, folder)
            run.execute()
    return stores.load_result(group)


def _parameters(k, sample_size, seed, chunk_bytes, bands, nodata, scale, space, channel_axis) -> dict:
    """The run's parameters, checked, as stored in the store's attributes."""
    _check_parameters(k, sample_size, seed, nodata, scale, space)
    return {
        "k": int(k),
        "sample_size": int(sample_size),
        "seed": int(seed),
        "chunk_bytes": int(chunk_bytes),
        "bands": None if bands is None else [int(b) for b in bands],
        "nodata": None if nodata is None else float(nodata),
        "scale": scale if isinstance(scale, str) else [float(v) for v in scale],
        "space": space,
        "channel_axis": channel_axis,
    }


def sweep_k(
    inputs,
    ks=range(2, 17),
    *,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
    bands: tuple[int, ...] | None = None,
    nodata: float | None = None,
    scale: str | tuple[float, float] = "dtype",
    space: str = "lab",
    channel_axis: int | None = None,
    client: Client | str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    downloads: str | None = None,
    report: Reporter | None = None,
) -> Sweep:
    """Fit the sample for every ``k`` in ``ks`` and suggest one; nothing is counted or stored.

    The sample is the one :func:`extract_palette` would draw with the same
    options; images that cannot be read are left out (see ``Sweep.failures``).

    Examples
    --------
    >>> import os, skimage
    >>> coffee = os.path.join(os.path.dirname(skimage.__file__), "data", "coffee.png")
    >>> from palette_dask import connect
    >>> with connect(processes=False, n_workers=1, dashboard_address="127.0.0.1:0") as client:
    ...     sweep = sweep_k(coffee, range(2, 9), client=client)
    >>> sweep.ks, 2 <= sweep.suggested <= 8
    ([2, 3, 4, 5, 6, 7, 8], True)
    """
    ks = sorted({int(k) for k in ks})
    if len(ks) < 3:
        raise ParameterError(f"a sweep needs at least three values of k, got {ks}")
    report = report or (lambda message: None)
    names, arrays = _split_inputs(inputs)
    parameters = _parameters(
        max(ks), sample_size, seed, chunk_bytes, bands, nodata, scale, space, channel_axis
    )
    check_k(min(ks))
    group = _open_or_create(None, names, parameters, overwrite=False, resume=False)
    with (
        connect(client) as run_client,
        run_client.as_current(),
        download_folder(names, downloads, run_client) as folder,
    ):
        run = _Run(group, names, arrays, run_client, parameters, max_pixels, report, folder)
        run.open_images(list(range(len(names))))
        sample = run.sample() if run.images else None
        failures = stores.load_result(group).failures
        if sample is None:
            raise NoValidPixelsError(
                f"no valid pixels to sample in {len(names)} input(s)"
                + (f"; first failure: {next(iter(failures.values()))}" if failures else "")
            )
        report(f"fitting k={ks[0]}..{ks[-1]} on {len(sample):,} sampled pixels")
        return fit_sweep(sample, ks, seed=seed, space=space, failures=failures)


def _open_or_create(store, names, parameters, *, overwrite: bool, resume: bool):
    if resume and store is not None:
        stores.check_store_path(store, resume=True)  # a store to finish, or nothing there yet
    if resume and store is not None and stores.is_store(store):
        stores.remove_partial_writes(store)
        group = stores.open_store(store, mode="r+")
        stored = [str(s) for s in group["image_names"][:]]
        if stored != names:
            raise StoreError(f"{store}: holds a run over other inputs; --resume needs the same inputs")
        if group.attrs.get("parameters") != parameters:
            raise StoreError(
                f"{store}: was made with {group.attrs.get('parameters')}, not {parameters}; "
                "--resume needs the same parameters"
            )
        return group
    attrs = {
        "parameters": parameters,
        "space": parameters["space"],
        "inputs": names[:1000],
        "n_inputs": len(names),
    }
    return stores.create_store(store, names, attrs=attrs, overwrite=overwrite)


def _each_completed(futures: dict, on_result: Callable, on_error: Callable, progress=None) -> None:
    """Call ``on_result(index, value)`` or ``on_error(index, exception)`` as each future ends.

    ``progress`` is ``(reporter, stage)``: the reporter's ``update`` hears of each image done.
    """
    index_of = {future.key: index for index, future in futures.items()}
    update = getattr(progress[0], "update", None) if progress else None
    for done, future in enumerate(as_completed(list(futures.values())), start=1):
        index = index_of[future.key]
        if future.status == "finished":
            on_result(index, future.result())
        else:
            on_error(index, future.exception())
        if update is not None:
            update(progress[1], done, len(futures))


#: Failures of the cluster, not of the image: the image is left pending for --resume.
_CLUSTER_FAILURES = (KilledWorker, CancelledError)


def _no_valid_pixels(name: str) -> NoValidPixelsError:
    return NoValidPixelsError(f"{name}: no valid pixels (every pixel is transparent, nodata or NaN)")


class _Run:
    """One run over the pending images of a store: the stages, in order, with per-image failures."""

    def __init__(self, group, names, arrays, client: Client, parameters, max_pixels, report, downloads=None):
        self.group, self.names, self.arrays, self.client = group, names, arrays, client
        self.parameters, self.max_pixels, self.report = parameters, max_pixels, report
        self.downloads = downloads  # the folder of the run's downloaded URLs
        self.images: dict = {}
        self.specs: dict[int, PixelSpec] = {}
        self.unfinished: list[int] = []  # images whose tasks killed their workers

    def fail(self, index: int, exc: BaseException) -> None:
        """Record why an image failed, or, if the cluster failed it, leave it pending for --resume."""
        self.images.pop(index, None)
        self.specs.pop(index, None)
        if isinstance(exc, _CLUSTER_FAILURES):
            self.unfinished.append(index)
            self.report(f"not finished, workers died running it: {self.names[index]} ({type(exc).__name__})")
            return
        text = _error_text(self.names[index], exc)
        stores.write_image_failed(self.group, index, text)
        self.report(f"failed: {text}")
        if self.parameters.get("on_error") == "fail":
            raise ImageFailedError(f"stopped at the first failure (--on-error fail): {text}")

    def finish(self) -> None:
        """Mark the store complete, unless workers died under some images: those stay pending."""
        if self.unfinished:
            raise RunIncompleteError(
                f"{len(self.unfinished)} image(s) not finished because workers died running them "
                f"(first: {self.names[self.unfinished[0]]}); the rest is stored: finish with --resume"
            )
        stores.finish_store(self.group)

    def execute(self) -> None:
        group = self.group
        status = group["image_status"][:]
        pending = [i for i in range(len(self.names)) if status[i] == stores.PENDING]
        if not pending:
            self.report(f"all {len(self.names)} images were already done or failed; nothing to do")
            if not group.attrs.get("complete"):  # stopped between the last image and the end
                stores.finish_store(group)
            return
        self.open_images(pending)
        if "centers" not in group:
            fitted = self.fit() if self.images else None
            if fitted is None:  # no image has a valid pixel
                self.finish()
                return
            if self.parameters["space"] == "lab":
                stores.write_palette(group, lab_to_srgb(fitted.centers), fitted.centers)
            else:
                stores.write_palette(group, fitted.centers)
            group.attrs.update({"sample_inertia": fitted.sample_inertia, "sample_size": fitted.sample_size})
        elif group.attrs.get("display_range"):  # measured by the run this one resumes
            self.set_range(np.array(group.attrs["display_range"]))
        shown = group["centers_rgb" if "centers_rgb" in group else "centers"][:]
        self.count(group["centers"][:], shown)  # the centres in the feature space, and as colours
        self.finish()
        self.report("done")

    def open_images(self, pending: list[int]) -> None:
        """Headers (read on the workers) → specs and lazy arrays; failures recorded."""
        chunk_bytes, channel_axis = self.parameters["chunk_bytes"], self.parameters["channel_axis"]

        def opened(index: int, info: ImageInfo, image=None) -> None:
            try:
                self.specs[index] = stored_spec(info, self.parameters)
            except PaletteDaskError as exc:
                self.fail(index, exc)
                return
            self.images[index] = image if image is not None else read_image(info, chunk_bytes=chunk_bytes)

        self.report(f"reading the headers of {len(pending)} images")
        files = [i for i in pending if i not in self.arrays]
        probes = {
            i: self.client.submit(
                probe,
                self.names[i],
                max_pixels=self.max_pixels,
                channel_axis=channel_axis,
                downloads=self.downloads,
                pure=False,
            )
            for i in files
        }
        for index in (i for i in pending if i in self.arrays):
            try:
                info, image = array_image(
                    self.on_workers(self.arrays[index]),
                    self.names[index],
                    channel_axis=channel_axis,
                    chunk_bytes=chunk_bytes,
                )
            except PaletteDaskError as exc:
                self.fail(index, exc)
                continue
            opened(index, info, image)
        _each_completed(probes, opened, self.fail, (self.report, "reading headers"))

    def on_workers(self, array):
        """An in-memory array (numpy, or xarray over numpy) sent to the workers once, not put in the graph."""
        data = getattr(array, "data", array) if hasattr(array, "dims") else array
        if isinstance(data, da.Array):
            return array
        data = np.asarray(data)
        lazy = da.from_delayed(self.client.scatter(data, hash=False), shape=data.shape, dtype=data.dtype)
        return array.copy(data=lazy) if hasattr(array, "dims") else lazy

    def set_range(self, display_range: np.ndarray) -> None:
        self.specs = {
            i: spec.with_range(display_range[0], display_range[1]) for i, spec in self.specs.items()
        }

    def measure_range(self) -> None:
        """``scale="minmax"``: one pass for each band's least and greatest valid value."""
        self.report(f"measuring the band ranges of {len(self.images)} images")
        futures = {
            i: self.client.compute(band_range(self.images[i], self.specs[i])) for i in sorted(self.images)
        }
        ranges = {}
        _each_completed(futures, ranges.__setitem__, self.fail, (self.report, "measuring ranges"))
        if ranges:
            display_range = combine_ranges(list(ranges.values()))
            self.group.attrs["display_range"] = display_range.tolist()
            self.set_range(display_range)

    def keep_decoded(self) -> None:
        """Small inputs are decoded once and kept on the workers for both passes (sampling, counting).

        An image decoded whole (PNG, JPEG) is one chunk; kept in memory, it is
        split into bands of rows so that every worker thread samples and
        counts a part of it.
        """
        decoded = sum(image.nbytes for image in self.images.values())
        if len(self.images) > KEEP_DECODED_IMAGES or decoded > KEEP_DECODED_BYTES:
            return
        threads = sum(self.client.nthreads().values())

        def split(image: da.Array) -> da.Array:
            if image.npartitions >= threads or image.shape[0] * image.shape[1] < SPLIT_PIXELS:
                return image
            return image.rechunk({0: -(-image.shape[0] // threads), 1: -1})

        self.images = {i: self.client.persist(split(image)) for i, image in self.images.items()}

    def fit(self):
        """Sample the valid pixels and fit the palette; None when no image has a valid pixel."""
        sample = self.sample()
        if sample is None:
            return None
        self.report(f"fitting k={self.parameters['k']} colours on {len(sample):,} sampled pixels")
        return fit_palette(sample, self.parameters["k"], random_state=self.parameters["seed"])

    def sample(self):
        """The sample of valid pixels (numpy when small, else persisted); None when no image has one."""
        size, seed = self.parameters["sample_size"], self.parameters["seed"]
        if self.parameters["scale"] == "minmax":
            self.measure_range()
        fraction = sampling_fraction(
            sum(image.shape[0] * image.shape[1] for image in self.images.values()), size
        )
        self.keep_decoded()
        self.report(f"sampling {size:,} pixels from {len(self.images)} images")
        while fraction is not None:  # a second draw only when masks left too few candidates
            candidates = {
                i: self.client.compute(
                    image_candidates(
                        self.images[i], self.specs[i], i, seed=seed, fraction=fraction, size=size
                    )
                )
                for i in sorted(self.images)
            }
            _each_completed(candidates, lambda index, value: None, self.fail, (self.report, "sampling"))
            parts = [candidates[i] for i in sorted(self.images)]
            merged = self.client.submit(merge_candidates, parts, size, pure=False)
            rows = self.client.submit(len, merged).result()
            fraction = next_fraction(fraction, rows, size)
        if rows == 0:
            for index in sorted(self.images):
                self.fail(index, _no_valid_pixels(self.names[index]))
            return None
        if self.parameters["scale"] == "percentile":  # the sample holds raw values so far
            display_range = self.client.submit(lambda m: percentile_range(m[:, 1:]), merged).result()
            self.group.attrs["display_range"] = display_range.tolist()
            self.set_range(display_range)
            merged = self.client.submit(scale_candidates, merged, next(iter(self.specs.values())), pure=False)
        if rows * N_FEATURES * 4 <= LOCAL_FIT_BYTES:  # a few MB: fitted here, no round trips to the cluster
            return self.client.submit(lambda m: m[:, 1:].astype(np.float32), merged).result()
        return self.client.persist(sample_array(dask.delayed(merged), rows))

    def count(self, centers: np.ndarray, colors: np.ndarray) -> None:
        """One pass: label and count every pixel, image by image; each result is written as it ends.

        ``centers`` are in the clustering space, ``colors`` the palette as shown (sRGB).
        """
        group, names = self.group, self.names

        finished: list[tuple] = []  # written in batches: one small write per image and array is slow
        flushed = [time.monotonic()]

        def flush() -> None:
            if finished:
                stores.write_images_done(group, *zip(*finished))
                finished.clear()
            flushed[0] = time.monotonic()

        def done(index: int, stats: np.ndarray) -> None:
            result = unpack_stats(stats)
            if result.valid == 0:
                self.fail(index, _no_valid_pixels(names[index]))
                return
            squared_error = float(result.squared_error.sum())
            finished.append((index, result.counts, result.masked, squared_error, result.lab_squared_error))
            if len(finished) >= WRITE_BATCH or time.monotonic() - flushed[0] > WRITE_SECONDS:
                flush()

        self.report(f"counting the pixels of {len(self.images)} images")
        counted = {}
        for i in sorted(self.images):
            label_path = (
                stores.create_labels(group, i, self.images[i], colors) if self.parameters["labels"] else None
            )
            counted[i] = self.client.compute(
                image_stats(self.images[i], self.specs[i], centers, label_path, colors=colors)
            )
        try:
            _each_completed(counted, done, self.fail, (self.report, "counting"))
        finally:  # what finished is stored even when the run stops (--on-error fail, Ctrl-C)
            flush()
