"""Labels beside their image: an OME-Zarr input's label raster written into its own ``labels/<name>``.

Only when asked (``--source-labels NAME``, ``source_labels=``): the one
output written outside the store. Every input must then be a local, writable
OME-Zarr image (0.4 or 0.5), and its ``labels/<name>`` free, or a label image
palette_dask wrote there (replaced with ``--overwrite``); all is checked
before anything runs. The label image follows its image: the same OME-Zarr
version and zarr format, its axes without the channel axis (the others of
length one), its own scale and unit, so OME tools (napari, ome-zarr-py) find
and place it. Its pixels are the store's ``labels/<i>`` (colour id, 0 left
out), copied chunk by chunk by dask tasks, each writing its own chunks.
"""

from __future__ import annotations

import os

import numpy as np
import zarr

from .._version import __version__
from ..errors import InputError
from .labels import LABEL_TILE
from .store import zarr_store

__all__ = ["check_source_labels", "write_source_labels"]

#: The key palette_dask marks its label images with (what ``--overwrite`` may replace).
MARK = "palette_dask"


#: The OME-Zarr versions written into, and the zarr format each is stored in.
_FORMATS = {"0.4": 2, "0.5": 3}


def _image(name: str):
    """``(group, multiscale, version)`` of a local OME-Zarr 0.4 or 0.5 image, or why it is not one (a str)."""
    if "://" in name or not os.path.isdir(name):
        return f"{name}: --source-labels writes into a local OME-Zarr image; this is not one"
    try:
        group = zarr.open_group(name, mode="r")
    except Exception:
        return f"{name}: --source-labels writes into an OME-Zarr image; this is no zarr group (a level?)"
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)
    multiscales = ome.get("multiscales")
    if not multiscales:
        return f"{name}: --source-labels writes into an OME-Zarr image; this group has no multiscales"
    version = str(ome.get("version") or multiscales[0].get("version") or "")
    if _FORMATS.get(version) != group.metadata.zarr_format:
        found = f"OME-Zarr {version or 'of no version'} in zarr v{group.metadata.zarr_format}"
        return f"{name}: --source-labels writes into OME-Zarr 0.4 (zarr v2) or 0.5 (zarr v3); this is {found}"
    return group, multiscales[0], version


def check_source_labels(names: list[str], label: str, *, replace: bool) -> None:
    """Refuse, before anything runs, unless every input can take ``labels/<label>``.

    Each must be a local OME-Zarr image, writable, whose ``labels/<label>``
    is free, or (with ``replace``) a label image palette_dask wrote.
    """
    if not label or "/" in label or label.startswith("."):
        raise InputError(f"--source-labels {label!r}: a name for labels/<name>, without '/'")
    for name in names:
        found = _image(name)
        if isinstance(found, str):
            raise InputError(found)
        group = found[0]
        if not os.access(name, os.W_OK):
            raise InputError(f"{name}: not writable; --source-labels writes its labels/{label} there")
        if "labels" in group and label in group["labels"]:
            ours = _ours(group["labels"], label)
            if not (replace and ours):
                what = "pass --overwrite to replace it" if ours else "palette-dask did not write it"
                raise InputError(f"{name}: holds labels/{label} already; {what}")


def _ours(labels: zarr.Group, label: str) -> bool:
    """Whether an image's ``labels/<label>`` is a label image palette_dask wrote (``--overwrite`` may go)."""
    node = labels[label]
    return isinstance(node, zarr.Group) and MARK in node.attrs


