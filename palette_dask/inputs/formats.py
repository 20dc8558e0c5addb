"""Formats: the interface every format implements, and what they share: what a probe learns, layouts, limits.

Each format is a :class:`Format` in a module of its own: TIFF (:mod:`.tiff`),
JPEG 2000 (:mod:`.jpeg2000`), PNG, JPEG and Pillow's other formats
(:mod:`.pillow`, with :mod:`.headers`), zarr and OME-Zarr
(:mod:`.zarr_arrays`); :mod:`.registry` lists them and
picks the one that reads a source. An :class:`ImageInfo` is what a probe
learns from a header; every image comes out as ``(rows, columns, bands)``
whatever its stored layout (:func:`to_yxc`). A block a decoder makes whole
(a tile, a strip, a chunk) may hold at most :func:`whole_block_bytes`; an
image decoded whole at most ``max_pixels``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dask.array as da
import numpy as np

from ..constants import DEFAULT_MAX_PIXELS
from ..errors import ImageReadError
from .fetch import local_copy, open_url, process_folder
from .source import Source

__all__ = ["ImageInfo", "Format", "whole_block_bytes"]


@dataclass(frozen=True)
class ImageInfo:
    """What the header of one image says, enough to read it lazily.

    Attributes
    ----------
    source : Source
        The path or URL, classified (a string given is taken as a file's name).
    format : str
        The name of the :class:`Format` that reads it (:data:`.registry.FORMATS`):
        ``"tiff"``, ``"jpeg2000"``, ``"pillow"`` (PNG, JPEG, GIF, BMP, WebP...),
        ``"zarr"``, or ``"array"`` (an array given to the API).
    shape : tuple of int
        ``(rows, columns, bands)`` of the array :func:`read_image` gives.
    dtype : str
        Its dtype (``"uint8"``, ``"uint16"``, ``"float32"``...).
    alpha : bool
        Whether the last band is alpha (transparency).
    nodata : float or None
        A pixel whose bands all equal this value is left out (GeoTIFF ``GDAL_NODATA``).
    tile : tuple of int
        ``(rows, columns)`` of the file's own tiles or strips; chunks are multiples of it.
    axes : str
        Layout of the stored array, one letter per dimension: ``y`` rows, ``x``
        columns, ``c`` bands; any other axis has length one and is read at 0.
        ``"yxc"`` is channels last, ``"cyx"`` planar, ``"tczyx"`` OME-Zarr.
    banded : bool
        A TIFF whose strips are too big to decode whole: each task decodes only
        the band of rows it reads (uncompressed or deflate strips), so chunks
        are bands of rows of any height.
    downloads : str or None
        For a URL decoded whole (a remote PNG...), the folder of the run's
        downloads, where readers find its local copy (see
        :func:`palette_dask.inputs.fetch.local_copy`); None for remote TIFFs and
        zarr stores, read by ranges and chunks.
    pixel_size : tuple of float or None
        ``(height, width)`` of a pixel in metres, where the format declares
        it (see :mod:`palette_dask.inputs.physical`); None otherwise.
    level : int
        The level of a TIFF's pyramid read (0: full resolution; previews
        read a lower one, see :func:`palette_dask.inputs.read.pyramid_level`).
    shown_bands : tuple of int or None
        The bands the format says to show as red, green and blue (an
        OME-Zarr image's ``omero`` channel colours); None: bands in order.
    band_names : tuple of str or None
        Each band's name, where the format gives them (``omero`` channel labels: DAPI, FITC...).
    parts : tuple of ImageInfo or None
        The images whose bands are stacked as this one's, in order (a STAC
        item's assets, :mod:`palette_dask.inputs.stac`); None for an image of one file.
    datetime : str
        When it was acquired, as the input says it (a STAC item's ``datetime``); ``""`` where it does not.
    crs : str
        Its coordinate reference system, as ``EPSG:<code>`` (a STAC item's ``proj:code``, a
        GeoTIFF's GeoKeys); ``""`` where the input declares none.
    nodata_conflict : str
        Where the input's parts declare different no-data values (a STAC
        item's assets), the line that says so, raised unless a run gives
        ``nodata`` (:func:`~palette_dask.kernels.pixels.pixel_spec`); ``nodata`` is then None.
    """

    source: Source
    format: str
    shape: tuple[int, int, int]
    dtype: str
    alpha: bool = False
    nodata: float | None = None
    tile: tuple[int, int] = (0, 0)
    axes: str = "yxc"
    banded: bool = False
    downloads: str | None = None
    pixel_size: tuple[float, float] | None = None
    level: int = 0
    shown_bands: tuple[int, int, int] | None = None
    band_names: tuple[str, ...] | None = None
    parts: tuple[ImageInfo, ...] | None = None
    datetime: str = ""
    crs: str = ""
    nodata_conflict: str = ""

    def __post_init__(self):
        if not isinstance(self.source, Source):  # a file's name (a zarr probe gives its Source): no request
            object.__setattr__(self, "source", Source.of(self.source, zarr=False))

    @property
    def name(self) -> str:
        """The source's text: the path or URL a store names."""
        return self.source.text

    @property
    def pixels(self) -> int:
        """Number of pixels (rows × columns)."""
        return self.shape[0] * self.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded image."""
        return self.pixels * self.shape[2] * np.dtype(self.dtype).itemsize

    @property
    def channels(self) -> str:
        """``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"``, or ``"7 bands"`` for other layouts."""
        colour = self.shape[2] - self.alpha
        name = {1: "L", 3: "RGB"}.get(colour)
        if name is None:
            return f"{self.shape[2]} bands"
        return name + "A" * self.alpha


def open_source(source: Source | str, downloads: str | None = None):
    """A binary file object for an image: the file, a remote TIFF read by byte ranges, or a URL's local copy.

    A URL decoded whole, or a remote TIFF given a ``downloads`` folder (its
    server does not answer range requests), is read from its local copy in
    ``downloads`` (by default a folder of this process's), downloaded first
    unless this host has it there already. A name given (an image a store
    names) is a file's: opened as a file, never as a zarr node.
    """
    source = Source.of(source, zarr=False)
    if source.ranges and downloads is None:
        return open_url(source.text)
    if source.remote:
        return open_bytes(local_copy(source.text, downloads or process_folder()), source.text)
    return open_bytes(source.text)


def file_size(handle) -> int:
    """Bytes in an open file, local or remote."""
    size = getattr(handle, "size", None)  # fsspec's remote files
    return size if isinstance(size, int) else os.fstat(handle.fileno()).st_size


def open_bytes(source: str, name: str | None = None):
    """A binary file object for a local path; errors name ``name`` (the input), or the path."""
    name = name or source
    try:
        if os.path.isdir(source):
            raise ImageReadError(f"{name}: is a directory, not an image")
        handle = open(source, "rb")  # noqa: SIM115 (closed by the caller)
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except OSError as exc:
        raise ImageReadError(f"{name}: cannot open: {exc.strerror or exc}") from None
    return handle


_AXIS_NAMES = {
    "y": "y", "row": "y", "rows": "y", "lat": "y", "latitude": "y",
    "x": "x", "col": "x", "cols": "x", "column": "x", "columns": "x", "lon": "x", "longitude": "x",
    "c": "c", "s": "c", "channel": "c", "channels": "c", "band": "c", "bands": "c", "rgb": "c",
}  # fmt: skip


def _other_axis(name: str) -> str:
    """A letter for an axis that is not rows, columns or bands (``t``, ``z``...): never y, x or c."""
    letter = name.lower()[:1]
    return letter if letter and letter not in "yxc" else "o"


#: Channel colours that show a band as red, green or blue.
_PRIMARIES = {"FF0000": 0, "00FF00": 1, "0000FF": 2}


def shown_channels(channels: list, bands: int) -> tuple[tuple[int, int, int] | None, tuple[str, ...] | None]:
    """``(shown_bands, band_names)`` of an image whose format describes its channels, one per band.

    ``channels`` are as OME-Zarr's ``omero`` lists them (``label``,
    ``color`` as ``RRGGBB``, ``active``; OME-TIFF's are read into that
    form). The bands are shown as red, green and blue where the active
    channels are coloured pure red, green and blue, one each (DAPI in blue
    is then shown blue, whatever its place); their labels name them. Either
    is None where the channels do not say it, or are not one per band.

    Examples
    --------
    >>> channels = [{"label": "DAPI", "color": "0000FF"}, {"label": "FITC", "color": "00FF00"},
    ...             {"label": "TRITC", "color": "FF0000"}]
    >>> channels.append({"label": "Cy5", "color": "FF00FF", "active": False})
    >>> shown_channels(channels, 4)
    ((2, 1, 0), ('DAPI', 'FITC', 'TRITC', 'Cy5'))
    >>> shown_channels(channels[:2], 2), shown_channels(channels, 3)
    ((None, ('DAPI', 'FITC')), (None, None))
    """
    if len(channels) != bands or not all(isinstance(channel, dict) for channel in channels):
        return None, None
    labels = [channel.get("label") for channel in channels]
    names = tuple(labels) if all(isinstance(label, str) for label in labels) else None
    found: dict[int, int] = {}
    for band, channel in enumerate(channels):
        if channel.get("active") is False:
            continue
        primary = _PRIMARIES.get(str(channel.get("color", "")).upper())
        if primary is None or primary in found:
            return None, names
        found[primary] = band
    return (tuple(found[i] for i in range(3)) if len(found) == 3 else None), names


def layout(source: str, names, shape, channel_axis: int | None = None) -> str:
    """One letter per dimension (see :attr:`ImageInfo.axes`), checked against the shape.

    ``names`` (OME-Zarr axes, xarray dims) say which is which; without them,
    ``channel_axis`` names the bands, and rows and columns are the last two
    other axes longer than 1. Axes of length 1 hold no image and may be
    anywhere (``"o"``, ``"t"``, ``"z"``...).

    Examples
    --------
    >>> layout("a", ["t", "c", "z", "y", "x"], (1, 3, 1, 40, 50))
    'tczyx'
    >>> layout("a", None, (1, 3, 1, 40, 50), channel_axis=1), layout("a", None, (1, 3, 1, 40, 50))
    ('ocoyx', 'ocoyx')
    >>> layout("a", None, (40, 50, 3)), layout("a", None, (3, 40, 50), channel_axis=0)
    ('yxc', 'cyx')
    """
    shape = tuple(shape)
    if names is not None and all(names):
        letters = [_AXIS_NAMES.get(str(n).lower(), _other_axis(str(n))) for n in names]
    elif channel_axis is not None:
        if not -len(shape) <= channel_axis < len(shape):
            raise ImageReadError(f"{source}: channel_axis={channel_axis} is out of range for shape {shape}")
        channel = channel_axis % len(shape)
        others = [i for i in range(len(shape)) if i != channel]
        longer = [i for i in others if shape[i] != 1]  # axes of length 1 hold no image: dropped
        rows, columns = (longer if len(longer) >= 2 else others)[-2:] if len(others) >= 2 else (-1, -1)
        letters = [
            "c" if i == channel else "y" if i == rows else "x" if i == columns else "o"
            for i in range(len(shape))
        ]
    elif len(shape) > 3 and 2 <= sum(n != 1 for n in shape) <= 3:  # axes of length 1 hold no image: dropped
        longer = [i for i, n in enumerate(shape) if n != 1]
        inner = iter(layout(source, None, [shape[i] for i in longer]))
        letters = [next(inner) if n != 1 else "o" for n in shape]
    elif len(shape) == 2:
        letters = ["y", "x"]
    elif len(shape) == 3 and shape[-1] <= 16:
        letters = ["y", "x", "c"]
    elif len(shape) == 3 and shape[0] <= 16:
        letters = ["c", "y", "x"]
    else:
        raise ImageReadError(
            f"{source}: cannot tell rows, columns and bands apart in shape {shape}; "
            "pass channel_axis (--channel-axis)"
        )
    axes = "".join(letters)
    if axes.count("y") != 1 or axes.count("x") != 1 or axes.count("c") > 1 or "?" in axes:
        raise ImageReadError(f"{source}: axes {axes!r} of shape {shape} are not rows, columns and bands")
    extra = {a: n for a, n in zip(axes, shape) if a not in "yxc" and n != 1}
    if extra:
        raise ImageReadError(
            f"{source}: shape {shape} with axes {axes!r} holds more than one 2-D image "
            f"({', '.join(f'{a}={n}' for a, n in extra.items())}); pass one plane"
        )
    return axes


def _yxc_shape(axes: str, shape) -> tuple[int, int, int]:
    size = dict(zip(axes, shape))
    return (size["y"], size["x"], size.get("c", 1))


def to_yxc(array, axes: str, rows: slice, cols: slice) -> np.ndarray:
    """``array[rows, cols]`` of a stored layout, as ``(rows, cols, bands)``; numpy, zarr or dask."""
    index = tuple(rows if a == "y" else cols if a == "x" else slice(None) if a == "c" else 0 for a in axes)
    block = array[index]
    kept = [a for a in axes if a in "yxc"]
    if "c" not in kept:
        block, kept = block[..., np.newaxis], [*kept, "c"]
    block = block.transpose([kept.index(a) for a in "yxc"])
    return block if isinstance(block, da.Array) else np.asarray(block)


def too_many_pixels(source: str, pixels: int, max_pixels: int) -> ImageReadError:
    return ImageReadError(
        f"{source}: header claims {pixels:,} pixels, more than the limit of {max_pixels:,} for images "
        "decoded whole; raise max_pixels (--max-pixels) if this file is trusted"
    )


def whole_block_bytes(max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """The most decoded bytes one block may hold when it can only be decoded whole.

    A block is what a decoder produces in one piece: a PNG or JPEG image, a
    TIFF tile or a strip that cannot be read in bands, a zarr chunk. Its limit
    is the size of an 8-bit RGBA image of ``max_pixels`` pixels (716 MB by
    default), so ``--max-pixels`` raises it for every format at once.

    Examples
    --------
    >>> whole_block_bytes(1000)
    4000
    """
    return 4 * max_pixels


def _block_too_big(source: str, block: str, nbytes: int, max_pixels: int) -> ImageReadError:
    return ImageReadError(
        f"{source}: one {block} decodes to {nbytes:,} bytes, more than the limit of "
        f"{whole_block_bytes(max_pixels):,} for a block decoded whole (4 bytes x --max-pixels "
        f"{max_pixels:,}); raise max_pixels (--max-pixels) if this file is trusted"
    )


class Format:
    """How one kind of input is read; each format is a subclass in a module of its own.

    :mod:`.registry` lists the formats and picks the one that reads a source
    (:meth:`sniff`); after that nothing asks which format an image is: the
    readers call the methods of ``format_of(info)``. What a format declares
    (alpha, no-data, pixel size, channel names and colours, tiles) is in the
    :class:`ImageInfo` its :meth:`probe` returns. Every method that reads
    refuses damage in one line (:class:`~palette_dask.errors.ImageReadError`).
    """

    #: The name an :class:`ImageInfo` records (``ImageInfo.format``).
    name: str = ""
    #: Decoded whole, in one piece (one chunk, at most ``max_pixels``), never a region alone.
    whole: bool = False

    def sniff(self, source: Source, head: bytes) -> bool:
        """Whether this format reads ``source``, whose first 16 bytes are ``head``."""
        return False

    def probe(self, source: Source, handle, *, max_pixels: int, channel_axis: int | None = None) -> ImageInfo:
        """What the header says: the :class:`ImageInfo` of ``source``, open as ``handle`` (None for zarr)."""
        raise NotImplementedError

    def read_region(self, info: ImageInfo, rows: slice, cols: slice) -> np.ndarray:
        """One region as ``(rows, columns, bands)``; runs inside tasks."""
        raise ImageReadError(f"{info.source}: a {self.name} image is not read from a file")

    @contextlib.contextmanager
    def regions(self, info: ImageInfo) -> Iterator[Callable[[slice, slice], np.ndarray]]:
        """A function ``read(rows, cols)`` of regions, the input opened once meanwhile."""
        yield lambda rows, cols: self.read_region(info, rows, cols)

    def decode_bytes(self, info: ImageInfo, data: bytes) -> np.ndarray:
        """The whole image from its bytes, already read (a small file, read once with its header)."""
        raise ImageReadError(f"{info.source}: a {self.name} image is not decoded from bytes")

    def cells(self, info: ImageInfo) -> tuple[int, int] | None:
        """``(rows, columns)`` of the cells a region may be read by alone (tiles, chunks), or None."""
        return None

    def level(self, info: ImageInfo, side: int) -> ImageInfo:
        """The lowest level of the image's pyramid whose longer side is at least ``side``; itself if none."""
        return info
