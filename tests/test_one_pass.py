"""8-bit mosaics at one read pass (run/passes.py ONE_READ_PASS, kernels/histogram.py), against two passes.

A mosaic of 8-bit colours gives its colour histogram in its sampling pass and
is counted from it; its strict twin reads it again to count it (the module
constant off, as data wider than 8 bits are counted). Both runs on a real
LocalCluster, real zarr stores: the same palette, counts, masked pixels, and
errors to float64 rounding, on photos, a periodic layout whose period does not
divide the chunks, alpha 0, no-data and an excluded colour, and every 8-bit colour.
"""

import collections

import dask.array as da
import numpy as np
import pytest
import zarr
from helpers import periodic_mosaic, photo_mosaic, reference_labels

from palette_dask import extract_palette
from palette_dask.kernels.colour import srgb_to_lab
from palette_dask.kernels.histogram import block_histogram, histogram_stats, merge_histograms
from palette_dask.kernels.pixels import PixelSpec
from palette_dask.run import passes

EXACT = ("counts", "image_counts", "image_valid", "image_masked", "image_error_pixels", "centers", "colors")
ERRORS = ("image_squared_error", "image_lab_squared_error")


READS = collections.Counter()  # chunk key → reads, by every copy of a CountingStore in this process


class CountingStore(zarr.storage.WrapperStore):
    """A real zarr store that counts the reads of each chunk's key (in :data:`READS`, as copies are made)."""

    def _with_store(self, store):
        return type(self)(store)

    def __reduce__(self):
        return type(self), (self._store,)

    async def get(self, key, prototype, byte_range=None):
        if "/c/" in f"/{key}":
            READS[key] += 1
        return await super().get(key, prototype, byte_range)


def _run(path, client, monkeypatch, *, once: bool, k=6, **options):
    """One run of the mosaic at ``path`` into a store beside it, read once or twice; its lines reported."""
    store = str(path.parent / f"{'once' if once else 'twice'}.zarr")
    monkeypatch.setattr(passes, "ONE_READ_PASS", once)
    lines = []
    extract_palette(str(path), k, client=client, store=store, seed=3, report=lines.append, **options)
    return zarr.open_group(store, mode="r"), lines


def _assert_same_stores(once, twice):
    for name in EXACT:
        np.testing.assert_array_equal(once[name][:], twice[name][:], err_msg=name)
    for name in ERRORS:
        np.testing.assert_allclose(once[name][:], twice[name][:], rtol=1e-9, atol=1e-9, err_msg=name)
    assert once.attrs["inertia"] == pytest.approx(twice.attrs["inertia"], rel=1e-9)
    assert once.attrs["lab_error"] == pytest.approx(twice.attrs["lab_error"], rel=1e-9)


def _alpha_nodata_white(side: int) -> np.ndarray:
    """A photo mosaic with alpha 0 blocks, no-data (0, 0, 0) stripes and a white region (excluded)."""
    rgba = np.full((side, side, 4), 255, np.uint8)
    rgba[..., :3] = photo_mosaic(side, side)
    rgba[50:170, 30:300, 3] = 0  # alpha 0 over photo pixels
    rgba[::7, :, :3] = 0  # no-data
    rgba[200:260, 100:400, :3] = 255  # white: excluded
    rgba[300:320, :, 3] = 0
    return rgba


MOSAICS = {
    "photos": (lambda: photo_mosaic(900, 700), {}),
    "periodic": (lambda: periodic_mosaic(960, 96, 3), {}),  # a period of 288 pixels, chunks of 128
    "alpha, no-data, excluded": (
        lambda: _alpha_nodata_white(512),
        {"alpha": 3, "nodata": 0, "exclude": ["#ffffff"]},
    ),
}


@pytest.mark.parametrize("space", ["lab", "rgb"])
@pytest.mark.parametrize("kind", list(MOSAICS))
def test_a_mosaic_read_once_stores_what_two_passes_store(client, tmp_path, monkeypatch, kind, space):
    make, options = MOSAICS[kind]
    path = tmp_path / "mosaic.zarr"
    zarr.create_array(str(path), data=(data := make()), chunks=(128, 128, data.shape[2]))
    options = {"chunk_bytes": 2**17, "space": space, **options}  # several chunks
    once, lines = _run(path, client, monkeypatch, once=True, **options)
    twice, others = _run(path, client, monkeypatch, once=False, **options)
    assert "1 image of 8-bit colours read once, counted from colour histograms" in lines
    assert not any("read once" in line for line in others)
    _assert_same_stores(once, twice)
    assert once["image_error_pixels"][:].tolist() == once["image_valid"][:].tolist()  # exact errors
    if "alpha" in options:
        assert once["image_masked"][0] > 0


