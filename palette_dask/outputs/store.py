"""Store: the zarr v3 group that holds a run's palette and histograms.

Layout (ARCHITECTURE.md, "Store layout"): ``centers`` (k, 3) float32 in the clustering space,
``centers_rgb`` the same as sRGB floats, ``colors`` (k, 3) uint8 as shown,
``counts`` (k,) int64, and per image ``image_names``, ``image_counts``
(n, k), ``image_valid``, ``image_masked``, ``image_status`` (0 pending,
1 done, 2 failed), ``image_errors``, the squared errors and
``image_pixel_size`` (n, 2: metres, 0 where unknown); optionally
``image_palettes`` (n, K, 3) and ``image_palette_shares`` (n, K), each
image's own colours (``per_image=K``), and ``labels/<i>``, an OME-Zarr
label image per input. Every array names its
dimensions, so xarray reads the group too. The group's attributes record the
parameters, the package version, ``batch_size`` and ``complete``, true once
every image is done or failed.

Per-image arrays are chunked by batch: images ``b * batch_size`` to
``(b + 1) * batch_size`` share one chunk of every per-image array, and the
process that drives the run writes each chunk whole, once, when its batch is
finished (statuses last). So a million images make a few hundred files, no
two writers ever touch one chunk, and a run killed at any moment leaves every
batch either stored or pending. Label rasters are written by the tasks that
count their images, each task its own images.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import zarr
import zarr.storage

from .._version import __version__
from ..constants import MAX_BATCH_SIZE
from ..errors import Status, StoreError, one_line

__all__ = [
    "MAX_BATCH_SIZE",
    "default_batch_size",
    "PENDING",
    "DONE",
    "FAILED",
    "create_store",
    "append_images",
    "check_store_path",
    "is_store",
    "open_store",
]

PENDING, DONE, FAILED = Status.PENDING, Status.DONE, Status.FAILED
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

    def per_image(name, dtype, fill_value):
        return group.create_array(
            name, shape=(n,), chunks=(batch,), dtype=dtype, fill_value=fill_value, **dims("image")
        )

    names = per_image("image_names", str, "")
    for start in range(0, n, batch):  # a chunk at a time: one long URL must not widen the whole array
        names[start : start + batch] = np.array(image_names[start : start + batch], dtype=object)
    per_image("image_status", "uint8", int(PENDING))
    per_image("image_errors", str, "")
    per_image("image_valid", "int64", 0)
    per_image("image_masked", "int64", 0)
    per_image("image_squared_error", "float64", 0.0)
    per_image("image_lab_squared_error", "float64", 0.0)
    group.create_array(  # a pixel's height and width in metres where the input declares them, else 0
        "image_pixel_size", shape=(n, 2), chunks=(batch, 2), dtype="float64", fill_value=0.0,
        **dims("image", "side"),
    )  # fmt: skip
    own = int(attrs.get("parameters", {}).get("per_image") or 0)
    if own:  # each image's own palette (per_image=K): its colours and their shares
        group.create_array(
            "image_palettes", shape=(n, own, 3), chunks=(batch, own, 3), dtype="uint8", fill_value=0,
            **dims("image", "own_color", "channel"),
        )  # fmt: skip
        group.create_array(
            "image_palette_shares", shape=(n, own), chunks=(batch, own), dtype="float64", fill_value=0.0,
            **dims("image", "own_color"),
        )  # fmt: skip
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


def remove_store(path: str | os.PathLike) -> None:
    """Remove a palette_dask store (and only one: anything else at ``path`` is left as it is).

    Its group's ``zarr.json`` goes first: a task still writing a label raster
    into the store sees it gone and removes what it wrote (:func:`task_writes`).
    """
    if is_store(path) and is_url(path):
        fs, root = _filesystem(path)
        keys = _object_keys(path)
        fs.rm_file(f"{root}/zarr.json")
        _remove_keys(fs, root, keys)
    elif is_store(path):
        (Path(path) / "zarr.json").unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)


def _remove_keys(fs, root: str, keys: list[str]) -> None:
    """Remove the objects listed under a store URL, and only them: a store at a bucket's root keeps it."""
    listed = [f"{root}/{key}" for key in keys if key]
    if listed:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(listed)


