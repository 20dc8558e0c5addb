"""Palettes to apply: the colours of a store, or of a .json, .csv or .gpl file.

A run given a palette (``palette=``, ``--palette``) draws no sample and fits
nothing: every pixel is labelled and counted against these colours, with
their ids, so two stores compare column by column. A store's palette is
applied as it was fitted, in its own clustering space (its centres exactly);
a file's colours are sRGB, applied in the run's ``space``. A store's
``scale`` comes with it, where the run sets none: its data are shown as the
store showed its own (``"dtype"``, ``(low, high)``, or the ``display_range``
its ``minmax``, ``percentile`` or ``auto`` run measured, on data of the
kind ``display_range_kind`` says). A file carries none: it is the colours
as shown, for GIMP, Inkscape or a spreadsheet, whatever data they came from.

Files are read as :func:`palette_dask.outputs.render.export_palette` writes
them (each colour's ``id`` kept, whatever the file's order) or as any list of
colours: JSON, a list of ``#rrggbb`` strings, ``[r, g, b]`` triples or objects
with ``rgb`` or ``hex`` (or ``show --json``'s document, its ``palette``); CSV, a
header with ``r, g, b`` or ``hex`` columns (``id`` optional); GPL, the GIMP /
Inkscape palette (``R G B name`` lines; our export's names begin with the id).
It is an output's module: it reads back what a run stored or exported.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass

import numpy as np

from ..constants import HEX_COLOUR
from ..errors import ParameterError
from ..kernels.colour import srgb_to_lab
from .store import is_store, open_store, read_centers_rgb

__all__ = ["GivenPalette", "read_palette", "PALETTE_SUFFIXES"]

#: File suffixes read as palettes (any other path must be a palette_dask store).
PALETTE_SUFFIXES = (".json", ".csv", ".gpl")


@dataclass(frozen=True)
class GivenPalette:
    """A palette to apply.

    Attributes
    ----------
    centers : ndarray of float32, shape (k, 3)
        In ``space``: what every pixel is labelled by, colour ``i`` with id ``i + 1``.
    centers_rgb : ndarray of float32, shape (k, 3)
        The same colours as sRGB floats, 0–255.
    space : {"rgb", "lab"}
        The clustering space.
    source : str
        Where it was read from.
    display_range : ndarray of float64, shape (2, 3), or None
        A store's band values shown as 0 and 255 (see the module docstring); None for a file.
    scale : str or tuple of float, or None
        A store's ``scale`` (``"dtype"`` for a store that records none); None for a file.
    range_kind : str or None
        ``"integer"`` or ``"float"``: the data its ``display_range`` was measured on, where known.
    """

    centers: np.ndarray
    centers_rgb: np.ndarray
    space: str
    source: str
    display_range: np.ndarray | None = None
    scale: str | tuple[float, float] | None = None
    range_kind: str | None = None


def read_palette(source: str | os.PathLike, space: str) -> GivenPalette:
    """The palette of a store (in its own space) or of a colour file (in ``space``).

    Raises
    ------
    ParameterError
        One line naming the file: it cannot be read, holds no colour or a
        value that is not one, repeats a colour or an id, or a store holds no palette.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "two.json"
    >>> _ = path.write_text('["#ff0000", [0, 0, 255]]')
    >>> given = read_palette(path, "rgb")
    >>> given.centers.tolist(), given.space
    ([[255.0, 0.0, 0.0], [0.0, 0.0, 255.0]], 'rgb')
    """
    if not isinstance(source, (str, os.PathLike)):
        raise ParameterError(f"palette must be the path of a store or of a palette file, got {source!r}")
    path = os.fspath(source)
    if is_store(path):
        group = open_store(path, mode="r")
        if "centers" not in group:
            raise ParameterError(f"{path}: the store holds no palette (no image had a valid pixel)")
        centers = group["centers"][:].astype(np.float32)
        own = group.attrs.get("space", "rgb")  # stores made before the option clustered in sRGB
        rgb = read_centers_rgb(group)
        scale = group.attrs.get("parameters", {}).get("scale", "dtype")  # the default before "auto"
        return GivenPalette(
            centers, np.asarray(rgb, np.float32), own, path, _stored_range(group),
            scale if isinstance(scale, str) else tuple(scale), group.attrs.get("display_range_kind"),
        )  # fmt: skip
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in PALETTE_SUFFIXES:
        raise ParameterError(
            f"{path}: not a palette_dask store, nor a palette file ({', '.join(PALETTE_SUFFIXES)})"
        )
    try:
        with open(path, newline="" if suffix == ".csv" else None, encoding="utf-8-sig") as handle:
            text = handle.read()
        ids, rgb = {".json": _from_json, ".csv": _from_csv, ".gpl": _from_gpl}[suffix](text)
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read the palette: {exc.strerror or exc}") from None
    except KeyError as exc:
        raise ParameterError(f"{path}: not a palette: no key {exc} (a colour's rgb or hex)") from None
    except (ValueError, TypeError, IndexError, OverflowError, csv.Error) as exc:
        raise ParameterError(f"{path}: not a palette: {exc}") from None
    rgb = _checked(path, ids, rgb)
    centers = srgb_to_lab(rgb) if space == "lab" else rgb
    return GivenPalette(centers.astype(np.float32), rgb.astype(np.float32), space, path)


def _stored_range(group) -> np.ndarray | None:
    """A store's display range, ``(2, 3)``: the one its run measured, or its ``scale=(low, high)``."""
    measured = group.attrs.get("display_range")
    if measured is not None:
        return np.asarray(measured, np.float64)
    scale = group.attrs.get("parameters", {}).get("scale")
    if isinstance(scale, list):
        return np.asarray([[scale[0]] * 3, [scale[1]] * 3], np.float64)
    return None


