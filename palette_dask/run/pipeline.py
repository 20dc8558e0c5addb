"""Pipeline: open → sample → fit → count → store, wired once for every shell.

The CLI, the workflows and the notebooks all call :func:`extract_palette`::

    config = RunConfig(k=5, ...)                    # the options, checked once
    opened = open_images(run, pending)              # read, decode, sample: one task per batch
    sample = sample_run(run, opened)                # seeded, uniform, from every image
    fitted = fit_palette(sample, config.k)          # dask-ml k-means||, on the sample
    count_images(run, opened, centers, colors)      # one pass; each batch stored as it ends

The images are divided into batches, the chunks of the store's per-image
arrays (:func:`~palette_dask.outputs.store.default_batch_size`). Every pass submits
one task per batch, which reads, samples or counts the batch's images one
after another, so the driver's work and memory grow with the batches, not
the images. Images too big for a batch (mosaics), and arrays given to the
API, are read tile by tile, every chunk by a task of its own, and join their
batch's results. An image that cannot be read, or has no valid pixels, fails
alone, recorded in the store with its reason, and the others finish.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np
from distributed import Client

from ..errors import (
    Failure,
    ImageFailedError,
    NoValidPixelsError,
    PaletteDaskError,
    PaletteDaskWarning,
    ParameterError,
    RunIncompleteError,
    StoreError,
    image_error,
    no_valid_pixels,
    one_line,
    plural,
)
from ..inputs.fetch import download_folder
from ..inputs.read import array_image, cell_grid, drop_pixels, open_batch, read_image
from ..inputs.sources import is_array, resolve_inputs
from ..kernels.colour import lab_to_srgb, srgb_to_lab
from ..kernels.count import LOOKUP_PIXELS, BatchCounts, batch_stats, image_stats, unpack_stats
from ..kernels.fit import LOCAL_FIT_BYTES, fit_palette
from ..kernels.per_image import image_parts, palette_of_parts
from ..kernels.pixels import N_FEATURES, PixelSpec, band_range, combine_ranges, percentile_range, run_spec
from ..kernels.sample import (
    as_features,
    cell_candidates,
    cell_count,
    cell_share,
    image_candidates,
    merge_candidates,
    next_fraction,
    sample_batch,
    sampling_fraction,
)
from ..options import DEFAULT_K, RunConfig, check_k, takes_options
from ..outputs import store as stores
from ..outputs.geotiff import check_geotiff_folder, write_label_geotiffs
from ..outputs.store import PaletteResult
from .choose import Sweep, fit_sweep
from .cluster import connect
from .tasks import CLUSTER_FAILURES, Pass

__all__ = ["RunConfig", "extract_palette", "sweep_k", "ImageFailedError", "RunIncompleteError"]

Reporter = Callable[[str], None]

#: Decoded images are kept in the workers' memory from the sampling pass to the
#: counting pass (each image decoded once) when they total at most this share
#: of the workers' memory; bigger runs decode twice and keep memory flat.
KEEP_DECODED_SHARE = 0.25
#: ... or this many bytes when the workers have no memory limit.
KEEP_DECODED_BYTES = 2**30
#: An image read tile by tile, of at least this many pixels in fewer chunks
#: than the cluster has threads, is split into one band of rows per thread
#: when it is kept in memory (a 16 MP PNG is one chunk when decoded).
SPLIT_PIXELS = 2**20
#: A sample of data wider than 8 bits whose brightest 1% is darker than this CIELAB L* is near black:
#: a 0-10,000 reflectance scene shown by its type's range, 0-65,535, reaches L* 15 at most.
DARK_LIGHTNESS = 20.0
#: Images read tile by tile are kept in memory between passes when at most this many, this big.
KEEP_TILED_IMAGES, KEEP_TILED_BYTES = 64, 512 * 2**20


@takes_options("run")
def extract_palette(
    inputs,
    k: int = DEFAULT_K,
    *,
    store: str | os.PathLike | None = None,
    client: Client | str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    downloads: str | None = None,
    labels_geotiff: str | os.PathLike | None = None,
    report: Reporter | None = None,
    **options,
) -> PaletteResult:
    """Find the ``k`` dominant colours of images and each colour's share of every image.

    Parameters
    ----------
    inputs : path, URL, glob, directory, list file, array, or a list of them
        See :func:`palette_dask.inputs.read.resolve_inputs`; arrays are numpy, dask
        or xarray ``(rows, columns[, bands])`` in any axis order.
    store : path, optional
        Where the zarr store goes; in memory when None.
    client : distributed.Client or str, optional
        A client, a scheduler address, or None to start a LocalCluster for this run.
    overwrite, resume : bool
        What to do when ``store`` exists: replace it (only a palette_dask
        store), or finish its pending batches with its own palette.
    downloads : str, optional
        Folder where URL inputs are downloaded, once each; by default a
        temporary one, removed at the end of the run.
    labels_geotiff : path, optional
        Also write every image's label raster as a tiled GeoTIFF in this
        folder, georeferenced like a TIFF source (see :mod:`palette_dask.outputs.geotiff`);
        implies ``labels``.
    report : callable, optional
        Called with one line per stage and per failed image; if it has an
        ``update(stage, done, total)`` method (:class:`~palette_dask.run.progress.Progress`),
        that hears of the images finished, batch by batch. Without one, images
        that failed are announced at the end by a :class:`PaletteDaskWarning`.
    {options}

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
    labels = options.pop("labels", False) or labels_geotiff is not None
    config = RunConfig(k=k, labels=labels, **options)
    if labels and store is None:
        raise ParameterError("labels=True needs a store path to write the label rasters to")
    names, arrays = _split_inputs(inputs)
    if labels_geotiff is not None:
        check_geotiff_folder(labels_geotiff, names, replace=overwrite or resume)
    # a store this run makes (not one it resumes, nor a folder that was there) goes if it keeps nothing
    created = store is not None and not (resume and stores.is_store(store))
    created = created and (not os.path.lexists(store) or stores.is_store(store))
    group = _open_or_create(store, names, config, overwrite=overwrite, resume=resume)
    try:
        with connect(client) as run_client, run_client.as_current():
            with download_folder(names, downloads, run_client) as folder:
                run = Run(group, names, arrays, run_client, config, report or _silent, folder)
                _execute(run)
                if labels_geotiff is not None:  # every time: a resumed run writes them all again
                    done = group["image_status"][:] == stores.DONE
                    run.report(f"writing {int(done.sum()):,} GeoTIFF label rasters to {labels_geotiff}")
                    root, batches = str(group.store.root), stores.batches(group)
                    write_label_geotiffs(run_client, root, names, batches, done, labels_geotiff, folder)
        result = stores.load_result(group)
    finally:
        if created and not (group["image_status"][:] == stores.DONE).any():
            stores.remove_store(store)  # it holds nothing to keep or resume: the retry starts afresh
            if not isinstance(sys.exc_info()[1], KeyboardInterrupt):  # Ctrl-C: the caller says what it left
                (report or _silent)(f"no image was stored: {store} is not kept")
    if report is None and result.failures:  # a caller who follows no progress still hears of them
        first = result.failures[0]
        warnings.warn(
            f"{len(result.failures):,} of {plural(len(names), 'image')} failed (first: {first}); "
            "result.failures names each with its reason",
            PaletteDaskWarning,
            stacklevel=2,
        )
    return dataclasses.replace(result, store=None) if result.store and not os.path.exists(store) else result


