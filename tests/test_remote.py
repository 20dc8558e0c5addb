"""Remote inputs read where they live: moto's S3 server and an http server with range requests, on 127.0.0.1.

Every run on a remote copy must give the store the same run gives on the local files.
"""

import numpy as np
import pytest
import skimage
import tifffile
import zarr
from helpers import every_array, ome_zarr, write_cog, write_png
from servers import http_server, moto_s3_env
from skimage.transform import resize

from palette_dask import ImageReadError, extract_palette, probe, read_image, resolve_inputs
from palette_dask.cli import EXIT_ERROR, main
from palette_dask.errors import InputError
from palette_dask.inputs.read import DEFAULT_CHUNK_BYTES, cell_grid
from palette_dask.kernels.pixels import pixel_spec
from palette_dask.kernels.sample import cell_candidates, cell_count, cell_share
from palette_dask.outputs.result import load_result
from palette_dask.run import passes

SIDE, TILE = 2048, 128  # the COG: 256 tiles at full resolution, and overviews


def photo_mosaic(side: int) -> np.ndarray:
    """Four of scikit-image's photos resized with anti-aliasing into the quadrants of one RGB image."""
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    half = side // 2
    quads = [(resize(p, (half, half), anti_aliasing=True) * 255).round().astype(np.uint8) for p in photos]
    return np.concatenate([np.concatenate(quads[:2], axis=1), np.concatenate(quads[2:], axis=1)])


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The files, on this disk: a zarr mosaic, an OME-Zarr image, a COG, and a folder of photos."""
    root = tmp_path_factory.mktemp("bucket")
    rgb = photo_mosaic(SIDE)
    write_cog(root / "scene.tif", rgb, blocksize=TILE)
    mosaic = zarr.open_array(
        root / "mosaic.zarr", mode="w", shape=(1024, 1536, 3), chunks=(256, 256, 3), dtype="u1"
    )
    mosaic[:] = rgb[:1024, :1536]
    ome_zarr(root / "image.ome.zarr", rgb[1024:1536, 512:1280])
    (root / "photos" / "more").mkdir(parents=True)
    write_png(root / "photos" / "a.png", rgb[:300, :400])
    write_png(root / "photos" / "more" / "b.png", rgb[-200:, -300:])
    tifffile.imwrite(root / "photos" / "c.tif", rgb[500:700, 900:1200], tile=(64, 64))
    tifffile.imwrite(root / "plain.tif", rgb, tile=(256, 256), compression="deflate")  # tiled, not a COG
    (root / "photos" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def s3(local):
    """moto's S3 server holding the files in bucket ``data``, found through AWS_ENDPOINT_URL."""
    with moto_s3_env():
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, s3_additional_kwargs={"ACL": "public-read"})
        fs.mkdir("data", acl="public-read")  # a public bucket: read without credentials too
        for name in ("scene.tif", "mosaic.zarr", "image.ome.zarr", "photos"):
            fs.put(str(local / name), f"data/{name}", recursive=True)
        yield "s3://data"


def run(inputs, store, *options) -> dict:
    code = main(
        [
            "run",
            *map(str, inputs),
            "-o",
            str(store),
            "-k",
            "6",
            "-q",
            "--processes",
            "--workers",
            "2",
            *options,
        ]
    )
    assert code == 0
    arrays = every_array(zarr.open_group(store, mode="r"))
    arrays.pop("image_names")
    return arrays


def assert_same_stores(remote: dict, local: dict) -> None:
    assert remote.keys() == local.keys()
    for name in local:
        np.testing.assert_array_equal(remote[name], local[name], err_msg=name)


def test_zarr_ome_zarr_and_cog_from_s3_give_the_local_store(s3, local, tmp_path):
    import rasterio

    names = ["mosaic.zarr", "image.ome.zarr", "scene.tif"]
    geo = tmp_path / "geotiff"
    remote = run([f"{s3}/{n}" for n in names], tmp_path / "remote.zarr", "--labels-geotiff", str(geo))
    assert_same_stores(remote, run([local / n for n in names], tmp_path / "local.zarr", "--labels"))
    assert remote["image_status"].tolist() == [1, 1, 1]
    assert remote["image_valid"].tolist() == [1024 * 1536, 512 * 768, SIDE * SIDE]
    with rasterio.open(geo / "scene.labels.tif") as labels, rasterio.open(local / "scene.tif") as source:
        assert (labels.crs, labels.transform, labels.shape) == (source.crs, source.transform, source.shape)
        np.testing.assert_array_equal(labels.read(1), remote["labels/2/0"])


def test_a_prefix_and_a_glob_list_like_a_folder(s3, local, tmp_path):
    assert resolve_inputs(f"{s3}/photos") == [
        f"{s3}/photos/a.png",
        f"{s3}/photos/c.tif",
        f"{s3}/photos/more/b.png",
    ]
    assert resolve_inputs(f"{s3}/photos/*.png") == [f"{s3}/photos/a.png"]
    assert resolve_inputs(f"{s3}/*.zarr") == [f"{s3}/image.ome.zarr", f"{s3}/mosaic.zarr"]
    remote = run([f"{s3}/photos/"], tmp_path / "remote.zarr")
    assert_same_stores(remote, run([local / "photos"], tmp_path / "local.zarr"))


def test_remote_failures_are_one_line(s3, capsys):
    with pytest.raises(ImageReadError, match=r"^s3://data/missing\.tif: no such file$"):
        probe(f"{s3}/missing.tif")
    with pytest.raises(InputError, match=r"^s3://data/empty/: holds no images"):
        resolve_inputs(f"{s3}/empty/")
    with pytest.raises(
        InputError, match=r"^s3://nobucket/\*\.png: no image or zarr store matches this pattern$"
    ):
        resolve_inputs("s3://nobucket/*.png")
    assert main(["run", "ftp://example.org/a.tif", "-q"]) == EXIT_ERROR
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "ftp://example.org/a.tif: unsupported URL scheme 'ftp'; only http(s), s3, gs and az URLs are read"
        )
    )


