"""Benchmark: many images, against a plain decode of every file, with the driver's work per image.

Collections, built once into ``--dir`` from scikit-image's photos (random
crops, resized with anti-aliasing, so every file holds many colours):

- ``thumbs``: 20,000 thumbnails of 128 x 96 pixels, half PNG, half JPEG;
- ``crops``: 2,000 small crops (64 to 200 pixels a side), PNG;
- ``photos``: 2,000 photos of mixed sizes (48 to 1024 pixels a side) and formats (PNG, JPEG, TIFF);
- ``tiny``: 1,000,000 images of 8 x 8 pixels, PNG (``--tiny N`` for another count).

For each, as whole processes on this machine:

- **floor**: a plain decode of every file (Pillow, or tifffile for TIFF) in a
  process pool with one process per core: no palette_dask code at all (run
  twice, the second timed: the files are in the page cache for both contenders);
- **palette_dask**: ``palette-dask run DIR`` end to end on the default
  LocalCluster, with the peak memory of the whole process tree;
- **show**: ``palette-dask show STORE --json``, reading the store back;
- **the driver's share**: the same run through the API on a LocalCluster of
  worker processes, so that the driving process does nothing else: its CPU
  seconds per image, the tasks per image (dask's task stream), and its own
  peak memory;
- **the store**: files in it, and files per image.

Every image's counts are checked to add up to its valid pixels, and the
images' to the global counts.

    .venv/bin/python benchmarks/collection.py [--inputs thumbs,crops,photos,tiny] [--dir DIR] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import skimage
import tifffile
import zarr
from measure import emit, timed
from PIL import Image

PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
)

FLOOR = """
import os, sys
from concurrent.futures import ProcessPoolExecutor
import numpy as np
import tifffile
from PIL import Image

def decode(paths):
    total = 0
    for path in paths:
        if path.endswith(".tif"):
            total += int(tifffile.imread(path).size)
        else:
            with Image.open(path) as image:
                total += int(np.asarray(image).size)
    return total

if __name__ == "__main__":
    paths = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(sys.argv[1])
        for name in names
        if name.endswith((".png", ".jpg", ".tif"))
    )
    workers = os.cpu_count()
    parts = [paths[i : i + 2000] for i in range(0, len(paths), 2000)]
    with ProcessPoolExecutor(workers) as pool:
        print(sum(pool.map(decode, parts)))
"""

DRIVER = """
import json, resource, sys, time
from distributed import get_task_stream
from palette_dask import connect, extract_palette

if __name__ == "__main__":
    with connect(processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0") as client:
        client.wait_for_workers(1)
        with get_task_stream(client) as stream:
            wall, cpu = time.perf_counter(), time.process_time()
            result = extract_palette(sys.argv[1], 5, store=sys.argv[2], client=client, overwrite=True)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"cpu": cpu, "wall": wall, "tasks": len(stream.data), "images": len(result.image_names), "rss": rss}))
