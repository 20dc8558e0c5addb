"""Physical pixel size: how tall and wide a pixel is on the ground or under the microscope, in metres.

Read from what a format declares, never guessed: a GeoTIFF's GeoKeys in a
projected CRS (its linear unit, ``ModelPixelScale`` or
``ModelTransformation``), an OME-TIFF's ``PhysicalSizeY``/``PhysicalSizeX``
(micrometres unless it says), an Aperio SVS slide's ``MPP``, an OME-Zarr image's ``scale`` for its
``y``/``x`` axes with their ``unit``, a rioxarray scene's transform in a
projected CRS. A geographic CRS (degrees) gives none, nor does a Mercator
projection (its map units stretch with latitude): their pixels have no one
area. In other projections the area is the map's (exact where it is
equal-area, within the projection's scale error elsewhere: UTM's 0.04%).
Areas are then ``pixels x height x width`` (see
:func:`palette_dask.outputs.result.PaletteResult.areas`).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree

__all__ = [
    "METRES", "from_geokeys", "crs_of_geokeys", "from_ome_xml", "from_svs", "from_multiscales", "from_crs",
    "area_unit",
]  # fmt: skip

_MICRO = 1e-6
#: Metres in a unit of length, by the names OME-Zarr (its axes' ``unit``), OME-XML and CRSs use.
METRES = {
    **dict.fromkeys(("meter", "metre", "m"), 1.0),
    **dict.fromkeys(("kilometer", "kilometre", "km"), 1e3),
    **dict.fromkeys(("centimeter", "centimetre", "cm"), 1e-2),
    **dict.fromkeys(("millimeter", "millimetre", "mm"), 1e-3),
    **dict.fromkeys(("micrometer", "micrometre", "micron", "µm", "μm", "um"), _MICRO),
    **dict.fromkeys(("nanometer", "nanometre", "nm"), 1e-9),
    **dict.fromkeys(("angstrom", "Å"), 1e-10),
    **dict.fromkeys(("foot", "ft"), 0.3048),
    **dict.fromkeys(("US survey foot", "us-ft"), 1200 / 3937),
    "inch": 0.0254,
    "yard": 0.9144,
    "mile": 1609.344,
}
#: Pixels under this side (0.1 mm) are a microscope's: their sizes and areas are shown in micrometres.
MICROSCOPE_BELOW = 1e-4
#: Mercator projections (EPSG codes): their map units stretch with latitude (4x the area at 60°), so
#: a pixel has no one area on the ground and none is given.
MERCATOR = frozenset({3857, 3395, 3785, 900913, 102100, 102113, 54004, 41001})
#: GeoTIFF's ``ProjLinearUnitsGeoKey`` values (EPSG units of length), in metres.
_EPSG_UNITS = {9001: 1.0, 9002: 0.3048, 9003: 1200 / 3937, 9030: 1852.0, 9036: 1e3}


def _size(height, width, factor) -> tuple[float, float] | None:
    """``(height, width)`` in metres, or None unless both are finite and positive."""
    try:
        size = (abs(float(height)) * factor, abs(float(width)) * factor)
    except (TypeError, ValueError):
        return None
    return size if all(math.isfinite(v) and v > 0 for v in size) else None


def from_geokeys(geo: dict | None) -> tuple[float, float] | None:
    """A GeoTIFF's pixel size from tifffile's ``geotiff_metadata``: only in a projected CRS with its unit.

    Examples
    --------
    >>> utm = {"GTModelTypeGeoKey": 1, "ProjLinearUnitsGeoKey": 9001, "ModelPixelScale": [10.0, 20.0, 0]}
    >>> from_geokeys(utm)
    (20.0, 10.0)
    >>> from_geokeys({"GTModelTypeGeoKey": 2, "ModelPixelScale": [0.01, 0.01, 0]}) is None  # degrees
    True
    """
    if not geo or int(geo.get("GTModelTypeGeoKey", 0)) != 1:  # 1: projected
        return None
    if int(geo.get("ProjectedCSTypeGeoKey", 0)) in MERCATOR:
        return None
    factor = _EPSG_UNITS.get(int(geo.get("ProjLinearUnitsGeoKey", 0)))
    if factor is None:
        return None
    if "ModelPixelScale" in geo:
        width, height = geo["ModelPixelScale"][:2]
        return _size(height, width, factor)
    if "ModelTransformation" in geo:  # a 4 x 4 matrix, rows first: a pixel's sides are its columns
        (a, b, *_), (d, e, *_) = geo["ModelTransformation"][:2]
        return _size(math.hypot(b, e), math.hypot(a, d), factor)
    return None


def crs_of_geokeys(geo: dict | None) -> str:
    """A GeoTIFF's CRS as ``EPSG:<code>`` from tifffile's ``geotiff_metadata``; ``""`` where it names none.

    Examples
    --------
    >>> crs_of_geokeys({"GTModelTypeGeoKey": 1, "ProjectedCSTypeGeoKey": 32633}), crs_of_geokeys({})
    ('EPSG:32633', '')
    """
    for key in ("ProjectedCSTypeGeoKey", "GeographicTypeGeoKey"):
        try:
            code = int((geo or {}).get(key, 0))
        except (TypeError, ValueError):  # tifffile gives an enum, or a name it does not know
            continue
        if 0 < code < 32767:  # 32767: user-defined, no code
            return f"EPSG:{code}"
    return ""


def from_ome_xml(xml: str | None) -> tuple[float, float] | None:
    """An OME-TIFF's pixel size: the first image's ``PhysicalSizeY`` and ``PhysicalSizeX`` (µm by default).

    Examples
    --------
    >>> from_ome_xml('<OME><Image><Pixels PhysicalSizeX="0.5" PhysicalSizeY="0.25"/></Image></OME>')
    (2.5e-07, 5e-07)
    """
    if not xml:
        return None
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    sizes = []
    for axis in "YX":
        unit = METRES.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        value = pixels.get(f"PhysicalSize{axis}")
        if unit is None or value is None:
            return None
        sizes.append(float(value) * unit)
    return _size(*sizes, 1.0)


def from_svs(description: str | None) -> tuple[float, float] | None:
    """An Aperio SVS slide's pixel size: ``MPP`` (micrometres per pixel) in its first page's description.

    Examples
    --------
    >>> from_svs("Aperio Image Library v12.0.0 3000x2500 JPEG/RGB Q=70|AppMag = 20|MPP = 0.5")
    (5e-07, 5e-07)
    """
    for field in (description or "").split("|")[1:]:
        key, _, value = field.partition("=")
        if key.strip() == "MPP":
            return _size(value.strip(), value.strip(), _MICRO)
    return None


def from_multiscales(multiscales: list | None, path: str | None = None) -> tuple[float, float] | None:
    """An OME-Zarr image's pixel size at level ``path`` (its first by default), from ``scale`` and ``unit``.

    The dataset's scale is multiplied by the multiscale's own, if any; the
    ``y`` and ``x`` axes must name a unit of length.

    Examples
    --------
    >>> axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space", "unit": "micrometer"},
    ...         {"name": "x", "type": "space", "unit": "micrometer"}]
    >>> level = {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 0.325, 0.325]}]}
    >>> from_multiscales([{"axes": axes, "datasets": [level]}])
    (3.25e-07, 3.25e-07)
    """
    try:
        multiscale = multiscales[0]
        names = [axis["name"] for axis in multiscale["axes"]]
        units = {axis["name"]: METRES.get(axis.get("unit")) for axis in multiscale["axes"]}
        datasets = multiscale["datasets"]
        dataset = next(d for d in datasets if d["path"] == path) if path else datasets[0]  # else: not a level
        scale = [1.0] * len(names)
        for transforms in (
            dataset.get("coordinateTransformations"),
            multiscale.get("coordinateTransformations"),
        ):
            for transform in transforms or ():
                if transform.get("type") == "scale":
                    scale = [s * float(t) for s, t in zip(scale, transform["scale"])]
        if units.get("y") is None or units.get("x") is None:
            return None
        return _size(scale[names.index("y")] * units["y"], scale[names.index("x")] * units["x"], 1.0)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, StopIteration):
        return None


def from_crs(crs, transform) -> tuple[float, float] | None:
    """A rioxarray scene's pixel size: its affine ``transform`` in its projected ``crs`` (a rasterio CRS)."""
    try:
        if crs is None or crs.is_geographic or crs.to_epsg() in MERCATOR:
            return None
        _, factor = crs.linear_units_factor
        a, b, _, d, e, _ = tuple(transform)[:6]
        return _size(math.hypot(b, e), math.hypot(a, d), float(factor))
    except Exception:  # a CRS without a linear unit, or no transform
        return None


def area_unit(pixel_area: float) -> tuple[str, float]:
    """The unit areas are shown in, for pixels of this area in m²: ``(name, m² in one)``.

    Examples
    --------
    >>> area_unit(100.0), area_unit(1e-13)
    (('km²', 1000000.0), ('µm²', 1e-12))
    """
    if pixel_area < MICROSCOPE_BELOW**2:  # under 0.1 mm a side: a microscope's
        return "µm²", 1e-12
    if pixel_area >= 1.0:  # a metre a side or more: a satellite's, areas in km²
        return "km²", 1e6
    return "m²", 1.0
