import dask.array as da
import numpy as np
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from palette_dask import draw_sample, probe, read_image
from palette_dask.pixels import pixel_spec
from palette_dask.read import ImageInfo
from palette_dask.sample import merge_candidates, pixel_keys


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
