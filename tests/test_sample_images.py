"""A collection's sample from a seeded subset of its images (``sample_images="auto"``), against every image.

Strict twin: ``sample_images="all"``. The kernel with every image chosen
gives the batch's exact bottom-k; the subset's pixels are as likely to be
drawn as any (flat-colour images of very different sizes); the palettes of
a structured collection are as good; the images not chosen are decoded once.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import skimage.data
import skimage.transform
import zarr
from helpers import write_png

from palette_dask import extract_palette
from palette_dask.inputs import read
from palette_dask.inputs.formats import ImageInfo
from palette_dask.inputs.read import Batch
from palette_dask.kernels.sample import (
    image_key,
    image_share,
    image_subset,
    merge_candidates,
    sample_batch,
    sample_chosen,
    sampling_fraction,
)
from palette_dask.options import RunConfig

SIZE = 4000  # a sample small enough for 320 images to be a large collection


def _batch(images, start=0) -> Batch:
    """A batch holding its images decoded, as a first pass keeps them."""
    infos = [
        ImageInfo(f"image-{start + i}", "array", image.shape, image.dtype.name)
        for i, image in enumerate(images)
    ]
    return Batch(start, infos, 2**25, list(images))


def test_with_every_image_chosen_the_candidates_are_the_batch_exact_sample():
    rng = np.random.default_rng(3)
    images = [
        rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8) for h, w in rng.integers(5, 60, (40, 2))
    ]
    config = RunConfig(k=3, sample_size=500, seed=4)
    exact = sample_batch(_batch(images), config, seed=4, size=500).candidates
    fraction = sampling_fraction(sum(i.shape[0] * i.shape[1] for i in images), 500)
    _, summary = sample_chosen(_batch(images), config, seed=4, size=500, fraction=fraction, per_image=None)
    np.testing.assert_array_equal(summary.candidates, exact)


def test_every_pixel_is_as_likely_to_be_drawn_whatever_its_image_size():
    """Flat-colour images of three sizes: the sample's share of each size is its share of the pixels."""
    sides, numbers = (8, 40, 200), (1500, 150, 12)
    images = [
        np.full((side, side, 3), 100 * c, np.uint8)
        for c, (side, n) in enumerate(zip(sides, numbers))
        for _ in range(n)
    ]
    expected = np.array([side * side * n for side, n in zip(sides, numbers)], float)
    expected /= expected.sum()
    size, per_image, shares, chosen = 2000, 20, [], []
    config = RunConfig(k=3, sample_size=size)
    for seed in range(16):
        batches = [_batch(images[s : s + 300], s) for s in range(0, len(images), 300)]
        fraction = sampling_fraction(sum(i.shape[0] * i.shape[1] for i in images), size)
        outs = [
            sample_chosen(b, config, seed=seed, size=size, fraction=fraction, per_image=per_image)
            for b in batches
        ]
        sample = merge_candidates([summary.candidates for _, summary in outs], size)
        classes = np.digitize(sample[:, 1], [20, 60])  # CIELAB L* of grey 0, 100, 200: 0, 42, 81
        shares.append(np.bincount(classes, minlength=3) / len(sample))
        chosen.append(
            sum(
                image_key(seed, i) < image_share(im.shape[0] * im.shape[1], fraction, per_image)
                for i, im in enumerate(images)
            )
        )
    shares = np.array(shares)
    error = shares.std(axis=0, ddof=1) / np.sqrt(len(shares))  # the clusters' variance, measured over seeds
    assert np.all(np.abs(shares.mean(axis=0) - expected) < 4 * error + 1e-3), (
        shares.mean(axis=0),
        expected,
        error,
    )
    # the share of large images' pixels is not what their being always chosen would give
    assert np.median(chosen) < len(images) / 4


