"""Report: one self-contained HTML page of a run, for people to look at.

The page holds, with every picture inlined (``data:`` URIs, nothing fetched):

- the global palette bar and a table of its colours (swatch, hex, RGB, share, pixels, area),
- the palette error (mean squared CIELAB distance, RMS ΔE) and the run's figures,
- for a run of a few images (mosaics, single photos): each image's preview
  beside the same preview recoloured with the palette, and its own bar,
- for a collection: a list of every image with its thumbnail, its bar and its
  share of each colour, sortable by any column (click a header; or open the
  page at ``#sort=<column>`` / ``#sort=<column>-asc``), failed images with why.

Previews are computed out of core: each image is read by dask tasks, chunk by
chunk, keeping only every n-th pixel, then recoloured by the nearest palette
colour in the run's colour space.

Examples
--------
>>> import os, skimage, tempfile
>>> from palette_dask import connect, extract_palette
>>> coffee = os.path.join(os.path.dirname(skimage.__file__), "data", "coffee.png")
>>> with connect(processes=False, n_workers=1, dashboard_address="127.0.0.1:0") as client:  # doctest: +SKIP
...     result = extract_palette(coffee, 5, client=client)
...     html_report(result, os.path.join(tempfile.mkdtemp(), "report.html"), client=client)
"""

from __future__ import annotations

import base64
import html
import io
import math
import os

import dask
import numpy as np

from ..errors import PaletteDaskError, image_error
from ..inputs.read import probe, pyramid_level, read_image
from ..kernels.colour import hex_code
from ..kernels.fit import nearest_center
from ..kernels.pixels import block_features, run_spec
from .render import image_figures, own_palette, palette_bar, shown_name
from .result import PaletteResult
from .store import DONE

__all__ = ["html_report", "recoloured_preview"]

#: Runs of at most this many images show a recoloured preview of each; bigger ones a sortable list.
PREVIEW_IMAGES = 12
#: Longer side of the previews and of the list's thumbnails, in pixels.
PREVIEW_SIDE, THUMB_SIDE = 800, 96
#: Thumbnails shown in a collection's list; the rest of the rows have none.
MAX_THUMBNAILS = 2000


def _data_uri(array: np.ndarray, *, photo: bool = False) -> str:
    """A uint8 RGB or RGBA array as an inline PNG (exact colours) or JPEG (``photo``, small)."""
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(array))
    if photo:
        image.convert("RGB").save(buffer, format="JPEG", quality=85)
        kind = "jpeg"
    else:
        image.save(buffer, format="PNG")
        kind = "png"
    return f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def recoloured_preview(block: np.ndarray, spec, centers, colors) -> tuple[np.ndarray, np.ndarray]:
    """An image block as shown (RGBA) and recoloured by its nearest palette colour (RGBA).

    ``centers`` are in the spec's space (what pixels are labelled by), ``colors`` the 8-bit colours.

    Masked pixels are transparent in both.

    Examples
    --------
    >>> from palette_dask.kernels.pixels import pixel_spec
    >>> from palette_dask.inputs.formats import ImageInfo
    >>> block = np.array([[[250, 10, 10], [5, 5, 240]]], dtype=np.uint8)
    >>> spec = pixel_spec(ImageInfo("a", "array", (1, 2, 3), "uint8"))
    >>> red_blue = [[255, 0, 0], [0, 0, 255]]
    >>> shown, recoloured = recoloured_preview(block, spec, red_blue, red_blue)
    >>> recoloured[0, :, :3].tolist()
    [[255, 0, 0], [0, 0, 255]]
    """
    from dataclasses import replace

    features, valid = block_features(block, spec)
    display, _ = block_features(block, replace(spec, space="rgb"))
    shown = np.zeros(valid.shape + (4,), dtype=np.uint8)
    shown[..., :3] = np.clip(np.rint(display), 0, 255).astype(np.uint8)
    shown[..., 3] = np.where(valid, 255, 0)
    recoloured = np.zeros_like(shown)
    if valid.any():
        labels, _ = nearest_center(features[valid].astype(np.float32), np.asarray(centers, np.float32))
        recoloured[valid, :3] = np.asarray(colors, dtype=np.uint8)[labels]
        recoloured[valid, 3] = 255
    return shown, recoloured


