"""Benchmark: a mosaic bigger than one process should hold, against one plain read pass of it.

Two mosaics of RGB uint8 pixels, about ``--gigabytes`` each, built once into
``--dir`` as zarr v3 arrays (1024² chunks) and, with ``--tiff``, as tiled BigTIFFs
(512² deflate tiles), never whole in memory:

- **diverse**: seven different photos of scikit-image (astronaut, chelsea,
  coffee, hubble_deep_field, ihc, motorcycle_left, rocket), each resized with
  anti-aliasing (Lanczos) to a region of a 4 x 4 grid, some flipped: every
  region holds millions of distinct colours, as real scenes do;
- **repeated**: the older benchmark's mosaic, five photos at 512² repeated,
  flipped and shifted (few distinct colours: the counting caches hit often);
- **aligned**: four photos resized (Lanczos) to tiles the size of the
  chunks, 1024², in a 2 x 2 pattern: as tilers and scanners write mosaics,
  the layout on which a stratified share of the chunks can see one kind of tile.

For each, as whole processes on this machine:

- **floor**: one plain read pass, no palette_dask code: ``dask.array.from_zarr``
  (or tifffile's zarr store) summed on a LocalCluster like the default one;
- **palette_dask**: ``palette-dask run MOSAIC -k K`` end to end (default
  LocalCluster), with the peak memory of the whole process tree;
- with ``--passes``: the diverse zarr mosaic read once (the default for
  8-bit colours: its counts from the colour histogram its sampling pass
  gathers) against read twice (``ONE_READ_PASS`` off, as wider data are) and
  the floor, alternated, medians of ``--repeats``; and the same mosaic as
  uint16 (x 257: data wider than 8 bits, read twice) against its own floor;
- with ``--quality``: whole runs with the sample from every chunk (the
  default since issue 22) and from a quarter of them (``--sample-chunks
  0.25``, the default of issues 13 to 21), over four seeds: the time of each
  and the CIELAB error of each palette over all pixels.

    .venv/bin/python benchmarks/mosaic.py [--gigabytes 2] [-k 8] [--mosaics diverse,repeated,aligned] [--tiff] [--quality] [--write benchmarks/RESULTS.md]
    .venv/bin/python benchmarks/mosaic.py --passes [--repeats 3] [--gigabytes 2] [-k 8] [--write benchmarks/RESULTS.md]
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
from measure import alternated, emit, ratio_table, timed
from PIL import Image

CHUNK = 1024
TILE = 512
DIVERSE = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "rocket.jpg",
)
REPEATED = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "logo.png")

FLOOR = """
import sys
import dask.array as da
from distributed import Client, LocalCluster

if __name__ == "__main__":
    path = sys.argv[1]
    with LocalCluster(processes=False, dashboard_address=None) as cluster, Client(cluster):
        if path.endswith(".zarr"):
            array = da.from_zarr(path)
        else:
            import tifffile, zarr
            array = da.from_zarr(zarr.open_array(tifffile.imread(path, aszarr=True), mode="r"))
        print(int(array.sum(dtype="uint64").compute()))
