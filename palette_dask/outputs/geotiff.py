"""GeoTIFF labels: each image's label raster as a tiled GeoTIFF that QGIS, GDAL and rasterio open.

``--labels-geotiff DIR`` writes ``DIR/<input stem>.labels.tif`` for every
image done (a STAC item's id is its stem; ``<stem>-<index>.labels.tif`` where
two inputs share a stem):
the values of the store's ``labels/<i>`` (colour index + 1, 0 where masked),
512² deflate tiles, the palette as its colour map, nodata 0, the store's
pyramid levels as its overviews, and the georeferencing of a TIFF source
(GeoKeys, ModelPixelScale and ModelTiepoint or ModelTransformation, copied;
a STAC item's: its first asset stacked)
or of an xarray input's CRS (an EPSG code) and transform, as the store kept them;
without a CRS, the pixel size of an OME-TIFF or OME-Zarr source (ModelPixelScale
in its label image's unit, and the TIFF resolution).
Beside each, ``<file>.aux.xml`` gives its classes as GDAL and QGIS read them
(category names and a raster attribute table: see :func:`attribute_table`).
Each file is written by a task, one task per batch, streaming bands of rows
from the store: never a whole raster in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..inputs.formats import open_source
from ..inputs.physical import METRES
from ..inputs.source import Source
from ..inputs.stac import file_stem, georeferenced_by
from ..inputs.tiff import open_tiff
from .store import zarr_store

__all__ = ["geotiff_paths", "check_geotiff_folder", "write_label_geotiffs", "attribute_table"]

#: TIFF tags that georeference a raster: ModelPixelScale, ModelTiepoint,
#: ModelTransformation, GeoKeyDirectory, GeoDoubleParams, GeoAsciiParams.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)
#: Tiles of the GeoTIFFs written.
TILE = 512


def geotiff_paths(folder: str | os.PathLike, names: list[str]) -> list[str]:
    """Each input's GeoTIFF in ``folder``: ``<stem>.labels.tif`` (``<stem>-<index>...`` for shared stems).

    Examples
    --------
    >>> geotiff_paths("out", ["a/x.png", "b/x.png", "scene.tif", "/s/search.json#S2B_1"])
    ['out/x-0.labels.tif', 'out/x-1.labels.tif', 'out/scene.labels.tif', 'out/S2B_1.labels.tif']
    """
    stems = [_stem(name) for name in names]
    seen: dict[str, int] = {}
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
    return [
        str(Path(folder) / (f"{stem}-{i}" if seen[stem] > 1 else stem)) + ".labels.tif"
        for i, stem in enumerate(stems)
    ]


def _stem(name: str) -> str:
    """An input's stem: a file's, or a STAC item's id made a safe file name (:func:`~.stac.file_stem`)."""
    source = Source.of(name, zarr=False)
    return file_stem(source) if source.item else Path(name.rstrip("/")).stem


