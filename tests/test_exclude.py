"""Excluded colours (--exclude): left out as masked pixels are, in the sample and in the counts."""

import subprocess
import sys

import numpy as np
import pytest
import zarr
from helpers import assert_within_bound, every_array, exact_errors, photo_crops, write_png
from skimage.color import deltaE_ciede2000, rgb2lab

from palette_dask import extract_palette
from palette_dask.kernels.colour import ciede2000, delta_e00, excluded, srgb_to_lab
from palette_dask.kernels.count import block_stats
from palette_dask.kernels.pixels import PixelSpec


def test_ciede2000_equals_scikit_image_on_random_and_close_pairs():
    rng = np.random.default_rng(0)
    lab = np.column_stack([rng.uniform(0, 100, 4000), rng.uniform(-120, 120, (4000, 2))])
    other = np.column_stack([rng.uniform(0, 100, 4000), rng.uniform(-120, 120, (4000, 2))])
    other[:2000] = lab[:2000] + rng.normal(0, 2, (2000, 3))  # close pairs, as exclusions meet them
    other[:50, 1:] = 0.0  # grays: hue undefined
    lab[:25, 1:] = 0.0
    ours = np.array([ciede2000(*a, *b) for a, b in zip(lab, other)])
    np.testing.assert_allclose(ours, deltaE_ciede2000(lab, other), rtol=0, atol=1e-9)