def _colour(value) -> list[float]:
    """One colour: ``#rrggbb``, ``[r, g, b]``, or an object with ``rgb`` or ``hex``."""
    if isinstance(value, dict):
        value = value["rgb"] if "rgb" in value else value["hex"]
    if isinstance(value, str):
        if not HEX_COLOUR.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a colour (#rrggbb)")
        return [float(c) for c in bytes.fromhex(value.strip().lstrip("#"))]
    if len(value) != 3:
        raise ValueError(f"{value!r} is not a colour: three values, red, green and blue")
    return [float(c) for c in value]


def _from_json(text: str):
    document = json.loads(text)
    if isinstance(document, dict) and "palette" not in document:
        raise ValueError("an object without a 'palette' list of colours")
    entries = document["palette"] if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise ValueError("expected a list of colours, or an object with a 'palette' list")
    ids = [entry.get("id") if isinstance(entry, dict) else None for entry in entries]
    return ids, [_colour(entry) for entry in entries]


def _from_csv(text: str):
    rows = list(csv.DictReader(text.splitlines()))
    columns = {name.strip().lower(): name for name in (rows[0].keys() if rows else [])}
    if all(c in columns for c in ("r", "g", "b")):  # unrounded, as export writes them beside the hex code
        rgb = [[float(row[columns[c]]) for c in ("r", "g", "b")] for row in rows]
    elif "hex" in columns:
        rgb = [_colour(row[columns["hex"]]) for row in rows]
    else:
        raise ValueError("expected a header with a 'hex' column, or 'r', 'g' and 'b' columns")
    ids = [row[columns["id"]] if "id" in columns else None for row in rows]
    return ids, rgb


def _from_gpl(text: str):
    lines = text.splitlines()
    if not lines or lines[0].strip() != "GIMP Palette":
        raise ValueError("a .gpl file begins with the line 'GIMP Palette'")
    ids, rgb = [], []
    for line in lines[1:]:
        if not line.strip() or line.lstrip().startswith("#") or line.split(":")[0] in ("Name", "Columns"):
            continue
        fields = line.split()
        rgb.append(_colour([float(v) for v in fields[:3]]))
        ids.append(fields[3] if len(fields) > 3 and fields[3].isdigit() else None)
    if ids and not all(ids):  # ids only when every name begins with one (palette_dask's own export)
        ids = [None] * len(ids)
    return ids, rgb


def _checked(path: str, ids: list, rgb: list) -> np.ndarray:
    """The colours in id order (file order without ids), checked: sRGB 0-255, none twice."""
    if not rgb:
        raise ParameterError(f"{path}: the palette holds no colour")
    colours = np.array(rgb, dtype=np.float64)
    if not (np.isfinite(colours).all() and (colours >= 0).all() and (colours <= 255).all()):
        raise ParameterError(f"{path}: a colour is not sRGB from 0 to 255")
    if all(i is not None for i in ids):
        try:
            numbers = [int(i) for i in ids]
        except (ValueError, TypeError, OverflowError):  # text, a list, infinity
            numbers = None
        if numbers is None or any(float(i) != n for i, n in zip(ids, numbers)):
            raise ParameterError(f"{path}: the ids must be whole numbers")
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            raise ParameterError(f"{path}: the ids must be 1 to {len(numbers)}, each once")
        colours = colours[np.argsort(numbers)]
    _, first = np.unique(colours, axis=0, return_index=True)
    if len(first) < len(colours):
        twice = colours[np.setdiff1d(np.arange(len(colours)), first)[0]]
        raise ParameterError(f"{path}: the colour {twice.tolist()} is given twice (an id names one colour)")
    return colours
