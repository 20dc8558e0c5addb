"""Where a store lives and what may be done there: path safety, recognising a store, removal, URLs.

A store path is a folder, or a URL of object storage (``s3://``, ``gs://``,
``az://``: :func:`is_url`, the one rule of :mod:`palette_dask.inputs.fetch`);
every check here reads either, the URL by its keys through fsspec. A path is
created, replaced, resumed or grown only when :func:`check_store_path` says
so: anything that is not a palette_dask store holding only what zarr writes
is refused and left untouched. Nothing here reads or writes an array.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import zarr
import zarr.storage

from ...errors import StoreError, one_line
from ...inputs.fetch import filesystem, is_url, storage_options

__all__ = [
    "is_url",
    "check_store_path",
    "is_store",
    "store_exists",
    "store_path",
    "zarr_store",
    "remove_store",
    "remove_remnant",
    "remove_partial_writes",
    "task_writes",
]


def store_exists(path) -> bool:
    """Whether anything is at a store path: a file or folder on disk, objects under a URL."""
    return bool(_object_keys(str(path))) if is_url(path) else os.path.lexists(path)


def store_path(group: zarr.Group) -> str | None:
    """Where a store's group lives: its folder, its URL, or None in memory."""
    store = group.store
    if isinstance(store, zarr.storage.MemoryStore):
        return None
    if isinstance(store, zarr.storage.FsspecStore):
        return store.fs.unstrip_protocol(store.path)
    root = getattr(store, "root", None)  # a folder (LocalStore); None for a store of another kind
    return None if root is None else str(root)


def zarr_store(path):
    """What zarr opens for a store or a node in one: the path, or an fsspec store for a URL."""
    if not is_url(path):
        return str(path)
    url = str(path).rstrip("/")
    return zarr.storage.FsspecStore.from_url(url, storage_options=storage_options(url))


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
    if path is not None and "://" in str(path) and not is_url(path):
        raise StoreError(
            f"{path}: a store is a folder, or a URL of object storage (s3://, gs://, az://); "
            "give a local folder as a path"
        )
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


def _filesystem(url):
    """``(fs, root)``: the fsspec file system of a store URL, and the store's path in it."""
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
