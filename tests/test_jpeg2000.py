"""JPEG 2000 (inputs/jpeg2000.py): JP2 files and bare codestreams read tile by tile, against strict decoders.

The files are written here, by Pillow (OpenJPEG: tiles, image and tile offsets, lossy, alpha, PLT
markers) and by GDAL through rasterio (15-bit bands as Sentinel-2's, 16-bit colour, signed samples,
several tile-parts a tile with TLM and PLT markers, alpha). The strict references decode them whole:
Pillow, and GDAL where Pillow has no mode for the file (16-bit colour, 3 bands declared grey) or
scales its samples (a 15-bit band comes out of Pillow doubled); imagecodecs' whole decode of the file
(OpenJPEG's own JP2 reader) is checked equal to both.
"""

import io
import struct
import warnings

import imagecodecs
import numpy as np
import pytest
import rasterio
import skimage
from PIL import Image

from palette_dask import ImageReadError
from palette_dask.errors import one_line
from palette_dask.inputs import jpeg2000
from palette_dask.inputs.jpeg2000 import read_codestream
from palette_dask.inputs.read import decode, decode_cells, open_batch, probe, read_image
from palette_dask.inputs.registry import sniff
from palette_dask.inputs.source import IMAGE_SUFFIXES, Source
from palette_dask.inputs.sources import resolve_inputs


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo, 203 x 301: neither side a multiple of any tile here."""
    return np.ascontiguousarray(skimage.data.astronaut()[100:303, 50:351])


def _band(photo: np.ndarray, depth: int) -> np.ndarray:
    """A smooth band of ``depth``-bit samples made from the photo's green."""
    green = photo[..., 1].astype(np.float64) / 255
    return np.round(green * (2**depth - 1)).astype(np.uint16)


def _pillow(path, array, **options) -> None:
    Image.fromarray(array).save(path, "JPEG2000", **options)


def _gdal(path, array, **options) -> None:
    bands = array if array.ndim == 3 else array[..., np.newaxis]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        rows, cols, count = bands.shape
        with rasterio.open(
            path, "w", driver="JP2OpenJPEG", width=cols, height=rows, count=count, dtype=bands.dtype.name,
            REVERSIBLE="YES", QUALITY=100, **options,
        ) as dataset:  # fmt: skip
            dataset.write(np.moveaxis(bands, -1, 0))


#: name: (writer, what it writes, options, its reference, (rows, columns) of its tiles, alpha declared)
CASES = {
    "rgb.jp2": ("pillow", "rgb", {"tile_size": (64, 48)}, "pillow", (48, 64), False),
    "rgb.j2k": ("pillow", "rgb", {"tile_size": (48, 40), "no_jp2": True}, "pillow", (40, 48), False),
    "rgba.jp2": ("pillow", "rgba", {"tile_size": (64, 64)}, "pillow", (64, 64), True),
    "gray.jp2": ("pillow", "gray", {"tile_size": (100, 50)}, "pillow", (50, 100), False),
    "gray16.jp2": ("pillow", "gray16", {"tile_size": (64, 64)}, "pillow", (64, 64), False),
    "offsets.jp2": (
        "pillow", "rgb", {"tile_size": (64, 48), "offset": (10, 7), "tile_offset": (3, 5)}, "pillow",
        (48, 64), False,
    ),  # fmt: skip
    "lossy.jp2": (
        "pillow", "rgb", {"tile_size": (64, 48), "irreversible": True, "quality_mode": "rates",
                          "quality_layers": [20]}, "pillow", (48, 64), False,
    ),  # fmt: skip
    "plt.j2k": (
        "pillow", "rgb", {"tile_size": (32, 32), "plt": True, "no_jp2": True}, "pillow", (32, 32), False,
    ),  # fmt: skip
    "one-tile.jp2": ("pillow", "rgb", {"num_resolutions": 4}, "pillow", (203, 301), False),
    "band15.jp2": (
        "gdal", "band15", {"NBITS": 15, "BLOCKYSIZE": 64, "RESOLUTIONS": 4}, "gdal", (64, 301), False,
    ),  # fmt: skip
    "rgb16.jp2": ("gdal", "rgb16", {"BLOCKYSIZE": 48}, "gdal", (48, 301), False),
    "signed.jp2": ("gdal", "signed", {"BLOCKYSIZE": 64}, "gdal", (64, 301), False),
    "tileparts.jp2": (
        "gdal", "band15", {"NBITS": 15, "BLOCKYSIZE": 32, "RESOLUTIONS": 3, "TILEPARTS": "RESOLUTIONS",
                           "TLM": "YES", "PLT": "YES"}, "gdal", (32, 301), False,
    ),  # fmt: skip
    "alpha.jp2": ("gdal", "rgba", {"BLOCKYSIZE": 64, "ALPHA": "YES"}, "gdal", (64, 301), True),
}


