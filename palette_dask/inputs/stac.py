"""STAC items as inputs: an item, an item collection, a STAC API search saved as JSON; each item one image.

An item's chosen assets (``--assets``, else its ``visual`` asset) are
stacked as the bands of one image, in the order asked; each asset is read
as the file it is, through its own format (a COG by byte ranges, its
overviews for previews). An item's name in a run is ``<document>#<id>``
(:func:`~.source.item_name`): the JSON document that holds it (a path or
an http(s) or object-store URL), then its id. Documents are read with plain
json; a process keeps the items of the last few it read (:func:`document`).

What the item says is used, else what its files say: no-data (STAC 1.1
``nodata``, ``raster:bands``), CRS (``proj:code``, ``proj:epsg``), shape
(``proj:shape``, checked against the files) and pixel size
(``proj:transform``, in metres where the CRS is a UTM zone's), its
``datetime`` (``start_datetime`` where it is null).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import posixpath
import re
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import ImageReadError, InputError, one_line
from .fetch import download, is_http, is_url, process_folder
from .formats import Format, ImageInfo
from .source import Source, is_zarr_dir, item_name, named_zarr

__all__ = [
    "VISUAL",
    "StacFormat",
    "Asset",
    "Item",
    "expand",
    "document",
    "read_item",
    "chosen_assets",
    "stacked",
    "part_source",
    "georeferenced_by",
    "file_stem",
]

#: The asset read where ``--assets`` is not given: a true-colour image (a COG of 3 bands).
VISUAL = "visual"
#: Documents larger than this are refused (a saved search of a few thousand items is a few MB).
MAX_DOCUMENT_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Asset:
    """One asset of an item: its key, file, band names, and what the item declares of it."""

    key: str
    href: str
    names: tuple[str, ...]  # each band's name and common name, as the item gives them
    labels: tuple[str, ...]  # one per band: its common name, else its name
    bands: int  # the bands the item declares (0: it does not say)
    nodata: tuple[float | None, ...]  # each band's declared no-data, where the item declares it
    cog: bool  # its media type says GeoTIFF (or its file ends in .tif)
    shape: tuple[int, int] | None
    transform: tuple[float, ...] | None
    crs: str
    refused: str = ""  # why its href is not read (a local file named by a URL's document, a zarr...)


@dataclass(frozen=True)
class Item:
    """A STAC item as read from its document: its name in a run, id, datetime, and assets by key."""

    name: str
    id: str
    datetime: str
    assets: dict


def _reading_error(where: str, exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{where}: no such file"
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return f"{where}: not a STAC item or item collection (not JSON: {one_line(exc)})"
    return f"{where}: cannot read the STAC document: {one_line(exc) or type(exc).__name__}"


def _stamp(where: str):
    """What tells a local document changed (its size and time); None for a URL."""
    if is_url(where):
        return None
    stat = os.stat(where)
    return stat.st_size, stat.st_mtime_ns


def document(where: str) -> dict:
    """The JSON document at ``where`` (a path, or a URL downloaded now), parsed; its items kept by id.

    Raises
    ------
    ImageReadError
        When it cannot be read or is not JSON, in one line naming it.
    """
    with _lock(where):
        stamp = _stamp_of(where)
        found = _parsed(where)
        with contextlib.suppress(ImageReadError):  # not an item or collection: its reader says so
            _keep(where, stamp, _items(where, found))
        return found


#: The documents whose items a process keeps (the last read): a few saved searches at most.
KEPT_DOCUMENTS = 4
_kept: collections.OrderedDict = collections.OrderedDict()  # where → (stamp, {id: item})
_locks: dict = {}  # where → the lock its readers take: one reads and parses it, the others wait
_guard = threading.Lock()


def _lock(where: str) -> threading.Lock:
    with _guard:
        return _locks.setdefault(where, threading.Lock())


def _keep(where: str, stamp, items: list[dict]) -> dict:
    index = {item["id"]: item for item in reversed(items)}  # the first of each id
    with _guard:
        _kept[where] = (stamp, index)
        _kept.move_to_end(where)
        while len(_kept) > KEPT_DOCUMENTS:
            _kept.popitem(last=False)
    return index


def _stamp_of(where: str):
    try:
        return _stamp(where)
    except OSError as exc:
        raise ImageReadError(_reading_error(where, exc)) from None


def _indexed(where: str, wanted: str) -> dict:
    """A document's items by id, kept while it is the same (a local file's size and time).

    A URL's is read again when the id ``wanted`` is not in the items kept (an item added since).
    """
    with _lock(where):
        stamp = _stamp_of(where)
        with _guard:
            held = _kept.get(where)
        if held is not None and held[0] == stamp and (stamp is not None or wanted in held[1]):
            return held[1]
        return _keep(where, stamp, _items(where, _parsed(where)))


def _parsed(where: str) -> dict:
    """The document read and parsed now (a URL downloaded, at most :data:`MAX_DOCUMENT_BYTES`)."""
    try:
        if is_url(where):
            with tempfile.TemporaryDirectory(dir=process_folder()) as folder:
                path = os.path.join(folder, "document.json")
                download(where, path, max_bytes=MAX_DOCUMENT_BYTES)
                with open(path, "rb") as handle:
                    found = json.load(handle)
        else:
            if os.path.getsize(where) > MAX_DOCUMENT_BYTES:
                raise ImageReadError(f"{where}: a STAC document of more than {MAX_DOCUMENT_BYTES:,} bytes")
            with open(where, "rb") as handle:
                found = json.load(handle)
    except ImageReadError:
        raise
    except Exception as exc:  # no such file, not JSON
        raise ImageReadError(_reading_error(where, exc)) from None
    if not isinstance(found, dict):
        raise ImageReadError(f"{where}: not a STAC item or item collection (a JSON {type(found).__name__})")
    return found


def _items(where: str, found: dict) -> list[dict]:
    """The items of a document: itself (an item), or its ``features`` (a collection, a saved search)."""
    kind = found.get("type")
    if kind == "Feature" and isinstance(found.get("assets"), dict):
        items = [found]
    elif kind == "FeatureCollection" and isinstance(found.get("features"), list):
        items = found["features"]
    else:
        raise ImageReadError(
            f"{where}: not a STAC item or item collection (a JSON document of type {kind!r}; "
            "an item is a Feature with assets, a collection a FeatureCollection of them)"
        )
    for number, item in enumerate(items, start=1):
        if not (isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]):
            raise ImageReadError(f"{where}: feature {number} is not a STAC item (it has no id)")
        if not isinstance(item.get("assets"), dict):
            raise ImageReadError(f"{where}: item {item['id']} has no assets")
    return items


#: The STAC documents that hold no items themselves: a glob that finds them leaves them out.
NOT_ITEMS = ("Catalog", "Collection")


def expand(where: str, *, found: bool = False) -> list[Source]:
    """The items of the STAC document ``where`` as sources named ``<where>#<id>``, in its order.

    A document ``found`` by a glob that is a catalog or collection gives none (:data:`NOT_ITEMS`).

    Raises
    ------
    InputError
        When it cannot be read, is not an item or collection, holds none, or two of one id.
    """
    if not is_url(where):
        where = os.path.abspath(where)
    try:
        parsed = document(where)
        if found and parsed.get("type") in NOT_ITEMS:
            return []
        items = _items(where, parsed)
    except ImageReadError as exc:
        raise InputError(str(exc)) from None
    if not items:
        raise InputError(f"{where}: the item collection holds no items")
    ids = [item["id"] for item in items]
    twice = next((i for i, n in collections.Counter(ids).items() if n > 1), None)
    if twice is not None:
        raise InputError(f"{where}: holds two items of id {twice!r}")
    return [Source.of(f"{where}#{i}", zarr=False, item=True) for i in ids]


def read_item(source: Source | str) -> Item:
    """The item a source names (``<document>#<id>``), its assets' files resolved against the document.

    Raises
    ------
    ImageReadError
        When the document cannot be read, or does not hold an item of that id.
    """
    where, wanted = item_name(str(source))
    found = _indexed(where, wanted).get(wanted)
    if found is None:
        raise ImageReadError(f"{source}: {where} holds no item of id {wanted!r}")
    properties = found.get("properties") or {}
    when = properties.get("datetime") or properties.get("start_datetime") or ""
    shared = _projection(properties, None)
    assets = {
        str(key): _asset(where, str(key), asset, shared)
        for key, asset in found["assets"].items()
        if isinstance(asset, dict) and isinstance(asset.get("href"), str)
    }
    return Item(str(source), wanted, str(when), assets)


def _projection(fields: dict, inherited) -> tuple:
    """``(shape, transform, crs)`` of the ``proj:`` fields (an asset's over its item's)."""
    shape, transform, crs = inherited or (None, None, "")
    if isinstance(fields.get("proj:shape"), list) and len(fields["proj:shape"]) == 2:
        shape = tuple(int(n) for n in fields["proj:shape"])
    if isinstance(fields.get("proj:transform"), list) and len(fields["proj:transform"]) >= 6:
        transform = tuple(float(v) for v in fields["proj:transform"][:6])
    if isinstance(fields.get("proj:code"), str) and fields["proj:code"]:
        crs = fields["proj:code"]
    elif isinstance(fields.get("proj:epsg"), int):
        crs = f"EPSG:{fields['proj:epsg']}"
    return shape, transform, crs


def _href(where: str, href: str) -> str:
    """An asset's file: its href, resolved against its document's place where relative.

    A document read from a URL names only URLs (its relative and absolute
    paths resolved on its host or bucket): never a file of this machine.

    Raises
    ------
    ValueError
        A ``file:`` href in a URL's document, or one naming another host.

    Examples
    --------
    >>> _href("s3://bucket/items/search.json", "../date1/B04.tif"), _href("/d/i/a.json", "./b%2004.tif")
    ('s3://bucket/date1/B04.tif', '/d/i/b 04.tif')
    >>> _href("https://x.org/stac/item.json", "B04.tif?redirect=https://y")
    'https://x.org/stac/B04.tif?redirect=https://y'
    """
    parts = urllib.parse.urlsplit(href)
    kind = parts.scheme.lower() if len(parts.scheme) > 1 else ""  # C:\... is a drive, not a scheme
    if kind == "file":
        if is_url(where):
            raise ValueError(f"names a file of this machine ({href}): a URL's document may not")
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"a file:// href names a path on this machine, not on {parts.netloc}")
        return urllib.request.url2pathname(parts.path)
    if kind:
        return href
    if is_http(where):
        return urllib.parse.urljoin(where, href)
    if is_url(where):  # s3://, gs://, az://: urljoin leaves their relative hrefs as they are
        base = urllib.parse.urlsplit(where)
        path = posixpath.normpath(posixpath.join(posixpath.dirname(base.path), parts.path))
        return urllib.parse.urlunsplit((base.scheme, base.netloc, path, parts.query, ""))
    path = urllib.request.url2pathname(parts.path)
    return os.path.normpath(os.path.join(os.path.dirname(where), path))


def _refused(given: str, href: str, media: str) -> str:
    """Why an asset's file (``href``, resolved from ``given``) is not read: an item's name, a zarr store's."""
    if item_name(given) is not None or item_name(href) is not None:
        return f"its href names a STAC item ({given}), not an image file"
    path = urllib.parse.urlsplit(href).path if is_url(href) else href
    if "zarr" in media or named_zarr(path) or (not is_url(href) and is_zarr_dir(href)):
        return f"its href names a zarr store ({href}); give the store itself as an input"
    return ""


def _asset(where: str, key: str, asset: dict, shared: tuple) -> Asset:
    bands = asset.get("bands") or asset.get("eo:bands") or []  # STAC 1.1, then the eo extension's
    bands = [band for band in bands if isinstance(band, dict)] if isinstance(bands, list) else []
    raster = asset.get("raster:bands") if isinstance(asset.get("raster:bands"), list) else []
    names, labels = [], []
    for band in bands:
        names += [band.get(field) for field in ("name", "common_name", "eo:common_name")]
        labels.append(str(band.get("eo:common_name") or band.get("common_name") or band.get("name") or ""))
    count = max(len(bands), len(raster))

    def nodata_of(band: dict):
        value = band.get("nodata", asset.get("nodata"))
        if value is None:
            return None
        value = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(str(value), value)
        return float(value)

    declared = [nodata_of(band) for band in (raster or bands)] if (raster or bands) else [nodata_of({})]
    media = str(asset.get("type") or "").lower()
    try:
        href = _href(where, asset["href"])
        refused = _refused(asset["href"], href, media)
    except ValueError as exc:
        href, refused = asset["href"], str(exc)
    cog = "geotiff" in media or urllib.parse.urlsplit(href).path.lower().endswith((".tif", ".tiff"))
    shape, transform, crs = _projection(asset, shared)
    names = tuple(n for n in names if isinstance(n, str) and n)
    return Asset(key, href, names, tuple(labels), count, tuple(declared), cog, shape, transform, crs, refused)


def part_source(item: Item, asset: Asset) -> Source:
    """The file of one of an item's assets, as a plain file (never an item or zarr store).

    Raises
    ------
    ImageReadError
        Where the item's href is not read (:attr:`Asset.refused`), in one line.
    """
    if asset.refused:
        raise ImageReadError(f"{item.name}: asset {asset.key}: {asset.refused}")
    return Source.of(asset.href, zarr=False, item=False)


def georeferenced_by(source: Source, assets: Iterable[str] | None) -> Source:
    """The file whose georeferencing is an item's: the first of its chosen assets (they share its grid)."""
    item = read_item(source)
    return part_source(item, chosen_assets(item, assets)[0])


def file_stem(source: Source) -> str:
    """An item's file name stem: its id, all but ``A-Za-z0-9._-`` as ``_``, a hash where changed.

    Examples
    --------
    >>> file_stem(Source("/d/s.json#S2B_33UUP", item=True)), file_stem(Source("/d/s.json#../a b", item=True))
    ('S2B_33UUP', '_a_b-2c2c791a')
    """
    wanted = item_name(source.text)[1]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", wanted).lstrip(".")[:200]
    if safe == wanted:
        return safe
    return f"{safe}-{hashlib.sha256(wanted.encode()).hexdigest()[:8]}"


def chosen_assets(item: Item, assets: Iterable[str] | None) -> list[Asset]:
    """The assets stacked as the item's bands: each named by its key or a band's (common) name.

    Without ``assets``, the item's ``visual`` asset. A band's name matched by
    several assets is the one of a single band, then the one that is a COG,
    if only one is; a band of an asset of several is not read alone.

    Raises
    ------
    ImageReadError
        Naming the item, the asset not found, and the assets it has.
    """
    keys = ", ".join(item.assets) or "none"
    if not assets:
        if VISUAL in item.assets:
            return [item.assets[VISUAL]]
        raise ImageReadError(
            f"{item.name}: has no {VISUAL!r} asset (a true-colour image); choose its bands with "
            f"--assets (assets=), e.g. --assets red,green,blue; its assets: {keys}"
        )
    chosen = []
    for wanted in assets:
        if wanted in item.assets:
            chosen.append(item.assets[wanted])
            continue
        named = [a for a in item.assets.values() if wanted.lower() in (n.lower() for n in a.names)]
        if len(named) > 1:  # a single band's asset (B04) over a true-colour one (visual) that lists red too
            named = [a for a in named if a.bands == 1] or named
        if len(named) > 1:
            named = [a for a in named if a.cog] or named
        if not named:
            raise ImageReadError(f"{item.name}: no asset or band named {wanted!r}; its assets: {keys}")
        if len(named) > 1:
            raise ImageReadError(
                f"{item.name}: band {wanted!r} is in several assets ({', '.join(a.key for a in named)}); "
                "name one by its key"
            )
        if named[0].bands > 1:
            raise ImageReadError(
                f"{item.name}: band {wanted!r} is one of the {named[0].bands} bands of asset "
                f"{named[0].key}, which is read whole: name the asset ({named[0].key}) to read them all"
            )
        chosen.append(named[0])
    return chosen


#: EPSG codes of UTM zones (WGS 84 north and south, ETRS89, NAD83): projected, in metres.
_UTM = (range(32601, 32661), range(32701, 32761), range(25828, 25839), range(26901, 26924))


def _metres(crs: str) -> bool:
    """Whether a CRS is one whose unit is known here to be the metre (a UTM zone's EPSG code)."""
    authority, _, code = crs.partition(":")
    return authority.upper() == "EPSG" and code.isdigit() and any(int(code) in zone for zone in _UTM)


def stacked(item: Item, assets: list[Asset], parts: list[ImageInfo]) -> ImageInfo:
    """The image of an item: its assets' images (``parts``, probed) as the bands of one, checked.

    Raises
    ------
    ImageReadError
        When the assets differ in rows and columns or in dtype, or from the
        item's ``proj:shape``: one line naming the item. Different no-data
        values are recorded (``nodata_conflict``), for ``--nodata`` to decide.
    """
    name = item.name
    sizes = {part.shape[:2] for part in parts}
    if len(sizes) > 1:
        each = ", ".join(f"{a.key} {p.shape[0]} x {p.shape[1]}" for a, p in zip(assets, parts))
        raise ImageReadError(
            f"{name}: its assets differ in rows and columns ({each}); choose assets of one size"
        )
    rows, cols = parts[0].shape[:2]
    for asset in assets:
        if asset.shape is not None and asset.shape != (rows, cols):
            raise ImageReadError(
                f"{name}: asset {asset.key} is {rows} x {cols} pixels, not the {asset.shape[0]} x "
                f"{asset.shape[1]} of its proj:shape"
            )
    dtypes = {part.dtype for part in parts}
    if len(dtypes) > 1:
        each = ", ".join(f"{a.key} {p.dtype}" for a, p in zip(assets, parts))
        raise ImageReadError(f"{name}: its assets differ in data type ({each}); choose assets of one type")
    declared = {v for a in assets for v in a.nodata if v is not None}
    if not declared:  # what the files say
        declared = {p.nodata for p in parts if p.nodata is not None}
    conflict = ""
    if len({"nan" if math.isnan(v) else v for v in declared}) > 1:  # --nodata decides (pixel_spec)
        conflict = (
            f"{name}: its assets declare different no-data values ({', '.join(map(str, sorted(declared)))}); "
            "give one with --nodata"
        )
        declared = set()
    if len(parts) > 1:
        for asset, part in zip(assets, parts):
            if part.alpha:
                raise ImageReadError(
                    f"{name}: asset {asset.key} has an alpha band, which would count as a colour among "
                    "the bands of several assets; read that asset alone, or assets without alpha"
                )
    first = assets[0]
    crs = first.crs or parts[0].crs
    pixel_size = parts[0].pixel_size
    if first.transform is not None and _metres(crs):
        a, b, _, d, e, _ = first.transform
        pixel_size = (math.hypot(b, e), math.hypot(a, d))
    names = []
    for asset, part in zip(assets, parts):  # each band: the item's name for it, else the asset's key
        count = part.shape[2]
        given = asset.labels if len(asset.labels) == count and all(asset.labels) else ()
        names += given or ([asset.key] if count == 1 else [f"{asset.key}:{i + 1}" for i in range(count)])
    return ImageInfo(
        source=Source.of(name, zarr=False, item=True),
        format=StacFormat.name,
        shape=(rows, cols, sum(part.shape[2] for part in parts)),
        dtype=parts[0].dtype,
        alpha=len(parts) == 1 and parts[0].alpha,
        nodata=declared.pop() if declared else None,
        tile=_common_tile(parts, rows, cols),
        pixel_size=pixel_size,
        band_names=tuple(names),
        parts=tuple(parts),
        datetime=item.datetime,
        crs=crs,
        nodata_conflict=conflict,
    )


def _common_tile(parts: list[ImageInfo], rows: int, cols: int) -> tuple[int, int]:
    """Tiles that are whole tiles of every part (their least common multiple, within the image).

    Examples
    --------
    >>> from types import SimpleNamespace as Part
    >>> _common_tile([Part(tile=(128, 128)), Part(tile=(256, 512))], 1000, 1000)
    (256, 512)
    >>> _common_tile([Part(tile=(128, 128)), Part(tile=(48, 0))], 1000, 1000)
    (384, 0)
    """
    tile_rows = min(rows, math.lcm(*(max(1, part.tile[0]) for part in parts)))
    widths = [part.tile[1] for part in parts]
    tile_cols = 0 if 0 in widths else min(cols, math.lcm(*widths))  # 0: a whole row, as _plan_chunks reads it
    return tile_rows, tile_cols


class StacFormat(Format):
    """A STAC item: its assets' images read each by its own format, their bands stacked in order."""

    name = "stac"

    def __init__(self, formats: Iterable[Format] = ()):
        self._formats = {f.name: f for f in formats}

    def _of(self, part: ImageInfo) -> Format:
        return self._formats[part.format]

    def read_region(self, info, rows, cols):
        return np.concatenate([self._of(p).read_region(p, rows, cols) for p in info.parts], axis=2)

    @contextlib.contextmanager
    def regions(self, info):
        with contextlib.ExitStack() as stack:
            reads = [stack.enter_context(self._of(p).regions(p)) for p in info.parts]
            yield lambda rows, cols: np.concatenate([read(rows, cols) for read in reads], axis=2)

    def cells(self, info):
        cells = {self._of(p).cells(p) for p in info.parts}
        return cells.pop() if len(cells) == 1 else None

    def level(self, info, side):
        levels = [self._of(p).level(p, side) for p in info.parts]
        if len({level.shape[:2] for level in levels}) != 1 or levels[0].shape[:2] == info.shape[:2]:
            return info  # pyramids that differ: the image itself
        rows, cols = levels[0].shape[:2]
        return dataclasses.replace(
            info, shape=(rows, cols, info.shape[2]), tile=_common_tile(levels, rows, cols),
            level=levels[0].level, parts=tuple(levels), pixel_size=None,
        )  # fmt: skip
