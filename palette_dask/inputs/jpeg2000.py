"""JPEG 2000 (:class:`Jpeg2000Format`): JP2 files and bare codestreams, read tile by tile.

JPEG 2000 codes its tiles independently, so a region is read by decoding
only the tiles it touches: each alone, with imagecodecs (OpenJPEG), from a
small codestream of its own (:func:`tile_codestream`: the main header with
the image's bounds set to the tile's, and the tile's tile-parts), which
gives the samples the whole decode gives. A codestream of one tile, or
whose packet headers are packed in its main header (PPM), is decoded whole.
JP2 files whose colours need more than their samples as stored (a palette,
YCC or CMYK, subsampled components, channels reordered) are Pillow's, read
whole as before. Samples are as stored: a 15-bit Sentinel-2 band's values
are its digital numbers, not scaled to 16 bits.

A file is refused in one line unless every tile-part lies within it, every
tile is there, and its codestream ends with its end marker: OpenJPEG (Pillow's
too) decodes a codestream that lacks tiles without an error, the missing ones
made up black. Nothing is decoded of a file that fails this walk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import ImageReadError
from .formats import (
    Format,
    ImageInfo,
    _block_too_big,
    open_source,
    too_many_pixels,
    whole_block_bytes,
)
from .pillow import PillowFormat
from .source import Source

__all__ = ["Jpeg2000Format", "Codestream", "read_codestream", "tile_codestream"]

JP2_MAGIC = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
J2K_MAGIC = b"\xff\x4f\xff\x51"  # SOC, then SIZ

_SOC, _SIZ, _SOT, _EOC = b"\xff\x4f", b"\xff\x51", b"\xff\x90", b"\xff\xd9"
_TLM, _PLM, _PPM = b"\xff\x55", b"\xff\x57", b"\xff\x60"
#: JP2 colour spaces (``colr`` box, enumerated) whose samples are the colours: sRGB, greyscale.
_PLAIN_COLOURS = (16, 17)
#: More main-header segments than this is a damaged header.
_MAX_SEGMENTS = 2**16
#: Bytes of a JP2's header box (``jp2h``: ICC profiles included) read at most.
_MAX_JP2H = 2**24


class Jpeg2000Format(Format):
    """JPEG 2000 (JP2 and bare codestreams, Sentinel-2's bands): read tile by tile, as stored."""

    name = "jpeg2000"

    def sniff(self, source: Source, head: bytes) -> bool:
        return head[:12] == JP2_MAGIC or head[:4] == J2K_MAGIC

    def probe(self, source, handle, *, max_pixels, channel_axis=None) -> ImageInfo:
        return probe_jpeg2000(source, handle, max_pixels)

    def read_region(self, info, rows, cols):
        with self.regions(info) as read:
            return read(rows, cols)

    @contextlib.contextmanager
    def regions(self, info):
        with open_source(info.source, info.downloads) as handle:
            stream = read_codestream(info.source, handle)
            if stream.shape != info.shape or stream.dtype != info.dtype:
                raise ImageReadError(f"{info.source}: file changed since its header was read")
            if _is_whole(info):
                pixels = []

                def read(rows, cols):
                    if not pixels:
                        pixels.append(_decode_whole(info.source, stream, handle))
                    return pixels[0][rows, cols]
            else:

                def read(rows, cols):
                    return _read_tiles(info.source, stream, handle, rows, cols)

            yield read

    def decode_bytes(self, info, data):
        handle = io.BytesIO(data)
        stream = read_codestream(info.source, handle)
        if stream.shape != info.shape or stream.dtype != info.dtype:
            raise ImageReadError(f"{info.source}: file changed since its header was read")
        return _decode_whole(info.source, stream, handle)

    def cells(self, info):
        return None if _is_whole(info) else info.tile


def _is_whole(info: ImageInfo) -> bool:
    """Whether the image is decoded whole: one tile (its :attr:`ImageInfo.tile` is the image)."""
    return tuple(info.tile) == tuple(info.shape[:2])


@dataclass(frozen=True)
class Codestream:
    """A JPEG 2000 codestream as its main header describes it, and where its tile-parts lie.

    Attributes
    ----------
    start, end : int
        Where the codestream starts (its SOC marker) and ends in the file.
    image : tuple of int
        SIZ's ``(x0, y0, x1, y1)``: the image's bounds on the reference grid.
    tiles : tuple of int
        SIZ's ``(x0, y0, width, height)``: the tile grid's origin and a tile's size.
    csiz : bytes
        The SIZ segment's end: ``Csiz``, and each component's bit depth and subsampling.
    header : bytes
        The main header's segments after SIZ, TLM and PLM left out (they index the whole codestream).
    parts : tuple
        Per tile, in raster order: its tile-parts' ``(offset, length)`` in the file.
    packed : bool
        Whether its packet headers are packed in the main header (PPM): tiles are then not decoded alone.
    rsiz : int
        SIZ's capabilities (profile), kept in each tile's codestream.
    boxes : dict
        A JP2 file's header boxes (``ihdr``, ``colr``, ``cdef``...): their contents by type; empty
        for a bare codestream.
    """

    start: int
    end: int
    image: tuple[int, int, int, int]
    tiles: tuple[int, int, int, int]
    csiz: bytes
    header: bytes
    parts: tuple
    packed: bool
    rsiz: int
    boxes: dict

    @property
    def components(self) -> list[tuple[int, bool, int, int]]:
        """Per component: ``(bit depth, signed, XRsiz, YRsiz)``."""
        count = struct.unpack(">H", self.csiz[:2])[0]
        found = []
        for i in range(count):
            ssiz, xr, yr = self.csiz[2 + 3 * i : 5 + 3 * i]
            found.append(((ssiz & 0x7F) + 1, bool(ssiz & 0x80), xr, yr))
        return found

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(rows, columns, components)`` of the image."""
        x0, y0, x1, y1 = self.image
        return (y1 - y0, x1 - x0, len(self.components))

    @property
    def dtype(self) -> str:
        """The dtype OpenJPEG's samples come as (imagecodecs' rule): 8, 16 or 32 bits, signed or not."""
        depth, signed = self.components[0][:2]
        bits = 8 if depth <= 8 else 16 if depth <= 16 else 32
        return f"{'int' if signed else 'uint'}{bits}"

    @property
    def grid(self) -> tuple[int, int]:
        """``(rows, columns)`` of tiles."""
        x0, y0, x1, y1 = self.image
        tx, ty, width, height = self.tiles
        return (-(-(y1 - ty) // height), -(-(x1 - tx) // width))

    def tile_bounds(self, index: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of a tile on the reference grid (tiles numbered in raster order).

        Examples
        --------
        >>> stream = Codestream(0, 0, (10, 7, 311, 210), (3, 5, 64, 48), b"", b"", (), False, 0, {})
        >>> stream.grid, stream.tile_bounds(0), stream.tile_bounds(6)
        ((5, 5), (10, 7, 67, 53), (67, 53, 131, 101))
        """
        x0, y0, x1, y1 = self.image
        tx, ty, width, height = self.tiles
        row, col = divmod(index, self.grid[1])
        return (
            max(tx + col * width, x0), max(ty + row * height, y0),
            min(tx + (col + 1) * width, x1), min(ty + (row + 1) * height, y1),
        )  # fmt: skip


