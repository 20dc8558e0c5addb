"""Pipeline: open → sample → fit → count → store, wired once for every shell.

The CLI, the workflows and the notebooks all call :func:`extract_palette`::

    config = RunConfig(k=5, ...)                    # the options, checked once
    opened = open_images(run, pending)              # read, decode, sample: one task per batch
    sample = sample_run(run, opened)                # seeded, uniform, from every image
    fitted = fit_palette(sample, config.k)          # dask-ml k-means||, on the sample
                                                    # (or a palette given: no sample, no fit)
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

import numpy as np
from distributed import Client

from ..errors import (
    ClusterLostError,
    Failure,
    ImageFailedError,
    NoValidPixelsError,
    PaletteDaskWarning,
    ParameterError,
    RunIncompleteError,
    StoreError,
    plural,
)
from ..inputs import retry
from ..inputs.fetch import download_folder
from ..kernels.colour import lab_to_srgb
from ..kernels.fit import fit_palette
from ..kernels.pixels import N_FEATURES
from ..options import RunConfig, check_k, takes_options
from ..outputs import store as stores
from ..outputs.geotiff import write_label_geotiffs
from ..outputs.result import PaletteResult, load_result
from ..outputs.source_labels import write_source_labels
from .choose import Sweep, fit_sweep
from .cluster import connect, scheduler_kept, share_retry_policy
from .passes import count_images, open_images, sample_run
from .plan import Plan, plan_run
from .state import Opened, Reporter, Run, open_or_create, open_to_append, split_inputs

__all__ = ["RunConfig", "extract_palette", "run_plan", "sweep_k", "ImageFailedError", "RunIncompleteError"]


@takes_options("run")
def extract_palette(
    inputs,
    k: int | None = None,
    *,
    store: str | os.PathLike | None = None,
    client: Client | str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    append: bool = False,
    downloads: str | None = None,
    labels_geotiff: str | os.PathLike | None = None,
    source_labels: str | None = None,
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
    append : bool
        Add the images of ``inputs`` to the store ``store`` and count them
        with its palette and parameters (the options given must be its own);
        an image already in it is skipped. A killed append is finished by ``resume``.
    downloads : str, optional
        Folder where URL inputs are downloaded, once each; by default a
        temporary one, removed at the end of the run.
    labels_geotiff : path, optional
        Also write every image's label raster as a tiled GeoTIFF in this
        folder, georeferenced like a TIFF source (see :mod:`palette_dask.outputs.geotiff`);
        implies ``labels``.
    source_labels : str, optional
        Also write each input's label image into the input itself, as its
        OME-Zarr ``labels/<source_labels>`` (every input must be a local,
        writable OME-Zarr image: see :mod:`palette_dask.outputs.source_labels`);
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
    (5, 1.0, {'total': 1, 'done': 1, 'failed': 0, 'transient': 0})
    """
    plan = plan_run(
        inputs, k, store=store, overwrite=overwrite, resume=resume, append=append,
        labels_geotiff=labels_geotiff, source_labels=source_labels, **options,
    )  # fmt: skip
    return run_plan(plan, client=client, downloads=downloads, report=report)


def run_plan(
    plan: Plan,
    *,
    client: Client | str | None = None,
    downloads: str | None = None,
    report: Reporter | None = None,
) -> PaletteResult:
    """Carry out a checked run (:func:`~.plan.plan_run`): the store made or opened, the passes, the outputs.

    ``client``, ``downloads`` and ``report`` are :func:`extract_palette`'s.
    """
    with retry.using(retry.Retry.of(plan.config)):  # the store's requests too, before the cluster's
        return _run_plan(plan, client=client, downloads=downloads, report=report)


