"""TIFF (tifffile, :class:`TiffFormat`): the probe, tiles and strips as stored, pyramids, and the checks.

A damaged file is refused in one line. A strip too big to decode whole is
read in bands of rows (uncompressed or deflate); a remote TIFF's regions are
prefetched a row of tiles at a time. COG overviews, OME-TIFF sub-IFDs and
SVS levels are its pyramid (previews).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import logging
import threading

import numpy as np

from ..constants import DEFAULT_MAX_PIXELS
from ..errors import ImageReadError
from . import physical
from .formats import (
    Format,
    ImageInfo,
    _block_too_big,
    _yxc_shape,
    layout,
    open_source,
    shown_channels,
    to_yxc,
    whole_block_bytes,
)
from .headers import jpeg_frame
from .retry import exhausted
from .source import Source

__all__ = [
    "TiffFormat", "open_tiff", "probe_tiff", "read_tiff_region", "read_tiff_band", "tiff_regions",
    "tiff_levels",
]  # fmt: skip

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class TiffFormat(Format):
    """TIFF, BigTIFF, GeoTIFF, COG, OME-TIFF, SVS: read by tiles or bands of rows, by ranges when remote."""

    name = "tiff"

    def sniff(self, source: Source, head: bytes) -> bool:
        return head[:4] in TIFF_MAGIC

    def probe(self, source, handle, *, max_pixels, channel_axis=None) -> ImageInfo:
        return probe_tiff(source, handle, max_pixels)

    def read_region(self, info, rows, cols):
        if info.banded:
            return read_tiff_band(info, rows)[:, cols]
        return read_tiff_region(info, rows, cols)

    def regions(self, info):
        if info.banded:
            return super().regions(info)
        return tiff_regions(info)

    def decode_bytes(self, info, data):
        whole = _tiff_whole(io.BytesIO(data))
        return to_yxc(whole, info.axes, slice(0, info.shape[0]), slice(0, info.shape[1]))

    def cells(self, info):
        if info.banded or info.tile[0] <= 0:  # one huge strip: reading part of it reads all of it
            return None
        return info.tile[0], info.tile[1] or info.shape[1]

    def level(self, info, side):
        if info.banded:
            return info
        levels = tiff_levels(info)
        chosen = max((i for i, (rows, cols, _) in enumerate(levels) if max(rows, cols) >= side), default=0)
        if chosen == 0:
            return info
        rows, cols, tile = levels[chosen]
        shape = (rows, cols, info.shape[2])
        return dataclasses.replace(info, shape=shape, tile=tile, level=chosen, pixel_size=None)


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


@contextlib.contextmanager
def tiff_regions(info: ImageInfo):
    """A function ``read(rows, cols)`` of a TIFF's regions (at ``info.level``), the file open meanwhile.

    Regions come as ``(rows, columns, bands)``. A remote TIFF's tiles (or
    strips) that a region needs are fetched in one request where they are
    stored together (a row of a COG's tiles), not one request per tile.
    """
    import fsspec.caching
    import zarr

    with open_source(info.source, info.downloads) as handle, open_tiff(handle) as tif:
        store = tif.aszarr(series=0, level=info.level)
        page, array = tif.series[0].levels[info.level].pages[0], zarr.open_array(store, mode="r")
        remote = hasattr(handle, "cache")  # fsspec's file, whose read-ahead cache keeps what it fetched last
        if remote:  # the header is read: from here on, fetch exactly what is read, and forget the header's
            # bytes (kept, they cut a region's prefetch short, and its first tiles, read alone, evicted it)
            handle.cache = fsspec.caching.ReadAheadCache(0, handle.cache.fetcher, handle.cache.size)

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


#: Strips that decode to more than this are read in bands of rows, never whole (when their
#: compression allows: none or deflate, see :func:`_bandable`).
#: Compressed bytes read at a time, and decoded bytes made at a time, when a strip is decoded in bands.
_READ_PIECE, _DECODE_PIECE = 2**20, 2**22
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


def probe_tiff(source: Source, handle, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """The :class:`ImageInfo` of a TIFF from its header; a damaged one fails in one line."""
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
            pixel_size = _pixel_size(tif)
            crs = _crs(tif)
            channels = _ome_channels(tif.ome_metadata) if tif.is_ome else []
            tile = (page.tilelength, page.tilewidth) if page.is_tiled else (page.rowsperstrip, 0)
            extrasamples = tuple(int(e) for e in (page.extrasamples or ()))
            segment = _segment_bytes(page)
            banded = segment > BAND_STRIP_BYTES and len(series.pages) == 1 and _bandable(page)
            if segment > whole_block_bytes(max_pixels) and not banded:
                block = f"{'tile' if page.is_tiled else 'strip'} ({page.compression.name.lower()})"
                raise _block_too_big(source, block, segment, max_pixels)
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile raises many kinds on corrupt files; a remote read, a fault
        raise exhausted(source, exc) or ImageReadError(f"{source}: not a readable TIFF: {exc}") from None
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
        pixel_size=pixel_size,
        **dict(zip(("shown_bands", "band_names"), shown_channels(channels, yxc[2]))),
        crs=crs,
    )


def tiff_levels(info: ImageInfo) -> list[tuple[int, int, tuple[int, int]]]:
    """A TIFF's pyramid, from its header: ``(rows, columns, tile)`` of each level, full resolution first.

    COG overviews, OME-TIFF sub-resolution levels (sub-IFDs) and SVS levels,
    as tifffile's first series gives them; one level for a TIFF with none.
    """
    with open_source(info.source, info.downloads) as handle, open_tiff(handle) as tif:
        found = []
        for level in tif.series[0].levels:
            page = level.pages[0]
            tile = (page.tilelength, page.tilewidth) if page.is_tiled else (page.rowsperstrip, 0)
            size = dict(zip(level.axes.lower().replace("s", "c"), level.shape))
            found.append((size["y"], size["x"], tile))
        return found


def _ome_channels(xml: str | None) -> list:
    """An OME-TIFF's channels as OME-Zarr's ``omero`` lists them: ``label`` (Name), ``color`` (RRGGBB).

    OME-XML's ``Color`` is a signed 32-bit RGBA integer.

    Examples
    --------
    >>> _ome_channels('<OME><Image><Pixels><Channel Name="DAPI" Color="65535"/></Pixels></Image></OME>')
    [{'label': 'DAPI', 'color': '0000FF'}]
    """
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(xml or "")
    except ElementTree.ParseError:
        return []
    image = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    channels = []
    for channel in (e for e in (image if image is not None else ()) if e.tag.rsplit("}", 1)[-1] == "Channel"):
        entry = {"label": channel.get("Name")} if channel.get("Name") is not None else {}
        try:
            rgba = int(channel.get("Color")) & 0xFFFFFFFF
            entry["color"] = f"{rgba >> 24:02X}{(rgba >> 16) & 255:02X}{(rgba >> 8) & 255:02X}"
        except (TypeError, ValueError):
            pass
        channels.append(entry)
    return channels


def _pixel_size(tif) -> tuple[float, float] | None:
    """A TIFF's pixel size in metres: an OME-TIFF's or SVS slide's, a projected GeoTIFF's, or None."""
    try:
        if tif.is_ome:
            return physical.from_ome_xml(tif.ome_metadata)
        if tif.is_svs:
            return physical.from_svs(tif.pages.first.description)
        if 34735 in tif.pages.first.tags:  # GeoKeyDirectory
            return physical.from_geokeys(tif.geotiff_metadata)
    except Exception as exc:  # georeferencing that cannot be read is no pixel size, not a failed image
        transient = exhausted(tif.filehandle.name, exc)  # but a remote read's fault fails it
        if transient is not None:
            raise transient from None
        return None
    return None


def _crs(tif) -> str:
    """A GeoTIFF's CRS, ``EPSG:<code>`` from its GeoKeys; ``""`` for another TIFF, or unreadable keys."""
    if 34735 not in tif.pages.first.tags:  # no GeoKeyDirectory
        return ""
    try:
        return physical.crs_of_geokeys(tif.geotiff_metadata)
    except Exception:  # georeferencing that cannot be read is no CRS, not a failed image
        return ""


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


def read_tiff_region(info: ImageInfo, rows: slice, cols: slice) -> np.ndarray:
    """Rows and columns of a TIFF, as ``(rows, columns, bands)``, decoding the tiles or strips they touch."""
    if rows == slice(0, info.shape[0]) and cols == slice(0, info.shape[1]) and info.level == 0:
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


def _tiff_whole(handle) -> np.ndarray:
    """A whole TIFF's first series at full resolution."""
    import tifffile

    return tifffile.imread(handle, series=0, level=0, maxworkers=1)
