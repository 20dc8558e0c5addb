import collections
import shutil

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from helpers import periodic_mosaic, photo_mosaic, write_png
from hypothesis import given, settings
from hypothesis import strategies as st

from palette_dask import draw_sample, probe, read_image
from palette_dask.inputs.formats import ImageInfo
from palette_dask.kernels.pixels import pixel_spec
from palette_dask.kernels.sample import cell_share, merge_candidates, pixel_keys, sampled_cells
from palette_dask.options import RunConfig
from palette_dask.run import passes, state


def test_sample_is_the_same_whatever_the_chunking(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (256, 320, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", data, tile=(32, 32))
    info = probe(str(tmp_path / "t.tif"))
    samples = [
        draw_sample([read_image(info, chunk_bytes=size)], [pixel_spec(info)], 3_000, seed=7)
        for size in (32 * 32 * 3, 96 * 320 * 3, 10**9)
    ]
    assert samples[0].shape == (3_000, 3)
    for other in samples[1:]:
        np.testing.assert_array_equal(samples[0], other)
    assert not np.array_equal(samples[0], draw_sample([read_image(info)], [pixel_spec(info)], 3_000, seed=8))


def test_sample_holds_only_valid_pixels_and_is_uniform():
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[:, :100] = [255, 255, 255, 255]  # white, valid
    rgba[:, 100:150] = [0, 0, 0, 255]  # black, valid
    rgba[:, 150:] = [255, 0, 255, 0]  # magenta, transparent
    spec = pixel_spec(ImageInfo("array", "array", rgba.shape, "uint8", alpha=True))
    sample = draw_sample([da.from_array(rgba, chunks=(50, 64, 4))], [spec], 10_000, seed=0)
    assert len(sample) == 10_000
    assert not np.any(np.all(sample == [255, 0, 255], axis=1))  # nothing transparent
    white = np.all(sample == 255, axis=1).mean()
    assert abs(white - 2 / 3) < 0.02  # 100 of the 150 valid columns are white


def test_sample_is_not_in_image_order():
    gradient = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 256, axis=1)[..., None]
    spec = pixel_spec(ImageInfo("array", "array", gradient.shape, "uint8"))
    sample = draw_sample([da.from_array(gradient)], [spec], 2_000, seed=0)
    assert sample[0, 0] != 0  # k-means|| starts at row 0: it must not be the image's corner
    assert abs(np.corrcoef(np.arange(len(sample)), sample[:, 0])[0, 1]) < 0.1


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**40),
    image=st.integers(0, 10_000),
    r0=st.integers(0, 50),
    c0=st.integers(0, 50),
    h=st.integers(1, 20),
    w=st.integers(1, 20),
)
def test_keys_depend_only_on_the_pixel(seed, image, r0, c0, h, w):
    whole = pixel_keys(seed, image, slice(0, 80), slice(0, 80), 80)
    part = pixel_keys(seed, image, slice(r0, r0 + h), slice(c0, c0 + w), 80)
    np.testing.assert_array_equal(part, whole[r0 : r0 + h, c0 : c0 + w])
    assert ((whole >= 0) & (whole < 1)).all()


def test_merge_keeps_the_smallest_keys_in_order():
    rng = np.random.default_rng(1)
    parts = [np.column_stack([rng.random(n), rng.random((n, 3))]) for n in (0, 50, 80)]
    merged = merge_candidates(parts, 60)
    everything = np.concatenate(parts)
    np.testing.assert_array_equal(merged, everything[np.argsort(everything[:, 0])][:60])


# A mosaic read tile by tile with sample_chunks < 1: its sample comes from a share of its own chunks


def _zarr_mosaic(path, side: int, chunk: int) -> np.ndarray:
    """A zarr RGB mosaic of the real photos (many colours), chunked ``chunk`` x ``chunk``."""
    pixels = photo_mosaic(side, side)
    zarr.create_array(str(path), shape=pixels.shape, chunks=(chunk, chunk, 3), dtype="uint8")[:] = pixels
    return pixels


def _sample(client, inputs, *, size: int, chunk_bytes: int = 2**20, seed: int = 0, **options) -> np.ndarray:
    """The pipeline's sample of ``inputs``: its first pass, then its sampling stage (sample_chunks 0.25)."""
    options = {"sample_chunks": 0.25, **options}
    config = RunConfig(sample_size=size, chunk_bytes=chunk_bytes, seed=seed, **options)
    names, arrays, zarr_names = state.split_inputs(inputs)
    group, _ = state.open_or_create(None, names, config, overwrite=False, resume=False)
    run = state.Run(group, names, arrays, client, config, lambda line: None, zarr=zarr_names)
    opened = passes.open_images(run, run.pending_batches())
    assert not opened.kept and not run.failures
    return passes.sample_run(run, opened)


