"""Shared fixtures: real dask clusters, real image files, trusted references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image

from palette_dask import connect

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
REAL_RASTERS = Path(__file__).resolve().parent / "data"  # CC0 rasters from rasterio's tests (data/README.md)
DASK = str(Path(sys.executable).parent / "dask")
PHOTOS = [SKIMAGE_DATA / name for name in ("astronaut.png", "coffee.png", "logo.png")]


@pytest.fixture(scope="session")
def client():
    """A real LocalCluster on threads (2 workers), shared by the session."""
    with connect(processes=False, n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c:
        yield c


@pytest.fixture(scope="session")
def process_client():
    """A real process-based LocalCluster (2 worker processes)."""
    with connect(processes=True, n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c:
        yield c


@pytest.fixture(scope="session")
def real_rasters() -> Path:
    """The real rasters the repository carries in tests/data (see its README for provenance)."""
    return REAL_RASTERS


@pytest.fixture(scope="session")
def remote_cluster(tmp_path_factory):
    """A scheduler and two worker processes started with distributed's own commands, on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("cluster")
    scheduler_file = folder / "scheduler.json"
    loopback = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
    processes = [
        subprocess.Popen(
            [DASK, "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0", *loopback],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [DASK, "worker", address, "--nthreads", "1", "--nworkers", "1", *loopback],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


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


def reference_labels(pixels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Nearest-centre labels computed independently, with numpy broadcasting."""
    x = np.asarray(pixels, dtype=np.float64)
    c = np.asarray(centers, dtype=np.float64)
    return np.argmin(((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2), axis=1)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, headless: `make test` installs it (apt-get install chromium)."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.fail("the report's browser test needs Chromium: run `make test`, or apt-get install chromium")
    return found


def browse(chromium: str, url: str, *, screenshot: Path | None = None, size=(1280, 1600)) -> str:
    """Open ``url`` in headless Chromium; returns the DOM after its scripts ran (and takes a screenshot)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--force-color-profile=srgb", "--hide-scrollbars"]
    flags += [f"--window-size={size[0]},{size[1]}"]
    if screenshot is not None:
        command = [chromium, *flags, f"--screenshot={screenshot}", url]
        subprocess.run(command, capture_output=True, timeout=120)
    done = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    return done.stdout