def test_a_public_bucket_is_read_without_credentials(s3, local, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "YES")
    info = probe(f"{s3}/scene.tif")
    window = read_image(info)[256:384, 1000:1200].compute(scheduler="sync")
    np.testing.assert_array_equal(window, tifffile.imread(local / "scene.tif")[256:384, 1000:1200])


@pytest.fixture(scope="module")
def www(local):
    with http_server(local) as served:
        yield served


@pytest.mark.parametrize(
    "how, chunk_bytes, most, sample_chunks",
    [
        ("the whole file, one request", DEFAULT_CHUNK_BYTES, 1.01, 1.0),  # 12 MB decoded: one chunk
        ("its tiles, kept between the passes", 2**20, 1.08, 1.0),  # + each task's header (16 chunks)
        ("not kept: all its tiles, twice", 2**20, 2.1, 1.0),  # sampling 100%, counting 100%
        ("not kept: a share of its tiles, then all", 2**20, 1.4, 0.25),  # sampling 25%, counting 100%
    ],
)
def test_a_cog_over_http_gives_the_local_result_fetching_what_it_reads(
    www, local, process_client, monkeypatch, how, chunk_bytes, most, sample_chunks
):
    url, handler = www
    if how.startswith("not kept"):
        monkeypatch.setattr(passes, "KEEP_TILED_IMAGES", 0)  # as a mosaic too big to keep
    with tifffile.TiffFile(local / "scene.tif") as tif:
        full = sum(tif.pages[0].databytecounts)  # the full-resolution tiles; overviews are not read
    reads = full if chunk_bytes < DEFAULT_CHUNK_BYTES else (local / "scene.tif").stat().st_size
    handler.sent.clear()
    options = {"client": process_client, "chunk_bytes": chunk_bytes, "sample_chunks": sample_chunks}
    remote = extract_palette(f"{url}/scene.tif", 6, **options)
    sent = handler.sent["/scene.tif"]
    assert reads <= sent <= most * reads, how
    here = extract_palette(local / "scene.tif", 6, **options)
    np.testing.assert_array_equal(remote.centers, here.centers)
    np.testing.assert_array_equal(remote.image_counts, here.image_counts)
    assert remote.attrs["inertia"] == here.attrs["inertia"]


def test_a_tiled_tiff_that_is_no_cog_over_http_is_read_about_once(www, local, process_client):
    """Tiles, not a whole-file download, and each byte about once (the image kept between the passes)."""
    url, handler = www
    size = (local / "plain.tif").stat().st_size
    handler.sent.clear()
    options = {"client": process_client, "chunk_bytes": 2**22}  # 12 MB decoded: read tile by tile
    remote = extract_palette(f"{url}/plain.tif", 6, **options)
    assert size <= handler.sent["/plain.tif"] <= 1.1 * size
    here = extract_palette(local / "plain.tif", 6, **options)
    np.testing.assert_array_equal(remote.centers, here.centers)
    np.testing.assert_array_equal(remote.image_counts, here.image_counts)


def test_sampling_a_cog_over_http_fetches_a_share_of_its_tiles(www, local):
    url, handler = www
    info = probe(f"{url}/scene.tif")
    cells = cell_count(info)
    share = cell_share(cells, 0.25)
    assert cell_grid(info) == (TILE, TILE) and cells == 256 and share == 0.25
    handler.sent.clear()
    candidates = cell_candidates(
        info, pixel_spec(info), 0, seed=0, fraction=1.0, share=share, size=10_000, cell_bytes=2**20
    ).compute(scheduler="sync")
    assert len(candidates) == 10_000
    with tifffile.TiffFile(local / "scene.tif") as tif:
        full = sum(tif.pages[0].databytecounts)
    # the drawn tiles (a quarter, each its own size), and each task's header (4 tasks of 16 tiles)
    assert 0.2 * full < handler.sent["/scene.tif"] < 0.3 * full + 4 * 2**16


@pytest.mark.slow
def test_a_report_over_http_reads_its_previews_from_the_cogs_overview(www, local, tmp_path, capsys):
    """The bytes of --html: those of the run without it, plus the overview level its previews need."""
    from palette_dask.outputs.report import preview

    url, handler = www
    with tifffile.TiffFile(local / "scene.tif") as tif:
        overview = tif.series[0].levels[1]  # 1024 a side: the lowest level of at least 800 pixels
        assert overview.shape[:2] == (1024, 1024)
        level_bytes, pixels = sum(overview.pages[0].databytecounts), overview.asarray()
    argv = ["run", f"{url}/scene.tif", "-k", "4", "-q", "--threads", "-o"]
    handler.sent.clear()
    assert main([*argv, str(tmp_path / "plain.zarr")]) == 0
    plain = handler.sent["/scene.tif"]
    handler.sent.clear()
    assert main([*argv, str(tmp_path / "html.zarr"), "--html", str(tmp_path / "r.html")]) == 0
    with_report = handler.sent["/scene.tif"]
    assert with_report <= plain + level_bytes + 2**16, (plain, with_report, level_bytes)  # + a header
    result = load_result(tmp_path / "html.zarr")
    shown, _ = preview(result, 0)
    np.testing.assert_array_equal(shown[..., :3], pixels[::2, ::2])  # tifffile's own decode of the overview
    assert shown.shape[:2] == (512, 512) and (shown[..., 3] == 255).all()