def _read(handle, offset: int, count: int) -> bytes:
    handle.seek(offset)
    return handle.read(count)


def _boxes(source, handle, start: int, end: int, within: str):
    """``(type, body offset, box end)`` of the JP2 boxes from ``start``, each checked to end by ``end``."""
    at = start
    while at < end:
        head = _read(handle, at, 8)
        length, kind = struct.unpack(">I4s", head) if len(head) == 8 else (-1, b"")
        body = at + 8
        if length == 1:
            raw = _read(handle, at + 8, 8)
            length, body = (struct.unpack(">Q", raw)[0] if len(raw) == 8 else -1), at + 16
        elif length == 0 and within == "the file":  # the last box, to the end of the file
            length = end - at
        name = kind.decode("latin-1")
        if length < body - at:
            raise ImageReadError(f"{source}: damaged JPEG 2000: a box of {length} bytes in {within}")
        if at + length > end:
            what = "truncated" if within == "the file" else "damaged"
            raise ImageReadError(
                f"{source}: {what} JPEG 2000: its {name!r} box ends {at + length - end:,} bytes past "
                f"the end of {within} ({end:,} bytes)"
            )
        yield kind, body, at + length
        at += length


def _jp2_codestream(source, handle, size: int) -> tuple[int, int, dict]:
    """A JP2 file's codestream ``(start, end)`` and its header's boxes (``ihdr``, ``colr``, ``cdef``...).

    As OpenJPEG asks: the file type box (``ftyp``) second, and a header box
    (``jp2h``), led by ``ihdr``, before the codestream (``jp2c``).
    """
    header: dict[bytes, bytes] = {}
    for number, (kind, body, end) in enumerate(_boxes(source, handle, 0, size, "the file")):
        if number == 1 and kind != b"ftyp":
            raise ImageReadError(f"{source}: damaged JPEG 2000: no file type box (ftyp) after its signature")
        if kind == b"jp2h" and not header:
            if end - body > _MAX_JP2H:
                raise ImageReadError(f"{source}: damaged JPEG 2000: a header box of {end - body:,} bytes")
            data = _read(handle, body, end - body)
            for inner, start, stop in _boxes(source, io.BytesIO(data), 0, len(data), "its header box"):
                header.setdefault(inner, data[start:stop])
            if data[4:8] != b"ihdr":
                raise ImageReadError(f"{source}: damaged JPEG 2000: its header box does not start with ihdr")
        elif kind == b"jp2c":
            if not header:
                raise ImageReadError(f"{source}: damaged JPEG 2000: no jp2h box before its codestream")
            return body, end, header
    raise ImageReadError(f"{source}: not a readable JPEG 2000: no codestream box (jp2c)")


