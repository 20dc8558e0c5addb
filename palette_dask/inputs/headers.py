"""PNG and JPEG headers read from bytes in memory (tested equal to Pillow's), and whether a JPEG is whole."""

from __future__ import annotations

import struct

import numba
import numpy as np

from .formats import ImageInfo

__all__ = ["quick_header", "jpeg_frame", "jpeg_is_whole"]

_PNG_MAGIC, _JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8"


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