def _photo_on_white(seed: int, shape=(96, 128)) -> np.ndarray:
    """A product shot: a photo crop on a near-white, noisy background."""
    rng = np.random.default_rng(seed)
    image = np.full((*shape, 3), 255, np.uint8) - rng.integers(0, 12, (*shape, 3)).astype(np.uint8)
    crop = next(photo_crops(1, seed=seed, corners=200, sides=(40, 60)))
    y, x = rng.integers(0, shape[0] - crop.shape[0]), rng.integers(0, shape[1] - crop.shape[1])
    image[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
    return image


def _as_masked(rgb: np.ndarray, colours, within) -> np.ndarray:
    """The same pixels as RGBA, alpha 0 where the exclusion leaves them out (numpy reference path)."""
    out = excluded(rgb.reshape(-1, 3).astype(np.float32), srgb_to_lab(np.array(colours, float)), within)
    alpha = np.where(out.reshape(rgb.shape[:2]), 0, 255).astype(np.uint8)
    return np.dstack([rgb, alpha])


def test_excluded_pixels_are_those_of_a_numpy_and_a_scikit_image_mask(client, tmp_path):
    image = _photo_on_white(1)
    path = write_png(tmp_path / "product.png", image)
    result = extract_palette(path, 4, client=client, exclude=["#ffffff"], exclude_within=6)
    lab = rgb2lab(image / 255.0)
    reference = deltaE_ciede2000(lab, np.broadcast_to(rgb2lab(np.ones((1, 1, 3))), lab.shape)) <= 6
    ours = _as_masked(image, [[255, 255, 255]], 6)[..., 3] == 0
    assert result.image_masked[0] == ours.sum()
    assert (
        abs(int(ours.sum()) - int(reference.sum())) <= 2
    )  # scikit-image's XYZ matrix differs at the 6th digit
    assert result.counts.sum() == image.shape[0] * image.shape[1] - ours.sum()
    assert ours.sum() > 0.4 * ours.size  # the background went


@pytest.mark.slow
def test_excluding_colours_equals_masking_their_pixels_in_batches_and_tiles(client, tmp_path):
    """Every array of a run with exclusions equals the run where those pixels have alpha 0."""
    colours, within = [[255, 255, 255], [200, 60, 40]], 8.0
    images = [_photo_on_white(seed) for seed in range(6)]
    images[2][10:40, 10:40] = [203, 58, 41]  # near the second colour
    mosaic = np.vstack([np.hstack(images[:3]), np.hstack(images[3:])])
    plain, masked = tmp_path / "plain", tmp_path / "masked"
    plain.mkdir(), masked.mkdir()
    for i, image in enumerate(images):
        write_png(plain / f"{i}.png", image)
        write_png(masked / f"{i}.png", _as_masked(image, colours, within))
    for folder, pixels in ((plain, mosaic), (masked, _as_masked(mosaic, colours, within))):
        array = zarr.create_array(
            folder / "mosaic.zarr", shape=pixels.shape, chunks=(64, 64, pixels.shape[2]), dtype="u1"
        )
        array[:] = pixels  # tiled: sampled and counted chunk by chunk
    runs = {}
    for folder, options in (
        (plain, {"exclude": ["#ffffff", "#c83c28"], "exclude_within": within}),
        (masked, {"alpha": 3}),  # the PNGs declare their alpha band; the zarr mosaic does not
    ):
        inputs = sorted(str(p) for p in folder.glob("*.png")) + [str(folder / "mosaic.zarr")]
        extract_palette(
            inputs,
            5,
            client=client,
            store=folder / "out.zarr",
            batch_size=2,
            chunk_bytes=64 * 64 * 4,
            **options,
        )
        runs[folder] = every_array(zarr.open_group(folder / "out.zarr", mode="r"))
    assert runs[plain].keys() == runs[masked].keys()
    for name in runs[plain]:
        if name != "image_names":
            np.testing.assert_array_equal(runs[plain][name], runs[masked][name], err_msg=name)
    assert runs[plain]["image_masked"].sum() > 0.3 * runs[plain]["image_valid"].sum()


@pytest.mark.slow
def test_the_lookup_table_excludes_what_the_loop_excludes_for_every_8_bit_colour():
    every = np.arange(2**24, dtype=np.uint32)
    block = (
        np.stack([every >> 16, (every >> 8) & 255, every & 255], axis=-1)
        .astype(np.uint8)
        .reshape(4096, 4096, 3)
    )
    exclude = tuple(tuple(v) for v in srgb_to_lab(np.array([[255.0, 255, 255], [30, 120, 60]])).tolist())
    spec = PixelSpec(
        bands=(0, 1, 2), low=(0, 0, 0), high=(255, 255, 255), space="lab", exclude=exclude, within=5.0
    )
    rng = np.random.default_rng(2)
    centers = (rng.random((6, 3)) * [100, 80, 80]).astype(np.float32)
    labels = [np.zeros(block.shape[:2], np.uint8) for _ in range(2)]
    looked_up = block_stats(block, spec, centers, labels_out=labels[0], lookup=True)
    computed = block_stats(block, spec, centers, labels_out=labels[1])
    np.testing.assert_array_equal(labels[0], labels[1])
    assert looked_up[:6].tolist() == computed[:6].tolist() and looked_up[12] == computed[12]  # counts, masked
    squared, lab = exact_errors(block, spec, centers)  # the errors: estimated from 1 pixel in 32
    assert computed[14] == len(squared) > looked_up[14] * 30
    assert_within_bound(looked_up[6:12].sum(), squared, looked_up[14])
    assert_within_bound(looked_up[13], lab, looked_up[14])
    left_out = labels[0].reshape(-1) == 0
    near = np.flatnonzero(left_out)
    assert looked_up[2 * 6] == len(near) > 1000
    # every left-out colour is within 5 of one of them, by the sRGB-input difference
    assert (
        delta_e00(block.reshape(-1, 3)[near[::97]], [[255, 255, 255], [30, 120, 60]]).min(axis=1).max() <= 5.0
    )


@pytest.mark.slow
def test_exclude_on_the_command_line(tmp_path):
    path = write_png(tmp_path / "product.png", _photo_on_white(3))
    command = [sys.executable, "-m", "palette_dask.cli"]
    bad = subprocess.run([*command, "run", path, "--exclude", "nocolour"], capture_output=True, text=True)
    assert bad.returncode == 2 and "expected #rrggbb or a CSS colour name" in bad.stderr
    ranged = subprocess.run(
        [*command, "run", path, "--exclude", "white", "--scale", "minmax"], capture_output=True, text=True
    )
    assert ranged.returncode == 2 and "exclude needs a known display range" in ranged.stderr
    assert "Traceback" not in bad.stderr + ranged.stderr
    store = tmp_path / "s.zarr"
    done = subprocess.run(
        [*command, "run", path, "--exclude", "white", "--within", "5", "-o", str(store), "-q"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    parameters = zarr.open_group(store, mode="r").attrs["parameters"]
    assert parameters["exclude"] == ["#ffffff"] and parameters["exclude_within"] == 5.0


@pytest.mark.parametrize("colour", ["#12345", "white"])
def test_exclude_needs_hex_colours_in_python(client, tmp_path, colour):
    path = write_png(tmp_path / "a.png", _photo_on_white(4))
    with pytest.raises(Exception, match="is not a colour; give #rrggbb"):
        extract_palette(path, 3, client=client, exclude=[colour])
