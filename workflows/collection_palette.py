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
import json
import sys
from pathlib import Path

from palette_dask import PaletteDaskError, connect, extract_palette, palette_bar, save_png
from palette_dask.cluster import dashboard_link, jobqueue_options
from palette_dask.errors import ClusterError, ParameterError
from palette_dask.progress import Progress
from palette_dask.store import DONE, FAILED


def parse(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="See the module docstring for outputs."
    )
    parser.add_argument("inputs", nargs="+", help="files, directories, globs, list files or URLs")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("-k", type=int, default=5, help="number of colours (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scheduler", help="address of a running dask scheduler")
    parser.add_argument("--cluster-config", help="job-queue cluster YAML (palette-dask: cluster: ...)")
    parser.add_argument("--threads", action="store_true", help="LocalCluster on threads (small inputs)")
    parser.add_argument("--resume", action="store_true", help="finish an interrupted run")
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "palette.zarr"
    try:
        jobqueue = jobqueue_options(args.cluster_config) if args.cluster_config else None
        with connect(args.scheduler, jobqueue=jobqueue, processes=not args.threads) as client:
            print(f"palette-dask: dashboard at {dashboard_link(client)}", file=sys.stderr)
            result = extract_palette(
                args.inputs, args.k, store=store, seed=args.seed, client=client,
                resume=args.resume and store.exists(), overwrite=not args.resume, report=Progress(),
            )  # fmt: skip
    except (ParameterError, ClusterError) as exc:
        print(f"palette-dask: {exc}", file=sys.stderr)
        return 2
    except PaletteDaskError as exc:
        print(f"palette-dask: {exc}", file=sys.stderr)
        return 1
    summary = result.to_dict()
    (out / "palette.json").write_text(json.dumps(summary, indent=2))
    (out / "failures.txt").write_text("".join(f"{error}\n" for error in result.failures.values()))
    write_shares(result, out / "shares.csv")
    if result.k:
        save_png(palette_bar(result.colors, result.proportions), out / "palette.png")
    images = summary["images"]
    print(
        f"palette-dask: {images['done']} of {images['total']} images done; outputs in {out}/", file=sys.stderr
    )
    if images["done"] == 0:
        return 1
    return 3 if images["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
