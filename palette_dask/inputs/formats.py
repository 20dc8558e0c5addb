"""Formats: each format's header probe and decoders, and the safety limits on what they decode.

- TIFF (tifffile): tiles and strips as they are stored; a strip too big to
  decode whole is read in bands of rows (uncompressed or deflate);
- PNG, JPEG and the other formats Pillow reads, decoded whole (8-bit PNG and
  JPEG by imagecodecs, from bytes read once);
- zarr and OME-Zarr arrays, whose metadata is checked against allow-lists of
  numeric data types and codecs before anything is opened.

An :class:`ImageInfo` is what a probe learns from a header; every image comes
out as ``(rows, columns, bands)`` whatever its stored layout (:func:`to_yxc`).
A block a decoder makes whole (a tile, a strip, a chunk) may hold at most
:func:`whole_block_bytes`; an image decoded whole at most ``max_pixels``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import re
import struct
import threading
import warnings
from dataclasses import dataclass

import dask.array as da
import numba
import numpy as np

from ..errors import ImageReadError
from ..options import DEFAULT_MAX_PIXELS
from .fetch import (
    filesystem,
    is_url,
    local_copy,
    open_url,
    process_folder,
    reads_ranges,
    storage_options,
)
from .sources import is_zarr_source

__all__ = ["ImageInfo", "whole_block_bytes"]

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class _ThisThread(logging.Filter):
    """Drops the records logged by one thread."""

    def __init__(self):
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextlib.contextmanager
def open_tiff(handle):
    """Open a TIFF with tifffile, its warnings silenced in this thread while it is open.

    tifffile logs a warning for each flaw it works around in a damaged file;
    palette_dask reports a file it cannot read as one error line of its own
    instead. Other threads, and the logger once the file is closed, are left as they were.
    """
    import tifffile

    logger, quiet = logging.getLogger("tifffile"), _ThisThread()
    logger.addFilter(quiet)
    try:
        with tifffile.TiffFile(handle) as tif:
            yield tif
    finally:
        logger.removeFilter(quiet)


@dataclass(frozen=True)
class ImageInfo:
    """What the header of one image says, enough to read it lazily.

    Attributes
    ----------
    source : str
        The path or URL, as given.
    format : str
        ``"tiff"``, ``"pillow"`` (PNG, JPEG, GIF, BMP, WebP...), ``"zarr"`` or ``"array"``.
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
    """

    source: str
    format: str
    shape: tuple[int, int, int]
    dtype: str
    alpha: bool = False
    nodata: float | None = None
    tile: tuple[int, int] = (0, 0)
    axes: str = "yxc"
    banded: bool = False
    downloads: str | None = None

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


def open_source(source: str, downloads: str | None = None):
    """A binary file object for an image: the file, a remote TIFF read by byte ranges, or a URL's local copy.

    A URL decoded whole, or a remote TIFF given a ``downloads`` folder (its
    server does not answer range requests), is read from its local copy in
    ``downloads`` (by default a folder of this process's), downloaded first
    unless this host has it there already.
    """
    if reads_ranges(source) and downloads is None:
        return open_url(source)
    if is_url(source):
        return open_bytes(local_copy(source, downloads or process_folder()), source)
    return open_bytes(source)


def file_size(handle) -> int:
    """Bytes in an open file, local or remote."""
    size = getattr(handle, "size", None)  # fsspec's remote files
    return size if isinstance(size, int) else os.fstat(handle.fileno()).st_size


def open_zarr(source: str, array: bool = False):
    """A zarr node (an array with ``array``) opened read-only, from a path or a URL (s3://, http...)."""
    import zarr

    options = {"storage_options": storage_options(source)} if is_url(source) else {}
    return (zarr.open_array if array else zarr.open)(source, mode="r", **options)


@contextlib.contextmanager
def tiff_regions(info: ImageInfo):
    """A function ``read(rows, cols)`` of a TIFF's full-resolution regions, the file open meanwhile.

    Regions come as ``(rows, columns, bands)``. A remote TIFF's tiles (or
    strips) that a region needs are fetched in one request where they are
    stored together (a row of a COG's tiles), not one request per tile.
    """
    import zarr

    with open_source(info.source, info.downloads) as handle, open_tiff(handle) as tif:
        store = tif.aszarr(series=0, level=0)
        page, array = tif.series[0].pages[0], zarr.open_array(store, mode="r")
        remote = hasattr(handle, "cache")  # fsspec's file, whose read-ahead cache keeps what it fetched last
        if remote:
            handle.cache.blocksize = 0  # the header is read: from here on, fetch exactly what is read

        def read(rows: slice, cols: slice) -> np.ndarray:
            if remote:
                _prefetch(handle, page, rows, cols)
            return to_yxc(array, info.axes, rows, cols)

        try:
            yield read
        finally:
            store.close()


def _prefetch(handle, page, rows: slice, cols: slice) -> None:
    """Read the byte span of the tiles (or strips) under a region in one go, if little else lies in it."""
    tall = page.tilelength if page.is_tiled else page.rowsperstrip
    wide = page.tilewidth if page.is_tiled else page.imagewidth
    down, across = -(-page.imagelength // tall), -(-page.imagewidth // wide)
    planes = page.samplesperpixel if page.planarconfig == 2 else 1
    if len(page.dataoffsets) != planes * down * across:  # tiled in depth, or anything unusual: tile by tile
        return
    index = np.array(
        [
            (plane * down + row) * across + col
            for plane in range(planes)
            for row in range(rows.start // tall, -(-rows.stop // tall))
            for col in range(cols.start // wide, -(-cols.stop // wide))
        ]
    )
    offsets, counts = np.asarray(page.dataoffsets)[index], np.asarray(page.databytecounts)[index]
    start, stop = int(offsets.min()), int((offsets + counts).max())
    if stop - start <= 2 * int(counts.sum()):
        handle.seek(start)
        handle.read(stop - start)


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


def layout(source: str, names, shape, channel_axis: int | None = None) -> str:
    """One letter per dimension (see :attr:`ImageInfo.axes`), checked against the shape."""
    shape = tuple(shape)
    if names is not None and all(names):
        letters = [_AXIS_NAMES.get(str(n).lower(), _other_axis(str(n))) for n in names]
    elif channel_axis is not None:
        if not -len(shape) <= channel_axis < len(shape):
            raise ImageReadError(f"{source}: channel_axis={channel_axis} is out of range for shape {shape}")
        rest = iter("yx")
        letters = ["c" if i == channel_axis % len(shape) else next(rest, "?") for i in range(len(shape))]
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


#: Strips that decode to more than this are read in bands of rows, never whole (when their
#: compression allows: none or deflate, see :func:`_bandable`).
BAND_STRIP_BYTES = 16 * 2**20
_DEFLATE = (8, 32946)  # ADOBE_DEFLATE, DEFLATE


def _segment_bytes(page) -> int:
    """Decoded bytes of one tile or strip of a TIFF page."""
    rows, cols = (page.tilelength, page.tilewidth) if page.is_tiled else (page.rowsperstrip, page.imagewidth)
    samples = page.samplesperpixel if page.planarconfig == 1 else 1
    return min(rows, page.imagelength) * cols * samples * np.dtype(page.dtype).itemsize


def _bandable(page) -> bool:
    """Whether any band of rows of this striped page can be decoded alone (uncompressed or deflate strips).

    Horizontal differencing (predictor 2) of integers is undone row by row;
    other predictors, sub-byte samples and YCbCr subsampling are not.
    """
    dtype = np.dtype(page.dtype) if page.dtype is not None else None
    return (
        not page.is_tiled
        and dtype is not None
        and page.bitspersample == 8 * dtype.itemsize
        and page.compression in (1, *_DEFLATE)
        and (page.predictor == 1 or (page.predictor == 2 and dtype.kind in "iu"))
        and page.fillorder == 1
        and page.photometric != 6  # YCbCr
    )


def probe_tiff(source: str, handle, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:

    try:
        with open_tiff(handle) as tif:
            series = tif.series[0]
            page = series.pages[0] if series.pages else tif.pages[0]
            shape, dtype = tuple(series.shape), np.dtype(series.dtype)
            names = ["c" if a in "SC" else a.lower() for a in series.axes]
            pages = [i for i, a in enumerate(names) if a in ("q", "i") and 1 < shape[i] <= 16]
            if "c" not in names and len(pages) == 1:  # a band per page, as some multiband stacks are
                names[pages[0]] = "c"
            needed, stored = int(np.prod(page.chunked)), len(page.dataoffsets)
            if needed != stored:  # a damaged header, or a "bomb" claiming far more than the file holds
                raise ImageReadError(
                    f"{source}: damaged TIFF: its header claims {page.shape} pixels in {needed:,} "
                    f"strips or tiles, but the file lists {stored:,}"
                )
            _check_segments(source, series, tif.filehandle.size)
            _check_jpeg_frame(source, page, tif.filehandle)
            if int(page.planarconfig) not in (1, 2):  # tifffile would read it from uninitialised memory
                raise ImageReadError(
                    f"{source}: damaged TIFF: its planar configuration is {int(page.planarconfig)} (1 or 2)"
                )
            nodata_tag = page.tags.get(42113)  # GDAL_NODATA
            tile = (page.tilelength, page.tilewidth) if page.is_tiled else (page.rowsperstrip, 0)
            extrasamples = tuple(int(e) for e in (page.extrasamples or ()))
            segment = _segment_bytes(page)
            banded = segment > BAND_STRIP_BYTES and len(series.pages) == 1 and _bandable(page)
            if segment > whole_block_bytes(max_pixels) and not banded:
                block = f"{'tile' if page.is_tiled else 'strip'} ({page.compression.name.lower()})"
                raise _block_too_big(source, block, segment, max_pixels)
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile raises many kinds on corrupt files
        raise ImageReadError(f"{source}: not a readable TIFF: {exc}") from None
    axes = layout(source, names, shape)
    nodata = None
    if nodata_tag is not None:
        try:
            nodata = float(str(nodata_tag.value).strip("\x00 "))
        except ValueError:
            raise ImageReadError(f"{source}: GDAL_NODATA tag {nodata_tag.value!r} is not a number") from None
    yxc = _yxc_shape(axes, shape)
    return ImageInfo(
        source=source,
        format="tiff",
        shape=yxc,
        dtype=dtype.name,
        alpha=bool(extrasamples) and extrasamples[-1] in (1, 2),  # associated or unassociated alpha
        nodata=nodata,
        tile=(1, 0) if banded else (min(tile[0] or yxc[0], yxc[0]), tile[1]),
        axes=axes,
        banded=banded,
    )


#: Pages of a series whose strips or tiles are checked against the file's size (a band per page, at most).
_CHECKED_PAGES = 64


def _check_segments(source: str, series, size: int) -> None:
    """Refuse a TIFF whose strips or tiles lie past the end of its file: a truncated file.

    tifffile decodes a segment cut short without an error where its codec
    does (a JPEG tile's missing rows come back grey): a truncated TIFF must
    fail whole, before any of it is counted. Segments of 0 bytes are sparse
    ones (GDAL's SPARSE_OK), read as empty by every reader.
    """
    for page in itertools.islice(series.pages, _CHECKED_PAGES):
        if page is None or not hasattr(page, "dataoffsets"):
            continue
        offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        counts = np.asarray(page.databytecounts, dtype=np.int64)
        stored = counts > 0
        end = int((offsets[stored] + counts[stored]).max()) if stored.any() else 0
        if end > size:
            raise ImageReadError(
                f"{source}: truncated TIFF: its strips or tiles end {end - size:,} bytes past the end of "
                f"the file ({size:,} bytes)"
            )


def _check_jpeg_frame(source: str, page, handle) -> None:
    """Refuse a JPEG-compressed TIFF whose first tile or strip is not the size its header says.

    tifffile decodes a JPEG segment into the shape the header gives whatever
    the JPEG holds, the rest made up: a header whose dimensions were damaged
    must fail. One small read, of the first segment's start.
    """
    if page.compression != 7 or not len(page.dataoffsets) or page.databytecounts[0] == 0:
        return
    handle.seek(page.dataoffsets[0])
    frame = jpeg_frame(handle.read(min(page.databytecounts[0], 2**16)))
    if page.is_tiled:
        expected, segment = (page.tilelength, page.tilewidth), "tile"
    else:
        expected, segment = (min(page.rowsperstrip, page.imagelength), page.imagewidth), "strip"
    if frame is not None and frame[:2] != expected:
        raise ImageReadError(
            f"{source}: damaged TIFF: its first JPEG {segment} holds {frame[0]} x {frame[1]} pixels, "
            f"not the {expected[0]} x {expected[1]} its header says"
        )


# Pillow mode → (mode to convert to, channels, dtype)
_PILLOW_MODES = {
    "1": ("L", "L", "uint8"),
    "L": ("L", "L", "uint8"),
    "LA": ("LA", "LA", "uint8"),
    "La": ("LA", "LA", "uint8"),
    "PA": ("RGBA", "RGBA", "uint8"),
    "RGB": ("RGB", "RGB", "uint8"),
    "RGBX": ("RGB", "RGB", "uint8"),
    "RGBA": ("RGBA", "RGBA", "uint8"),
    "RGBa": ("RGBA", "RGBA", "uint8"),
    "CMYK": ("RGB", "RGB", "uint8"),
    "YCbCr": ("RGB", "RGB", "uint8"),
    "LAB": ("RGB", "RGB", "uint8"),
    "HSV": ("RGB", "RGB", "uint8"),
    "I;16": ("I;16", "L", "uint16"),
    "I;16L": ("I;16", "L", "uint16"),
    "I;16B": ("I;16", "L", "uint16"),
    "I;16N": ("I;16", "L", "uint16"),
    "I": ("I", "L", "uint16"),
    "F": ("F", "L", "float32"),
}


def _pillow_mode(image) -> tuple[str, str, str]:
    mode = image.mode
    if mode == "P":
        return ("RGBA", "RGBA", "uint8") if "transparency" in image.info else ("RGB", "RGB", "uint8")
    try:
        return _PILLOW_MODES[mode]
    except KeyError:
        raise ImageReadError(f"unsupported image mode {mode!r}") from None


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


_PILLOW_LIMIT = threading.Lock()
_pillow_raised: list = []  # the limits asked for by the Pillow opens under way, and Pillow's own first


@contextlib.contextmanager
def _pillow_limit(max_pixels: int):
    """Pillow's decompression-bomb limit raised (never lowered) to ``max_pixels`` while a file opens.

    Pillow's limit is one global; while opens run in several threads it is
    the highest any of them asks for, and Pillow's own again once the last ends.
    """
    from PIL import Image

    with _PILLOW_LIMIT:
        if not _pillow_raised:
            _pillow_raised.append(Image.MAX_IMAGE_PIXELS)
        _pillow_raised.append(max_pixels)
        if Image.MAX_IMAGE_PIXELS is not None:
            Image.MAX_IMAGE_PIXELS = max(_pillow_raised[0], *_pillow_raised[1:])
    try:
        yield
    finally:
        with _PILLOW_LIMIT:
            _pillow_raised.remove(max_pixels)
            if len(_pillow_raised) == 1:
                Image.MAX_IMAGE_PIXELS = _pillow_raised.pop()
            elif Image.MAX_IMAGE_PIXELS is not None:
                Image.MAX_IMAGE_PIXELS = max(_pillow_raised[0], *_pillow_raised[1:])


def _open_pillow(source: str, handle, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Pillow's image, with only its header read.

    palette_dask checks the size itself (see :func:`probe`), so Pillow's own
    decompression-bomb limit is raised, never lowered, to ``max_pixels`` while it opens.
    """
    from PIL import Image

    with _pillow_limit(max_pixels), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(handle)
        except Image.DecompressionBombError as exc:
            claimed = re.search(r"\((\d+) pixels\)", str(exc))
            raise too_many_pixels(source, int(claimed.group(1)) if claimed else -1, max_pixels) from None
        except Image.UnidentifiedImageError:
            raise ImageReadError(f"{source}: not a readable image (unknown format)") from None
        except Exception as exc:  # SyntaxError, struct.error...
            raise ImageReadError(f"{source}: not a readable image: {exc}") from None


def probe_pillow(source: str, handle, max_pixels: int) -> ImageInfo:
    image = _open_pillow(source, handle, max_pixels)
    try:
        _, channels, dtype = _pillow_mode(image)
    except ImageReadError as exc:
        raise ImageReadError(f"{source}: {exc}") from None
    width, height = image.size
    return ImageInfo(
        source=source,
        format="pillow",
        shape=(height, width, len(channels)),
        dtype=dtype,
        alpha=channels.endswith("A"),
        tile=(height, width),
    )


def _multiscales(attrs) -> list | None:
    """OME-Zarr's ``multiscales`` metadata (0.4 at the top, 0.5 under ``ome``), if any."""
    return attrs.get("ome", {}).get("multiscales") or attrs.get("multiscales")


def _axis_names(multiscales) -> list | None:
    axes = multiscales[0].get("axes")
    return [a["name"] if isinstance(a, dict) else a for a in axes] if axes else None


#: What a zarr input may declare: numeric data types and codecs that only turn bytes into numbers.
#: Anything else (pickle, object or string types, a codec this list does not name) is refused before
#: zarr reads a chunk: some codecs run code when they decode.
ZARR_DATA_TYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
    + ["float16", "float32", "float64"]
)
_NUMERIC_CODECS = (
    "blosc", "zlib", "gzip", "bz2", "lzma", "lz4", "zstd", "shuffle", "delta", "bitround", "quantize",
    "fixedscaleoffset", "packbits", "crc32", "crc32c", "adler32", "fletcher32", "jenkins_lookup3",
)  # fmt: skip
ZARR_CODECS = frozenset(
    ["bytes", "transpose", "blosc", "gzip", "zstd", "crc32c", "sharding_indexed"]
    + [f"numcodecs.{name}" for name in _NUMERIC_CODECS]
)
ZARR_V2_CODECS = frozenset([*_NUMERIC_CODECS, "astype"])
_ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zmetadata")
_ZARR_V2_DTYPE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248])")


def _unsafe_declaration(metadata) -> str | None:
    """What a parsed zarr metadata document declares outside the allow-lists, or None.

    Every array described in it is checked, consolidated metadata included;
    user attributes are not metadata and are not looked at.

    Examples
    --------
    >>> _unsafe_declaration({"data_type": "uint8", "codecs": [{"name": "bytes"}, {"name": "zstd"}]})
    >>> _unsafe_declaration({"dtype": "|u1", "chunks": [4], "compressor": {"id": "pickle"}})
    "codec 'pickle'"
    """
    if isinstance(metadata, list):
        return next(filter(None, map(_unsafe_declaration, metadata)), None)
    if not isinstance(metadata, dict):
        return None
    if "data_type" in metadata:  # a zarr v3 array
        if not isinstance(metadata["data_type"], str) or metadata["data_type"] not in ZARR_DATA_TYPES:
            return f"data type {metadata['data_type']!r}"
        if metadata.get("storage_transformers"):
            return "storage transformers"
        unsafe = _unsafe_codecs(metadata.get("codecs"), "name", ZARR_CODECS)
        if unsafe:
            return unsafe
    if "dtype" in metadata and "chunks" in metadata:  # a zarr v2 array
        dtype = metadata["dtype"]
        if not isinstance(dtype, str) or not _ZARR_V2_DTYPE.fullmatch(dtype):
            return f"data type {dtype!r}"
        listed = [metadata.get("compressor"), *(metadata.get("filters") or [])]
        unsafe = _unsafe_codecs([c for c in listed if c is not None], "id", ZARR_V2_CODECS)
        if unsafe:
            return unsafe
    nested = (value for key, value in metadata.items() if key != "attributes" and not key.endswith(".zattrs"))
    return next(filter(None, map(_unsafe_declaration, nested)), None)


def _unsafe_codecs(codecs, key: str, allowed: frozenset) -> str | None:
    if codecs is None:
        return None
    if not isinstance(codecs, list):
        return f"codecs {codecs!r}"
    for codec in codecs:
        name = codec.get(key) if isinstance(codec, dict) else codec
        if not isinstance(name, str) or name not in allowed:
            return f"codec {name!r}"
        configuration = codec.get("configuration") if isinstance(codec, dict) else None
        if name == "sharding_indexed" and isinstance(configuration, dict):
            for inner in ("codecs", "index_codecs"):
                unsafe = _unsafe_codecs(configuration.get(inner), key, allowed)
                if unsafe:
                    return unsafe
    return None


_MAX_METADATA = 2**24


def _metadata_text(path: str) -> bytes | None:
    """A metadata file's bytes, local or remote, at most :data:`_MAX_METADATA` + 1; None if absent."""
    if not is_url(path):
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as handle:
            return handle.read(_MAX_METADATA + 1)
    fs, key = filesystem(path)
    try:
        return fs.cat_file(key, start=0, end=_MAX_METADATA + 1)
    except FileNotFoundError:
        return None
    except Exception as exc:  # credentials, network
        raise ImageReadError(f"{path}: cannot read: {exc}") from None


def _check_zarr_metadata(source: str, node: str) -> None:
    r"""Refuse a zarr node whose metadata declares anything but numbers, before zarr reads it.

    The metadata files of ``node`` (``zarr.json``, or v2's ``.zarray``,
    ``.zgroup`` and ``.zmetadata``) are parsed as JSON, so escaped names
    (``"\u0070ickle"``) are read as what they are.
    """
    for name in _ZARR_METADATA:
        path = f"{node.rstrip('/')}/{name}"
        text = _metadata_text(path)
        if text is None:
            continue
        where = path[len(source) :].lstrip("/") if path.startswith(source) else path
        if len(text) > _MAX_METADATA:
            raise ImageReadError(f"{source}: zarr metadata {where} is over 16 MB; refused")
        try:
            unsafe = _unsafe_declaration(json.loads(text))
        except ValueError as exc:
            raise ImageReadError(f"{source}: zarr metadata {where} is not JSON: {exc}") from None
        if unsafe:
            raise ImageReadError(
                f"{source}: zarr metadata {where} declares {unsafe}; refused: palette_dask reads only "
                "numeric data types and numeric codecs (see palette_dask.inputs.formats.ZARR_CODECS)"
            )


def probe_zarr(
    source: str, channel_axis: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageInfo:
    """A zarr array, an OME-Zarr image (its full-resolution level), or one level of it."""
    import zarr

    _check_zarr_metadata(source, source)
    try:
        node = open_zarr(source)
    except Exception as exc:
        raise ImageReadError(f"{source}: not a readable zarr array: {exc}") from None
    names = None
    if isinstance(node, zarr.Group):
        multiscales = _multiscales(node.attrs)
        if not multiscales:
            arrays = sorted(name for name, _ in node.arrays())
            raise ImageReadError(
                f"{source}: zarr group without an image; pass an OME-Zarr image or one of its arrays"
                + (f" ({', '.join(arrays[:5])})" if arrays else "")
            )
        level = multiscales[0]["datasets"][0]["path"]
        _check_zarr_metadata(source, f"{source.rstrip('/')}/{level}")
        source, node, names = f"{source.rstrip('/')}/{level}", node[level], _axis_names(multiscales)
    else:
        names = getattr(node.metadata, "dimension_names", None)
        parent = source.rstrip("/").rsplit("/", 1)[0] if "/" in source.rstrip("/") else "."
        if names is None and is_zarr_source(parent):  # a level of an OME-Zarr image
            _check_zarr_metadata(source, parent)
            try:
                multiscales = _multiscales(open_zarr(parent).attrs)
                names = _axis_names(multiscales) if multiscales else None
            except Exception:
                names = None
    if channel_axis is not None:
        names = None
    axes = layout(source, names, node.shape, channel_axis)
    chunk_bytes = int(np.prod(node.chunks)) * np.dtype(node.dtype).itemsize  # inner chunks when sharded
    if chunk_bytes > whole_block_bytes(max_pixels):
        raise _block_too_big(source, f"zarr chunk {tuple(node.chunks)}", chunk_bytes, max_pixels)
    chunks = dict(zip(axes, node.chunks))
    return ImageInfo(
        source=source,
        format="zarr",
        shape=_yxc_shape(axes, node.shape),
        dtype=np.dtype(node.dtype).name,
        alpha=False,  # zarr and OME-Zarr declare no alpha band: only the user does (alpha, --alpha)
        nodata=declared_nodata(source, node.attrs),
        tile=(chunks["y"], chunks["x"]),
        axes=axes,
    )


#: Attributes that declare a no-data value: CF's, as xarray and GeoZarr write them, and rasterio's.
NODATA_ATTRIBUTES = ("_FillValue", "missing_value", "nodata", "nodatavals")


def declared_nodata(source: str, attrs) -> float | None:
    """The no-data value an array's attributes declare (CF ``_FillValue`` or ``missing_value``...), or None.

    A zarr array's own ``fill_value`` is not one: zarr gives it to chunks
    never written, 0 by default, and a black pixel is a colour. A value per
    band (rasterio's ``nodatavals``) counts when every band has the same.

    Examples
    --------
    >>> declared_nodata("a", {"_FillValue": 0}), declared_nodata("b", {"nodatavals": (255.0, 255.0)})
    (0.0, 255.0)
    >>> declared_nodata("c", {"units": "m"}) is None
    True
    """
    for name in NODATA_ATTRIBUTES:
        value = attrs.get(name)
        if value is None:
            continue
        values = {float(v) for v in np.ravel(value) if v is not None}  # NaN reads as itself
        if len(values) == 1 or (values and all(np.isnan(v) for v in values)):
            return values.pop()
        raise ImageReadError(
            f"{source}: its attribute {name} declares no-data values {value!r}, not one value; "
            "pass one with --nodata (nodata=)"
        )
    return None


def read_tiff_region(info: ImageInfo, rows: slice, cols: slice) -> np.ndarray:
    if rows == slice(0, info.shape[0]) and cols == slice(0, info.shape[1]):
        with open_source(info.source, info.downloads) as handle:
            return to_yxc(_tiff_whole(handle), info.axes, rows, cols)
    with tiff_regions(info) as read:
        return read(rows, cols)


def read_tiff_band(info: ImageInfo, rows: slice) -> np.ndarray:
    """Rows of a banded TIFF (:attr:`ImageInfo.banded`), decoding no more than those rows of each strip."""
    with open_source(info.source, info.downloads) as handle:
        with open_tiff(handle) as tif:
            page = tif.series[0].pages[0]
            byteorder = tif.byteorder
        if not _bandable(page):
            raise ImageReadError(f"{info.source}: file changed since its header was read")
        height, width, samples = page.imagelength, page.imagewidth, page.samplesperpixel
        planes = samples if page.planarconfig == 2 else 1
        per_plane = samples // planes
        dtype = np.dtype(page.dtype).newbyteorder(byteorder)
        row_bytes = width * per_plane * dtype.itemsize
        per_strip, strips = page.rowsperstrip, -(-height // page.rowsperstrip)
        out = np.empty((rows.stop - rows.start, width, samples), dtype=dtype.newbyteorder("="))
        for plane in range(planes):
            for strip in range(rows.start // per_strip, -(-rows.stop // per_strip)):
                first = strip * per_strip
                start, stop = max(rows.start, first) - first, min(rows.stop, first + per_strip) - first
                index = plane * strips + strip
                raw = _strip_bytes(
                    info.source, handle, page, page.dataoffsets[index], page.databytecounts[index],
                    start * row_bytes, stop * row_bytes,
                )  # fmt: skip
                block = np.frombuffer(raw, dtype).reshape(stop - start, width, per_plane)
                if page.predictor == 2:  # horizontal differencing, undone along each row
                    block = np.cumsum(block, axis=1, dtype=dtype)
                top = first + start - rows.start
                out[top : top + stop - start, :, plane * per_plane : (plane + 1) * per_plane] = block
    return out


#: Compressed bytes read at a time, and decoded bytes made at a time, when a strip is decoded in bands.
_READ_PIECE, _DECODE_PIECE = 2**20, 2**22


def _strip_bytes(
    source: str, handle, page, offset: int, count: int, start: int, stop: int
) -> bytes | bytearray:
    """Bytes ``start:stop`` of one decoded strip; a deflate strip is inflated up to ``stop``, no further."""
    import zlib

    if page.compression not in _DEFLATE:  # uncompressed: read the range itself
        if stop > count:
            raise ImageReadError(f"{source}: a strip holds {count:,} bytes, not the {stop:,} its rows need")
        handle.seek(offset + start)
        data = handle.read(stop - start)
    else:
        inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header
        handle.seek(offset)
        left, made, pending, kept = count, 0, b"", bytearray()
        try:
            while made < stop and not inflate.eof:
                if not pending:
                    pending = handle.read(min(left, _READ_PIECE))
                    left -= len(pending)
                    if not pending:
                        break
                piece = inflate.decompress(pending, min(stop - made, _DECODE_PIECE))
                pending = inflate.unconsumed_tail
                kept += piece[max(0, start - made) :]
                made += len(piece)
        except zlib.error as exc:
            raise ImageReadError(f"{source}: cannot decode a deflate strip: {exc}") from None
        data = kept
    if len(data) != stop - start:
        raise ImageReadError(f"{source}: a strip ends after {len(data):,} of {stop - start:,} bytes")
    return data


def read_pillow(info: ImageInfo) -> np.ndarray:
    with open_source(info.source, info.downloads) as handle:
        return _pillow_pixels(info, handle)


def _pillow_pixels(info: ImageInfo, handle) -> np.ndarray:
    image = _open_pillow(info.source, handle, max(info.pixels, DEFAULT_MAX_PIXELS))
    target, _, dtype = _pillow_mode(image)
    if image.size[0] * image.size[1] != info.pixels:
        raise ImageReadError(f"{info.source}: file changed since its header was read")
    image.load()
    if image.mode != target and not (target == "I;16" and image.mode.startswith("I;16")):
        image = image.convert(target)
    array = np.asarray(image)
    if target == "I":
        array = np.clip(array, 0, 65535)
    array = array.astype(dtype, copy=False)
    return array.reshape(array.shape[0], array.shape[1], -1)


_PNG_MAGIC, _JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8"


def decode_bytes(info: ImageInfo, data: bytes) -> np.ndarray:
    """Decode a whole image held in memory (see :func:`_open_image`)."""
    if info.format == "tiff":
        whole = _tiff_whole(io.BytesIO(data))
        return to_yxc(whole, info.axes, slice(0, info.shape[0]), slice(0, info.shape[1]))
    pixels = _decode_8bit(info, data)
    return pixels if pixels is not None else _pillow_pixels(info, io.BytesIO(data))


_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type → bands, for 8-bit PNGs
_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def quick_header(source: str, data: bytes) -> ImageInfo | None:
    """The header of an 8-bit gray/RGB(A) PNG or a gray/RGB JPEG, read from its bytes; None for the rest.

    The same :class:`ImageInfo` as Pillow's header gives, without Pillow's
    work in Python for each file; anything unusual goes to Pillow.
    """
    if data[:8] == _PNG_MAGIC and data[12:16] == b"IHDR" and len(data) >= 33:
        width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
        if depth != 8 or colour not in _PNG_CHANNELS:
            return None
        bands = _PNG_CHANNELS[colour]
        return ImageInfo(
            source, "pillow", (height, width, bands), "uint8", alpha=colour in (4, 6), tile=(height, width)
        )
    frame = jpeg_frame(data)
    if frame is None or frame[2] not in (1, 3):  # CMYK, YCCK: Pillow's conversions
        return None
    height, width, components = frame
    return ImageInfo(source, "pillow", (height, width, components), "uint8", tile=(height, width))


def jpeg_frame(data: bytes) -> tuple[int, int, int] | None:
    """``(height, width, components)`` of a JPEG's frame header, read from its first bytes; None if not found.

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(buffer, format="JPEG")
    >>> jpeg_frame(buffer.getvalue()), jpeg_frame(b"not a jpeg")
    ((6, 8, 3), None)
    """
    if data[:2] != _JPEG_MAGIC:
        return None
    at = 2
    while at + 9 < len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _JPEG_FRAMES:
            height, width, components = struct.unpack(">HHB", data[at + 5 : at + 10])
            return height, width, components
        if marker in (0x01, *range(0xD0, 0xD8)):
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end, or scan data before any frame header
            return None
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    return None


def _decode_8bit(info: ImageInfo, data: bytes) -> np.ndarray | None:
    """An 8-bit gray, RGB or RGBA PNG, or a whole gray or RGB JPEG, decoded by imagecodecs; None for the rest.

    imagecodecs decodes these with the same libraries as Pillow (libpng,
    libjpeg-turbo), to the same pixels, in C without the GIL and without
    Pillow's work in Python for each file: for thumbnails, most of the time.
    libpng fails a truncated or corrupt PNG as Pillow does (or more often: it
    checks the data's CRCs). libjpeg-turbo fed from memory does not: where the
    bytes end early it makes up grey rows without an error, so a JPEG goes
    to it only when its markers reach the end-of-image marker within the
    bytes (:func:`jpeg_is_whole`); any other goes to Pillow, which fails a
    truncated file. Palette, 16-bit and CMYK images, and any surprise, go to
    Pillow too.
    """
    import imagecodecs

    if (
        data[:8] == _PNG_MAGIC
        and data[24:25] == b"\x08"
        and data[25:26] in (b"\x00", b"\x02", b"\x04", b"\x06")
    ):
        pixels = imagecodecs.png_decode(data)
    elif data[:2] == _JPEG_MAGIC and info.shape[2] in (1, 3) and jpeg_is_whole(data):
        pixels = imagecodecs.jpeg8_decode(data)
    else:
        return None
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    return pixels if pixels.shape == info.shape and pixels.dtype == np.uint8 else None


def jpeg_is_whole(data: bytes) -> bool:
    """Whether a JPEG's markers, read as a decoder reads them, reach end-of-image within ``data``.

    A truncated JPEG never does; nor does one whose corrupt segment length
    points past its end, where libjpeg-turbo reading from memory would make up
    the missing scans. Marker segments are skipped by their lengths, and the
    entropy-coded data after each start-of-scan up to the next marker (a
    ``0xFF`` byte followed by neither ``0x00`` stuffing nor a restart marker).

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="JPEG")
    >>> jpeg_is_whole(buffer.getvalue()), jpeg_is_whole(buffer.getvalue()[:-1])
    (True, False)
    """
    return _reaches_end_of_image(np.frombuffer(data, dtype=np.uint8))


@numba.njit(nogil=True, cache=True)
def _reaches_end_of_image(data) -> bool:
    """:func:`jpeg_is_whole` over the bytes as a uint8 array: one pass, compiled."""
    n = data.shape[0]
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return False
    at = 2
    while at < n:
        if data[at] != 0xFF:  # bytes where a marker must be: a decoder warns, Pillow decides
            return False
        while at < n and data[at] == 0xFF:  # fill bytes before the marker
            at += 1
        if at >= n:
            return False
        marker = data[at]
        at += 1
        if marker == 0xD9:  # end of image
            return True
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a segment
            continue
        if at + 2 > n:
            return False
        length = (np.int64(data[at]) << 8) | np.int64(data[at + 1])
        if length < 2 or at + length > n:
            return False
        at += length
        if marker == 0xDA:  # start of scan: its entropy-coded data runs up to the next marker
            while True:
                if at + 1 >= n:
                    return False
                if data[at] == 0xFF and data[at + 1] != 0x00 and not 0xD0 <= data[at + 1] <= 0xD7:
                    break
                at += 2 if data[at] == 0xFF else 1
    return False


def _tiff_whole(handle) -> np.ndarray:
    """A whole TIFF's first series at full resolution."""
    import tifffile

    return tifffile.imread(handle, series=0, level=0, maxworkers=1)