def test_a_mosaic_read_once_is_counted_from_its_histogram_with_exact_errors(client, tmp_path, monkeypatch):
    """With the tables on (LOOKUP_PIXELS lowered), two passes estimate the errors; one pass does not."""
    monkeypatch.setattr(passes, "LOOKUP_PIXELS", 0)
    path = tmp_path / "mosaic.zarr"
    zarr.create_array(str(path), data=photo_mosaic(1100, 1100), chunks=(512, 512, 3))  # blocks big enough
    once, _ = _run(path, client, monkeypatch, once=True, chunk_bytes=2**20)  # to be estimated: 2^17 pixels
    twice, _ = _run(path, client, monkeypatch, once=False, chunk_bytes=2**20)
    valid = once["image_valid"][:].tolist()
    assert once["image_error_pixels"][:].tolist() == valid  # every pixel: counted from the histogram
    assert twice["image_error_pixels"][0] < valid[0] / 2  # counted again, from the tables: estimated
    np.testing.assert_array_equal(once["image_counts"][:], twice["image_counts"][:])


def test_each_chunk_is_read_once(client, tmp_path, monkeypatch):
    """A zarr store that counts its chunks' reads: each read once, twice by the two-pass path.

    (A mosaic small enough to be kept in memory between the passes is read once either way.)
    """
    path = tmp_path / "mosaic.zarr"
    zarr.create_array(str(path), data=photo_mosaic(700, 600), chunks=(128, 128, 3))
    chunks = 6 * 5
    for once, times in ((True, 1), (False, 2)):
        READS.clear()
        store = CountingStore(zarr.storage.LocalStore(str(path), read_only=True))
        image = zarr.open_array(store, mode="r")
        monkeypatch.setattr(passes, "ONE_READ_PASS", once)
        monkeypatch.setattr(passes, "KEEP_TILED_BYTES", 0)  # as a mosaic too big to keep in memory
        lazy = da.from_zarr(image)  # an array given to the API is read tile by tile through its store
        extract_palette(
            lazy, 4, client=client, store=str(tmp_path / f"{once}.zarr"), seed=1, chunk_bytes=2**17
        )
        assert len(READS) == chunks and set(READS.values()) == {times}, (once, READS)


@pytest.mark.slow
def test_every_8_bit_colour_once_counts_as_two_passes_and_bincount(client, tmp_path, monkeypatch):
    """A 4096² image holding each 2^24 colour once, chunked: counts by label = bincount of the labels."""
    every = np.arange(2**24, dtype=np.uint32)
    rgb = np.stack([every >> 16, (every >> 8) & 255, every & 255], axis=-1).astype(np.uint8)
    path = tmp_path / "every.zarr"
    zarr.create_array(str(path), data=rgb.reshape(4096, 4096, 3), chunks=(1024, 1024, 3))
    options = {"chunk_bytes": 2**22, "k": 8}
    once, _ = _run(path, client, monkeypatch, once=True, **options)
    twice, _ = _run(path, client, monkeypatch, once=False, **options)
    _assert_same_stores(once, twice)
    features = srgb_to_lab(rgb.astype(np.float64)).astype(np.float32)
    labels = reference_labels(features, once["centers"][:])
    np.testing.assert_array_equal(once["counts"][:], np.bincount(labels, minlength=8))


def test_histograms_equal_numpy_and_merge_in_any_grouping():
    """Block histograms against numpy's unique counts; merged in parts, the whole block's."""
    rng = np.random.default_rng(0)
    block = photo_mosaic(300, 400)
    alpha = (rng.random(block.shape[:2]) > 0.2).astype(np.uint8) * rng.integers(1, 256, block.shape[:2])
    rgba = np.concatenate([block, alpha[..., None].astype(np.uint8)], axis=-1)
    spec = PixelSpec(bands=(0, 1, 2), alpha=3, low=(0, 0, 0), high=(255, 255, 255), nodata=0, space="lab")
    keys, counts, masked = block_histogram(rgba, spec)
    flat = rgba.reshape(-1, 4).astype(np.uint32)
    valid = (flat[:, 3] > 0) & ~np.all(flat[:, :3] == 0, axis=1)
    colours = flat[valid, 0] << 16 | flat[valid, 1] << 8 | flat[valid, 2]
    expected_keys, expected_counts = np.unique(colours, return_counts=True)
    order = np.argsort(keys)
    np.testing.assert_array_equal(keys[order], expected_keys)
    np.testing.assert_array_equal(counts[order], expected_counts)
    assert masked == int((~valid).sum())
    parts = [block_histogram(rgba[r : r + 70], spec) for r in range(0, 300, 70)]
    merged = merge_histograms([merge_histograms(parts[:2]), merge_histograms(parts[2:])])
    assert sorted(zip(merged[0].tolist(), merged[1].tolist())) == sorted(zip(keys.tolist(), counts.tolist()))
    assert merged[2] == masked
    centers = np.array([[40, 10, 5], [60, 0, 0], [80, -20, 30]], np.float32)
    stats = histogram_stats((keys, counts, masked), spec, centers)
    assert stats[:3].sum() == valid.sum() and stats[6] == masked
