"""Read: images as lazy dask arrays with tiles as chunks, and batches of small images.

Nothing here decodes pixels while a graph is built. :func:`probe` reads a
file's header (shape, dtype, channel layout, nodata), through the format
that reads it (:mod:`.registry`; nothing here asks which format an image
is); :func:`read_image` makes a dask array whose every chunk is
read by a task that opens the file itself, by path or URL. So no pixel data
enters the task graph and process-based workers work (tifffile's zarr store
cannot be pickled; it is opened inside the task). Many small images are read
by batches (:func:`open_batch`): one task reads, decodes and keeps a batch.

Every image comes out with shape ``(rows, columns, bands)``, whatever its
stored layout (channels last, planar, OME-Zarr's ``tczyx``...); the
``channels`` of :class:`ImageInfo` says what the bands are: ``"L"`` (gray),
``"LA"`` (gray and alpha), ``"RGB"``, ``"RGBA"``, or ``"7 bands"``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import io
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import dask.array as da
import numpy as np

from ..constants import DEFAULT_CHUNK_BYTES, DEFAULT_MAX_PIXELS
from ..errors import Failure, ImageReadError, TransientReadError, one_line, without_context
from . import physical, stac
from .fetch import process_folder, serves_ranges
from .formats import ImageInfo, file_size, layout, open_source, to_yxc
from .registry import ZARR, format_of, sniff
from .retry import exhausted, is_transient
from .source import Source
from .zarr_arrays import declared_nodata

__all__ = ["probe", "read_image", "array_image", "decode", "open_batch", "Batch"]

#: More chunks than this in one image is a damaged header or a bomb, not a mosaic (32 PB at 32 MB).
MAX_CHUNKS = 1_000_000
#: Decodes made in this process, by source, while a test sets a Counter here: each image decoded
#: whole, or each region of one, counts one. None (off) otherwise: a run's workers keep no entry per image.
DECODES: collections.Counter | None = None
_DECODES_LOCK = threading.Lock()


@without_context
def probe(
    source: str | Source,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    channel_axis: int | None = None,
    downloads: str | None = None,
    assets: tuple[str, ...] | None = None,
) -> ImageInfo:
    """Read the header of one image (no pixel decoding).

    ``channel_axis`` says which axis holds the bands of a zarr array whose
    layout is not named (by ``dimension_names`` or OME-Zarr ``axes``) and not
    obvious from its shape. ``assets`` are the assets of a STAC item stacked
    as its bands (:mod:`.stac`; its ``visual`` asset by default). A remote
    TIFF or zarr store is read by byte ranges and chunks; any other URL is
    downloaded once into ``downloads`` (a folder; by default one of this
    process's), where its readers find it.

    Raises
    ------
    ImageReadError
        Missing, empty, unreadable or unsupported files, and images whose
        blocks decoded whole (see :func:`whole_block_bytes`) exceed the limit
        set by ``max_pixels``.

    Examples
    --------
    >>> import skimage, os
    >>> info = probe(os.path.join(os.path.dirname(skimage.__file__), "data", "logo.png"))
    >>> info.shape, info.dtype, info.channels
    ((500, 500, 4), 'uint8', 'RGBA')
    """
    return _open_image(Source.of(source), max_pixels, channel_axis, downloads, assets=assets)[0]


def _open_image(source: Source, max_pixels: int, channel_axis, downloads, decode_up_to: int = 0, assets=None):
    """``(info, pixels)``: an image's header, and its pixels if it decodes to at most ``decode_up_to`` bytes.

    A file that small is read once, header and pixels from the same bytes; a
    remote TIFF read by byte ranges only once its header says it is that small.
    A STAC item is its assets' files, each opened as a file is, and read with
    its header where the item is that small.
    """
    pixels = data = None
    try:
        if source.item:  # its document read once per process; each asset's file opened as any file
            item = stac.read_item(source)
            chosen = stac.chosen_assets(item, assets)
            share = decode_up_to // len(chosen)  # each file's share: the stack fits decode_up_to
            opened = [
                _open_image(stac.part_source(item, asset), max_pixels, None, downloads, share)
                for asset in chosen
            ]
            info = stac.stacked(item, chosen, [part for part, _ in opened])
            if all(decoded is not None for _, decoded in opened):
                pixels = np.concatenate([decoded for _, decoded in opened], axis=2)
        elif source.zarr:  # its groups, levels and attributes read here too: an s3fs OSError, a 503...
            info = ZARR.probe(source, max_pixels=max_pixels, channel_axis=channel_axis)
        else:
            by_ranges = source.ranges and serves_ranges(source.text)
            downloads = (downloads or process_folder()) if source.remote and not by_ranges else None
            with open_source(source, downloads) as handle:
                data = handle.read() if not by_ranges and file_size(handle) <= decode_up_to else None
                if data is not None:
                    handle = io.BytesIO(data)
                head = handle.read(16)
                if not head:
                    raise ImageReadError(f"{source}: empty file (0 bytes)")
                handle.seek(0)
                info = sniff(source, head).probe(
                    source, handle, max_pixels=max_pixels, channel_axis=channel_axis
                )
                if by_ranges and info.nbytes <= decode_up_to:  # small enough: its bytes in one request
                    handle.seek(0)
                    data = handle.read()
            if downloads is not None:
                info = dataclasses.replace(info, downloads=downloads)
    except ImageReadError:
        raise
    except Exception as exc:  # a remote file's read failed: fsspec, aiohttp and s3fs raise their own errors
        transient = exhausted(source, exc)  # a fault that outlasted its tries
        raise transient or ImageReadError(
            f"{source}: cannot read: {one_line(exc) or type(exc).__name__}"
        ) from None
    if info.pixels == 0:
        raise ImageReadError(f"{source}: image has no pixels (shape {info.shape[:2]})")
    if data is not None and info.nbytes <= decode_up_to:
        decode_bytes = format_of(info).decode_bytes
        pixels = _checked(
            info, lambda: decode_bytes(info, data), slice(0, info.shape[0]), slice(0, info.shape[1])
        )
    return info, pixels


def _plan_chunks(info: ImageInfo, chunk_bytes: int) -> tuple[tuple[int, ...], ...]:
    """Chunks that are whole multiples of the file's tiles and about ``chunk_bytes`` big."""
    rows, cols, channels = info.shape
    if format_of(info).whole:
        return ((rows,), (cols,), (channels,))  # decoded whole in one task
    tile_rows = max(1, info.tile[0])
    tile_cols = info.tile[1] or cols
    row_bytes = cols * channels * np.dtype(info.dtype).itemsize
    if row_bytes * tile_rows <= chunk_bytes:
        chunk_cols = cols
    else:  # wide rasters: cut columns too, in whole tiles
        chunk_cols = min(
            cols,
            max(1, chunk_bytes // (tile_rows * channels * np.dtype(info.dtype).itemsize) // tile_cols)
            * tile_cols,
        )
    chunk_row_bytes = chunk_cols * channels * np.dtype(info.dtype).itemsize
    chunk_rows = min(rows, max(1, chunk_bytes // chunk_row_bytes // tile_rows) * tile_rows)
    return da.core.normalize_chunks((chunk_rows, chunk_cols, channels), info.shape)


def read_image(
    source: str | ImageInfo,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> da.Array:
    """Open one image as a lazy dask array of shape ``(rows, columns, channels)``.

    Only the header is read now; each chunk is read by its own task, which
    opens the file by path (or downloads the URL). TIFF and zarr inputs are
    read tile-aligned in chunks of about ``chunk_bytes``; formats that can only
    be decoded whole (PNG, JPEG...) are one chunk.

    Examples
    --------
    >>> import skimage, os
    >>> image = read_image(os.path.join(os.path.dirname(skimage.__file__), "data", "coffee.png"))
    >>> image.shape, image.dtype.name, image.numblocks
    ((400, 600, 3), 'uint8', (1, 1, 1))
    """
    info = source if isinstance(source, ImageInfo) else probe(source, max_pixels=max_pixels)
    dtype = np.dtype(info.dtype)
    chunks = _plan_chunks(info, chunk_bytes)
    count = len(chunks[0]) * len(chunks[1])
    if count > MAX_CHUNKS:
        raise ImageReadError(
            f"{info.source}: shape {info.shape} would need {count:,} chunks of about {chunk_bytes:,} bytes, "
            f"more than {MAX_CHUNKS:,}; pass a larger chunk_bytes if the image is real"
        )
    return da.map_blocks(
        _read_block,
        chunks=chunks,
        dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype),
        name="read-" + da.core.tokenize(info, chunk_bytes),
        info=info,
    )


def array_image(
    array, name: str, *, channel_axis: int | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> tuple[ImageInfo, da.Array]:
    """An image given as an array: numpy, dask, or xarray (whose ``dims`` name the axes).

    Returns its :class:`ImageInfo` and a ``(rows, columns, bands)`` dask array.
    No band is alpha unless the run says so (``alpha=``): an array declares none.

    Examples
    --------
    >>> info, image = array_image(np.zeros((3, 20, 30), np.uint16), "planar")
    >>> info.axes, image.shape, info.channels
    ('cyx', (20, 30, 3), 'RGB')
    """
    names = list(array.dims) if hasattr(array, "dims") else None
    data = array.data if names is not None else array
    nodata = _xarray_nodata(name, array) if names is not None else None
    pixel_size = _xarray_pixel_size(array) if names is not None else None
    axes = layout(name, None if channel_axis is not None else names, data.shape, channel_axis)
    if not isinstance(data, da.Array):  # in the graph, under a name of its own (not a hash of the pixels)
        data = da.from_array(np.asarray(data), chunks="auto", name=False)
    image = to_yxc(data, axes, slice(None), slice(None))
    image = image.rechunk({0: "auto", 1: "auto", 2: -1}, block_size_limit=chunk_bytes)
    # regular chunks (the last of each axis may be shorter): each is one shard of its label raster
    image = image.rechunk((image.chunks[0][0], image.chunks[1][0], -1))
    info = ImageInfo(
        source=name,
        format="array",
        shape=tuple(int(n) for n in image.shape),
        dtype=np.dtype(image.dtype).name,
        alpha=False,  # an array declares no alpha band: only the user does (alpha, --alpha)
        nodata=nodata,
        axes=axes,
        pixel_size=pixel_size,
    )
    return info, image


def _xarray_pixel_size(array) -> tuple[float, float] | None:
    """A rioxarray scene's pixel size in metres (a projected CRS and its transform), or None."""
    try:
        rio = array.rio  # rioxarray's accessor, there when the caller imported rioxarray
        return physical.from_crs(rio.crs, rio.transform())
    except Exception:  # no accessor, no CRS, no transform
        return None


def _xarray_nodata(name: str, array) -> float | None:
    """The no-data value an xarray DataArray declares: rioxarray's ``rio.nodata``, or its attributes.

    rioxarray (when the caller imported it) says what the data hold: the file's
    value, or NaN once it masked them. Without it, the attributes as read
    (``_FillValue``, ``missing_value``...): ``encoding`` is left alone, as its
    value is the one on disk, which decoding already turned into NaN.
    """
    try:
        rio = array.rio  # rioxarray's accessor, there when the caller imported rioxarray
    except AttributeError:
        rio = None
    if rio is not None:
        value = rio.nodata
        return None if value is None else float(value)
    return declared_nodata(name, array.attrs)


@without_context
def _read_block(info: ImageInfo, block_info=None) -> np.ndarray:
    (r0, r1), (c0, c1), _ = block_info[None]["array-location"]
    return decode(info, slice(r0, r1), slice(c0, c1))


def pyramid_level(info: ImageInfo, side: int) -> ImageInfo:
    """The image at the lowest level of its pyramid whose longer side is at least ``side`` (for previews).

    A TIFF's levels (COG overviews, OME-TIFF sub-IFDs, SVS levels) and an
    OME-Zarr image's multiscales are used; an image with none, or whose
    pyramid cannot be read, is itself. Only its header and those of its
    levels are read. A level's pixels are the writer's (averaged, or every
    other pixel): what a preview shows, never what a run counts.
    """
    try:
        return format_of(info).level(info, side)
    except Exception:  # a pyramid that cannot be read: the image itself
        return info


def decode(info: ImageInfo, rows: slice | None = None, cols: slice | None = None) -> np.ndarray:
    """Decode an image or a region as ``(rows, columns, bands)``; any decoder error is an ImageReadError.

    Examples
    --------
    >>> import skimage, os
    >>> info = probe(os.path.join(os.path.dirname(skimage.__file__), "data", "coffee.png"))
    >>> decode(info, slice(0, 2), slice(0, 3)).shape
    (2, 3, 3)
    """
    rows, cols = rows or slice(0, info.shape[0]), cols or slice(0, info.shape[1])
    return _checked(info, lambda: read_region(info, rows, cols), rows, cols)


def _checked(info: ImageInfo, read, rows: slice, cols: slice) -> np.ndarray:
    """``read()``, with any decoder error an ImageReadError, and a shape that must match the header's."""
    if DECODES is not None:  # tests/test_sample_images.py counts them
        with _DECODES_LOCK:
            DECODES[str(info.source)] += 1
    try:
        block = read()
    except Exception as exc:  # decoders raise anything on corrupt data
        raise _read_error(info, exc) from None
    expected = (rows.stop - rows.start, cols.stop - cols.start, info.shape[2])
    if block.shape != expected:
        raise ImageReadError(
            f"{info.source}: decoded shape {block.shape} differs from the header's {expected}"
        )
    return block


def _read_error(info: ImageInfo, exc: Exception) -> ImageReadError:
    """The error of a failed decode: ours as it is, else "cannot decode"; transient where its chain is.

    A fault that may pass (a 503 that outlasted its tries, a reset) becomes a
    :class:`TransientReadError`, which keeps saying so once its chain is gone
    (the task's error travels without it), so ``--resume`` reads the image again.
    """
    transient = not isinstance(exc, TransientReadError) and is_transient(exc)
    if isinstance(exc, ImageReadError):
        return TransientReadError(one_line(exc)) if transient else exc
    if transient:  # an S3 tile's fault that outlasted botocore's tries: how many it made
        return exhausted(str(info.source), exc)
    return ImageReadError(f"{info.source}: cannot decode: {exc}")


def read_region(info: ImageInfo, rows: slice, cols: slice) -> np.ndarray:
    """Decode one region of an image as ``(rows, columns, bands)``; runs inside tasks."""
    return format_of(info).read_region(info, rows, cols)


def cell_grid(info: ImageInfo) -> tuple[int, int] | None:
    """``(rows, columns)`` of the cells a sample may read alone: the file's own chunks, tiles or strips.

    None for images that can only be decoded whole (PNG, JPEG...), arrays, and
    TIFFs read in bands of one huge strip: reading part of those reads all of it.
    """
    return format_of(info).cells(info)


def decode_cells(info: ImageInfo, cells) -> Iterator[np.ndarray]:
    """Decode regions ``((r0, r1), (c0, c1))`` of a tiled image one after another, opening it once."""
    with contextlib.ExitStack() as stack:
        try:
            read = stack.enter_context(format_of(info).regions(info))
        except Exception as exc:  # the file changed since its header was read, or a fault
            raise _read_error(info, exc) from None
        for (r0, r1), (c0, c1) in cells:
            rows, cols = slice(r0, r1), slice(c0, c1)
            yield _checked(info, functools.partial(read, rows, cols), rows, cols)


@dataclass
class Batch:
    """Images ``start, start + 1, ...`` of a run, as one task read their headers; it lives on a worker.

    Attributes
    ----------
    start : int
        Index of the batch's first image in the run.
    infos : list
        Per image: its :class:`ImageInfo`, why it cannot be read (a
        :class:`~palette_dask.errors.Failure`), or None for an array given to the API.
    chunk_bytes : int
        Images that decode to at most this many bytes are decoded whole by the
        batch's own tasks (see :meth:`in_batch`); bigger ones (mosaics) are
        read tile by tile by tasks of their own.
    pixels : list or None
        The decoded images, when kept in memory from one pass to the next.
    """

    start: int
    infos: list
    chunk_bytes: int
    pixels: list | None = None

    def in_batch(self, position: int) -> bool:
        """Whether the image at this position is decoded by the batch's tasks."""
        info = self.infos[position]
        return isinstance(info, ImageInfo) and info.nbytes <= self.chunk_bytes

    def images(self):
        """``(index, info, pixels)`` for each image decoded here, or ``(index, None, Failure)`` if it fails.

        Images are decoded one at a time, unless they were kept, so a task
        holds one image at a time.
        """
        for position, info in enumerate(self.infos):
            index = self.start + position
            if isinstance(info, Failure):
                yield index, None, info
            elif self.in_batch(position):
                try:
                    yield index, info, self.decoded(position)
                except ImageReadError as exc:
                    yield index, None, Failure.of(info.name, one_line(exc), is_transient(exc))

    def decoded(self, position: int) -> np.ndarray:
        """The pixels of the image at this position: as kept, else decoded now (an ImageReadError if not)."""
        if self.pixels is not None and self.pixels[position] is not None:
            return self.pixels[position]
        return decode(self.infos[position])


def open_batch(
    sources: list,
    start: int,
    *,
    keep: float = math.inf,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    channel_axis: int | None = None,
    downloads: str | None = None,
    assets: tuple[str, ...] | None = None,
) -> Batch:
    """Read the headers of one batch's images and decode now, and keep, up to ``keep`` bytes of them.

    ``sources`` holds None for the arrays given to the API. A decoded image
    stays in the batch (on the worker) for the passes to come; the others
    are decoded by each pass, one at a time. ``keep`` is in bytes (default:
    all; False or 0: none). ``assets`` as :func:`probe`.

    Examples
    --------
    >>> batch = open_batch(["missing.png", None], 10)
    >>> batch.infos
    [Failure(image='missing.png', reason='no such file', transient=False), None]
    >>> [str(failure) for _, _, failure in batch.images()]
    ['missing.png: no such file']
    """
    infos, pixels, left = [], [], keep
    for source in sources:
        decoded = None
        if source is None:
            info = None
        else:
            try:
                up_to = min(chunk_bytes, left)
                info, decoded = _open_image(
                    Source.of(source), max_pixels, channel_axis, downloads, up_to, assets=assets
                )
            except ImageReadError as exc:
                info = Failure.of(str(source), one_line(exc), is_transient(exc))
        if decoded is not None:
            left -= decoded.nbytes
        infos.append(info)
        pixels.append(decoded)
    return Batch(start, infos, chunk_bytes, pixels if any(p is not None for p in pixels) else None)
