import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from helpers import assert_within_bound, exact_errors, photo_mosaic, reference_labels, write_png
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from palette_dask import extract_palette, image_stats, load_result
from palette_dask.cli import main
from palette_dask.inputs.formats import ImageInfo
from palette_dask.kernels import count
from palette_dask.kernels.count import BatchCounts, ImageCounts, block_stats, unpack_stats
from palette_dask.kernels.pixels import PixelSpec, pixel_spec
from palette_dask.outputs.report import html_report
from palette_dask.outputs.store import create_store, write_batch, write_palette
from palette_dask.run import passes

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


def every_colour(alpha: bool) -> np.ndarray:
    """All 2^24 8-bit colours as a 4096 x 4096 image; with ``alpha``, alpha 0 for one pixel in seven."""
    every = np.arange(2**24, dtype=np.uint32)
    bands = [every >> 16, (every >> 8) & 255, every & 255] + ([every % 7] if alpha else [])
    return np.stack(bands, axis=-1).astype(np.uint8).reshape(4096, 4096, -1)


def counted_both_ways(image, spec, centers, centers_rgb=None, chunks=(1024, 4096)):
    """``(fast, computed)``: :func:`image_stats` with and without the tables, each with its label raster."""
    found = []
    for lookup in (True, False):
        labels = np.zeros(image.shape[:2], np.uint8)
        tiles = da.from_array(image, chunks=(*chunks, image.shape[2]))
        stats = image_stats(tiles, spec, centers, labels, centers_rgb=centers_rgb, lookup=lookup)
        found.append((stats.compute(scheduler="sync"), labels))
    return found


K8 = {"lab": [100, 80, 80], "rgb": [255, 255, 255]}


@pytest.mark.parametrize("space", ["lab", "rgb"])
@pytest.mark.slow
def test_the_lookup_tables_label_and_count_as_the_loop_computes_for_every_8_bit_colour(space):
    block = every_colour(alpha=True)
    spec = PixelSpec(bands=(0, 1, 2), alpha=3, low=(0, 0, 0), high=(255, 255, 255), space=space)
    rng = np.random.default_rng(1)
    centers = (rng.random((8, 3)) * K8[space]).astype(np.float32)
    centers_rgb = rng.random((8, 3)) * 255
    (fast, fast_labels), (computed, labels) = counted_both_ways(block, spec, centers, centers_rgb)
    np.testing.assert_array_equal(fast_labels, labels)  # the label rasters, written by four blocks
    assert fast[:8].tolist() == computed[:8].tolist()  # counts
    assert fast[16] == computed[16] == int((block[..., 3] == 0).sum())  # masked
    valid = computed[:8].sum()
    assert computed[18] == valid and 0 < fast[18] < valid / 30  # the errors estimated, from 1 in 32
    sampled_valid = (count.sampled(0, 2**24) & (block[..., 3] > 0).reshape(-1)).sum()
    assert fast[18] == sampled_valid  # of the image's sampled pixels, every valid one
    squared, lab = exact_errors(block, spec, centers, centers_rgb)
    assert computed[8:16].sum() == pytest.approx(squared.sum(), rel=1e-9)
    assert_within_bound(fast[8:16].sum(), squared, fast[18])
    assert_within_bound(fast[17], lab, fast[18])
    assert unpack_stats(fast).error_pixels == fast[18] and unpack_stats(computed).error_pixels is None


def test_the_sample_of_errors_is_the_same_pixels_whatever_the_chunking():
    blocks = [(0, 50, 61, 61), (7 * 1300 + 33, 40, 61, 1300), (999 * 1300 + 1, 1, 1299, 1300)]
    for first, rows, cols, width in blocks:  # (first index, rows, columns, the image's width)
        rng = np.random.default_rng(first)
        block = rng.integers(0, 256, (rows * cols, 3), dtype=np.uint8)
        spec = PixelSpec(bands=(0, 1, 2), low=(0, 0, 0), high=(255, 255, 255), space="lab")
        centers = (rng.random((8, 3)) * K8["lab"]).astype(np.float32)
        records, *_ = count.colour_lookup(count.loop_palette(spec, centers))
        loop = count.loop_spec(spec, np.uint8)
        gaps = count._GAPS, count._GAP_STEPS
        found = count._measure_sampled(block, loop, 8, records, cols, first, width, *gaps)
        index = (first + np.arange(rows)[:, None] * width + np.arange(cols)).reshape(-1)
        chosen = count.sampled(0, index.max() + 1)[index]  # by the image's index alone
        keys = (block[:, 0].astype(np.int64) << 16) | (block[:, 1].astype(np.int64) << 8) | block[:, 2]
        labels = records["label"][keys[chosen]]
        np.testing.assert_array_equal(found[2], np.bincount(labels, minlength=8))
        squared = np.bincount(labels, records["squared"][keys[chosen]], minlength=8)
        np.testing.assert_allclose(found[0], squared)


