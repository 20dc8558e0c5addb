"""Benchmark: colour search over a store of a million images.

The store is built once (``--dir``) with palette_dask's own store functions,
as a run over a million images would leave it: batches of 8,192 images (one
chunk each), a palette of k=8 colours, per-image histograms drawn at random
(each image mostly two or three colours). Timed:

- ``search_store`` in this process (the store's reads and the arithmetic),
  for the 20 images with the largest shares and for every image found;
- ``palette-dask search STORE --colour ... --top 20`` as a whole command.

    .venv/bin/python benchmarks/search.py [--images 1000000] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from measure import emit

K = 8


def build(path: Path, images: int) -> None:
    from palette_dask.outputs.store import DONE, create_store, default_batch_size, finish_store, write_palette

    if path.exists():
        return
    print(f"building a store of {images:,} images...", file=sys.stderr)
    names = [f"/data/photos/{i // 1000:04d}/img{i:07d}.jpg" for i in range(images)]
    group = create_store(
        path, names, attrs={"parameters": {"k": K}}, batch_size=min(8192, default_batch_size(images))
    )
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (K, 3)).astype(np.float32)
    palette[0] = [199, 76, 50]  # the colour searched for
    write_palette(group, palette)
    batch = group["image_status"].chunks[0]
    for start in range(0, images, batch):
        n = min(batch, images - start)
        weights = rng.dirichlet(np.full(K, 0.3), size=n)
        valid = rng.integers(5_000, 50_000, n)
        counts = np.floor(weights * valid[:, None]).astype(np.int64)
        group["image_counts"][start : start + n] = counts
        group["image_valid"][start : start + n] = counts.sum(axis=1)
        group["image_status"][start : start + n] = DONE
    finish_store(group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--dir", default="/tmp/palette-dask-search")
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()

    from palette_dask.outputs.search import parse_colour, search_store

    path = Path(args.dir) / f"store-{args.images}.zarr"
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    build(path, args.images)
    files = sum(1 for p in path.rglob("*") if p.is_file())
    timings = {}
    for top in (20, None):
        for _ in range(3):
            start = time.perf_counter()
            near, matches, _ = search_store(path, parse_colour("#c74c32"), min_share=0.2, top=top)
            timings[top] = min(timings.get(top, 1e9), time.perf_counter() - start)
    command = [
        sys.executable,
        "-m",
        "palette_dask.cli",
        "search",
        str(path),
        "--colour",
        "#c74c32",
        "--top",
        "20",
    ]
    wall = []
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall.append(time.perf_counter() - start)
        assert done.returncode == 0, done.stderr
    table = (
        f"\n### Colour search over {args.images:,} images (issue 16)\n\n"
        f"`.venv/bin/python benchmarks/search.py --images {args.images}` on 2 cores, {time.strftime('%Y-%m-%d')}. "
        f"A store of {args.images:,} images as a run leaves it ({files} files, batches of "
        f"{min(8192, args.images)} images), k={K}; `--colour '#c74c32'` (colour ids within ΔE00 10: {near}), "
        f"`--min-share 0.2`: {len(matches):,} images found. Best of 3.\n\n"
        "| what | seconds |\n|---|---|\n"
        f"| `search_store(..., top=20)` (in this process) | {timings[20]:.2f} |\n"
        f"| `search_store(...)`, every image found, names read (in this process) | {timings[None]:.2f} |\n"
        f"| `palette-dask search ... --top 20` (whole command) | {min(wall):.2f} |\n"
    )
    emit(table, args.write)


if __name__ == "__main__":
    main()
