"""Benchmark: the counting kernel's ns a pixel on one core (issue 34, "Counting in cache").

On a realistic mosaic (16 different scikit-image images, 5 of them grey, anti-aliased to 1024², 4x4: 16 MP)
and a periodic layout (tiles of 8 pixels from 9 photos, a period of 24: 16 MP), k=8 in CIELAB,
8-bit RGB with no alpha: the tables of every colour (``block_stats(lookup=True)``: labels and
counts from the 16 MB table of labels, the errors of 1 pixel in 32), the same with a
label raster written, the former 16-byte records looked up for every pixel (the loop as it was
before issue 34, copied here), the computed loop (``lookup=False``), and two floors: a compiled
loop that only reads the pixels (the sum of their bytes) and ``numpy.bincount`` of the uint32 keys.
Each is timed ``--repeats`` times, the kernels alternated (so each starts with caches the others
filled, as a counting task's blocks do after decoding), then the two table kernels
``--repeats`` times in a row (their tables in cache), on one core (numba's loops and
numpy's bincount are single-threaded); the medians are printed as a Markdown table, with the
estimated errors' distance from the exact ones.

    .venv/bin/python benchmarks/count_kernel.py [--repeats 5] [--side 4096]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numba
import numpy as np
import skimage
from PIL import Image

from palette_dask.kernels import count
from palette_dask.kernels.pixels import PixelSpec

PHOTOS = [
    "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "ihc.png", "hubble_deep_field.jpg",
    "camera.png", "motorcycle_left.png", "retina.jpg", "motorcycle_right.png", "logo.png", "page.png",
    "coins.png", "moon.png", "text.png", "color.png",
]  # fmt: skip


def photo(name: str, side: int) -> np.ndarray:
    """One scikit-image photo as RGB, anti-aliased to ``side``² (Lanczos)."""
    image = Image.open(Path(skimage.__file__).parent / "data" / name).convert("RGB")
    return np.asarray(image.resize((side, side), Image.Resampling.LANCZOS))


def mosaics(side: int) -> dict[str, np.ndarray]:
    """``{name: (side, side, 3) uint8}``: 16 different photos 4x4, and a periodic layout of 8-pixel tiles."""
    tile = side // 4
    photos = [photo(name, tile) for name in PHOTOS]
    grid = np.vstack([np.hstack(photos[row * 4 : row * 4 + 4]) for row in range(4)])
    small = [photo(name, 8) for name in PHOTOS[:9]]
    n = side // 8
    periodic = np.vstack([np.hstack([small[(i % 3) * 3 + j % 3] for j in range(n)]) for i in range(n)])
    return {"photo mosaic": np.ascontiguousarray(grid), "periodic (8-pixel tiles, period 24)": periodic}


@numba.njit(nogil=True, cache=True)
def records_loop(pixels, k, lookup):
    """The loop before issue 34: the 16-byte record of every pixel's colour (as ``_count_by_lookup`` was)."""
    counts = np.zeros(k, dtype=np.int64)
    squared = np.zeros(k, dtype=np.float64)
    masked = 0
    lab_error = 0.0
    for i in range(pixels.shape[0]):
        key = (np.int32(pixels[i, 0]) << 16) | (np.int32(pixels[i, 1]) << 8)
        entry = lookup[key | np.int32(pixels[i, 2])]
        best = entry.label
        if best < 0:
            masked += 1
            continue
        counts[best] += 1
        squared[best] += entry.squared
        lab_error += np.float64(entry.lab)
    return counts, squared, masked, lab_error


@numba.njit(nogil=True, cache=True)
def read_only(pixels):
    """The floor: every byte read once, summed."""
    total = 0
    for i in range(pixels.shape[0]):
        total += pixels[i, 0] + pixels[i, 1] + pixels[i, 2]
    return total


def kernels_of(image, pixels, keys, labels, spec, centers, records) -> dict:
    """``{label: callable}``: each kernel timed, on one image."""
    return {
        "tables (labels, errors of 1 in 32)": lambda: count.block_stats(image, spec, centers, lookup=True),
        "tables, label raster written": lambda: count.block_stats(
            image, spec, centers, lookup=True, labels_out=labels
        ),
        "16-byte records, every pixel (before)": lambda: records_loop(pixels, 8, records),
        "computed loop (the strict twin)": lambda: count.block_stats(image, spec, centers),
        "floor: read the pixels (sum of bytes)": lambda: read_only(pixels),
        "floor: numpy.bincount of uint32 keys": lambda: np.bincount(keys, minlength=2**24),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--side", type=int, default=4096)
    args = parser.parse_args(argv)
    spec = PixelSpec(bands=(0, 1, 2), low=(0, 0, 0), high=(255, 255, 255), space="lab")
    centers = (np.random.default_rng(0).random((8, 3)) * [100, 80, 80] - [0, 40, 40]).astype(np.float32)
    tables_built = time.perf_counter()
    records, *_ = count.colour_lookup(count.loop_palette(spec, centers))
    tables_built = time.perf_counter() - tables_built
    print(f"tables of every colour built in {tables_built:.2f} s (with numba's compilation on a first run)")
    rows = []
    for name, image in mosaics(args.side).items():
        pixels = image.reshape(-1, 3)
        keys = (pixels[:, 0].astype(np.uint32) << 16) | (pixels[:, 1].astype(np.uint32) << 8) | pixels[:, 2]
        labels = np.zeros(image.shape[:2], np.uint8)
        kernels = kernels_of(image, pixels, keys, labels, spec, centers, records)
        for kernel in kernels.values():  # compiled, tables warm
            kernel()
        times = {label: [] for label in kernels}
        for _ in range(args.repeats):  # alternated
            for label, kernel in kernels.items():
                start = time.perf_counter()
                kernel()
                times[label].append(time.perf_counter() - start)
        for label in ("tables (labels, errors of 1 in 32)", "16-byte records, every pixel (before)"):
            kernel, warm = kernels[label], []
            for _ in range(args.repeats):  # one after the other: its tables stay in the caches
                start = time.perf_counter()
                kernel()
                warm.append(time.perf_counter() - start)
            times[label + ", caches warm"] = warm
        fast, exact = (count.block_stats(image, spec, centers, lookup=lookup) for lookup in (True, False))
        squared_off = fast[8:16].sum() / exact[8:16].sum() - 1
        lab_off = fast[17] / exact[17] - 1
        for label, seconds in times.items():
            rows.append((name, label, np.median(seconds) / len(pixels) * 1e9, min(seconds) / len(pixels) * 1e9))
        print(
            f"{name}: errors estimated from {int(fast[18]):,} of {int(exact[18]):,} pixels: "
            f"inertia {squared_off:+.3%}, CIELAB error {lab_off:+.3%} of the exact; counts equal: "
            f"{fast[:8].tolist() == exact[:8].tolist()}"
        )
    print(f"\n| layout ({args.side}², k=8, lab) | kernel | ns a pixel, median of {args.repeats} | fastest |")
    print("|---|---|---|---|")
    for name, label, median, fastest in rows:
        print(f"| {name} | {label} | {median:.2f} | {fastest:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
