"""Names: each palette colour's nearest name in a vocabulary of named colours, by CIEDE2000.

The default vocabulary is the 148 named colours of the CSS Color Module
(``tomato``, ``steelblue``...), as museum collections use to make object
colours searchable; any other comes from a text file holding a name and a
hex code per line (``name, #rrggbb``; blank lines and ``#`` comments left out).

Examples
--------
>>> colour_names(np.array([[250, 128, 114], [70, 130, 181]], np.uint8))
['salmon', 'steelblue']
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import numpy as np

from .colour import delta_e00, hex_rgb
from .errors import ParameterError

__all__ = ["css_colours", "read_vocabulary", "colour_names"]

_LINE = re.compile(r"^\s*(?P<name>.+?)\s*[,;\t ]\s*#?(?P<hex>[0-9a-fA-F]{6})\s*$")


@functools.cache
def css_colours() -> dict[str, str]:
    """The CSS Color Module's 148 named colours, ``{name: "#rrggbb"}`` (synonyms such as gray/grey too)."""
    from matplotlib.colors import CSS4_COLORS

    return {name: code.lower() for name, code in sorted(CSS4_COLORS.items())}


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
    """The name of the nearest vocabulary colour (CIEDE2000) to each 8-bit sRGB colour of ``colors``."""
    vocabulary = vocabulary or css_colours()
    if not len(np.asarray(colors).reshape(-1, 3)):
        return []
    names = list(vocabulary)
    distances = delta_e00(colors, [hex_rgb(code) for code in vocabulary.values()])
    return [names[i] for i in np.argmin(distances, axis=1)]
