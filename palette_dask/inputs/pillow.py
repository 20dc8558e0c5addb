"""PNG, JPEG and the other formats Pillow reads, decoded whole (:class:`PillowFormat`).

8-bit PNG and JPEG headers are read from their first bytes
(:func:`~.headers.quick_header`), else by Pillow; they are decoded by
imagecodecs from bytes read once, where the strict checks allow
(:func:`~.headers.jpeg_is_whole`), else by Pillow.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import warnings

import numpy as np

from ..constants import DEFAULT_MAX_PIXELS
from ..errors import ImageReadError
from .formats import Format, ImageInfo, open_source, too_many_pixels
from .headers import _JPEG_MAGIC, _PNG_MAGIC, jpeg_is_whole, quick_header
from .source import Source

__all__ = ["PillowFormat", "probe_pillow", "read_pillow", "decode_bytes"]

#: Bytes read for the header of a PNG or JPEG that is not decoded now (a JPEG's EXIF may come first).
HEADER_BYTES = 2**16


class PillowFormat(Format):
    """PNG, JPEG, GIF, BMP, WebP...: whatever Pillow opens, decoded whole; sniffed last, it takes the rest."""

    name = "pillow"
    whole = True

    def sniff(self, source: Source, head: bytes) -> bool:
        return True

    def probe(self, source, handle, *, max_pixels, channel_axis=None) -> ImageInfo:
        # a PNG's or JPEG's header lies in its first bytes; bytes already in memory are all looked at
        data = handle.getvalue() if isinstance(handle, io.BytesIO) else handle.read(HEADER_BYTES)
        handle.seek(0)
        info = quick_header(source, data) or probe_pillow(source, handle, max_pixels)
        if info.pixels > max_pixels:
            raise too_many_pixels(source, info.pixels, max_pixels)
        return info

    def read_region(self, info, rows, cols):
        return read_pillow(info)[rows, cols]

    def decode_bytes(self, info, data):
        return decode_bytes(info, data)

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
    """The :class:`ImageInfo` of an image Pillow reads, from its header."""
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


def read_pillow(info: ImageInfo) -> np.ndarray:
    """The whole image as ``(rows, columns, bands)``: its bytes read once, then :func:`decode_bytes`.

    The same decoders as the first pass's (imagecodecs where it is exact,
    else Pillow), so an image decoded again to be counted costs what it did
    to be sampled.
    """
    with open_source(info.source, info.downloads) as handle:
        data = handle.read()
    return decode_bytes(info, data)


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


def decode_bytes(info: ImageInfo, data: bytes) -> np.ndarray:
    """Decode a whole image held in memory: imagecodecs where it is exact, else Pillow."""
    pixels = _decode_8bit(info, data)
    return pixels if pixels is not None else _pillow_pixels(info, io.BytesIO(data))


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