def _pixels(photo: np.ndarray, what: str) -> np.ndarray:
    return {
        "rgb": photo,
        "rgba": np.dstack([photo, np.where(photo[..., 0] > 128, 255, 90).astype(np.uint8)]),
        "gray": photo[..., 1].copy(),
        "gray16": _band(photo, 16),
        "band15": _band(photo, 15),
        "rgb16": np.dstack([_band(photo, 16), _band(photo[..., ::-1], 12), _band(photo, 9)]),
        "signed": (_band(photo, 15).astype(np.int32) - 9000).astype(np.int16),
    }[what]


def _reference(path, who: str) -> np.ndarray:
    """The whole image from a strict decoder, as ``(rows, columns, bands)``."""
    if who == "pillow":
        with Image.open(path) as image:
            image.load()
            pixels = np.asarray(image)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as dataset:
                pixels = np.moveaxis(dataset.read(), 0, -1)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], -1)


@pytest.fixture(scope="module")
def files(tmp_path_factory, photo):
    """Each case written once: ``name: (path, its reference pixels)``."""
    folder = tmp_path_factory.mktemp("jpeg2000")
    made = {}
    for name, (writer, what, options, who, _, _) in CASES.items():
        path = folder / name
        (_pillow if writer == "pillow" else _gdal)(path, _pixels(photo, what), **options)
        made[name] = (path, _reference(path, who))
    return made


@pytest.mark.parametrize("name", list(CASES))
def test_the_probe_says_what_the_strict_decoders_say(files, name):
    path, reference = files[name]
    info = probe(str(path))
    assert info.format == "jpeg2000"
    assert info.shape == reference.shape and info.dtype == reference.dtype.name
    assert info.tile == CASES[name][4] and info.alpha == CASES[name][5]
    whole = imagecodecs.jpeg2k_decode(path.read_bytes())  # OpenJPEG's own reader, JP2 boxes applied
    np.testing.assert_array_equal(whole.reshape(reference.shape), reference)
    if CASES[name][3] == "pillow":  # Pillow's bands: L, LA, RGB, RGBA, I;16
        with Image.open(path) as image:
            assert len(image.getbands()) == info.shape[2] and image.size == info.shape[1::-1]
            assert ("A" in image.getbands()) == info.alpha


@pytest.mark.parametrize("name", list(CASES))
def test_every_region_equals_the_whole_decode(files, name):
    path, reference = files[name]
    info = probe(str(path))
    rows, cols = info.shape[:2]
    for tall, wide in (info.tile, (37, 53), (rows, cols)):  # the tiles' grid, and a grid across tiles
        cells = [
            ((r, min(r + tall, rows)), (c, min(c + wide, cols)))
            for r in range(0, rows, tall)
            for c in range(0, cols, wide)
        ]
        for ((r0, r1), (c0, c1)), block in zip(cells, decode_cells(info, cells)):
            np.testing.assert_array_equal(block, reference[r0:r1, c0:c1], err_msg=f"{r0}:{r1} {c0}:{c1}")
    rng = np.random.default_rng(len(name))
    for _ in range(25):
        r0, r1 = sorted(rng.choice(rows + 1, 2, replace=False))
        c0, c1 = sorted(rng.choice(cols + 1, 2, replace=False))
        np.testing.assert_array_equal(decode(info, slice(r0, r1), slice(c0, c1)), reference[r0:r1, c0:c1])
    kept = open_batch([str(path)], 0)  # the whole file read once, decoded whole
    np.testing.assert_array_equal(next(kept.images())[2], reference)


