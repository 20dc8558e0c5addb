"""Shared helpers of the tests (not fixtures): real image files, trusted references, a headless browser.

Fixtures and hooks live in conftest.py; test modules import these with ``from helpers import ...``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import skimage
import zarr
from PIL import Image

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
REAL_RASTERS = Path(__file__).resolve().parent / "data"  # CC0 rasters from rasterio's tests (data/README.md)
DASK = str(Path(sys.executable).parent / "dask")
PHOTOS = [SKIMAGE_DATA / name for name in ("astronaut.png", "coffee.png", "logo.png")]


def write_png(path: os.PathLike, array: np.ndarray, **save) -> str:
    """Encode an array as a real PNG file (16-bit RGB through imagecodecs)."""
    array = np.asarray(array)
    if array.dtype == np.uint16 and array.ndim == 3:
        import imagecodecs

        Path(path).write_bytes(imagecodecs.png_encode(array))
    else:
        Image.fromarray(array).save(path, format="PNG", **save)
    return str(path)


def photo_crops(n: int, *, seed: int, corners: int, sides: tuple[int, int]):
    """``n`` seeded crops of the real photos (RGB): corners below ``corners``, sides in ``sides``."""
    rng = np.random.default_rng(seed)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in PHOTOS]
    for i in range(n):
        y, x, h, w = *rng.integers(0, corners, 2), *rng.integers(*sides, 2)
        yield photos[i % 3][y : y + h, x : x + w]


def photo_mosaic(rows: int, cols: int) -> np.ndarray:
    """An RGB mosaic of the real photos, cropped to (rows, cols)."""
    tiles = [np.asarray(Image.open(p).convert("RGB").resize((200, 200))) for p in PHOTOS]
    grid = np.vstack(
        [np.hstack([tiles[(i + j) % 3] for j in range(cols // 200 + 1)]) for i in range(rows // 200 + 1)]
    )
    return np.ascontiguousarray(grid[:rows, :cols])



def ome_zarr(path, rgb, version="0.5"):
    """A minimal OME-Zarr image (tczyx, one level) written with plain zarr."""
    group = zarr.open_group(path, mode="w")
    axes = [{"name": n, "type": t} for n, t in zip("tczyx", ["time", "channel", "space", "space", "space"])]
    group.attrs["ome"] = {
        "version": version,
        "multiscales": [{"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": []}]}],
    }
    data = np.moveaxis(rgb, -1, 0)[None, :, None]
    group.create_array("0", shape=data.shape, chunks=(1, 3, 1, 64, 64), dtype=data.dtype)[:] = data
    return path



def write_ome_zarr(path, image, version: str) -> None:
    """``image`` (rows, columns, 3) as an OME-Zarr TCZYX image written by ome-zarr-py, in µm."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    fmt = FormatV04() if version == "0.4" else FormatV05()
    store = parse_url(str(path), mode="w", fmt=fmt).store
    root = zarr.group(store=store, zarr_format=2 if version == "0.4" else 3)
    tczyx = np.moveaxis(image, -1, 0)[np.newaxis, :, np.newaxis]
    write_image(
        tczyx, root, axes="tczyx", fmt=fmt, scale_factors=[2, 4], scale={"y": 0.325, "x": 0.325},
        axes_units={"y": "micrometer", "x": "micrometer"},
    )  # fmt: skip



