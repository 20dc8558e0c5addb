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
  cluster (CIELAB, its default; ``--sample-images auto``, the sample drawn
  from a subset of the photos), with ``--sample-images all`` (the sample
  drawn from every photo, the strict twin), with ``--space rgb`` as the
  script, and with ``--palette STORE`` (a stored palette applied: no sample,
  no fit, one decode of each photo).

With ``--quality``, the palettes of ``auto`` and ``all`` are compared by
their CIELAB error over every pixel (the stores' ``lab_error``) for seeds 0 to 4.

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
    parser.add_argument("--quality", action="store_true", help="compare auto's palettes with all's, 5 seeds")
    parser.add_argument("--skip", default="", help="leave out contenders whose name holds one of these (a,b)")
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
    fitted = f"{args.dir}/photos-fitted.zarr"  # the palette applied
    every = f"{args.dir}/photos-all.zarr"  # the sample from every photo
    contenders = {
        "plain decode (floor)": [sys.executable, "-c", FLOOR, str(folder)],
        "the script (peer)": [sys.executable, str(script), str(folder), "8"],
        "palette-dask run DIR -k 8": ours,
        "palette-dask run DIR -k 8 --sample-images all": [
            *ours[:7],
            every,
            "--overwrite",
            "--sample-images",
            "all",
        ],
        "palette-dask run DIR -k 8 --space rgb": ours + ["--space", "rgb"],
        "palette-dask run DIR --palette STORE": ours[:2] + [str(folder), "--palette", fitted] + ours[5:],
    }
    skipped = [part for part in args.skip.split(",") if part]
    contenders = {
        name: argv
        for name, argv in contenders.items()
        if "floor" in name or not any(p in name for p in skipped)
    }
    if args.quality:
        quality(command, folder, args.dir)
    timed(ours[:5] + ["-q", "-o", fitted, "--overwrite"])  # the palette to apply
    timed(contenders["plain decode (floor)"])  # the files into the page cache
    medians = alternated(contenders, args.repeats)
    print(f"\n{args.photos} JPEGs of 640 x 480, k=8; medians of {args.repeats}\n")
    against = {"the floor": "plain decode (floor)", "the script": "the script (peer)"}
    print(ratio_table(medians, {label: name for label, name in against.items() if name in medians}))
    if "palette-dask run DIR -k 8 --sample-images all" in medians:
        import zarr

        errors = [zarr.open_group(path, mode="r").attrs["lab_error"] for path in (store, every)]
        print(f"\nlab_error, seed 0: auto {errors[0]:.3f}, all {errors[1]:.3f}: {errors[0] / errors[1]:.4f}")


def quality(command: str, folder: Path, work: str) -> None:
    """The stores' CIELAB error over every pixel, ``--sample-images auto`` and ``all``, seeds 0 to 4."""
    import zarr
    from measure import timed

    print("| seed | lab_error, auto | lab_error, all | auto / all |\n|---|---|---|---|")
    for seed in range(5):
        errors = []
        for mode in ("auto", "all"):
            store = f"{work}/quality-{mode}.zarr"
            argv = [command, "run", str(folder), "-k", "8", "-q", "-o", store, "--overwrite"]
            timed(argv + ["--seed", str(seed), "--sample-images", mode])
            errors.append(zarr.open_group(store, mode="r").attrs["lab_error"])
        print(f"| {seed} | {errors[0]:.3f} | {errors[1]:.3f} | {errors[0] / errors[1]:.4f} |")


if __name__ == "__main__":
    main()
