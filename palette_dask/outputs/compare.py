"""Compare: one palette's colours across stores (dates of a scene, slides of a study, years of a collection).

The stores must share their palette, colour for colour by id: the first
store's, applied to the others with ``--palette``. Each colour's share of the
valid pixels of every store, and its change from the first store to the last.

One store whose images declare their dates (STAC items, ``image_datetime``)
already holds one palette for all of them: :func:`compare_dates` compares its
days, each the images of that day taken together, in date order.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from ..errors import ParameterError, Status
from .result import PaletteResult

__all__ = ["compare_results", "compare_dates", "write_comparison"]


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
    counts = np.array([result.counts for result in results])  # (stores, k)
    return {"stores": list(names), **_comparison(first, list(names), counts)}


def compare_dates(result: PaletteResult, name: str) -> dict:
    """Per colour id, as :func:`compare_results`, over the days of one store's images (``image_datetime``).

    A day is the date part of an image's datetime, as its input wrote it
    (``2024-06-01`` of ``2024-06-01T10:00:00Z``); its counts are those of
    its images that were counted, summed. ``"images"`` says how many each day holds.

    Raises
    ------
    ParameterError
        When the store's images declare fewer than two days.
    """
    declared = result.image_datetime or [""] * len(result.image_names)
    done = np.asarray(result.image_status) == Status.DONE
    days = sorted({when[:10] for when, counted in zip(declared, done) if when and counted})
    if len(days) < 2:
        found = f"one day ({days[0]})" if days else "no dates (image_datetime)"
        raise ParameterError(
            f"{name}: its images declare {found}; compare needs two or more dates in one store "
            "(STAC items), or two or more stores"
        )
    counts = np.zeros((len(days), result.k), np.int64)
    images = [0] * len(days)
    column = {day: i for i, day in enumerate(days)}
    for index, (when, counted) in enumerate(zip(declared, done)):
        if when and counted:
            day = column[when[:10]]
            counts[day] += np.asarray(result.image_counts[index], np.int64)
            images[day] += 1
    return {"store": name, "dates": days, "images": images, **_comparison(result, days, counts)}


def _comparison(first: PaletteResult, columns: list[str], counts: np.ndarray) -> dict:
    """``columns`` (their names) and ``palette``: each colour's share and pixels in each, and the change."""
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, np.float64), where=totals > 0)
    entries = sorted(first.palette(), key=lambda entry: entry["id"])
    return {
        "columns": list(columns),
        "palette": [
            {
                "id": entry["id"],
                "hex": entry["hex"],
                "name": entry["name"],
                "shares": [float(s) for s in shares[:, entry["id"] - 1]],
                "counts": [int(n) for n in counts[:, entry["id"] - 1]],
                "change": float(shares[-1, entry["id"] - 1] - shares[0, entry["id"] - 1]),
            }
            for entry in entries
        ],
    }


def write_comparison(comparison: dict, path: str | os.PathLike) -> None:
    """The comparison as CSV: ``id, hex, name``, a share per store (its path) or date, ``change``."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "hex", "name", *comparison["columns"], "change"])
        for entry in comparison["palette"]:
            shares = [f"{share:.6f}" for share in entry["shares"]]
            writer.writerow([entry["id"], entry["hex"], entry["name"], *shares, f"{entry['change']:.6f}"])