@pytest.fixture
def not_kept(monkeypatch):
    """Mosaics too big to keep in memory between passes (the test's are small)."""
    monkeypatch.setattr(passes, "KEEP_TILED_BYTES", 0)


def test_mosaic_sample_reads_only_its_share_of_chunks(client, tmp_path, not_kept):
    _zarr_mosaic(tmp_path / "m.zarr", 2048, 128)  # 256 chunks
    size = 4_000
    share = cell_share(256, 0.25)
    drawn = sampled_cells((2048, 2048, 3), (128, 128), 0, seed=0, share=share)
    assert share == 0.25 and len(drawn) == 64
    blocks = collections.Counter((r0 // 512, c0 // 512) for (r0, _), (c0, _) in drawn)
    assert sorted(blocks.values()) == [4] * 16  # spread evenly: 4 in every 4 x 4 block of chunks
    sample = _sample(client, str(tmp_path / "m.zarr"), size=size)
    # every chunk the sample must not read is made unreadable: garbage for zarr's codecs
    shutil.copytree(tmp_path / "m.zarr", tmp_path / "pruned.zarr")
    chunk_files = sorted((tmp_path / "pruned.zarr" / "c").rglob("*"))
    kept = {f"c/{r0 // 128}/{c0 // 128}/0" for (r0, _), (c0, _) in drawn}
    broken = [
        f
        for f in chunk_files
        if f.is_file() and f.relative_to(tmp_path / "pruned.zarr").as_posix() not in kept
    ]
    assert len(broken) == 256 - len(drawn)
    for f in broken:
        f.write_bytes(b"not a zstd frame")
    np.testing.assert_array_equal(_sample(client, str(tmp_path / "pruned.zarr"), size=size), sample)
    # the same sample whatever the run's chunks; another seed draws other cells
    np.testing.assert_array_equal(
        _sample(client, str(tmp_path / "m.zarr"), size=size, chunk_bytes=2**22), sample
    )
    assert not np.array_equal(_sample(client, str(tmp_path / "m.zarr"), size=size, seed=1), sample)


def test_mosaic_share_of_the_sample_is_its_share_of_pixels(client, tmp_path, not_kept):
    """Keys of a mosaic's drawn cells are scaled by the share: its pixels are as likely as small images'."""
    red = np.zeros((2048, 2048, 3), np.uint8)
    red[..., 0] = 255
    zarr.create_array(str(tmp_path / "red.zarr"), shape=red.shape, chunks=(128, 128, 3), dtype="uint8")[:] = (
        red
    )
    blue = np.zeros((100, 100, 3), np.uint8)
    blue[..., 2] = 255
    smalls = [write_png(tmp_path / f"blue{i}.png", blue) for i in range(140)]  # 1.4 MP against 4.2 MP of red
    sample = _sample(client, [str(tmp_path / "red.zarr"), *smalls], size=20_000)
    assert len(sample) == 20_000
    red_share = float((sample[:, 2] > 0).mean())  # CIELAB b*: red +67, blue -108
    assert abs(red_share - 4_194_304 / (4_194_304 + 1_400_000)) < 0.02, red_share


@pytest.mark.slow
def test_masked_mosaic_draws_more_cells_until_the_sample_is_full(client, tmp_path, not_kept):
    pixels = _zarr_mosaic(tmp_path / "m.zarr", 2048, 128)
    rgba = np.concatenate([pixels, np.zeros((2048, 2048, 1), np.uint8)], axis=2)
    rgba[:200, :200, 3] = 255  # one corner visible: about 40,000 valid pixels in 4 chunks
    zarr.create_array(str(tmp_path / "a.zarr"), shape=rgba.shape, chunks=(128, 128, 4), dtype="uint8")[:] = (
        rgba
    )
    sample = _sample(client, str(tmp_path / "a.zarr"), size=30_000, alpha=3)  # zarr declares no alpha
    assert len(sample) == 30_000  # the share grew until the visible corner was read
    visible = pixels[:200, :200].reshape(-1, 3)
    from palette_dask.kernels.colour import srgb_to_lab

    lab = srgb_to_lab(visible.astype(np.float64)).astype(np.float32)
    assert {tuple(row) for row in sample} <= {tuple(row) for row in lab}


def test_tiled_tiff_mosaic_gives_the_sample_of_the_same_zarr(client, tmp_path, not_kept):
    """Cells are the file's own tiles: a TIFF and a zarr with the same grid give one sample."""
    pixels = _zarr_mosaic(tmp_path / "m.zarr", 1536, 128)  # 144 chunks: 64 drawn
    tifffile.imwrite(tmp_path / "m.tif", pixels, tile=(128, 128), photometric="rgb", compression="zlib")
    from_zarr = _sample(client, str(tmp_path / "m.zarr"), size=5_000)
    np.testing.assert_array_equal(_sample(client, str(tmp_path / "m.tif"), size=5_000), from_zarr)
    assert cell_share(144, 0.25) < 1 and len(from_zarr) == 5_000


# By default a mosaic is sampled from every chunk: a uniform sample whatever its layout


LAYOUTS = {  # tile side, period in tiles, against 64² chunks of a 1024² mosaic
    "tiles = chunks, period 2": (64, 2),
    "tiles = chunks, period 3": (64, 3),
    "tiles = half a chunk, period 2": (32, 2),
    "tiles = 2 chunks, period 2": (128, 2),
    "tiles = 3/4 chunk, period 3": (48, 3),
}


@pytest.fixture(scope="module")
def periodic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("periodic")
    found = {}
    for name, (tile, period) in LAYOUTS.items():
        pixels = periodic_mosaic(1024, tile, period)
        path = folder / f"{tile}-{period}.zarr"
        zarr.create_array(str(path), data=pixels, chunks=(64, 64, 3))
        found[name] = (str(path), pixels)
    return found


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.slow
def test_by_default_a_mosaic_is_sampled_as_the_same_pixels_in_memory(client, periodic, not_kept, layout):
    """A mosaic read chunk by chunk has exactly the sample of its pixels as one array: every pixel counts."""
    path, pixels = periodic[layout]
    for seed in (0, 1):
        stored = _sample(client, path, size=20_000, seed=seed, sample_chunks=1.0, chunk_bytes=2**16)
        in_memory = _sample(client, pixels, size=20_000, seed=seed, sample_chunks=1.0, chunk_bytes=2**16)
        np.testing.assert_array_equal(stored, in_memory, err_msg=f"{layout}, seed {seed}")


def _lab_error(lab: np.ndarray, colors: np.ndarray) -> float:
    """The mean squared CIELAB distance of the pixels (``lab``: :func:`_lab_of`) to their nearest colour."""
    from skimage.color import rgb2lab

    palette = rgb2lab(np.asarray(colors, np.uint8)[None])[0]
    return float(np.min(((lab[:, None, :] - palette[None]) ** 2).sum(axis=2), axis=1).mean())


def _lab_of(pixels: np.ndarray) -> np.ndarray:
    """Every pixel in CIELAB, by scikit-image: converted once per mosaic, measured against each palette."""
    from skimage.color import rgb2lab

    return rgb2lab(pixels.reshape(-1, 1, 3))[:, 0]


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.slow
def test_default_palettes_of_periodic_mosaics_are_as_good_as_from_a_uniform_sample(
    client, periodic, not_kept, layout
):
    """Every seed: the run's CIELAB error within 2% of scikit-learn's KMeans on a uniform random sample."""
    from sklearn.cluster import KMeans

    from palette_dask import extract_palette
    from palette_dask.kernels.colour import lab_to_srgb, srgb_to_lab

    path, pixels = periodic[layout]
    flat, lab = pixels.reshape(-1, 3), _lab_of(pixels)
    for seed in range(4):
        result = extract_palette(path, 5, seed=seed, client=client, chunk_bytes=2**16)
        uniform = flat[np.random.default_rng(100 + seed).choice(len(flat), 100_000, replace=False)]
        fitted = KMeans(5, n_init=4, random_state=seed).fit(srgb_to_lab(uniform.astype(np.float64)))
        reference = np.clip(np.rint(lab_to_srgb(fitted.cluster_centers_)), 0, 255)
        ours, theirs = _lab_error(lab, result.colors), _lab_error(lab, reference)
        assert result.attrs["lab_error"] == pytest.approx(ours, rel=1e-3)  # the run measures what we do
        assert ours <= 1.02 * theirs, f"{layout}, seed {seed}: {ours:.1f} against {theirs:.1f}"
