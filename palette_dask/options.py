"""The options of a run, declared once: name, default, check, command-line flag, and whether stored.

Every shell derives from :data:`OPTIONS`: :class:`RunConfig` (the checked
options every stage and every task reads), the keyword arguments of
:func:`~palette_dask.extract_palette` and :func:`~palette_dask.sweep_k`
(:func:`takes_options` writes their signatures and documents them), the
``palette-dask`` arguments (:func:`add_arguments`), the ``parameters`` a
store records and ``--resume`` compares (:attr:`RunConfig.parameters`,
:meth:`RunConfig.from_parameters`). Adding an option is one :class:`Option`
here and the code that uses it (ARCHITECTURE.md, "Adding an option").

This module imports nothing heavy (no numpy, dask or numba): the command
line parses its arguments before anything else is loaded. It is the
package's longest module because it holds every option whole: its default,
its check and its command-line reading, its declaration, and what derives
from them; split, an option would again be written in several places.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import functools
import inspect
import numbers
import os
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from .constants import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_K,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MEMORY_BUDGET,
    DEFAULT_N_INIT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SAMPLE_SIZE,
    DEFAULT_SCALE,
    DEFAULT_TRIES,
    EXCLUDE_WITHIN,
    HEX_COLOUR,
    MAX_BATCH_SIZE,
    MAX_PER_IMAGE,
    SAMPLE_IMAGES,
    SCALES,
    SPACES,
    css_colours,
)
from .errors import ParameterError

__all__ = [
    "Option",
    "OPTIONS",
    "RunConfig",
    "takes_options",
    "add_arguments",
    "given_options",
    "spell",
    "spelled_as_flags",
]


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# -- checks: (value, the options checked before it) -> the value as the run keeps it ---------------


def check_k(value, _=None) -> int:
    """``k`` as a whole number >= 1, or a :class:`~palette_dask.errors.ParameterError`."""
    if not _whole(value) or value < 1:
        raise ParameterError(f"k must be a whole number of colours >= 1, got {value!r}")
    return int(value)


def _check_sample_size(value, given):
    if not _whole(value) or value < given["k"]:
        raise ParameterError(f"sample_size must be a whole number >= k={given['k']}, got {value!r}")
    return int(value)


def _check_sample_chunks(value, _):
    if not (_real(value) and 0 < value <= 1):
        raise ParameterError(
            f"sample_chunks must be a share of a mosaic's chunks, above 0 and at most 1, got {value!r}"
        )
    return float(value)


def _check_sample_images(value, _):
    if value not in SAMPLE_IMAGES:
        raise ParameterError(f"sample_images must be one of {', '.join(SAMPLE_IMAGES)}, got {value!r}")
    return value


def _check_seed(value, _):
    if not _whole(value) or value < 0:
        raise ParameterError(f"seed must be a whole number >= 0, got {value!r}")
    return int(value)


def _check_positive(name: str):
    def check(value, _):
        if not _whole(value) or value < 1:
            raise ParameterError(f"{name} must be a whole number >= 1, got {value!r}")
        return int(value)

    return check


def _check_timeout(value, _) -> float:
    if not (_real(value) and 0 < value < float("inf")):
        raise ParameterError(f"request_timeout must be a number of seconds above 0, got {value!r}")
    return float(value)


def _check_bands(value, _):
    if value is None:
        return None
    try:
        bands = tuple(int(b) for b in value)
    except (TypeError, ValueError):
        raise ParameterError(f"bands must be band indices (0-based), got {value!r}") from None
    return bands  # one or three, among an image's bands: checked image by image (pixels.pixel_spec)


def _check_assets(value, _):
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else value  # "red,green,blue" as the flag takes it
    try:
        names = tuple(names)
    except TypeError:
        names = ()
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ParameterError(
            f"assets must be STAC asset keys or band names, such as red,green,blue, got {value!r}"
        )
    return tuple(n.strip() for n in names)


def _check_alpha(value, _):
    if value is not None and not _whole(value):
        raise ParameterError(f"alpha must be the index of a band (0-based), got {value!r}")
    return None if value is None else int(value)


def _check_nodata(value, _):
    if value is not None and not _real(value):
        raise ParameterError(f"nodata must be a number, got {value!r}")
    return None if value is None else float(value)


def _check_scale(value, _):
    if isinstance(value, str):
        if value not in SCALES:
            raise ParameterError(f"scale must be one of {', '.join(SCALES)} or (low, high), got {value!r}")
        return value
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ParameterError(
            f"scale must be one of {', '.join(SCALES)} or (low, high), got {value!r}"
        ) from None
    if not high > low:
        raise ParameterError(f"scale=(low, high) needs high > low, got {value!r}")
    return (low, high)


def _check_space(value, _):
    if value not in SPACES:
        raise ParameterError(f"space must be one of {', '.join(SPACES)}, got {value!r}")
    return value


def _check_channel_axis(value, _):
    if value is not None and not _whole(value):
        raise ParameterError(f"channel_axis must be the index of an axis, got {value!r}")
    return None if value is None else int(value)


def _check_on_error(value, _):
    if value not in ("skip", "fail"):
        raise ParameterError(f"on_error must be 'skip' or 'fail', got {value!r}")
    return value


def _check_memory_budget(value, _):
    if not _whole(value) or value < 0:
        raise ParameterError(f"memory_budget must be a whole number of bytes >= 0, got {value!r}")
    return int(value)


def _check_palette(value, _):
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ParameterError(f"palette must be the path of a store or of a palette file, got {value!r}")
    return os.path.abspath(os.fspath(value))  # the store records where its palette came from


def _check_batch_size(value, _):
    if value is not None and not (_whole(value) and 1 <= value <= MAX_BATCH_SIZE):
        raise ParameterError(f"batch_size must be a whole number from 1 to {MAX_BATCH_SIZE}, got {value!r}")
    return None if value is None else int(value)


def _check_exclude(value, given):
    colours = (value,) if isinstance(value, str) else tuple(value)  # one colour alone, not six characters
    for colour in colours:
        if not (isinstance(colour, str) and HEX_COLOUR.fullmatch(colour)):
            raise ParameterError(f"exclude: {colour!r} is not a colour; give #rrggbb, e.g. '#ffffff'")
    if colours and given["scale"] in ("minmax", "percentile"):  # "auto": known for 8-bit data (see passes)
        raise ParameterError(
            f'exclude needs a known display range: scale="dtype" or (low, high), not {given["scale"]!r}'
        )
    return tuple(_colour_code(colour) for colour in colours)


def _colour_code(code: str) -> str:
    """A colour ``#rrggbb`` or ``rrggbb`` (checked) as a run keeps it: ``#rrggbb``, lower case."""
    return "#" + code.lstrip("#").lower()


