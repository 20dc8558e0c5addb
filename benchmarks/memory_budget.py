"""Benchmark: decoded images kept between the passes, or decoded again (issue 24's memory budget).

On ``--photos`` 640 x 480 JPEGs (benchmarks/scaling.py's collection), the
same run with three budgets, interleaved ``--repeats`` times, each a whole
process on the default LocalCluster (its peak RSS is the run's):

- ``keep-all``: every decoded image kept (``memory_budget`` 1 TiB: a
  quarter of the workers' memory, the policy before the budget);
- ``default``: the default budget (1 GiB for the whole run);
- ``decode-twice``: none kept (``memory_budget=0``).

Also the two costs keeping weighs against each other, in this process: a
plain decode of every file (imagecodecs, one thread), and first touching as
much fresh memory as the decoded images take, in arrays of their size.

    .venv/bin/python benchmarks/memory_budget.py [--photos 2000] [--repeats 3] [--dir /tmp/palette-dask-scaling]
"""

from __future__ import annotations

import argparse
import glob
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RUN = """
import sys, time
from palette_dask import connect, extract_palette
folder, budget, store = sys.argv[1], sys.argv[2], sys.argv[3]
options = {} if budget == "default" else {"memory_budget": int(budget)}
with connect(dashboard_address="127.0.0.1:0") as client:
    wall, marks = time.perf_counter(), []
    report = lambda message: marks.append(time.perf_counter() - wall)
    extract_palette(folder, 8, store=store, overwrite=True, client=client, report=report, **options)
    inside = time.perf_counter() - wall
print(inside, marks[1], marks[2] - marks[1], marks[-1] - marks[2])  # first pass, fit, counting
"""

VARIANTS = {"keep-all": str(2**40), "default": "default", "decode-twice": "0"}


def costs(paths: list[str]) -> tuple[float, float]:
    """Seconds to decode every file, and to first touch as much fresh memory in arrays of their size."""
    import imagecodecs

    start = time.perf_counter()
    sizes = [imagecodecs.jpeg8_decode(Path(path).read_bytes()).nbytes for path in paths]
    decode = time.perf_counter() - start
    start, kept = time.perf_counter(), []
    for size in sizes:
        block = np.empty(size, np.uint8)
        block[::4096] = 1  # one write per page
        kept.append(block)
    return decode, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default="/tmp/palette-dask-scaling")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from scaling import build_collection

    folder = build_collection(Path(args.dir), args.photos)
    decode, touch = costs(sorted(glob.glob(str(folder / "*.jpg"))))
    print(f"plain decode of {args.photos} files {decode:.2f} s; first touch of as much memory {touch:.2f} s")
    rows = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, budget in VARIANTS.items():
            command = ["/usr/bin/time", "-f", "%M", sys.executable, "-c", RUN, str(folder), budget]
            done = subprocess.run(command + [f"{args.dir}/budget.zarr"], capture_output=True, text=True)
            inside, first, fit, counting = (float(v) for v in done.stdout.split())
            peak = int(done.stderr.strip().splitlines()[-1]) / 2**20
            rows[name].append((inside, first, counting, peak))
            print(f"{name:13s} inside {inside:6.2f} s  first pass {first:5.2f}  counting {counting:5.2f}  "
                  f"peak {peak:.2f} GiB", flush=True)  # fmt: skip
    print("\n| budget | inside (s), median | first pass (s) | counting pass (s) | peak RSS (GiB) |")
    print("|---|---|---|---|---|")
    for name, values in rows.items():
        medians = np.median(np.array(values), axis=0)
        print(f"| {name} | {medians[0]:.1f} | {medians[1]:.1f} | {medians[2]:.1f} | {medians[3]:.2f} |")


if __name__ == "__main__":
    main()
