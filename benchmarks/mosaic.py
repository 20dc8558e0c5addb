"""Benchmark: a mosaic bigger than memory allows for one process, as zarr and as tiled BigTIFF.

Builds an RGB mosaic of scikit-image's photos (512-pixel tiles, each photo
flipped and shifted so that tiles differ) of ``--gigabytes`` of pixels, once
as a zarr v3 array and once as a tiled BigTIFF, without ever holding it in
memory; then times, as whole processes on the default LocalCluster:

- one plain read pass over every chunk (the floor),
- ``palette-dask run`` end to end,

and records wall time, the ratio to the read pass, megapixels per second
and the peak memory of the whole process tree (client, scheduler, workers).

    .venv/bin/python benchmarks/mosaic.py --gigabytes 4 --dir /tmp/mosaic [--write benchmarks/RESULTS.md]

The mosaics are kept in ``--dir`` and reused by later runs of the same size.
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
from measure import emit, timed
from PIL import Image

TILE = 512
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "logo.png")

READ_PASS = """
import sys
from palette_dask import connect, probe, read_image
if __name__ == "__main__":
    with connect() as client:
        image = read_image(probe(sys.argv[1]))
        print(int(image.sum(dtype="uint64").compute()))
"""


def tiles() -> list[np.ndarray]:
    data = Path(skimage.__file__).parent / "data"
    base = [np.asarray(Image.open(data / name).convert("RGB").resize((TILE, TILE))) for name in PHOTOS]
    return [np.roll(t[:, :: (-1) ** f], 37 * s, axis=1) for t in base for f in (0, 1) for s in range(3)]


def tile_at(row: int, col: int, bank: list[np.ndarray]) -> np.ndarray:
    return bank[(row * 7 + col * 3) % len(bank)]


def side_for(gigabytes: float) -> int:
    """Side of a square RGB uint8 mosaic of about ``gigabytes``, a whole number of zarr chunks."""
    return int(np.sqrt(gigabytes * 1e9 / 3) // (TILE * 2) + 1) * TILE * 2


def build_zarr(path: Path, side: int, bank) -> None:
    import zarr

    array = zarr.create_array(
        str(path), shape=(side, side, 3), chunks=(TILE * 2, TILE * 2, 3), dtype="uint8", overwrite=True
    )
    for r in range(0, side, TILE * 2):
        band = np.vstack(
            [
                np.hstack([tile_at(i, j, bank) for j in range(side // TILE)])
                for i in range(r // TILE, r // TILE + 2)
            ]
        )
        array[r : r + TILE * 2] = band


def build_tiff(path: Path, side: int, bank) -> None:
    import tifffile

    def all_tiles():
        for i in range(side // TILE):
            for j in range(side // TILE):
                yield tile_at(i, j, bank)

    tifffile.imwrite(
        path,
        all_tiles(),
        shape=(side, side, 3),
        dtype="uint8",
        tile=(TILE, TILE),
        photometric="rgb",
        compression="zlib",
        bigtiff=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=4.0)
    parser.add_argument("--dir", default="/tmp/palette-dask-mosaic")
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()
    side = side_for(args.gigabytes)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    bank = tiles()
    inputs = {"zarr": folder / f"mosaic-{side}.zarr", "tiled BigTIFF": folder / f"mosaic-{side}.tif"}
    for kind, path in inputs.items():
        if not path.exists():
            print(f"building the {kind} mosaic {side}x{side}...", file=sys.stderr)
            (build_zarr if kind == "zarr" else build_tiff)(path, side, bank)
    python = sys.executable
    cli = str(Path(python).parent / "palette-dask")
    megapixels = side * side / 1e6
    lines = [
        f"\n### Mosaic {side}x{side} RGB uint8 ({side * side * 3 / 1e9:.1f} GB of pixels, {megapixels:,.0f} MP), k=5\n",
        f"`.venv/bin/python benchmarks/mosaic.py --gigabytes {args.gigabytes:g}` on {os.cpu_count()} cores, "
        f"default LocalCluster, {time.strftime('%Y-%m-%d')}\n",
        "| input | read pass (s) | palette_dask (s) | ratio | MP/s | peak RSS, read pass (MiB) "
        "| peak RSS, palette_dask (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, path in inputs.items():
        read_seconds, read_peak, _ = timed([python, "-c", READ_PASS, str(path)], ok=(0,))
        out = folder / "out.zarr"
        seconds, peak, document = timed(
            [cli, "run", str(path), "-o", str(out), "--overwrite", "--json", "-q"]
        )
        result = json.loads(document)
        assert result["pixels"]["valid"] == side * side, result["pixels"]
        lines.append(
            f"| {kind} | {read_seconds:.0f} | {seconds:.0f} | {seconds / read_seconds:.2f}x "
            f"| {megapixels / seconds:.1f} | {read_peak / 2**20:.0f} | {peak / 2**20:.0f} |"
        )
        print(lines[-1], file=sys.stderr)
    table = "\n".join(lines) + "\n"
    emit(table, args.write)


if __name__ == "__main__":
    main()