@pytest.mark.parametrize("name", list(CASES))
def test_read_image_has_chunks_of_whole_tiles(files, name):
    path, reference = files[name]
    info = probe(str(path))
    tall, wide = info.tile
    image = read_image(str(path), chunk_bytes=2 * tall * wide * info.shape[2] * np.dtype(info.dtype).itemsize)
    for sizes, tile, side in zip(image.chunks[:2], info.tile, info.shape[:2]):
        assert all(size % tile == 0 for size in sizes[:-1]) and sum(sizes) == side, image.chunks
    if info.tile != info.shape[:2]:
        assert image.numblocks[0] * image.numblocks[1] > 1
    np.testing.assert_array_equal(image.compute(scheduler="threads"), reference)


def test_a_15_bit_band_reads_as_its_digital_numbers(files, photo):
    """Sentinel-2's bands are 15-bit: read as stored (GDAL's values), where Pillow shifts them to 16 bits."""
    path, reference = files["band15.jp2"]
    written = _band(photo, 15)[..., np.newaxis]
    np.testing.assert_array_equal(decode(probe(str(path))), written)  # written losslessly (reversible)
    np.testing.assert_array_equal(reference, written)
    with Image.open(path) as image:
        assert np.array_equal(np.asarray(image)[..., np.newaxis], written << 1)


def test_a_region_decodes_only_the_tiles_it_touches(files, monkeypatch):
    path, reference = files["rgb.j2k"]  # 48 x 40 tiles, 7 across
    info = probe(str(path))
    decoded = []

    def counted(source, data, tile=None):
        decoded.append(tile)
        return decode_codestream(source, data, tile)

    decode_codestream = jpeg2000._decode
    monkeypatch.setattr(jpeg2000, "_decode", counted)
    block = decode(info, slice(45, 85), slice(100, 150))  # rows 40-119, columns 96-191: tiles 9, 10, 16, 17
    np.testing.assert_array_equal(block, reference[45:85, 100:150])
    assert sorted(decoded) == [9, 10, 16, 17]


def test_a_damaged_tile_fails_only_the_regions_that_touch_it(files, tmp_path):
    path, reference = files["rgb.j2k"]
    data = bytearray(path.read_bytes())
    start = read_codestream(str(path), io.BytesIO(bytes(data))).parts[9][0][0]
    sod = data.index(b"\xff\x93", start)
    data[sod + 1] = 0  # tile 9 (rows 40-79, columns 96-143) has no start of data: OpenJPEG fails it
    broken = tmp_path / "broken.j2k"
    broken.write_bytes(bytes(data))
    for strict in (lambda: Image.open(broken).load(), lambda: imagecodecs.jpeg2k_decode(bytes(data))):
        with pytest.raises(Exception):  # noqa: B017 (whatever each raises)
            strict()
    info = probe(str(broken))  # its structure is whole: every tile-part is there
    np.testing.assert_array_equal(decode(info, slice(80, 203), slice(0, 301)), reference[80:])
    np.testing.assert_array_equal(decode(info, slice(0, 80), slice(0, 96)), reference[:80, :96])
    with pytest.raises(ImageReadError, match=f"^{broken}: cannot decode tile 9: ") as failed:
        decode(info, slice(50, 60), slice(0, 301))
    assert "\n" not in one_line(failed.value)
    batch = open_batch([str(broken)], 0)  # read once, decoded whole: fails as the strict decoders do
    assert str(batch.infos[0]).startswith(f"{broken}: cannot decode: ")


