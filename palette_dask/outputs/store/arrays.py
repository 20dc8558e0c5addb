"""The store's arrays: created from the layout's declaration, written a batch at a time, finished.

Per-image arrays are chunked by batch: images ``b * batch_size`` to
``(b + 1) * batch_size`` share one chunk of every per-image array, and the
process that drives the run writes each chunk whole, once, when its batch is
finished (statuses last). So a million images make a few hundred files, no
two writers ever touch one chunk, and a run killed at any moment leaves every
batch either stored or pending. Label rasters are written by the tasks that
count their images, each task its own images (:mod:`palette_dask.outputs.labels`).
"""

from __future__ import annotations

import datetime
import math
import os
import shutil
from pathlib import Path

import numpy as np
import zarr
import zarr.storage

from ..._version import __version__
from ...constants import MAX_BATCH_SIZE
from ...errors import Status, StoreError
from .layout import ARRAYS, AT_CREATION, create
from .paths import check_store_path, is_store, is_url, remove_store, store_exists, zarr_store

__all__ = [
    "MAX_BATCH_SIZE",
    "PENDING",
    "DONE",
    "FAILED",
    "FAILED_TRANSIENT",
    "FAILURES",
    "is_failed",
    "default_batch_size",
    "create_store",
    "append_images",
    "batches",
    "open_store",
    "read_centers_rgb",
    "write_palette",
    "rounded_colours",
    "list_labels",
    "write_batch",
    "write_image_failed",
    "failed_images",
    "finish_store",
]

PENDING, DONE, FAILED, FAILED_TRANSIENT = Status.PENDING, Status.DONE, Status.FAILED, Status.FAILED_TRANSIENT
#: The statuses of a failed image: for good, or on a transient fault (which ``--resume`` reads again).
FAILURES = (FAILED, FAILED_TRANSIENT)
#: By default a run has about this many batches: enough to share among workers, few files in the store.
BATCHES = 32