def _execute(run: Run) -> None:
    """The stages, in order, over the store's pending batches."""
    group = run.group
    pending = run.pending_batches()
    if not pending:
        run.report(f"all {plural(len(run.names), 'image')} were already done or failed; nothing to do")
        if not group.attrs.get("complete"):  # stopped between the last batch and the end
            stores.finish_store(group)
        return
    opened = open_images(run, pending, sample="centers" not in group)
    if "centers" not in group:  # a resumed run counts with the palette it has
        fit_and_store_palette(run, opened)
    if "centers" in group:
        centers_rgb = group["centers_rgb" if "centers_rgb" in group else "centers"][:]  # older stores: one
        count_images(run, opened, group["centers"][:], centers_rgb)
    else:  # no image has a valid pixel: every batch is stored with its images' failures
        count_images(run, opened, np.zeros((0, N_FEATURES), np.float32), np.zeros((0, 3)))
    run.finish()
    run.report("done")


def fit_and_store_palette(run: Run, opened: Opened) -> None:
    """Sample, fit, and write the palette to the store; nothing when no image has a valid pixel."""
    sample = sample_run(run, opened)
    if sample is None:
        return
    run.report(f"fitting k={run.config.k} colours on {plural(len(sample), 'sampled pixel')}")
    fitted = fit_palette(sample, run.config.k, random_state=run.config.seed, n_init=run.config.n_init)
    centers_rgb = lab_to_srgb(fitted.centers) if run.config.space == "lab" else fitted.centers
    stores.write_palette(run.group, fitted.centers, centers_rgb)
    run.group.attrs.update({"sample_inertia": fitted.sample_inertia, "sample_size": fitted.sample_size})


