"""Benchmark: how the palette's inertia approaches scikit-learn's as the sample grows.

palette_dask fits its palette on a uniform sample of the valid pixels and
then counts every pixel. This script draws samples of several sizes from the
16 MP PNG mosaic of benchmarks/run.py, fits each with several seeds, and
reports the inertia over all pixels relative to scikit-learn ``KMeans``
(3 starts) fitted on all pixels, with the time of the fit; the default
``sample_size`` is chosen from this curve.

    .venv/bin/python benchmarks/sample_size.py [--megapixels 16] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from measure import emit
from run import build_png
from sklearn.cluster import KMeans

from palette_dask import connect, draw_sample, fit_palette, nearest_center, pixel_spec, probe, read_image

SIZES = (3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
SEEDS = (0, 1, 2, 3)
K = 5


def inertia(pixels: np.ndarray, centers: np.ndarray) -> float:
    return float(nearest_center(pixels, centers)[1].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=16.0)
    parser.add_argument("--dir", default="/tmp/palette-dask-bench")
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()
    path = Path(args.dir) / f"mosaic-{args.megapixels:g}mp.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        build_png(path, args.megapixels)
    info = probe(str(path))
    image, spec = read_image(info), pixel_spec(info)
    pixels = image.compute().reshape(-1, 3).astype(np.float32)
    start = time.perf_counter()
    reference = inertia(pixels, KMeans(n_clusters=K, n_init=3, random_state=0).fit(pixels).cluster_centers_)
    print(f"scikit-learn on all pixels: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    results = {}
    with connect(processes=False, dashboard_address="127.0.0.1:0"):
        for size in SIZES:
            sums, seconds = [], []
            for seed in SEEDS:
                sample = draw_sample([image], [spec], size, seed=seed)
                start = time.perf_counter()
                fitted = fit_palette(sample, K, random_state=seed)
                seconds.append(time.perf_counter() - start)
                sums.append(inertia(pixels, fitted.centers))
            results[size] = (np.array(sums), np.median(seconds))
            print(size, np.array(sums) / reference, file=sys.stderr)
    best = min(reference, *(sums.min() for sums, _ in results.values()))
    rows = [
        f"| {size:,} | {np.mean(sums) / reference:.4f} | {sums.max() / reference:.4f} "
        f"| {np.mean(sums) / best:.4f} | {sums.max() / best:.4f} | {seconds:.2f} |"
        for size, (sums, seconds) in results.items()
    ]
    height, width = info.shape[:2]
    lines = [
        f"\n### Sample size vs palette quality, {width}x{height} PNG mosaic ({width * height / 1e6:.1f} MP), k={K}\n",
        f"`.venv/bin/python benchmarks/sample_size.py --megapixels {args.megapixels:g}` on {os.cpu_count()} "
        f"cores, {time.strftime('%Y-%m-%d')}; seeds {', '.join(map(str, SEEDS))}\n",
        "| sample (pixels) | inertia / scikit-learn's, mean | worst | / best known, mean | worst "
        "| fit seconds (median) |",
        "|---|---|---|---|---|---|",
        *rows,
        f"\nInertia over all pixels; scikit-learn `KMeans(n_init=3)` fitted on all of them "
        f"(best known: the lowest of every fit here, scikit-learn's = {reference / best:.4f} of it).\n",
    ]
    emit("\n".join(lines), args.write)


if __name__ == "__main__":
    main()