def _check_ihdr(source, stream: Codestream) -> None:
    """Refuse a JP2 whose ``ihdr`` box disagrees with its codestream's SIZ (as OpenJPEG does)."""
    ihdr = stream.boxes[b"ihdr"]
    if len(ihdr) != 14:
        raise ImageReadError(f"{source}: damaged JPEG 2000: an image header box (ihdr) of {len(ihdr)} bytes")
    height, width, count, depth = struct.unpack(">IIHB", ihdr[:11])
    first = stream.components[0]
    declared = (height, width, count) + (() if depth == 255 else ((depth & 0x7F) + 1, bool(depth & 0x80)))
    found = stream.shape + (() if depth == 255 else first[:2])
    if declared != found:
        raise ImageReadError(
            f"{source}: damaged JPEG 2000: its ihdr box says {declared}, its codestream {found} "
            "(rows, columns, bands, bit depth, signed)"
        )


def read_codestream(source, handle) -> Codestream:
    """The :class:`Codestream` of a JP2 file or bare codestream: its main header, and every tile-part walked.

    A file is refused (:class:`~palette_dask.errors.ImageReadError`, one
    line) unless each tile-part (SOT) lies within the codestream, every tile
    has all its tile-parts, in order, and the end-of-codestream marker
    follows the last: a cut or damaged file fails here, before any of it is
    decoded. A JP2's boxes are checked as OpenJPEG checks them.
    """
    size = handle.seek(0, io.SEEK_END)  # a file, or bytes read once (a BytesIO)
    head = _read(handle, 0, 12)
    if head == JP2_MAGIC:
        start, end, boxes = _jp2_codestream(source, handle, size)
    elif head[:4] == J2K_MAGIC:
        start, end, boxes = 0, size, {}
    else:
        raise ImageReadError(f"{source}: not a JPEG 2000 file")
    siz = _read(handle, start, 4 + 38) if start + 42 <= end else b""
    if len(siz) < 42:
        raise ImageReadError(f"{source}: truncated JPEG 2000: its codestream ends in its first bytes")
    if siz[:4] != _SOC + _SIZ:
        raise ImageReadError(f"{source}: damaged JPEG 2000: no SIZ marker at the start of its codestream")
    lsiz = struct.unpack(">H", siz[4:6])[0]
    rsiz, *fields = struct.unpack(">H8I", siz[6:40])
    components = struct.unpack(">H", siz[40:42])[0]
    if lsiz != 38 + 3 * components or not 1 <= components <= 16384:
        raise ImageReadError(f"{source}: damaged JPEG 2000: SIZ of {lsiz} bytes for {components} components")
    xsiz, ysiz, x0, y0, width, height, tx, ty = fields
    inside = tx <= x0 < tx + width and ty <= y0 < ty + height  # the first tile holds the image's corner
    if not (width and height and x0 < xsiz and y0 < ysiz and inside):
        raise ImageReadError(
            f"{source}: damaged JPEG 2000: image {xsiz - x0} x {ysiz - y0} at ({x0}, {y0}) with tiles "
            f"{width} x {height} at ({tx}, {ty})"
        )
    csiz = _read(handle, start + 40, lsiz - 36)
    at, header, packed = start + 4 + lsiz, bytearray(), False
    for _ in range(_MAX_SEGMENTS):
        marker = _read(handle, at, 4) if at + 4 <= end else b""
        if marker[:2] == _SOT:
            break
        if len(marker) < 4:
            raise ImageReadError(f"{source}: truncated JPEG 2000: its codestream ends in its main header")
        if marker[0] != 0xFF:
            raise ImageReadError(f"{source}: damaged JPEG 2000: its main header ends without a tile")
        length = struct.unpack(">H", marker[2:])[0]
        if marker[:2] not in (_TLM, _PLM):
            header += _read(handle, at, 2 + length)
        packed = packed or marker[:2] == _PPM
        at += 2 + length
    else:
        raise ImageReadError(f"{source}: damaged JPEG 2000: its main header never ends")
    image, tiles = (x0, y0, xsiz, ysiz), (tx, ty, width, height)
    stream = Codestream(start, end, image, tiles, csiz, bytes(header), (), packed, rsiz, boxes)
    if boxes:
        _check_ihdr(source, stream)
    return _with_parts(source, handle, stream, at)


