"""Benchmark: from 2 to 16 worker processes, many images and a huge mosaic, against plain floors.

For each count N of single-thread worker processes (``--workers``), as whole
processes on this machine (start, imports and cluster included) and inside
them (once the cluster is up):

- **collection**: ``--photos`` JPEGs of 640 x 480 (random crops of
  scikit-image's photos, resized with anti-aliasing: many colours each),
  built in parallel into ``--dir``. Floor: a pool of N processes decoding
  every file with Pillow, no palette_dask code. palette_dask: a LocalCluster
  of N worker processes (one thread each) running ``extract_palette`` into a
  store, k=5; the driving process's CPU seconds per image.
- **mosaic**: the diverse zarr mosaic of benchmarks/mosaic.py, about
  ``--gigabytes``. Floor: the same LocalCluster of N workers summing
  ``dask.array.from_zarr`` (one read pass). palette_dask: ``extract_palette``
  with k=8 on such a cluster.

The runs of 16 and 2 workers come first, so that a run cut short still
gives the scaling. Each row is appended to ``--rows`` (JSON lines) as soon as
it is measured; the table is printed (and with ``--write`` appended) at the
end.

    .venv/bin/python benchmarks/scaling.py [--workers 16,2,8,4] [--photos 12000] [--gigabytes 4] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from collection import _photos
from measure import emit, timed
from mosaic import CHUNK, diverse_band, side_for
from PIL import Image

DECODE = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
import numpy as np
from PIL import Image

def decode(paths):
    total = 0
    for path in paths:
        with Image.open(path) as image:
            total += int(np.asarray(image).size)
    return total

if __name__ == "__main__":
    folder, n = sys.argv[1], int(sys.argv[2])
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".jpg"))
    start = time.perf_counter()
    with ProcessPoolExecutor(n) as pool:
        total = sum(pool.map(decode, [paths[i : i + 50] for i in range(0, len(paths), 50)]))
    print(time.perf_counter() - start, total)
"""

READ = """
import sys, time
import dask.array as da
from distributed import Client, LocalCluster

if __name__ == "__main__":
    path, n = sys.argv[1], int(sys.argv[2])
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(n)
            start = time.perf_counter()
            total = int(da.from_zarr(path).sum(dtype="uint64").compute())
            print(time.perf_counter() - start, total)
"""

PALETTE = """
import json, sys, time
import palette_dask.run.passes
from palette_dask import connect, extract_palette

if __name__ == "__main__":
    path, k, n, store, variant = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    if variant == "computed":  # no lookup table: every pixel converted and compared
        palette_dask.run.passes.LOOKUP_PIXELS = 2**62
    elif variant == "decode-twice":  # no decoded image kept between the passes
        palette_dask.run.passes.KEEP_DECODED_SHARE = 0
    with connect(processes=True, n_workers=n, threads_per_worker=1, dashboard_address="127.0.0.1:0") as client:
        client.wait_for_workers(n)
        wall, cpu, marks = time.perf_counter(), time.process_time(), []
        report = lambda message: marks.append((time.perf_counter() - wall, message))  # the stages' starts
        result = extract_palette(path, k, store=store, client=client, overwrite=True, report=report)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    images = len(result.image_names)
    assert (result.image_status == 1).all(), "an image failed"  # store.DONE
    run = {"inside": wall, "cpu": cpu, "images": images, "valid": int(result.counts.sum()), "marks": marks}
    print(json.dumps(run))
"""


def _jpeg(args: tuple[Path, int]) -> None:
    folder, i = args
    photos = _jpeg.photos = getattr(_jpeg, "photos", None) or _photos()
    rng, photo = np.random.default_rng(i), photos[i % len(photos)]
    w = int(min(photo.width, photo.height * 4 / 3) * rng.uniform(0.3, 1.0))  # a 4:3 crop, then resized
    h = w * 3 // 4
    x, y = rng.integers(0, photo.width - w + 1), rng.integers(0, photo.height - h + 1)
    crop = photo.crop((x, y, x + w, y + h)).resize((640, 480), Image.Resampling.LANCZOS)
    crop.save(folder / f"p{i:06d}.jpg", quality=90)


