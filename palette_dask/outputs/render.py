"""Render: the tutorial's palette bar, the image-beside-bar figure, a terminal table.

Examples
--------
>>> bar = palette_bar([[255, 0, 0], [0, 0, 255]], [0.25, 0.75])
>>> bar.shape, bar[0, 0].tolist(), bar[0, -1].tolist()
((50, 300, 3), [0, 0, 255], [255, 0, 0])
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..errors import Failure, Status
from .result import PaletteResult

if TYPE_CHECKING:  # `show` draws a table without importing dask
    import dask.array as da

__all__ = [
    "declared",
    "palette_bar",
    "save_png",
    "palette_figure",
    "format_table",
    "thumbnail",
    "export_palette",
    "own_palette",
    "shown_name",
]


def palette_bar(colors, proportions, *, height: int = 50, width: int = 300, sort: bool = True) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 bar whose segments are as wide as each colour's share.

    Segments go largest share first (``sort=False`` keeps the given order).
    Edges are rounded from the cumulative shares, so the widths add up to
    ``width`` exactly and each is within one pixel of its share.
    """
    colors = np.asarray(colors, dtype=np.float64).reshape(-1, 3)
    proportions = np.asarray(proportions, dtype=np.float64)
    total = proportions.sum()
    if total > 0:
        proportions = proportions / total
    order = np.lexsort((np.arange(len(proportions)), -proportions)) if sort else np.arange(len(proportions))
    edges = np.rint(np.concatenate([[0.0], np.cumsum(proportions[order])]) * width).astype(int)
    bar = np.zeros((height, width, 3), dtype=np.uint8)
    for index, start, stop in zip(order, edges[:-1], edges[1:]):
        bar[:, start:stop] = np.clip(np.rint(colors[index]), 0, 255).astype(np.uint8)
    return bar


def save_png(array: np.ndarray, path: str | os.PathLike) -> str:
    """Write a uint8 ``(rows, cols[, 3|4])`` array as a PNG file; returns the path."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG")
    return str(path)


def thumbnail(image: da.Array, max_side: int = 1024) -> np.ndarray:
    """A strided preview of a lazy image, at most ``max_side`` pixels on its longer side.

    Only the strided pixels reach the caller, so this is safe on a mosaic.
    """
    step = max(1, math.ceil(max(image.shape[:2]) / max_side))
    return np.asarray(image[::step, ::step].compute())


def palette_figure(image: np.ndarray | None, colors, proportions, *, title: str = ""):
    """The tutorial's figure: the image on the left, its palette bar on the right.

    ``image`` is a ``(rows, cols, channels)`` array (for example a
    :func:`thumbnail`), or None for the bar alone. Returns a matplotlib Figure.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2 if image is not None else 1, squeeze=False)[0]
    if image is not None:
        shown = np.asarray(image)
        if (
            shown.ndim == 3 and shown.shape[2] == 4 and shown.dtype == np.uint8
        ):  # masked pixels on a checkerboard
            shown = _on_checkerboard(shown)
        if shown.ndim == 3 and shown.shape[2] in (1, 2):  # gray, gray + alpha
            shown = shown[..., 0]
        if shown.dtype != np.uint8:
            info = np.iinfo(shown.dtype) if np.issubdtype(shown.dtype, np.integer) else None
            shown = shown / info.max if info else np.clip(shown, 0, 1)
        axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        axes[0].set_axis_off()
        axes[0].set_title(title)
    axes[-1].imshow(palette_bar(colors, proportions))
    axes[-1].set_axis_off()
    axes[-1].set_title("palette")
    return figure


def _on_checkerboard(rgba: np.ndarray, square: int = 8) -> np.ndarray:
    """An RGBA image over a light checkerboard, as RGB: transparent (masked) pixels show as squares."""
    rows, cols = np.indices(rgba.shape[:2]) // square
    board = np.where(((rows + cols) % 2)[..., None] == 0, 204, 255).astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    return np.rint(rgba[..., :3] * alpha + board * (1 - alpha)).astype(np.uint8)


