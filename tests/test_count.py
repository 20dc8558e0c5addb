import dask.array as da
import numpy as np
import pytest
from helpers import reference_labels
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from palette_dask import image_stats
from palette_dask.inputs.formats import ImageInfo
from palette_dask.kernels.count import block_stats, unpack_stats
from palette_dask.kernels.pixels import PixelSpec, pixel_spec

CENTERS = np.array([[10, 10, 10], [240, 30, 30], [30, 240, 30], [128, 128, 250]], dtype=np.float32)


def reference_counts(rgba: np.ndarray, centers=CENTERS):
    valid = rgba[..., 3] > 0
    pixels = rgba[..., :3][valid].astype(np.float64)
    labels = reference_labels(pixels, centers)
    squared = ((pixels - centers[labels].astype(np.float64)) ** 2).sum()
    return np.bincount(labels, minlength=len(centers)), squared, int((~valid).sum())


def stats_of(rgba, chunks):
    spec = pixel_spec(ImageInfo("array", "array", rgba.shape, "uint8", alpha=True))
    image = da.from_array(rgba, chunks=chunks)
    return unpack_stats(image_stats(image, spec, CENTERS).compute(scheduler="sync"))


def test_counts_equal_numpy_bincount_of_nearest_centre_labels():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (123, 77, 4), dtype=np.uint8)
    rgba[..., 3] *= rng.random((123, 77)) > 0.3
    counts, squared, masked = reference_counts(rgba)
    result = stats_of(rgba, (40, 30, 4))
    np.testing.assert_array_equal(result.counts, counts)
    assert result.masked == masked and result.valid == counts.sum()
    assert result.squared_error.sum() == pytest.approx(squared, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    rgba=arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(4))),
    row_chunk=st.integers(1, 40),
    col_chunk=st.integers(1, 40),
)
@pytest.mark.slow
def test_counts_sum_to_the_valid_pixels_whatever_the_chunking(rgba, row_chunk, col_chunk):
    counts, _, masked = reference_counts(rgba)
    result = stats_of(rgba, (row_chunk, col_chunk, 4))
    np.testing.assert_array_equal(result.counts, counts)
    assert result.valid + result.masked == rgba.shape[0] * rgba.shape[1]
    assert result.masked == masked


@settings(max_examples=25, deadline=None)
@given(
    rgba=arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30), st.just(4))),
    seed=st.integers(0, 2**32 - 1),
)
@pytest.mark.slow
def test_counts_do_not_depend_on_pixel_order(rgba, seed):
    order = np.random.default_rng(seed).permutation(rgba.shape[0] * rgba.shape[1])
    shuffled = rgba.reshape(-1, 4)[order].reshape(rgba.shape)
    first, second = stats_of(rgba, (7, 9, 4)), stats_of(shuffled, (5, 11, 4))
    np.testing.assert_array_equal(first.counts, second.counts)
    assert first.masked == second.masked
    assert first.squared_error.sum() == pytest.approx(second.squared_error.sum(), rel=1e-12)


def test_the_colour_cache_of_8_bit_chunks_changes_no_number():
    rng = np.random.default_rng(5)
    palette = rng.integers(0, 256, (40, 4), dtype=np.uint8)  # few colours: the cache is hit often
    rgba = palette[rng.integers(0, 40, (64, 80))]
    rgba[..., 3] = np.where(rng.random((64, 80)) > 0.1, 255, 0)
    cached = stats_of(rgba, (64, 80, 4))
    spec = pixel_spec(ImageInfo("array", "array", rgba.shape, "uint16", alpha=True), scale=(0, 255))
    wide = da.from_array(rgba.astype(np.uint16), chunks=(64, 80, 4))  # same features, no cache
    uncached = unpack_stats(image_stats(wide, spec, CENTERS).compute(scheduler="sync"))
    np.testing.assert_array_equal(cached.counts, uncached.counts)
    assert cached.squared_error.tolist() == uncached.squared_error.tolist()  # bit for bit
    assert cached.lab_squared_error == uncached.lab_squared_error and cached.masked == uncached.masked


@pytest.mark.parametrize("space", ["lab", "rgb"])
@pytest.mark.slow
def test_the_lookup_table_gives_what_the_loop_computes_for_every_8_bit_colour(space):
    every = np.arange(2**24, dtype=np.uint32)
    rgba = np.stack([every >> 16, (every >> 8) & 255, every & 255, every % 7], axis=-1).astype(np.uint8)
    block = rgba.reshape(4096, 4096, 4)  # alpha 0 for one pixel in seven
    spec = PixelSpec(bands=(0, 1, 2), alpha=3, low=(0, 0, 0), high=(255, 255, 255), space=space)
    rng = np.random.default_rng(1)
    centers = (rng.random((6, 3)) * ([100, 80, 80] if space == "lab" else [255, 255, 255])).astype(np.float32)
    centers_rgb = rng.random((6, 3)) * 255
    labels = [np.zeros(block.shape[:2], np.uint8) for _ in range(2)]
    looked_up = block_stats(block, spec, centers, centers_rgb, labels_out=labels[0], lookup=True)
    computed = block_stats(block, spec, centers, centers_rgb, labels_out=labels[1])
    np.testing.assert_array_equal(labels[0], labels[1])
    assert looked_up.tolist() == computed.tolist()  # counts, squared distances, masked, CIELAB error
    assert looked_up[2 * 6] == int((every % 7 == 0).sum())
