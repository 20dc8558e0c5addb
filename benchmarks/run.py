"""Benchmark: palette_dask against the tutorial's recipe, naive dask-ml and a plain read, in one run.

Each contender runs as a whole process on the same PNG mosaic built from
scikit-image's photos; the harness reports wall time as a ratio to the
tutorial's recipe, the peak memory of the whole process tree (sampled from
/proc), and each palette's inertia over all pixels relative to scikit-learn's.

    .venv/bin/python benchmarks/run.py --megapixels 4 [--write benchmarks/RESULTS.md]

Not part of ``make test``: it takes minutes and wants a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage
from measure import emit, timed
from PIL import Image

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "logo.png")

TUTORIAL = """
import sys, numpy as np
from skimage import io
from sklearn.cluster import KMeans
img = io.imread(sys.argv[1])
img = img.reshape((img.shape[0] * img.shape[1], img.shape[2]))
clt = KMeans(n_clusters=5).fit(img)
hist, _ = np.histogram(clt.labels_, bins=np.arange(0, 6))
hist = hist.astype("float") / hist.sum()
np.save(sys.argv[2], clt.cluster_centers_)
"""

NAIVE_DASK_ML = """
import sys
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster
from skimage import io
from dask_ml.cluster import KMeans
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster, Client(cluster):
        img = io.imread(sys.argv[1])
        pixels = da.from_array(img.reshape(-1, img.shape[2]).astype(np.float32), chunks=(1_000_000, 3))
        model = KMeans(n_clusters=5).fit(pixels)
        labels = model.predict(pixels)
        hist = np.bincount(labels.compute(), minlength=5) / labels.shape[0]
        np.save(sys.argv[2], model.cluster_centers_)
"""

READ_ONLY = """
import sys
from skimage import io
io.imread(sys.argv[1]).sum()
"""


def build_mosaic(path: Path, megapixels: float) -> np.ndarray:
    """Tile the photos (RGB, alpha dropped) into a square PNG of about ``megapixels``."""
    data = Path(skimage.__file__).parent / "data"
    tiles = [np.asarray(Image.open(data / name).convert("RGB").resize((400, 400))) for name in PHOTOS]
    side = int(np.sqrt(megapixels * 1e6) // 400)
    grid = [[tiles[(i * side + j) % len(tiles)] for j in range(side)] for i in range(side)]
    mosaic = np.vstack([np.hstack(row) for row in grid])
    Image.fromarray(mosaic).save(path)
    return mosaic


def inertia(pixels: np.ndarray, centers: np.ndarray) -> float:
    from palette_dask.fit import nearest_center

    return float(nearest_center(pixels, centers)[1].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=4.0)
    parser.add_argument("--write", metavar="RESULTS.md", help="append the table to this file")
    parser.add_argument("--skip-naive", action="store_true", help="leave out naive dask-ml (the slowest)")
    args = parser.parse_args()
    python = sys.executable
    cli = str(Path(python).parent / "palette-dask")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mosaic = build_mosaic(tmp / "mosaic.png", args.megapixels)
        pixels = mosaic.reshape(-1, 3).astype(np.float64)
        runs = {}
        runs["read pass (floor)"] = timed([python, "-c", READ_ONLY, str(tmp / "mosaic.png")])
        runs["tutorial (scikit-learn)"] = timed(
            [python, "-c", TUTORIAL, str(tmp / "mosaic.png"), str(tmp / "sk.npy")]
        )
        if not args.skip_naive:
            runs["dask-ml KMeans on all pixels (naive)"] = timed(
                [python, "-c", NAIVE_DASK_ML, str(tmp / "mosaic.png"), str(tmp / "naive.npy")]
            )
        runs["palette_dask"] = timed(
            [cli, "run", str(tmp / "mosaic.png"), "-o", str(tmp / "out.zarr"), "--json", "-q"]
        )
        reference = inertia(pixels, np.load(tmp / "sk.npy"))
        ours = json.loads(runs["palette_dask"][2])
        ours_inertia = inertia(pixels, np.array([entry["rgb"] for entry in ours["palette"]]))
        naive = (tmp / "naive.npy").exists() and inertia(pixels, np.load(tmp / "naive.npy"))
    base = runs["tutorial (scikit-learn)"][0]
    ours_seconds = runs["palette_dask"][0]
    rows = [
        f"| {name} | {seconds:.1f} | {base / seconds:.2f}x | {seconds / ours_seconds:.2f}x | {peak / 2**20:.0f} |"
        for name, (seconds, peak, _) in runs.items()
    ]
    height, width = mosaic.shape[:2]
    command = f".venv/bin/python benchmarks/run.py --megapixels {args.megapixels:g}"
    lines = [
        f"\n### PNG mosaic, {width}x{height} ({width * height / 1e6:.1f} MP), k=5\n",
        f"`{command}` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n",
        "| contender | seconds | speed vs tutorial | time vs palette_dask | peak RSS of process tree (MiB) |",
        "|---|---|---|---|---|",
        *rows,
        f"\nInertia over all pixels, relative to scikit-learn's: palette_dask {ours_inertia / reference:.4f}"
        + (f", naive dask-ml {naive / reference:.4f}" if naive else "")
        + "\n",
    ]
    table = "\n".join(lines)
    emit(table, args.write)


if __name__ == "__main__":
    main()