def _run_plan(plan: Plan, *, client, downloads, report) -> PaletteResult:
    names, arrays, zarr, config, given = plan.names, plan.arrays, plan.zarr, plan.config, plan.given
    store, overwrite, resume, append = plan.store, plan.overwrite, plan.resume, plan.append
    labels_geotiff, source_labels = plan.labels_geotiff, plan.source_labels
    # a store this run makes (not one it resumes or grows, nor a folder there) goes if it keeps nothing
    created = store is not None and not append and not (resume and stores.is_store(store))
    created = created and (not stores.store_exists(store) or stores.is_store(store))
    if append:  # the store's run, grown: its parameters and palette
        group, names, config, pending_zarr = open_to_append(
            store, names, config, set(plan.explicit), report or _silent
        )
        zarr = zarr | pending_zarr
    else:
        group, config = open_or_create(
            store, names, config, overwrite=overwrite, resume=resume, explicit=plan.explicit
        )
    applied = None  # a palette's store's range: stored once the first pass finds data it shows (passes)
    try:
        if given is not None and "centers" not in group:  # _execute then samples nothing, fits nothing
            stores.write_palette(group, given.centers, given.centers_rgb)
            (report or _silent)(f"applying the {plural(config.k, 'colour')} of {given.source}")
            applied = given
        with connect(client) as run_client, run_client.as_current(), scheduler_kept(run_client):
            share_retry_policy(run_client, retry.current())
            with download_folder(names, downloads, run_client) as folder:
                run = Run(
                    group, names, arrays, run_client, config, report or _silent, folder,
                    zarr=zarr, resume=resume,
                )  # fmt: skip
                if applied is not None and applied.display_range is not None:
                    run.display_range, run.range_kind = applied.display_range, applied.range_kind
                _execute(run)
                if labels_geotiff is not None:  # every time: a resumed run writes them all again
                    done = group["image_status"][:] == stores.DONE
                    run.report(f"writing {int(done.sum()):,} GeoTIFF label rasters to {labels_geotiff}")
                    root, batches = stores.store_path(group), stores.batches(group)
                    write_label_geotiffs(run_client, root, names, batches, done, labels_geotiff, folder)
                if source_labels is not None:
                    done = group["image_status"][:] == stores.DONE
                    run.report(f"writing labels/{source_labels} into {plural(int(done.sum()), 'input')}")
                    write_source_labels(run_client, stores.store_path(group), names, done, source_labels)
        result = load_result(group)
    except ClusterLostError as exc:  # what the store keeps, and how to finish it
        raise ClusterLostError(f"{exc}; {_kept(group, store, created)}") from None
    except Exception as exc:  # a store in object storage met a fault on every try: what it keeps
        if store is None or not stores.is_url(store) or not retry.is_transient(exc):
            raise
        raise StoreError(
            f"{store}: the store could not be written: {retry.fault(str(store), exc)}; "
            f"{_kept(group, store, created)}"
        ) from None
    finally:
        if created and not (group["image_status"][:] == stores.DONE).any():
            stores.remove_store(store)  # it holds nothing to keep or resume: the retry starts afresh
            # Ctrl-C: the caller says what it left; a lost scheduler's error says it already
            if not isinstance(sys.exc_info()[1], (KeyboardInterrupt, ClusterLostError)):
                (report or _silent)(f"no image was stored: {store} is not kept")
    if report is None and result.failures:  # a caller who follows no progress still hears of them
        first = result.failures[0]
        warnings.warn(
            f"{len(result.failures):,} of {plural(len(names), 'image')} failed (first: {first}); "
            "result.failures names each with its reason",
            PaletteDaskWarning,
            stacklevel=4,  # extract_palette's caller: past run_plan, extract_palette, takes_options' wrapper
        )
    if result.store and not stores.store_exists(store):  # removed: it kept nothing
        return dataclasses.replace(result, store=None)
    return result


def _kept(group, store, created: bool) -> str:
    """What a run that lost its scheduler leaves: the batches its store keeps, and how to finish it."""
    if store is None:
        return "nothing was kept (-o OUT.zarr, store=, keeps a store that --resume finishes)"
    status = group["image_status"]
    parts = stores.batches(group)
    kept = sum(int((status[rows.start : rows.stop] != stores.PENDING).all()) for rows in parts)
    if created and not any((status[rows.start : rows.stop] == stores.DONE).any() for rows in parts):
        return f"no image was stored: {store} is not kept; run the command again"
    return (
        f"the store {store} keeps {kept:,} of {plural(len(parts), 'batch', 'batches')}: "
        "palette-dask run ... --resume (resume=True) finishes it"
    )


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
        centers_rgb = stores.read_centers_rgb(group)
        counted = count_images(run, opened, group["centers"][:], centers_rgb)
    else:  # no image has a valid pixel: every batch is stored with its images' failures
        counted = count_images(run, opened, np.zeros((0, N_FEATURES), np.float32), np.zeros((0, 3)))
    run.finish()
    if counted:  # after "no image was read", nothing is said to be done
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
    names, arrays, zarr = split_inputs(inputs)
    group, _ = open_or_create(None, names, config, overwrite=False, resume=False)
    with (
        retry.using(retry.Retry.of(config)),
        connect(client) as run_client,
        run_client.as_current(),
        scheduler_kept(run_client),
    ):
        share_retry_policy(run_client, retry.current())
        with download_folder(names, downloads, run_client) as folder:
            run = Run(group, names, arrays, run_client, config, report or _silent, folder, zarr=zarr)
            opened = open_images(run, run.pending_batches(), keep=False)
            sample = sample_run(run, opened, counted=False)
    failures = [
        Failure.of(names[index], reason, index in run.transient)
        for index, reason in sorted(run.failures.items())
    ]
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
