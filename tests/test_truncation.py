"""No made-up pixels: every format cut at many lengths and with corrupted bytes, against strict decoders.

Our readers (the batch's read-once path, which decodes 8-bit PNG and JPEG with
imagecodecs; the re-decode path through Pillow; tifffile's tiles, strips and
our own band reader; zarr chunks; JPEG 2000 decoded whole, and tile by tile)
must either fail with one line naming the file, or give exactly the pixels a
strict reference decoder gives: Pillow (which fails a truncated file) for what
Pillow reads (OpenJPEG's own JP2 reader where Pillow has no mode for a JPEG
2000's bands), the intact image for a cut TIFF or zarr chunk. A cut that loses
pixel data must always fail.
"""

import io
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from helpers import photo_crops
from PIL import Image

from palette_dask import ImageReadError
from palette_dask.errors import one_line
from palette_dask.inputs.formats import ImageInfo
from palette_dask.inputs.headers import jpeg_is_whole
from palette_dask.inputs.read import decode, open_batch, probe
from palette_dask.kernels.pixels import pixel_spec

#: Cuts per file: evenly spread, and the last few bytes; corrupted copies, seeded.
CUTS, CORRUPTIONS, SEED = 40, 60, 0


@pytest.fixture(scope="module")
def photo():
    """An anti-aliased, colour-diverse photo crop, 96 x 120."""
    return next(photo_crops(1, seed=7, corners=150, sides=(96, 121)))[:96, :120].copy()


