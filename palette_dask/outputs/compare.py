"""Compare: one palette's colours across stores (dates of a scene, slides of a study, years of a collection).

The stores must share their palette, colour for colour by id: the first
store's, applied to the others with ``--palette``. Each colour's share of the
valid pixels of every store, and its change from the first store to the last.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from ..errors import ParameterError
from .result import PaletteResult

__all__ = ["compare_results", "write_comparison"]


def compare_results(results: list[PaletteResult], names: list[str]) -> dict:
    """Per colour id: its hex code, name, share and pixels in each store, and the last share minus the first.

    Raises
    ------
    ParameterError
        When a store's palette is not the first's (another number of colours,
        space, or colour for an id).
    """
    first = results[0]
    for name, result in zip(names[1:], results[1:]):
        same = result.k == first.k and result.attrs.get("space") == first.attrs.get("space")
        if not (same and np.array_equal(result.colors, first.colors)):
            raise ParameterError(
                f"{name}: its palette is not that of {names[0]}; apply one to both "
                f"(palette-dask run ... --palette {names[0]})"
            )
    shares = np.array([result.proportions for result in results])  # (stores, k)
    entries = sorted(first.palette(), key=lambda entry: entry["id"])
    return {
        "stores": list(names),
        "palette": [
            {
                "id": entry["id"],
                "hex": entry["hex"],
                "name": entry["name"],
                "shares": [float(s) for s in shares[:, entry["id"] - 1]],
                "counts": [int(result.counts[entry["id"] - 1]) for result in results],
                "change": float(shares[-1, entry["id"] - 1] - shares[0, entry["id"] - 1]),
            }
            for entry in entries
        ],
    }


def write_comparison(comparison: dict, path: str | os.PathLike) -> None:
    """The comparison as CSV: ``id, hex, name``, a share per store (named by its path), ``change``."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "hex", "name", *comparison["stores"], "change"])
        for entry in comparison["palette"]:
            shares = [f"{share:.6f}" for share in entry["shares"]]
            writer.writerow([entry["id"], entry["hex"], entry["name"], *shares, f"{entry['change']:.6f}"])
