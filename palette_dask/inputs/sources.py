"""Inputs: what the user named (paths, folders, globs, list files, URLs) as a list of :class:`Source`.

Folders are searched recursively for image files and zarr arrays, without
descending into zarr nodes (a store inside a folder of photos is never read
as photos); list files hold one input per line. Object-store URLs (s3://,
gs://, az://) may be globs or prefixes, listed the same way. Nothing is
opened here but folders, listings, list files and STAC documents (an item,
an item collection, a saved STAC API search: one source per item, see
:mod:`.stac`). Each source is classified here, once (:class:`~.source.Source`),
as its expansion finds it.
"""

from __future__ import annotations

import glob
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from ..errors import ImageReadError, InputError
from . import stac
from .fetch import check_scheme, filesystem, is_http
from .source import IMAGE_SUFFIXES, STAC_SUFFIXES, Source, is_zarr_dir, item_name

__all__ = ["IMAGE_SUFFIXES", "resolve_inputs", "resolve_sources", "is_array"]

#: File name endings taken as lists of inputs, one per line.
LIST_SUFFIXES = (".txt", ".lst", ".list")


def resolve_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Expand inputs into a list of image sources (paths or URLs), in order.

    The names of :func:`resolve_sources`, which says what each is too.

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
    return [source.text for source in resolve_sources(inputs)]


def resolve_sources(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Source]:
    """Expand inputs into :class:`~.source.Source` values, in order, each classified once.

    See :func:`resolve_inputs` for what an input may be; a :class:`~.source.Source` is kept as it is.

    Examples
    --------
    >>> [(s.text, s.remote, s.zarr) for s in resolve_sources(["https://x.org/a.zarr/0", "/no/b.png"])]
    [('https://x.org/a.zarr/0', True, True), ('/no/b.png', False, False)]
    """
    if isinstance(inputs, (str, os.PathLike, Source)):
        inputs = [inputs]
    sources: list[Source] = []
    for item in inputs:  # a Source given is classified already
        sources.extend([item] if isinstance(item, Source) else _expand(str(item), allow_lists=True))
    if not sources:
        raise InputError("no inputs given: pass image files, directories, globs or URLs")
    # absolute, so that a store names its inputs wherever it is resumed from
    found = (s if s.remote or s.item else Source(os.path.abspath(s.text), s.scheme, s.zarr) for s in sources)
    return list(dict.fromkeys(found))  # a Source hashes as its text: the first of each name kept


def _expand(item: str, *, allow_lists: bool, globbed: bool = False) -> list[Source]:
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
        url_path, fragment = urllib.parse.urlsplit(item).path, urllib.parse.urlsplit(item).fragment
        if _stac_document(url_path) and not fragment and not glob.has_magic(url_path):
            return stac.expand(item)
        if item_name(item) is not None:  # one item of a document, named as a store names it
            return [Source.of(item, zarr=False, item=True)]
        return _expand_url(item)
    named = item_name(item)
    if named is not None and not os.path.lexists(item):  # one item of a document, as a store names it
        return [Source(f"{os.path.abspath(named[0])}#{named[1]}", item=True)]
    path = Path(item)
    if is_zarr_dir(path):
        return [Source(item, zarr=True)]
    if path.is_dir():
        found = _images_under(path)
        if not found:
            raise InputError(f"{item}: directory holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
        return found
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES and allow_lists:
        return _read_list(path)
    if _stac_document(item) and (path.is_file() or not glob.has_magic(item)):
        return stac.expand(item, found=globbed)
    if path.exists() or not glob.has_magic(item):
        return [Source(item)]
    found = sorted(glob.glob(item, recursive=True))
    if not found:
        raise InputError(f"{item}: no file matches this pattern")
    return [s for f in found for s in _expand(f, allow_lists=False, globbed=True)]


def _expand_url(url: str) -> list[Source]:
    """An object-store glob or prefix as the image files and zarr stores it holds; any other URL as it is."""
    path = urllib.parse.urlsplit(url).path.rstrip("/").lower()
    named = path.endswith(IMAGE_SUFFIXES) or ".zarr" in path
    if is_http(url) or (named and not glob.has_magic(url)):
        return [Source.of(url)]
    fs, key = filesystem(url)
    try:
        if glob.has_magic(key):
            matches = [fs.unstrip_protocol(match) for match in sorted(fs.glob(key))]
            found = []
            for match in matches:  # STAC documents expanded (catalogs skipped), images, zarr stores
                if _stac_document(match):
                    found += stac.expand(match, found=True)
                elif (source := Source.of(match)).zarr or match.lower().endswith(IMAGE_SUFFIXES):
                    found.append(source)
            if not found:
                raise InputError(f"{url}: no image or zarr store matches this pattern")
            return found
        source = Source.of(url)
        if source.zarr or not (url.endswith("/") or fs.isdir(key)):
            return [source]
        found = [
            Source.of(fs.unstrip_protocol(name), zarr=False)
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


def _stac_document(path: str) -> bool:
    """Whether a path names a STAC document (an item, a collection of items, a saved search)."""
    return path.lower().endswith(STAC_SUFFIXES)


def _images_under(folder: Path) -> list[Source]:
    """The image files under a folder, sorted; hidden entries and zarr stores (an output's too) left out."""
    found = []
    for parent, subfolders, files in os.walk(folder):
        subfolders[:] = [
            name for name in subfolders if not name.startswith(".") and not is_zarr_dir(Path(parent, name))
        ]
        found.extend(
            Source(os.path.join(parent, name))
            for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    return sorted(found, key=lambda source: source.text)


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
