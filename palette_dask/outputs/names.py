"""Names: each palette colour's nearest name in a vocabulary of named colours, by CIEDE2000.

The default vocabulary is the 148 named colours of the CSS Color Module
(``tomato``, ``steelblue``...: :func:`~palette_dask.constants.css_colours`),
as museum collections use to make object colours searchable; any other
comes from a text file holding a name and a hex code per line
(``name, #rrggbb``; blank lines and ``#`` comments left out).

The names of one palette are distinct: colours whose nearest name is the
same share it out by difference (the nearest takes it, the next its own next
nearest name), and each name comes with its CIEDE2000 difference, so a
colour far from every name (more than :data:`FAR`) can be shown as only near it.
A colour a vocabulary names twice is one name in a palette, its first: CSS's
twin spellings (``darkslategray``/``darkslategrey``, ``gray``/``grey``...),
both in CSS Color 4, are named by their ``gray`` spelling (and ``aqua``,
``fuchsia`` before ``cyan``, ``magenta``), so two entries never get the same
colour spelled twice; ``--exclude`` and ``search`` still take either spelling.

Examples
--------
>>> colour_names(np.array([[250, 128, 114], [70, 130, 181]], np.uint8))
['salmon', 'steelblue']
>>> [(name, round(difference, 1)) for name, difference in named_colours([[160, 82, 45], [150, 80, 40]])]
[('sienna', 0.0), ('saddlebrown', 4.5)]
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..constants import css_colours
from ..errors import ParameterError
from ..kernels.colour import delta_e00, hex_rgb

__all__ = ["read_vocabulary", "colour_names", "named_colours", "FAR"]

#: A colour farther than this CIEDE2000 difference from its name is only near it (shown ``~name``):
#: 10 is a difference anyone sees at a glance.
FAR = 10.0
# name, then a comma, semicolon or tab and the hex code (# optional), or a space and #rrggbb:
# "brick red, #c74c32", "night\t101020", "sea green #2e8b57"; not "a decade" (a name alone)
_LINE = re.compile(r"^\s*(?P<name>.+?)\s*(?:[,;\t]\s*#?|\s#)(?P<hex>[0-9a-fA-F]{6})\s*$")


def read_vocabulary(path: str | os.PathLike) -> dict[str, str]:
    """A vocabulary file as ``{name: "#rrggbb"}``: a name and a hex code per line.

    Raises
    ------
    ParameterError
        Naming the file and line that is not ``name, #rrggbb``, or an empty file.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read the colour names: {exc}") from None
    vocabulary = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):  # a blank line or a comment
            continue
        match = _LINE.match(line)
        if match is None:
            raise ParameterError(
                f"{path}:{number}: expected a name and a hex code (name, #rrggbb), got {line!r}"
            )
        vocabulary[match["name"]] = "#" + match["hex"].lower()
    if not vocabulary:
        raise ParameterError(f"{path}: holds no colour names (lines of: name, #rrggbb)")
    return vocabulary


def colour_names(colors, vocabulary: dict[str, str] | None = None) -> list[str]:
    """The names of :func:`named_colours`, alone."""
    return [name for name, _ in named_colours(colors, vocabulary)]


def named_colours(colors, vocabulary: dict[str, str] | None = None) -> list[tuple[str, float]]:
    """Each 8-bit sRGB colour's name in the vocabulary, distinct, and its CIEDE2000 difference to it.

    Pairs of (colour, name) are taken in order of difference, each colour and
    each name once: a colour takes its nearest name unless a nearer colour
    took it first. Names of the same code are one name, the vocabulary's
    first (CSS's sorted names: ``gray`` before ``grey``). A palette with more
    colours than names numbers the rest (``"red 2"``).

    Examples
    --------
    >>> colour_names(np.array([[128, 128, 128], [128, 128, 128], [47, 79, 79]], np.uint8))
    ['gray', 'slategray', 'darkslategray']
    """
    named = {}  # code → its first name: one colour, one name
    for name, code in (vocabulary or css_colours()).items():
        named.setdefault(code.lower(), name)
    colors = np.asarray(colors).reshape(-1, 3)
    if not len(colors):
        return []
    names = list(named.values())
    distances = delta_e00(colors, [hex_rgb(code) for code in named])
    found: dict[int, tuple[str, float]] = {}
    uses = [0] * len(names)
    free = distances.copy()
    while len(found) < len(colors):
        if np.isinf(free).all():  # every name taken: the names again, numbered
            free = distances.copy()
            free[list(found)] = np.inf
        colour, name = (int(i) for i in np.unravel_index(np.argmin(free), free.shape))
        uses[name] += 1
        shown = names[name] + (f" {uses[name]}" if uses[name] > 1 else "")
        found[colour] = (shown, float(distances[colour, name]))
        free[colour, :], free[:, name] = np.inf, np.inf
    return [found[i] for i in range(len(colors))]
