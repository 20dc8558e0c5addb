"""Benchmark: the fixed cost of a one-image run, the whole command, against its floors.

A 512 x 512 PNG (scikit-image's astronaut, resized with anti-aliasing), k=5.
Each contender is a fresh process, timed from start to exit; the contenders
are alternated ``--repeats`` times and the medians reported (this VM's timings
vary 20-30% run to run):

- the stack's imports alone (the floor of any palette_dask run): ``import
  dask.array, distributed, dask_ml.cluster, zarr, numba, PIL.Image``, no
  palette_dask code;
- the tutorial's script (the peer): Pillow, scikit-learn ``KMeans(5)`` on every
  pixel, ``numpy.bincount``, a 50 x 300 palette bar;
- ``palette-dask run IMAGE`` (the results printed), and with ``-o STORE``;
- the same run from Python in a process that has run one before (a notebook's
  second image: the imports and numba's caches loaded, a LocalCluster started
  for the run as the command does): its own time of ``extract_palette``.

    .venv/bin/python benchmarks/fixed_costs.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORTS = "import dask.array, distributed, dask_ml.cluster, zarr, numba, PIL.Image"
TUTORIAL = """
import sys
import numpy as np
from PIL import Image
from sklearn.cluster import KMeans
pixels = np.asarray(Image.open(sys.argv[1]).convert("RGB")).reshape(-1, 3)
model = KMeans(n_clusters=5, n_init=1, random_state=0).fit(pixels)
counts = np.bincount(model.labels_, minlength=5)
bar = np.zeros((50, 300, 3), np.uint8)
edges = np.concatenate([[0], np.cumsum(counts) * 300 // counts.sum()])
for colour, start, stop in zip(model.cluster_centers_, edges[:-1], edges[1:]):
    bar[:, start:stop] = colour
Image.fromarray(bar).save(sys.argv[2])
"""
WARM = """
import sys, time
from palette_dask import connect, extract_palette
def once():
    start = time.perf_counter()
    with connect(processes=False, dashboard_address="127.0.0.1:0") as client:
        extract_palette([sys.argv[1]], client=client, k=5)
    return time.perf_counter() - start
once()
print(once())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from PIL import Image
    from skimage import data

    folder = Path(tempfile.mkdtemp(prefix="palette-dask-fixed-"))
    image = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((512, 512), Image.LANCZOS).save(image)
    command = str(Path(sys.executable).parent / "palette-dask")
    contenders = {
        "imports of the stack (floor)": [sys.executable, "-c", IMPORTS],
        "tutorial script (peer)": [sys.executable, "-c", TUTORIAL, str(image), str(folder / "bar.png")],
        "palette-dask run IMAGE": [command, "run", str(image), "-q"],
        "palette-dask run IMAGE -o STORE": [command, "run", str(image), "-q", "-o", str(folder / "o.zarr")]
        + ["--overwrite"],
    }
    warm = "palette_dask in a warm process (its second run)"
    times: dict[str, list[float]] = {name: [] for name in [*contenders, warm]}
    for _ in range(args.repeats):
        for name, argv in contenders.items():
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
        second = subprocess.run([sys.executable, "-c", WARM, str(image)], check=True, capture_output=True)
        times[warm].append(float(second.stdout.decode().split()[-1]))
    floor = statistics.median(times["imports of the stack (floor)"])
    print(f"one 512 x 512 PNG, k=5; medians of {args.repeats}, alternated\n")
    print("| contender | seconds (median) | range | vs the imports |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {min(values):.2f}-{max(values):.2f} | {median / floor:.2f}x |")


if __name__ == "__main__":
    main()