def _check_within(value, given):
    if given["exclude"] and not (_real(value) and 0 < value < 200):
        raise ParameterError(f"within (--within) must be a CIEDE2000 difference above 0, got {value!r}")
    return float(value) if _real(value) else value


def _check_per_image(value, _):
    if not (_whole(value) and 0 <= value <= MAX_PER_IMAGE):
        raise ParameterError(
            f"per_image must be a whole number of colours from 1 to {MAX_PER_IMAGE} (0: none), got {value!r}"
        )
    return int(value)


def _check_labels(value, _):
    return bool(value)


# -- the command line's readings of an argument --------------------------------------------------


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum`` (and at most ``maximum``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            within = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise argparse.ArgumentTypeError(f"expected a whole number {within}, got {value}")
        return value

    return parse


def bands_argument(text: str) -> tuple[int, ...]:
    """``4,3,2`` (band numbers counted from 1, as GDAL does) → 0-based indices."""
    try:
        numbers_ = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected band numbers such as 4,3,2, got {text!r}") from None
    if len(numbers_) not in (1, 3) or min(numbers_) < 1:
        raise argparse.ArgumentTypeError(f"expected one or three band numbers from 1, got {text!r}")
    return tuple(n - 1 for n in numbers_)


def assets_argument(text: str) -> tuple[str, ...]:
    """``red,green,blue`` (a STAC item's asset keys or band names) → a tuple of them."""
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected asset keys or band names such as red,green,blue, got {text!r}"
        )
    return names


def band_number(text: str) -> int:
    """``4`` (a band number counted from 1) → 3, the 0-based index."""
    return whole_number(1)(text) - 1


