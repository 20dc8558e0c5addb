"""zarr and OME-Zarr arrays (:class:`ZarrFormat`): the probe, and the checks made before anything is opened.

Metadata is checked against allow-lists of numeric data types and codecs;
OME-Zarr gives the axis names, pixel size, channels and pyramid (its
multiscales); CF attributes the no-data value.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re

import numpy as np

from ..constants import DEFAULT_MAX_PIXELS
from ..errors import ImageReadError, TransientReadError
from . import physical
from .fetch import (
    filesystem,
    is_http,
    is_url,
    storage_options,
)
from .formats import (
    Format,
    ImageInfo,
    _block_too_big,
    _yxc_shape,
    layout,
    shown_channels,
    to_yxc,
    whole_block_bytes,
)
from .retry import exhausted
from .source import Source

__all__ = [
    "ZarrFormat", "probe_zarr", "open_zarr", "declared_nodata", "multiscales_of", "group_attributes",
    "ZARR_CODECS",
]  # fmt: skip


class ZarrFormat(Format):
    """zarr v2 and v3 arrays, OME-Zarr 0.4 and 0.5 images and their levels: read chunk by chunk.

    Known by its :class:`~.source.Source` (``Source.zarr``), never sniffed from bytes.
    """

    name = "zarr"

    def probe(self, source, handle=None, *, max_pixels, channel_axis=None) -> ImageInfo:
        return probe_zarr(source, channel_axis, max_pixels)

    def read_region(self, info, rows, cols):
        return to_yxc(open_zarr(info.source.text, array=True), info.axes, rows, cols)

    @contextlib.contextmanager
    def regions(self, info):
        yield functools.partial(to_yxc, open_zarr(info.source.text, array=True), info.axes)

    def cells(self, info):
        return (info.tile[0], info.tile[1] or info.shape[1]) if info.tile[0] > 0 else None

    def level(self, info, side):
        """The smallest multiscale level of the image's OME-Zarr pyramid at least ``side`` long."""
        text = info.source.text.rstrip("/")
        if "/" not in text:
            return info
        parent = text.rsplit("/", 1)[0]
        multiscales = multiscales_of(parent)
        best = info
        for dataset in multiscales[0]["datasets"] if multiscales else ():
            level = probe_zarr(f"{parent}/{dataset['path']}")
            if max(level.shape[:2]) >= side and level.pixels < best.pixels and level.axes == info.axes:
                best = level
        return best


def open_zarr(source, array: bool = False):
    """A zarr node (an array with ``array``) opened read-only, from a path or a URL (s3://, http...)."""
    import zarr

    source = str(source)
    options = {"storage_options": storage_options(source)} if is_url(source) else {}
    return (zarr.open_array if array else zarr.open)(source, mode="r", **options)


def _multiscales(attrs) -> list | None:
    """OME-Zarr's ``multiscales`` metadata (0.4 at the top, 0.5 under ``ome``), if any."""
    return attrs.get("ome", {}).get("multiscales") or attrs.get("multiscales")


def multiscales_of(source: str) -> list | None:
    """The OME-Zarr ``multiscales`` of the group at ``source``, or None (see :func:`group_attributes`)."""
    return _multiscales(group_attributes(source))


def group_attributes(source: str) -> dict:
    """The attributes of the zarr group at ``source`` (v3 ``zarr.json`` or v2 ``.zattrs``), read as JSON.

    Nothing else of the group is read: its arrays' metadata (codecs, data
    types) are not looked at, so a group whose other arrays palette_dask
    would refuse (strings) still lends its OME metadata to the level read.
    An absent or unreadable document gives no attributes; a transient fault
    that outlasted its tries is raised.
    """
    for name in ("zarr.json", ".zattrs"):
        try:
            text = _metadata_text(f"{source.rstrip('/')}/{name}")
            document = json.loads(text) if text is not None and len(text) <= _MAX_METADATA else None
        except TransientReadError:
            raise
        except (ImageReadError, ValueError):
            document = None
        if isinstance(document, dict) and name == "zarr.json":
            return document.get("attributes") or {} if document.get("node_type") == "group" else {}
        if isinstance(document, dict):
            return document
    return {}


