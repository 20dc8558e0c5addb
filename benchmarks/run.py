"""Benchmark: palette_dask against its peers and the floor, on three inputs, in one run.

For each input, every contender runs as a whole process on the same data:

- **read pass (floor)**: one plain read-and-decode pass over every pixel,
- **tutorial**: the tutorial's recipe, scikit-learn ``KMeans(n_clusters=5)``
  on all pixels, then a label histogram (only where all pixels fit its
  in-memory recipe: the 16 MP PNG),
- **naive dask-ml**: dask-ml ``KMeans`` fit and predict on all pixels, as a
  dask array (stopped after ``--naive-timeout`` seconds on the big inputs),
- **palette_dask**: ``palette-dask run`` end to end, default options
  (clustering in CIELAB), and with ``--space rgb`` (the tutorial's objective).

Reported: wall seconds, the ratio to the floor and to palette_dask, the peak
memory of the whole process tree (sampled from /proc), each palette's RGB
inertia over all pixels relative to scikit-learn's, and its CIELAB error (mean
squared ΔE*ab of every pixel to the nearest palette colour rounded to 8 bits). On the 16 MP PNG that
reference is the tutorial's own fit; on the mosaic and the collection,
scikit-learn ``KMeans`` fitted on a 1,000,000-pixel uniform subsample drawn
by this script (the whole input does not fit the recipe), evaluated over
every pixel with numpy.

Inputs: a 16-megapixel PNG mosaic of scikit-image's photos, a 2 GB zarr
mosaic (benchmarks/mosaic.py builds it) and a 2,000-image collection
(benchmarks/collection.py builds it); built once into ``--dir``.

    .venv/bin/python benchmarks/run.py [--inputs png,zarr,collection] [--write benchmarks/RESULTS.md]

Not part of ``make test``: it takes twenty minutes and wants a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import collection
import mosaic
import numpy as np
import skimage
from measure import emit, timed
from PIL import Image

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "logo.png")
K = 5
REFERENCE_SAMPLE = 1_000_000

# Each script takes: input path, where to save the centres (.npy).
TUTORIAL = """
import sys, numpy as np
from skimage import io
from sklearn.cluster import KMeans
img = io.imread(sys.argv[1])
img = img.reshape((img.shape[0] * img.shape[1], img.shape[2]))
clt = KMeans(n_clusters=5).fit(img)
hist, _ = np.histogram(clt.labels_, bins=np.arange(0, 6))
hist = hist.astype("float") / hist.sum()
np.save(sys.argv[2], clt.cluster_centers_)
"""

NAIVE_DASK_ML = """
import sys
import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster
from dask_ml.cluster import KMeans
from PIL import Image
from skimage import io


def pixels(path):
    if path.endswith(".zarr"):
        return da.from_zarr(path).reshape(-1, 3)
    if path.endswith(".png"):
        return da.from_array(io.imread(path).reshape(-1, 3), chunks=(1_000_000, 3))
    files = sorted(p for p in __import__("glob").glob(path + "/**/*", recursive=True) if p[-3:] in ("png", "jpg", "tif"))
    parts = []
    for name in files:
        width, height = Image.open(name).size
        decode = dask.delayed(lambda p: io.imread(p)[..., :3].reshape(-1, 3))(name)
        parts.append(da.from_delayed(decode, shape=(width * height, 3), dtype=np.uint8))
    return da.concatenate(parts)


if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster, Client(cluster):
        x = pixels(sys.argv[1]).astype(np.float32)
        model = KMeans(n_clusters=5).fit(x)
        labels = model.predict(x)
        hist = np.bincount(labels.compute(), minlength=5) / labels.shape[0]
        np.save(sys.argv[2], model.cluster_centers_)