def scale_argument(text: str):
    """``auto``, ``dtype``, ``minmax``, ``percentile`` or ``LOW,HIGH`` → the ``scale`` option."""
    if text in SCALES:
        return text
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {', '.join(SCALES)} or LOW,HIGH, got {text!r}") from None
    if not high > low:
        raise argparse.ArgumentTypeError(f"LOW,HIGH needs HIGH > LOW, got {text!r}")
    return (low, high)


_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def byte_size(text: str) -> int:
    """An argparse type: bytes, as ``512MiB``, ``2GB``, ``1.5G`` or ``0`` (units of 1024).

    Examples
    --------
    >>> byte_size("512MiB"), byte_size("2GB"), byte_size("0")
    (536870912, 2147483648, 0)
    """
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(?:([kmgt])i?b?|b)?\s*", text.lower())
    if found is None:
        raise argparse.ArgumentTypeError(f"expected a size such as 512MiB or 2GB, got {text!r}")
    return int(float(found.group(1)) * _UNITS[found.group(2) or ""])


def number(text: str) -> float:
    """A number, ``nan`` included."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (or nan), got {text!r}") from None


def _number_where(holds: Callable[[float], bool], wanted: str) -> Callable[[str], float]:
    """An argparse type: a number for which ``holds`` is true, else ``expected <wanted>``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not holds(value):  # NaN holds nothing
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


non_negative = _number_where(lambda v: v >= 0, "a number >= 0")
positive_number = _number_where(lambda v: v > 0, "a number above 0")
share = _number_where(lambda v: 0 <= v <= 1, "a share from 0 to 1")
chunk_share = _number_where(lambda v: 0 < v <= 1, "a share above 0 and at most 1")


def hex_colour(text: str) -> str:
    """``#rrggbb``, ``rrggbb`` or a CSS colour name (``white``) as ``#rrggbb``."""
    code = text.strip().lower()
    code = css_colours().get(code, code)
    if not HEX_COLOUR.fullmatch(code):
        raise argparse.ArgumentTypeError(f"expected #rrggbb or a CSS colour name such as white, got {text!r}")
    return _colour_code(code)


# -- the declaration -----------------------------------------------------------------------------

#: Which commands take an option: ``"input"`` how inputs are read and sampled
#: (``run``, ``demo``, ``sweep``; :func:`~palette_dask.sweep_k`), ``"run"`` what
#: a full run counts and stores (``run``, ``demo``; :func:`~palette_dask.extract_palette` only).
STAGES = ("input", "run")


@dataclass(frozen=True)
class Option:
    """One option of a run.

    Attributes
    ----------
    name : str
        The keyword argument, the attribute of :class:`RunConfig`, the key stored.
    default
        Its value when not given.
    check : callable
        ``check(value, given)`` → the value as the run keeps it, or raises
        :class:`~palette_dask.errors.ParameterError`; ``given`` holds the
        options declared before it, checked.
    annotation : str
        Its type, as the API's signature shows it.
    doc : str
        Its description in the API's docstring (numpy style, unindented).
    stage : {"input", "run"}
        See :data:`STAGES`.
    flag, parse, metavar, help : command line
        ``flag`` (``--sample``; None: from Python only), the argparse ``type``
        (``parse``), ``metavar`` and a one-line ``help``; ``action`` and
        ``choices`` as argparse's.
    stored : {"always", "when set", "with exclude", "never"}
        Whether :attr:`RunConfig.parameters` (the store's record, which
        ``--resume`` must find unchanged) holds it: always, only when it is
        not the default (so a store made before the option existed resumes
        as before), only when ``exclude`` is set, or never (it changes how,
        not what, is computed).
    absent
        What a store that does not record it was made with (when not ``default``).
    """

    name: str
    default: object
    check: Callable
    annotation: str
    doc: str
    stage: str = "input"
    flag: str | None = None
    parse: Callable | None = None
    metavar: str | None = None
    help: str | None = None
    action: str | None = None
    choices: tuple | None = None
    stored: str = "always"
    absent: object = None

    def stored_value(self, value):
        """The value as JSON holds it (tuples as lists)."""
        return list(value) if isinstance(value, tuple) else value

    def from_stored(self, value):
        """The value a store recorded, as the run keeps it (lists as tuples)."""
        return tuple(value) if isinstance(value, list) else value