def remove_remnant(path: str | os.PathLike) -> bool:
    """Remove what tasks killed while writing left of a store this run removed; whether anything went.

    Only a folder that is no store (its group's ``zarr.json`` is gone) and
    holds nothing but what zarr writes (see :func:`check_store_path`) is removed.
    """
    if is_url(path):
        keys = _object_keys(path)
        # its zarr.json certainly gone: a store out of reach for a while is not a remnant
        if not keys or not _url_gone(path) or _foreign_key(keys) is not None:
            return False
        fs, root = _filesystem(path)
        _remove_keys(fs, root, keys)
        return True
    path = Path(path)
    if not path.is_dir() or path.is_symlink() or is_store(path) or _foreign_entry(path) is not None:
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


@contextlib.contextmanager
def task_writes(node: str | os.PathLike):
    """Write under ``node``, a label image of a store (``<store>/labels/<i>``), from a task.

    A task may still be writing when the run that started it stops and
    removes its store (an interrupted run that stored no image). Whatever the
    outcome of the write, if the store's group is gone by its end, the task
    removes the node it wrote and the folders left empty above it, up to
    the store's own: nothing of a removed store is left behind. A store in
    object storage has no folders: the node's objects go.
    """
    node = str(node).rstrip("/")
    root = os.path.dirname(os.path.dirname(node))
    try:
        yield
    finally:
        if is_url(node) and _url_gone(root):
            fs, path = _filesystem(node)
            with contextlib.suppress(FileNotFoundError):
                fs.rm(path, recursive=True)
        elif not is_url(node) and not os.path.exists(os.path.join(root, "zarr.json")):
            shutil.rmtree(node, ignore_errors=True)
            for folder in (os.path.dirname(node), root):
                try:
                    os.rmdir(folder)
                except OSError:  # not empty: another task's, which removes it in turn
                    break


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a palette_dask store: a folder with a zarr v3 group of palette_dask's attributes.

    Only the group's ``zarr.json`` is read (as JSON, at most 16 MB); nothing is opened or changed.

    Examples
    --------
    >>> is_store(".")
    False
    """
    try:
        if is_url(path):
            document = _url_metadata(path)
        else:
            metadata = Path(path) / "zarr.json"
            if Path(path).is_symlink() or metadata.stat().st_size > 2**24:
                return False
            document = json.loads(metadata.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(document, dict):
        return False
    attributes = document.get("attributes")
    return (
        document.get("node_type") == "group"
        and isinstance(attributes, dict)
        and "palette_dask_version" in attributes
        and "parameters" in attributes
    )


def _foreign_entry(root: Path) -> str | None:
    """The first entry under a store's folder that zarr did not write there, or None.

    A store holds ``zarr.json`` files (one per group or array), chunk files
    under each array's ``c/`` folder (named by their chunk index), and the
    ``*.partial`` files of interrupted writes; nothing else, and no links.
    """
    for folder, subfolders, files in os.walk(root):
        where = Path(folder).relative_to(root)
        in_chunks = "c" in where.parts
        for name in subfolders:
            if (Path(folder) / name).is_symlink() or (in_chunks and not name.isdigit()):
                return str(where / name)
        for name in files:
            if (Path(folder) / name).is_symlink():
                return str(where / name)
            if _zarr_file(name, in_chunks):
                continue
            return str(where / name)
    return None


def check_store_path(
    path: str | os.PathLike | None, *, overwrite: bool = False, resume: bool = False, append: bool = False
) -> None:
    """Refuse, before anything runs, a store path that the run must not create, replace, resume or grow.

    A path that does not exist, or an empty folder, is free. ``resume`` and
    ``append`` need a palette_dask store there. ``overwrite`` replaces only a palette_dask store
    (recognised by :func:`is_store`) that holds nothing but what zarr wrote: a
    file, a link, a folder of photos or any other folder is refused, untouched.

    Raises
    ------
    StoreError
        Naming the path and the reason, on one line.

    Examples
    --------
    >>> check_store_path("README.md", overwrite=True)
    Traceback (most recent call last):
    ...
    palette_dask.errors.StoreError: README.md: is a file, not a palette_dask store; \