def _swatch(rgb) -> str:
    r, g, b = (int(v) for v in rgb)
    return f"\x1b[48;2;{r};{g};{b}m    \x1b[0m"


def format_table(result: PaletteResult, *, color: bool = False, order: str = "share") -> str:
    """The palette as a text table: id, hex code, name, RGB, share and pixel count, largest share first.

    ``id`` is the colour's one number everywhere: its value in the label
    rasters, ``id`` in the JSON, and column ``id - 1`` of the per-image arrays.

    Examples
    --------
    >>> from palette_dask.outputs.result import PaletteResult
    >>> black_white = np.array([[0, 0, 0], [255, 255, 255]], np.float32)
    >>> r = PaletteResult(black_white, black_white, black_white.astype(np.uint8), np.array([1, 3]),
    ...                   ["a"], np.array([[1, 3]]), np.array([4]), np.array([0]), np.array([1]), [""])
    >>> print(format_table(r))
     id  hex      name   rgb                  share         pixels
      2  #ffffff  white  255.0 255.0 255.0   75.00%              3
      1  #000000  black    0.0   0.0   0.0   25.00%              1
    """
    entries = result.palette(order)
    for entry in entries:
        entry["name"] = shown_name(entry)
    wide = max([4, *(len(entry["name"]) for entry in entries)])
    swatch = " " * (5 if color else 0)
    unit = entries[0]["area_unit"] if entries and "area" in entries[0] else None
    area = f"  {'area ' + unit:>14}" if unit else ""
    lines = [f"{'id':>3}  {swatch}{'hex':7}  {'name':{wide}}  {'rgb':17}  {'share':>7}  {'pixels':>13}{area}"]
    for entry in entries:
        rgb = " ".join(f"{v:5.1f}" for v in entry["rgb"])
        swatch = _swatch(np.clip(np.rint(entry["rgb"]), 0, 255)) + " " if color else ""
        share, count, name = entry["proportion"], entry["count"], entry["name"]
        area = f"  {entry['area']:14,.2f}" if unit else ""
        colour = f"{entry['id']:3d}  {swatch}{entry['hex']}  {name:{wide}}  {rgb:17}"
        lines.append(f"{colour}  {share:7.2%}  {count:13,d}{area}")
    if any(entry["name"].startswith("~") for entry in entries):
        from .names import FAR

        lines.append(f"~name: the nearest name is more than CIEDE2000 {FAR:g} away (far from the colour)")
    return "\n".join(lines)


def shown_name(entry: dict) -> str:
    """A palette entry's name as shown: ``~name`` when far from it (:data:`~palette_dask.outputs.names.FAR`).

    Examples
    --------
    >>> shown_name({"name": "black", "name_delta_e": 12.3}), shown_name({"name": "navy", "name_delta_e": 0.4})
    ('~black', 'navy')
    """
    from .names import FAR

    return ("~" if entry["name_delta_e"] > FAR else "") + entry["name"]