OPTIONS: tuple[Option, ...] = (
    Option(
        "k", DEFAULT_K, check_k, "int",
        "Number of colours: 5 unless given; a palette applied gives it, an appended store its own.",
        stage="run",
        flag="-k", parse=whole_number(1), help="number of colours (default: 5)",
    ),
    Option(
        "sample_size", DEFAULT_SAMPLE_SIZE, _check_sample_size, "int",
        "Valid pixels sampled (uniformly, seeded) to fit the palette.",
        flag="--sample", parse=whole_number(1), metavar="N", help="pixels sampled to fit (default: 100000)",
    ),
    Option(
        "sample_chunks", 1.0, _check_sample_chunks, "float",
        "Share of a mosaic's stored chunks read for the sample: 1 (the default) reads every chunk, so "
        "the sample is uniform over every valid pixel whatever the layout; less reads that share (at "
        "least 64 chunks), spread evenly, which is faster but can alias with a periodic layout "
        '(benchmarks/RESULTS.md, "A sample that sees the whole mosaic").',
        flag="--sample-chunks", parse=chunk_share, metavar="SHARE", stored="when set",
        help="sample a mosaic from this share of its chunks, not all (faster; can miss regions of a "
        "periodic layout: see docs/how-it-works.md)",
    ),
    Option(
        "sample_images", "auto", _check_sample_images, "str",
        "Which images of a collection the sample is drawn from. ``auto``: where few images would "
        "give the sample its pixels, a seeded subset chosen with probability by pixel count (every "
        "image big enough is chosen), every pixel as likely to be drawn as with ``all``; only those "
        "are decoded for the sample, so the counting pass is the only decode of the others. Small "
        "collections, and ``scale='minmax'``, sample every image. ``all``: every image, decoded for "
        "the sample (the strict twin).",
        # not recorded at its default, as sample_chunks: stores made before resume as they did (a
        # collection of at most 6,000 images samples every image either way)
        flag="--sample-images", choices=SAMPLE_IMAGES, stored="when set",
        help="draw the sample from a seeded subset of a large collection's images (auto, the "
        "default: one decode for most images) or from every image (all)",
    ),
    Option(
        "seed", 0, _check_seed, "int",
        "Seed of the sample and of k-means||; the same seed gives the same palette.",
        flag="--seed", parse=whole_number(0), help="random seed (default: 0)",
    ),
    Option(
        "n_init", DEFAULT_N_INIT, _check_positive("n_init"), "int",
        "Starts of the fit, the lowest inertia kept: dask-ml's k-means||, then k-means++ seeds drawn "
        "on the sample (see :func:`~palette_dask.kernels.fit.fit_palette`); the first is the same whatever "
        "their number, so more starts never fit the sample worse.",
        flag="--n-init", parse=whole_number(1), metavar="N", stored="when set",
        help="starts of the fit, the best kept (default: 6)",
    ),
    Option(
        "chunk_bytes", DEFAULT_CHUNK_BYTES, _check_positive("chunk_bytes"), "int",
        "Target size of a chunk of an image read tile by tile; smaller images are decoded whole by "
        "their batch's tasks.",
    ),
    Option(
        "max_pixels", DEFAULT_MAX_PIXELS, _check_positive("max_pixels"), "int",
        "Images decoded whole (PNG, JPEG...) may have at most this many pixels, and any block decoded "
        "whole (a TIFF tile or strip, a zarr chunk) at most ``4 * max_pixels`` bytes.",
        flag="--max-pixels", parse=whole_number(1), metavar="N", stored="never",
        help="largest image decoded whole",
    ),
    Option(
        "tries", DEFAULT_TRIES, _check_positive("tries"), "int",
        "Tries of each request to a remote input or store over http(s) or s3: a 408, 429, 500, "
        "502, 503 or 504, a reset or refused connection, a body cut short or a request past "
        "``request_timeout`` is tried again after a capped, jittered exponential backoff (or the "
        "server's ``Retry-After``); a fault on every try fails that image alone, as transient, and "
        "``--resume`` reads it again. gs and az retry on their own terms (gcsfs 6 tries, "
        "azure-storage-blob 4), which this does not change (see :mod:`palette_dask.inputs.retry`: "
        "which layer retries what).",
        flag="--tries", parse=whole_number(1), metavar="N", stored="never",
        help="tries of each http(s) or s3 request before a transient fault fails its image (default: 10)",
    ),
    Option(
        "request_timeout", DEFAULT_REQUEST_TIMEOUT, _check_timeout, "float",
        "Seconds one http(s) or s3 request may take, connection and body (a whole download too); "
        "past them it is a transient fault, tried again (gs and az keep their own timeouts).",
        flag="--request-timeout", parse=positive_number, metavar="SECONDS", stored="never",
        help="seconds one http(s) or s3 request may take before it is tried again (default: 300)",
    ),
    Option(
        "bands", None, _check_bands, "tuple[int, ...] | None",
        "0-based indices of the three bands shown as red, green, blue (or one, gray); needed for "
        "images whose bands, alpha aside, are not one or three. Other bands are not read.",
        flag="--bands", parse=bands_argument, metavar="R,G,B",
        help="bands shown as red, green, blue, from 1 (e.g. 4,3,2)",
    ),
    Option(
        "alpha", None, _check_alpha, "int | None",
        "0-based index of a band to use as alpha (a pixel with alpha 0 is left out). A band is alpha "
        "only where the format declares it (a PNG's colour type, a TIFF's extra-sample tag) or this "
        "says so: zarr, OME-Zarr and array inputs declare none.",
        flag="--alpha", parse=band_number, metavar="N", stored="when set",
        help="band N (from 1) is alpha: 0 leaves a pixel out (zarr and arrays declare no alpha band)",
    ),
    Option(
        "nodata", None, _check_nodata, "float | None",
        "Pixels whose colour bands all equal this are left out; overrides what the inputs declare "
        "(GeoTIFF's ``GDAL_NODATA``, ``_FillValue``, rioxarray's ``nodata``).",
        flag="--nodata", parse=number, metavar="V",
        help="pixels whose colour bands all equal V are left out",
    ),
    Option(
        "scale", DEFAULT_SCALE, _check_scale, "str | tuple[float, float]",
        "How band values map to display 0–255. ``auto`` (the default), as QGIS shows a raster: 8-bit "
        "data by their type's range (0–255, as ``dtype``), data wider than 8 bits (uint16, int32, "
        "floats, whatever their values) by ``percentile``, measured on the sample; a run that samples "
        "images of both stops with a line asking for one of the others, and ``exclude`` needs "
        "``(low, high)`` for wider data unless the range comes from a store. ``dtype``: by the dtype's "
        "range (16-bit: 0–65535, float: 0–1); ``minmax``: by the least and greatest valid value of each "
        "band over all images (one extra pass); ``percentile``: each band's cumulative 2%–98% cut, its "
        "2nd and 98th percentile in the sample; or ``(low, high)``. A measured range is stored "
        "(``display_range``, with the kind of data it was measured on) and reused by ``resume`` and "
        "``append``; a run applying a store as its ``palette`` and setting no ``scale`` takes the "
        "store's, with its range.",
        flag="--scale", parse=scale_argument, metavar="HOW",
        absent="dtype",  # stores that record no scale were made before "auto"
        help="band values to display 0-255: auto (default: 8-bit data by dtype, wider by percentile), "
        "dtype, minmax, percentile (2-98), or LOW,HIGH",
    ),
    Option(
        "space", "lab", _check_space, "str",
        "``lab``: cluster in CIELAB, where distances follow perceived differences; ``rgb``: in display "
        "sRGB, as the tutorial does. Either way the palette is given in sRGB, and the store records "
        'the space. ``lab`` gives the lower CIELAB error on every photo measured (benchmarks/RESULTS.md, '
        '"Palette quality"); ``rgb`` minimises the tutorial\'s RGB inertia.',
        flag="--space", choices=SPACES, absent="rgb",  # stores made before the option clustered in sRGB
        help="cluster in perceptual CIELAB (lab, the default) or in display sRGB as the tutorial does (rgb)",
    ),
    Option(
        "channel_axis", None, _check_channel_axis, "int | None",
        "The axis of the bands, for zarr arrays and arrays whose layout is not named.",
        flag="--channel-axis", parse=int, metavar="N", help="axis of the bands of zarr arrays",
    ),
    Option(
        "assets", None, _check_assets, "Sequence[str] | None",
        "A STAC item's assets stacked as its bands, in order: asset keys, or band names from the "
        "assets' ``eo:bands`` or ``bands`` (``red``, ``B04``...); by default its ``visual`` asset "
        "(see docs/stac.md).",
        flag="--assets", parse=assets_argument, metavar="A,B,C", stored="when set",
        help="a STAC item's assets stacked as its bands: keys or band names (default: visual)",
    ),
    Option(
        "exclude", (), _check_exclude, "Sequence[str]",
        "Colours to leave out, as ``#rrggbb``: pixels whose display colour is within CIEDE2000 "
        "``exclude_within`` (default 6) of one of them are left out as masked pixels are (counted in "
        "``masked``, label 0), from the sample and the counts (a white background, say). Needs a "
        'known display range (``scale`` ``"dtype"`` or ``(low, high)``, or ``"auto"`` for 8-bit data).',
        flag="--exclude", parse=hex_colour, action="append", metavar="#RRGGBB", stored="when set",
        help="leave out pixels near this colour, as masked ones (a white background); repeatable",
    ),
    Option(
        "exclude_within", EXCLUDE_WITHIN, _check_within, "float",
        "The CIEDE2000 difference within which ``exclude`` leaves pixels out.",
        flag="--within", parse=positive_number, metavar="DE", stored="with exclude",
        help="CIEDE2000 difference from an --exclude colour within which pixels are left out (default: 6)",
    ),
    Option(
        "labels", False, _check_labels, "bool",
        "Also write a label raster per image to the store (``labels/<i>``).",
        stage="run", flag="--labels", action="store_true", help="also store a label raster per image",
    ),
    Option(
        "per_image", 0, _check_per_image, "int",
        "Also give every image its own ``per_image`` colours and their shares of its valid pixels "
        "(``result.image_palettes``, ``result.image_palette_shares``), clustered in CIELAB from the "
        "pixels its counting tasks count (see :mod:`palette_dask.kernels.per_image`; a mosaic's from the "
        "bins of all its chunks).",
        stage="run", flag="--per-image", parse=whole_number(1, MAX_PER_IMAGE), metavar="K",
        stored="when set",
        help="also give every image its own K colours and their shares (show --images lists them)",
    ),
    Option(
        "palette", None, _check_palette, "str | None",
        "A palette to apply instead of fitting one: a palette_dask store (its colours as fitted, in "
        "its own ``space``) or a ``.json``, ``.csv`` or ``.gpl`` file of sRGB colours (as ``export`` "
        "writes them, ids kept, or any list of colours; applied in ``space``). No sample is drawn and "
        "nothing is fitted: every pixel is labelled and counted against these colours, with their "
        "ids, so stores compare column by column; ``k`` is their number (see "
        ":mod:`palette_dask.outputs.palettes`). The store records the path.",
        stage="run", flag="--palette", metavar="STORE|FILE", stored="when set",
        help="apply this palette (a store, or a .json, .csv or .gpl file of colours) instead of fitting one",
    ),
    Option(
        "batch_size", None, _check_batch_size, "int | None",
        "Images per batch (one task per pass, one chunk of each per-image array); by default about a "
        "32nd of the images, at most 8192. It never changes a result.",
        stage="run", flag="--batch-size", parse=whole_number(1, MAX_BATCH_SIZE), metavar="N",
        stored="never",  # the store keeps its own, as its chunks
        help="images per batch: a task per pass, a chunk of the store (default: a 32nd of the images)",
    ),
    Option(
        "memory_budget", DEFAULT_MEMORY_BUDGET, _check_memory_budget, "int",
        "Bytes of decoded images kept on the workers from the first pass to the counting pass, all workers "
        "together (each batch keeps at most its share); others the first pass decoded are decoded again "
        "(with ``sample_images`` auto, most images of a large collection are decoded only by the counting "
        "pass: once). The colour histograms of 8-bit mosaics read once (at most 192 MB each) are held "
        "within it too; a mosaic whose histogram does not fit is read again to be counted. It never changes "
        "the palette or the counts (errors read again from a large mosaic are estimates).",
        stage="run", flag="--memory-budget", parse=byte_size, metavar="SIZE", stored="never",
        help="decoded images kept between the passes, e.g. 2GB or 0 (default: 1GiB)",
    ),
    Option(
        "on_error", "skip", _check_on_error, "str",
        "On a bad image, record it and go on (``skip``), or record it and stop (``fail``, raising "
        ":class:`ImageFailedError`). Batches whose tasks kill their workers are left pending either "
        "way, and :class:`RunIncompleteError` says so after the others finish.",
        stage="run", flag="--on-error", choices=("skip", "fail"), stored="never",
        help="on a bad image: record it and go on (skip, exit 3 at the end) or stop (fail, exit 1)",
    ),
)  # fmt: skip
_BY_NAME = {option.name: option for option in OPTIONS}


