"""Label rasters as xarray DataArrays lined up with the image given: its coordinates, CRS and transform."""

import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
import zarr

from palette_dask import extract_palette
from palette_dask.errors import StoreError
from palette_dask.inputs.read import array_image


def test_a_rioxarray_scenes_labels_keep_its_coordinates_crs_and_transform(client, real_rasters, tmp_path):
    scene = rioxarray.open_rasterio(real_rasters / "RGB.byte.tif").isel(y=slice(0, 300), x=slice(0, 400))
    result = extract_palette(scene, 4, store=tmp_path / "s.zarr", labels=True, client=client)
    labels = result.labels(0, like=scene)
    stored = zarr.open_group(tmp_path / "s.zarr", mode="r")["labels/0/0"][:]
    assert labels.dims == ("y", "x") and isinstance(labels.data, da.Array)
    np.testing.assert_array_equal(labels.values, stored)
    np.testing.assert_array_equal(labels["x"].values, scene["x"].values)
    np.testing.assert_array_equal(labels["y"].values, scene["y"].values)
    assert labels.rio.crs == scene.rio.crs and labels.rio.transform() == scene.rio.transform()
    assert labels.rio.nodata == 0 and (labels.values == 0).any()  # the scene's no-data border, left out
    assert labels.attrs["flag_values"] == [1, 2, 3, 4] and len(labels.attrs["colors"]) == 4
    counts = np.bincount(labels.values.ravel(), minlength=5)[1:]
    np.testing.assert_array_equal(counts, result.image_counts[0])
    labels.rio.to_raster(tmp_path / "labels.tif")  # as the README shows: rasterio reads it back in place
    with rasterio.open(tmp_path / "labels.tif") as written:
        assert written.crs == scene.rio.crs and written.transform.almost_equals(scene.rio.transform())
        np.testing.assert_array_equal(written.read(1), stored)


@pytest.mark.parametrize("rotated", [False, True])
def test_the_store_keeps_a_rioxarray_scenes_georeference_for_its_labels_and_geotiff(
    client, real_rasters, tmp_path, rotated
):
    """Without ``like``: the store's own record; the label GeoTIFF placed as the scene, read by rasterio."""
    scene = rioxarray.open_rasterio(real_rasters / "RGB.byte.tif").isel(y=slice(0, 300), x=slice(0, 400))
    if rotated:  # a transform with rotation: no coordinates, a ModelTransformation in the GeoTIFF
        scene = scene.drop_vars(["x", "y"]).rio.write_transform(
            rasterio.Affine(30, 5, 101985, 4, -30, 2826915)
        )
    geo = tmp_path / "geo"
    result = extract_palette(scene, 4, store=tmp_path / "s.zarr", labels_geotiff=geo, client=client)
    labels = result.labels(0)
    assert labels.dims == ("y", "x") and labels.rio.crs == scene.rio.crs
    assert labels.rio.transform() == scene.rio.transform() and labels.rio.nodata == 0
    if not rotated:
        np.testing.assert_array_equal(labels["x"].values, scene["x"].values)
        np.testing.assert_array_equal(labels["y"].values, scene["y"].values)
    np.testing.assert_array_equal(labels.values, result.labels(0, like=scene).values)
    (written,) = geo.glob("*.tif")
    with rasterio.open(written) as tif:
        assert tif.crs == scene.rio.crs and tif.transform.almost_equals(scene.rio.transform())
        np.testing.assert_array_equal(tif.read(1), labels.values)
        assert tif.nodata == 0 and (tif.read(1) == 0).any()


@pytest.mark.slow
def test_a_dask_backed_data_array_from_zarr_keeps_its_dimension_names_and_coordinates(client, tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 64, 96), dtype=np.uint8)
    zarr.create_array(tmp_path / "cube.zarr", data=pixels, chunks=(3, 32, 32))
    cube = xr.DataArray(
        da.from_zarr(tmp_path / "cube.zarr"),
        dims=("band", "lat", "lon"),
        coords={"lat": np.linspace(10, 9, 64), "lon": np.linspace(20, 22, 96)},
    ).assign_coords(time=np.datetime64("2026-01-01"))
    result = extract_palette(cube, 3, store=tmp_path / "c.zarr", labels=True, client=client)
    labels = result.labels(0, like=cube)
    assert labels.dims == ("lat", "lon") and labels["time"].values == cube["time"].values
    np.testing.assert_array_equal(labels["lon"].values, cube["lon"].values)
    assert int((labels > 0).sum()) == 64 * 96
    kept = result.labels(0)  # the store's own record: dims and coordinates, no scalar (time) or CRS
    assert kept.dims == ("lat", "lon") and "time" not in kept.coords and kept.rio.crs is None
    np.testing.assert_array_equal(kept["lat"].values, cube["lat"].values)
    np.testing.assert_array_equal(kept.values, labels.values)
    bare = extract_palette(cube.data, 3, store=tmp_path / "n.zarr", labels=True, client=client).labels(0)
    assert (
        bare.dims == ("y", "x") and bare.shape == (64, 96) and not bare.coords
    )  # a dask array declares none
    with pytest.raises(ValueError, match="like has 64 x 95 pixels"):
        result.labels(0, like=cube.isel(lon=slice(0, 95)))
    unlabelled = extract_palette(cube, 3, store=tmp_path / "u.zarr", client=client)
    with pytest.raises(StoreError, match="image 0 has no label raster"):
        unlabelled.labels(0)


def test_an_array_with_irregular_chunks_gets_every_label_written(client, tmp_path):
    """Each counting task writes one shard: chunks as given (400, 200, 400 rows) are made regular first."""
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    lazy = da.from_array(pixels, chunks=((400, 200, 400), (1000,), (3,)))
    _, image = array_image(lazy, "irregular", chunk_bytes=1_500_000)
    assert all(len(set(sides[:-1])) <= 1 for sides in image.chunks)  # regular: a chunk is a shard
    options = {"store": tmp_path / "s.zarr", "labels": True, "chunk_bytes": 1_500_000, "space": "rgb"}
    result = extract_palette(lazy, 3, client=client, **options)
    labels = zarr.open_group(tmp_path / "s.zarr", mode="r")["labels/0/0"][:]
    assert (labels > 0).all()  # no shard left unwritten, none half written over
    np.testing.assert_array_equal(np.bincount(labels.ravel(), minlength=4)[1:], result.image_counts[0])


def test_a_level_of_a_dataset_whose_other_arrays_are_strings_is_read(client, tmp_path):
    """The parent group's attributes are read as JSON only: its string coordinate is not refused."""
    pixels = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    dataset = xr.Dataset({"rgb": (("y", "x", "band"), pixels)}, coords={"band": ["r", "g", "b"]})
    dataset.to_zarr(tmp_path / "scene.zarr", zarr_format=3, consolidated=True)
    result = extract_palette(str(tmp_path / "scene.zarr" / "rgb"), 3, client=client)
    assert result.image_valid[0] == 40 * 50