def check_geotiff_folder(folder: str | os.PathLike, names: list[str], *, replace: bool) -> None:
    """Refuse a folder that is a file, or holds a GeoTIFF this run would write, unless ``replace``.

    No target may be one of the inputs, whatever ``replace`` says. The folder
    is listed once, and only inputs named ``*.labels.tif`` are resolved.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: --labels-geotiff needs a folder, and this is a file")
    inputs = {os.path.realpath(name) for name in names if name.endswith(".labels.tif")}
    present = set(os.listdir(folder)) if folder.is_dir() else set()
    for path in geotiff_paths(folder, names):
        if os.path.realpath(path) in inputs:
            raise InputError(f"{path}: is one of the inputs; choose another --labels-geotiff folder")
        for name in (Path(path).name, Path(path).name + ".aux.xml"):  # the file and its classes beside it
            if name in present and not replace:
                where = Path(folder) / name
                raise InputError(f"{where}: already exists; pass --overwrite (overwrite=True) to replace it")


def _array_geo_tags(reference: dict | None) -> list:
    """GeoTIFF tags of an xarray input's CRS and transform as the store kept them (see ``keep_georeference``).

    Only a CRS with an EPSG code is written (its GeoKeys name the code); a
    transform with rotation becomes a ModelTransformation.

    Examples
    --------
    >>> utm = {"epsg": 32618, "geographic": False, "transform": [10, 0, 5, 0, -10, 9]}
    >>> [tag[0] for tag in _array_geo_tags(utm)]
    [33550, 33922, 34735]
    >>> _array_geo_tags({"dims": ["y", "x"]})
    []
    """
    epsg = (reference or {}).get("epsg")
    if epsg is None or not 0 < epsg < 32767 or "transform" not in reference:
        return []
    a, b, c, d, e, f = reference["transform"]
    geographic = reference["geographic"]
    # GeoKeyDirectory: version 1.1.0, 3 keys: model type, raster type PixelIsArea, the CRS's EPSG code
    model, crs_key = (2, 2048) if geographic else (1, 3072)  # GTModelType; Geographic or ProjectedCSType
    keys = (1, 1, 0, 3, 1024, 0, 1, model, 1025, 0, 1, 1, crs_key, 0, 1, epsg)  # fmt: skip
    if b == 0 and d == 0:  # north up: ModelPixelScale and ModelTiepoint
        placed = [(33550, 12, 3, (a, -e, 0.0), True), (33922, 12, 6, (0.0, 0.0, 0.0, c, f, 0.0), True)]
    else:
        matrix = (a, b, 0.0, c, d, e, 0.0, f, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
        placed = [(34264, 12, 16, matrix, True)]
    return [*placed, (34735, 3, len(keys), keys, True)]


def _scale_tags(multiscale: dict) -> tuple[list, dict]:
    """A label image's pixel size (its level 0 ``scale`` and ``unit``) as TIFF tags, for a source with no CRS.

    ``(extratags, resolution keywords)``: ModelPixelScale and ModelTiepoint in
    the label image's unit (rasterio's ``res``), and the TIFF resolution in
    pixels per centimetre (read by ImageJ and Fiji); nothing without a unit.

    Examples
    --------
    >>> level = {"coordinateTransformations": [{"type": "scale", "scale": [0.25, 0.5]}]}
    >>> micrometres = [{"name": "y", "unit": "micrometer"}, {"name": "x", "unit": "micrometer"}]
    >>> tags, resolution = _scale_tags({"axes": micrometres, "datasets": [level]})
    >>> [tag[3] for tag in tags], resolution["resolution"]
    ([(0.5, 0.25, 0.0), (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)], (20000.0, 40000.0))
    """
    unit = multiscale["axes"][0].get("unit")
    if unit not in METRES or unit == "meter":  # metres: a map's, whose CRS alone places it (none here)
        return [], {}
    height, width = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    tags = [(33550, 12, 3, (width, height, 0.0), True), (33922, 12, 6, (0.0,) * 6, True)]
    per_cm = tuple(0.01 / (side * METRES[unit]) for side in (width, height))
    return tags, {"resolution": per_cm, "resolutionunit": "CENTIMETER"}


def _geo_tags(source: str, downloads: str | None, assets=None) -> list:
    """A TIFF source's georeferencing tags (a remote one's by byte ranges) as tifffile's ``extratags``.

    A STAC item's are those of the first of its ``assets`` (they share its grid).
    """
    try:
        source = Source.of(source, zarr=False)
        if source.item:
            source = georeferenced_by(source, assets)
        with open_source(source, downloads) as handle, open_tiff(handle) as tif:
            tags = tif.pages[0].tags.values()
            return [(tag.code, tag.dtype, tag.count, tag.value, True) for tag in tags if tag.code in GEO_TAGS]
    except Exception:  # not a TIFF (PNG, zarr...): no georeferencing to copy
        return []


#: Most bytes of a band of rows read at once.
BAND_BYTES = 256 * 2**20


def _tiles(array):
    """The ``TILE`` x ``TILE`` tiles of a 2-D zarr array, row by row.

    Read a band of rows at a time: as many rows as the array's chunks hold
    (each chunk is then decoded once, not once per tile row), at most
    :data:`BAND_BYTES`, a whole number of tiles.
    """
    rows, cols = array.shape
    fit = max(1, BAND_BYTES // max(1, cols * array.dtype.itemsize * TILE))
    band_rows = TILE * max(1, min(fit, -(-array.chunks[0] // TILE)))
    for top in range(0, rows, band_rows):
        band = array[top : top + band_rows]
        for r in range(0, band.shape[0], TILE):
            for c in range(0, cols, TILE):
                tile = np.zeros((TILE, TILE), band.dtype)
                part = band[r : r + TILE, c : c + TILE]
                tile[: part.shape[0], : part.shape[1]] = part
                yield tile


def _write_one(root: str, index: int, source: str, path: str, downloads: str | None, assets=None) -> None:
    import tifffile
    import zarr

    label = zarr.open_group(zarr_store(f"{root}/labels/{index}"), mode="r")
    ome = label.attrs["ome"]
    levels = [label[d["path"]] for d in ome["multiscales"][0]["datasets"]]
    colormap = np.zeros((3, 2 ** (8 * levels[0].dtype.itemsize)), np.uint16)
    for colour in ome["image-label"]["colors"]:
        colormap[:, colour["label-value"]] = np.asarray(colour["rgba"][:3]) * 257
    placed = _geo_tags(source, downloads, assets) or _array_geo_tags(label.attrs.get("georeference"))
    resolution = {}
    if not placed:  # no CRS: the pixel size of an OME-TIFF, an OME-Zarr image
        placed, resolution = _scale_tags(ome["multiscales"][0])
    extratags = [*placed, (42113, 2, 2, "0", True)]  # GDAL_NODATA
    partial = f"{path}.partial"
    try:
        with tifffile.TiffWriter(partial, bigtiff=levels[0].nbytes > 2**31) as tif:
            for level, array in enumerate(levels):
                tif.write(
                    _tiles(array), shape=array.shape, dtype=array.dtype, tile=(TILE, TILE),
                    photometric="palette", colormap=colormap, compression="zlib",
                    subfiletype=1 if level else 0, extratags=extratags if level == 0 else (),
                    **(resolution if level == 0 else {}),
                )  # fmt: skip
        os.replace(partial, path)
        with open(partial, "w", encoding="utf-8") as handle:  # its classes, beside it, as GDAL keeps them
            handle.write(attribute_table(ome["image-label"].get("properties") or []))
        os.replace(partial, f"{path}.aux.xml")
    finally:  # nothing half written is left in the user's folder
        if os.path.lexists(partial):
            os.remove(partial)


#: GDAL's raster attribute table column types and usages (``GDALRATFieldType``, ``GDALRATFieldUsage``).
_INTEGER, _REAL, _STRING = 0, 1, 2
_GENERIC, _PIXEL_COUNT, _NAME, _MIN_MAX, _RED, _GREEN, _BLUE = 0, 1, 2, 5, 6, 7, 8


def attribute_table(properties: list[dict]) -> str:
    """A label GeoTIFF's classes as GDAL's ``.aux.xml`` (PAM): category names and a raster attribute table.

    QGIS and GDAL read them beside the file: value 0 is no class (left
    out), value ``id`` the colour's name; the table gives each value's
    pixels, name, hex code, red, green, blue, share and, where known, area
    in m². ``properties`` are the label image's (``labels.label_properties``).

    Examples
    --------
    >>> navy = {"label-value": 1, "name": "navy", "hex": "#000080", "pixels": 4, "share": 1.0}
    >>> xml = attribute_table([navy])
    >>> "<Category>navy</Category>" in xml, "<F>navy</F>" in xml
    (True, True)
    """
    from xml.sax.saxutils import escape

    by_value = {p["label-value"]: p for p in properties}
    categories = "".join(
        f"<Category>{escape(by_value[v]['name']) if v in by_value else ''}</Category>"
        for v in range(max(by_value, default=0) + 1)
    )
    fields = [("Value", _INTEGER, _MIN_MAX), ("Count", _INTEGER, _PIXEL_COUNT), ("Name", _STRING, _NAME)]
    fields += [("Hex", _STRING, _GENERIC), ("Red", _INTEGER, _RED), ("Green", _INTEGER, _GREEN)]
    fields += [("Blue", _INTEGER, _BLUE), ("Share", _REAL, _GENERIC)]
    areas = bool(properties) and all("area_m2" in p for p in properties)
    fields += [("Area_m2", _REAL, _GENERIC)] * areas
    definitions = "".join(
        f'<FieldDefn index="{i}"><Name>{name}</Name><Type>{kind}</Type><Usage>{usage}</Usage></FieldDefn>'
        for i, (name, kind, usage) in enumerate(fields)
    )
    rows = []
    for i, p in enumerate(sorted(properties, key=lambda p: p["label-value"])):
        red, green, blue = bytes.fromhex(p["hex"][1:])
        cells = [
            p["label-value"],
            p["pixels"],
            escape(p["name"]),
            p["hex"],
            red,
            green,
            blue,
            repr(p["share"]),
        ]
        cells += [repr(p["area_m2"])] if areas else []
        rows.append(f'<Row index="{i}">' + "".join(f"<F>{cell}</F>" for cell in cells) + "</Row>")
    return (
        '<PAMDataset><PAMRasterBand band="1"><Description>palette_dask colour ids</Description>'
        f"<CategoryNames>{categories}</CategoryNames>"
        f'<GDALRasterAttributeTable tableType="thematic">{definitions}{"".join(rows)}'
        "</GDALRasterAttributeTable>"
        "</PAMRasterBand></PAMDataset>\n"
    )


def _write_batch(root: str, jobs: list, downloads: str | None) -> int:
    import zarr

    # the assets a STAC item's run stacked: the first one's georeferencing is the item's
    assets = (zarr.open_group(zarr_store(root), mode="r").attrs.get("parameters") or {}).get("assets")
    for index, source, path in jobs:
        _write_one(root, index, source, path, downloads, assets)
    return len(jobs)


def write_label_geotiffs(client, root: str, names: list[str], batches, done, folder, downloads=None) -> int:
    """Write the GeoTIFF of every image ``done`` says, a task per batch; returns how many were written.

    ``batches`` are the store's batches (ranges of image indices), ``done``
    a boolean per image; ``downloads`` the run's folder of URL copies, where
    a URL TIFF's georeferencing is read.
    """
    os.makedirs(folder, exist_ok=True)
    paths = geotiff_paths(folder, names)
    jobs = ([(i, names[i], paths[i]) for i in rows if done[i]] for rows in batches)
    futures = [client.submit(_write_batch, root, batch, downloads, pure=False) for batch in jobs if batch]
    return sum(client.gather(futures))
