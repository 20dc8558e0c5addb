"""State of a run: the driver's :class:`Run` and what the first pass found, :class:`Opened`.

:func:`split_inputs` and :func:`open_or_create` turn a call's inputs and
store into a run's names, arrays and store group (new, or one to resume).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import dask.array as da
import numpy as np
from distributed import Client

from ..errors import ImageFailedError, RunIncompleteError, StoreError, plural
from ..inputs.read import array_image, read_image
from ..inputs.source import Source
from ..inputs.sources import is_array, resolve_sources
from ..kernels.pixels import N_FEATURES, PixelSpec, run_spec
from ..options import OPTIONS, RunConfig
from ..outputs import store as stores
from .tasks import Pass

Reporter = Callable[[str], None]


def split_inputs(inputs) -> tuple[list[str], dict, frozenset]:
    """Image names, the arrays among the inputs by their index in the names, and the names of zarr nodes.

    Each input is classified here, once (:func:`~palette_dask.inputs.sources.resolve_sources`):
    the driver keeps the names and the few zarr nodes among them, and
    :meth:`Run.source` gives each task its :class:`~palette_dask.inputs.source.Source` again.
    """
    if is_array(inputs) or isinstance(inputs, (str, os.PathLike, Source)):
        inputs = [inputs]
    inputs = list(inputs)
    if not any(is_array(item) for item in inputs):
        sources = resolve_sources(inputs)
        return [s.text for s in sources], {}, frozenset(s.text for s in sources if s.zarr)
    names, arrays, zarr = [], {}, set()
    for position, item in enumerate(inputs):
        if is_array(item):
            name = getattr(item, "name", None) if hasattr(item, "dims") else None  # xarray's own name
            arrays[len(names)] = item
            names.append(f"array:{name}" if isinstance(name, str) and name else f"array:{position}")
            continue
        for source in resolve_sources([item]):
            names.append(source.text)
            if source.zarr:
                zarr.add(source.text)
    return names, arrays, frozenset(zarr)


def open_or_create(store, names, config: RunConfig, *, overwrite: bool, resume: bool, explicit=None):
    """The run's store group and config: ``store`` made anew (in memory when None), or resumed.

    A store to resume must hold the same inputs, and the parameters the
    caller set (``explicit``; every one where None) must be its own, else a
    :class:`StoreError` says which differ; the others are the store's (see
    :func:`store_config`).
    """
    parameters = config.parameters
    if resume and store is not None:
        stores.check_store_path(store, resume=True)  # a store to finish, or nothing there yet
    if resume and store is not None and stores.is_store(store):
        stores.remove_partial_writes(store)
        group = stores.open_store(store, mode="r+")
        if group["image_status"].shape[0] != len(names) or not _same_names(group, names):
            raise StoreError(
                f"{store}: holds a run over other inputs; resuming needs the same inputs "
                "(--append adds images to it)"
            )
        if explicit is None:
            _check_parameters(store, group.attrs.get("parameters") or {}, parameters, "resuming")
            return group, config
        return group, store_config(store, group, config, explicit, "resuming")
    attrs = {"parameters": parameters, "space": config.space, "inputs": names[:1000], "n_inputs": len(names)}
    group = stores.create_store(store, names, attrs=attrs, overwrite=overwrite, batch_size=config.batch_size)
    return group, config


def store_config(store, group, asked: RunConfig, explicit, doing: str) -> RunConfig:
    """The config of a store's run, resumed or grown: the options the caller did not set are its own.

    Options in ``explicit`` (those the caller set) must be the store's, else
    a :class:`StoreError` names them; ``asked`` gives those a store never
    records (how, not what, is computed).
    """
    parameters = group.attrs.get("parameters") or {}
    how = [o.name for o in OPTIONS if o.stored == "never" and o.name != "batch_size"]  # not what: as asked
    never = {name: getattr(asked, name) for name in how}
    config = RunConfig.from_parameters(parameters, batch_size=group.attrs.get("batch_size"), **never)
    mine = {name: value for name, value in asked.parameters.items() if name in explicit}
    _check_parameters(store, {name: config.parameters.get(name) for name in mine}, mine, doing)
    return config


def _check_parameters(store, stored: dict, parameters: dict, doing: str) -> None:
    """A :class:`StoreError` naming each parameter the store was made with otherwise."""
    if stored != parameters:
        differ = ", ".join(
            f"{name} {stored.get(name)!r} (now {parameters.get(name)!r})"
            for name in sorted(set(stored) | set(parameters))
            if stored.get(name) != parameters.get(name)
        )
        raise StoreError(f"{store}: was made with {differ}; {doing} needs the same parameters")


def open_to_append(store, names: list[str], asked: RunConfig, explicit: set[str], report: Reporter):
    """The store ``store`` grown by the images of ``names`` it does not hold yet, and its config.

    The run is the store's: its parameters (:func:`store_config`), palette
    and batches. A name already in the store is
    skipped (reported); the store's names are read a batch at a time.

    Returns
    -------
    group, names, config, zarr
        The store's group, all of its image names (old, then new), the run's
        config, and the zarr nodes among its earlier images still pending
        (classified here, once: the new ones were, where inputs were expanded).
    """
    group = stores.open_store(store, mode="r+")
    stores.remove_partial_writes(store)
    config = store_config(store, group, asked, explicit, "appending")
    new, held, zarr = dict.fromkeys(names), [], set()
    for rows in stores.batches(group):
        pending = group["image_status"][rows.start : rows.stop] == stores.PENDING
        for name, waiting in zip(group["image_names"][rows.start : rows.stop], pending):
            held.append(str(name))
            if held[-1] in new:
                del new[held[-1]]
            if waiting and Source.of(held[-1]).zarr:  # a killed run's image, read by this one
                zarr.add(held[-1])
    skipped = len(set(names)) - len(new)
    if skipped:
        report(f"skipping {skipped:,} image(s) already in {store}")
    if new:
        stores.append_images(group, list(new))
        report(f"adding {len(new):,} image(s) to the {len(held):,} of {store}")
    return group, held + list(new), config, frozenset(zarr)


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
    range_kind: str | None = None  # "integer" or "float": the data display_range was measured on
    failures: dict = field(default_factory=dict)  # index → reason, each reported once
    transient: set = field(default_factory=set)  # the failures' indices met on a fault that may pass
    unfinished: list = field(default_factory=list)  # batches whose workers died
    zarr: frozenset = frozenset()  # the names that are zarr nodes, as split_inputs found them
    resume: bool = False  # a resumed run: the images that failed on a transient fault are read again

    def __post_init__(self):
        stored = self.group.attrs.get("display_range")  # measured by the run this one resumes
        self.display_range = None if stored is None else np.asarray(stored)
        self.range_kind = self.group.attrs.get("display_range_kind")

    def source(self, index: int) -> Source:
        """The source of an image, as :func:`split_inputs` (or :func:`open_to_append`) classified it."""
        name = self.names[index]
        return Source.of(name, zarr=name in self.zarr)

    def to_read(self, status: np.ndarray) -> np.ndarray:
        """Which of these statuses this run reads: pending, and when resumed, failed on a transient fault."""
        waiting = status == stores.PENDING
        return waiting | (status == stores.FAILED_TRANSIENT) if self.resume else waiting

    def held(self, rows: range) -> np.ndarray:
        """Which images of a batch the store holds and this run keeps as they are (done, failed for good)."""
        return ~self.to_read(self.group["image_status"][rows.start : rows.stop])

    def pending_batches(self) -> list[range]:
        """The batches with an image to read (a batch is always written again whole, its held images kept).

        A resumed run reads again the images that failed on a transient fault, and says how many.
        """
        status = self.group["image_status"][:]
        pending = self.to_read(status)
        again = int((status == stores.FAILED_TRANSIENT).sum()) if self.resume else 0
        if again:
            self.report(f"reading again {plural(again, 'image')} that failed on a transient fault")
        return [rows for rows in stores.batches(self.group) if pending[rows.start : rows.stop].any()]

    def failed(self, index: int, reason: str, *, transient: bool = False, stored: bool = False) -> None:
        """Report a failed image once; with ``on_error="fail"`` record it (unless ``stored``) and stop.

        ``transient``: it met a fault that may pass (:func:`~palette_dask.inputs.retry.is_transient`),
        stored as such, and a resumed run reads it again.
        """
        if index in self.failures:
            return
        self.failures[index] = reason
        if transient:
            self.transient.add(index)
        if self.config.on_error == "fail":  # its error says which and why: one line, not two
            if not stored:
                stores.write_image_failed(self.group, index, reason, transient=transient)
            raise ImageFailedError(
                f"stopped at the first failure (--on-error fail, on_error='fail'): {reason}"
            )
        again = transient and "--resume" not in reason  # a TransientReadError says so itself
        self.report(f"failed: {reason}" + (" (a transient fault: --resume reads it again)" if again else ""))

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
        """Tell the reporter how far a pass is, when it follows progress (``report.update``)."""
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
    fraction: float | None = None  # the batches' candidates' threshold, when drawn from images chosen
    candidates: np.ndarray = field(default_factory=lambda: np.empty((0, 1 + N_FEATURES)))
    band_ranges: list = field(default_factory=list)
    nodata: set = field(default_factory=set)  # no-data values of the files' headers, applied
    dtypes: set = field(default_factory=set)
    # index → the future of a tiled image's colour histogram, held on the workers for counting
    histograms: dict = field(default_factory=dict)

    def submit(self, tasks: Pass, run: Run, index: int, lazy, *, aside: dict | None = None) -> None:
        """Submit ``lazy(info, image)``, a dask computation over a tiled image, to a pass.

        Should the cluster lose it, it is submitted again over the image made
        anew; an array given to the API goes in the task graph this time,
        where no worker leaving can lose it (see :func:`array_entry`). With
        ``aside``, ``lazy`` gives two computations in one graph: the pass
        awaits the first, the future of the second goes in ``aside[index]``.
        """

        def compute():
            lazy_result = lazy(*self.tiled[index])
            if aside is None:
                return run.client.compute(lazy_result)
            awaited, aside[index] = run.client.compute(list(lazy_result))
            return awaited

        def again():
            if index in run.arrays:
                self.tiled[index] = array_entry(run, index, scatter=False)
            else:
                info = self.tiled[index][0]
                self.tiled[index] = (info, read_image(info, chunk_bytes=run.config.chunk_bytes))
            return compute()

        tasks.submit(index, compute, again=again, fails_alone=True)

    def spec(self, run: Run, index: int, *, ranged: bool = True) -> PixelSpec:
        """The spec of a tiled image; with ``ranged=False``, without a measured display range."""
        return run_spec(self.tiled[index][0], run.config, run.display_range if ranged else None)


def array_entry(run: Run, index: int, *, scatter: bool = True) -> tuple:
    """An array given to the API as a tiled image: its ImageInfo and lazy array.

    An in-memory array is sent to the workers once (``scatter``), where no
    worker can recompute it if the one holding it leaves; without ``scatter``
    it is put in the task graph, whence dask recomputes any lost chunk.
    """
    array = run.arrays[index]
    return array_image(
        on_workers(run.client, array) if scatter else array,
        run.names[index],
        channel_axis=run.config.channel_axis,
        chunk_bytes=run.config.chunk_bytes,
    )


def on_workers(client: Client, array):
    """An in-memory array (numpy, or xarray over numpy) sent to the workers once, not put in the graph."""
    data = getattr(array, "data", array) if hasattr(array, "dims") else array
    if isinstance(data, da.Array):
        return array
    data = np.asarray(data)
    lazy = da.from_delayed(client.scatter(data, hash=False), shape=data.shape, dtype=data.dtype)
    return array.copy(data=lazy) if hasattr(array, "dims") else lazy
