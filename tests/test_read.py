import pickle
import sys
import tracemalloc
from pathlib import Path

import dask
import numpy as np
import pytest
import tifffile
import zarr
from helpers import PHOTOS, write_png
from PIL import Image

from palette_dask import ImageReadError, InputError, probe, read_image, resolve_inputs
from palette_dask.inputs.read import DEFAULT_CHUNK_BYTES


class ComputeForbidden(RuntimeError):
    pass


def forbid_compute(dsk, keys, **kwargs):
    raise ComputeForbidden("graph construction computed something")


# --- inputs -----------------------------------------------------------------


def test_resolve_directory_recursive_sorted_skips_hidden_and_other_files(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("b/2.png", "a.JPG", "c.tif", ".hidden/x.png", "notes.md"):
        (tmp_path / name).write_bytes(b"x")
    assert resolve_inputs(tmp_path) == [str(tmp_path / n) for n in ("a.JPG", "b/2.png", "c.tif")]


def test_resolve_glob_list_file_and_url(tmp_path):
    for name in ("x1.png", "x2.png", "y.png"):
        (tmp_path / name).write_bytes(b"x")
    listing = tmp_path / "inputs.txt"
    listing.write_text("# photos\n\ny.png\nhttps://example.org/z.png\nmissing.png\n")
    assert resolve_inputs([str(tmp_path / "x*.png"), listing]) == [
        str(tmp_path / "x1.png"),
        str(tmp_path / "x2.png"),
        str(tmp_path / "y.png"),
        "https://example.org/z.png",
        str(tmp_path / "missing.png"),  # kept: fails alone when read
    ]
    assert resolve_inputs([(tmp_path / "x 1.png").as_uri()]) == [str(tmp_path / "x 1.png")]  # file://: a path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: (p / "empty").mkdir() or p / "empty", "directory holds no images"),
        (lambda p: p / "nothing*.png", "no file matches this pattern"),
        (lambda p: "file://server/share/a.png", "a file:// URL names a path on this machine, not on server"),
        (lambda p: "ftp://example.org/a.png", "unsupported URL scheme 'ftp'"),
        (lambda p: (p / "l.txt").write_text("# nothing\n") and p / "l.txt", "the list of inputs is empty"),
    ],
)
def test_resolve_bad_inputs(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        resolve_inputs([str(target)])
    assert "\n" not in str(info.value)


# --- formats ------------------------------------------------------------------


def roundtrip(path, **kwargs):
    info = probe(str(path))
    image = read_image(info, **kwargs)
    array = image.compute(scheduler="sync")
    assert array.shape == image.shape == info.shape
    assert array.dtype == image.dtype
    return info, array


def test_rgb_png_equals_pillow():
    info, array = roundtrip(PHOTOS[0])
    assert (info.channels, info.dtype, info.format) == ("RGB", "uint8", "pillow")
    np.testing.assert_array_equal(array, np.asarray(Image.open(PHOTOS[0])))


def test_rgba_gray_and_gray_alpha_png(tmp_path):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    gray = rgba[..., 0]
    for name, data, channels in [("rgba", rgba, "RGBA"), ("gray", gray, "L"), ("la", rgba[..., :2], "LA")]:
        path = tmp_path / f"{name}.png"
        Image.fromarray(data, mode={"L": "L", "LA": "LA", "RGBA": "RGBA"}[channels]).save(path)
        info, array = roundtrip(path)
        assert info.channels == channels
        np.testing.assert_array_equal(array, data.reshape(20, 30, -1))


def test_palette_png_gives_colours_not_indices(tmp_path):
    indices = np.array([[0, 1], [1, 2]], dtype=np.uint8)
    palette = [200, 10, 10, 10, 200, 10, 10, 10, 200] + [0] * (256 * 3 - 9)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(palette)
    image.save(tmp_path / "p.png")
    info, array = roundtrip(tmp_path / "p.png")
    assert info.channels == "RGB"
    assert array[0, 0].tolist() == [200, 10, 10] and array[1, 1].tolist() == [10, 10, 200]
    image.save(tmp_path / "pt.png", transparency=1)  # index 1 transparent
    info, array = roundtrip(tmp_path / "pt.png")
    assert info.channels == "RGBA"
    assert array[0, 1, 3] == 0 and array[0, 0, 3] == 255


def test_one_bit_and_sixteen_bit_png(tmp_path):
    Image.fromarray(np.array([[True, False]])).save(tmp_path / "bits.png")
    info, array = roundtrip(tmp_path / "bits.png")
    assert info.channels == "L" and array[:, :, 0].tolist() == [[255, 0]]
    gray16 = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    write_png(tmp_path / "g16.png", gray16)
    info, array = roundtrip(tmp_path / "g16.png")
    assert info.dtype == "uint16"
    np.testing.assert_array_equal(array[:, :, 0], gray16)
    rgb16 = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 3000
    write_png(tmp_path / "rgb16.png", rgb16)
    info, array = roundtrip(tmp_path / "rgb16.png")
    # Pillow reads 16-bit colour PNGs as 8-bit: the high byte, the right display value
    np.testing.assert_array_equal(array, (rgb16 >> 8).astype(np.uint8))


def test_jpeg(tmp_path):
    data = np.asarray(Image.open(PHOTOS[1]))
    Image.fromarray(data).save(tmp_path / "c.jpg", quality=95)
    info, array = roundtrip(tmp_path / "c.jpg")
    assert info.shape == data.shape
    assert np.abs(array.astype(int) - data).mean() < 3


def test_planar_tiff_has_channels_last(real_rasters):
    info, array = roundtrip(real_rasters / "world.rgb.tif")
    assert info.axes == "cyx" and info.shape == (256, 512, 3)
    np.testing.assert_array_equal(array, np.moveaxis(tifffile.imread(real_rasters / "world.rgb.tif"), 0, -1))


def test_geotiff_nodata_and_uint16_rgba(real_rasters):
    info = probe(str(real_rasters / "RGB.byte.tif"))
    assert info.nodata == 0.0 and info.shape == (718, 791, 3)
    info = probe(str(real_rasters / "RGBA.uint16.tif"))
    assert (info.channels, info.dtype) == ("RGBA", "uint16")


def test_tiled_tiff_is_read_in_tile_aligned_chunks(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, data, tile=(64, 64), compression="zlib")
    info, array = roundtrip(path, chunk_bytes=64 * 500 * 3 * 2)
    image = read_image(info, chunk_bytes=64 * 500 * 3 * 2)
    assert image.chunks[0][:-1] == (128, 128) and len(image.chunks[1]) == 1
    np.testing.assert_array_equal(array, data)
    wide = read_image(info, chunk_bytes=64 * 64 * 3 * 2)  # columns are cut too, in whole tiles
    assert set(wide.chunks[1][:-1]) == {128}
    np.testing.assert_array_equal(wide.compute(scheduler="sync"), data)


def test_zarr_array_input(tmp_path):
    data = np.random.default_rng(2).integers(0, 256, (100, 80, 3), dtype=np.uint8)
    z = zarr.create_array(str(tmp_path / "m.zarr"), shape=data.shape, chunks=(32, 80, 3), dtype="uint8")
    z[:] = data
    assert resolve_inputs(str(tmp_path / "m.zarr")) == [str(tmp_path / "m.zarr")]
    info, array = roundtrip(tmp_path / "m.zarr", chunk_bytes=32 * 80 * 3)
    assert info.format == "zarr"
    np.testing.assert_array_equal(array, data)


def test_building_the_array_computes_nothing_and_embeds_no_pixels(tmp_path):
    data = np.random.default_rng(3).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", data, tile=(64, 64))
    with dask.config.set(scheduler=forbid_compute):
        image = read_image(str(tmp_path / "t.tif"), chunk_bytes=64 * 512 * 3)
    graph_bytes = len(pickle.dumps(dict(image.__dask_graph__())))
    assert image.numblocks[0] == 8
    assert graph_bytes < data.nbytes / 50
    with pytest.raises(ComputeForbidden), dask.config.set(scheduler=forbid_compute):
        image.sum().compute()  # the guard itself works


# --- bad files ----------------------------------------------------------------


def test_bad_files_give_one_line_errors(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "random.png").write_bytes(np.random.default_rng(0).bytes(300))
    (tmp_path / "dir.png").mkdir()
    cases = {
        "zero.png": "empty file",
        "random.png": "not a readable image",
        "missing.png": "no such file",
        "dir.png": "is a directory",
    }
    for name, message in cases.items():
        with pytest.raises(ImageReadError, match=message) as info:
            probe(str(tmp_path / name))
        assert str(info.value).startswith(str(tmp_path / name)) and "\n" not in str(info.value)


def test_truncated_png_fails_when_decoded(tmp_path):
    good = PHOTOS[1].read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    image = read_image(str(tmp_path / "cut.png"))  # the header is intact
    with pytest.raises(ImageReadError, match="cut.png: cannot decode"):
        image.compute(scheduler="sync")


def test_pixel_limit_is_checked_on_the_header(tmp_path):
    write_png(tmp_path / "big.png", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ImageReadError, match="more than the limit of 9,999"):
        probe(str(tmp_path / "big.png"), max_pixels=9_999)
    assert probe(str(tmp_path / "big.png"), max_pixels=10_000).pixels == 10_000


# --- decompression bombs and the memory limit --------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bombs import gradient_row, strip_bomb  # noqa: E402


@pytest.mark.slow
def test_a_deflate_strip_bomb_is_read_in_bands_within_memory(tmp_path):
    """8000 x 8000 RGB in one deflate strip (192 MB from 0.2 MB): no task decodes more than its band."""
    bomb = strip_bomb(tmp_path / "bomb.tif", 8000, 8000)
    assert bomb.stat().st_size < 300_000
    info = probe(str(bomb))
    assert info.banded and info.tile == (1, 0)
    image = read_image(info)
    assert image.numblocks[0] >= 6
    assert max(image.chunks[0]) * 8000 * 3 <= DEFAULT_CHUNK_BYTES
    last = image.blocks[-1]
    tracemalloc.start()
    block = last.compute(scheduler="sync")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * last.nbytes + 16 * 2**20  # the band and the inflater's pieces, not the strip
    first_row = 8000 - block.shape[0]
    expected = np.frombuffer(gradient_row(first_row, 8000, 8000), np.uint8).reshape(8000, 3)
    np.testing.assert_array_equal(block[0], expected)
    np.testing.assert_array_equal(block[-1, 0], np.frombuffer(gradient_row(7999, 8000, 1), np.uint8))


@pytest.mark.parametrize(
    "dtype, planar, compression, predictor",
    [
        ("u1", "contig", None, None),
        ("u1", "contig", "zlib", 2),
        ("u2", "separate", "zlib", None),
        (">u2", "contig", "zlib", 2),
        ("f4", "separate", "zlib", None),
        ("f4", "contig", None, None),
    ],
)
def test_banded_strips_equal_tifffile(tmp_path, monkeypatch, dtype, planar, compression, predictor):
    import palette_dask.inputs.tiff as tiff

    monkeypatch.setattr(tiff, "BAND_STRIP_BYTES", 1000)
    rng = np.random.default_rng(1)
    rgb = (rng.random((123, 77, 3)) * 60000).astype(dtype)
    data = rgb if planar == "contig" else np.moveaxis(rgb, -1, 0)
    path = tmp_path / "striped.tif"
    byteorder = ">" if dtype.startswith(">") else "<"
    tifffile.imwrite(
        path, data, photometric="rgb", planarconfig=planar, compression=compression, predictor=predictor,
        rowsperstrip=50, byteorder=byteorder,
    )  # fmt: skip
    info = probe(str(path))
    assert info.banded
    image = read_image(info, chunk_bytes=2000)
    assert image.numblocks[0] > 10  # bands that cut strips anywhere
    np.testing.assert_array_equal(image.compute(scheduler="sync"), rgb)


def test_blocks_that_must_be_decoded_whole_are_refused_over_the_limit(tmp_path):
    rgb = np.asarray(Image.open(PHOTOS[0]).convert("RGB"))  # 512 x 512: 786,432 bytes
    tifffile.imwrite(tmp_path / "lzw.tif", rgb, compression="lzw", rowsperstrip=512)
    tifffile.imwrite(tmp_path / "tiled.tif", rgb, compression="zlib", tile=(512, 512))
    zarr.create_array(str(tmp_path / "one.zarr"), shape=rgb.shape, chunks=rgb.shape, dtype="u1")[:] = rgb
    limit = "more than the limit of 400,000 for a block decoded whole (4 bytes x --max-pixels 100,000); "
    advice = "raise max_pixels (--max-pixels) if this file is trusted"
    for name, block in [
        ("lzw.tif", "strip (lzw)"),
        ("tiled.tif", "tile (adobe_deflate)"),
        ("one.zarr", "zarr chunk (512, 512, 3)"),
    ]:
        source = str(tmp_path / name)
        with pytest.raises(ImageReadError) as caught:
            probe(source, max_pixels=100_000)
        assert str(caught.value) == f"{source}: one {block} decodes to 786,432 bytes, {limit}{advice}"
        assert not probe(source).banded
        np.testing.assert_array_equal(read_image(source).compute(scheduler="sync"), rgb)


# --- batches: each small file read once --------------------------------------


@pytest.mark.parametrize(
    "mode, suffix",
    [("RGB", "png"), ("RGBA", "png"), ("L", "png"), ("LA", "png"), ("P", "png"), ("PA", "png"), ("1", "png"),
     ("I;16", "png"), ("RGB", "jpg"), ("L", "jpg"), ("CMYK", "jpg")],
)  # fmt: skip
def test_a_batch_reads_each_file_once_to_the_same_pixels_as_pillow(tmp_path, mode, suffix):
    from palette_dask.inputs.pillow import read_pillow
    from palette_dask.inputs.read import open_batch

    photo = Image.open(PHOTOS[0]).convert("RGBA").resize((96, 80), Image.LANCZOS)
    image = photo.convert(mode) if mode not in ("P", "PA", "I;16") else None
    if mode == "P":
        image = photo.convert("RGB").quantize(64)
    elif mode == "PA":
        image = photo.convert("RGB").quantize(64)
        image.info["transparency"] = 3
    elif mode == "I;16":
        image = Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257)
    path = tmp_path / f"x.{suffix}"
    image.save(path, quality=90, **({"transparency": 3} if mode == "PA" else {}))
    batch = open_batch([str(path)], 0)
    info = batch.infos[0]
    assert info == probe(str(path))  # the header read from the bytes in memory is Pillow's
    np.testing.assert_array_equal(batch.pixels[0], read_pillow(info))  # Pillow reads the file anew
    assert batch.pixels[0].shape == info.shape and batch.pixels[0].dtype == np.dtype(info.dtype)