def build_collection(folder: Path, count: int) -> Path:
    """``count`` 640 x 480 JPEGs in one folder, built by a process per core."""
    folder = folder / f"jpegs-{count}"
    if not (folder / ".built").exists():
        folder.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor() as pool:
            list(pool.map(_jpeg, [(folder, i) for i in range(count)], chunksize=64))
        (folder / ".built").write_text("")
    return folder


def _band(args: tuple[str, int, int]) -> None:
    import zarr

    path, side, band = args
    rows = side // 4
    zarr.open_array(path, mode="r+")[band * rows : (band + 1) * rows] = diverse_band(side, band)


def build_mosaic(folder: Path, gigabytes: float) -> Path:
    """benchmarks/mosaic.py's diverse mosaic, its four bands written by four processes (distinct chunks)."""
    import zarr

    side = side_for(gigabytes)
    path = folder / f"diverse-{side}.zarr"
    if not path.exists():
        zarr.create_array(str(path), shape=(side, side, 3), chunks=(CHUNK, CHUNK, 3), dtype="uint8")
        with ProcessPoolExecutor(4) as pool:
            list(pool.map(_band, [(str(path), side, band) for band in range(4)]))
    return path


_floors: dict = {}


def measure(input_kind: str, path: Path, n: int, k: int, scratch: Path, variant: str = "default") -> dict:
    python = sys.executable
    if (input_kind, n) not in _floors:  # once for every variant
        floor = [python, "-c", DECODE if input_kind == "collection" else READ, str(path), str(n)]
        seconds, peak, out = timed(floor, ok=(0,))
        _floors[input_kind, n] = seconds, peak, float(out.split()[0])
    floor_seconds, floor_peak, floor_inside = _floors[input_kind, n]
    store = scratch / f"{input_kind}-{n}.zarr"
    seconds, peak, out = timed(
        [python, "-c", PALETTE, str(path), str(k), str(n), str(store), variant], ok=(0,)
    )
    run = json.loads(out)
    return {
        "input": input_kind, "variant": variant, "workers": n, "cores": os.cpu_count(), "images": run["images"],
        "megapixels": run["valid"] / 1e6,
        "floor": floor_seconds, "floor_inside": floor_inside, "floor_peak": floor_peak,
        "seconds": seconds, "inside": run["inside"], "peak": peak, "driver_cpu": run["cpu"],
        "stages": stages(run["marks"], run["inside"]),
    }  # fmt: skip


def stages(marks: list, end: float) -> dict:
    """Seconds of the first pass (read, decode, sample), the fit and the counting pass, from the reports."""
    starts = {}
    for at, message in marks:
        for stage, words in (("first", "reading"), ("fit", "fitting"), ("count", "counting the pixels")):
            if message.startswith(words):
                starts.setdefault(stage, at)
    bounds = [starts.get("first", 0.0), starts.get("fit", end), starts.get("count", end), end]
    return {"first": bounds[1] - bounds[0], "fit": bounds[2] - bounds[1], "count": bounds[3] - bounds[2]}


def variant(row: dict) -> str:
    return "" if row["variant"] == "default" else f", {row['variant']}"


