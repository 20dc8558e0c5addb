import dask.array as da
import numpy as np
import pytest

from palette_dask import ImageReadError, ParameterError
from palette_dask.inputs.formats import ImageInfo
from palette_dask.kernels.pixels import (
    band_range,
    block_features,
    percentile_range,
    pixel_features,
    pixel_spec,
    pixel_table,
)


def spec_of(shape, dtype="uint8", alpha=False, file_nodata=None, **options):
    return pixel_spec(ImageInfo("img", "array", shape, dtype, alpha=alpha, nodata=file_nodata), **options)


def test_alpha_is_a_mask_not_a_colour():
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [5, 5, 5, 1]]], dtype=np.uint8)
    features, valid = block_features(rgba, spec_of((1, 3, 4), alpha=True))
    assert valid.tolist() == [[True, False, True]]  # only alpha 0 is left out
    assert features.shape == (1, 3, 3) and features.dtype == np.float32
    assert features[0, 2].tolist() == [5, 5, 5]


def test_gray_is_repeated_and_gray_alpha_masks():
    la = np.array([[[7, 255], [9, 0]]], dtype=np.uint8)
    features, valid = block_features(la, spec_of((1, 2, 2), alpha=True))
    assert features[0, 0].tolist() == [7, 7, 7] and valid.tolist() == [[True, False]]


@pytest.mark.parametrize(
    "dtype, value, expected",
    [
        (np.uint8, 255, 255.0),
        (np.uint16, 65535, 255.0),
        (np.uint16, 257, 1.0),
        (np.float32, 0.5, 127.5),
        (np.float32, 2.0, 255.0),
        (np.int16, -32768, 0.0),  # signed: the whole range of the type
        (np.int16, 32767, 255.0),
    ],
)
def test_dtype_scaling_to_0_255(dtype, value, expected):
    block = np.full((1, 1, 3), value, dtype=dtype)
    features, _ = block_features(block, spec_of((1, 1, 3), np.dtype(dtype).name))
    assert features[0, 0, 0] == pytest.approx(expected)


def test_explicit_scale_and_constant_bands():
    block = np.array([[[0, 5000, 10000]]], dtype=np.uint16)
    features, _ = block_features(block, spec_of((1, 1, 3), "uint16", scale=(0, 10000)))
    assert features[0, 0].tolist() == [0.0, 127.5, 255.0]
    spec = spec_of((1, 1, 3), "uint16", scale="minmax").with_range([7, 7, 7], [7, 7, 7])
    assert block_features(np.full((1, 1, 3), 7, np.uint16), spec)[0][0, 0].tolist() == [0, 0, 0]


def test_nodata_needs_every_band_and_nan_is_masked():
    rgb = np.array([[[0, 0, 0], [0, 5, 0], [0, 0, 0]]], dtype=np.uint8)
    _, valid = block_features(rgb, spec_of((1, 3, 3), file_nodata=0))
    assert valid.tolist() == [[False, True, False]]
    _, valid = block_features(rgb, spec_of((1, 3, 3), file_nodata=5, nodata=0))  # the option wins
    assert valid.tolist() == [[False, True, False]]
    floats = np.array([[[0.1, np.nan, 0.2], [0.1, 0.1, 0.1]]], dtype=np.float32)
    features, valid = block_features(floats, spec_of((1, 2, 3), "float32"))
    assert valid.tolist() == [[False, True]]
    assert np.isfinite(features[valid]).all()


def test_bands_choose_the_display_colours_of_a_multispectral_image():
    block = np.arange(7, dtype=np.uint8)[None, None, :] * 10
    spec = spec_of((1, 1, 7), bands=(3, 2, 1))
    assert block_features(block, spec)[0][0, 0].tolist() == [30, 20, 10]
    with pytest.raises(ImageReadError, match="7 bands .*choose three .*--bands 4,3,2"):
        spec_of((1, 1, 7))
    with pytest.raises(
        ImageReadError, match=r"bands=\(1, 9, 2\) \(--bands 2,10,3\) must be one or three of its 7 bands"
    ):
        spec_of((1, 1, 7), bands=(1, 9, 2))


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"nodata": -9999}, ImageReadError, "nodata=-9999 cannot occur in uint8 data"),
        ({"nodata": 0.5}, ImageReadError, "nodata=0.5 cannot occur in uint8"),
        ({"nodata": "none"}, ParameterError, "nodata must be a number"),
        ({"scale": "log"}, ParameterError, "scale must be one of auto, dtype, minmax, percentile"),
        ({"scale": (5, 5)}, ParameterError, "needs high > low"),
    ],
)
def test_bad_options(options, error, message):
    with pytest.raises(error, match=message):
        spec_of((2, 2, 3), **options)


def test_measured_ranges():
    rng = np.random.default_rng(0)
    block = rng.integers(100, 4000, (50, 60, 4), dtype=np.uint16)
    block[..., 3] = rng.choice([0, 65535], (50, 60))
    block[0, 0] = [9, 9, 9, 0]  # masked: must not count
    spec = spec_of(block.shape, "uint16", alpha=True, scale="minmax")
    measured = band_range(da.from_array(block, chunks=(13, 17, 4)), spec).compute(scheduler="sync")
    valid = block[..., 3] > 0
    np.testing.assert_array_equal(measured, [block[..., :3][valid].min(0), block[..., :3][valid].max(0)])
    values = block[..., :3][valid].astype(float)
    np.testing.assert_allclose(percentile_range(values), np.percentile(values, [2, 98], axis=0))


def test_pixel_table_matches_numpy_on_any_chunking():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    rgba[..., 3] = rng.choice([0, 255], (30, 40))
    expected = rgba[..., :3].reshape(-1, 3)[rgba[..., 3].reshape(-1) > 0].astype(np.float32)
    spec = spec_of(rgba.shape, alpha=True)
    for chunks in [(30, 40, 4), (7, 9, 4), (10, 40, 2)]:
        table = pixel_table(da.from_array(rgba, chunks=chunks), spec).compute()
        np.testing.assert_array_equal(table, expected)
    features, valid = pixel_features(da.from_array(rgba, chunks=(7, 9, 4)), spec)
    assert features.shape == (30, 40, 3) and valid.shape == (30, 40)
