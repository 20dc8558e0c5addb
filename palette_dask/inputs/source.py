"""Source: one input (a path or a URL) classified once, where inputs are expanded.

A :class:`Source` says what palette_dask needs to know before opening an
input: its scheme (local or remote), whether it is a zarr node, whether its
bytes are read by ranges. It is made by :func:`~.sources.resolve_sources`
(or :meth:`Source.of` for a name read back from a store) and carried by
:class:`~.formats.ImageInfo` into every task, so nothing asks again. The one
rule for "is this a URL" (:func:`~.fetch.is_url`) serves inputs and stores alike.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

from .fetch import RANGE_SUFFIXES, filesystem, is_url, scheme

__all__ = ["Source", "IMAGE_SUFFIXES", "STAC_SUFFIXES", "is_zarr_dir", "item_name", "named_zarr"]

#: File name endings taken as images where folders and prefixes are searched.
IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jp2", ".j2k", ".j2c", ".jpx",
)  # fmt: skip
#: The metadata documents that make a folder or prefix a zarr node (v3, v2, OME-Zarr 0.4's group).
ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup")
#: File name endings of STAC documents: an item, an item collection, a STAC API search saved as JSON.
STAC_SUFFIXES = (".json", ".geojson")
#: A STAC item's name in a run: its document (a path or URL ending in a STAC suffix, a URL's query
#: after it), ``#``, its id.
_ITEM_NAME = re.compile(r"(.*?\.(?:geo)?json(?:\?[^#]*)?)#(.+)", re.IGNORECASE | re.DOTALL)


def item_name(text: str) -> tuple[str, str] | None:
    """``(document, id)`` of a STAC item's name, ``<path or URL of its document>#<id>``; else None.

    Examples
    --------
    >>> item_name("/data/search.json#S2B_33UUP_20240601"), item_name("https://x.org/a.tif")
    (('/data/search.json', 'S2B_33UUP_20240601'), None)
    >>> item_name("https://x.org/items.json?X-Amz-Signature=ab#S2B")
    ('https://x.org/items.json?X-Amz-Signature=ab', 'S2B')
    """
    found = _ITEM_NAME.fullmatch(str.__str__(text))
    return (found[1], found[2]) if found else None


def is_zarr_dir(path) -> bool:
    """A folder holding a zarr array or group, v3 or v2 (OME-Zarr 0.4's ``.zgroup``): never searched."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in ZARR_METADATA)


def named_zarr(path: str) -> bool:
    """Whether a part of a path ends in ``.zarr`` (a zarr store named as one)."""
    return any(part.lower().endswith(".zarr") for part in path.rstrip("/").split("/"))


class Source(str):
    """One input as palette_dask reads it: its text (the string itself), scheme, and how its bytes are read.

    A ``str`` (the path or URL a store names, an error message prints) that
    also says what it is, so that nobody asks again; immutable, pickled with
    what it says.

    Attributes
    ----------
    scheme : str
        The URL scheme (``"https"``, ``"s3"``...), ``""`` for a local path.
    zarr : bool
        Whether it is a zarr array or group (read by chunks), not a file.
    item : bool
        Whether it names a STAC item (``<document>#<id>``, :func:`item_name`),
        an image whose bands are its assets' files.

    Examples
    --------
    >>> source = Source.of("s3://bucket/scene.tif")
    >>> source.remote, source.ranges, source.zarr, source == "s3://bucket/scene.tif"
    (True, True, False, True)
    >>> Source.of("https://x.org/mosaic.zarr/0").zarr, Source.of("https://x.org/a.png").ranges
    (True, False)
    """

    __slots__ = ("scheme", "zarr", "item")
    scheme: str
    zarr: bool
    item: bool

    def __new__(cls, text, scheme: str = "", zarr: bool = False, item: bool = False):  # noqa: D102
        self = super().__new__(cls, text)
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "zarr", bool(zarr))
        object.__setattr__(self, "item", bool(item))
        return self

    def __setattr__(self, name, value):
        raise AttributeError(f"a Source is immutable: cannot set {name}")

    def __reduce__(self):
        return Source, (str(self), self.scheme, self.zarr, self.item)

    def __repr__(self) -> str:
        return f"Source({str(self)!r}, scheme={self.scheme!r}, zarr={self.zarr}, item={self.item})"

    @classmethod
    def of(cls, text, *, zarr: bool | None = None, item: bool | None = None) -> Source:
        """The source named ``text``; ``zarr`` and ``item`` as the caller found them, else found here.

        A name read back from a store is an item when it has an item's form
        (:func:`item_name`) and is not a file on this machine of that name.

        A path is a zarr node when it is a folder with zarr metadata; a URL
        when a part of its path ends in ``.zarr``, or, for an object-store
        URL with no image file ending, when the store has zarr metadata
        there (a request or three). A :class:`Source` given is itself.
        """
        if isinstance(text, Source):
            return text
        text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
        name = scheme(text) if is_url(text) else ""
        if item is None:
            item = item_name(text) is not None and (bool(name) or not os.path.lexists(text))
        if zarr is None:
            zarr = not item and _is_zarr(text, name)
        return cls(text, name, zarr and not item, item)

    @property
    def text(self) -> str:
        """The path or URL, as a plain ``str``."""
        return str.__str__(self)

    @property
    def remote(self) -> bool:
        """Whether it is read over the network (a URL), not from this machine's files."""
        return bool(self.scheme)

    @property
    def http(self) -> bool:
        """Whether it is an http(s) URL (whose server may or may not answer range requests)."""
        return self.scheme in ("http", "https")

    @property
    def ranges(self) -> bool:
        """Whether it is a remote TIFF, read by byte ranges (tiles fetched alone) rather than downloaded."""
        return self.remote and not self.zarr and self.path.lower().endswith(RANGE_SUFFIXES)

    @property
    def path(self) -> str:
        """The path part: the local path, or the URL's path."""
        return urllib.parse.urlsplit(self.text).path if self.remote else self.text


def _is_zarr(text: str, name: str) -> bool:
    if not name:
        return is_zarr_dir(text)
    path = urllib.parse.urlsplit(text).path.rstrip("/")
    if named_zarr(path):
        return True
    if name in ("http", "https") or path.lower().endswith(IMAGE_SUFFIXES):
        return False
    try:  # an object-store prefix with no ending: ask the store
        fs, key = filesystem(text)
        return any(fs.exists(f"{key.rstrip('/')}/{meta}") for meta in ZARR_METADATA)
    except Exception:  # unreadable here: reading it will say why
        return False
