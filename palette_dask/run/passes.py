"""Passes: the first pass (read, decode, sample), the display range, the sample, and the counting pass.

Every pass submits one task per batch (and per chunk of an image read tile
by tile) through :class:`~palette_dask.run.tasks.Pass`, and keeps on the
driver only what grows with the batches.
"""

from __future__ import annotations

import collections
import functools
import math
import operator
import warnings

import dask
import dask.array as da
import numpy as np
from dask.utils import format_bytes
from distributed import Client

from ..errors import (
    PaletteDaskError,
    PaletteDaskWarning,
    ParameterError,
    image_error,
    no_valid_pixels,
    one_line,
    plural,
)
from ..inputs.read import cell_grid, open_batch, read_image
from ..inputs.retry import is_transient
from ..kernels.colour import srgb_to_lab
from ..kernels.count import LOOKUP_PIXELS, BatchCounts, batch_stats, image_stats, unpack_stats
from ..kernels.fit import LOCAL_FIT_BYTES
from ..kernels.histogram import HISTOGRAM_BYTES, histogram_stats, image_summary
from ..kernels.per_image import image_parts, palette_of_parts
from ..kernels.pixels import (
    PERCENTILES,
    PixelSpec,
    auto_measures,
    band_range,
    combine_ranges,
    loop_spec,
    percentile_range,
    range_kind,
    run_spec,
)
from ..kernels.sample import (
    as_features,
    cell_candidates,
    cell_count,
    cell_share,
    image_candidates,
    image_subset,
    merge_candidates,
    next_fraction,
    sample_batch,
    sample_chosen,
    sampling_fraction,
)
from ..outputs import store as stores
from ..outputs.labels import (
    create_labels,
    keep_georeference,
    label_properties,
    write_label_image,
    write_label_properties,
    write_label_pyramid,
)
from .state import Opened, Run, array_entry
from .tasks import CLUSTER_FAILURES, Pass, deaths_per_try, memory_limit_killed

#: Decoded images kept between the passes (``memory_budget``) never take more than this share of
#: the workers' memory.
KEEP_DECODED_SHARE = 0.25
#: An image read tile by tile, of at least this many pixels in fewer chunks
#: than the cluster has threads, is split into one band of rows per thread
#: when it is kept in memory (a 16 MP PNG is one chunk when decoded).
SPLIT_PIXELS = 2**20
#: A sample of data wider than 8 bits whose brightest 1% is darker than this CIELAB L* is near black:
#: a 0-10,000 reflectance scene shown by its type's range, 0-65,535, reaches L* 15 at most.
DARK_LIGHTNESS = 20.0
#: Images read tile by tile are kept in memory between passes when at most this many, this big.
KEEP_TILED_IMAGES, KEEP_TILED_BYTES = 64, 512 * 2**20
#: A mosaic of 8-bit colours is read once: each chunk's task gives its sample candidates and its
#: colour histogram, and the counts come from the histogram (:func:`_read_once`). False reads it
#: twice, as data wider than 8 bits are: the strict twin the tests compare it with.
ONE_READ_PASS = True