@takes_options("input")
def sweep_k(
    inputs,
    ks=range(2, 17),
    *,
    client: Client | str | None = None,
    downloads: str | None = None,
    report: Reporter | None = None,
    **options,
) -> Sweep:
    """Fit the sample for every ``k`` in ``ks`` and suggest one; nothing is counted or stored.

    The sample is the one :func:`extract_palette` would draw with the same
    options; images that cannot be read are left out (see ``Sweep.failures``).

    Parameters
    ----------
    inputs
        As :func:`extract_palette`'s.
    ks : iterable of int
        The values of ``k`` tried: at least three.
    client, downloads, report
        As :func:`extract_palette`'s.
    {options}

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
    check_k(min(ks))
    config = RunConfig(k=max(ks), **options)
    names, arrays = _split_inputs(inputs)
    group = _open_or_create(None, names, config, overwrite=False, resume=False)
    with connect(client) as run_client, run_client.as_current():
        with download_folder(names, downloads, run_client) as folder:
            run = Run(group, names, arrays, run_client, config, report or _silent, folder)
            opened = open_images(run, run.pending_batches())
            sample = sample_run(run, opened)
    failures = [Failure.of(names[index], reason) for index, reason in sorted(run.failures.items())]
    if sample is None:
        raise NoValidPixelsError(
            f"no valid pixels to sample in {plural(len(names), 'input')}"
            + (f"; first failure: {failures[0]}" if failures else "")
        )
    run.report(f"fitting k={ks[0]}..{ks[-1]} on {plural(len(sample), 'sampled pixel')}")
    return fit_sweep(
        sample, ks, seed=config.seed, space=config.space, failures=failures, n_init=config.n_init
    )


def _silent(message: str) -> None:
    pass


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


def _open_or_create(store, names, config: RunConfig, *, overwrite: bool, resume: bool):
    parameters = config.parameters
    if resume and store is not None:
        stores.check_store_path(store, resume=True)  # a store to finish, or nothing there yet
    if resume and store is not None and stores.is_store(store):
        stores.remove_partial_writes(store)
        group = stores.open_store(store, mode="r+")
        if group["image_status"].shape[0] != len(names) or not _same_names(group, names):
            raise StoreError(f"{store}: holds a run over other inputs; resuming needs the same inputs")
        stored = group.attrs.get("parameters") or {}
        if stored != parameters:
            differ = ", ".join(
                f"{name} {stored.get(name)!r} (now {parameters.get(name)!r})"
                for name in sorted(set(stored) | set(parameters))
                if stored.get(name) != parameters.get(name)
            )
            raise StoreError(f"{store}: was made with {differ}; resuming needs the same parameters")
        return group
    attrs = {"parameters": parameters, "space": config.space, "inputs": names[:1000], "n_inputs": len(names)}
    return stores.create_store(store, names, attrs=attrs, overwrite=overwrite, batch_size=config.batch_size)


def _same_names(group, names: list[str]) -> bool:
    stored = group["image_names"]
    return all(
        [str(s) for s in stored[rows.start : rows.stop]] == names[rows.start : rows.stop]
        for rows in stores.batches(group)
    )


@dataclass
class Run:
    """What the stages share: the store, the inputs, the client, the configuration, and the failures seen."""

    group: object
    names: list[str]
    arrays: dict
    client: Client
    config: RunConfig
    report: Reporter
    downloads: str | None = None
    display_range: np.ndarray | None = None
    failures: dict = field(default_factory=dict)  # index → reason, each reported once
    unfinished: list = field(default_factory=list)  # batches whose workers died

    def __post_init__(self):
        stored = self.group.attrs.get("display_range")  # measured by the run this one resumes
        self.display_range = None if stored is None else np.asarray(stored)

    def pending_batches(self) -> list[range]:
        """The batches with an image still pending (a batch is always done again whole)."""
        status = self.group["image_status"][:]
        pending = status == stores.PENDING
        return [rows for rows in stores.batches(self.group) if pending[rows.start : rows.stop].any()]

    def failed(self, index: int, reason: str, *, stored: bool = False) -> None:
        """Report a failed image once; with ``on_error="fail"`` record it (unless ``stored``) and stop."""
        if index in self.failures:
            return
        self.failures[index] = reason
        if self.config.on_error == "fail":  # its error says which and why: one line, not two
            if not stored:
                stores.write_image_failed(self.group, index, reason)
            raise ImageFailedError(
                f"stopped at the first failure (--on-error fail, on_error='fail'): {reason}"
            )
        self.report(f"failed: {reason}")

    def finish(self) -> None:
        """Mark the store complete, unless workers died under some batches: those stay pending."""
        if self.unfinished:
            first = self.names[self.unfinished[0].start]
            raise RunIncompleteError(
                f"{sum(len(rows) for rows in self.unfinished)} image(s) not finished because workers died "
                f"running their batch (first: {first}); the rest is stored: "
                "finish with --resume (resume=True)"
            )
        stores.finish_store(self.group)

    def died(self, stage: str, key) -> RunIncompleteError:
        """Workers died under a pass that needs every image (reading, sampling, ranges): the run stops.

        ``key`` is the batch (a range) or the tiled image (an index) whose tasks killed them.
        """
        first = self.names[key.start if isinstance(key, range) else key]
        return RunIncompleteError(
            f"image(s) not finished because workers died {stage} them (first: {first}); "
            "what is stored stays: run again with --resume (resume=True)"
        )

    def progress(self, stage: str, done: int, total: int) -> None:
        update = getattr(self.report, "update", None)
        if update is not None:
            update(stage, done, total)


@dataclass
class Opened:
    """The images of the pending batches after the first pass, ready to be sampled further and counted.

    ``batches`` maps each batch's images to the future of its
    :class:`~palette_dask.inputs.read.Batch` (headers, and the decoded images while
    they are kept); ``tiled`` the images read tile by tile to their lazy
    arrays; ``candidates`` is the sample of the batches' own images so far.
    """

    batches: dict  # range → Future of a Batch
    tiled: dict = field(default_factory=dict)  # index → (ImageInfo, dask array)
    pixels: int = 0
    kept: bool = False  # the tiled images are held in the workers' memory
    keep: bool = True  # the batches keep their decoded images (within the budget) for the counting pass
    candidates: np.ndarray = field(default_factory=lambda: np.empty((0, 1 + N_FEATURES)))
    band_ranges: list = field(default_factory=list)
    nodata: set = field(default_factory=set)  # no-data values of the files' headers, applied
    dtypes: set = field(default_factory=set)

    def submit(self, tasks: Pass, run: Run, index: int, lazy) -> None:
        """Submit ``lazy(info, image)``, a dask computation over a tiled image, to a pass.

        Should the cluster lose it, it is submitted again over the image made
        anew; an array given to the API goes in the task graph this time,
        where no worker leaving can lose it (see :func:`_array_entry`).
        """

        def again():
            if index in run.arrays:
                self.tiled[index] = _array_entry(run, index, scatter=False)
            else:
                info = self.tiled[index][0]
                self.tiled[index] = (info, read_image(info, chunk_bytes=run.config.chunk_bytes))
            return run.client.compute(lazy(*self.tiled[index]))

        tasks.submit(index, lambda: run.client.compute(lazy(*self.tiled[index])), again=again)

    def spec(self, run: Run, index: int, *, ranged: bool = True) -> PixelSpec:
        """The spec of a tiled image; with ``ranged=False``, without a measured display range."""
        return run_spec(self.tiled[index][0], run.config, run.display_range if ranged else None)


def open_images(run: Run, pending: list[range], *, sample: bool = True) -> Opened:
    """First pass, a task per batch: read headers, decode and sample the small images, keep them if they fit.

    With ``sample=False`` (a resumed run, whose palette is stored) nothing is
    sampled. Images too big for a batch, and arrays, become lazy tile-chunked arrays.
    The decoded images stay on the workers for the counting pass while they
    total at most the keep budget (:data:`KEEP_DECODED_SHARE`); past it,
    every batch lets its images go and the counting pass decodes them again.
    """
    config, client = run.config, run.client
    n_images = sum(len(rows) for rows in pending)
    stage = "reading and sampling" if sample else "reading"
    run.report(f"{stage} {plural(n_images, 'image')} in {plural(len(pending), 'batch', 'batches')}")
    if config.exclude:  # say what is done to the data
        colours = ", ".join(config.exclude)
        run.report(f"pixels within CIEDE2000 {config.exclude_within:g} of {colours} are left out, as masked")
    opened, tasks = Opened({}), Pass()

    def first_pass(rows: range):
        def submit():  # the batch, read (and kept while the budget allows), then sampled
            opened.batches[rows] = batch = _read_batch(run, rows, keep=opened.keep)
            return client.submit(
                sample_batch, batch, config, seed=config.seed,
                size=config.sample_size if sample else 0, ranges=sample and config.scale == "minmax",
                pure=False,
            )  # fmt: skip

        return submit

    for rows in pending:
        tasks.submit(rows, first_pass(rows))
    kept, budget, done = 0, _keep_budget(client), 0
    for rows, summary, error in tasks:
        if error is not None:
            _pass_failed(run, opened, "reading", rows, error)
        opened.pixels += summary.pixels
        opened.candidates = merge_candidates([opened.candidates, summary.candidates], config.sample_size)
        if summary.band_range is not None:
            opened.band_ranges.append(summary.band_range)
        opened.nodata.update(summary.nodata)
        opened.dtypes.update(summary.dtypes)
        for index, reason in summary.failures:
            run.failed(index, reason)
        for index, info in summary.tiled:
            opened.tiled[index] = (info, read_image(info, chunk_bytes=config.chunk_bytes))
        kept += summary.nbytes
        if kept > budget and opened.keep:  # too much to keep: every batch lets go, and decodes again to count
            # nothing else holds the batches that kept their pixels: the workers free them
            opened.batches = {r: client.submit(drop_pixels, f, pure=False) for r, f in opened.batches.items()}
            opened.keep = False
        done += len(rows)
        run.progress(stage, done, n_images)
    for rows in pending:
        for index in (i for i in rows if i in run.arrays):
            try:
                opened.tiled[index] = _array_entry(run, index)
            except PaletteDaskError as exc:  # an array whose axes cannot be told apart: it alone fails
                run.failed(index, one_line(exc))
    for index, (info, _) in list(opened.tiled.items()):
        try:
            run_spec(info, config)
        except PaletteDaskError as exc:  # bands that cannot be read as asked: this image alone fails
            del opened.tiled[index]
            run.failed(index, one_line(exc))
    opened.pixels += sum(info.pixels for info, _ in opened.tiled.values())
    opened.dtypes.update(info.dtype for info, _ in opened.tiled.values())
    if config.nodata is None:  # the arrays' own no-data (xarray's _FillValue, rioxarray's nodata)
        opened.nodata.update(info.nodata for i, (info, _) in opened.tiled.items() if i in run.arrays)
        opened.nodata.discard(None)
    if opened.nodata:  # say what is done to the data, and keep it in the store
        values = ", ".join(f"{value:g}" for value in sorted(opened.nodata))
        run.report(
            f"pixels whose colour bands all equal the no-data value their input declares ({values}: "
            "GDAL_NODATA, _FillValue) are left out; --nodata (nodata=) overrides it"
        )
        run.group.attrs["nodata_applied"] = sorted(opened.nodata)
    _keep_tiled(run, opened)
    return opened


def _read_batch(run: Run, rows: range, *, keep: bool):
    """Submit the task that reads a batch's headers (and with ``keep`` decodes and keeps its images)."""
    config = run.config
    return run.client.submit(
        open_batch,
        [None if i in run.arrays else run.names[i] for i in rows],
        rows.start,
        keep=keep,
        chunk_bytes=config.chunk_bytes,
        max_pixels=config.max_pixels,
        channel_axis=config.channel_axis,
        downloads=run.downloads,
        pure=False,
    )