def _with_parts(source, handle, stream: Codestream, at: int) -> Codestream:
    """The codestream with its tile-parts found, from the first SOT at ``at``, each checked."""
    rows, cols = stream.grid
    count = rows * cols
    if count > (stream.end - at) // 14:  # a tile-part takes at least SOT, SOD and EOC
        raise ImageReadError(
            f"{source}: truncated or damaged JPEG 2000: its header claims {count:,} tiles, more than its "
            f"{stream.end - at:,} bytes of tiles can hold"
        )
    parts: list[list[tuple[int, int]]] = [[] for _ in range(count)]
    expected: list[int] = [0] * count
    last = stream.end - 2  # the end marker's place, at the latest
    while True:
        marker = _read(handle, at, 12)
        if marker[:2] == _EOC:
            break
        if len(marker) < 12:
            raise ImageReadError(f"{source}: truncated JPEG 2000: its codestream ends after {at:,} bytes")
        if marker[:2] != _SOT:
            raise ImageReadError(f"{source}: damaged JPEG 2000: neither a tile-part nor the end at {at:,}")
        lsot, tile, length, part, total = struct.unpack(">HHIBB", marker[2:])
        if length == 0:  # the last tile-part: to the end marker
            length = last - at
        said = expected[tile] if tile < count else 0  # the tile's tile-parts all give one count, or 0
        agree = not total or said in (0, total)
        if lsot != 10 or tile >= count or part != len(parts[tile]) or length < 14 or not agree:
            raise ImageReadError(
                f"{source}: damaged JPEG 2000: tile-part {part} of tile {tile} at {at:,} "
                f"({length:,} bytes, {count:,} tiles)"
            )
        if at + length > last:
            raise ImageReadError(
                f"{source}: truncated JPEG 2000: tile {tile} ends {at + length - last:,} bytes past the "
                f"end of its codestream"
            )
        parts[tile].append((at, length))
        expected[tile] = total or said
        at += length
    missing = [i for i, found in enumerate(parts) if not found or (expected[i] and len(found) != expected[i])]
    if missing:
        raise ImageReadError(
            f"{source}: damaged JPEG 2000: {len(missing):,} of its {count:,} tiles are missing "
            f"or incomplete (tile {missing[0]} first)"
        )
    return dataclasses.replace(stream, parts=tuple(tuple(p) for p in parts))


