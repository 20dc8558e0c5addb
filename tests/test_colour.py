"""CIELAB conversions against scikit-image's, and the Lab features and error in the counting loop."""

import dask.array as da
import numpy as np
import pytest
from helpers import reference_labels
from skimage.color import lab2rgb, rgb2lab

from palette_dask import image_stats
from palette_dask.inputs.formats import ImageInfo
from palette_dask.kernels.colour import lab_to_srgb, palette_lab, srgb_to_lab
from palette_dask.kernels.count import unpack_stats
from palette_dask.kernels.pixels import block_features, pixel_spec

# scikit-image rounds CIE's constants (0.008856, 7.787); ours are exact: they differ by < 0.01 ΔE.
SKIMAGE_TOLERANCE = 0.01


def test_srgb_to_lab_matches_scikit_image():
    rng = np.random.default_rng(0)
    rgb = np.concatenate([np.repeat(np.arange(256.0), 3).reshape(-1, 3), rng.uniform(0, 255, (5000, 3))])
    np.testing.assert_allclose(srgb_to_lab(rgb), rgb2lab(rgb[None] / 255.0)[0], atol=SKIMAGE_TOLERANCE)


def test_lab_to_srgb_inverts_and_matches_scikit_image():
    rng = np.random.default_rng(1)
    rgb = rng.uniform(0, 255, (2000, 3))
    np.testing.assert_allclose(lab_to_srgb(srgb_to_lab(rgb)), rgb, atol=1e-3)  # tabled cube roots: < 1e-3
    lab = np.array([[50.0, 20.0, -30.0], [90.0, -5.0, 10.0]])
    np.testing.assert_allclose(lab_to_srgb(lab) / 255.0, lab2rgb(lab[None])[0], atol=1e-3)
    assert lab_to_srgb(np.array([[50.0, 120.0, 0.0]])).max() <= 255.0  # out of gamut: clipped


def test_palette_lab_is_the_rounded_colour_as_shown():
    np.testing.assert_array_equal(palette_lab([[10.4, 20.6, 255.9]]), srgb_to_lab(np.array([[10, 21, 255]])))


def test_lab_counts_equal_numpy_bincount_and_the_error_equals_its_definition():
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, (97, 61, 4), dtype=np.uint8)
    rgba[..., 3] *= rng.random((97, 61)) > 0.2
    info = ImageInfo("array", "array", rgba.shape, "uint8", alpha=True)
    spec = pixel_spec(info, space="lab")
    lab_centers = np.array([[20, 0, 0], [55, 70, 50], [85, -60, 60], [60, 10, -50]], dtype=np.float32)
    centers_rgb = lab_to_srgb(lab_centers)
    result = unpack_stats(
        image_stats(
            da.from_array(rgba, chunks=(30, 25, 4)), spec, lab_centers, centers_rgb=centers_rgb
        ).compute(scheduler="sync")
    )
    features, valid = block_features(rgba, spec)  # the sample's path: numpy
    labels = reference_labels(features[valid].astype(np.float64), lab_centers)
    np.testing.assert_array_equal(result.counts, np.bincount(labels, minlength=4))
    assert result.masked == int((~valid).sum())
    # the error: squared ΔE of each pixel (scikit-image's Lab) to the nearest colour as shown
    pixel_lab = rgb2lab(rgba[..., :3][valid][None] / 255.0)[0]
    shown = rgb2lab(np.rint(centers_rgb)[None] / 255.0)[0]
    expected = (((pixel_lab[:, None, :] - shown[None]) ** 2).sum(-1)).min(axis=1).sum()
    assert result.lab_squared_error == pytest.approx(expected, rel=1e-3)


def test_rgb_counts_report_the_lab_error_too():
    rgb = np.array([[[250, 250, 250], [0, 0, 0]]], dtype=np.uint8)
    spec = pixel_spec(ImageInfo("array", "array", rgb.shape, "uint8"))
    centers = np.array([[255.0, 255.0, 255.0], [0.0, 0.0, 0.0]])
    result = unpack_stats(image_stats(da.from_array(rgb), spec, centers).compute(scheduler="sync"))
    expected = ((rgb2lab(np.array([[[250, 250, 250]]]) / 255.0) - [100, 0, 0]) ** 2).sum()
    assert result.lab_squared_error == pytest.approx(expected, abs=0.05)