def default_batch_size(n_images: int) -> int:
    """Images per batch by default: ``n / 32``, from 1 to :data:`MAX_BATCH_SIZE`.

    A million images make 123 batches, so a few hundred files in the store
    and as many tasks per pass; 20,000 make 32. The batching never changes
    a result, only how the work and the store are divided.

    Examples
    --------
    >>> default_batch_size(5), default_batch_size(20_000), default_batch_size(1_000_000)
    (1, 625, 8192)
    """
    return int(min(MAX_BATCH_SIZE, max(1, -(-n_images // BATCHES))))


def dims(*names) -> dict:
    """``create_array``'s keyword naming an array's dimensions (xarray reads them)."""
    return {"dimension_names": list(names)}


def create_store(
    path: str | os.PathLike | None,
    image_names: list[str],
    *,
    attrs: dict,
    overwrite: bool = False,
    batch_size: int | None = None,
) -> zarr.Group:
    """Create the group and its per-image arrays, chunked by batch; ``path=None`` keeps it in memory.

    With ``overwrite``, an existing palette_dask store at ``path`` is replaced;
    anything else there is refused and left untouched (see :func:`check_store_path`).

    Raises
    ------
    StoreError
        When ``path`` exists and is not a store ``overwrite`` may replace.
    """
    check_store_path(path, overwrite=overwrite)
    if is_url(path):
        remove_store(path)  # a palette_dask store, checked just above (or nothing)
    elif path is not None and os.path.lexists(path) and any(Path(path).iterdir()):
        shutil.rmtree(path)  # a palette_dask store, checked just above
    n = len(image_names)
    batch = int(batch_size or default_batch_size(n))
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    attributes = {
        **attrs,
        "palette_dask_version": __version__,
        "created": created,
        "batch_size": batch,
        "complete": False,
    }
    store = zarr.storage.MemoryStore() if path is None else zarr_store(path)
    group = zarr.open_group(store, mode="w-", attributes=attributes)  # recognisable from its first write
    sizes = {"image": n, "batch": batch}
    for name in AT_CREATION:
        create(group, name, sizes)
    names = group["image_names"]
    for start in range(0, n, batch):  # a chunk at a time: one long URL must not widen the whole array
        names[start : start + batch] = np.array(image_names[start : start + batch], dtype=object)
    own = int(attrs.get("parameters", {}).get("per_image") or 0)
    if own:  # each image's own palette (per_image=K): its colours and their shares
        for name in ("image_palettes", "image_palette_shares"):
            create(group, name, {**sizes, "own_color": own})
    return group


def append_images(group: zarr.Group, image_names: list[str]) -> range:
    """Grow every per-image array of ``group`` by ``image_names``, pending; returns their indices.

    The store's batches stay its chunks: the new images fill its last batch
    (whose images held are kept as stored, see :func:`write_batch`), then new
    ones. The store is marked incomplete until they are counted.
    """
    n, batch = group["image_status"].shape[0], group["image_status"].chunks[0]
    total = n + len(image_names)
    group.attrs["complete"] = False  # first: a kill from here on leaves a store to resume
    for name, array in group.arrays():
        if name.startswith("image_") and name != "image_status":  # their first axis is the image
            array.resize((total, *array.shape[1:]))
    names, start = group["image_names"], n
    while start < total:  # as created: a chunk at a time
        stop = min((start // batch + 1) * batch, total)
        names[start:stop] = np.array(image_names[start - n : stop - n], dtype=object)
        start = stop
    group["image_status"].resize((total,))  # last: its length is the store's number of images
    shown = list(group.attrs.get("inputs", []))
    group.attrs.update({"n_inputs": total, "inputs": shown + image_names[: max(0, 1000 - len(shown))]})
    return range(n, total)


def batches(group: zarr.Group) -> list[range]:
    """The store's batches, as ranges of image indices (its chunks along the image axis)."""
    n, batch = group["image_status"].shape[0], group["image_status"].chunks[0]
    return [range(start, min(start + batch, n)) for start in range(0, n, batch)]


def open_store(path: str | os.PathLike, mode: str = "r") -> zarr.Group:
    """Open an existing store, with a clear error when it is not one."""
    if not is_store(path):
        what = "no palette_dask group there" if store_exists(path) else "no such folder"
        raise StoreError(f"{path}: not a palette_dask store ({what})")
    try:
        group = zarr.open_group(zarr_store(path), mode=mode)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        raise StoreError(f"{path}: not a palette_dask store (no zarr group there)") from None
    if "image_status" not in group:
        raise StoreError(f"{path}: not a palette_dask store (no image_status array)")
    return group


def read_centers_rgb(group: zarr.Group) -> np.ndarray:
    """A store's centres as sRGB floats (``centers_rgb``; ``centers`` in older sRGB stores, which had one)."""
    return group["centers_rgb" if "centers_rgb" in group else "centers"][:]


def write_palette(group: zarr.Group, centers: np.ndarray, centers_rgb: np.ndarray | None = None) -> None:
    """Write the centres, as sRGB and as colours, and make the (n, k) count array.

    ``centers`` are in the clustering space (CIELAB or sRGB), ``centers_rgb``
    the same centres as sRGB floats 0–255 (default: ``centers``, for a palette
    clustered in sRGB); ``colors`` are those rounded to 8 bits, the colours
    shown. ``centers`` goes last: its presence is what says the palette is complete.
    """
    centers_rgb = centers if centers_rgb is None else centers_rgb
    n, batch = group["image_status"].shape[0], group["image_status"].chunks[0]
    sizes = {"image": n, "batch": batch, "color": len(centers)}
    # overwrite: what a run stopped while writing the palette left behind
    create(group, "image_counts", sizes, overwrite=True)
    create(group, "colors", sizes, overwrite=True)[:] = rounded_colours(centers_rgb)
    create(group, "centers_rgb", sizes, overwrite=True)[:] = centers_rgb
    create(group, "centers", sizes)[:] = centers


def rounded_colours(centers_rgb) -> np.ndarray:
    """The colours shown: sRGB centres rounded to 8 bits."""
    return np.clip(np.rint(np.asarray(centers_rgb, dtype=np.float64)), 0, 255).astype(np.uint8)


def list_labels(group: zarr.Group) -> None:
    """List the label images under ``labels`` in its metadata, as OME-Zarr readers look for them."""
    if "labels" in group:
        names = sorted(group["labels"].group_keys(), key=int)
        group["labels"].attrs["ome"] = {"version": "0.5", "labels": names}


def write_batch(group: zarr.Group, result, *, held: np.ndarray | None = None) -> None:
    """Write one finished batch: a whole chunk of every per-image array, statuses last.

    ``result`` is a :class:`~palette_dask.kernels.count.BatchCounts`: its rows are
    images ``result.start`` onwards, and its start is a chunk boundary; each
    declared per-image array is written from its attribute of the same name
    less ``image_`` (``counts``, ``errors``, ``pixel_size``...). A
    crash before the statuses are written leaves the batch pending, so
    ``--resume`` counts it again; never half a result marked done. Rows where
    ``held`` is true (images the store holds already, in a batch ``append``
    grew) keep their stored values.
    """
    rows = slice(result.start, result.start + len(result.status))
    kept = held is not None and held.any()

    def write(name, values):
        if kept:  # the chunk is written whole: its held rows as they are stored
            values = np.array(values, dtype=object if values.dtype.kind in "OUT" else values.dtype)
            values[held] = group[name][rows][held]
        group[name][rows] = values

    for array in ARRAYS:  # each per-image array the batch carries (older stores lack some), statuses last
        value = getattr(result, array.name.removeprefix("image_"), None)
        if array.per_image and array.name in group and value is not None and array.name != "image_status":
            write(array.name, np.array(value, dtype=object) if array.dtype == "str" else value)
    valid = result.counts.sum(axis=1)
    measured = getattr(result, "error_pixels", None)
    if measured is not None and "image_error_pixels" not in group and (measured != valid).any():
        _add_error_pixels(group)  # an older store, resumed or appended to, that now holds estimates
        write("image_error_pixels", measured)
    write("image_valid", valid)
    write("image_status", result.status)


def _add_error_pixels(group: zarr.Group) -> None:
    """Give an older store ``image_error_pixels``: its images so far had their errors measured whole."""
    n, batch = group["image_status"].shape[0], group["image_status"].chunks[0]
    error_pixels = create(group, "image_error_pixels", {"image": n, "batch": batch})
    for rows in batches(group):
        error_pixels[rows.start : rows.stop] = group["image_valid"][rows.start : rows.stop]


def is_failed(status) -> np.ndarray:
    """Which of the statuses ``status`` say failed, for good or on a transient fault.

    Examples
    --------
    >>> is_failed(np.array([0, 1, 2, 3], np.uint8))
    array([False, False,  True,  True])
    """
    return np.isin(status, FAILURES)


def failed_images(path: str | os.PathLike, *, permanent: bool = False) -> int:
    """How many images the store at ``path`` records as failed (0 without a store), a batch at a time.

    With ``permanent``, only those that failed for good: not those a resume reads again.
    """
    if path is None or not is_store(path):
        return 0
    group = open_store(path)
    status, counted = group["image_status"], (FAILED,) if permanent else FAILURES
    return sum(int(np.isin(status[rows.start : rows.stop], counted).sum()) for rows in batches(group))


def write_image_failed(group: zarr.Group, index: int, error: str, *, transient: bool = False) -> None:
    """Record one failed image, why, and whether on a transient fault."""
    group["image_errors"][index] = error
    group["image_status"][index] = FAILED_TRANSIENT if transient else FAILED


def finish_store(group: zarr.Group) -> None:
    """Write the global counts, inertia and CIELAB error, and mark the store complete.

    ``lab_error`` is the mean over every valid pixel of the squared CIELAB
    distance (ΔE*ab²) to its nearest palette colour as shown (8-bit sRGB).
    """
    k = group["centers"].shape[0] if "centers" in group else 0
    counts, squared, lab = np.zeros(k, dtype=np.int64), [], []
    for rows in batches(group):  # a chunk at a time: the (n, k) counts are never all in memory
        done = group["image_status"][rows.start : rows.stop] == DONE
        if k:
            counts += group["image_counts"][rows.start : rows.stop][done].sum(axis=0)
        squared.append(group["image_squared_error"][rows.start : rows.stop][done])
        lab.append(group["image_lab_squared_error"][rows.start : rows.stop][done])
    create(group, "counts", {"color": k}, overwrite=True)[:] = counts
    valid = int(counts.sum())
    list_labels(group)
    inertia, lab_error = (math.fsum(np.concatenate([[], *parts])) for parts in (squared, lab))  # exact sums
    group.attrs.update(
        {
            "inertia": inertia if k else None,
            "lab_error": lab_error / valid if valid else None,
            "complete": True,
        }
    )
