"""The store's layout, declared once: each array's name, dimensions, dtype and meaning, and the attributes.

The store is created from this declaration (:func:`create`), checked
against it (:func:`check_layout`), and the layout tables of the docs are
generated from it (:func:`layout_table`). Adding a stored array is one
:class:`Array` here and the code that writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import zarr

from ...errors import StoreError

__all__ = [
    "Array", "ARRAYS", "ATTRIBUTES", "NODES", "FIXED", "AT_CREATION", "declared", "create", "check_layout",
    "layout_table",
]  # fmt: skip

#: The dimensions whose length is always the same.
FIXED = {"channel": 3, "side": 2}


@dataclass(frozen=True)
class Array:
    """One array of the store.

    Attributes
    ----------
    name : str
        Its name in the group.
    dims : tuple of str
        Its dimension names (xarray reads them): ``image`` (n, chunked by
        batch), ``color`` (k), ``channel`` (3), ``side`` (2: height and
        width), ``own_color`` (K, with ``per_image``).
    dtype : str
        ``"int64"``, ``"float32"``, ``"str"``...
    meaning : str
        What it holds, for the docs.
    fill : object
        The value of what is not written yet.
    when : str
        When it is there, if not always (for the docs).
    """

    name: str
    dims: tuple[str, ...]
    dtype: str
    meaning: str
    fill: object = 0
    when: str = ""

    @property
    def per_image(self) -> bool:
        """Whether its first axis is the image (``--append`` grows it; a batch writes a chunk of it)."""
        return self.dims[:1] == ("image",)


#: Every array a store may hold, in the order the docs list them.
ARRAYS: tuple[Array, ...] = (
    Array("centers", ("color", "channel"), "float32", 'centres in the clustering space (`attrs["space"]`)'),
    Array("centers_rgb", ("color", "channel"), "float32", "the same as sRGB 0–255"),
    Array("colors", ("color", "channel"), "uint8", "the colours shown"),
    Array("counts", ("color",), "int64", "valid pixels per colour, all images"),
    Array("image_names", ("image",), "str", "the sources, in input order", fill=""),
    Array("image_counts", ("image", "color"), "int64", "pixels per colour per image"),
    Array("image_valid", ("image",), "int64", "valid pixels per image"),
    Array("image_masked", ("image",), "int64", "left-out pixels per image (alpha, no-data, NaN, excluded)"),
    Array(
        "image_status", ("image",), "uint8",
        "0 pending, 1 done, 2 failed, 3 failed on a transient fault, which `--resume` reads again "
        "(`store.PENDING/DONE/FAILED/FAILED_TRANSIENT`; older stores hold 0 to 2)",
    ),  # fmt: skip
    Array("image_errors", ("image",), "str", "a failed image's one-line reason", fill=""),
    Array("image_squared_error", ("image",), "float64", "sum of squared distances to the centres", 0.0),
    Array(
        "image_lab_squared_error", ("image",), "float64",
        "sum of squared CIELAB distances to the colours shown", 0.0,
    ),  # fmt: skip
    Array(
        "image_error_pixels", ("image",), "int64",
        "the valid pixels the two errors were measured on: `image_valid` where they are exact, fewer "
        "where they are estimates scaled up from a fixed 1 in 32 of the pixels (runs of 2^26 8-bit "
        "pixels or more, but mosaics read once: exact, from their histograms); older stores lack it: exact",
    ),  # fmt: skip
    Array(
        "image_pixel_size", ("image", "side"), "float64",
        "a pixel's height and width in metres, as the input declares them (`inputs/physical.py`); "
        "0 where it does not", 0.0,
    ),  # fmt: skip
    Array(
        "image_shape", ("image", "side"), "int64",
        "the image's rows and columns as read (0 while pending, or where it failed)",
    ),  # fmt: skip
    Array(
        "image_datetime", ("image",), "str",
        "when the image was acquired, as its input says (a STAC item's `datetime`); empty where it "
        "does not, or while pending; older stores lack it", fill="",
    ),  # fmt: skip
    Array(
        "image_crs", ("image",), "str",
        "its coordinate reference system, `EPSG:<code>`, as its input declares it (a STAC item's "
        "`proj:code`, a GeoTIFF's GeoKeys); empty where it does not; older stores lack it", fill="",
    ),  # fmt: skip
    Array(
        "image_palettes", ("image", "own_color", "channel"), "uint8", "each image's own colours", 0,
        when="`per_image=K`",
    ),  # fmt: skip
    Array(
        "image_palette_shares", ("image", "own_color"), "float64", "their shares of the image", 0.0,
        when="`per_image=K`",
    ),  # fmt: skip
)

#: The nodes under ``labels``, written by the counting tasks (``outputs/labels.py``): ``(name, shape, what)``.
NODES: tuple[tuple[str, str, str], ...] = (
    ("labels/<i>", "OME-Zarr label image", "with `--labels`, a pyramid per input"),
    (
        "labels/<i>/coordinates/<dim>", "1-D",
        "an xarray input's row and column coordinates (attribute `georeference`: dims, CRS, transform)",
    ),  # fmt: skip
)

#: The group's attributes: ``(name, meaning)``.
ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("parameters", "`RunConfig.parameters` (`palette`: the path of a palette applied)"),
    ("space", "the clustering space, `lab` or `rgb`"),
    ("palette_dask_version", "the version that made the store"),
    ("created", "when, in UTC"),
    ("batch_size", "images per batch: the chunk of every per-image array"),
    ("inputs", "the first 1,000 inputs; `n_inputs` their number"),
    ("complete", "true once every image is done or failed"),
    ("inertia", "the sum of squared distances to the centres (estimated where `image_error_pixels` says so)"),
    ("lab_error", "the mean squared CIELAB distance to the colours shown (likewise)"),
    (
        "display_range",
        "`[low, high]` of each band, shown as 0 and 255, where `--scale` measured them (`auto`: for "
        "data wider than 8 bits) or the store applied as `--palette` did, where the data use it",
    ),
    ("display_range_kind", "`integer` or `float`: the data `display_range` was measured on (none for both)"),
    ("nodata_applied", "the no-data values the inputs declared, applied"),
)

_BY_NAME = {array.name: array for array in ARRAYS}
#: The per-image arrays a store has from its creation, ``image_names`` first: those of no palette
#: (their dims are known before any colour is) and not asked for (no ``when``).
AT_CREATION = tuple(
    array.name
    for array in ARRAYS
    if array.per_image and not array.when and "color" not in array.dims
)


def declared(name: str) -> Array:
    """The declaration of the array ``name``.

    Examples
    --------
    >>> declared("image_counts").dims, declared("image_counts").per_image
    (('image', 'color'), True)
    """
    return _BY_NAME[name]


def create(group: zarr.Group, name: str, sizes: dict, *, overwrite: bool = False) -> zarr.Array:
    """Create the declared array ``name`` in ``group``, its shape from ``sizes`` (``image``, ``color``...).

    A per-image array is chunked by batch (``sizes["batch"]``); the others are one chunk.
    The lengths of :data:`FIXED` are known here.
    """
    array = declared(name)
    sizes = {**FIXED, **sizes}
    shape = tuple(int(sizes[dim]) for dim in array.dims)
    chunks = tuple(
        int(sizes["batch"]) if dim == "image" else max(1, length) for dim, length in zip(array.dims, shape)
    )
    return group.create_array(
        name,
        shape=shape,
        chunks=chunks,
        dtype=str if array.dtype == "str" else array.dtype,
        fill_value=array.fill,
        dimension_names=list(array.dims),
        overwrite=overwrite,
    )


def check_layout(group: zarr.Group) -> None:
    """Refuse a group whose arrays are not as declared (a name, dims or dtype of another layout).

    Raises
    ------
    StoreError
        Naming the store and the first array that differs.
    """
    for name, array in group.arrays():
        spec = _BY_NAME.get(name)
        if spec is None:
            raise StoreError(f"{group.store}: holds an array {name!r} that a palette_dask store does not")
        dims = tuple(array.metadata.dimension_names or ())
        dtype = "str" if array.dtype.kind in "OTU" else str(array.dtype)
        if dims != spec.dims or dtype != spec.dtype:
            raise StoreError(
                f"{group.store}: array {name} is {dtype} over {dims}, where a palette_dask store has "
                f"{spec.dtype} over {spec.dims}"
            )


_SIZES = {"image": "n", "color": "k", "own_color": "K", **{dim: str(n) for dim, n in FIXED.items()}}


def layout_table() -> str:
    """The layout as the docs show it: a Markdown table of the arrays and nodes, then the attributes.

    Examples
    --------
    >>> print(layout_table().splitlines()[2])
    | `centers` | (k, 3) float32 | centres in the clustering space (`attrs["space"]`) |
    """
    lines = ["| Name | Shape, dtype | Meaning |", "|---|---|---|"]
    for array in ARRAYS:
        shape = ", ".join(_SIZES[dim] for dim in array.dims)
        shape = f"({shape},)" if len(array.dims) == 1 else f"({shape})"
        meaning = f"{array.meaning}; with {array.when}" if array.when else array.meaning
        lines.append(f"| `{array.name}` | {shape} {array.dtype} | {meaning} |")
    lines.extend(f"| `{name}` | {shape} | {what} |" for name, shape, what in NODES)
    lines += ["", "| Attribute | Meaning |", "|---|---|"]
    lines.extend(f"| `{name}` | {meaning} |" for name, meaning in ATTRIBUTES)
    return "\n".join(lines) + "\n"
