"""Shared fixtures: real dask clusters, real image files, trusted references."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image

from palette_dask import connect

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
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
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the real test rasters are missing: expected {SHARED_DATA}")
    return SHARED_DATA


def write_png(path: os.PathLike, array: np.ndarray, **save) -> str:
    """Encode an array as a real PNG file (16-bit RGB through imagecodecs)."""
    array = np.asarray(array)
    if array.dtype == np.uint16 and array.ndim == 3:
        import imagecodecs

        Path(path).write_bytes(imagecodecs.png_encode(array))
    else:
        Image.fromarray(array).save(path, format="PNG", **save)
    return str(path)


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
