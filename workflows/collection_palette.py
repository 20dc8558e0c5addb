#!/usr/bin/env python3
"""One palette for a large collection of images, and each image's share of every colour, as a batch job.

Writes to OUT/: palette.zarr (the store), palette.png (the palette bar),
palette.json (the summary the CLI prints with --json), shares.csv (one row
per image: status, valid pixels, and the share of each palette colour) and
failures.txt (one line per image that could not be read). Re-running with
--resume finishes an interrupted run without redoing finished images.

Examples:
    python workflows/collection_palette.py photos/ --out results/photos -k 8
    python workflows/collection_palette.py inputs.txt --out results/run1 --cluster-config workflows/slurm/palette-dask.yaml --resume

Exit codes as palette-dask's: 0 done, 1 error, 2 usage error, 3 done but some images failed.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from jobs import add_run_arguments, run, write_summary

from palette_dask.store import DONE, FAILED


def parse(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="See the module docstring for outputs."
    )
    parser.add_argument("inputs", nargs="+", help="files, directories, globs, list files or URLs")
    add_run_arguments(parser)
    return parser.parse_args(argv)


def write_shares(result, path: Path) -> None:
    hexes = [entry["hex"] for entry in result.palette()]
    order = result.order
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "status", "valid_pixels", *hexes])
        for i, name in enumerate(result.image_names):
            status = {DONE: "done", FAILED: "failed"}.get(int(result.image_status[i]), "pending")
            shares = result.image_proportions[i][order]
            writer.writerow([name, status, int(result.image_valid[i]), *(f"{s:.6f}" for s in shares)])


def main(argv=None) -> int:
    args = parse(argv)
    result = run(args, args.inputs)
    if isinstance(result, int):
        return result
    out = Path(args.out)
    write_summary(result, out)
    (out / "failures.txt").write_text("".join(f"{error}\n" for error in result.failures.values()))
    write_shares(result, out / "shares.csv")
    images = result.to_dict()["images"]
    print(
        f"palette-dask: {images['done']} of {images['total']} images done; outputs in {out}/", file=sys.stderr
    )
    if images["done"] == 0:
        return 1
    return 3 if images["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
