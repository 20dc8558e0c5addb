"""Benchmark: applying a stored palette to a collection, against fitting one (a full run).

benchmarks/collection.py's 20,000 thumbnails (128 x 96, half PNG, half
JPEG), as whole commands on the default cluster, k=8, with the peak memory of
the process tree: ``palette-dask run DIR -k 8 -o A.zarr`` (sample, fit,
count), then ``palette-dask run DIR --palette A.zarr -o B.zarr`` (count
only), alternated ``--repeats`` times, medians. The applied store's counts are
checked equal to the fitted store's (the same palette on the same images).

    .venv/bin/python benchmarks/apply.py [--repeats 3] [--dir /tmp/palette-collections]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default="/tmp/palette-collections")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from collection import collection
    from measure import alternated, ratio_table

    from palette_dask.outputs.result import load_result

    folder = collection(Path(args.dir), "thumbs", 0)
    command = str(Path(sys.executable).parent / "palette-dask")
    fitted, applied = f"{args.dir}/fitted.zarr", f"{args.dir}/applied.zarr"
    contenders = {
        "full run (sample, fit, count)": [command, "run", str(folder), "-k", "8", "-q", "-o", fitted],
        "palette applied (count only)": [
            command,
            "run",
            str(folder),
            "--palette",
            fitted,
            "-q",
            "-o",
            applied,
        ],
    }

    def same_counts():
        assert np.array_equal(load_result(fitted).image_counts, load_result(applied).image_counts)

    medians = alternated(
        {name: [*argv, "--overwrite"] for name, argv in contenders.items()}, args.repeats, same_counts
    )
    print(f"\n20,000 thumbnails, k=8; medians of {args.repeats}; the applied counts equal the fitted ones\n")
    print(ratio_table(medians, {"the full run": "full run (sample, fit, count)"}))


if __name__ == "__main__":
    main()
