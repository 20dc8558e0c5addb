"""No-data the input declares is honoured: rioxarray's, xarray's _FillValue, a zarr array's CF attributes.

Each run's masked pixels are compared with a numpy mask of the same pixels
(the chosen bands all equal to the value), and the value applied is in the
JSON and the table.
"""

import json

import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
import zarr

from palette_dask import extract_palette
from palette_dask.cli import main


@pytest.fixture(scope="module")
def scene(real_rasters):
    """RGB.byte.tif (GDAL_NODATA 0: a black border), as rasterio reads it: (bands, rows, cols)."""
    with rasterio.open(real_rasters / "RGB.byte.tif") as source:
        return real_rasters / "RGB.byte.tif", source.read()


def numpy_mask(bands: np.ndarray, order, value=0) -> int:
    """Pixels whose chosen bands all equal ``value``."""
    return int(np.all(bands[list(order)] == value, axis=0).sum())


@pytest.mark.slow
def test_a_rioxarray_scene_with_bands_selected_leaves_its_nodata_out(client, scene):
    path, bands = scene
    opened = rioxarray.open_rasterio(path)
    assert opened.rio.nodata == 0 and "_FillValue" in opened.attrs
    window = opened.sel(band=[3, 2, 1]).isel(y=slice(0, 500), x=slice(0, 600))
    expected = numpy_mask(bands[:, :500, :600], (2, 1, 0))
    assert 0 < expected < 500 * 600  # the window holds part of the border
    result = extract_palette(window, 4, client=client, report=lambda line: None)
    assert result.image_masked.tolist() == [expected]
    assert result.to_dict()["nodata"] == {"values": [0], "from": "inputs"}
    masked = rioxarray.open_rasterio(path, masked=True).sel(band=[3, 2, 1])  # no-data as NaN, band by band
    result = extract_palette(masked, 4, client=client, report=lambda line: None, scale=(0, 255))
    assert result.image_masked.tolist() == [int(np.any(bands[[2, 1, 0]] == 0, axis=0).sum())]


def test_an_xarray_fill_value_and_a_zarr_arrays_cf_attribute(client, tmp_path, scene):
    _, bands = scene
    rgb = np.moveaxis(bands[:, 200:400, 300:500], 0, -1).copy()
    rgb[:20] = 7  # a band of no-data, 7 in every band
    expected = int(np.all(rgb == 7, axis=-1).sum())
    array = xr.DataArray(rgb, dims=("y", "x", "band"), attrs={"_FillValue": 7})
    result = extract_palette(array, 3, client=client, report=lambda line: None)
    assert result.image_masked.tolist() == [expected]
    array.to_dataset(name="image").to_zarr(tmp_path / "scene.zarr", zarr_format=3, consolidated=False)
    assert zarr.open_array(tmp_path / "scene.zarr" / "image", mode="r").attrs["_FillValue"] == 7
    messages = []
    result = extract_palette(str(tmp_path / "scene.zarr" / "image"), 3, client=client, report=messages.append)
    assert result.image_masked.tolist() == [expected]
    assert any("no-data value their input declares (7: " in m for m in messages)
    zarr.create_array(tmp_path / "plain.zarr", data=rgb, dimension_names=["y", "x", "c"], fill_value=7)
    result = extract_palette(str(tmp_path / "plain.zarr"), 3, client=client, report=lambda line: None)
    assert result.image_masked.tolist() == [0]  # a zarr fill_value alone is what unwritten chunks hold
    result = extract_palette(array, 3, client=client, nodata=5, report=lambda line: None)
    assert result.image_masked.tolist() == [0]
    assert result.to_dict()["nodata"] == {"values": [5], "from": "option"}


def test_the_value_applied_is_in_the_json_and_the_table(capsys, scene):
    path, bands = scene
    assert main(["run", str(path), "--threads", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["nodata"] == {"values": [0], "from": "inputs"}
    assert document["pixels"]["masked"] == numpy_mask(bands, (0, 1, 2))
    assert main(["run", str(path), "--threads", "-q"]) == 0
    assert "no-data: pixels whose colour bands all equal 0 are left out (declared by the inputs" in (
        capsys.readouterr().out
    )