def export_palette(result: PaletteResult, path: str | os.PathLike, *, order: str = "share") -> str:
    """Write the palette as ``.json``, ``.csv`` or ``.gpl`` (a GIMP / Inkscape palette), by the file's suffix.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from palette_dask.outputs.result import PaletteResult
    >>> red = np.array([[250, 0, 0]])
    >>> r = PaletteResult(red.astype(np.float32), red.astype(np.float32), red.astype(np.uint8), np.array([7]),
    ...                   ["a"], np.array([[7]]), np.array([7]), np.array([0]), np.array([1]), [""])
    >>> path = export_palette(r, pathlib.Path(tempfile.mkdtemp()) / "p.gpl")
    >>> print(pathlib.Path(path).read_text(), end="")
    GIMP Palette
    Name: palette_dask
    Columns: 1
    #
    250   0   0   1 red #fa0000 100.00%
    """
    import csv
    import json

    path = str(path)
    entries = result.palette(order)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".json":
        with open(path, "w") as handle:
            json.dump(entries, handle, indent=2)
    elif suffix == ".csv":
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            areas = bool(entries) and "area_m2" in entries[0]
            writer.writerow(["id", "hex", "name", "r", "g", "b", "count", "proportion"] + ["area_m2"] * areas)
            for entry in entries:
                writer.writerow(
                    [
                        entry["id"],
                        entry["hex"],
                        entry["name"],
                        *(f"{v:.3f}" for v in entry["rgb"]),
                        entry["count"],
                        f"{entry['proportion']:.6f}",
                        *([f"{entry['area_m2']:.6g}"] if areas else []),
                    ]
                )
    elif suffix == ".gpl":
        lines = ["GIMP Palette", "Name: palette_dask", f"Columns: {len(entries)}", "#"]
        for entry in entries:
            r, g, b = (int(c) for c in bytes.fromhex(entry["hex"][1:]))
            name = f"{entry['id']} {entry['name']} {entry['hex']} {entry['proportion']:.2%}"
            lines.append(f"{r:3d} {g:3d} {b:3d}   {name}")
        with open(path, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    else:
        raise ValueError(f"{path}: export to .json, .csv or .gpl")
    return path


#: Columns of the per-image table (``show --images``), before one share per colour id.
IMAGE_COLUMNS = ("image", "status", "valid_pixels", "masked_pixels", "error")


class ImageFigures(NamedTuple):
    """One image's figures, as every per-image table shows them (:func:`image_figures`)."""

    name: str
    status: str
    valid: int | None
    masked: int | None
    reason: str
    shares: np.ndarray | None  # of colour id 1, 2..., unrounded


def image_figures(result: PaletteResult):
    """Each image's :class:`ImageFigures`: the one rule of the CSV, ``--json`` and HTML tables.

    An image not counted (failed, pending) has ``None`` for its pixels and
    shares, not 0 (a mean over the column must not count it), and its error
    is the reason alone: the row names the image.
    """
    for index, name in enumerate(result.image_names):
        status = Status(int(result.image_status[index]))
        state, reason = status.name.lower(), Failure.of(str(name), str(result.image_errors[index])).reason
        if status != Status.DONE:
            yield ImageFigures(str(name), state, None, None, reason, None)
            continue
        valid = int(result.image_valid[index])
        shares = result.image_counts[index] / valid if valid else np.zeros(result.k)
        yield ImageFigures(str(name), state, valid, int(result.image_masked[index]), reason, shares)


def image_rows(result: PaletteResult):
    """Each image's row: :data:`IMAGE_COLUMNS`, then the share of colour id 1, 2... (by id, not by share).

    The figures of :func:`image_figures`, shares rounded to 6 decimals; an
    image not counted has ``None`` for its pixels and shares.

    Examples
    --------
    >>> from palette_dask.outputs.result import PaletteResult
    >>> two = np.array([[0, 0, 0], [255, 255, 255]], np.float32)
    >>> r = PaletteResult(two, two, two.astype(np.uint8), np.array([1, 3]), ["a.png", "b.png"],
    ...                   np.array([[1, 3], [0, 0]]), np.array([4, 0]), np.array([0, 0]), np.array([1, 2]),
    ...                   ["", "b.png: empty file (0 bytes)"])
    >>> for row in image_rows(r): print(row)
    ['a.png', 'done', 4, 0, '', 0.25, 0.75]
    ['b.png', 'failed', None, None, 'empty file (0 bytes)', None, None]
    """
    for name, status, valid, masked, reason, shares in image_figures(result):
        shown = [None] * result.k if shares is None else [round(float(share), 6) for share in shares]
        yield [name, status, valid, masked, reason, *shown]


def declared(result: PaletteResult, index: int) -> dict:
    """What an image's input declares of it, where it does: ``{"datetime": ..., "crs": ...}`` (a STAC item's).

    Examples
    --------
    >>> from palette_dask.outputs.result import PaletteResult
    >>> one = np.zeros((1, 3), np.float32)
    >>> r = PaletteResult(one, one, one.astype(np.uint8), np.array([4]), ["a.json#x"], np.array([[4]]),
    ...                   np.array([4]), np.array([0]), np.array([1]), [""],
    ...                   image_datetime=["2024-06-01T10:00:00Z"], image_crs=[""])
    >>> declared(r, 0)
    {'datetime': '2024-06-01T10:00:00Z'}
    """
    found = {"datetime": result.image_datetime, "crs": result.image_crs}
    return {key: values[index] for key, values in found.items() if values is not None and values[index]}


def own_palette(result: PaletteResult, index: int) -> list[dict]:
    """An image's own palette (``per_image=K``): ``[{"hex", "rgb", "share"}]``, largest share first.

    Empty when the run made none, or for a colour-less (failed) image.

    Examples
    --------
    >>> from palette_dask.outputs.result import PaletteResult
    >>> one = np.zeros((1, 3), np.float32)
    >>> r = PaletteResult(one, one, one.astype(np.uint8), np.array([4]), ["a.png"], np.array([[4]]),
    ...                   np.array([4]), np.array([0]), np.array([1]), [""],
    ...                   image_palettes=np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8),
    ...                   image_palette_shares=np.array([[1.0, 0.0]]))
    >>> own_palette(r, 0)
    [{'hex': '#ff0000', 'rgb': [255, 0, 0], 'share': 1.0}]
    """
    from ..kernels.colour import hex_code

    if result.image_palettes is None:
        return []
    colours, shares = result.image_palettes[index], result.image_palette_shares[index]
    return [
        {
            "hex": hex_code(colour),
            "rgb": colour.tolist(),
            "share": round(float(share), 6),
        }
        for colour, share in zip(colours, shares)
        if share > 0
    ]


def write_image_shares(result: PaletteResult, path: str | os.PathLike) -> str:
    """Every image's row of :func:`image_rows` as CSV, with a header ``share_1, share_2...`` (colour ids).

    With per-image palettes, then ``own_1, own_share_1...``: each image's own colours, largest first.
    """
    import csv

    own = 0 if result.image_palettes is None else result.image_palettes.shape[1]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                *IMAGE_COLUMNS,
                *(f"share_{i + 1}" for i in range(result.k)),
                *(column for i in range(own) for column in (f"own_{i + 1}", f"own_share_{i + 1}")),
            ]
        )
        for index, row in enumerate(image_rows(result)):
            colours = own_palette(result, index)
            blank = row[2] is None  # not counted (image_figures): its own colours blank too, not 0
            colours += [{"hex": "", "share": None if blank else 0.0}] * (own - len(colours))
            writer.writerow(row + [value for colour in colours for value in (colour["hex"], colour["share"])])
    return str(path)


def format_images(result: PaletteResult) -> str:
    """Every image as a line of text: status, valid pixels, the share of each colour id (or the error).

    With per-image palettes, each image's own colours and shares too, before its name.
    """
    ids = " ".join(f"{f'id {i + 1}':>7}" for i in range(result.k))
    width = max(len(status.name) for status in Status)  # failed_transient: the columns stay aligned
    lines = [f"{'status':{width}}  {'valid':>13}  {ids}  image"]
    for index, (name, status, valid, _, error, *shares) in enumerate(image_rows(result)):
        if status == "done":
            own = "".join(f"{c['hex']} {c['share']:4.0%}  " for c in own_palette(result, index))
            shown = " ".join(f"{share:7.2%}" for share in shares)
            when = declared(result, index).get("datetime")
            lines.append(f"{status:{width}}  {valid:13,d}  {shown}  {own}{f'{when}  ' if when else ''}{name}")
        else:
            lines.append(f"{status:{width}}  {'':13}  {f'{name}: {error}' if error else name}")
    return "\n".join(lines)