def preview(result: PaletteResult, index: int, side: int = PREVIEW_SIDE, client=None, downloads=None):
    """``(shown, recoloured)``: RGBA previews of a run's image, masked pixels transparent.

    The image is read as the run read it (its bands, no-data and display
    scale), from the lowest level of its pyramid at least ``side`` pixels
    long, if it has one (COG overviews, OME-TIFF and OME-Zarr levels: see
    :func:`~palette_dask.inputs.read.pyramid_level`). An image that cannot be
    read (any more) gives the one-line reason, a str.
    """
    return _previews(result, [index], side, client, downloads)[index]


def _previews(result: PaletteResult, indices, side: int, client=None, downloads=None, captions=None) -> dict:
    """{index: (shown, recoloured), or why not (a str)}, by dask tasks; one image failing fails alone.

    ``captions``, a dict, gets each image's bands shown, where its format names them (:func:`bands_shown`).
    """
    config = result.config
    lazy, found = {}, {}
    for index in indices:
        name = result.image_names[index]
        try:
            probed = probe(name, channel_axis=config.channel_axis, downloads=downloads, assets=config.assets)
            info = pyramid_level(probed, side)
            image = read_image(info)
            spec = run_spec(info, config, result.attrs.get("display_range"))
        except (PaletteDaskError, OSError) as exc:  # an array given to the API, a file since moved...
            found[index] = image_error(name, exc)
            continue
        if spec.low is None:  # a measured range this store does not hold
            found[index] = f"{name}: its display range was measured by a run this store does not hold"
            continue
        if captions is not None and info.band_names:
            captions[index] = bands_shown(info.band_names, spec.bands)
        step = max(1, math.ceil(max(image.shape[:2]) / side))
        lazy[index] = dask.delayed(recoloured_preview)(
            image[::step, ::step], spec, result.centers, result.colors
        )
    tasks = client.compute(list(lazy.values())) if client is not None else list(lazy.values())
    for index, task in zip(lazy, tasks):
        try:
            found[index] = task.result() if client is not None else task.compute()
        except Exception as exc:  # a file that changed or broke since the run: this image alone
            found[index] = image_error(result.image_names[index], exc)
    return found


def bands_shown(names, bands) -> str:
    """Which named band an image shows as which colour.

    Examples
    --------
    >>> bands_shown(("DAPI", "FITC", "TRITC"), (2, 1, 0)), bands_shown(("DAPI",), (0, 0, 0))
    ('red: TRITC, green: FITC, blue: DAPI', 'gray: DAPI')
    """
    if len(set(bands)) == 1:
        return f"gray: {names[bands[0]]}"
    return ", ".join(f"{colour}: {names[band]}" for colour, band in zip(("red", "green", "blue"), bands))


