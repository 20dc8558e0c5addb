#!/usr/bin/env python3
"""One palette for a large collection of images, and each image's share of every colour, as a batch job.

Writes to OUT/: palette.zarr (the store), palette.png (the palette bar),
palette.json (the summary the CLI prints with --json), shares.csv (one row
per image: status, valid and masked pixels, error, and the share of each
colour by id, as `palette-dask show --csv` writes it) and
failures.txt (one line per image that could not be read). Re-running with
--resume finishes an interrupted run without redoing finished images.

Examples:
    python workflows/collection_palette.py photos/ --out results/photos -k 8
    python workflows/collection_palette.py inputs.txt --out results/run1 --cluster-config workflows/slurm/palette-dask.yaml --resume

Exit codes as palette-dask's: 0 done, 1 error, 2 usage error, 3 done but some images this run
handled failed (a --resume that meets none exits 0, and says how many the store held before),
4 the scheduler was lost mid-run (the store keeps every finished batch: --resume finishes it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jobs import add_run_arguments, run, write_summary

from palette_dask.outputs.render import write_image_shares


def parse(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="See the module docstring for outputs."
    )
    parser.add_argument("inputs", nargs="+", help="files, directories, globs, list files or URLs")
    add_run_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    ran = run(args, args.inputs)
    if isinstance(ran, int):
        return ran
    result, earlier = ran
    out = Path(args.out)
    write_summary(result, out)
    (out / "failures.txt").write_text("".join(f"{failure}\n" for failure in result.failures))
    write_image_shares(result, out / "shares.csv")
    images = result.to_dict()["images"]
    print(
        f"palette-dask: {images['done']} of {images['total']} images done; outputs in {out}/", file=sys.stderr
    )
    if images["done"] == 0:
        return 1
    if earlier:
        print(
            f"palette-dask: the store holds {earlier} failed image(s) from before this run", file=sys.stderr
        )
    return 3 if images["failed"] > earlier else 0


if __name__ == "__main__":
    sys.exit(main())