def periodic_mosaic(side: int, tile: int, period: int) -> np.ndarray:
    """Tiles of ``tile`` pixels, each one of ``period``² different photos (anti-aliased), repeated.

    With tiles the size of the chunks and a period of 2 or 4, a stratified quarter
    of the chunks can hold a single kind of tile: what a sample must never see alone.
    """
    photos = [
        "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "ihc.png", "hubble_deep_field.jpg",
        "camera.png", "motorcycle_left.png", "retina.jpg",
    ]  # fmt: skip
    kinds = [
        np.asarray(Image.open(SKIMAGE_DATA / p).convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS))
        for p in photos[: period * period]
    ]
    n = -(-side // tile)
    rows = [np.hstack([kinds[(i % period) * period + j % period] for j in range(n)]) for i in range(n)]
    return np.ascontiguousarray(np.vstack(rows)[:side, :side])



def every_array(group) -> dict:
    """Every array of a zarr group, label rasters included, by path: to compare whole stores."""
    found = {}

    def walk(node, prefix=""):
        for name, array in node.arrays():
            found[prefix + name] = array[:]
        for name, child in node.groups():
            walk(child, f"{prefix}{name}/")

    walk(group)
    return found


def sklearn_best_inertia(pixels: np.ndarray, k: int, seeds=(0, 1, 2)) -> float:
    """The reference: scikit-learn KMeans, best inertia over ``seeds``."""
    from sklearn.cluster import KMeans

    x = np.asarray(pixels, dtype=np.float64)
    return min(KMeans(n_clusters=k, n_init=1, random_state=s).fit(x).inertia_ for s in seeds)


def exact_errors(block, spec, centers, centers_rgb=None):
    """Each valid pixel's squared distance to its centre and its squared CIELAB error, as computed."""
    from palette_dask.kernels.count import colour_lookup, loop_palette

    pixels = block.reshape(-1, block.shape[-1])
    records, *_ = colour_lookup(loop_palette(spec, centers, centers_rgb))
    keys = (pixels[:, 0].astype(np.int64) << 16) | (pixels[:, 1].astype(np.int64) << 8) | pixels[:, 2]
    if pixels.shape[1] == 4:
        keys = keys[pixels[:, 3] > 0]
    found = records[keys]
    found = found[found["label"] >= 0]
    return found["squared"], found["lab"].astype(np.float64)


def assert_within_bound(estimate, exact_values, measured):
    """An estimate scaled up from ``measured`` pixels is within 4 standard errors of a uniform sample's.

    The bound a uniform random sample of ``measured`` pixels meets with probability 0.99994;
    the sample taken (a Weyl sequence, stratified by label) does better on every layout tried.
    """
    n = len(exact_values)
    bound = 4 * exact_values.std() * n / np.sqrt(measured)
    assert abs(estimate - exact_values.sum()) <= bound, (estimate, exact_values.sum(), bound)


def reference_labels(pixels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Nearest-centre labels computed independently, with numpy broadcasting."""
    x = np.asarray(pixels, dtype=np.float64)
    c = np.asarray(centers, dtype=np.float64)
    return np.argmin(((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2), axis=1)


def browse(chromium: str, url: str, *, screenshot: Path | None = None, size=(1280, 1600)) -> str:
    """Open ``url`` in headless Chromium; returns the DOM after its scripts ran (and takes a screenshot)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--force-color-profile=srgb", "--hide-scrollbars"]
    flags += [f"--window-size={size[0]},{size[1]}"]
    if screenshot is not None:
        command = [chromium, *flags, f"--screenshot={screenshot}", url]
        subprocess.run(command, capture_output=True, timeout=120)
    done = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    return done.stdout


def write_cog(path: Path, rgb: np.ndarray, blocksize: int = 128) -> None:
    """A Cloud-Optimized GeoTIFF by GDAL's COG driver (through rasterio): tiles, overviews, a CRS."""
    import rasterio
    import rasterio.shutil
    from rasterio.transform import Affine

    plain = path.with_suffix(".plain.tif")
    profile = dict(driver="GTiff", width=rgb.shape[1], height=rgb.shape[0], count=3, dtype="uint8")
    transform = Affine(10, 0, 500_000, 0, -10, 4_600_000)  # 10 m pixels, UTM 33N
    with rasterio.open(plain, "w", **profile, crs="EPSG:32633", transform=transform) as out:
        out.write(np.moveaxis(rgb, -1, 0))
    rasterio.shutil.copy(plain, path, driver="COG", blocksize=blocksize, compress="deflate")
    plain.unlink()


#: Where the tests' dask processes listen: the loopback only, dashboards on free ports.
LOOPBACK = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]


@contextlib.contextmanager
def dask_scheduler(folder: Path):
    """A `dask scheduler` on 127.0.0.1, its file in ``folder``: yields ``(address, start_worker, processes)``.

    ``start_worker(*options)`` starts a `dask worker` (a nanny and its worker) joined to it, with
    those options. Every process still running at the end is terminated (killed after 30 s).
    """
    scheduler_file = folder / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    command = [DASK, "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0", *LOOPBACK]
    processes = [subprocess.Popen(command, **quiet)]

    def start_worker(*options: str) -> subprocess.Popen:
        worker = subprocess.Popen([DASK, "worker", address, *options, *LOOPBACK], **quiet)
        processes.append(worker)
        return worker

    try:
        while not scheduler_file.exists():  # written once the scheduler listens
            assert processes[0].poll() is None, "the scheduler did not start"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        yield address, start_worker, processes
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


#: Set to let the tasks of :func:`workers_busy` end (a cluster of threads of this process).
RELEASE = threading.Event()


def hold(i: int) -> int:
    """A task that keeps its worker's thread until :data:`RELEASE` is set."""
    RELEASE.wait()
    return i


@contextlib.contextmanager
def workers_busy(client):
    """Every worker thread of ``client``'s cluster (threads of this process) held by a task, until exit."""
    RELEASE.clear()
    threads = sum(worker["nthreads"] for worker in client.scheduler_info()["workers"].values())
    holders = [client.submit(hold, i, pure=False) for i in range(threads)]
    try:
        yield
    finally:
        RELEASE.set()
        client.gather(holders)
