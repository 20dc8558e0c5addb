"""Pipeline: read → pixels → sample → fit → count → store, wired once for every shell.

The CLI, the workflows and the notebooks all call :func:`extract_palette`.
It runs on a dask.distributed client and treats every image separately: an
image that cannot be read or has no valid pixels is recorded as failed in
the store with its error, and the others still finish.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import dask
import numpy as np
from distributed import Client, as_completed

from . import store as stores
from .cluster import connect
from .count import image_stats, unpack_stats
from .errors import NoValidPixelsError, PaletteDaskError, ParameterError, StoreError
from .fit import check_k, fit_palette
from .read import DEFAULT_CHUNK_BYTES, DEFAULT_MAX_PIXELS, ImageInfo, probe, read_image, resolve_inputs
from .sample import (
    DEFAULT_SAMPLE_SIZE,
    image_candidates,
    merge_candidates,
    next_fraction,
    sample_array,
    sampling_fraction,
)
from .store import PaletteResult

__all__ = ["extract_palette"]

Reporter = Callable[[str], None]


def _error_text(name: str, exc: BaseException) -> str:
    """One line naming the image and the problem."""
    text = str(exc) if isinstance(exc, PaletteDaskError) else f"{name}: {type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _check_parameters(k, sample_size, seed) -> None:
    check_k(k)
    if not isinstance(sample_size, (int, np.integer)) or sample_size < k:
        raise ParameterError(f"sample_size must be a whole number >= k={k}, got {sample_size!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a whole number >= 0, got {seed!r}")


def extract_palette(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    k: int = 5,
    *,
    store: str | os.PathLike | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
    client: Client | str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    report: Reporter | None = None,
) -> PaletteResult:
    """Find the ``k`` dominant colours of images and each colour's share of every image.

    Parameters
    ----------
    inputs : path, URL, glob, directory, list file, or a list of them
        See :func:`palette_dask.read.resolve_inputs`.
    k : int
        Number of colours.
    store : path, optional
        Where the zarr store goes; in memory when None.
    sample_size : int
        Valid pixels sampled (uniformly, seeded) to fit the palette.
    seed : int
        Seed of the sample and of k-means||; the same seed gives the same palette.
    client : distributed.Client or str, optional
        A client, a scheduler address, or None to start a LocalCluster for this run.
    overwrite, resume : bool
        What to do when ``store`` exists: replace it, or finish its pending images
        with its own palette.
    max_pixels : int
        Images decoded whole (PNG, JPEG...) may have at most this many pixels.
    chunk_bytes : int
        Target size of a chunk of a tiled image.
    report : callable, optional
        Called with one line of progress per stage.

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
    _check_parameters(k, sample_size, seed)
    report = report or (lambda message: None)
    names = resolve_inputs(inputs)
    parameters = {
        "k": int(k),
        "sample_size": int(sample_size),
        "seed": int(seed),
        "chunk_bytes": int(chunk_bytes),
    }
    group = _open_or_create(store, names, parameters, overwrite=overwrite, resume=resume)
    with connect(client) as run_client, run_client.as_current():
        _run(group, names, run_client, parameters, max_pixels=max_pixels, report=report)
    return stores.load_result(group)


def _open_or_create(store, names, parameters, *, overwrite: bool, resume: bool):
    if resume and store is not None and os.path.exists(store):
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
    attrs = {"parameters": parameters, "space": "rgb", "inputs": names[:1000], "n_inputs": len(names)}
    return stores.create_store(store, names, attrs=attrs, overwrite=overwrite)


def _each_completed(futures: dict, on_result: Callable, on_error: Callable) -> None:
    """Call ``on_result(index, value)`` or ``on_error(index, exception)`` as each future ends."""
    index_of = {future.key: index for index, future in futures.items()}
    for future in as_completed(list(futures.values())):
        index = index_of[future.key]
        if future.status == "finished":
            on_result(index, future.result())
        else:
            on_error(index, future.exception())


def _no_valid_pixels(name: str) -> NoValidPixelsError:
    return NoValidPixelsError(f"{name}: no valid pixels (every pixel is transparent, nodata or NaN)")


def _run(group, names, client: Client, parameters: dict, *, max_pixels: int, report: Reporter) -> None:
    status = group["image_status"][:]
    pending = [i for i in range(len(names)) if status[i] == stores.PENDING]
    if not pending:
        report(f"all {len(names)} images were already done or failed; nothing to do")
        if not group.attrs.get("complete"):  # stopped between the last image and the end
            stores.finish_store(group)
        return
    infos: dict[int, ImageInfo] = {}

    def fail(index: int, exc: BaseException) -> None:
        stores.write_image_failed(group, index, _error_text(names[index], exc))
        infos.pop(index, None)
        report(f"failed: {_error_text(names[index], exc)}")

    report(f"reading the headers of {len(pending)} images")
    probes = {i: client.submit(probe, names[i], max_pixels=max_pixels, pure=False) for i in pending}
    _each_completed(probes, infos.__setitem__, fail)
    images = {i: read_image(info, chunk_bytes=parameters["chunk_bytes"]) for i, info in infos.items()}

    if "centers" not in group:
        fitted = _fit(client, names, images, infos, parameters, fail, report) if infos else None
        if fitted is None:  # no image has a valid pixel
            stores.finish_store(group)
            return
        stores.write_palette(group, fitted.centers)
        group.attrs.update({"sample_inertia": fitted.sample_inertia, "sample_size": fitted.sample_size})
    centers = group["centers"][:]

    def done(index: int, stats: np.ndarray) -> None:
        result = unpack_stats(stats)
        if result.valid == 0:
            fail(index, _no_valid_pixels(names[index]))
        else:
            stores.write_image_done(
                group, index, result.counts, result.masked, float(result.squared_error.sum())
            )

    report(f"counting the pixels of {len(infos)} images")
    counted = {i: client.compute(image_stats(images[i], infos[i], centers)) for i in sorted(infos)}
    _each_completed(counted, done, fail)
    stores.finish_store(group)
    report("done")


def _fit(client, names, images, infos, parameters, fail, report):
    """Sample the valid pixels and fit the palette; None when no image has a valid pixel."""
    size, seed = parameters["sample_size"], parameters["seed"]
    fraction = sampling_fraction(sum(info.pixels for info in infos.values()), size)
    report(f"sampling {size:,} pixels from {len(infos)} images")
    while fraction is not None:  # a second draw only when masks left too few candidates
        candidates = {
            i: client.compute(image_candidates(images[i], info, i, seed=seed, fraction=fraction, size=size))
            for i, info in sorted(infos.items())
        }
        _each_completed(candidates, lambda index, value: None, fail)
        merged = client.submit(merge_candidates, [candidates[i] for i in sorted(infos)], size, pure=False)
        rows = client.submit(len, merged).result()
        fraction = next_fraction(fraction, rows, size)
    if rows == 0:
        for index in sorted(infos):
            fail(index, _no_valid_pixels(names[index]))
        return None
    sample = client.persist(sample_array(dask.delayed(merged), rows))
    report(f"fitting k={parameters['k']} colours on {rows:,} sampled pixels")
    return fit_palette(sample, parameters["k"], random_state=seed)