"""


def _photos() -> list[Image.Image]:
    data = Path(skimage.__file__).parent / "data"
    return [Image.open(data / name).convert("RGB") for name in PHOTOS]


def _crop(rng, photo: Image.Image, width: int, height: int) -> Image.Image:
    """A random crop of a photo, resized with anti-aliasing (Lanczos) to ``width x height``."""
    scale = rng.uniform(0.2, 1.0)
    w = max(width, int(photo.width * scale))
    h = max(height, min(photo.height, int(w * height / width)))
    w = min(w, photo.width)
    x, y = rng.integers(0, photo.width - w + 1), rng.integers(0, photo.height - h + 1)
    return photo.crop((x, y, x + w, y + h)).resize((width, height), Image.LANCZOS)


def build_thumbs(folder: Path, count: int = 20_000) -> None:
    rng, photos = np.random.default_rng(1), _photos()
    for i in range(count):
        path = folder / f"{i // 1000:03d}" / f"t{i:06d}.{'png' if i % 2 else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        _crop(rng, photos[i % len(photos)], 128, 96).save(path, quality=90)


def build_crops(folder: Path, count: int = 2000) -> None:
    rng, photos = np.random.default_rng(2), _photos()
    for i in range(count):
        path = folder / f"{i // 500:02d}" / f"c{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        width, height = (int(v) for v in rng.integers(64, 201, 2))
        photo = np.asarray(photos[i % len(photos)])
        y, x = rng.integers(0, photo.shape[0] - height), rng.integers(0, photo.shape[1] - width)
        Image.fromarray(photo[y : y + height, x : x + width]).save(path)


def build_photos(folder: Path, count: int = 2000) -> None:
    rng, photos = np.random.default_rng(0), _photos()
    for i in range(count):
        side = int(np.exp(rng.uniform(np.log(48), np.log(1024))))
        size = (side, max(16, int(side * rng.uniform(0.6, 1.6))))
        image = photos[i % len(photos)].resize(size, Image.LANCZOS)
        kind = ("png", "jpg", "jpg", "tif")[i % 4]
        path = folder / f"{i // 100:02d}" / f"img{i:05d}.{kind}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "tif":
            tifffile.imwrite(path, np.asarray(image), compression="zlib")
        else:
            image.save(path, quality=90)


def _png(rgb: np.ndarray) -> bytes:
    """A minimal RGB PNG of a small array (faster than Pillow for a million files)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = rgb.shape
    raw = b"".join(b"\0" + row.tobytes() for row in rgb)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def build_tiny(folder: Path, count: int) -> None:
    """8 x 8 patches of the photos, shrunk with anti-aliasing to 1/4 size first."""
    rng = np.random.default_rng(3)
    small = [np.asarray(p.resize((p.width // 4, p.height // 4), Image.LANCZOS)) for p in _photos()]
    for i in range(count):
        photo = small[i % len(small)]
        y, x = rng.integers(0, photo.shape[0] - 8), rng.integers(0, photo.shape[1] - 8)
        path = folder / f"{i // 1000:04d}" / f"p{i:07d}.png"
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_png(np.ascontiguousarray(photo[y : y + 8, x : x + 8])))


def collection(root: Path, kind: str, tiny: int) -> Path:
    builders = {
        "thumbs": (build_thumbs, ()),
        "crops": (build_crops, ()),
        "photos": (build_photos, ()),
        "tiny": (build_tiny, (tiny,)),
    }
    folder = root / (kind if kind != "tiny" else f"tiny-{tiny}")
    if not (folder / ".built").exists():
        print(f"building {folder}...", file=sys.stderr, flush=True)
        build, extra = builders[kind]
        build(folder, *extra)
        (folder / ".built").write_text("")
    return folder


def files_in(path: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(path))


def measure(kind: str, folder: Path, root: Path) -> dict:
    python, cli = sys.executable, str(Path(sys.executable).parent / "palette-dask")
    timed([python, "-c", FLOOR, str(folder)], ok=(0,))  # the files in the page cache, for both
    floor, floor_peak, decoded = timed([python, "-c", FLOOR, str(folder)], ok=(0,))
    store = root / f"{kind}.zarr"
    seconds, peak, document = timed(
        [cli, "run", str(folder), "-o", str(store), "--overwrite", "--json", "-q"]
    )
    result = json.loads(document)
    images = result["images"]["total"]
    assert result["images"]["done"] == images, result["images"]
    group = zarr.open_group(store, mode="r")
    counts, valid = np.zeros(result["k"], np.int64), 0
    for start in range(0, images, group["image_status"].chunks[0]):
        rows = group["image_counts"][start : start + group["image_status"].chunks[0]]
        assert (rows.sum(axis=1) == group["image_valid"][start : start + len(rows)]).all()
        counts += rows.sum(axis=0)
        valid += int(rows.sum())
    assert (counts == group["counts"][:]).all() and valid == result["pixels"]["valid"]
    show, _, _ = timed([cli, "show", str(store), "--json"], ok=(0,))
    files = files_in(store)
    driver = json.loads(
        subprocess.run(
            [python, "-c", DRIVER, str(folder), str(root / f"{kind}-driver.zarr")],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    return {
        "kind": kind, "images": images, "megapixels": valid / 1e6, "floor": floor, "floor_peak": floor_peak,
        "seconds": seconds, "peak": peak, "show": show, "files": files, "driver": driver,
        "batch": int(group.attrs["batch_size"]),
    }  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = [
        "\n## Many images: palette_dask against a plain decode of every file (issue 12)\n",
        f"`.venv/bin/python benchmarks/collection.py --inputs {','.join(r['kind'] for r in rows)}` on "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}. Floor: a process pool ({os.cpu_count()} processes) "
        "decoding every file with Pillow/tifffile, no palette_dask code. palette_dask: `palette-dask run DIR` "
        "on the default LocalCluster, k=5. Driver: the same run through the API on worker processes; CPU "
        "seconds of the driving process and dask tasks, per image.\n",
        "| collection | images | MP | floor (s) | palette_dask (s) | ratio | images/s | peak RSS (MiB) "
        "| store files | `show` (s) | driver CPU per image | driver peak RSS (MiB) | tasks per image | batch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["driver"]
        lines.append(
            f"| {r['kind']} | {r['images']:,} | {r['megapixels']:,.1f} | {r['floor']:.1f} | {r['seconds']:.1f} "
            f"| {r['seconds'] / r['floor']:.2f}x | {r['images'] / r['seconds']:,.0f} | {r['peak'] / 2**20:,.0f} "
            f"| {r['files']:,} | {r['show']:.2f} | {1e3 * d['cpu'] / d['images']:.3f} ms | {d['rss'] / 2**20:,.0f} "
            f"| {d['tasks'] / d['images']:.4f} | {r['batch']:,} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default="thumbs,crops,photos,tiny")
    parser.add_argument("--dir", default="/tmp/palette-collections")
    parser.add_argument("--tiny", type=int, default=1_000_000, help="images in the tiny collection")
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.inputs.split(","):
        rows.append(measure(kind, collection(root, kind, args.tiny), root))
        print(rows[-1], file=sys.stderr, flush=True)
    emit(table(rows), args.write)


if __name__ == "__main__":
    main()