def omero_channels(attrs) -> list:
    """An OME-Zarr image's ``omero`` channels (``label``, ``color`` as ``RRGGBB``, ``active``), or none."""
    omero = attrs.get("omero") or attrs.get("ome", {}).get("omero") or {}
    channels = omero.get("channels") if isinstance(omero, dict) else None
    return channels if isinstance(channels, list) else []


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


ZARR_V2_CODECS = frozenset([*_NUMERIC_CODECS, "astype"])
_ZARR_V2_DTYPE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248])")
ZARR_CODECS = frozenset(
    ["bytes", "transpose", "blosc", "gzip", "zstd", "crc32c", "sharding_indexed"]
    + [f"numcodecs.{name}" for name in _NUMERIC_CODECS]
)


_ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zmetadata")


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
        raise exhausted(path, exc) or ImageReadError(f"{path}: cannot read: {exc}") from None


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
                "numeric data types and numeric codecs (see palette_dask.inputs.zarr_arrays.ZARR_CODECS)"
            )


def probe_zarr(
    source: str | Source, channel_axis: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageInfo:
    """A zarr array, an OME-Zarr image (its full-resolution level), or one level of it."""
    import zarr

    source = str(source)
    _check_zarr_metadata(source, source)
    try:
        node = open_zarr(source)
    except Exception as exc:
        error = ImageReadError(f"{source}: not a readable zarr array: {exc}")
        raise exhausted(source, exc) or error from None
    names, pixel_size, image_attrs = None, None, {}  # image_attrs: the OME-Zarr image's (omero)
    if isinstance(node, zarr.Group):
        multiscales, image_attrs = _multiscales(node.attrs), dict(node.attrs)
        if not multiscales:
            arrays = sorted(name for name, _ in node.arrays())
            raise ImageReadError(
                f"{source}: zarr group without an image; pass an OME-Zarr image or one of its arrays"
                + (f" ({', '.join(arrays[:5])})" if arrays else "")
            )
        level = multiscales[0]["datasets"][0]["path"]
        _check_zarr_metadata(source, f"{source.rstrip('/')}/{level}")
        source, node, names = f"{source.rstrip('/')}/{level}", node[level], _axis_names(multiscales)
        pixel_size = physical.from_multiscales(multiscales, level)
    else:
        names = getattr(node.metadata, "dimension_names", None)
        parent = source.rstrip("/").rsplit("/", 1)[0] if "/" in source.rstrip("/") else "."
        # none unless the parent is a zarr group; an http server is asked only of a folder named .zarr
        named = not is_http(parent) or ".zarr" in parent.lower()
        image_attrs = group_attributes(parent) if named else {}
        multiscales = _multiscales(image_attrs)
        if multiscales:  # a level of an OME-Zarr image: its axes, pixel size, channels
            names = names if names is not None else _axis_names(multiscales)
            pixel_size = physical.from_multiscales(multiscales, source.rstrip("/").rsplit("/", 1)[-1])
    if channel_axis is not None:
        names = None
    axes = layout(source, names, node.shape, channel_axis)
    chunk_bytes = int(np.prod(node.chunks)) * np.dtype(node.dtype).itemsize  # inner chunks when sharded
    if chunk_bytes > whole_block_bytes(max_pixels):
        raise _block_too_big(source, f"zarr chunk {tuple(node.chunks)}", chunk_bytes, max_pixels)
    chunks = dict(zip(axes, node.chunks))
    shape = _yxc_shape(axes, node.shape)
    return ImageInfo(
        source=Source.of(source, zarr=True),
        format="zarr",
        shape=shape,
        dtype=np.dtype(node.dtype).name,
        alpha=False,  # zarr and OME-Zarr declare no alpha band: only the user does (alpha, --alpha)
        nodata=declared_nodata(source, node.attrs),
        tile=(chunks["y"], chunks["x"]),
        axes=axes,
        pixel_size=pixel_size,
        **dict(zip(("shown_bands", "band_names"), shown_channels(omero_channels(image_attrs), shape[2]))),
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