def _bar(colors, proportions, width: int = 300, height: int = 50) -> str:
    return _data_uri(palette_bar(colors, proportions, width=width, height=height))


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.muted { color: #666; } .bar { image-rendering: pixelated; display: block; }
#global-bar { width: 600px; height: 100px; }
table { border-collapse: collapse; background: #fff; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: middle; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 28px; height: 18px; border: 1px solid #0003; vertical-align: middle; }
#images th { cursor: pointer; user-select: none; white-space: nowrap; }
#images th[aria-sort=ascending]::after { content: " \\25B2"; }
#images th[aria-sort=descending]::after { content: " \\25BC"; }
.previews { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
.previews figure { margin: 0; }
.previews img { max-width: 560px;
  background: repeating-conic-gradient(#ddd 0 25%, #fff 0 50%) 0 0 / 16px 16px; }
.failed { color: #b00020; }
"""

# Sorts the image list by a column: click its header, or open the page at #sort=<column>[-asc|-desc].
_SCRIPT = """
(function () {
  var table = document.getElementById("images");
  if (!table) { document.body.dataset.ready = "yes"; return; }
  var body = table.tBodies[0], headers = table.tHead.rows[0].cells;
  function sortBy(column, direction) {
    var cell = headers[column], numeric = cell.classList.contains("num");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
      var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return direction === "asc" ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    for (var i = 0; i < headers.length; i++) { headers[i].removeAttribute("aria-sort"); }
    cell.setAttribute("aria-sort", direction === "asc" ? "ascending" : "descending");
    table.dataset.sortedBy = cell.dataset.key + "-" + direction;
  }
  for (var i = 0; i < headers.length; i++) {
    (function (column) {
      headers[column].addEventListener("click", function () {
        var now = headers[column].getAttribute("aria-sort");
        sortBy(column, now === "descending" ? "asc" : "desc");
      });
    })(i);
  }
  var wanted = /#sort=([\\w-]+?)(?:-(asc|desc))?$/.exec(location.hash);
  if (wanted) {
    for (var j = 0; j < headers.length; j++) {
      if (headers[j].dataset.key === wanted[1]) { sortBy(j, wanted[2] || "desc"); }
    }
  }
  document.body.dataset.ready = "yes";
})();
"""


def html_report(
    result: PaletteResult,
    path: str | os.PathLike,
    *,
    client=None,
    title: str | None = None,
    preview_images: int = PREVIEW_IMAGES,
    downloads: str | None = None,
) -> str:
    """Write the run's HTML report (see the module docstring); returns its path.

    ``client`` computes the previews (None: dask's current scheduler);
    ``downloads`` is the run's download folder, where URL inputs already are.
    """
    k, n = result.k, len(result.image_names)
    status = np.asarray(result.image_status)
    done = [i for i in range(n) if status[i] == DONE]
    space = result.attrs.get("space", "rgb")
    escape = html.escape
    proportions = result.proportions
    summary = result.to_dict()
    images, pixels, lab_error = summary["images"], summary["pixels"], summary.get("lab_error")
    errors = summary["errors"]  # measured on every valid pixel, or on a share of them (issue 34)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title or 'palette_dask report')}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title or 'Dominant colours')}</h1>",
        f'<p class="muted">{images["done"]} of {n} images done, {images["failed"]} failed'
        + (
            f" ({images['transient']} on a transient fault: --resume reads them again)"
            if images["transient"]
            else ""
        )
        + "; "
        f"{pixels['valid']:,} valid pixels, {pixels['masked']:,} masked; "
        f"k={k} clustered in {escape(space)}"
        + (
            f"; palette error: RMS &Delta;E {lab_error**0.5:.2f} (mean &Delta;E&sup2; {lab_error:.1f})"
            + ("" if errors["exact"] else f", estimated from {errors['measured_pixels']:,} pixels")
            if lab_error
            else ""
        )
        + (f"; store {escape(str(result.store))}" if result.store else "")
        + "</p>",
    ]
    if k:
        parts.append(
            f'<img id="global-bar" class="bar" alt="palette bar" src="{_bar(result.colors, proportions)}">'
        )
        parts.append(_palette_table(result, summary["palette"]))
    if k and 0 < len(done) <= preview_images:
        parts.append(_preview_section(result, done, client, downloads))
    if n > 1 or not done:
        parts.append(_image_list(result, done, client, downloads))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(parts))
    return str(path)


def _palette_table(result: PaletteResult, palette: list[dict]) -> str:
    """The palette as a table, largest share first: swatch, code, name, sRGB, share, pixels (and area)."""
    names = {entry["id"] - 1: shown_name(entry) for entry in palette}
    proportions, areas = result.proportions, result.areas
    unit = result.area_unit if areas is not None else None
    rows = "".join(
        f'<tr><td class="num">{i + 1}</td>'
        f'<td><span class="swatch" style="background:{hex_code(result.colors[i])}"></span></td>'
        f"<td><code>{hex_code(result.colors[i])}</code></td><td>{html.escape(names[i])}</td>"
        f"<td>{', '.join(f'{v:.1f}' for v in result.centers_rgb[i])}</td>"
        f'<td class="num">{proportions[i]:.2%}</td><td class="num">{int(result.counts[i]):,}</td>'
        + (f'<td class="num">{areas[i] / unit[1]:,.2f}</td>' if unit else "")
        + "</tr>"
        for i in result.ordered("share")
    )
    area = f'<th class="num">area {unit[0]}</th>' if unit else ""
    return (
        '<h2>Palette</h2><table id="palette"><thead><tr><th class="num">id</th><th></th><th>hex</th>'
        f'<th>name</th><th>sRGB</th><th class="num">share</th><th class="num">pixels</th>{area}</tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _preview_section(result: PaletteResult, done: list[int], client, downloads) -> str:
    """Each image done, recoloured with the palette, and the bar of its shares (a failed preview says why)."""
    captions: dict[int, str] = {}
    previews = _previews(result, done, PREVIEW_SIDE, client, downloads, captions)
    parts = ["<h2>Images, and recoloured with the palette</h2>"]
    for index in done:
        name = html.escape(os.path.basename(result.image_names[index]))
        counts = result.image_counts[index]
        bar = _bar(result.colors, counts / max(1, counts.sum()))
        figures = (
            f'<figure><img class="bar" src="{bar}" alt="bar of {name}">'
            "<figcaption>its shares</figcaption></figure>"
        )
        if isinstance(previews[index], str):
            figures = f'<p class="failed">no preview: {html.escape(previews[index])}</p>' + figures
        else:
            shown, recoloured = previews[index]
            figures = (
                f'<figure><img src="{_data_uri(shown)}" alt="{name}">'
                f"<figcaption>{name}{' (' + html.escape(captions[index]) + ')' if index in captions else ''}"
                "</figcaption></figure>"
                f'<figure><img class="recoloured" src="{_data_uri(recoloured)}" alt="{name} recoloured">'
                f"<figcaption>recoloured with the palette</figcaption></figure>" + figures
            )
        parts.append(f'<div class="previews">{figures}</div>')
    return "\n".join(parts)


def _image_list(result: PaletteResult, done: list[int], client=None, downloads=None) -> str:
    """Every image as a row: thumbnail, name, status, valid pixels, bar, share of each colour.

    Its figures are :func:`~palette_dask.outputs.render.image_figures`, as ``show --csv`` writes them.
    """
    escape = html.escape
    thumbnails = _previews(result, done[:MAX_THUMBNAILS], THUMB_SIDE, client, downloads) if result.k else {}
    order = result.ordered("share")
    own = result.image_palettes is not None
    header = (
        '<th data-key="thumbnail"></th><th data-key="name">image</th><th data-key="status">status</th>'
        '<th class="num" data-key="valid">valid pixels</th><th data-key="bar">palette</th>'
        + ('<th data-key="own">own colours</th>' if own else "")
        + "".join(
            f'<th class="num" data-key="share-{i + 1}" title="share of colour {i + 1}, {hex_code(colour)}">'
            f'<span class="swatch" style="background:{hex_code(colour)}"></span> {i + 1}</th>'
            for i, colour in ((i, result.colors[i]) for i in order)
        )
    )
    rows = []
    blank = '<td class="num" data-sort="-1"></td>'  # not counted: no figure, not 0 (a mean skips it)
    for index, (name, state, valid, _, reason, shares) in enumerate(image_figures(result)):
        counted = valid is not None  # else blank
        thumb = thumbnails.get(index, "")
        if isinstance(thumb, tuple):
            thumb = f'<img src="{_data_uri(thumb[0], photo=True)}" alt="" height="48">'
        elif thumb:  # no thumbnail: why, where the image would be
            thumb = f'<span class="failed" title="{escape(thumb)}">no preview</span>'
        counts = result.image_counts[index]
        bar = f'<img class="bar" src="{_bar(result.colors, counts, 150, 16)}" alt="">' if counted else ""
        why = f' title="{escape(reason)}"' if reason else ""
        if own:  # the image's own palette (per_image=K): its bar, its colours' hex codes in the title
            colours, cell = own_palette(result, index), ""
            if colours:
                mine = _bar(result.image_palettes[index], result.image_palette_shares[index], 150, 16)
                codes = " ".join(f"{c['hex']} {c['share']:.0%}" for c in colours)
                cell = f'<img class="bar" src="{mine}" alt="{codes}" title="{codes}">'
            bar += f'</td><td data-sort="{index}">{cell}'
        rows.append(
            f'<tr><td data-sort="{index}">{thumb}</td><td data-sort="{escape(name)}">{escape(name)}</td>'
            f'<td data-sort="{state}" class="{state}"{why}>{state}'
            + (f"<br><small>{escape(reason)}</small>" if reason else "")
            + "</td>"
            + (f'<td class="num" data-sort="{valid}">{valid:,}</td>' if counted else blank)
            + f'<td data-sort="{index}">{bar}</td>'
            + "".join(
                f'<td class="num" data-sort="{shares[i]:.6f}">{shares[i]:.1%}</td>' if counted else blank
                for i in order
            )
            + "</tr>"
        )
    return (
        f"<h2>All {len(result.image_names):,} images</h2>"
        '<p class="muted">Click a column to sort by it.</p>'
        f'<table id="images"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )
