"""STAC items as inputs: a static catalog (pystac) of two dates of a 3-band COG scene, locally and over http.

Each band is a single-band COG written here (rasterio's COG driver: tiles of 128, overviews); the same
pixels are also written as a plain 3-band GeoTIFF, the reference: the items must give its counts and
palette. The COGs declare no no-data: the items do (``raster:bands``), and the corner they mark must be
left out as the GeoTIFF's own ``nodata`` leaves it out.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

pystac = pytest.importorskip("pystac")
rasterio = pytest.importorskip("rasterio")

from rasterio.transform import from_origin  # noqa: E402
from servers import RangeHandler, http_server, moto_s3_env  # noqa: E402

from palette_dask import extract_palette, load_result  # noqa: E402
from palette_dask.cli import EXIT_ERROR, main  # noqa: E402
from palette_dask.errors import ImageReadError, InputError  # noqa: E402
from palette_dask.inputs.fetch import READ_AHEAD  # noqa: E402
from palette_dask.inputs.read import probe, pyramid_level, read_image  # noqa: E402
from palette_dask.inputs.sources import resolve_sources  # noqa: E402

ROWS, COLS, TILE, CORNER = 512, 640, 128, 64
EPSG, SIZE = 32633, 10.0
TRANSFORM = from_origin(500_000, 5_600_000, SIZE, SIZE)
BANDS = (("B04", "red"), ("B03", "green"), ("B02", "blue"))
DATES = ("2024-06-01T10:00:00Z", "2024-08-15T10:00:00Z")
SCALE = (0, 4000)  # the display range, given: the runs compared do not depend on the default


def scene(date: int) -> np.ndarray:
    """``(3, rows, cols)`` uint16: forest, water and a town (wider on the second date), a no-data corner."""
    rng = np.random.default_rng(date)
    image = np.empty((3, ROWS, COLS), np.uint16)
    image[:] = np.array([800, 1500, 600], np.uint16)[:, None, None]  # forest
    image[:, :, COLS // 2 :] = np.array([300, 500, 1200], np.uint16)[:, None, None]  # water
    town = slice(200, 260 if date == 0 else 360)
    image[:, town, :] = np.array([3000, 2900, 2800], np.uint16)[:, None, None]
    image += rng.integers(0, 60, image.shape, dtype=np.uint16)
    image[:, :CORNER, :CORNER] = 0  # no data, declared by the items only
    return image


def write_cog(path, bands: np.ndarray, *, nodata=None) -> None:
    profile = dict(
        driver="COG", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0],
        dtype=str(bands.dtype),
        crs=f"EPSG:{EPSG}", transform=TRANSFORM, blocksize=TILE, compress="deflate", nodata=nodata,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as out:
        out.write(bands)


def make_item(folder, date: int) -> pystac.Item:
    from pystac.extensions.eo import Band, EOExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterBand, RasterExtension

    pixels = scene(date)
    folder.mkdir(parents=True, exist_ok=True)
    west, north = TRANSFORM.c, TRANSFORM.f
    bbox = [west, north - ROWS * SIZE, west + COLS * SIZE, north]
    corners = [
        (bbox[0], bbox[1]),
        (bbox[2], bbox[1]),
        (bbox[2], bbox[3]),
        (bbox[0], bbox[3]),
        (bbox[0], bbox[1]),
    ]
    geometry = {"type": "Polygon", "coordinates": [[list(corner) for corner in corners]]}
    item = pystac.Item(f"scene-{date + 1}", geometry, bbox, pystac.utils.str_to_datetime(DATES[date]), {})
    projection = ProjectionExtension.ext(item, add_if_missing=True)
    projection.epsg, projection.shape, projection.transform = EPSG, [ROWS, COLS], list(TRANSFORM)[:6]
    EOExtension.add_to(item)
    RasterExtension.add_to(item)
    for band, (key, colour) in zip(pixels, BANDS):
        path = folder / f"{key}.tif"
        write_cog(path, band[None])
        asset = pystac.Asset(str(path), media_type=pystac.MediaType.COG, roles=["data"])
        item.add_asset(key, asset)
        EOExtension.ext(asset).bands = [Band.create(name=key, common_name=colour)]
        RasterExtension.ext(asset).bands = [RasterBand.create(nodata=0, data_type="uint16")]
    plain = folder / "scene.tif"  # the reference: the same pixels, one 3-band GeoTIFF, its own nodata
    with rasterio.open(
        plain, "w", driver="GTiff", width=COLS, height=ROWS, count=3, dtype="uint16", crs=f"EPSG:{EPSG}",
        transform=TRANSFORM, tiled=True, blockxsize=TILE, blockysize=TILE, nodata=0,
    ) as out:  # fmt: skip
        out.write(pixels)
    return item


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """``(root, items, collection)``: a self-contained catalog, its two item files, one collection of both."""
    root = tmp_path_factory.mktemp("stac").resolve()
    items = [make_item(root / f"date{date + 1}", date) for date in range(2)]
    cat = pystac.Catalog("scenes", "two dates of a 3-band scene")
    cat.add_items(items)
    cat.normalize_hrefs(str(root))
    cat.make_all_asset_hrefs_relative()
    cat.save(pystac.CatalogType.SELF_CONTAINED)  # asset hrefs relative to each item's file
    files = [root / item.id / f"{item.id}.json" for item in items]
    features = []
    for file in files:  # the collection beside the folders: each asset's href relative to it
        found = json.loads(file.read_text())
        for asset in found["assets"].values():
            asset["href"] = str((file.parent / asset["href"]).resolve().relative_to(root))
        features.append(found)
    collection = root / "search.json"  # as a STAC API search saved: a FeatureCollection with extra members
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": features, "numberMatched": 2}))
    return root, files, collection


def references(root) -> list:
    return [root / f"date{date + 1}" / "scene.tif" for date in range(2)]


def run(inputs, client, **options):
    return extract_palette(inputs, 4, client=client, scale=SCALE, seed=1, **options)


def test_an_item_is_one_image_of_its_assets_stacked_as_the_plain_geotiff_holds_them(catalog):
    root, files, collection = catalog
    (source,) = resolve_sources(files[0])
    assert source.item and source.text == f"{files[0]}#scene-1"
    # a glob of item files, and one item of a collection named as a store names it
    assert [s.text for s in resolve_sources(str(root / "scene-*" / "*.json"))] == [
        f"{f}#{f.stem}" for f in files
    ]
    assert resolve_sources(f"{collection}#scene-2") == [f"{collection}#scene-2"]
    info = probe(source, assets=("red", "green", "blue"))  # band common names, eo:bands
    assert info.shape == (ROWS, COLS, 3) and info.dtype == "uint16" and info.format == "stac"
    assert info.nodata == 0 and info.crs == f"EPSG:{EPSG}" and info.pixel_size == (SIZE, SIZE)
    assert info.datetime == DATES[0] and info.band_names == ("red", "green", "blue")
    window = read_image(info, chunk_bytes=2**16)[100:300, 50:400].compute(scheduler="sync")
    np.testing.assert_array_equal(window, np.moveaxis(scene(0), 0, -1)[100:300, 50:400])
    # asset keys name the same files; the order asked is the bands' order
    keys = probe(source, assets=("B02", "B03", "B04"))
    assert [p.source.path for p in keys.parts] == [p.source.path for p in info.parts[::-1]]
    # previews read the COGs' overviews, each band's the same level
    level = pyramid_level(info, 200)
    assert level.shape == (256, 320, 3) and level.level == 1
    with tifffile.TiffFile(info.parts[0].source.text) as tif:
        overview = tif.series[0].levels[1].asarray()
    np.testing.assert_array_equal(read_image(level).compute(scheduler="sync")[..., 0], overview)


@pytest.mark.slow
def test_items_count_as_the_plain_geotiffs_with_their_dates_crs_and_pixel_size(catalog, client, tmp_path):
    root, files, collection = catalog
    store, labels = tmp_path / "items.zarr", {"items": tmp_path / "items-labels", "plain": tmp_path / "plain"}
    items = run(
        [str(f) for f in files], client, assets=("red", "green", "blue"), store=store,
        labels_geotiff=labels["items"],
    )  # fmt: skip
    plain = run(references(root), client, store=tmp_path / "plain.zarr", labels_geotiff=labels["plain"])
    np.testing.assert_array_equal(items.colors, plain.colors)
    np.testing.assert_array_equal(items.image_counts, plain.image_counts)
    np.testing.assert_array_equal(items.image_masked, plain.image_masked)
    assert (items.image_masked == CORNER * CORNER).all()  # the items' no-data, the COGs declaring none
    stored = load_result(store)
    assert stored.image_names == [f"{files[0]}#scene-1", f"{files[1]}#scene-2"]
    assert stored.image_datetime == list(DATES)
    assert stored.image_crs == [f"EPSG:{EPSG}"] * 2 == plain.image_crs  # the GeoTIFFs' GeoKeys say the same
    np.testing.assert_array_equal(stored.image_pixel_size, [[SIZE, SIZE]] * 2)
    # each item's label GeoTIFF, named by its id, lies where the item does, as the plain scene's does
    for date in range(2):
        with rasterio.open(labels["items"] / f"scene-{date + 1}.labels.tif") as mine:
            with rasterio.open(labels["plain"] / f"scene-{date}.labels.tif") as reference:
                assert mine.crs == reference.crs == f"EPSG:{EPSG}"
                assert mine.transform == reference.transform == TRANSFORM
                np.testing.assert_array_equal(mine.read(), reference.read())
    # the collection (a saved search) gives the same rows, named by it
    listed = run(collection, client, assets=("red", "green", "blue"))
    assert listed.image_names == [f"{collection}#scene-1", f"{collection}#scene-2"]
    np.testing.assert_array_equal(listed.image_counts, plain.image_counts)


def test_a_visual_asset_is_read_without_assets_and_its_absence_is_one_line(catalog, tmp_path, capsys):
    root, files, _ = catalog
    found = json.loads(files[0].read_text())
    with pytest.raises(ImageReadError, match=r"#scene-1: has no 'visual' asset .*its assets: B04, B03, B02$"):
        probe(f"{files[0]}#scene-1")
    visual = tmp_path / "visual.tif"
    write_cog(visual, scene(0), nodata=0)
    found["assets"] = {"visual": {"href": str(visual), "type": pystac.MediaType.COG}}
    item = tmp_path / "item.json"
    item.write_text(json.dumps(found))
    info = probe(f"{item}#scene-1")
    assert info.shape == (ROWS, COLS, 3) and info.nodata == 0 and info.crs == f"EPSG:{EPSG}"
    np.testing.assert_array_equal(read_image(info).compute(scheduler="sync"), np.moveaxis(scene(0), 0, -1))


def test_stac_1_1_bands_name_the_assets_and_a_cog_is_preferred_to_its_jp2_twin(catalog):
    """STAC 1.1: ``bands`` with ``eo:common_name`` and ``nodata``; Earth Search's ``red`` and ``red-jp2``."""
    root, _, _ = catalog
    assets = {}
    for key, colour in BANDS:
        band = {"name": key, "eo:common_name": colour, "nodata": 0, "data_type": "uint16"}
        assets[colour] = {"href": f"date1/{key}.tif", "type": pystac.MediaType.COG, "bands": [band]}
        assets[f"{colour}-jp2"] = {"href": f"date1/{key}.jp2", "type": "image/jp2", "bands": [band]}
    item = {
        "type": "Feature", "stac_version": "1.1.0", "id": "s2", "geometry": None, "assets": assets,
        "properties": {"datetime": None, "start_datetime": DATES[0], "proj:code": f"EPSG:{EPSG}"},
    }  # fmt: skip
    (root / "s2.json").write_text(json.dumps(item))
    info = probe(f"{root / 's2.json'}#s2", assets=("B04", "green", "blue"))  # a band's name, common names
    assert [p.source.path for p in info.parts] == [str(root / "date1" / f"{key}.tif") for key, _ in BANDS]
    assert info.nodata == 0 and info.datetime == DATES[0] and info.crs == f"EPSG:{EPSG}"
    assert info.pixel_size == (SIZE, SIZE)  # no proj:transform: the COGs' GeoKeys
    # two JPEG 2000 assets of band B04: no COG to prefer, so its name is ambiguous
    item["assets"]["red"] = {**item["assets"]["red"], "href": "date1/B04.jp2", "type": "image/jp2"}
    (root / "s2-twins.json").write_text(json.dumps(item))
    with pytest.raises(
        ImageReadError, match=r"band 'B04' is in several assets \(red, red-jp2\); name one by its key$"
    ):
        probe(f"{root / 's2-twins.json'}#s2", assets=("B04", "green", "blue"))


@pytest.mark.parametrize(
    "case, error",
    [
        ("a missing asset", r"#scene-1: no asset or band named 'swir16'; its assets: B04, B03, B02$"),
        ("assets of different sizes", r"#scene-1: its assets differ in rows and columns \(B04 512 x 640, "
                                      r"B03 256 x 320, B02 512 x 640\); choose assets of one size$"),
        ("another proj:shape", r"#scene-1: asset B04 is 512 x 640 pixels, not the 500 x 640 of its "
                               r"proj:shape$"),
        ("a missing file", r"B03.tif: no such file$"),
    ],
)  # fmt: skip
def test_a_bad_item_fails_in_one_line(catalog, tmp_path, case, error):
    root, files, _ = catalog
    found = json.loads(files[0].read_text())
    for asset in found["assets"].values():
        asset["href"] = str((files[0].parent / asset["href"]).resolve())
    assets = ("red", "green", "blue")
    if case == "a missing asset":
        assets = ("red", "green", "swir16")
    elif case == "assets of different sizes":
        small = tmp_path / "small.tif"
        write_cog(small, scene(0)[1:2, ::2, ::2])
        found["assets"]["B03"]["href"] = str(small)
    elif case == "another proj:shape":
        found["properties"]["proj:shape"] = [500, 640]
    else:
        found["assets"]["B03"]["href"] = str(tmp_path / "B03.tif")
    item = tmp_path / "item.json"
    item.write_text(json.dumps(found))
    (source,) = resolve_sources(item)
    with pytest.raises(ImageReadError, match=error) as raised:
        probe(source, assets=assets)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "document, error",
    [
        ({"type": "Catalog", "id": "x", "links": []},
         r"not a STAC item or item collection \(a JSON document of type 'Catalog'"),
        ("{not json", r"not a STAC item or item collection \(not JSON"),
        ({"type": "FeatureCollection", "features": []}, r"the item collection holds no items$"),
        ({"type": "FeatureCollection", "features": [{"type": "Feature", "assets": {}}]},
         r"feature 1 is not a STAC item \(it has no id\)$"),
    ],
)  # fmt: skip
def test_a_document_that_is_not_an_item_is_refused_in_one_line(tmp_path, capsys, document, error):
    path = tmp_path / "thing.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(InputError, match=error):
        resolve_sources(path)
    assert main(["run", str(path), "-q", "-o", str(tmp_path / "out.zarr")]) == EXIT_ERROR
    line = capsys.readouterr().err.strip()
    assert str(path) in line and "\n" not in line


@pytest.fixture
def www(catalog):
    class Counting(RangeHandler):  # counts of its own
        pass

    with http_server(catalog[0], Counting) as served:
        yield served


@pytest.mark.parametrize(
    "how, chunk_bytes, wholes, headers",
    [
        # 2 MB decoded: each COG's header, then the file in one request (as a small TIFF is read)
        ("each file whole, one request", None, 1, 4),
        # 4 chunks of 128 rows: their tiles by ranges, and each task's header (a read-ahead block each)
        ("tile by tile, kept between the passes", 2**19, 0, 8),
    ],
)
@pytest.mark.slow
def test_items_over_http_are_read_by_ranges_to_the_local_result(
    catalog, www, client, how, chunk_bytes, wholes, headers
):
    root, files, collection = catalog
    url, handler = www
    named = [f"{url}/{f.relative_to(root).as_posix()}" for f in files]
    sizes = {} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}
    handler.sent.clear(), handler.whole.clear()
    remote = run(named, client, assets=("red", "green", "blue"), **sizes)
    local = run([str(f) for f in files], client, assets=("red", "green", "blue"), **sizes)
    np.testing.assert_array_equal(remote.image_counts, local.image_counts)
    np.testing.assert_array_equal(remote.colors, local.colors)
    assert remote.image_names == [f"{n}#scene-{i + 1}" for i, n in enumerate(named)]
    cogs = [path for path in handler.sent if path.endswith(".tif")]
    assert len(cogs) == 6
    for path in cogs:
        file = root / path.lstrip("/")
        with tifffile.TiffFile(file) as tif:  # the full-resolution tiles; overviews are not read
            full = sum(tif.pages[0].databytecounts)
        reads = file.stat().st_size if chunk_bytes is None else full
        assert reads <= handler.sent[path] <= reads + headers * READ_AHEAD, how
        assert handler.whole[path] == wholes, how
    listed = run(f"{url}/{collection.name}", client, assets=("red", "green", "blue"), **sizes)
    np.testing.assert_array_equal(listed.image_counts, local.image_counts)


@pytest.mark.s3
@pytest.mark.slow
def test_items_in_object_storage_find_their_assets_beside_them(catalog, client):
    """An s3:// document's relative hrefs are resolved in its bucket (urljoin leaves them as they are)."""
    root, files, collection = catalog
    with moto_s3_env():
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("stac")
        tifs = [root / f"date{d}" / f"{k}.tif" for d in (1, 2) for k, _ in BANDS]
        for path in [*files, collection, root / "catalog.json", *tifs]:
            fs.put(str(path), f"stac/{path.relative_to(root).as_posix()}")
        named = [f"s3://stac/{f.relative_to(root).as_posix()}" for f in files]
        # a glob of documents: the items, the catalog skipped
        globbed = [s.text for s in resolve_sources("s3://stac/*/*.json")]
        assert globbed == [f"{n}#{f.stem}" for n, f in zip(named, files)]
        remote = run([*named, f"s3://stac/{collection.name}"], client, assets=("red", "green", "blue"))
    local = run([*map(str, files), str(collection)], client, assets=("red", "green", "blue"))
    assert remote.image_names == [f"{named[0]}#scene-1", f"{named[1]}#scene-2"] + [
        f"s3://stac/{collection.name}#scene-{i}" for i in (1, 2)
    ]
    np.testing.assert_array_equal(remote.image_counts, local.image_counts)
    assert (remote.image_status == 1).all()


def test_compare_over_the_dates_of_one_store(catalog, client, tmp_path, capsys):
    root, _, collection = catalog
    store = tmp_path / "dates.zarr"
    run(collection, client, assets=("red", "green", "blue"), store=store)
    assert main(["compare", str(store), "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    assert comparison["columns"] == [date[:10] for date in DATES]
    result = load_result(store)
    for entry in comparison["palette"]:
        i = entry["id"] - 1
        assert entry["counts"] == [int(result.image_counts[0, i]), int(result.image_counts[1, i])]
    town = max(comparison["palette"], key=lambda entry: entry["change"])  # the town grew by 100 rows
    assert town["change"] == pytest.approx(100 * COLS / (ROWS * COLS - CORNER * CORNER))
    assert main(["show", str(store), "--images"]) == 0
    shown = capsys.readouterr().out
    assert DATES[0] in shown and DATES[1] in shown
    assert main(["show", str(store), "--images", "--json"]) == 0
    images = json.loads(capsys.readouterr().out)["images"]
    assert [image["datetime"] for image in images] == list(DATES)
    assert [image["crs"] for image in images] == [f"EPSG:{EPSG}"] * 2


@pytest.mark.slow
def test_a_later_date_appended_to_a_store_is_compared_with_the_first(catalog, client, tmp_path, capsys):
    _, _, collection = catalog
    store = tmp_path / "grown.zarr"
    first = run(f"{collection}#scene-1", client, assets=("red", "green", "blue"), store=store)
    grown = extract_palette(f"{collection}#scene-2", client=client, store=store, append=True)
    both = run(collection, client, assets=("red", "green", "blue"))
    assert grown.image_datetime == list(DATES) and grown.image_crs == [f"EPSG:{EPSG}"] * 2
    np.testing.assert_array_equal(grown.image_counts[0], first.image_counts[0])
    assert grown.image_valid.tolist() == both.image_valid.tolist()  # the same items, counted by its palette
    assert main(["compare", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["columns"] == [date[:10] for date in DATES]


def test_a_store_of_items_records_its_assets_and_previews_them_from_the_overviews(catalog, client, tmp_path):
    from palette_dask.outputs.report import preview

    _, files, _ = catalog
    store = tmp_path / "one.zarr"
    run(str(files[0]), client, assets=("B04", "B03", "B02"), store=store)
    result = load_result(store)
    assert result.config.assets == ("B04", "B03", "B02")  # stored: a resume or a report reads the same bands
    shown, recoloured = preview(result, 0, side=200)
    overviews = []
    for key, _ in BANDS:  # each band's first overview, as tifffile decodes it
        with tifffile.TiffFile(files[0].parent.parent / "date1" / f"{key}.tif") as tif:
            overviews.append(tif.series[0].levels[1].asarray())
    overview = np.stack(overviews, axis=-1)
    assert overview.shape == (256, 320, 3) and shown.shape == recoloured.shape == (128, 160, 4)
    step = 2  # the first overview of at least 200 pixels, shown within 200
    expected = overview[::step, ::step].astype(float) * 255 / SCALE[1]
    valid = shown[..., 3] == 255
    assert (valid == overview[::step, ::step].any(axis=-1)).all()  # the items' no-data, left out
    assert np.abs(shown[..., :3][valid] - np.clip(expected[valid], 0, 255)).max() <= 1


def test_a_store_without_datetimes_still_opens(tmp_path, client, capsys):
    import zarr

    store = tmp_path / "old.zarr"
    image = np.zeros((8, 8, 3), np.uint8) + np.arange(8, dtype=np.uint8)[:, None, None] * 30
    extract_palette(image, 2, client=client, store=store)
    group = zarr.open_group(store, mode="r+")
    del group["image_datetime"], group["image_crs"]  # as a store made before they were stored
    result = load_result(store)
    assert result.image_datetime is None and result.image_crs is None
    capsys.readouterr()
    assert main(["show", str(store), "--images", "--json"]) == 0
    (image,) = json.loads(capsys.readouterr().out)["images"]
    assert "datetime" not in image and "crs" not in image and image["shares"]


def single_item(catalog, folder, name="item.json", id="scene-1", hrefs=None):
    """A copy of the first item in ``folder`` (its hrefs absolute unless ``hrefs`` gives them), its path."""
    _, files, _ = catalog
    found = json.loads(files[0].read_text())
    found["id"] = id
    for key, asset in found["assets"].items():
        asset["href"] = (hrefs or {}).get(key) or str((files[0].parent / asset["href"]).resolve())
    path = folder / name
    path.write_text(json.dumps(found))
    return path


@pytest.mark.parametrize("href", ["file://{path}", "file://localhost{path}", "file://host{path}"])
def test_a_document_read_from_a_url_never_reads_a_file_of_this_machine(catalog, tmp_path, href):
    """A served item naming a local file (file://, any host) is one line; the file is not opened."""
    secret = tmp_path / "secret.tif"
    write_cog(secret, scene(0)[:1])
    served = tmp_path / "www"
    served.mkdir()
    wanted = href.format(path=secret)
    single_item(catalog, served, hrefs={"B04": wanted})
    with http_server(served) as (url, _):
        (source,) = resolve_sources(f"{url}/item.json")
        with pytest.raises(ImageReadError) as raised:
            probe(source, assets=("B04",))
    message = str(raised.value)
    assert message == (
        f"{url}/item.json#scene-1: asset B04: names a file of this machine ({wanted}): "
        "a URL's document may not"
    )
    # the same href in a local document is read (file://host refused: another machine's path)
    local = single_item(catalog, tmp_path, hrefs={"B04": wanted})
    if "//host" in href:
        refused = r"B04: a file:// href names a path on this machine, not on host$"
        with pytest.raises(ImageReadError, match=refused):
            probe(f"{local}#scene-1", assets=("B04",))
    else:
        assert probe(f"{local}#scene-1", assets=("B04",)).parts[0].source.text == str(secret)


def test_an_href_naming_an_item_or_a_zarr_store_is_one_line(catalog, tmp_path):
    """An asset is read as a plain file: an href naming an item (itself here) or a zarr store is refused."""
    item = tmp_path / "item.json"
    single_item(catalog, tmp_path, hrefs={"B04": f"{item}#scene-1", "B03": str(tmp_path / "x.zarr")})
    with pytest.raises(ImageReadError, match=rf"#scene-1: asset B04: its href names a STAC item \({item}#"):
        probe(f"{item}#scene-1", assets=("B04",))
    with pytest.raises(ImageReadError, match=r"#scene-1: asset B03: its href names a zarr store"):
        probe(f"{item}#scene-1", assets=("B03",))
    # relative hrefs: percent-encoded (B%2004.tif is the file 'B 04.tif'), a query naming a URL
    files = catalog[1]
    (tmp_path / "B 04.tif").write_bytes((files[0].parent.parent / "date1" / "B04.tif").read_bytes())
    single_item(catalog, tmp_path, name="rel.json", hrefs={"B04": "B%2004.tif", "B03": "B03.tif?x=https://y"})
    info = probe(f"{tmp_path / 'rel.json'}#scene-1", assets=("B04",))
    assert info.parts[0].source.text == str(tmp_path / "B 04.tif")
    with pytest.raises(ImageReadError, match=rf"{tmp_path / 'B03.tif'}: no such file$"):
        probe(f"{tmp_path / 'rel.json'}#scene-1", assets=("B03",))


def test_items_are_classified_once_whatever_their_names(catalog, tmp_path):
    """An id with '/' and '..' keeps its name; a file named like an item is a file; a query before the id."""
    path = single_item(catalog, tmp_path, id="x/../y")
    (source,) = resolve_sources(path)
    assert source.item and source.text == f"{path}#x/../y"
    assert resolve_sources(f"{path}#x/../y") == [f"{path}#x/../y"]
    assert probe(source, assets=["red"]).shape == (ROWS, COLS, 1)
    doubled = single_item(catalog, tmp_path, name="doubled.json", id="LC08/a//b")
    assert resolve_sources(f"{doubled}#LC08/a//b")[0].text == f"{doubled}#LC08/a//b"
    assert probe(resolve_sources(doubled)[0], assets=["red"]).shape == (ROWS, COLS, 1)
    # a file whose name has an item's form is a file
    odd = tmp_path / "scan.json#2.tif"
    write_cog(odd, scene(0)[:1])
    (plain,) = resolve_sources(odd)
    assert not plain.item and probe(plain).format == "tiff"
    # a presigned document URL: its query is the document's, the fragment the id
    (tmp_path / "B04.tif").write_bytes((catalog[0] / "date1" / "B04.tif").read_bytes())
    single_item(catalog, tmp_path, name="signed.json", id="LC08/a//b", hrefs={"B04": "B04.tif"})
    with http_server(tmp_path) as (url, _):
        (signed,) = resolve_sources(f"{url}/signed.json?X-Amz-Signature=ab#LC08/a//b")
        assert signed.item and probe(signed, assets=["red"]).shape == (ROWS, COLS, 1)


def test_label_geotiff_names_of_item_ids_are_safe_file_names(tmp_path):
    from palette_dask.outputs.geotiff import geotiff_paths

    ids = ["S2B_33UUP", "a/b", ".hidden", "x" * 300, "a\\b:c*?\x00", "a/b"]
    paths = geotiff_paths(tmp_path, [f"/d/s.json#{i}" for i in ids])
    names = [p.rsplit("/", 1)[1] for p in paths]
    assert names[0] == "S2B_33UUP.labels.tif" and len(set(names)) == len(names)
    for name in names:
        assert len(name.encode()) < 255 and not name.startswith(".")
        assert all(c.isalnum() or c in "._-" for c in name)
        (tmp_path / name).write_bytes(b"")  # a file of that name can be made here


@pytest.mark.slow
def test_assets_declaring_different_nodata_are_decided_by_the_nodata_option(catalog, client, tmp_path):
    """COGs of no-data 0, 1, 2 (the item declares none): one line without --nodata; --nodata 0 reads them."""
    from palette_dask.kernels.pixels import pixel_spec

    hrefs = {}
    for value, (key, _), band in zip((0, 1, 2), BANDS, scene(0)):
        hrefs[key] = str(tmp_path / f"{key}.tif")
        write_cog(hrefs[key], band[None], nodata=value)
    found = json.loads(single_item(catalog, tmp_path, hrefs=hrefs).read_text())
    for asset in found["assets"].values():
        del asset["raster:bands"]  # the files' own no-data only
    (tmp_path / "item.json").write_text(json.dumps(found))
    info = probe(f"{tmp_path / 'item.json'}#scene-1", assets=("red", "green", "blue"))
    conflict = r"#scene-1: its assets declare different no-data values \(0.0, 1.0, 2.0\); give one with"
    assert info.nodata is None
    with pytest.raises(ImageReadError, match=conflict):
        pixel_spec(info)
    assert pixel_spec(info, nodata=0).nodata == 0
    item = run(str(tmp_path / "item.json"), client, assets=("red", "green", "blue"), nodata=0)
    plain = run(str(references(catalog[0])[0]), client, nodata=0)
    np.testing.assert_array_equal(item.image_counts, plain.image_counts)
    np.testing.assert_array_equal(item.colors, plain.colors)
    # assets of different types: one line
    small = tmp_path / "uint8.tif"
    write_cog(small, (scene(0)[1:2] // 16).astype(np.uint8))
    found["assets"]["B03"]["href"] = str(small)
    (tmp_path / "types.json").write_text(json.dumps(found))
    with pytest.raises(ImageReadError, match=r"#scene-1: its assets differ in data type \(B04 uint16, B03"):
        probe(f"{tmp_path / 'types.json'}#scene-1", assets=("B04", "B03", "B02"))


def test_a_band_name_is_read_from_its_single_band_asset_not_from_a_true_colour_one(catalog, tmp_path):
    """Planetary Computer's items: B04 and visual both list red; red,green,blue are B04, B03, B02."""
    visual = tmp_path / "visual.tif"
    write_cog(visual, scene(0), nodata=0)
    path = single_item(catalog, tmp_path)
    found = json.loads(path.read_text())
    bands = [{"name": key, "common_name": colour} for key, colour in BANDS]
    found["assets"]["visual"] = {"href": str(visual), "type": pystac.MediaType.COG, "eo:bands": bands}
    path.write_text(json.dumps(found))
    info = probe(f"{path}#scene-1", assets=("red", "green", "blue"))
    assert [p.source.path for p in info.parts] == [found["assets"][key]["href"] for key, _ in BANDS]
    assert info.shape == (ROWS, COLS, 3)
    # visual the only asset that lists red: not all of its three bands silently
    found["assets"] = {"visual": found["assets"]["visual"]}
    path.write_text(json.dumps(found))
    with pytest.raises(
        ImageReadError, match=r"#scene-1: band .red. is one of the 3 bands of asset visual, which is read"
    ):
        probe(f"{path}#scene-1", assets=("red", "green", "blue"))
    assert probe(f"{path}#scene-1", assets=("visual",)).shape == (ROWS, COLS, 3)


def test_a_glob_of_a_catalog_reads_its_items_and_skips_the_catalog(catalog, tmp_path):
    """``root/**/*.json`` finds catalog.json, the items and the saved search; an item without any datetime."""
    root, files, collection = catalog
    found = [s.text for s in resolve_sources(str(root / "**" / "*.json"))]
    assert (root / "catalog.json").is_file() and not any("catalog.json" in name for name in found)
    items = [f"{f}#{f.stem}" for f in files] + [f"{collection}#scene-{i}" for i in (1, 2)]
    assert set(items) <= set(found)  # and the items other tests wrote in root
    path = single_item(catalog, tmp_path)
    item = json.loads(path.read_text())
    item["properties"].update(datetime=None, start_datetime=None)
    path.write_text(json.dumps(item))
    assert probe(f"{path}#scene-1", assets=("red",)).datetime == ""


def test_documents_are_parsed_once_at_a_time_and_a_url_read_again_for_an_item_added(
    catalog, tmp_path, monkeypatch
):
    """Threads reading one document parse it once; a URL's is read again for an id it lacked; a size cap."""
    import threading

    from palette_dask.inputs import stac

    path = single_item(catalog, tmp_path, name="one.json")
    parses, parse = [], stac._parsed
    monkeypatch.setattr(stac, "_parsed", lambda where: parses.append(where) or parse(where))
    start = threading.Barrier(8)

    def read():
        start.wait()
        stac.read_item(Source_of(f"{path}#scene-1"))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert parses == [str(path)]
    first = json.loads(path.read_text())
    with http_server(tmp_path) as (url, handler):
        collection = tmp_path / "grows.json"
        collection.write_text(json.dumps({"type": "FeatureCollection", "features": [first]}))
        assert stac.read_item(Source_of(f"{url}/grows.json#scene-1")).id == "scene-1"
        grown = {"type": "FeatureCollection", "features": [first, {**first, "id": "b"}]}
        collection.write_text(json.dumps(grown))
        assert stac.read_item(Source_of(f"{url}/grows.json#b")).id == "b"  # --append after the catalog grew
        with pytest.raises(ImageReadError, match=r"grows.json holds no item of id 'c'$"):
            stac.read_item(Source_of(f"{url}/grows.json#c"))
        monkeypatch.setattr(stac, "MAX_DOCUMENT_BYTES", 1000)
        with pytest.raises(ImageReadError, match=r"grows.json: larger than the 1,000-byte download limit$"):
            stac.read_item(Source_of(f"{url}/grows.json#d"))  # refused as it downloads, not after


def Source_of(name):
    from palette_dask.inputs.source import Source

    return Source.of(name, zarr=False, item=True)


def test_stacked_assets_chunk_on_every_assets_tiles_and_an_alpha_band_is_refused(catalog, tmp_path):
    """Chunks are whole tiles of each asset (128 and 256: 256); an RGBA asset among others is one line."""
    import skimage.io

    wide = tmp_path / "B03.tif"
    with rasterio.open(
        wide, "w", driver="GTiff", width=COLS, height=ROWS, count=1, dtype="uint16", tiled=True,
        blockxsize=256, blockysize=256,
    ) as out:  # fmt: skip
        out.write(scene(0)[1:2])
    path = single_item(catalog, tmp_path, hrefs={"B03": str(wide)})
    info = probe(f"{path}#scene-1", assets=("B04", "B03"))
    assert [p.tile for p in info.parts] == [(TILE, TILE), (256, 256)] and info.tile == (256, 256)
    for chunks in read_image(info, chunk_bytes=2**18).chunks[:2]:
        assert all(size % 256 == 0 for size in chunks[:-1])
    rgba = np.zeros((ROWS, COLS, 4), np.uint8) + 200
    skimage.io.imsave(tmp_path / "rgba.png", rgba, check_contrast=False)
    skimage.io.imsave(tmp_path / "grey.png", rgba[..., 0], check_contrast=False)
    single_item(catalog, tmp_path, name="alpha.json", hrefs={"B04": str(tmp_path / "rgba.png"),
                                                           "B03": str(tmp_path / "grey.png")})  # fmt: skip
    with pytest.raises(ImageReadError, match=r"#scene-1: asset B04 has an alpha band, which would count"):
        probe(f"{tmp_path / 'alpha.json'}#scene-1", assets=("B04", "B03"))
    assert probe(f"{tmp_path / 'alpha.json'}#scene-1", assets=("B04",)).alpha


def test_compare_over_a_year_of_dates_shows_the_first_and_last_in_its_table(client, tmp_path, capsys):
    """Twelve dates: the table has eight columns and says where the others are; --json has all twelve."""
    import zarr

    store = tmp_path / "year.zarr"
    images = [np.full((8, 8, 3), 20 * i, np.uint8) for i in range(12)]
    extract_palette(images, 3, client=client, store=store, seed=1)
    days = [f"2024-{month:02d}-01T10:00:00Z" for month in range(1, 13)]
    zarr.open_group(store, mode="r+")["image_datetime"][:] = np.array(days, dtype=object)
    capsys.readouterr()
    assert main(["compare", str(store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[3:-1] == [d[:10] for d in days[:4] + days[-4:]]
    assert out[-1] == "12 dates: the first and last 4 shown; --csv FILE or --json gives each"
    assert main(["compare", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dates"] == [d[:10] for d in days]