def _array_entry(run: Run, index: int, *, scatter: bool = True) -> tuple:
    """An array given to the API as a tiled image: its ImageInfo and lazy array.

    An in-memory array is sent to the workers once (``scatter``), where no
    worker can recompute it if the one holding it leaves; without ``scatter``
    it is put in the task graph, whence dask recomputes any lost chunk.
    """
    array = run.arrays[index]
    return array_image(
        _on_workers(run.client, array) if scatter else array,
        run.names[index],
        channel_axis=run.config.channel_axis,
        chunk_bytes=run.config.chunk_bytes,
    )


def _keep_budget(client: Client) -> float:
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    return KEEP_DECODED_SHARE * sum(limits) if all(limits) and limits else KEEP_DECODED_BYTES


def _keep_tiled(run: Run, opened: Opened) -> None:
    """Few, small tiled images are decoded once and kept on the workers for both passes.

    An image decoded whole (a big PNG) is one chunk; kept in memory, it is
    split into bands of rows so that every worker thread samples and counts a part of it.
    """
    tiled = opened.tiled
    decoded = sum(image.nbytes for _, image in tiled.values())
    if not tiled or len(tiled) > KEEP_TILED_IMAGES or decoded > KEEP_TILED_BYTES:
        return
    threads = sum(run.client.nthreads().values())

    def split(image: da.Array) -> da.Array:
        if image.npartitions >= threads or image.shape[0] * image.shape[1] < SPLIT_PIXELS:
            return image
        return image.rechunk({0: -(-image.shape[0] // threads), 1: -1})

    for index, (info, image) in tiled.items():
        tiled[index] = (info, run.client.persist(split(image)))
    opened.kept = True


def _on_workers(client: Client, array):
    """An in-memory array (numpy, or xarray over numpy) sent to the workers once, not put in the graph."""
    data = getattr(array, "data", array) if hasattr(array, "dims") else array
    if isinstance(data, da.Array):
        return array
    data = np.asarray(data)
    lazy = da.from_delayed(client.scatter(data, hash=False), shape=data.shape, dtype=data.dtype)
    return array.copy(data=lazy) if hasattr(array, "dims") else lazy


def _pass_failed(run: Run, opened: Opened, stage: str, key, exc: BaseException) -> None:
    """A task of a pass over every image failed: a tiled image fails alone, dead workers stop the run.

    A batch's task catches its images' errors itself, so its failure is not an image's fault.
    """
    if isinstance(exc, CLUSTER_FAILURES):
        raise run.died(stage, key)
    if isinstance(key, range):
        raise exc
    opened.tiled.pop(key, None)
    run.failed(key, image_error(run.names[key], exc))


def measure_range(run: Run, opened: Opened) -> None:
    """``scale="minmax"``: each band's least and greatest valid value over all images.

    The batches measured theirs in the first pass; tiled images take a pass of their own.
    """
    config, tasks = run.config, Pass()
    for index in opened.tiled:
        opened.submit(tasks, run, index, lambda info, image: band_range(image, run_spec(info, config)))
    ranges = list(opened.band_ranges)
    for index, found, error in tasks:
        if error is not None:
            _pass_failed(run, opened, "measuring", index, error)
            continue
        ranges.append(found)
    if ranges:
        run.display_range = combine_ranges(ranges)
        run.group.attrs["display_range"] = run.display_range.tolist()


def sample_run(run: Run, opened: Opened) -> np.ndarray | None:
    """The sample of valid pixels, ``(m, 3)`` float32 in the clustering space; None when there is none.

    Every pixel of every image has a key (:func:`~palette_dask.kernels.sample.pixel_keys`);
    the sample is the ``sample_size`` valid pixels with the smallest keys,
    whatever the batches, chunks and workers. The batches drew theirs in the
    first pass. A mosaic read tile by tile is sampled from every chunk, by
    default, so the sample is uniform over every valid pixel whatever the
    layout; with ``sample_chunks`` below 1, from a seeded share of its own
    chunks (:func:`~palette_dask.kernels.sample.cell_candidates`), unless it is kept
    in memory. Either way each part keeps its pixels with keys below a
    threshold (a little above ``size / pixels``), raised and drawn again
    until no pixel of the sample can be missing.
    """
    config, client, size = run.config, run.client, run.config.sample_size
    measured = config.scale in ("minmax", "percentile")  # candidates are raw band values until then
    if config.scale == "minmax":
        measure_range(run, opened)
    merged, fraction = opened.candidates, sampling_fraction(opened.pixels, size)
    # with sample_chunks < 1, mosaics not kept in memory whose own chunks can be read alone are
    # sampled from a share of them; by default every chunk is read
    chosen = config.sample_chunks < 1 and not opened.kept
    subset = {i: info for i, (info, _) in opened.tiled.items() if chosen and cell_grid(info)}
    share = cell_share(sum(cell_count(info) for info in subset.values()), config.sample_chunks)
    while opened.tiled:
        part = f", {share:.1%} of the chunks of {len(subset)}" if subset and share < 1 else ""
        run.report(f"sampling {plural(len(opened.tiled), 'image')} read tile by tile{part}")
        tasks, options = Pass(), {"seed": config.seed, "fraction": fraction, "size": size}
        for index in opened.tiled:

            def candidates(info, image, index=index, share=share, options=options):
                spec = opened.spec(run, index, ranged=not measured)
                if index in subset:  # a share of its cells, each read alone
                    return cell_candidates(
                        info, spec, index, share=share, cell_bytes=config.chunk_bytes, **options
                    )
                return image_candidates(image, spec, index, **options)

            opened.submit(tasks, run, index, candidates)
        found = opened.candidates
        for index, part, error in tasks:
            if error is not None:
                _pass_failed(run, opened, "sampling", index, error)
                subset.pop(index, None)
                continue
            found = merge_candidates([found, part], size)
        merged = found
        below = int((merged[:, 0] < fraction).sum())
        if fraction < 1.0 and below < size:  # a pixel of the sample may be missing: a higher threshold
            fraction = next_fraction(fraction, below, size)
        elif subset and share < 1.0 and (len(merged) < size or merged[-1, 0] >= share):
            share = min(1.0, 4 * share)  # too few cells for an even chance to every pixel: more, drawn again
        else:
            break
    if len(merged) == 0:
        return None
    if measured:  # the candidates hold raw values so far
        if config.scale == "percentile":
            run.display_range = percentile_range(merged[:, 1:])
            run.group.attrs["display_range"] = run.display_range.tolist()
        _check_range(run)
        merged = as_features(merged, PixelSpec((0, 1, 2), space=config.space).with_range(*run.display_range))
    sample = merged[:, 1:].astype(np.float32)
    _check_darkness(run, opened, sample)
    if sample.nbytes <= LOCAL_FIT_BYTES:  # a few MB: fitted here, no round trips to the cluster
        return sample
    parts = np.array_split(sample, -(-len(sample) // 25_000))  # sent to the workers, not put in the graph
    lazy = [da.from_delayed(client.scatter(p, hash=False), shape=p.shape, dtype=p.dtype) for p in parts]
    return client.persist(da.concatenate(lazy))


def _check_darkness(run: Run, opened: Opened, sample: np.ndarray) -> None:
    """Warn when data wider than 8 bits shown by their type's range leave the sample near black."""
    wide = sorted(dtype for dtype in opened.dtypes if dtype not in ("uint8", "bool"))
    if run.config.scale != "dtype" or not wide or not len(sample):
        return
    lightness = sample[:, 0] if run.config.space == "lab" else srgb_to_lab(sample.astype(np.float64))[:, 0]
    brightest = float(np.percentile(lightness, 99))
    if brightest < DARK_LIGHTNESS:
        warnings.warn(
            f"the sampled pixels are near black (99% below CIELAB L* {brightest:.0f}): "
            f"{', '.join(wide)} data fill a small part of their type's range, which --scale dtype "
            "shows as 0-255; --scale percentile (or LOW,HIGH) spreads the values found",
            PaletteDaskWarning,
            stacklevel=2,
        )


def _check_range(run: Run) -> None:
    """Warn of a band that --scale minmax or percentile finds constant: it shows as 0."""
    low, high = np.asarray(run.display_range, np.float64)
    for band in np.flatnonzero(high <= low):
        warnings.warn(
            f"band {band + 1} of the colours is constant ({low[band]:g}) over the valid pixels: "
            f"--scale {run.config.scale} shows it as 0",
            PaletteDaskWarning,
            stacklevel=2,
        )


def count_images(run: Run, opened: Opened, centers: np.ndarray, centers_rgb: np.ndarray) -> None:
    """One pass: label and count every pixel; each batch is written whole as soon as it is finished.

    ``centers`` are in the clustering space, ``centers_rgb`` the same as sRGB
    floats (rounded, the colours shown); with no centres (no image had a
    valid pixel) every image is stored as failed.
    """
    config, client, group = run.config, run.client, run.group
    k = len(centers)
    labels_store = str(group.store.root) if config.labels and k else None
    if labels_store is not None:
        group.require_group("labels")
    readable = sum(len(rows) for rows in opened.batches) - len(run.failures)  # those that failed are not
    run.report(f"counting the pixels of {plural(readable, 'image')}")
    lookup = opened.pixels >= LOOKUP_PIXELS  # many pixels: 8-bit colours looked up in a table of all
    arguments = (config, run.display_range, centers, centers_rgb, labels_store, lookup)
    tasks = Pass()
    for rows, batch in opened.batches.items():
        tasks.submit(
            rows,
            lambda batch=batch: client.submit(batch_stats, batch, *arguments, pure=False),
            again=lambda rows=rows: client.submit(
                batch_stats, _read_batch(run, rows, keep=False), *arguments, pure=False
            ),
        )
    label_paths = {}  # index → level 0 of a tiled image's label raster, written by its counting tasks
    for index in opened.tiled if k else ():
        label_paths[index] = (
            stores.create_labels(group, index, opened.tiled[index][1], centers_rgb) if labels_store else None
        )

        def count(info, image, index=index):
            spec, labels = opened.spec(run, index), label_paths[index]
            stats = image_stats(image, spec, centers, labels, centers_rgb=centers_rgb, lookup=lookup)
            if not config.per_image:
                return stats
            # its own palette from its chunks' bins, in the same graph: each chunk read once for both
            parts, colours = image_parts(image, spec), config.per_image
            own = dask.delayed(palette_of_parts)(parts, colours, seed=config.seed, index=index)
            return dask.delayed(tuple)([stats, own])

        opened.submit(tasks, run, index, count)
    batch_of = {i: rows for rows in opened.batches for i in opened.tiled if i in rows}
    waiting = {rows: {i for i, r in batch_of.items() if r == rows} if k else set() for rows in opened.batches}
    total, done = sum(len(rows) for rows in opened.batches), 0
    opened.batches = {}  # the workers may free each batch's kept images once it is counted
    results: dict[range, BatchCounts] = {}
    tiled: dict[int, object] = {}  # index → its counts or why it failed, until its batch is written
    for key, found, error in tasks:
        rows = key if isinstance(key, range) else batch_of[key]
        if rows in run.unfinished:
            continue
        if isinstance(error, CLUSTER_FAILURES):  # lost for good: the batch stays pending, for --resume
            run.unfinished.append(rows)
            run.report(f"not finished, workers died counting the batch of {run.names[rows.start]}")
            continue
        if isinstance(key, range):
            if error is not None:
                raise error  # a batch's task catches its images' errors: this is not an image's fault
            results[rows] = found
        else:
            waiting[rows].discard(key)
            if error is not None:
                tiled[key] = error
            else:  # its counts, and its own palette
                stats, own = found if config.per_image else (found, None)
                tiled[key] = (unpack_stats(stats), own)
            if label_paths[key] and error is None:  # its pyramid, before its batch is stored
                stores.write_label_pyramid(label_paths[key])
        if rows in results and not waiting[rows]:
            result = results.pop(rows)
            for index in rows:
                if result.status[index - rows.start] == stores.PENDING:
                    _fill(result, index, tiled.pop(index, None) or run.failures.get(index), run.names[index])
            stores.write_batch(group, result)
            done += len(rows)
            run.progress("counting", done, total)
            for position in np.flatnonzero(result.status == stores.FAILED):
                run.failed(rows.start + int(position), result.errors[position], stored=True)


def _fill(result: BatchCounts, index: int, outcome, name: str) -> None:
    """Fill the row of an image its batch's task did not count: a tiled image's counts, or why it failed.

    ``outcome`` is ``(counts, own palette or None)``, the reason (a str or an
    exception), or None when there was no palette to count with.
    """
    row = index - result.start
    if isinstance(outcome, str):
        result.fail(row, outcome)
    elif isinstance(outcome, BaseException):
        result.fail(row, image_error(name, outcome))
    elif outcome is None or outcome[0].valid == 0:
        result.fail(row, one_line(no_valid_pixels(name)))
    else:
        result.done(row, *outcome)