def open_images(run: Run, pending: list[range], *, sample: bool = True, keep: bool = True) -> Opened:
    """First pass, a task per batch: read headers, decode and sample the small images, keep them if they fit.

    With ``sample=False`` (a resumed run, or a palette applied) only headers
    are read: the counting pass decodes each image once. With ``keep=False``
    (a sweep, which counts nothing) no image is kept. Images too big for a
    batch, and arrays, become lazy tile-chunked arrays. Each batch keeps its
    decoded images on the workers for the counting pass up to its share of
    ``memory_budget`` (at most :data:`KEEP_DECODED_SHARE` of the workers'
    memory), so they never total more; the counting pass decodes the others
    again. A large collection (``sample_images="auto"``, see
    :func:`~palette_dask.kernels.sample.image_subset`) has its headers read
    first, then only the images chosen for the sample decoded (:func:`_sample_chosen`).
    """
    config, client = run.config, run.client
    reading = {rows: len(rows) - int(run.held(rows).sum()) for rows in pending}  # held images are not read
    n_images = sum(reading.values())
    subset = (
        sample
        and config.sample_images == "auto"
        and config.scale != "minmax"  # the range of every pixel: every image is decoded for it
        and image_subset(n_images, config.sample_size)
    )
    stage = "reading and sampling" if sample and not subset else "reading"
    run.report(f"{stage} {plural(n_images, 'image')} in {plural(len(pending), 'batch', 'batches')}")
    if config.exclude:  # say what is done to the data
        colours = ", ".join(config.exclude)
        run.report(f"pixels within CIEDE2000 {config.exclude_within:g} of {colours} are left out, as masked")
    opened, tasks = Opened({}), Pass()
    keep_per_image = _keep_budget(client, config.memory_budget if keep else 0) / max(n_images, 1)
    decode_now = sample and not subset  # else headers only: the sample's images are decoded next

    def first_pass(rows: range):
        def submit():  # the batch, read (its share of the budget kept), then sampled
            kept = keep_per_image * len(rows) if decode_now else 0
            opened.batches[rows] = batch = _read_batch(run, rows, keep=kept)
            return client.submit(
                sample_batch, batch, config, seed=config.seed,
                size=config.sample_size if decode_now else 0, ranges=decode_now and config.scale == "minmax",
                pure=False,
            )  # fmt: skip

        return submit

    for rows in pending:
        tasks.submit(rows, first_pass(rows))
    done = 0
    for rows, summary, error in tasks:
        if error is not None:
            _pass_failed(run, opened, "reading", rows, error)
        opened.pixels += summary.pixels
        opened.candidates = merge_candidates([opened.candidates, summary.candidates], config.sample_size)
        if summary.band_range is not None:
            opened.band_ranges.append(summary.band_range)
        opened.nodata.update(summary.nodata)
        opened.dtypes.update(summary.dtypes)
        if sample:  # auto's mixed sample stops at the batch that mixes it, not after the pass
            _check_mixed(config, opened.dtypes)
        for index, reason, transient in summary.failures:
            run.failed(index, reason, transient=transient)
        for index, info in summary.tiled:
            opened.tiled[index] = (info, read_image(info, chunk_bytes=config.chunk_bytes))
        done += reading[rows]
        run.progress(stage, done, n_images)
    for rows in pending:
        for index in (i for i in rows if i in run.arrays):
            try:
                opened.tiled[index] = array_entry(run, index)
            except PaletteDaskError as exc:  # an array whose axes cannot be told apart: it alone fails
                run.failed(index, one_line(exc), transient=is_transient(exc))
    for index, (info, _) in list(opened.tiled.items()):
        try:
            run_spec(info, config)
        except PaletteDaskError as exc:  # bands that cannot be read as asked: this image alone fails
            del opened.tiled[index]
            run.failed(index, one_line(exc), transient=is_transient(exc))
    opened.pixels += sum(info.pixels for info, _ in opened.tiled.values())
    opened.dtypes.update(info.dtype for info, _ in opened.tiled.values())
    _check_display_range(run, opened, sample)
    if subset:
        _sample_chosen(run, opened, keep_per_image)
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