class RunConfig:
    """The options of one run, checked when made; every stage and every task reads them from here.

    Parameters
    ----------
    **values
        Any of :data:`OPTIONS` by name; the others take their defaults.

    Examples
    --------
    >>> config = RunConfig(k=8, exclude="#FFFFFF")
    >>> config.k, config.exclude, config.parameters["exclude"], config.parameters["space"]
    (8, ('#ffffff',), ['#ffffff'], 'lab')
    >>> RunConfig.from_parameters(config.parameters) == config
    True
    >>> RunConfig.from_parameters({"k": 3}).space  # a store from before the option: sRGB
    'rgb'
    >>> RunConfig(k=0)
    Traceback (most recent call last):
    ...
    palette_dask.errors.ParameterError: k must be a whole number of colours >= 1, got 0
    """

    __slots__ = tuple(_BY_NAME)

    def __init__(self, **values):
        unknown = sorted(set(values) - set(_BY_NAME))
        if unknown:
            raise TypeError(f"unexpected option {unknown[0]!r}; the options are {', '.join(_BY_NAME)}")
        given: dict = {}
        for option in OPTIONS:
            given[option.name] = option.check(values.get(option.name, option.default), given)
            object.__setattr__(self, option.name, given[option.name])

    def __setattr__(self, name, value):
        raise AttributeError("a RunConfig is not changed: make another with replace()")

    def __reduce__(self):  # pickled to the workers as its values
        return (_rebuild, (self.values(),))

    def values(self) -> dict:
        """``{name: value}`` of every option."""
        return {name: getattr(self, name) for name in _BY_NAME}

    def replace(self, **changes) -> RunConfig:
        """Another config, these options changed (and checked)."""
        return RunConfig(**{**self.values(), **changes})

    def __eq__(self, other) -> bool:
        return isinstance(other, RunConfig) and self.values() == other.values()

    def __hash__(self) -> int:
        return hash(tuple(self.values().items()))

    def __repr__(self) -> str:
        changed = (
            f"{o.name}={getattr(self, o.name)!r}" for o in OPTIONS if getattr(self, o.name) != o.default
        )
        return f"RunConfig({', '.join(changed)})"

    @property
    def parameters(self) -> dict:
        """The options that decide the result, as the store records them (JSON) and ``--resume`` compares."""
        kept = {}
        for option in OPTIONS:
            value = getattr(self, option.name)
            if (
                option.stored == "always"
                or (option.stored == "when set" and value != option.default)
                or (option.stored == "with exclude" and self.exclude)
            ):
                kept[option.name] = option.stored_value(value)
        return kept

    @classmethod
    def from_parameters(cls, parameters: dict, **values) -> RunConfig:
        """The config a store's ``parameters`` record; ``values`` give those it does not record."""
        for option in OPTIONS:
            if option.name in parameters:
                values[option.name] = option.from_stored(parameters[option.name])
            elif option.stored != "never" and option.absent is not None:
                values[option.name] = option.absent
        return cls(**values)