--overwrite only replaces a store made by palette-dask: choose another output
    """
    if is_url(path):  # a store in object storage: the same rules, by its keys
        keys = _keys_where_a_store_goes(str(path))
        if not keys:
            return
    elif path is None or not os.path.lexists(path):
        return
    elif os.path.isdir(path) and not os.path.islink(path) and not any(Path(path).iterdir()):
        return  # an empty folder: nothing in it to lose
    recognised = is_store(path)
    if resume or append:
        if not recognised:
            doing = "--append adds images to" if append else "--resume finishes"
            raise StoreError(f"{path}: not a palette_dask store; {doing} a store made by palette-dask")
        return
    if not overwrite:
        if recognised:
            raise StoreError(
                f"{path}: already exists; pass --overwrite (overwrite=True) to replace it "
                "or --resume (resume=True) to finish it"
            )
        raise StoreError(f"{path}: already exists and is not a palette_dask store: choose another output")
    refusal = "--overwrite only replaces a store made by palette-dask: choose another output"
    if is_url(path):
        if not recognised:
            raise StoreError(f"{path}: holds objects that are not a palette_dask store; {refusal}")
        stray = _foreign_key(keys)
    else:
        if os.path.islink(path):
            raise StoreError(f"{path}: is a symbolic link, not a palette_dask store; {refusal}")
        if not os.path.isdir(path):
            raise StoreError(f"{path}: is a file, not a palette_dask store; {refusal}")
        if not recognised:
            raise StoreError(f"{path}: is a folder that is not a palette_dask store; {refusal}")
        stray = _foreign_entry(Path(path))
    if stray is not None:
        raise StoreError(f"{path}: holds {stray}, which palette-dask did not write; {refusal}")


def _zarr_file(name: str, in_chunks: bool) -> bool:
    """Whether zarr writes a file so named: ``zarr.json``, a chunk under ``c/`` (digits), a partial write."""
    return name.endswith(".partial") or (name.isdigit() if in_chunks else name == "zarr.json")


def _foreign_key(keys: list[str]) -> str | None:
    """:func:`_foreign_entry` for the keys of an object store (paths within the store, ``/``-separated)."""
    for key in keys:
        *folders, name = key.split("/")
        in_chunks = "c" in folders
        chunk_folders = folders[folders.index("c") + 1 :] if in_chunks else []
        if not all(part.isdigit() for part in chunk_folders) or not _zarr_file(name, in_chunks):
            return key
    return None


def store_path(group: zarr.Group) -> str | None:
    """Where a store's group lives: its folder, its URL, or None in memory."""
    store = group.store
    if isinstance(store, zarr.storage.MemoryStore):
        return None
    if isinstance(store, zarr.storage.FsspecStore):
        return store.fs.unstrip_protocol(store.path)
    root = getattr(store, "root", None)  # a folder (LocalStore); None for a store of another kind
    return None if root is None else str(root)


def store_exists(path) -> bool:
    """Whether anything is at a store path: a file or folder on disk, objects under a URL."""
    return bool(_object_keys(str(path))) if is_url(path) else os.path.lexists(path)


def is_url(path) -> bool:
    """Whether a store path is a URL (``s3://``, ``gs://``, ``az://``...): a store in object storage."""
    return path is not None and "://" in str(path)


def _filesystem(url):
    """``(fs, root)``: the fsspec file system of a store URL, and the store's path in it."""
    from ..inputs.fetch import filesystem

    return filesystem(str(url).rstrip("/"))


def _url_metadata(url) -> dict | None:
    """The group metadata (``zarr.json``) of a store URL; None where it cannot be read, for any reason."""
    try:
        fs, root = _filesystem(url)
        fs.invalidate_cache(root)
        if fs.size(f"{root}/zarr.json") > 2**24:
            return None
        return json.loads(fs.cat_file(f"{root}/zarr.json"))
    except Exception:  # missing, unreachable, refused: no store to recognise
        return None


def _url_gone(url) -> bool:
    """Whether a store URL's group metadata is certainly gone (missing, not unreadable for a while)."""
    try:
        fs, root = _filesystem(url)
        fs.invalidate_cache(root)
        fs.size(f"{root}/zarr.json")
    except FileNotFoundError:
        return True
    except Exception:  # throttled, a timeout, credentials: what was written stays
        return False
    return False


