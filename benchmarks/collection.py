"""Benchmark: a collection of many photos of mixed sizes and formats, in one command.

Builds ``--images`` files (PNG, JPEG and TIFF; 48 to 1024 pixels a side) cut
from scikit-image's photos, then times, as whole processes on the default
LocalCluster:

- one read-and-decode pass over every file (the floor), through the same
  lazy reader palette_dask uses,
- ``palette-dask run DIR`` end to end,

checks that every image's counts add up to its valid pixels and to the
global counts, and records images, megapixels, seconds, megapixels per second
and the peak memory of the whole process tree.

    .venv/bin/python benchmarks/collection.py --images 2000 --dir /tmp/collection [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import skimage
import tifffile
import zarr
from measure import emit, timed
from PIL import Image

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "logo.png", "motorcycle_left.png")

READ_PASS = """
import sys
import dask
from palette_dask import connect, probe, read_image, resolve_inputs
if __name__ == "__main__":
    with connect() as client:
        names = resolve_inputs(sys.argv[1])
        infos = client.gather(client.map(probe, names))
        sums = [read_image(info).sum(dtype="uint64") for info in infos]
        print(int(sum(dask.compute(*sums))))
"""


def build(folder: Path, count: int) -> float:
    """Write the collection; returns its megapixels."""
    data = Path(skimage.__file__).parent / "data"
    photos = [Image.open(data / name).convert("RGB") for name in PHOTOS]
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = 0
    for i in range(count):
        side = int(np.exp(rng.uniform(np.log(48), np.log(1024))))
        aspect = rng.uniform(0.6, 1.6)
        size = (side, max(16, int(side * aspect)))
        image = photos[i % len(photos)].resize(size)
        kind = ("png", "jpg", "jpg", "tif")[i % 4]
        path = folder / f"{i // 100:02d}" / f"img{i:05d}.{kind}"
        path.parent.mkdir(exist_ok=True)
        if kind == "tif":
            tifffile.imwrite(path, np.asarray(image), compression="zlib")
        else:
            image.save(path, quality=90) if kind == "jpg" else image.save(path)
        pixels += size[0] * size[1]
    (folder / "megapixels.txt").write_text(str(pixels / 1e6))
    return pixels / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--dir", default="/tmp/palette-dask-collection")
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()
    folder = Path(args.dir) / f"photos-{args.images}"
    if (folder / "megapixels.txt").exists():
        megapixels = float((folder / "megapixels.txt").read_text())
    else:
        print(f"building {args.images} images in {folder}...", file=sys.stderr)
        megapixels = build(folder, args.images)
    python = sys.executable
    cli = str(Path(python).parent / "palette-dask")
    read_seconds, read_peak, _ = timed([python, "-c", READ_PASS, str(folder)], ok=(0,))
    store = Path(args.dir) / "out.zarr"
    seconds, peak, document = timed(
        [cli, "run", str(folder), "-o", str(store), "--overwrite", "--json", "-q"]
    )
    result = json.loads(document)
    group = zarr.open_group(store, mode="r")
    rows = group["image_counts"][:]
    assert result["images"] == {"total": args.images, "done": args.images, "failed": 0}, result["images"]
    assert (rows.sum(axis=1) == group["image_valid"][:]).all() and (
        rows.sum(axis=0) == group["counts"][:]
    ).all()
    lines = [
        f"\n### Collection of {args.images:,} photos (PNG, JPEG, TIFF; 48-1024 px a side; {megapixels:,.0f} MP), k=5\n",
        f"`.venv/bin/python benchmarks/collection.py --images {args.images}` on {os.cpu_count()} cores, "
        f"default LocalCluster, {time.strftime('%Y-%m-%d')}\n",
        "| read-and-decode pass (s) | palette_dask (s) | ratio | MP/s | images/s | peak RSS, read pass (MiB) "
        "| peak RSS, palette_dask (MiB) |",
        "|---|---|---|---|---|---|---|",
        f"| {read_seconds:.0f} | {seconds:.0f} | {seconds / read_seconds:.2f}x | {megapixels / seconds:.1f} "
        f"| {args.images / seconds:.0f} | {read_peak / 2**20:.0f} | {peak / 2**20:.0f} |",
        "\nEvery image's counts add up to its valid pixels, and the images' to the global counts (checked).\n",
    ]
    table = "\n".join(lines)
    emit(table, args.write)


if __name__ == "__main__":
    main()