def table(rows: list[dict], command: str) -> str:
    lines = [
        "\n### From 2 to 16 worker processes (issues 12 and 13)\n",
        f"`{command}` on {rows[0].get('cores', os.cpu_count())} cores, {time.strftime('%Y-%m-%d')}. Each contender as a whole "
        "process (start, imports, a LocalCluster of N single-thread worker processes) and inside it (once "
        "the workers are up). Floors, no palette_dask code: a pool of N processes decoding every JPEG with "
        "Pillow; the mosaic summed through `dask.array.from_zarr` on the same cluster.\n",
        "| input | workers | floor (s) | palette_dask (s) | ratio | inside: floor / palette_dask (s) "
        "| ratio inside | images/s or MP/s | speed-up vs 2 workers (floor / palette_dask) "
        "| driver CPU per image | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        r.setdefault("variant", "default")
    base = {(r["input"], r["variant"]): r for r in rows if r["workers"] == 2}
    order = sorted(rows, key=lambda r: (r["input"], r["variant"] != "default", r["variant"], r["workers"]))
    for r in order:
        per_image = r["input"] == "collection"
        rate = r["images"] / r["seconds"] if per_image else r["megapixels"] / r["seconds"]
        b = base.get((r["input"], r["variant"]))
        speedup = f"{b['floor'] / r['floor']:.2f}x / {b['seconds'] / r['seconds']:.2f}x" if b else "-"
        driver = f"{1e3 * r['driver_cpu'] / r['images']:.3f} ms" if per_image else "-"
        lines.append(
            f"| {r['input']} ({r['images']:,} images, {r['megapixels']:,.0f} MP){variant(r)} | {r['workers']} "
            f"| {r['floor']:.1f} | {r['seconds']:.1f} | {r['seconds'] / r['floor']:.2f}x "
            f"| {r['floor_inside']:.1f} / {r['inside']:.1f} | {r['inside'] / r['floor_inside']:.2f}x "
            f"| {rate:,.0f} {'images/s' if per_image else 'MP/s'} | {speedup} "
            f"| {driver} | {r['peak'] / 2**20:,.0f} |"
        )
    lines += [
        "\nInside palette_dask, by stage (from its progress reports): the two passes over the pixels, "
        "and the fit between them.\n",
        "| input | workers | first pass (s) | fit (s) | counting pass (s) | both passes: images/s or MP/s "
        "| speed-up of the passes vs 2 workers |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in order:
        s, b = r["stages"], base.get((r["input"], r["variant"]))
        passes = s["first"] + s["count"]
        amount = r["images"] if r["input"] == "collection" else r["megapixels"]
        speedup = f"{(b['stages']['first'] + b['stages']['count']) / passes:.2f}x" if b else "-"
        lines.append(
            f"| {r['input']}{variant(r)} | {r['workers']} | {s['first']:.2f} | {s['fit']:.2f} | {s['count']:.2f} "
            f"| {amount / passes:,.0f} | {speedup} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="16,2,8,4")
    parser.add_argument("--photos", type=int, default=12_000)
    parser.add_argument("--gigabytes", type=float, default=4.0)
    parser.add_argument("--inputs", default="collection,mosaic")
    parser.add_argument(
        "--variants", default="default", help="also computed (no lookup table), decode-twice (nothing kept)"
    )
    parser.add_argument("--dir", default="/tmp/palette-dask-scaling")
    parser.add_argument("--rows", metavar="ROWS.jsonl", help="append each row here as it is measured")
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    inputs, workers = args.inputs.split(","), [int(n) for n in args.workers.split(",")]
    paths = {}
    if "collection" in inputs:
        paths["collection"] = (build_collection(folder, args.photos), 5)
        say(f"collection of {args.photos:,} JPEGs built")
    if "mosaic" in inputs:
        paths["mosaic"] = (build_mosaic(folder, args.gigabytes), 8)
        say("mosaic built")
    if not (folder / "warm.zarr").exists():  # numba's caches written once, not by N workers at once
        warm = build_collection(folder / "warm", 64)
        timed(
            [sys.executable, "-c", PALETTE, str(warm), "5", "2", str(folder / "warm.zarr"), "default"],
            ok=(0,),
        )
        say("warmed up")
    rows = []
    for n in workers:
        for kind, (path, k) in paths.items():
            for variant in args.variants.split(","):
                rows.append(measure(kind, path, n, k, folder, variant))
                say(json.dumps(rows[-1]))
                if args.rows:
                    with open(args.rows, "a") as handle:
                        handle.write(json.dumps(rows[-1]) + "\n")
    command = " ".join(["python benchmarks/scaling.py", *sys.argv[1:]])
    emit(table(rows, command), args.write)


if __name__ == "__main__":
    main()