def zarr_store(path):
    """What zarr opens for a store or a node in one: the path, or an fsspec store for a URL."""
    if not is_url(path):
        return str(path)
    from ..inputs.fetch import storage_options

    url = str(path).rstrip("/")
    return zarr.storage.FsspecStore.from_url(url, storage_options=storage_options(url))


def _object_keys(url: str) -> list[str]:
    """The keys under a store URL, relative to it (none when nothing is there)."""
    fs, root = _filesystem(url)
    fs.invalidate_cache(root)  # listings fsspec cached may predate writes through zarr's own instance
    try:
        return [key[len(root) :].lstrip("/") for key in fs.find(root)]
    except FileNotFoundError:
        return []
    except Exception as exc:  # botocore's, aiohttp's... : the store cannot be listed
        raise StoreError(f"{url}: cannot list the store: {one_line(exc)}") from None


def _keys_where_a_store_goes(url: str) -> list[str]:
    """The keys under a store URL; refused where no store can go (http(s), a bucket that does not exist)."""
    if url.split("://", 1)[0].lower() in ("http", "https"):
        raise StoreError(
            f"{url}: http(s) is read-only; write the store to a folder or to s3://, gs://, az://"
        )
    keys = _object_keys(url)
    if not keys:
        fs, root = _filesystem(url)
        bucket = root.split("/", 1)[0]
        if not fs.exists(bucket):
            raise StoreError(f"{url}: there is no bucket {bucket!r} (the store goes in an existing one)")
    return keys


def remove_partial_writes(path: str | os.PathLike) -> int:
    """Delete the temporary files a killed write left in a store on disk; returns how many.

    zarr writes each chunk to ``<chunk>.<uuid>.partial`` and then renames it, so a
    process killed in between leaves that file behind, never a half-written chunk.
    Only a folder that :func:`is_store` recognises is searched; links are not followed.
    """
    if not is_store(path):
        raise StoreError(f"{path}: not a palette_dask store; its files are left as they are")
    if is_url(path):
        return 0  # an object store writes each object whole: none is left half written
    removed = 0
    for folder, _, files in os.walk(path):
        for name in files:
            if name.endswith(".partial"):
                (Path(folder) / name).unlink(missing_ok=True)
                removed += 1
    return removed


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
    k = len(centers)
    n, batch = group["image_status"].shape[0], group["image_status"].chunks[0]
    group.create_array(
        "image_counts",
        shape=(n, k),
        chunks=(batch, max(k, 1)),
        dtype="int64",
        fill_value=0,
        overwrite=True,
        **dims("image", "color"),
    )  # overwrite: what a run stopped while writing the palette left behind
    palette = {"shape": (k, 3), **dims("color", "channel")}
    group.create_array("colors", dtype="uint8", overwrite=True, **palette)[:] = rounded_colours(centers_rgb)
    group.create_array("centers_rgb", dtype="float32", overwrite=True, **palette)[:] = centers_rgb
    group.create_array("centers", dtype="float32", **palette)[:] = centers


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
    images ``result.start`` onwards, and its start is a chunk boundary. A
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

    if "image_counts" in group:
        write("image_counts", result.counts)
    write("image_valid", result.counts.sum(axis=1))
    write("image_masked", result.masked)
    write("image_squared_error", result.squared_error)
    write("image_lab_squared_error", result.lab_squared_error)
    write("image_errors", np.array(result.errors, dtype=object))
    if "image_pixel_size" in group:  # older stores have none
        write("image_pixel_size", result.pixel_size)
    if result.palettes is not None:
        write("image_palettes", result.palettes)
        write("image_palette_shares", result.palette_shares)
    write("image_status", result.status)


def write_image_failed(group: zarr.Group, index: int, error: str) -> None:
    """Record one failed image and why."""
    group["image_errors"][index] = error
    group["image_status"][index] = FAILED


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
    group.create_array("counts", shape=(k,), dtype="int64", overwrite=True, **dims("color"))[:] = counts
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
