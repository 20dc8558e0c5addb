#!/usr/bin/env python3
"""The dominant colours of one huge raster (satellite or microscopy mosaic), as a batch job.

Writes to OUT/: palette.zarr (the store, with the label raster under
labels/0), palette.png (the palette bar), palette.json (the summary the CLI
prints with --json) and preview.png (a downsampled picture of the mosaic
recoloured with its palette, read from the label raster).

Examples:
    python workflows/mosaic_palette.py scene.tif --out results/scene --bands 4,3,2 --nodata 0
    python workflows/mosaic_palette.py image.zarr --out results/image --cluster-config workflows/slurm/palette-dask.yaml

Exit codes as palette-dask's: 0 done, 1 error, 2 usage error, 4 the scheduler was lost mid-run
(the store keeps every finished batch: --resume finishes it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from jobs import add_run_arguments, run, write_summary

from palette_dask import save_png
from palette_dask.cli import bands_argument, scale_argument
from palette_dask.constants import DEFAULT_SCALE

PREVIEW_SIDE = 1024


def parse(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="See the module docstring for outputs."
    )
    parser.add_argument("input", help="a TIFF/BigTIFF/OME-TIFF, zarr array or OME-Zarr image")
    add_run_arguments(parser)
    parser.add_argument(
        "--bands", type=bands_argument, help="bands shown as red, green, blue, from 1 (e.g. 4,3,2)"
    )
    parser.add_argument("--nodata", type=float, help="pixels whose bands all equal this are left out")
    parser.add_argument(
        "--scale",
        type=scale_argument,
        default=DEFAULT_SCALE,
        help="auto (the default: 8-bit data by dtype, wider by percentile), dtype, minmax, percentile or LOW,HIGH",
    )
    return parser.parse_args(argv)


def preview(store: Path, colors: np.ndarray) -> np.ndarray:
    """The label raster, strided to at most PREVIEW_SIDE pixels a side, in palette colours (masked: black)."""
    import zarr

    labels = zarr.open_array(store / "labels" / "0" / "0", mode="r")
    step = max(1, -(-max(labels.shape) // PREVIEW_SIDE))
    strided = labels[::step, ::step]
    lookup = np.vstack([np.zeros((1, 3), np.uint8), colors])
    return lookup[strided]


def main(argv=None) -> int:
    args = parse(argv)
    ran = run(args, args.input, bands=args.bands, nodata=args.nodata, scale=args.scale, labels=True)
    if isinstance(ran, int):
        return ran
    result = ran[0]
    out = Path(args.out)
    write_summary(result, out)
    if not result.k:
        print(f"palette-dask: {result.failures[0]}", file=sys.stderr)
        return 1
    save_png(preview(out / "palette.zarr", result.colors), out / "preview.png")
    print(
        f"palette-dask: outputs in {out}/: palette.zarr, palette.png, palette.json, preview.png",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