def test_small_collections_sample_every_image():
    assert not image_subset(300, 100_000) and not image_subset(4000, 100_000) and image_subset(320, SIZE)


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> list[str]:
    """320 PNGs sorted by content (four photos' crops in runs), sides from 12 to 240, five unlike the rest."""
    folder, rng, paths = tmp_path_factory.mktemp("collection"), np.random.default_rng(7), []
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    for i in range(320):
        photo = photos[i * len(photos) // 320]
        if i % 64 == 63:  # unlike the rest: the Hubble deep field, dark with bright specks
            photo = skimage.data.hubble_deep_field()
        side = int(np.exp(rng.uniform(np.log(12), np.log(240))))
        h, w = rng.integers(side // 2, side + 1), side
        ch, cw = int(1.2 * h), int(1.2 * w)  # resized down a little, anti-aliased
        y, x = rng.integers(0, photo.shape[0] - ch), rng.integers(0, photo.shape[1] - cw)
        crop = skimage.transform.resize(photo[y : y + ch, x : x + cw], (h, w), anti_aliasing=True)
        paths.append(write_png(folder / f"{i:03d}.png", (crop * 255).round().astype(np.uint8)))
    return paths


def _chosen(paths, seed: int, size: int) -> set[str]:
    """The images a run at its first threshold chooses (no masked pixel: it needs no other)."""
    pixels = [read.probe(p).pixels for p in paths]
    fraction = sampling_fraction(sum(pixels), size)
    return {p for i, (p, n) in enumerate(zip(paths, pixels)) if image_key(seed, i) < image_share(n, fraction)}


@pytest.fixture
def decodes(monkeypatch):
    """The decodes of each source in this process (the client's workers are threads here)."""
    counter = collections.Counter()
    monkeypatch.setattr(read, "DECODES", counter)
    return counter


@pytest.mark.slow
def test_palettes_from_the_images_chosen_are_as_good_as_from_every_image(client, collection):
    for seed in range(5):
        errors = {
            mode: extract_palette(
                collection, 6, client=client, seed=seed, sample_size=SIZE, sample_images=mode
            ).attrs["lab_error"]
            for mode in ("auto", "all")
        }
        assert errors["auto"] <= 1.01 * errors["all"], (seed, errors)


def test_only_the_images_chosen_are_decoded_twice(client, collection, decodes):
    decodes.clear()
    lines = []
    result = extract_palette(
        collection, 5, client=client, seed=2, sample_size=SIZE, memory_budget=0, report=lines.append
    )
    assert "sample_images" not in result.attrs["parameters"] and (result.image_status == 1).all()  # default
    assert any(line.startswith("sampling from the images chosen") for line in lines)
    chosen = _chosen(collection, 2, SIZE)
    assert 20 < len(chosen) < 200
    assert {p: decodes[p] for p in collection} == {p: 2 if p in chosen else 1 for p in collection}
    decodes.clear()
    kept = extract_palette(collection, 5, client=client, seed=2, sample_size=SIZE)  # within the budget
    assert {decodes[p] for p in collection} == {1}
    np.testing.assert_array_equal(kept.image_counts, result.image_counts)


def test_a_palette_applied_decodes_each_image_once(client, collection, tmp_path, decodes):
    fitted = extract_palette(collection[:40], 5, client=client, store=tmp_path / "fitted.zarr")
    for budget in (0, 2**30):
        decodes.clear()
        applied = extract_palette(
            collection, client=client, palette=str(tmp_path / "fitted.zarr"), memory_budget=budget
        )
        assert {decodes[p] for p in collection} == {1}
        np.testing.assert_array_equal(applied.image_counts[:40], fitted.image_counts)


def test_an_auto_store_appended_and_resumed_keeps_its_palette(client, collection, tmp_path):
    store = tmp_path / "grown.zarr"
    first = extract_palette(collection[:200], 5, client=client, store=store, sample_size=SIZE // 2, seed=1)
    grown = extract_palette(collection[200:], store=store, client=client, append=True)
    np.testing.assert_array_equal(grown.centers, first.centers)
    np.testing.assert_array_equal(grown.image_counts[:200], first.image_counts)
    whole = extract_palette(collection, client=client, palette=str(store))  # the same palette, every image
    np.testing.assert_array_equal(grown.image_counts, whole.image_counts)
    group = zarr.open_group(store, mode="r+")  # as if stopped before its last batch: resumed
    group["image_status"][-1] = 0
    group.attrs["complete"] = False
    resumed = extract_palette(
        collection, 5, store=store, client=client, resume=True, sample_size=SIZE // 2, seed=1
    )
    np.testing.assert_array_equal(resumed.image_counts, grown.image_counts)
    assert resumed.complete