def test_cut_files_fail_in_one_line_before_anything_is_decoded(files, tmp_path):
    for name in ("rgb.jp2", "rgb.j2k", "one-tile.jp2", "tileparts.jp2"):
        data = files[name][0].read_bytes()
        for cut in (len(data) - 1, len(data) - 2, len(data) // 2, 300):
            path = tmp_path / f"cut{files[name][0].suffix}"
            path.write_bytes(data[:cut])
            with pytest.raises(ImageReadError, match=f"^{path}: truncated (or damaged )?JPEG 2000: ") as err:
                probe(str(path))
            assert "\n" not in str(err.value)


def _edited(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def _second_tile(data: bytes) -> int:
    """Where a codestream's second tile-part starts (no FF90 is in coded data: markers above FF8F are not)."""
    return data.index(b"\xff\x90", data.index(b"\xff\x90") + 1)


def test_damaged_headers_fail_in_one_line(files, tmp_path):
    data = files["rgb.jp2"][0].read_bytes()
    ihdr, siz, second = data.index(b"ihdr") + 4, data.index(b"\xff\x51"), _second_tile(data)
    codestream = files["rgb.j2k"][0].read_bytes()
    damaged = {
        "its ihdr box says": _edited(data, ihdr, struct.pack(">I", 202)),  # one row fewer than SIZ
        "no file type box": _edited(data, 16, b"ftyq"),
        "tile-part 0 of tile 0": _edited(data, second + 4, b"\x00\x00"),  # the second tile numbered 0 again
        "tiles, more than": _edited(data, siz + 22, struct.pack(">II", 1, 1)),  # 1 x 1 tiles
        "tiles are missing": codestream[: _second_tile(codestream)] + b"\xff\xd9",  # one tile, then the end
    }
    for reason, variant in damaged.items():
        path = tmp_path / ("damaged.j2k" if variant[:2] == b"\xff\x4f" else "damaged.jp2")
        path.write_bytes(variant)
        with pytest.raises(ImageReadError, match=f"^{path}: .*{reason}"):
            probe(str(path))
        if reason.startswith("tiles"):  # Pillow (OpenJPEG) decodes them, the tiles it lacks made up black
            with Image.open(path) as image:
                image.load()
                assert (np.asarray(image)[48:] == 0).all()  # below the first row of tiles
            continue
        with pytest.raises(Exception):  # noqa: B017 (the strict decoder fails it too, whatever it raises)
            with Image.open(path) as image:
                image.load()


def test_colours_beyond_the_samples_are_read_whole_by_pillow(files, tmp_path):
    data = files["rgb.jp2"][0].read_bytes()
    colr = data.index(b"colr") + 4
    path = tmp_path / "sycc.jp2"
    path.write_bytes(_edited(data, colr + 3, struct.pack(">I", 18)))  # its samples declared YCbCr
    info = probe(str(path))
    assert info.format == "pillow" and info.shape == (203, 301, 3)
    np.testing.assert_array_equal(decode(info), _reference(path, "pillow"))
    assert not np.array_equal(decode(info), files["rgb.jp2"][1])  # converted to RGB, as Pillow does


def test_limits_on_blocks_decoded_whole(files):
    with pytest.raises(ImageReadError, match="claims 61,103 pixels, more than the limit of 60,000"):
        probe(str(files["one-tile.jp2"][0]), max_pixels=60_000)
    with pytest.raises(ImageReadError, match="one tile decodes to 9,216 bytes, more than the limit of 8,000"):
        probe(str(files["rgb.jp2"][0]), max_pixels=2_000)
    assert probe(str(files["rgb.jp2"][0]), max_pixels=3_000).tile == (48, 64)  # its tiles are read alone


def test_sniffed_before_pillow_and_found_in_folders(files, tmp_path):
    for name in ("rgb.jp2", "rgb.j2k"):
        path = files[name][0]
        assert sniff(Source.of(str(path)), path.read_bytes()[:16]).name == "jpeg2000"
    assert {".jp2", ".j2k", ".j2c", ".jpx"} <= set(IMAGE_SUFFIXES)
    (tmp_path / "scene").mkdir()
    (tmp_path / "scene" / "B04.j2k").write_bytes(files["rgb.j2k"][0].read_bytes())
    assert resolve_inputs(str(tmp_path / "scene")) == [str(tmp_path / "scene" / "B04.j2k")]


@pytest.mark.slow
def test_a_run_counts_as_the_same_pixels_saved_as_png(client, files, tmp_path):
    from palette_dask import extract_palette

    for name in ("rgb.jp2", "offsets.jp2"):
        path, pixels = files[name]
        png = tmp_path / f"{name}.png"
        Image.fromarray(pixels).save(png)
        runs = [
            extract_palette([str(source)], 4, client=client, chunk_bytes=2**14, seed=3)
            for source in (path, png)
        ]
        np.testing.assert_array_equal(runs[0].centers, runs[1].centers)
        np.testing.assert_array_equal(runs[0].counts, runs[1].counts)
        np.testing.assert_array_equal(runs[0].image_counts, runs[1].image_counts)
        assert runs[0].counts.sum() == 203 * 301