def _sample_chosen(run: Run, opened: Opened, keep_per_image: float) -> None:
    """The batches' sample from the images chosen by pixel count, a task per batch, kept for counting.

    The images are chosen at the run's first threshold (``sampling_fraction``
    of every pixel, mosaics' too) and drawn again at a larger one while the
    batches' candidates below it are fewer than the sample (masked pixels):
    the same images and more, those kept not decoded again.
    :func:`sample_run` starts from the threshold reached, so no pixel of the
    sample can be missing. Each batch keeps what it decoded within its share
    of the budget, as the first pass does with every image.
    """
    config, client, size = run.config, run.client, run.config.sample_size
    fraction = sampling_fraction(opened.pixels, size)
    while fraction is not None:
        run.report(f"sampling from the images chosen by pixel count, {fraction:.3g} of their pixels")
        tasks, chosen = Pass(), {}
        for rows, batch in opened.batches.items():

            def submit(rows=rows, batch=batch, fraction=fraction, chosen=chosen):
                chosen[rows] = both = client.submit(
                    sample_chosen, batch, config, seed=config.seed, size=size, fraction=fraction,
                    keep=keep_per_image * len(rows), pure=False,
                )  # fmt: skip
                return client.submit(operator.itemgetter(1), both, pure=False)

            tasks.submit(rows, submit)
        reading = _still_read(run, opened.batches)  # the progress counts images read, as the first pass
        found, done, total = np.empty((0, opened.candidates.shape[1])), 0, sum(reading.values())
        for rows, summary, error in tasks:
            if error is not None:
                _pass_failed(run, opened, "sampling", rows, error)
            found = merge_candidates([found, summary.candidates], size)
            for index, reason, transient in summary.failures:
                run.failed(index, reason, transient=transient)
            opened.batches[rows] = client.submit(operator.itemgetter(0), chosen[rows], pure=False)
            done += reading[rows]
            run.progress("sampling", done, total)
        opened.candidates, opened.fraction = found, fraction
        fraction = next_fraction(fraction, len(found), size)


