"""The store's layout is declared once: stores are made as it says; the docs' tables are generated from it."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from helpers import PHOTOS
from PIL import Image

from palette_dask import extract_palette, load_result
from palette_dask.errors import PaletteDaskWarning, StoreError
from palette_dask.outputs.store import ARRAYS, check_layout, layout_table, open_store

ROOT = Path(__file__).resolve().parents[1]


def _generated_block(text: str) -> str:
    start = text.index("<!-- generated: ")
    return text[text.index("\n", start) + 1 : text.index("<!-- end of the generated table -->")]


def test_architecture_shows_the_declared_layout():
    assert _generated_block((ROOT / "ARCHITECTURE.md").read_text()) == layout_table()


def test_the_reference_page_shows_the_declared_layout():
    page = ROOT / "docs" / "reference" / "store.md"
    assert _generated_block(page.read_text()) == layout_table()


def test_a_run_makes_every_declared_array_as_declared(tmp_path, client):
    store = tmp_path / "run.zarr"
    result = extract_palette(PHOTOS, k=4, per_image=3, store=store, client=client)
    group = open_store(store)
    check_layout(group)  # every array declared, with its dims and dtype
    assert sorted(name for name, _ in group.arrays()) == sorted(array.name for array in ARRAYS)
    for array in ARRAYS:
        sizes = {"image": len(PHOTOS), "color": 4, "channel": 3, "side": 2, "own_color": 3}
        assert group[array.name].shape == tuple(sizes[dim] for dim in array.dims)
    data = xr.open_zarr(store, consolidated=False)  # xarray reads the dims the layout names
    np.testing.assert_array_equal(data["image_counts"].values, result.image_counts)


def test_a_store_whose_arrays_are_not_as_declared_is_refused(tmp_path):
    group = zarr.open_group(tmp_path / "odd.zarr", mode="w")
    group.create_array("image_valid", shape=(3,), dtype="float32", dimension_names=["image"])
    with pytest.raises(StoreError, match=r"array image_valid is float32 over \('image',\), where a"):
        check_layout(group)
    group.create_array("extra", shape=(3,), dtype="int64", dimension_names=["image"])
    del group["image_valid"]
    with pytest.raises(StoreError, match="holds an array 'extra' that a palette_dask store does not"):
        check_layout(group)


def test_each_images_shape_is_stored_as_read(tmp_path, client):
    """``image_shape``: rows and columns of each image as read (a mosaic by tiles too), 0 if it failed."""
    mosaic = tmp_path / "m.zarr"
    zarr.create_array(mosaic, shape=(300, 200, 3), chunks=(64, 64, 3), dtype="uint8")[:] = 7
    (tmp_path / "broken.png").write_bytes(b"not a png")
    inputs = [*PHOTOS, mosaic, tmp_path / "broken.png"]
    with pytest.warns(PaletteDaskWarning, match="1 of 5 images failed"):
        result = extract_palette(inputs, k=3, store=tmp_path / "run.zarr", chunk_bytes=2**15, client=client)
    expected = [np.asarray(Image.open(path)).shape[:2] for path in PHOTOS] + [(300, 200), (0, 0)]
    np.testing.assert_array_equal(result.image_shape, expected)
    np.testing.assert_array_equal(load_result(tmp_path / "run.zarr").image_shape, expected)
    assert len(result.failures) == 1
