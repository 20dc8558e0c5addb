"""Areas: each colour's area from the pixel size the input declares, against a hand computation."""

import json

import numpy as np
import pytest
import rasterio
import rioxarray
import tifffile
from helpers import PHOTOS, photo_mosaic, write_ome_zarr

from palette_dask import extract_palette
from palette_dask.cli import main
from palette_dask.outputs.render import export_palette


@pytest.mark.slow
def test_a_geotiffs_areas_are_its_counts_times_its_pixel_area(capsys, client, real_rasters, tmp_path):
    scene = str(real_rasters / "RGB.byte.tif")
    with rasterio.open(scene) as source:  # by hand: 300 m pixels in UTM 18N
        pixel_area = abs(source.transform.a * source.transform.e)
        assert source.crs.linear_units == "metre" and 90_000 < pixel_area < 90_030
    result = extract_palette(scene, 4, store=tmp_path / "s.zarr", client=client)
    np.testing.assert_allclose(result.areas, result.counts * pixel_area, rtol=1e-12)
    np.testing.assert_allclose(result.image_areas[0], result.image_counts[0] * pixel_area, rtol=1e-12)
    document = result.to_dict()
    assert [entry["area_m2"] for entry in document["palette"]] == pytest.approx(
        [entry["count"] * pixel_area for entry in document["palette"]], rel=1e-12
    )
    assert main(["show", str(tmp_path / "s.zarr")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[-2:] == ["area", "km²"]
    first = document["palette"][0]
    assert table[1].split()[-1] == f"{first['count'] * pixel_area / 1e6:,.2f}"  # the largest share first
    export_palette(result, tmp_path / "p.csv")
    header, row = (tmp_path / "p.csv").read_text().splitlines()[:2]
    assert header.endswith(",area_m2") and float(row.split(",")[-1]) == pytest.approx(
        first["area_m2"], rel=1e-5
    )
    assert main(["report", str(tmp_path / "s.zarr"), "-o", str(tmp_path / "r.html")]) == 0
    assert "area km²" in (tmp_path / "r.html").read_text()

    on_scene = extract_palette(
        rioxarray.open_rasterio(scene), 4, client=client
    )  # rioxarray's CRS and transform
    np.testing.assert_allclose(on_scene.image_pixel_size[0], [300.041782729805, 300.0379266750948])
    np.testing.assert_allclose(on_scene.areas, on_scene.counts * pixel_area, rtol=1e-12)


def test_microscopy_areas_come_from_ome_pixel_sizes(client, tmp_path):
    image = photo_mosaic(200, 300)
    write_ome_zarr(tmp_path / "slide.ome.zarr", image, "0.5")  # 0.325 µm pixels
    tifffile.imwrite(
        tmp_path / "slide.ome.tif", image, photometric="rgb",
        metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25, "PhysicalSizeXUnit": "µm"},
    )  # fmt: skip
    inputs = [
        str(tmp_path / "slide.ome.zarr"),
        str(tmp_path / "slide.ome.zarr" / "s1"),
        str(tmp_path / "slide.ome.tif"),
    ]
    result = extract_palette(inputs, 3, client=client)
    expected = [[0.325e-6, 0.325e-6], [0.65e-6, 0.65e-6], [0.25e-6, 0.5e-6]]  # the level's own scale
    np.testing.assert_allclose(result.image_pixel_size, expected, rtol=1e-12)
    area = np.prod(expected, axis=1)
    np.testing.assert_allclose(result.areas, (result.image_counts * area[:, None]).sum(axis=0), rtol=1e-12)
    assert result.image_counts[0].sum() * area[0] == pytest.approx(200 * 300 * 0.325e-6**2)
    from palette_dask.outputs.render import format_table

    assert "area µm²" in format_table(result)


def test_a_slides_json_gives_each_area_in_the_unit_show_prints(capsys, tmp_path):
    write_ome_zarr(tmp_path / "slide.ome.zarr", photo_mosaic(120, 160), "0.5")  # 0.325 µm pixels
    store = tmp_path / "s.zarr"
    argv = ["run", str(tmp_path / "slide.ome.zarr"), "-k", "3", "-o", str(store), "--threads", "--json"]
    assert main(argv) == 0
    palette = json.loads(capsys.readouterr().out)["palette"]
    assert main(["show", str(store)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[-2:] == ["area", "µm²"]
    for entry, row in zip(palette, table[1:]):  # the same order: the largest share first
        assert entry["area_unit"] == "µm²" and row.split()[-1] == f"{entry['area']:,.2f}"
        assert entry["area"] == pytest.approx(entry["count"] * 0.325**2, rel=1e-12)
        assert entry["area"] == pytest.approx(entry["area_m2"] * 1e12, rel=1e-12)  # beside area_m2
    assert main(["show", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["palette"] == palette


@pytest.mark.slow
def test_no_area_unless_every_image_declares_its_pixel_size(capsys, real_rasters, tmp_path):
    argv = ["run", str(real_rasters / "RGB.byte.tif"), str(PHOTOS[1]), "-k", "3", "--threads", "--json"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert all("area_m2" not in entry for entry in document["palette"])  # the PNG declares none
    assert main([*argv[:2], "-k", "3", "--threads", "-q"]) == 0
    assert "area" in capsys.readouterr().out.splitlines()[0]
    geographic = real_rasters / "world.rgb.tif"  # degrees: no one area per pixel
    with rasterio.open(geographic) as source:
        assert source.crs.is_geographic
    assert main(["run", str(geographic), "-k", "3", "--threads", "--json"]) == 0
    assert all("area_m2" not in entry for entry in json.loads(capsys.readouterr().out)["palette"])
    mercator = tmp_path / "web.tif"  # Web Mercator: 10 map metres a pixel, a quarter of that area at 60°
    with rasterio.open(real_rasters / "RGB.byte.tif") as source:
        profile, pixels = source.profile, source.read()
    profile.update(crs="EPSG:3857", transform=rasterio.Affine(10, 0, 0, 0, -10, 8_400_000))
    with rasterio.open(mercator, "w", **profile) as out:
        out.write(pixels)
    assert main(["run", str(mercator), "-k", "3", "--threads", "--json"]) == 0
    assert all("area_m2" not in entry for entry in json.loads(capsys.readouterr().out)["palette"])
