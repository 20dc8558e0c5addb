"""Inputs: what the user named (paths, folders, globs, list files, URLs) as a list of image sources.

Folders are searched recursively for image files and zarr arrays, without
descending into zarr nodes (a store inside a folder of photos is never read
as photos); list files hold one input per line. Object-store URLs (s3://,
gs://, az://) may be globs or prefixes, listed the same way. Nothing is
opened here but folders, listings and list files.
"""

from __future__ import annotations

import glob
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from ..errors import ImageReadError, InputError
from .fetch import check_scheme, filesystem, is_http, is_url

__all__ = ["IMAGE_SUFFIXES", "resolve_inputs", "is_array"]

IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jp2",
)  # fmt: skip
#: File name endings taken as lists of inputs, one per line.
LIST_SUFFIXES = (".txt", ".lst", ".list")


def is_zarr_dir(path: Path) -> bool:
    """A folder holding a zarr array or group, v3 or v2 (OME-Zarr 0.4's ``.zgroup``): never searched."""
    return path.is_dir() and any((path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def is_zarr_source(source: str) -> bool:
    """Whether ``source`` (a path or a URL) is a zarr array or group rather than an image file.

    A URL is one when a part of its path ends in ``.zarr``; an object-store
    URL (s3://, gs://, az://) with no image file ending, when the store has
    zarr metadata there.

    Examples
    --------
    >>> is_zarr_source("s3://bucket/scene.zarr/0"), is_zarr_source("https://x.org/a.png")
    (True, False)
    """
    if not is_url(source):
        return is_zarr_dir(Path(source))
    path = urllib.parse.urlsplit(source).path.rstrip("/")
    if any(part.lower().endswith(".zarr") for part in path.split("/")):
        return True
    if is_http(source) or path.lower().endswith(IMAGE_SUFFIXES):
        return False
    fs, key = filesystem(source)
    try:
        return any(fs.exists(f"{key.rstrip('/')}/{name}") for name in ("zarr.json", ".zarray", ".zgroup"))
    except Exception:  # unreadable here: reading it will say why
        return False


def resolve_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Expand inputs into a list of image sources (paths or URLs), in order.

    An input is an image file, a directory (searched recursively for files
    ending in :data:`IMAGE_SUFFIXES`), a glob, a text file (``.txt``, ``.lst``,
    ``.list``) listing inputs one per line (relative paths from the list
    file's folder), a zarr array, or a URL: http(s),
    or s3://, gs://, az:// naming an image, a zarr store, a prefix (searched
    like a directory) or a glob.
    A path that does not exist is kept: reading it fails for that image alone,
    so the rest of a collection still runs. Paths come back absolute (not
    resolving links), so a store names its inputs wherever it is read from.

    Raises
    ------
    InputError
        When nothing is given, a directory or prefix holds no images, a glob
        matches nothing, or a URL has a scheme that is not read here.

    Examples
    --------
    >>> resolve_inputs(["https://example.org/a.png", "/data/missing.png"])
    ['https://example.org/a.png', '/data/missing.png']
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    sources: list[str] = []
    for item in inputs:
        sources.extend(_expand(str(item), allow_lists=True))
    if not sources:
        raise InputError("no inputs given: pass image files, directories, globs or URLs")
    # absolute, so that a store names its inputs wherever it is resumed from
    return list(dict.fromkeys(s if "://" in s else os.path.abspath(s) for s in sources))


def _expand(item: str, *, allow_lists: bool) -> list[str]:
    if item.lower().startswith("file://"):  # a local path written as a URL
        parts = urllib.parse.urlsplit(item)
        if parts.netloc not in ("", "localhost"):
            raise InputError(f"{item}: a file:// URL names a path on this machine, not on {parts.netloc}")
        item = urllib.request.url2pathname(parts.path)
    if "://" in item:
        try:
            check_scheme(item)
        except ImageReadError as exc:
            raise InputError(str(exc)) from None
        return _expand_url(item)
    path = Path(item)
    if is_zarr_dir(path):
        return [item]
    if path.is_dir():
        found = _images_under(path)
        if not found:
            raise InputError(f"{item}: directory holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
        return found
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES and allow_lists:
        return _read_list(path)
    if path.exists() or not glob.has_magic(item):
        return [item]
    found = sorted(glob.glob(item, recursive=True))
    if not found:
        raise InputError(f"{item}: no file matches this pattern")
    return [s for f in found for s in _expand(f, allow_lists=False)]


def _expand_url(url: str) -> list[str]:
    """An object-store glob or prefix as the image files and zarr stores it holds; any other URL as it is."""
    path = urllib.parse.urlsplit(url).path.rstrip("/").lower()
    named = path.endswith(IMAGE_SUFFIXES) or ".zarr" in path
    if is_http(url) or (named and not glob.has_magic(url)):
        return [url]
    fs, key = filesystem(url)
    try:
        if glob.has_magic(key):
            found = [fs.unstrip_protocol(match) for match in sorted(fs.glob(key))]
            found = [f for f in found if f.lower().endswith(IMAGE_SUFFIXES) or is_zarr_source(f)]
            if not found:
                raise InputError(f"{url}: no image or zarr store matches this pattern")
            return found
        if is_zarr_source(url) or not (url.endswith("/") or fs.isdir(key)):
            return [url]
        found = [
            fs.unstrip_protocol(name)
            for name in sorted(fs.find(key))
            if name.lower().endswith(IMAGE_SUFFIXES)
            and not any(part.lower().endswith(".zarr") or part.startswith(".") for part in name.split("/"))
        ]
    except InputError:
        raise
    except Exception as exc:  # credentials, network, a missing bucket
        raise InputError(f"{url}: cannot list: {exc}") from None
    if not found:
        raise InputError(f"{url}: holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return found


def _images_under(folder: Path) -> list[str]:
    """The image files under a folder, sorted; hidden entries and zarr stores (an output's too) left out."""
    found = []
    for parent, subfolders, files in os.walk(folder):
        subfolders[:] = [
            name for name in subfolders if not name.startswith(".") and not is_zarr_dir(Path(parent, name))
        ]
        found.extend(
            os.path.join(parent, name)
            for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    return sorted(found)


def _read_list(path: Path) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the list of inputs: {exc}") from None
    sources = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "://" not in line and not os.path.isabs(line):
            beside = path.parent / line  # a relative path is read from the list file's folder
            if not os.path.lexists(beside) and not glob.has_magic(line) and os.path.lexists(line):
                raise InputError(
                    f"{path}:{number}: {line!r} is read relative to the list file's folder, where "
                    f"{beside} does not exist (it does from here): list absolute paths, or paths "
                    "relative to the list file"
                )
            line = str(beside)
        sources.extend(_expand(line, allow_lists=False))
    if not sources:
        raise InputError(f"{path}: the list of inputs is empty")
    return sources


def is_array(item) -> bool:
    """Whether ``item`` is an in-memory or dask array (numpy, dask, xarray), not a path."""
    return hasattr(item, "shape") and hasattr(item, "dtype") and not isinstance(item, (str, os.PathLike))