def _still_read(run: Run, batches) -> dict[range, int]:
    """Each batch's images a pass reads: neither held by the store nor failed already (its progress)."""
    size = run.group["image_status"].chunks[0]  # a batch: a chunk of the per-image arrays
    failed = collections.Counter(index // size for index in run.failures)
    return {rows: len(rows) - int(run.held(rows).sum()) - failed[rows.start // size] for rows in batches}


def _read_batch(run: Run, rows: range, *, keep: float):
    """Submit the task reading a batch's headers; it decodes and keeps up to ``keep`` bytes of images.

    Arrays, and images the store already holds (done or failed: a batch grown
    by ``append``, or resumed), are not read by it; see :meth:`~.state.Run.held`.
    """
    config, held = run.config, run.held(rows)
    return run.client.submit(
        open_batch,
        [None if i in run.arrays or held[i - rows.start] else run.source(i) for i in rows],
        rows.start,
        keep=keep,
        chunk_bytes=config.chunk_bytes,
        max_pixels=config.max_pixels,
        channel_axis=config.channel_axis,
        assets=config.assets,
        downloads=run.downloads,
        pure=False,
    )


def _keep_budget(client: Client, budget: int) -> float:
    """Bytes of decoded images kept: ``budget``, at most :data:`KEEP_DECODED_SHARE` of the workers' memory."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    return min(budget, KEEP_DECODED_SHARE * sum(limits)) if all(limits) and limits else budget


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


def _pass_failed(run: Run, opened: Opened, stage: str, key, exc: BaseException) -> None:
    """A task of a pass over every image failed: a tiled image fails alone, dead workers stop the run.

    A batch's task catches its images' errors itself, so its failure is not an image's fault. A tiled
    image whose tasks' workers died of their memory limit fails alone (:func:`_out_of_memory`).
    """
    if isinstance(exc, CLUSTER_FAILURES):
        reason = None if isinstance(key, range) else _out_of_memory(run, opened, key, exc)
        if reason is None:
            raise run.died(stage, key)
        opened.tiled.pop(key, None)
        run.failed(key, reason)
        return
    if isinstance(key, range):
        raise exc
    opened.tiled.pop(key, None)
    run.failed(key, image_error(run.names[key], exc), transient=is_transient(exc))


def _out_of_memory(run: Run, opened: Opened, index: int, exc: BaseException) -> str | None:
    """Why a tiled image fails when its workers died of their memory limit; None if they died otherwise.

    The reason names the biggest block the image is decoded in, the
    workers' limit, and how many times its workers died (dask's
    allowed-failures + 1: :class:`~.tasks.Pass` does not submit it again). A
    block the file's layout decodes in one piece (a PNG, a big tile) needs
    workers with more memory; others, a smaller ``chunk_bytes``. Either way in
    a new run: the failure is stored as permanent, which ``--resume`` does not
    read again, and ``chunk_bytes`` is the stored run's.
    """
    limit = memory_limit_killed(run.client, exc)
    if limit is None or index not in opened.tiled:
        return None
    info, image = opened.tiled[index]
    if index not in run.arrays:  # its blocks as decoded, not as kept in memory
        image = read_image(info, chunk_bytes=run.config.chunk_bytes)
    block = math.prod(max(sizes) for sizes in image.chunks) * image.dtype.itemsize
    advice = (
        "workers with more memory (the file decodes it in one piece)"
        if block > run.config.chunk_bytes
        else "a smaller --chunk-bytes (chunk_bytes=) or workers with more memory"
    )
    return (
        f"{run.names[index]}: workers ran out of memory decoding a block of {format_bytes(block)} "
        f"(their memory limit is {format_bytes(limit)}; tried {deaths_per_try()} times): use {advice}, "
        "in a new run (--overwrite): --resume does not read this failure again"
    )


def _kinds(scale, dtypes) -> dict[str, list[str]]:
    """The dtypes met, by how ``scale`` (``"auto"``) shows them: 8-bit, wider integers, floats."""
    kinds: dict[str, list[str]] = {"8-bit": [], "wider integer": [], "float": []}
    for dtype in sorted(dtypes):
        kind = "float" if np.issubdtype(dtype, np.floating) else "wider integer"
        kinds[kind if auto_measures(scale, dtype) else "8-bit"].append(dtype)
    return {kind: met for kind, met in kinds.items() if met}


def _ranged(scale, dtypes) -> list[str]:
    """The dtypes met that ``scale`` shows by a measured range (or a store's): none by dtype or LOW,HIGH."""
    if not isinstance(scale, str) or scale == "dtype":
        return []
    return sorted(dtype for dtype in dtypes if scale != "auto" or auto_measures(scale, dtype))


def measures_range(config, dtypes) -> bool:
    """Whether a run that samples measures its display range (these dtypes met).

    ``minmax`` and ``percentile`` do; ``auto`` does where data wider than 8
    bits are met (8-bit data alone keep their type's range, as ``dtype``).
    """
    return config.scale in ("minmax", "percentile") or bool(_ranged(config.scale, dtypes))


def _keep_range(run: Run, dtypes) -> None:
    """Store the display range, and the kind of data (``dtypes``) it was measured on or shows."""
    run.group.attrs["display_range"] = np.asarray(run.display_range, np.float64).tolist()
    run.range_kind = range_kind(dtypes)
    if run.range_kind is not None:
        run.group.attrs["display_range_kind"] = run.range_kind


def _check_mixed(config, dtypes) -> None:
    """``auto`` measures one cut: one line if a sample mixes 8-bit and wider data, or integers and floats."""
    kinds = _kinds(config.scale, dtypes)
    if config.scale == "auto" and len(kinds) > 1:
        met = " and ".join(f"{kind} ({', '.join(dtypes)})" for kind, dtypes in kinds.items())
        raise ParameterError(
            f"--scale auto (the default) shows 8-bit data by their type's range and measures one 2-98% "
            f"cut for wider ones, but this run's images are {met}, whose values share no scale: give "
            "--scale (scale=) dtype, percentile or LOW,HIGH, or run them apart"
        )


def _check_display_range(run: Run, opened: Opened, sample: bool) -> None:
    """Data shown by a display range, once the first pass knows their types: one line why not, if not.

    A run that samples measures it (``auto``: one cut for the data wider than
    8 bits, not with 8-bit images, nor integers with floats, in the same
    sample: their values share no scale; nor with ``exclude``, which needs the
    range before the sample). A run that samples nothing (a palette applied,
    a store resumed or grown) uses the range of its store or of the palette's
    store, measured on data of the same kind; a palette's is stored with the
    run only where its data use it.
    """
    config = run.config
    shown = _ranged(config.scale, opened.dtypes)
    if not shown:
        return
    if sample:
        if config.scale != "auto":
            return
        _check_mixed(config, opened.dtypes)
        if config.exclude:
            raise ParameterError(
                f"exclude (--exclude) needs a known display range, and --scale auto measures that of "
                f"{', '.join(shown)} data on the sample: give --scale (scale=) LOW,HIGH or dtype"
            )
        return
    grown = bool((run.group["image_status"][:] != stores.PENDING).any())  # resumed or appended
    where = stores.store_path(run.group) if grown or not config.palette else config.palette
    if run.display_range is None:
        if grown:
            raise ParameterError(
                f"{where}: holds no display range (its run met no data wider than 8 bits), and "
                f"--scale auto shows this run's {', '.join(shown)} data by the cut measured on a "
                "run's sample, which a resumed or grown store does not draw: run them into a new store"
            )
        raise ParameterError(
            f"{where}: holds no display range for this run's {', '.join(shown)} data (a .json, .csv or "
            f".gpl palette carries none, nor a store whose data were 8-bit): give --scale (scale=) LOW,HIGH "
            "or dtype"
        )
    kind = range_kind(shown)
    if run.range_kind is not None and kind != run.range_kind:
        raise ParameterError(
            f"{where}: its display range was measured on {run.range_kind} data, and this run's images are "
            f"{', '.join(shown)}, whose values it does not fit: "
            + ("run them into a new store" if grown else "give --scale (scale=) LOW,HIGH or dtype")
        )
    if "display_range" not in run.group.attrs:  # the palette's store's, used: stored with this run
        _keep_range(run, shown)
        run.report(f"showing the {', '.join(shown)} data by the display range of {where}")


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
        _keep_range(run, opened.dtypes)


def _read_once(run: Run, opened: Opened, skipped) -> set[int]:
    """The tiled images whose sampling pass also gathers their colour histogram, counted from it.

    Those whose pixels are 8-bit colours that are their own features, when
    neither label rasters nor per-image palettes are asked (those need the
    pixels again), sampled from every chunk (none in ``skipped``), while their
    histograms' most bytes (12 a colour, at most 2^24 colours an image) fit
    ``memory_budget``: they are held on the workers until counted.
    """
    config = run.config
    if not ONE_READ_PASS or config.labels or config.per_image:
        return set()
    once, budget = set(), config.memory_budget
    for index, (_, image) in opened.tiled.items():
        if index in skipped or image.dtype != np.uint8:
            continue
        if not loop_spec(opened.spec(run, index, ranged=False), image.dtype).eight_bit:
            continue
        most = min(HISTOGRAM_BYTES, 12 * math.prod(image.shape[:2]))
        if most <= budget:
            once.add(index)
            budget -= most
    return once


def sample_run(run: Run, opened: Opened, *, counted: bool = True) -> np.ndarray | None:
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

    A mosaic of 8-bit colours to be ``counted`` (see :func:`_read_once`)
    gives its colour histogram in its first draw, from the same read of
    each chunk (:func:`~palette_dask.kernels.histogram.image_summary`): the
    counting pass reads it no more.
    """
    config, client, size = run.config, run.client, run.config.sample_size
    measured = measures_range(config, opened.dtypes)  # candidates are raw band values until then
    if config.scale == "minmax":
        measure_range(run, opened)
    # the batches' candidates drawn from the images chosen are complete below their threshold only
    merged, fraction = opened.candidates, opened.fraction or sampling_fraction(opened.pixels, size)
    # with sample_chunks < 1, mosaics not kept in memory whose own chunks can be read alone are
    # sampled from a share of them; by default every chunk is read
    chosen = config.sample_chunks < 1 and not opened.kept
    subset = {i: info for i, (info, _) in opened.tiled.items() if chosen and cell_grid(info)}
    share = cell_share(sum(cell_count(info) for info in subset.values()), config.sample_chunks)
    once = _read_once(run, opened, subset) if counted and not measured else set()
    if once:
        run.report(f"{plural(len(once), 'image')} of 8-bit colours read once, counted from colour histograms")
    while opened.tiled:
        part = f", {share:.1%} of the chunks of {len(subset)}" if subset and share < 1 else ""
        run.report(f"sampling {plural(len(opened.tiled), 'image')} read tile by tile{part}")
        tasks, options = Pass(), {"seed": config.seed, "fraction": fraction, "size": size}
        for index in opened.tiled:
            if index in once and index not in opened.histograms:  # its sample and its histogram

                def summary(info, image, index=index, options=options):
                    return image_summary(image, opened.spec(run, index, ranged=False), index, **options)

                opened.submit(tasks, run, index, summary, aside=opened.histograms)
                continue

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
                opened.histograms.pop(index, None)
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
        if config.scale != "minmax" and run.display_range is None:  # a resumed run's stays as it was
            run.display_range = percentile_range(merged[:, 1:])
            _keep_range(run, _ranged(config.scale, opened.dtypes))
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
    """Warn when data wider than 8 bits leave the sample near black, by their type's range or one measured."""
    wide = _ranged("auto", opened.dtypes)  # the data wider than 8 bits
    scale = run.config.scale
    if not isinstance(scale, str) or not wide or not len(sample):  # (low, high): as the user asked
        return
    lightness = sample[:, 0] if run.config.space == "lab" else srgb_to_lab(sample.astype(np.float64))[:, 0]
    brightest = float(np.percentile(lightness, 99))
    if brightest >= DARK_LIGHTNESS:
        return
    if scale == "dtype":
        why = (
            f"{', '.join(wide)} data fill a small part of their type's range, which --scale dtype "
            "shows as 0-255; --scale percentile (or LOW,HIGH; --scale auto, the default, does so for "
            "such data) spreads the values found"
        )
    else:
        low, high = np.asarray(run.display_range, np.float64)
        shown = ", ".join(f"{a:g}-{b:g}" for a, b in zip(low, high))
        cut = "its cumulative {:g}%-{:g}% cut".format(*PERCENTILES) if scale != "minmax" else "its extremes"
        why = (
            f"the display range --scale {scale} measured on the {', '.join(wide)} data, {cut} "
            f"(bands {shown}), still shows most of them dark: a fill value not declared as no-data "
            "(--nodata) or a few bright pixels set it; --scale LOW,HIGH shows the values you choose"
        )
    warnings.warn(
        f"the sampled pixels are near black (99% below CIELAB L* {brightest:.0f}): {why}",
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


def count_images(run: Run, opened: Opened, centers: np.ndarray, centers_rgb: np.ndarray) -> int:
    """The counting pass: label and count every pixel; each batch is written whole as soon as it is finished.

    A mosaic whose colour histogram the sampling pass gathered (:func:`_read_once`) is counted from
    it, not read again; the others are read.

    ``centers`` are in the clustering space, ``centers_rgb`` the same as sRGB
    floats (rounded, the colours shown); with no centres (no image had a
    valid pixel) every image is stored as failed. Returns how many images it
    counted (read, not failed before): its progress counts those, not the
    images the store holds or that failed reading.
    """
    config, client, group = run.config, run.client, run.group
    k = len(centers)
    labels_store = stores.store_path(group) if config.labels and k else None
    if labels_store is not None:
        group.require_group("labels")
    counting = _still_read(run, opened.batches)
    readable = sum(counting.values())
    run.report(f"counting the pixels of {plural(readable, 'image')}" if readable else "no image was read")
    lookup = opened.pixels >= LOOKUP_PIXELS  # many pixels: 8-bit colours looked up in a table of all
    write_labels = functools.partial(write_label_image, labels_store) if labels_store else None
    arguments = (config, run.display_range, centers, centers_rgb, write_labels, lookup)
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
        info, image = opened.tiled[index]
        label_paths[index] = (
            create_labels(group, index, image, centers_rgb, info.pixel_size) if labels_store else None
        )
        if labels_store and index in run.arrays:  # an xarray input's dims, coordinates, CRS
            keep_georeference(group, index, run.arrays[index], info.axes)

        def count(info, image, index=index):
            spec, labels = opened.spec(run, index), label_paths[index]
            histogram = opened.histograms.get(index)
            # no labels, no own palette; a histogram still merging is waited on, not read again beside
            # it (whether errors are exact must not follow from timing); one that erred or was lost
            # (a worker left with it) is counted by reading the image again
            if histogram is not None and histogram.status in ("finished", "pending"):
                return dask.delayed(histogram_stats, pure=False)(histogram, spec, centers, centers_rgb)
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
    done = 0
    opened.batches = {}  # the workers may free each batch's kept images once it is counted
    results: dict[range, BatchCounts] = {}
    tiled: dict[int, object] = {}  # index → its counts or why it failed, until its batch is written
    for key, found, error in tasks:
        rows = key if isinstance(key, range) else batch_of[key]
        if rows in run.unfinished:
            continue
        if isinstance(error, CLUSTER_FAILURES) and not isinstance(key, range):  # its memory: it fails alone
            error = _out_of_memory(run, opened, key, error) or error
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
            if label_paths[key] and error is None:  # its pyramid and properties, before its batch is stored
                write_label_pyramid(label_paths[key])
                size = opened.tiled[key][0].pixel_size
                properties = label_properties(tiled[key][0].counts, centers_rgb, size)
                write_label_properties(group[f"labels/{key}"], properties)
        if rows in results and not waiting[rows]:
            result = results.pop(rows)
            held = run.held(rows)  # kept as stored
            for index in rows:
                if result.status[index - rows.start] == stores.PENDING and not held[index - rows.start]:
                    outcome = tiled.pop(index, None) or run.failures.get(index)
                    info = opened.tiled[index][0] if index in opened.tiled else None
                    _fill(result, index, outcome, run.names[index], info, transient=index in run.transient)
            stores.write_batch(group, result, held=held)
            done += counting[rows]
            if readable:  # none read: no progress to show
                run.progress("counting", done, readable)
            for position in np.flatnonzero(stores.is_failed(result.status) & ~held):
                line, transient = result.errors[position], result.status[position] == stores.FAILED_TRANSIENT
                run.failed(rows.start + int(position), line, transient=transient, stored=True)
    opened.histograms.clear()
    opened.tiled.clear()  # the tiled images kept on the workers are let go now, those that erred too: a
    # later run on this client (a resume) reads them anew, whatever still refers to this one
    return readable


def _fill(result: BatchCounts, index: int, outcome, name: str, info=None, *, transient: bool = False) -> None:
    """Fill the row of an image its batch's task did not count: a tiled image's counts, or why it failed.

    ``outcome`` is ``(counts, own palette or None)``, the reason (a str, met on
    a transient fault when ``transient``, or an exception), or None when there
    was no palette to count with; ``info`` the image's ImageInfo (its pixel
    size and shape), None where it was never read.
    """
    row = index - result.start
    if isinstance(outcome, str):
        result.fail(row, outcome, transient)
    elif isinstance(outcome, BaseException):
        result.fail(row, image_error(name, outcome), is_transient(outcome))
    elif outcome is None or outcome[0].valid == 0:
        result.fail(row, one_line(no_valid_pixels(name)))
    else:
        result.done(row, *outcome, pixel_size=info and info.pixel_size, shape=info and info.shape, info=info)