"""

#: The command line with the two-pass path (the one-pass path's strict twin), as data wider than 8 bits run.
TWO_PASSES = (
    "import sys; from palette_dask.run import passes; passes.ONE_READ_PASS = False; "
    "from palette_dask.cli import main; sys.exit(main(sys.argv[1:]))"
)

#: Quality: a whole run with the sample from a share of the chunks (1: every chunk, the default).
SHARES = (1.0, 0.25)
SEEDS = (0, 1, 2, 3)


def _photo(name: str) -> Image.Image:
    return Image.open(Path(skimage.__file__).parent / "data" / name).convert("RGB")


def diverse_band(side: int, band: int) -> np.ndarray:
    """Rows ``band * side/4`` onwards of the diverse mosaic: four regions, each a photo resized to it."""
    region = side // 4
    out = np.empty((region, side, 3), np.uint8)
    for col in range(4):
        index = band * 4 + col
        photo = _photo(DIVERSE[index % len(DIVERSE)]).resize((region, region), Image.Resampling.LANCZOS)
        pixels = np.asarray(photo)
        out[:, col * region : (col + 1) * region] = pixels[:, ::-1] if index // len(DIVERSE) else pixels
    return out


def repeated_band(side: int, band: int) -> np.ndarray:
    """Rows ``band * CHUNK`` onwards of the repeated mosaic (512² photos, flipped and shifted)."""
    base = [np.asarray(_photo(name).resize((TILE, TILE))) for name in REPEATED]
    bank = [np.roll(t[:, :: (-1) ** f], 37 * s, axis=1) for t in base for f in (0, 1) for s in range(3)]
    rows = range(band * CHUNK // TILE, (band + 1) * CHUNK // TILE)
    return np.vstack(
        [np.hstack([bank[(i * 7 + j * 3) % len(bank)] for j in range(side // TILE)]) for i in rows]
    )


def aligned_band(side: int, band: int) -> np.ndarray:
    """Rows ``band * CHUNK`` onwards of the aligned mosaic: chunk-sized tiles of four photos, 2 x 2."""
    kinds = [
        np.asarray(_photo(name).resize((CHUNK, CHUNK), Image.Resampling.LANCZOS)) for name in DIVERSE[:4]
    ]
    return np.hstack([kinds[(band % 2) * 2 + col % 2] for col in range(side // CHUNK)])


def side_for(gigabytes: float) -> int:
    """Side of a square RGB mosaic of about ``gigabytes``: a whole number of 4 x 1024 pixels."""
    return max(1, round(np.sqrt(gigabytes * 1e9 / 3) / (4 * CHUNK))) * 4 * CHUNK


def build(kind: str, side: int, folder: Path, tiff: bool) -> dict[str, Path]:
    import tifffile
    import zarr

    paths = {"zarr": folder / f"{kind}-{side}.zarr"}
    if tiff:
        paths["tiled BigTIFF"] = folder / f"{kind}-{side}.tif"
    if all(path.exists() for path in paths.values()):
        return paths
    print(f"building the {kind} mosaic {side}x{side}...", file=sys.stderr)
    band_rows, make = {
        "diverse": (side // 4, diverse_band),
        "repeated": (CHUNK, repeated_band),
        "aligned": (CHUNK, aligned_band),
    }[kind]
    array = zarr.create_array(
        str(paths["zarr"]), shape=(side, side, 3), chunks=(CHUNK, CHUNK, 3), dtype="uint8", overwrite=True
    )
    for band in range(side // band_rows):
        array[band * band_rows : (band + 1) * band_rows] = make(side, band)
    if tiff:
        source = zarr.open_array(str(paths["zarr"]), mode="r")

        def tiles():
            for r in range(0, side, TILE):
                row = source[r : r + TILE]
                for c in range(0, side, TILE):
                    yield row[:, c : c + TILE]

        tifffile.imwrite(
            paths["tiled BigTIFF"], tiles(), shape=(side, side, 3), dtype="uint8", tile=(TILE, TILE),
            photometric="rgb", compression="zlib", bigtiff=True,
        )  # fmt: skip
    return paths


def wide(path: Path, side: int) -> Path:
    """The 8-bit mosaic at ``path`` as uint16 (x 257, the same colours), built once beside it."""
    import zarr

    target = path.with_name(path.stem + "-uint16.zarr")
    if target.exists():
        return target
    source = zarr.open_array(str(path), mode="r")
    array = zarr.create_array(str(target), shape=source.shape, chunks=(CHUNK, CHUNK, 3), dtype="uint16")
    for row in range(0, side, CHUNK):
        array[row : row + CHUNK] = source[row : row + CHUNK].astype(np.uint16) * 257
    return target


def passes(args, side: int, folder: Path) -> str:
    """Read once against read twice and the floor (8-bit), and a uint16 mosaic against its floor."""
    python, path = sys.executable, build("diverse", side, folder, False)["zarr"]
    cli = str(Path(python).parent / "palette-dask")
    run = ["run", str(path), "-k", str(args.k), "-o", str(folder / "out.zarr"), "--overwrite", "-q"]
    wide_path = wide(path, side)
    wide_run = [*run[:1], str(wide_path), *run[2:]]
    eight = alternated(
        {
            "floor: one dask read pass": [python, "-c", FLOOR, str(path)],
            "palette_dask, read once (default)": [cli, *run],
            "palette_dask, read twice (ONE_READ_PASS off)": [python, "-c", TWO_PASSES, *run],
        },
        args.repeats,
    )
    sixteen = alternated(
        {
            "floor: one dask read pass, uint16": [python, "-c", FLOOR, str(wide_path)],
            "palette_dask, uint16 (read twice)": [cli, *wide_run],
        },
        args.repeats,
    )
    gigabytes = side * side * 3 / 1e9
    return "\n".join(
        [
            f"\n#### One read pass: the diverse zarr mosaic {side}x{side} ({gigabytes:.1f} GB uint8), k={args.k}\n",
            f"`.venv/bin/python benchmarks/mosaic.py --passes --repeats {args.repeats} --gigabytes "
            f"{args.gigabytes:g} -k {args.k}` on {os.cpu_count()} cores, default LocalCluster, "
            f"{time.strftime('%Y-%m-%d')}; medians of {args.repeats}, alternated.\n",
            ratio_table(eight, {"floor": "floor: one dask read pass"}),
            f"\nThe same mosaic as uint16 ({2 * gigabytes:.1f} GB, x 257), counted in two passes:\n",
            ratio_table(sixteen, {"floor": "floor: one dask read pass, uint16"}),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("-k", type=int, default=8)
    parser.add_argument("--dir", default="/tmp/palette-dask-mosaic")
    parser.add_argument("--mosaics", default="diverse,repeated")
    parser.add_argument("--tiff", action="store_true", help="also as tiled BigTIFF")
    parser.add_argument("--quality", action="store_true", help="samples from every chunk vs a quarter")
    parser.add_argument("--passes", action="store_true", help="read once vs twice vs the floor, and uint16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()
    side = side_for(args.gigabytes)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    if args.passes:
        emit(passes(args, side, folder), args.write)
        return
    python = sys.executable
    cli = str(Path(python).parent / "palette-dask")
    megapixels = side * side / 1e6
    lines = [
        f"\n### Mosaics {side}x{side} RGB uint8 ({side * side * 3 / 1e9:.1f} GB of pixels, "
        f"{megapixels:,.0f} MP), k={args.k}\n",
        f"`.venv/bin/python benchmarks/mosaic.py --gigabytes {args.gigabytes:g} -k {args.k} --mosaics {args.mosaics}"
        f"{' --tiff' if args.tiff else ''}{' --quality' if args.quality else ''}` on {os.cpu_count()} cores, "
        f"default LocalCluster, {time.strftime('%Y-%m-%d')}. Floor: one plain read pass (dask.array.from_zarr, "
        "summed), no palette_dask code.\n",
        "| mosaic | input | read pass (s) | palette_dask (s) | ratio | MP/s | peak RSS, read pass (MiB) "
        "| peak RSS, palette_dask (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    quality = []
    for kind in args.mosaics.split(","):
        for form, path in build(kind, side, folder, args.tiff).items():
            read_seconds, read_peak, _ = timed([python, "-c", FLOOR, str(path)], ok=(0,))
            out = folder / "out.zarr"
            seconds, peak, document = timed(
                [cli, "run", str(path), "-k", str(args.k), "-o", str(out), "--overwrite", "--json", "-q"]
            )
            result = json.loads(document)
            assert result["pixels"]["valid"] == side * side, result["pixels"]
            lines.append(
                f"| {kind} | {form} | {read_seconds:.1f} | {seconds:.1f} | {seconds / read_seconds:.2f}x "
                f"| {megapixels / seconds:.0f} | {read_peak / 2**20:.0f} | {peak / 2**20:.0f} |"
            )
            print(lines[-1], file=sys.stderr)
            if args.quality and form == "zarr":
                for seed in SEEDS:
                    runs = {}
                    for share in SHARES:
                        command = [
                            cli,
                            "run",
                            str(path),
                            "-k",
                            str(args.k),
                            "--seed",
                            str(seed),
                            "--json",
                            "-q",
                        ]
                        took, _, document = timed([*command, "--sample-chunks", str(share)])
                        runs[share] = (took, json.loads(document)["lab_error"])
                    (every, every_error), (part, part_error) = runs[1.0], runs[0.25]
                    quality.append(
                        f"| {kind} | {seed} | {every:.1f} | {part:.1f} | {every_error:.1f} | {part_error:.1f} "
                        f"| {part_error / every_error:.3f} |"
                    )
                    print(quality[-1], file=sys.stderr)
    if quality:
        lines += [
            "",
            "Sample from every chunk (the default) against a quarter of them (`--sample-chunks 0.25`), "
            "whole runs, same seed; CIELAB error (mean squared, of every pixel to its nearest colour shown):\n",
            "| mosaic | seed | every chunk (s) | a quarter (s) | CIELAB error, every | a quarter | quarter / every |",
            "|---|---|---|---|---|---|---|",
            *quality,
        ]
    emit("\n".join(lines) + "\n", args.write)


if __name__ == "__main__":
    main()
