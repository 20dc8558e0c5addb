"""Benchmark: a folder of 640 x 480 JPEGs, whole commands, against a plain decode and the script a user would write.

``--photos`` JPEGs of benchmarks/scaling.py (random crops of scikit-image's
photos, resized with anti-aliasing), k=8, as whole processes with the peak
memory of the process tree (sampled every 50 ms):

- **floor**: a pool of one process per core decoding every file with Pillow,
  no palette_dask code;
- **script** (the peer): what a user writes instead, in about thirty lines: a
  pool of one process per core decodes every file and draws an equal share of
  a 100,000-pixel sample with numpy; scikit-learn ``KMeans(8)`` fits it; the
  pool decodes every file again and counts it with ``predict`` and
  ``numpy.bincount``; sRGB, as the tutorial clusters;
- **palette_dask**: ``palette-dask run DIR -k 8 -o STORE`` on the default
  cluster (CIELAB, its default), and with ``--space rgb`` as the script.

The contenders are alternated ``--repeats`` times; medians are reported.

    .venv/bin/python benchmarks/photos.py [--photos 8000] [--repeats 1] [--dir /tmp/palette-dask-scaling]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SCRIPT = """
import os, sys
from multiprocessing import get_context
import numpy as np
from PIL import Image
from sklearn.cluster import KMeans

def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32).reshape(-1, 3)

def sample(job):
    path, share, seed = job
    x = pixels(path)
    return x[np.random.default_rng(seed).choice(len(x), min(share, len(x)), replace=False)]

def count(path):
    return np.bincount(MODEL.predict(pixels(path)), minlength=MODEL.n_clusters)

def keep(model):
    global MODEL
    MODEL = model

if __name__ == "__main__":
    folder, k = sys.argv[1], int(sys.argv[2])
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".jpg"))
    share = -(-100_000 // len(paths))
    spawn = get_context("spawn")  # a fork after scikit-learn's OpenMP threads ran can hang
    with spawn.Pool(os.cpu_count()) as pool:
        x = np.concatenate(pool.map(sample, [(p, share, i) for i, p in enumerate(paths)], chunksize=16))
    model = KMeans(k, random_state=0).fit(x)
    with spawn.Pool(os.cpu_count(), initializer=keep, initargs=(model,)) as pool:
        counts = sum(pool.map(count, paths, chunksize=16))
    for centre, n in sorted(zip(model.cluster_centers_.round().astype(int).tolist(), counts), key=lambda c: -c[1]):
        print(centre, n / counts.sum())
"""

FLOOR = """
import os, sys
from multiprocessing import Pool
import numpy as np
from PIL import Image

def decode(path):
    return np.asarray(Image.open(path)).size

if __name__ == "__main__":
    folder = sys.argv[1]
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".jpg"))
    with Pool(os.cpu_count()) as pool:
        print(sum(pool.map(decode, paths, chunksize=16)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--dir", default="/tmp/palette-dask-scaling")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from measure import alternated, ratio_table, timed
    from scaling import build_collection

    folder = build_collection(Path(args.dir), args.photos)
    script = Path(args.dir) / "palette_script.py"  # a file: spawned processes import it
    script.write_text(SCRIPT)
    command = str(Path(sys.executable).parent / "palette-dask")
    store = f"{args.dir}/photos.zarr"
    ours = [command, "run", str(folder), "-k", "8", "-q", "-o", store, "--overwrite"]
    contenders = {
        "plain decode (floor)": [sys.executable, "-c", FLOOR, str(folder)],
        "the script (peer)": [sys.executable, str(script), str(folder), "8"],
        "palette-dask run DIR -k 8": ours,
        "palette-dask run DIR -k 8 --space rgb": ours + ["--space", "rgb"],
    }
    timed(contenders["plain decode (floor)"])  # the files into the page cache
    medians = alternated(contenders, args.repeats)
    print(f"\n{args.photos} JPEGs of 640 x 480, k=8; medians of {args.repeats}\n")
    print(ratio_table(medians, {"the floor": "plain decode (floor)", "the script": "the script (peer)"}))


if __name__ == "__main__":
    main()