"""

READ_PNG = """
import sys
from skimage import io
io.imread(sys.argv[1]).sum()
"""


# ---------------------------------------------------------------- the inputs


def build_png(path: Path, megapixels: float) -> None:
    """Tile the photos (RGB, alpha dropped) into a square PNG of about ``megapixels``."""
    data = Path(skimage.__file__).parent / "data"
    tiles = [np.asarray(Image.open(data / name).convert("RGB").resize((400, 400))) for name in PHOTOS]
    side = int(np.sqrt(megapixels * 1e6) // 400)
    grid = [[tiles[(i * side + j) % len(tiles)] for j in range(side)] for i in range(side)]
    Image.fromarray(np.vstack([np.hstack(row) for row in grid])).save(path)


def png_input(folder: Path, megapixels: float) -> Path:
    path = folder / f"mosaic-{megapixels:g}mp.png"
    if not path.exists():
        build_png(path, megapixels)
    return path


def zarr_input(folder: Path, gigabytes: float) -> Path:
    """The colour-diverse zarr mosaic of benchmarks/mosaic.py (seven photos)."""
    return mosaic.build("diverse", mosaic.side_for(gigabytes), folder, tiff=False)["zarr"]


def collection_input(folder: Path, images: int) -> Path:
    path = folder / f"photos-{images}"
    if not (path / ".built").exists():
        print(f"building {images} images in {path}...", file=sys.stderr)
        collection.build_photos(path, images)
        (path / ".built").write_text("")
    return path


def pixel_blocks(path: Path):
    """Every pixel of an input as (n, 3) uint8 blocks, read a band or a file at a time."""
    if path.suffix == ".png":
        yield np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    elif path.suffix == ".zarr":
        import zarr

        array = zarr.open_array(str(path), mode="r")
        step = array.chunks[0]
        for row in range(0, array.shape[0], step):
            yield array[row : row + step].reshape(-1, 3)
    else:
        for name in sorted(p for p in path.rglob("*") if p.suffix in (".png", ".jpg", ".tif")):
            yield np.asarray(Image.open(name).convert("RGB")).reshape(-1, 3)


def reference_centers(path: Path, seed: int = 0) -> np.ndarray:
    """scikit-learn KMeans on a uniform random subsample of REFERENCE_SAMPLE pixels."""
    from sklearn.cluster import KMeans

    total = sum(len(block) for block in pixel_blocks(path))
    rng = np.random.default_rng(seed)
    keep = min(1.0, REFERENCE_SAMPLE / total)
    sample = np.concatenate([block[rng.random(len(block)) < keep] for block in pixel_blocks(path)])
    return KMeans(n_clusters=K, random_state=seed).fit(sample.astype(np.float64)).cluster_centers_


def _nearest_squared(x: np.ndarray, c: np.ndarray) -> float:
    d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
    return float(np.maximum(d.min(axis=1), 0).sum())


def inertias(path: Path, centers: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    """For each set of centres: RGB inertia over every pixel, and the mean CIELAB error of its 8-bit colours."""
    from palette_dask.kernels.colour import srgb_to_lab  # checked against scikit-image's rgb2lab in the tests

    totals, lab_totals, pixels = dict.fromkeys(centers, 0.0), dict.fromkeys(centers, 0.0), 0
    shown = {name: srgb_to_lab(np.clip(np.rint(c), 0, 255)) for name, c in centers.items()}
    for block in pixel_blocks(path):
        x = block.astype(np.float64)
        lab = srgb_to_lab(x)
        pixels += len(x)
        for name, c in centers.items():
            totals[name] += _nearest_squared(x, np.asarray(c, dtype=np.float64))
            lab_totals[name] += _nearest_squared(lab, shown[name])
    return totals, {name: value / pixels for name, value in lab_totals.items()}


# ---------------------------------------------------------------- one input


def bench(kind: str, path: Path, tmp: Path, naive_timeout: float | None, skip_naive: bool) -> list[str]:
    python = sys.executable
    cli = str(Path(python).parent / "palette-dask")
    read_script = {"png": READ_PNG, "zarr": mosaic.FLOOR, "collection": collection.FLOOR}[kind]
    runs: dict[str, tuple | str] = {}
    centers: dict[str, np.ndarray] = {}
    runs["read pass (floor)"] = timed([python, "-c", read_script, str(path)], ok=(0,))
    if kind == "png":
        runs["tutorial (scikit-learn)"] = timed([python, "-c", TUTORIAL, str(path), str(tmp / "sk.npy")])
        centers["tutorial (scikit-learn)"] = np.load(tmp / "sk.npy")
    else:
        runs["tutorial (scikit-learn)"] = "not run: its recipe holds every pixel in memory as float64"
    if skip_naive:
        runs["dask-ml KMeans, naive"] = "not run (--skip-naive)"
    else:
        timeout = None if kind == "png" else naive_timeout
        naive = timed([python, "-c", NAIVE_DASK_ML, str(path), str(tmp / "naive.npy")], timeout=timeout)
        runs["dask-ml KMeans, naive"] = naive if naive[0] is not None else f"stopped after {timeout:.0f} s"
        if (tmp / "naive.npy").exists():
            centers["dask-ml KMeans, naive"] = np.load(tmp / "naive.npy")
    out = tmp / "out.zarr"
    for name, extra in (("palette_dask", []), ("palette_dask --space rgb", ["--space", "rgb"])):
        runs[name] = timed([cli, "run", str(path), "-o", str(out), "--overwrite", "--json", "-q", *extra])
        document = json.loads(runs[name][2])
        centers[name] = np.array([entry["rgb"] for entry in document["palette"]])
    if kind != "png":
        centers["reference"] = reference_centers(path)
    sums, lab_errors = inertias(path, centers)
    reference = sums.pop("reference", sums.get("tutorial (scikit-learn)"))
    megapixels = document["pixels"]["valid"] / 1e6
    floor, ours = runs["read pass (floor)"][0], runs["palette_dask"][0]
    rows = []
    for name, run in runs.items():
        quality = f"{sums[name] / reference:.4f} | {lab_errors[name]:.1f}" if name in sums else "- | -"
        if isinstance(run, str):
            rows.append(f"| {name} | {run} | | | | {quality} |")
            continue
        seconds, peak, _ = run
        rows.append(
            f"| {name} | {seconds:.1f} | {seconds / floor:.2f}x | {seconds / ours:.2f}x "
            f"| {peak / 2**20:.0f} | {quality} |"
        )
    if "reference" in lab_errors:
        rows.append(
            f"| (reference: {REFERENCE_SAMPLE:,}-pixel scikit-learn fit) | | | | | 1.0000 | "
            f"{lab_errors['reference']:.1f} |"
        )
    title = {
        "png": f"{path.name}: PNG mosaic of scikit-image's photos, {megapixels:.1f} MP",
        "zarr": f"{path.name}: zarr mosaic, {megapixels * 3 / 1e3:.1f} GB of RGB pixels ({megapixels:,.0f} MP)",
        "collection": f"{path.name}: {document['images']['total']:,} photos (PNG, JPEG, TIFF), {megapixels:,.0f} MP",
    }[kind]
    reference_name = (
        "the tutorial's fit"
        if kind == "png"
        else f"scikit-learn KMeans on a {REFERENCE_SAMPLE:,}-pixel uniform subsample"
    )
    return [
        f"\n#### {title}, k={K}\n",
        "| contender | seconds | vs floor | vs palette_dask | peak RSS of process tree (MiB) "
        "| RGB inertia / reference | CIELAB error (mean ΔE²) |",
        "|---|---|---|---|---|---|---|",
        *rows,
        f"\npalette_dask: {megapixels / ours:.1f} MP/s; RGB inertia over all pixels relative to "
        f"{reference_name}; CIELAB error of the palette as shown (8-bit), over all pixels, lower is better.\n",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--inputs", default="png,zarr,collection", help="comma-separated: png, zarr, collection"
    )
    parser.add_argument("--megapixels", type=float, default=16.0, help="size of the PNG mosaic")
    parser.add_argument("--gigabytes", type=float, default=2.0, help="size of the zarr mosaic")
    parser.add_argument("--images", type=int, default=2000, help="size of the collection")
    parser.add_argument(
        "--dir", default="/tmp/palette-dask-bench", help="where the inputs are built and kept"
    )
    parser.add_argument(
        "--naive-timeout", type=float, default=300, help="seconds for naive dask-ml (big inputs)"
    )
    parser.add_argument("--skip-naive", action="store_true", help="leave out naive dask-ml (the slowest)")
    parser.add_argument("--write", metavar="RESULTS.md", help="append the tables to this file")
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    kinds = [kind.strip() for kind in args.inputs.split(",")]
    builders = {
        "png": lambda: png_input(folder, args.megapixels),
        "zarr": lambda: zarr_input(folder, args.gigabytes),
        "collection": lambda: collection_input(folder, args.images),
    }
    command = " ".join(["benchmarks/run.py", *sys.argv[1:]])
    lines = [
        "\n### Peers and the floor, one run\n",
        f"`.venv/bin/python {command}` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}",
    ]
    for kind in kinds:
        path = builders[kind]()
        tmp = folder / f"runs-{kind}"
        tmp.mkdir(exist_ok=True)
        for stale in tmp.glob("*.npy"):
            stale.unlink()
        table = bench(kind, path, tmp, args.naive_timeout, args.skip_naive)
        print("\n".join(table), file=sys.stderr)
        lines.extend(table)
    emit("\n".join(lines) + "\n", args.write)


if __name__ == "__main__":
    main()