def _rebuild(values: dict) -> RunConfig:
    return RunConfig(**values)


def option_docs(stage: str = "run") -> str:
    """The numpy-style ``Parameters`` entries of the options a function with this stage takes."""
    return "\n".join(
        f"{o.name} : {o.annotation}\n" + textwrap.indent(textwrap.fill(o.doc, 96), "    ")
        for o in options_of(stage)
    )


def options_of(stage: str) -> tuple[Option, ...]:
    """The options taken by what runs up to ``stage`` (``"input"``: the sweep; ``"run"``: all)."""
    return OPTIONS if stage == "run" else tuple(o for o in OPTIONS if o.stage == "input")


def takes_options(stage: str):
    """Decorate a function taking ``**options``: its signature and docstring show the declared ones.

    The docstring's line ``{options}`` becomes their ``Parameters`` entries,
    and the signature lists them, keyword-only, with their defaults.
    """
    taken = options_of(stage)

    def decorate(function):
        signature = inspect.signature(function)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        names = {p.name for p in own}
        declared = [
            inspect.Parameter(
                o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=o.annotation
            )
            for o in taken
            if o.name not in names
        ]
        allowed = names | {o.name for o in declared}

        @functools.wraps(function)
        def with_options(*args, **kwargs):
            unknown = sorted(set(kwargs) - allowed)
            if unknown:  # as Python says it
                raise TypeError(f"{function.__name__}() got an unexpected keyword argument {unknown[0]!r}")
            return function(*args, **kwargs)

        with_options.__signature__ = signature.replace(parameters=own + declared)
        if function.__doc__:
            marker = next(line for line in function.__doc__.splitlines() if line.strip() == "{options}")
            indent = marker[: len(marker) - len(marker.lstrip())]
            with_options.__doc__ = function.__doc__.replace(
                marker, textwrap.indent(option_docs(stage), indent)
            )
        return with_options

    return decorate