def _pillow_bytes(image: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _tiff_bytes(image: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, photometric="rgb", **options)
    return buffer.getvalue()


ENCODINGS = {
    "jpeg-baseline": lambda im: ("jpg", _pillow_bytes(im, "JPEG", quality=90)),
    "jpeg-progressive": lambda im: ("jpg", _pillow_bytes(im, "JPEG", quality=90, progressive=True)),
    "jpeg-gray": lambda im: ("jpg", _pillow_bytes(im[..., 1], "JPEG", quality=90)),
    "png-rgb": lambda im: ("png", _pillow_bytes(im, "PNG")),
    "png-rgba": lambda im: ("png", _pillow_bytes(np.dstack([im, im[..., :1]]), "PNG")),
    "png-palette": lambda im: ("png", _pillow_bytes(np.asarray(Image.fromarray(im).quantize(64)), "PNG")),
    "webp": lambda im: ("webp", _pillow_bytes(im, "WEBP", quality=90)),
    "gif": lambda im: ("gif", _pillow_bytes(im, "GIF")),
    "bmp": lambda im: ("bmp", _pillow_bytes(im, "BMP")),
    "tiff-none-strips": lambda im: ("tif", _tiff_bytes(im, rowsperstrip=16)),
    "tiff-deflate-strips": lambda im: ("tif", _tiff_bytes(im, rowsperstrip=16, compression="zlib")),
    "tiff-lzw-strips": lambda im: ("tif", _tiff_bytes(im, rowsperstrip=16, compression="lzw")),
    "tiff-jpeg-strips": lambda im: ("tif", _tiff_bytes(im, rowsperstrip=16, compression="jpeg")),
    "tiff-deflate-tiles": lambda im: ("tif", _tiff_bytes(im, tile=(32, 32), compression="zlib")),
    "tiff-jpeg-tiles": lambda im: ("tif", _tiff_bytes(im, tile=(32, 32), compression="jpeg")),
    "tiff-none-tiles": lambda im: ("tif", _tiff_bytes(im, tile=(32, 32))),
    "jpeg2000-tiles": lambda im: ("jp2", _pillow_bytes(im, "JPEG2000", tile_size=(32, 32))),
    "jpeg2000-codestream-tiles": lambda im: (
        "j2k", _pillow_bytes(im, "JPEG2000", tile_size=(48, 40), no_jp2=True)
    ),
    "jpeg2000-rgba-tiles": lambda im: (
        "jp2", _pillow_bytes(np.dstack([im, im[..., :1]]), "JPEG2000", tile_size=(32, 32), irreversible=True)
    ),
    "jpeg2000-one-tile": lambda im: ("jp2", _pillow_bytes(im, "JPEG2000", num_resolutions=3)),
}


def _reference(path: Path, kind: str):
    """What a strict decoder gives: Pillow's pixels (it fails a cut file), tifffile's; None if it fails."""
    try:
        if kind.startswith("tiff"):  # as (rows, cols, bands), whatever layout the bytes now claim
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                if np.prod(series.shape) > 2**24:  # a header corrupted into a bomb: not decoded here either
                    return None
                pixels, axes = series.asarray(maxworkers=1), series.axes
            if pixels.ndim == 3 and axes[0] in "SCIQ":
                pixels = np.moveaxis(pixels, 0, -1)
            return pixels if pixels.ndim == 3 else pixels[..., np.newaxis]
        with Image.open(path) as image:
            image.load()
            mode = {"P": "RGB", "1": "L"}.get(image.mode, image.mode)
            pixels = np.asarray(image.convert(mode))
        return pixels if pixels.ndim == 3 else pixels[..., np.newaxis]
    except Exception:
        return None


def _ours(path: Path) -> dict:
    """Each of our read paths: the batch's read-once decode, and decoding again by path.

    A header corrupted to claim an image too big for a batch sends it to the
    tiled path, whose bands are checked (as the run does) before it is read.
    """
    found = {}
    kept = open_batch([str(path)], 0)
    info = kept.infos[0]
    if isinstance(info, ImageInfo) and not kept.in_batch(0):
        try:
            pixel_spec(info)
            return {"tiled": decode(info)}
        except ImageReadError as exc:
            return {"tiled": one_line(exc)}
    found["read once"] = next(kept.images())
    again = open_batch([str(path)], 0, keep=False)
    found["decoded again"] = next(again.images())
    return {name: (pixels if info is not None else str(pixels)) for name, (_, info, pixels) in found.items()}


def _variants(data: bytes, rng) -> list[tuple[str, bytes]]:
    cuts = set(np.linspace(8, len(data) - 1, CUTS).astype(int)) | {len(data) - n for n in (1, 2, 3, 5)}
    variants = [(f"cut at {n}", data[:n]) for n in sorted(cuts)]
    for _ in range(CORRUPTIONS):
        corrupt = bytearray(data)
        for at in rng.integers(0, len(data), rng.integers(1, 4)):
            corrupt[at] = rng.integers(0, 256)
        variants.append(
            (
                f"corrupted at {sorted(i for i, (a, b) in enumerate(zip(corrupt, data)) if a != b)}",
                bytes(corrupt),
            )
        )
    return variants


@pytest.mark.parametrize("kind", list(ENCODINGS))
def test_cut_and_corrupted_files_fail_or_equal_the_strict_decoder(tmp_path, photo, kind):
    suffix, data = ENCODINGS[kind](photo)
    whole = tmp_path / f"whole.{suffix}"
    whole.write_bytes(data)
    intact = _reference(whole, kind)
    assert intact is not None
    rng = np.random.default_rng(zlib.crc32(kind.encode()) + SEED)
    failed = 0
    for what, variant in _variants(data, rng):
        path = tmp_path / f"variant.{suffix}"
        path.write_bytes(variant)
        reference = _reference(path, kind)
        if what.startswith("cut") and kind.startswith("tiff") and reference is not None:
            reference = reference if np.array_equal(reference, intact) else None  # tifffile makes up pixels
        for route, pixels in _ours(path).items():
            if isinstance(pixels, str):  # failed: one line that names the file
                assert pixels.startswith(str(path)) and "\n" not in pixels, (what, route, pixels)
                failed += 1
                continue
            assert reference is not None, f"{kind} {what}: {route} gave pixels where the reference fails"
            np.testing.assert_array_equal(pixels, reference, err_msg=f"{kind} {what}: {route}")
            if what.startswith("cut"):  # a cut file that decodes lost nothing: every pixel is there
                np.testing.assert_array_equal(pixels, intact, err_msg=f"{kind} {what}: {route}")
    assert failed >= CUTS  # the sweep did cut into the pixel data


def test_zarr_chunks_cut_or_corrupted_fail(tmp_path, photo):
    for codecs in ("zstd", "none"):
        path = tmp_path / f"{codecs}.zarr"
        array = zarr.create_array(
            path, shape=photo.shape, chunks=(48, 60, 3), dtype="uint8",
            compressors=None if codecs == "none" else "auto",
        )  # fmt: skip
        array[:] = photo
        info = probe(str(path))
        chunk = path / "c" / "1" / "1" / "0"
        data = chunk.read_bytes()
        for variant in (data[: len(data) // 2], data[:-1], data[:7]):
            chunk.write_bytes(variant)
            with pytest.raises(ImageReadError, match=f"^{path}: cannot decode: "):
                decode(info)
        chunk.write_bytes(data)
        np.testing.assert_array_equal(decode(info), photo)
        shutil.rmtree(path)


def test_jpeg_whole_walks_markers_as_a_decoder_does(photo):
    data = _pillow_bytes(photo, "JPEG", quality=90, progressive=True)
    assert jpeg_is_whole(data) and jpeg_is_whole(data + b"trailing bytes after the end")
    assert not any(jpeg_is_whole(data[:n]) for n in range(0, len(data) - 1, 97))
    assert not jpeg_is_whole(data[:-2])  # every byte of pixel data, but no end-of-image marker
    at = data.index(b"\xff\xc4")  # a table's length pointing past the end
    assert not jpeg_is_whole(data[: at + 2] + b"\xff\xff" + data[at + 4 :])


@pytest.mark.slow
def test_a_cut_jpeg_in_a_folder_fails_alone_and_the_report_shows_every_image(tmp_path, capsys):
    from palette_dask.cli import main
    from palette_dask.outputs.result import load_result
    from palette_dask.outputs.store import DONE, FAILED

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, crop in enumerate(photo_crops(3, seed=2, corners=150, sides=(200, 260))):
        Image.fromarray(crop).save(folder / f"{i}.jpg", quality=90)
    data = (folder / "0.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 3])  # most rows missing
    store, page = tmp_path / "s.zarr", tmp_path / "report.html"
    assert main(["run", str(folder), "-o", str(store), "--html", str(page), "--threads"]) == 3
    err = capsys.readouterr().err
    assert f"failed: {folder / 'cut.jpg'}: cannot decode: image file is truncated" in err, err
    result = load_result(store)
    assert result.image_status.tolist() == [DONE, DONE, DONE, FAILED]
    assert result.image_valid[3] == 0 and page.exists()
    (folder / "1.jpg").write_bytes((folder / "1.jpg").read_bytes()[:2000])  # broken since the run
    again = tmp_path / "again.html"
    assert main(["report", str(store), "-o", str(again)]) == 0
    text = again.read_text()
    assert "cannot decode: image file is truncated" in text  # the failed one, with its reason
    assert f"no preview: {folder / '1.jpg'}: " in text  # the one broken since: no preview, and why