def tile_codestream(stream: Codestream, handle, index: int) -> bytes:
    """A codestream of one tile alone: the main header, the image's bounds set to the tile's; its tile-parts.

    The tile keeps its place on the reference grid (the image and the tile
    grid start at the tile's origin) and its coding parameters, so its
    samples decode as in the whole image; its tile-parts are renumbered as
    tile 0.
    """
    x0, y0, x1, y1 = stream.tile_bounds(index)
    width, height = stream.tiles[2:]
    siz = struct.pack(">HH8I", 36 + len(stream.csiz), stream.rsiz, x1, y1, x0, y0, width, height, x0, y0)
    pieces = [_SOC, _SIZ, siz, stream.csiz, stream.header]
    for offset, length in stream.parts[index]:
        part = _read(handle, offset, length)
        pieces.append(part[:4] + b"\x00\x00" + part[6:])
    pieces.append(_EOC)
    return b"".join(pieces)


def _decoded(source, pixels: np.ndarray, shape, dtype: str, what: str) -> np.ndarray:
    """Decoded samples as ``(rows, columns, bands)``, checked against what the header says."""
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    if pixels.shape != tuple(shape) or pixels.dtype != np.dtype(dtype):
        raise ImageReadError(
            f"{source}: {what} decodes to {pixels.shape} {pixels.dtype}, not the {tuple(shape)} {dtype} "
            "its header says"
        )
    return pixels


def _decode(source, data: bytes, tile: int | None = None) -> np.ndarray:
    """A codestream decoded by imagecodecs (OpenJPEG), in this thread; any failure one line."""
    import imagecodecs

    try:
        return imagecodecs.jpeg2k_decode(data, numthreads=1)
    except Exception as exc:  # OpenJPEG's errors, as imagecodecs raises them
        what = "" if tile is None else f" tile {tile}"
        raise ImageReadError(f"{source}: cannot decode{what}: {exc}") from None


def _decode_whole(source, stream: Codestream, handle) -> np.ndarray:
    """The whole image, its codestream decoded in one piece (samples as stored, no JP2 colour handling)."""
    data = _read(handle, stream.start, stream.end - stream.start)
    return _decoded(source, _decode(source, data), stream.shape, stream.dtype, "the codestream")