class _Given(argparse.Action):
    """Store an option's value as argparse would (``kind``: None, "store_true" or "append") and note it given.

    The namespace's ``given`` set names the options the command line gave,
    so that one given at its default value is told from one not given.
    """

    def __init__(self, option_strings, dest, kind=None, **kwargs):
        if kind == "store_true":
            kwargs.update(nargs=0, const=True)
        super().__init__(option_strings, dest, **kwargs)
        self.kind = kind

    def __call__(self, parser, namespace, values, option_string=None):
        if self.kind == "store_true":
            values = True
        elif self.kind == "append":
            values = [*(getattr(namespace, self.dest, None) or []), values]  # the default list is not touched
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def add_arguments(parser: argparse.ArgumentParser, stage: str) -> None:
    """Add the command-line flags of the options of this stage (see :data:`STAGES`), their names as dests.

    Those given on the command line are named by the parsed namespace's ``given`` (:func:`given_options`).
    """
    for option in OPTIONS:
        if option.stage != stage or option.flag is None:
            continue
        extra = {"metavar": option.metavar} if option.action != "store_true" else {}
        if option.action != "store_true":
            extra.update(type=option.parse, choices=option.choices if option.action is None else None)
        default = list(option.default) if option.action == "append" else option.default
        parser.add_argument(
            option.flag, dest=option.name, default=default, help=option.help,
            action=_Given, kind=option.action, **extra,
        )  # fmt: skip


