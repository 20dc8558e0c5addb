"""GeoTIFF label rasters, opened with rasterio as QGIS would: georeferencing, values, colours, overviews."""

import shutil
from xml.etree import ElementTree

import numpy as np
import pytest
import rasterio
import zarr
from helpers import photo_mosaic, write_png

from palette_dask import InputError, extract_palette


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the PNG's, as expected
@pytest.mark.slow
def test_a_geotiff_scene_keeps_its_crs_and_transform(client, real_rasters, tmp_path):
    scene = tmp_path / "RGB.byte.tif"
    shutil.copy(real_rasters / "RGB.byte.tif", scene)
    photo = write_png(tmp_path / "photo.png", photo_mosaic(2600, 2100))  # 2600 a side: a pyramid, overviews
    result = extract_palette(
        [str(scene), photo], 4, store=tmp_path / "s.zarr", labels_geotiff=tmp_path / "geo", client=client
    )
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")
    with rasterio.open(scene) as source, rasterio.open(tmp_path / "geo" / "RGB.byte.labels.tif") as labels:
        assert labels.crs == source.crs and labels.crs is not None
        assert labels.transform == source.transform and labels.shape == source.shape
        assert labels.nodata == 0 and labels.profile["tiled"]
        np.testing.assert_array_equal(labels.read(1), group["labels/0/0"][:])
        assert (labels.read(1) == 0).sum() == result.image_masked[0]  # the scene's nodata border
        colormap = labels.colormap(1)
        assert [colormap[j + 1][:3] for j in range(4)] == [tuple(map(int, c)) for c in result.colors]
        assert labels.descriptions == ("palette_dask colour ids",)  # GDAL read the .aux.xml beside it
    # the classes as QGIS reads them: category names, a raster attribute table with counts and areas
    band = ElementTree.parse(tmp_path / "geo" / "RGB.byte.labels.tif.aux.xml").find("PAMRasterBand")
    names = {entry["id"]: entry["name"] for entry in result.palette()}
    assert [c.text or "" for c in band.find("CategoryNames")] == ["", *(names[i] for i in range(1, 5))]
    table = band.find("GDALRasterAttributeTable")
    columns = [field.findtext("Name") for field in table.findall("FieldDefn")]
    assert columns == ["Value", "Count", "Name", "Hex", "Red", "Green", "Blue", "Share", "Area_m2"]
    rows = [dict(zip(columns, (f.text for f in row.findall("F")))) for row in table.findall("Row")]
    assert [int(row["Value"]) for row in rows] == [1, 2, 3, 4]
    assert [int(row["Count"]) for row in rows] == list(result.image_counts[0])
    with rasterio.open(scene) as source:  # by hand: pixels x 300 m x 300 m
        pixel = abs(source.transform.a * source.transform.e)
    assert [float(row["Area_m2"]) for row in rows] == pytest.approx(list(result.image_counts[0] * pixel))
    assert [(int(row["Red"]), int(row["Green"]), int(row["Blue"])) for row in rows] == [
        tuple(map(int, c)) for c in result.colors
    ]
    with rasterio.open(tmp_path / "geo" / "photo.labels.tif") as labels:
        assert labels.crs is None and labels.overviews(1) == [2, 4]  # the store's pyramid levels
        np.testing.assert_array_equal(labels.read(1), group["labels/1/0"][:])
        np.testing.assert_array_equal(labels.read(1, out_shape=(650, 525)), group["labels/1/2"][:])


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_geotiffs_are_never_written_over_files_without_overwrite(client, tmp_path):
    photo = write_png(tmp_path / "p.png", photo_mosaic(60, 80))
    (tmp_path / "geo").mkdir()
    (tmp_path / "geo" / "p.labels.tif").write_bytes(b"someone's file")
    with pytest.raises(InputError, match="already exists"):
        extract_palette(photo, 3, store=tmp_path / "s.zarr", labels_geotiff=tmp_path / "geo", client=client)
    assert (tmp_path / "geo" / "p.labels.tif").read_bytes() == b"someone's file"
    assert not (tmp_path / "s.zarr").exists()  # refused before anything was made
    (tmp_path / "geo" / "p.labels.tif").unlink()
    (tmp_path / "geo" / "p.labels.tif.aux.xml").write_bytes(b"someone's classes")  # beside no file of ours
    with pytest.raises(InputError, match=r"p.labels.tif.aux.xml: already exists"):
        extract_palette(photo, 3, store=tmp_path / "s.zarr", labels_geotiff=tmp_path / "geo", client=client)
    assert (tmp_path / "geo" / "p.labels.tif.aux.xml").read_bytes() == b"someone's classes"
    extract_palette(
        photo, 3, store=tmp_path / "s.zarr", labels_geotiff=tmp_path / "geo", client=client, overwrite=True
    )
    with rasterio.open(tmp_path / "geo" / "p.labels.tif") as labels:
        assert labels.shape == (60, 80)