@pytest.mark.parametrize("layout", ["photos", "periodic", "fibonacci", "stride"])
def test_estimated_errors_are_within_their_bound_on_photos_and_periodic_layouts(layout):
    from helpers import periodic_mosaic, photo_mosaic

    if layout == "photos":
        image = photo_mosaic(1100, 1300)
    elif layout == "periodic":
        image = periodic_mosaic(1024, 8, 3)  # tiles of 8 pixels, a period of 24 columns and rows
    elif layout == "fibonacci":  # a photo shrunk to 21 pixels, repeated: the sampler's longest gap
        image = np.tile(periodic_mosaic(21, 21, 1), (50, 62, 1))
    else:  # one column in 16 far from every centre: a stride of 16 sees it always or never
        image = np.full((1024, 1600, 3), 40, np.uint8)
        image[:, ::16] = (250, 20, 240)
    spec = PixelSpec(bands=(0, 1, 2), low=(0, 0, 0), high=(255, 255, 255), space="lab")
    centers = (np.random.default_rng(3).random((8, 3)) * K8["lab"]).astype(np.float32)
    centers[0] = (20, 5, 5)
    halves = (-(-image.shape[0] // 2), -(-image.shape[1] // 2))  # four blocks, each measured on a sample
    (fast, fast_labels), (computed, labels) = counted_both_ways(image, spec, centers, chunks=halves)
    np.testing.assert_array_equal(fast_labels, labels)
    assert fast[:8].tolist() == computed[:8].tolist() and fast[16] == computed[16]
    assert 0 < fast[18] < computed[18] / 30
    squared, lab = exact_errors(image, spec, centers)
    assert_within_bound(fast[8:16].sum(), squared, fast[18])
    assert_within_bound(fast[17], lab, fast[18])
    if layout == "stride":  # each colour's error is its own: the estimate is the exact sum
        assert fast[8:16].sum() == pytest.approx(squared.sum(), rel=1e-9)


@pytest.mark.parametrize("shape", [(5, 7), (300, 200)])
def test_a_tiny_image_or_block_is_measured_whole_with_the_lookup_tables(shape):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (*shape, 4), dtype=np.uint8)
    image[..., 3] = 255
    spec = PixelSpec(bands=(0, 1, 2), alpha=3, low=(0, 0, 0), high=(255, 255, 255), space="lab")
    centers = (rng.random((8, 3)) * K8["lab"]).astype(np.float32)
    looked_up = block_stats(image, spec, centers, lookup=True)
    assert looked_up.tolist() == block_stats(image, spec, centers).tolist()  # exact: every number
    assert looked_up[18] == shape[0] * shape[1]


def test_a_small_block_looked_up_with_transparency_and_an_exclusion_equals_the_computed_loop():
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (300, 200, 4), dtype=np.uint8)  # too few pixels for an estimate
    image[..., 3] = np.where(rng.random((300, 200)) < 0.2, 0, 255)
    image[:40, :40, :3] = (250, 250, 250)  # a colour the exclusion leaves out
    spec = PixelSpec(
        bands=(0, 1, 2), alpha=3, low=(0, 0, 0), high=(255, 255, 255), space="lab",
        exclude=((100.0, 0.0, 0.0),), within=6.0,
    )  # fmt: skip
    centers = (rng.random((8, 3)) * K8["lab"]).astype(np.float32)
    found = []
    for lookup in (True, False):
        labels = np.zeros(image.shape[:2], np.uint8)
        found.append((block_stats(image, spec, centers, labels_out=labels, lookup=lookup), labels))
    (fast, fast_labels), (computed, computed_labels) = found
    assert fast.tolist() == computed.tolist()  # every number, the errors exact
    np.testing.assert_array_equal(fast_labels, computed_labels)
    assert computed[16] >= 1600 + int((image[40:, :, 3] == 0).sum())  # the exclusion and alpha 0 masked


