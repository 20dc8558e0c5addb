"""The formats read, in one list: which reads a source, and which reads an image already probed.

Adding a format is a module of its own defining a :class:`~.formats.Format`
and one entry here. A zarr node is known by its source
(:attr:`~.source.Source.zarr`), as is a STAC item (:attr:`~.source.Source.item`,
its assets read by the formats of their files); a file by its first bytes, each format
asked in the order of :data:`FILE_FORMATS` (Pillow last: it takes the rest).
Arrays given to the API have a format too (``"array"``), which reads nothing
from a file: their chunks are dask's.
"""

from __future__ import annotations

from .formats import Format, ImageInfo
from .jpeg2000 import Jpeg2000Format
from .pillow import PillowFormat
from .source import Source
from .stac import StacFormat
from .tiff import TiffFormat
from .zarr_arrays import ZarrFormat

__all__ = ["FORMATS", "FILE_FORMATS", "ZARR", "STAC", "format_of", "sniff"]


class ArrayFormat(Format):
    """An array given to the API (numpy, dask, xarray): read by dask, from its own chunks."""

    name = "array"

    def cells(self, info):
        return None


#: The zarr format, chosen by the source, not its bytes.
ZARR = ZarrFormat()
#: The formats of files, asked in this order whether they read a file's first bytes.
FILE_FORMATS: tuple[Format, ...] = (TiffFormat(), Jpeg2000Format(), PillowFormat())
#: A STAC item's image, chosen by the source: its assets' files read each by its format.
STAC = StacFormat(FILE_FORMATS)
#: Every format by its name (:attr:`ImageInfo.format`).
FORMATS: dict[str, Format] = {f.name: f for f in (ZARR, STAC, *FILE_FORMATS, ArrayFormat())}


def format_of(info: ImageInfo) -> Format:
    """The format that reads an image probed before.

    Examples
    --------
    >>> format_of(ImageInfo("a.png", "pillow", (2, 3, 3), "uint8")).whole
    True
    """
    return FORMATS[info.format]


def sniff(source: Source, head: bytes) -> Format:
    r"""The format that reads the file ``source``, whose first bytes are ``head``.

    Examples
    --------
    >>> sniff(Source.of("a.tif"), b"II*\x00" + bytes(12)).name, sniff(Source.of("a.png"), b"\x89PNG").name
    ('tiff', 'pillow')
    """
    return next(f for f in FILE_FORMATS if f.sniff(source, head))
