"""Choose k: fit the sample for a range of k, draw the inertia curve, suggest its elbow.

The tutorial picks k=5 (and tries 10) by eye. :func:`fit_sweep` fits the same
sample for every k (each fit as :func:`~palette_dask.kernels.fit.fit_palette` does
it), and :func:`suggest_k` takes the elbow of the inertia curve: the k whose
point lies farthest below the straight line from the first point to the last,
both axes scaled to 0–1 (the "kneedle" rule). Beyond it, another colour buys
little.

Examples
--------
>>> suggest_k([2, 3, 4, 5, 6], [100.0, 40.0, 20.0, 17.0, 15.0])
3
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..constants import DEFAULT_N_INIT
from ..errors import PaletteDaskWarning
from ..kernels.fit import fit_palette

__all__ = ["Sweep", "fit_sweep", "suggest_k", "sweep_figure"]


@dataclass(frozen=True)
class Sweep:
    """Inertia of the sample for each k, and the suggested k.

    Attributes
    ----------
    ks : list of int
    inertias : list of float
        Sum of squared distances of the sample's pixels to their nearest
        centre, in the clustering ``space``, for each k.
    colours : list of int
        Colours each fit found (smaller than k when the sample has fewer distinct colours).
    suggested : int
    sample_size : int
    space : str
    failures : list of Failure
        Images left out of the sample, why, and whether on a transient fault.
    """

    ks: list[int]
    inertias: list[float]
    colours: list[int]
    suggested: int
    sample_size: int
    space: str = "rgb"
    failures: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON document of ``palette-dask sweep --json``."""
        return {
            "ks": self.ks,
            "inertia": self.inertias,
            "colours": self.colours,
            "suggested_k": self.suggested,
            "sample_size": self.sample_size,
            "space": self.space,
            "failures": [
                {"image": f.image, "error": f.reason, "transient": f.transient} for f in self.failures
            ],
        }


def suggest_k(ks, inertias) -> int:
    """The elbow of a decreasing inertia curve: farthest below the chord from its first to its last point."""
    ks = np.asarray(ks, dtype=np.float64)
    y = np.asarray(inertias, dtype=np.float64)
    if len(ks) < 3 or y.max() == y.min():
        return int(ks[0])
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    y = (y - y.min()) / (y.max() - y.min())
    below_chord = (1.0 - x) - y
    return int(ks[int(np.argmax(below_chord))])


def fit_sweep(
    sample,
    ks,
    *,
    seed: int = 0,
    space: str = "rgb",
    failures: list | None = None,
    n_init: int = DEFAULT_N_INIT,
) -> Sweep:
    """Fit ``sample`` for each k in ``ks`` (the sample as :func:`~palette_dask.kernels.fit.fit_palette`'s)."""
    ks = sorted(int(k) for k in ks)
    inertias, colours = [], []
    for k in ks:
        with warnings.catch_warnings():  # fewer distinct colours than k: recorded in `colours`
            warnings.simplefilter("ignore", PaletteDaskWarning)
            fitted = fit_palette(sample, k, random_state=seed, n_init=n_init)
        inertias.append(float(fitted.sample_inertia))
        colours.append(len(fitted.centers))
    return Sweep(
        ks, inertias, colours, suggest_k(ks, inertias), int(len(sample)), space, list(failures or [])
    )


def sweep_figure(sweep: Sweep, path: str | os.PathLike | None = None):
    """The inertia curve with the suggested k marked; saved as PNG when ``path`` is given."""
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend and figures are left alone

    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
    axes.plot(sweep.ks, sweep.inertias, "o-", color="#3b6ea5")
    chosen = sweep.ks.index(sweep.suggested)
    axes.plot([sweep.suggested], [sweep.inertias[chosen]], "o", color="#d1495b", markersize=12, zorder=3)
    axes.annotate(
        f"suggested k={sweep.suggested}",
        (sweep.suggested, sweep.inertias[chosen]),
        textcoords="offset points",
        xytext=(12, 12),
        color="#d1495b",
    )
    axes.set_xlabel("k (colours)")
    axes.set_ylabel(f"inertia of the sample ({sweep.space})")
    axes.set_title(f"Choosing k: {sweep.sample_size:,} sampled pixels")
    axes.set_xticks(sweep.ks)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, format="png")
    return figure