def _label_metadata(
    multiscale: dict, version: str, levels: int, colors: list, properties, store: str
) -> dict:
    """The label image's attributes: the image's axes but channels, its scale (x 2**level in y and x)."""
    keep = [i for i, axis in enumerate(multiscale["axes"]) if _axis(axis)[1] != "channel"]
    axes = [multiscale["axes"][i] for i in keep]
    names = [_axis(axis)[0] for axis in axes]
    transforms = multiscale["datasets"][0].get("coordinateTransformations") or []
    scale = next(
        (t["scale"] for t in transforms if t.get("type") == "scale"), [1.0] * len(multiscale["axes"])
    )
    shift = next((t for t in transforms if t.get("type") == "translation"), None)
    datasets = []
    for level in range(levels):
        step = [2.0**level if n in ("y", "x") else 1.0 for n in names]
        placed = [{"type": "scale", "scale": [float(scale[i]) * s for i, s in zip(keep, step)]}]
        if shift is not None:
            placed.append({"type": "translation", "translation": [shift["translation"][i] for i in keep]})
        datasets.append({"path": str(level), "coordinateTransformations": placed})
    whole = [  # the image's own transformations of all its levels, without the channel axis
        {**t, t["type"]: [t[t["type"]][i] for i in keep]}
        for t in multiscale.get("coordinateTransformations") or ()
        if t.get("type") in ("scale", "translation")
    ]
    datasets_and = {"datasets": datasets, **({"coordinateTransformations": whole} if whole else {})}
    label = {"colors": colors, "properties": properties or [], "source": {"image": "../../"}}
    if version == "0.4":
        return {
            "multiscales": [{"version": version, "name": "labels", "axes": axes, **datasets_and}],
            "image-label": {"version": version, **label},
            MARK: {"store": store, "version": __version__},
        }
    return {
        "ome": {
            "version": version,
            "multiscales": [{"name": "labels", "axes": axes, **datasets_and}],
            "image-label": label,
        },
        MARK: {"store": store, "version": __version__},
    }


def _axis(axis) -> tuple[str, str | None]:
    """An OME axis' name and type (0.4 may list names only)."""
    return (axis.get("name"), axis.get("type")) if isinstance(axis, dict) else (str(axis), None)


def write_source_labels(client, root: str, names: list[str], done, label: str) -> int:
    """Write every image ``done`` says its label image from the store at ``root``; returns how many.

    The pixels are copied by tasks on the ``client``'s cluster, each task
    whole chunks of the target (so no two write one chunk).
    """
    import dask.array as da

    store = zarr.open_group(zarr_store(root), mode="r")
    written = 0
    for index in np.flatnonzero(done):
        name = names[index]
        group, multiscale, version = _image(name)
        source = store[f"labels/{index}"]
        ome = source.attrs["ome"]
        levels = len(ome["multiscales"][0]["datasets"])
        attributes = _label_metadata(
            multiscale,
            version,
            levels,
            ome["image-label"]["colors"],
            ome["image-label"].get("properties"),
            root,
        )
        fmt = _FORMATS[version]
        labels = zarr.open_group(name, mode="a", zarr_format=fmt).require_group("labels")
        if label in labels and not _ours(labels, label):  # checked before the run; never replaced
            raise InputError(f"{name}: holds labels/{label}, which palette-dask did not write; left as it is")
        target = labels.create_group(label, overwrite=True, attributes=attributes)
        names_axes = [_axis(a)[0] for a in multiscale["axes"] if _axis(a)[1] != "channel"]
        for level in range(levels):
            stored = source[str(level)]
            shape = tuple(stored.shape[["y", "x"].index(n)] if n in ("y", "x") else 1 for n in names_axes)
            chunks = tuple(min(n, LABEL_TILE) if a in ("y", "x") else 1 for n, a in zip(shape, names_axes))
            extra = {"dimension_names": names_axes} if fmt == 3 else {}
            if fmt == 2:  # "/" between chunk indices, as OME-Zarr 0.4 says (its image's own arrays too)
                extra["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
            array = target.create_array(
                str(level), shape=shape, chunks=chunks, dtype=stored.dtype, fill_value=0, **extra
            )
            pixels = da.from_zarr(stored, chunks=stored.shards or stored.chunks).reshape(shape)
            client.compute(da.store(pixels.rechunk(chunks), array, lock=False, compute=False)).result()
        listed = dict(labels.attrs)
        if fmt == 2:
            labels.attrs["labels"] = sorted({*listed.get("labels", []), label})
        else:
            ome_labels = listed.get("ome", {"version": version})
            ome_labels["labels"] = sorted({*ome_labels.get("labels", []), label})
            labels.attrs["ome"] = ome_labels
        written += 1
    return written