def _read_tiles(source, stream: Codestream, handle, rows: slice, cols: slice) -> np.ndarray:
    """A region as ``(rows, columns, bands)``, decoding the tiles it touches, each alone."""
    x0, y0 = stream.image[:2]
    tx, ty, width, height = stream.tiles
    top, bottom, left, right = rows.start + y0, rows.stop + y0, cols.start + x0, cols.stop + x0
    out = np.empty((bottom - top, right - left, stream.shape[2]), stream.dtype)
    for row in range((top - ty) // height, (bottom - 1 - ty) // height + 1):
        for col in range((left - tx) // width, (right - 1 - tx) // width + 1):
            index = row * stream.grid[1] + col
            a, b, c, d = stream.tile_bounds(index)
            pixels = _decode(source, tile_codestream(stream, handle, index), index)
            pixels = _decoded(source, pixels, (d - b, c - a, stream.shape[2]), stream.dtype, f"tile {index}")
            ya, yb, xa, xb = max(b, top), min(d, bottom), max(a, left), min(c, right)
            out[ya - top : yb - top, xa - left : xb - left] = pixels[ya - b : yb - b, xa - a : xb - a]
    return out


def _colours(source, header: dict, components: int) -> tuple[bool, bool]:
    """``(plain, alpha)`` of a JP2's header boxes: its samples are its colours; its last channel is alpha.

    Not plain: a palette (``pclr``, ``cmap``), colours other than sRGB,
    greyscale or an ICC profile's (YCC, CMYK...), channels the ``cdef`` box
    reorders or whose alpha is not last.
    """
    if not header:  # a bare codestream: its samples, with no word on alpha
        return True, False
    if b"pclr" in header or b"cmap" in header:
        return False, False
    colr = header.get(b"colr", b"")
    if colr[:1] == b"\x01" and len(colr) >= 7 and struct.unpack(">I", colr[3:7])[0] not in _PLAIN_COLOURS:
        return False, False
    cdef = header.get(b"cdef")
    if cdef is None:
        return True, False
    count = struct.unpack(">H", cdef[:2])[0] if len(cdef) >= 2 else -1
    if count != components or len(cdef) < 2 + 6 * count:
        raise ImageReadError(f"{source}: damaged JPEG 2000: its channels (cdef) are not one a band")
    channels = [struct.unpack(">HHH", cdef[2 + 6 * i : 8 + 6 * i]) for i in range(count)]
    alpha = [i for i, (_, kind, _) in enumerate(channels) if kind in (1, 2)]
    in_order = all(number == i for i, (number, _, _) in enumerate(channels))
    colours = [a for i, (_, kind, a) in enumerate(channels) if i not in alpha and a not in (0, 0xFFFF)]
    plain = in_order and alpha in ([], [count - 1]) and colours == list(range(1, len(colours) + 1))
    return plain, plain and bool(alpha)


def probe_jpeg2000(source: Source, handle, max_pixels: int) -> ImageInfo:
    """The :class:`ImageInfo` of a JP2 file or codestream, from its headers and the walk of its tile-parts.

    A JP2 whose colours need more than its samples (see :func:`_colours`),
    or whose components are subsampled or differ in depth, is probed and
    read by Pillow, whole, as before this format.
    """
    stream = read_codestream(source, handle)
    components = stream.components
    plain, alpha = _colours(source, stream.boxes, len(components))
    alike = {c[:2] for c in components} == {components[0][:2]}  # one bit depth, signed or not
    if not plain or not alike or {c[2:] for c in components} != {(1, 1)}:  # or subsampled components
        handle.seek(0)
        return PillowFormat().probe(source, handle, max_pixels=max_pixels)
    rows, cols, bands = stream.shape
    itemsize = np.dtype(stream.dtype).itemsize
    whole = stream.grid == (1, 1) or stream.packed
    if whole and rows * cols > max_pixels:
        raise too_many_pixels(source, rows * cols, max_pixels)
    tile = (rows, cols) if whole else (min(stream.tiles[3], rows), min(stream.tiles[2], cols))
    block = tile[0] * tile[1] * bands * itemsize
    if block > whole_block_bytes(max_pixels):
        raise _block_too_big(source, "image" if whole else "tile", block, max_pixels)
    return ImageInfo(
        source=source, format="jpeg2000", shape=stream.shape, dtype=stream.dtype, alpha=alpha, tile=tile
    )
