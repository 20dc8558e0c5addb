import dask.array as da
import numpy as np
import pytest

from palette_dask.pixels import block_features, pixel_features, pixel_table


def test_alpha_is_a_mask_not_a_colour():
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [5, 5, 5, 1]]], dtype=np.uint8)
    features, valid = block_features(rgba, "RGBA")
    assert valid.tolist() == [[True, False, True]]  # only alpha 0 is left out
    assert features.shape == (1, 3, 3) and features.dtype == np.float32
    assert features[0, 2].tolist() == [5, 5, 5]


def test_gray_is_repeated_and_gray_alpha_masks():
    la = np.array([[[7, 255], [9, 0]]], dtype=np.uint8)
    features, valid = block_features(la, "LA")
    assert features[0, 0].tolist() == [7, 7, 7] and valid.tolist() == [[True, False]]


@pytest.mark.parametrize(
    "dtype, value, expected",
    [
        (np.uint8, 255, 255.0),
        (np.uint16, 65535, 255.0),
        (np.uint16, 257, 1.0),
        (np.float32, 0.5, 127.5),
        (np.float32, 2.0, 255.0),
    ],
)
def test_scaling_to_0_255(dtype, value, expected):
    features, _ = block_features(np.full((1, 1, 3), value, dtype=dtype), "RGB")
    assert features[0, 0, 0] == pytest.approx(expected)


def test_nodata_needs_every_band_and_nan_is_masked():
    rgb = np.array([[[0, 0, 0], [0, 5, 0], [0, 0, 0]]], dtype=np.uint8)
    _, valid = block_features(rgb, "RGB", nodata=0)
    assert valid.tolist() == [[False, True, False]]
    floats = np.array([[[0.1, np.nan, 0.2], [0.1, 0.1, 0.1]]], dtype=np.float32)
    features, valid = block_features(floats, "RGB")
    assert valid.tolist() == [[False, True]]
    assert np.isfinite(features[valid]).all()


def test_pixel_table_matches_numpy_on_any_chunking():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    rgba[..., 3] = rng.choice([0, 255], (30, 40))
    expected = rgba[..., :3].reshape(-1, 3)[rgba[..., 3].reshape(-1) > 0].astype(np.float32)
    for chunks in [(30, 40, 4), (7, 9, 4), (10, 40, 2)]:
        table = pixel_table(da.from_array(rgba, chunks=chunks), "RGBA").compute()
        np.testing.assert_array_equal(table, expected)
    features, valid = pixel_features(da.from_array(rgba, chunks=(7, 9, 4)), "RGBA")
    assert features.shape == (30, 40, 3) and valid.shape == (30, 40)