def given_options(args: argparse.Namespace) -> set[str]:
    """The names of the options a parsed command line gave (at their default value or not)."""
    return set(getattr(args, "given", ()))


def from_arguments(args: argparse.Namespace, stage: str) -> dict:
    """The options a parsed command line gives, by name (those of this stage and before)."""
    return {o.name: getattr(args, o.name) for o in options_of(stage) if o.flag and hasattr(args, o.name)}


#: How a run's own keywords (not options) are written: from Python, and on the command line.
_RUN_KEYWORDS = {
    "store": ("store=PATH", "-o OUT.zarr"),
    "append": ("append=True", "--append"),
    "resume": ("resume=True", "--resume"),
    "overwrite": ("overwrite=True", "--overwrite"),
    "labels_geotiff": ("labels_geotiff=FOLDER", "--labels-geotiff"),
    "source_labels": ("source_labels=NAME", "--source-labels"),
}
_ON_COMMAND_LINE = contextvars.ContextVar("palette_dask_on_command_line", default=False)


def spell(name: str) -> str:
    """An option or run keyword as the caller writes it: ``append=True`` from Python, ``--append`` in a shell.

    Errors name what was given in the caller's own words; the command line
    says it is the caller with :func:`spelled_as_flags`.

    Examples
    --------
    >>> spell("append"), spell("labels")
    ('append=True', 'labels=True')
    >>> with spelled_as_flags():
    ...     spell("append"), spell("store"), spell("sample_size")
    ('--append', '-o OUT.zarr', '--sample')
    """
    flags = _ON_COMMAND_LINE.get()
    if name in _RUN_KEYWORDS:
        return _RUN_KEYWORDS[name][flags]
    option = _BY_NAME.get(name)
    if flags and option is not None and option.flag:
        return option.flag
    return f"{name}=True" if option is not None and option.action == "store_true" else f"{name}="


@contextlib.contextmanager
def spelled_as_flags():
    """While the block runs, :func:`spell` gives command-line flags: the command line's errors name them."""
    token = _ON_COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _ON_COMMAND_LINE.reset(token)
