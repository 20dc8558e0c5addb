"""Progress: what a long run is doing, on stderr.

On a terminal a live bar is redrawn in place as images finish; elsewhere (a
batch job's log) a plain line is written when a stage starts, every
``interval`` seconds while it runs, and when it ends. The CLI passes nothing
at all with ``--json`` or ``-q``.

Examples
--------
>>> import io
>>> stream = io.StringIO()
>>> progress = Progress(stream, live=False)
>>> progress("fitting k=5 colours")
>>> progress.update("counting", 2, 2)
>>> print(stream.getvalue(), end="")
palette-dask: fitting k=5 colours
palette-dask: counting: 2/2 images
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..errors import plural

__all__ = ["Progress"]


class Progress:
    """Reporter for :func:`~palette_dask.extract_palette`: call it with a line, ``update`` it with counts."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        interval: float = 10.0,
        width: int = 30,
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval, self.width = interval, width
        self._last = 0.0
        self._stage = None  # the stage of the last update
        self._line = None  # the last line written: not written again (a batch with nothing to count)
        self._open = False  # a live bar is on the current line

    def __call__(self, message: str) -> None:
        """Write one line (a stage starting, an image failing...)."""
        self._close_bar()
        self._line = None
        self.stream.write(f"palette-dask: {message}\n")
        self.stream.flush()

    def update(self, stage: str, done: int, total: int) -> None:
        """``done`` of ``total`` images have finished ``stage``."""
        now, line = time.monotonic(), (stage, done, total)
        if line == self._line:  # nothing new since the last line (a batch with nothing to count)
            return
        if self.live:
            filled = self.width * done // max(total, 1)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\rpalette-dask: {stage} [{bar}] {done:,}/{plural(total, 'image')}")
            self._open, self._line = True, line
            if done >= total:
                self._close_bar()
            self.stream.flush()
        elif done >= total or stage != self._stage or now - self._last >= self.interval:
            self.stream.write(f"palette-dask: {stage}: {done:,}/{plural(total, 'image')}\n")
            self.stream.flush()
            self._last, self._line = now, line
        self._stage = stage

    def _close_bar(self) -> None:
        if self._open:
            self.stream.write("\n")
            self._open = False