def test_threads_counting_while_the_tables_are_built_give_the_same_numbers(monkeypatch):
    """Estimated or exact follows from the block, never from which thread built the tables first.

    Before, a thread that found the tables being built counted by computing: its errors were exact
    where the others estimated, and numba's dispatcher crashed (a segmentation fault, 3 runs of 3).
    """
    import threading

    monkeypatch.setattr(count, "_lookups", {})  # cold: the first threads find the tables being built
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    spec = PixelSpec(bands=(0, 1, 2), low=(0, 0, 0), high=(255, 255, 255), space="lab")
    centers = (rng.random((8, 3)) * K8["lab"]).astype(np.float32)
    start, found = threading.Barrier(4), [None] * 4

    def counted(i):
        start.wait()
        found[i] = block_stats(image, spec, centers, lookup=True)

    threads = [threading.Thread(target=counted, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    settled = block_stats(image, spec, centers, lookup=True)  # the tables ready
    assert settled[18] < 512 * 512 / 30  # an estimate, from 1 in 32
    for vector in found:
        assert vector.tolist() == settled.tolist()


def test_a_run_of_many_8_bit_pixels_stores_its_errors_as_estimates(client, tmp_path, monkeypatch, capsys):
    mosaic = photo_mosaic(1200, 1400)
    paths = [write_png(tmp_path / "mosaic.png", mosaic), write_png(tmp_path / "tiny.png", mosaic[:40, :50])]
    exact = extract_palette(paths, 8, store=tmp_path / "exact.zarr", client=client)
    monkeypatch.setattr(passes, "LOOKUP_PIXELS", 0)  # the tables, as a run of 2^26 8-bit pixels has them
    fast = extract_palette(paths, 8, store=tmp_path / "fast.zarr", client=client)
    np.testing.assert_array_equal(fast.centers, exact.centers)
    np.testing.assert_array_equal(fast.image_counts, exact.image_counts)  # the counts: exact
    np.testing.assert_array_equal(exact.image_error_pixels, exact.image_valid)
    assert fast.image_error_pixels[1] == fast.image_valid[1]  # the tiny image: measured whole
    assert 0 < fast.image_error_pixels[0] < fast.image_valid[0] / 30
    assert exact.errors_exact and not fast.errors_exact
    spec = PixelSpec(bands=(0, 1, 2), low=(0, 0, 0), high=(255, 255, 255), space="lab")
    squared, lab = exact_errors(mosaic, spec, fast.centers, fast.centers_rgb)
    tiny = exact_errors(mosaic[:40, :50], spec, fast.centers, fast.centers_rgb)[0].sum()
    assert exact.attrs["inertia"] == pytest.approx(squared.sum() + tiny, rel=1e-9)
    assert_within_bound(fast.attrs["inertia"] - tiny, squared, fast.image_error_pixels[0])
    assert_within_bound(fast.image_lab_squared_error[0], lab, fast.image_error_pixels[0])
    main(["show", str(tmp_path / "fast.zarr"), "--json"])
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert errors == {"exact": False, "measured_pixels": int(fast.image_error_pixels.sum())}
    main(["show", str(tmp_path / "fast.zarr")])
    assert f"errors estimated from {int(fast.image_error_pixels.sum()):,} pixels" in capsys.readouterr().out
    main(["show", str(tmp_path / "exact.zarr")])
    assert "estimated" not in capsys.readouterr().out
    page = html_report(fast, tmp_path / "report.html", preview_images=0)
    assert f"estimated from {int(fast.image_error_pixels.sum()):,} pixels" in Path(page).read_text()


def test_an_older_store_reads_as_exact_and_is_given_its_error_pixels_when_it_holds_estimates():
    group = create_store(None, ["a.png", "b.png"], attrs={"parameters": {"k": 1}}, batch_size=1)
    del group["image_error_pixels"]  # as stores made before it was stored
    write_palette(group, np.array([[10, 20, 30]], dtype=np.float32))
    first = BatchCounts.empty(0, 1, 1)
    first.done(0, ImageCounts(np.array([40]), np.ones(1), masked=1))
    write_batch(group, first)
    assert "image_error_pixels" not in group and load_result(group).errors_exact
    second = BatchCounts.empty(1, 1, 1)
    second.done(0, ImageCounts(np.array([64]), np.ones(1), masked=0, error_pixels=4))
    write_batch(group, second)  # a resume that stores estimates
    assert group["image_error_pixels"][:].tolist() == [40, 4]
    result = load_result(group)
    assert not result.errors_exact and result.error_pixels == 44


@pytest.mark.slow
def test_the_tables_of_labels_hold_two_bytes_from_255_colours():
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    spec = PixelSpec(bands=(0, 1, 2), low=(0, 0, 0), high=(255, 255, 255), space="rgb")
    centers = rng.integers(0, 256, (300, 3)).astype(np.float32)
    (fast, fast_labels), (computed, labels) = (
        (block_stats(image, spec, centers, labels_out=out, lookup=lookup), out)
        for lookup, out in ((True, np.zeros((512, 512), np.uint16)), (False, np.zeros((512, 512), np.uint16)))
    )
    assert fast_labels.max() > 255  # labels past one byte, from a table of two
    np.testing.assert_array_equal(fast_labels, labels)
    assert fast[:300].tolist() == computed[:300].tolist() and fast[600] == computed[600] == 0
    assert 0 < fast[602] < computed[602] / 30
