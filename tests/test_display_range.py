"""``scale="auto"``, the default: 8-bit data by their type's range, wider data by the sample's 2%-98% cut.

The cut is the one ``scale="percentile"`` measures (QGIS's default stretch), stored as the store's
``display_range`` and reused, never measured again, by ``resume``, ``append`` and a run applying the
store as its ``palette``. Each test compares with an independent reference: the store made with the
explicit option, numpy's percentile of the sampled values found by the package's public hash, numpy's
nearest-centre count of the pixels shown by the stored range.
"""

import json

import numpy as np
import pytest
import tifffile
import zarr
from helpers import PHOTOS, every_array, photo_mosaic, reference_labels
from PIL import Image

from palette_dask import ParameterError, extract_palette
from palette_dask.cli import main
from palette_dask.constants import DEFAULT_SCALE
from palette_dask.errors import PaletteDaskWarning
from palette_dask.kernels.sample import pixel_keys
from palette_dask.outputs.render import export_palette

SAMPLE = 4_000  # of 150 x 180 = 27,000 pixels: the sample is a true subset


def scene(rows=150, cols=180, *, factor=39, flip=False) -> np.ndarray:
    """A uint16 RGB scene, 0 to about 10,000 (as reflectance): a photo mosaic times ``factor``."""
    rgb = photo_mosaic(rows, cols)
    rgb = rgb[::-1] if flip else rgb
    return np.minimum(rgb.astype(np.uint32) * factor, 65535).astype(np.uint16)


def write_scene(path, pixels) -> str:
    tifffile.imwrite(path, pixels, photometric="rgb", tile=(64, 64))
    return str(path)


def sampled_percentiles(pixels: np.ndarray, size: int = SAMPLE, seed: int = 0) -> np.ndarray:
    """The strict twin: numpy's 2nd and 98th percentile of the ``size`` pixels with the smallest keys.

    One image (index 0), every pixel valid: the sample is its pixels with the smallest
    :func:`~palette_dask.kernels.sample.pixel_keys`, whatever the chunks and tasks.
    """
    rows, cols = pixels.shape[:2]
    keys = pixel_keys(seed, 0, slice(0, rows), slice(0, cols), cols).ravel()
    chosen = np.argsort(keys, kind="stable")[:size]
    values = pixels.reshape(-1, pixels.shape[-1])[chosen].astype(np.float64)
    return np.percentile(values, (2.0, 98.0), axis=0)


def shown_counts(pixels: np.ndarray, display_range, centers, k: int) -> np.ndarray:
    """numpy's counts of the pixels shown by ``display_range`` (sRGB features) against ``centers``."""
    low, high = (np.asarray(v, np.float64) for v in display_range)
    span = np.where(high > low, high - low, 1.0)
    values = pixels.reshape(-1, 3).astype(np.float64)
    features = np.clip(((values - low) * (255.0 / span)).astype(np.float32), 0.0, 255.0)
    return np.bincount(reference_labels(features, centers), minlength=k)


def test_the_default_is_auto():
    from palette_dask.options import RunConfig

    assert DEFAULT_SCALE == "auto" and RunConfig().scale == "auto"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["uint16 file", "float32 array in 0-1"])
def test_wider_data_by_default_equal_the_percentile_run_whose_cut_is_numpys(client, tmp_path, kind):
    pixels = scene()
    if kind == "uint16 file":
        given = write_scene(tmp_path / "scene.tif", pixels)
    else:  # reflectance already in 0-1: cut too, as QGIS cuts every band but a byte one
        pixels = (pixels / 12_000.0).astype(np.float32)
        given = pixels
    options = dict(sample_size=SAMPLE, client=client, space="rgb", chunk_bytes=2**15)
    auto = extract_palette(given, 4, store=tmp_path / "auto.zarr", **options)
    explicit = extract_palette(given, 4, store=tmp_path / "percentile.zarr", scale="percentile", **options)
    measured = np.asarray(auto.attrs["display_range"])
    np.testing.assert_array_equal(measured, explicit.attrs["display_range"])
    np.testing.assert_allclose(measured, sampled_percentiles(pixels), rtol=0, atol=1e-12)
    assert 0 < measured[1].max() < (10_000 if kind == "uint16 file" else 1.0)  # the cut, not the type's range
    first, second = every_array(zarr.open_group(auto.store)), every_array(zarr.open_group(explicit.store))
    assert first.keys() == second.keys()
    for name in first:  # centres, counts, errors: every array the same
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    # counted with the cut, as numpy counts the pixels shown by it
    np.testing.assert_array_equal(auto.counts, shown_counts(pixels, measured, auto.centers, 4))


@pytest.mark.slow
@pytest.mark.parametrize("exclude", [(), ("#ffffff",)])
def test_8_bit_runs_by_default_are_the_dtype_runs(client, tmp_path, exclude):
    mosaic = tmp_path / "mosaic.tif"  # read tile by tile (and once, from its histogram), beside a photo
    tifffile.imwrite(mosaic, photo_mosaic(300, 420), photometric="rgb", tile=(64, 64))
    inputs = [PHOTOS[1], mosaic]
    options = dict(client=client, exclude=exclude, chunk_bytes=2**16, seed=3)
    auto = extract_palette(inputs, 5, store=tmp_path / "auto.zarr", **options)
    dtype = extract_palette(inputs, 5, store=tmp_path / "dtype.zarr", scale="dtype", **options)
    first, second = zarr.open_group(auto.store), zarr.open_group(dtype.store)
    arrays, expected = every_array(first), every_array(second)
    assert arrays.keys() == expected.keys()
    for name in arrays:
        np.testing.assert_array_equal(arrays[name], expected[name], err_msg=name)
    attrs, expected_attrs = first.attrs.asdict(), second.attrs.asdict()
    assert attrs.pop("parameters") == {**expected_attrs.pop("parameters"), "scale": "auto"}
    attrs.pop("created"), expected_attrs.pop("created")
    assert attrs == expected_attrs and "display_range" not in attrs


def two_scenes(client, store):
    """Two uint16 scenes, a.tif and b.tif beside ``store``, fitted into it (k=4, a batch each)."""
    folder = store.parent
    a, b = write_scene(folder / "a.tif", scene()), write_scene(folder / "b.tif", scene(flip=True))
    options = dict(client=client, space="rgb", sample_size=SAMPLE, batch_size=1)
    return a, b, options, extract_palette([a, b], 4, store=store, **options)


def brighten(path) -> np.ndarray:
    """The second scene twice as bright (clipped to uint16), written over ``path``: its pixels."""
    brighter = np.minimum(scene(flip=True).astype(np.uint32) * 2, 65535).astype(np.uint16)
    write_scene(path, brighter)
    return brighter


@pytest.mark.slow
def test_resume_and_append_reuse_the_stored_range(client, tmp_path):
    a, b, options, full = two_scenes(client, tmp_path / "full.zarr")
    stored = full.attrs["display_range"]
    # as if the run had stopped before counting b; b is then twice as bright: a range measured again
    # would follow it, the stored one does not move
    group = zarr.open_group(tmp_path / "full.zarr", mode="r+")
    group["image_status"][1], group["image_counts"][1], group["image_valid"][1] = 0, 0, 0
    del group["counts"]
    group.attrs["complete"] = False
    brighter = brighten(b)
    messages = []
    resumed = extract_palette(
        [a, b], 4, store=tmp_path / "full.zarr", resume=True, report=messages.append, **options
    )
    assert not any("sampling" in m for m in messages) and resumed.complete
    assert resumed.attrs["display_range"] == stored
    np.testing.assert_array_equal(resumed.image_counts[1], shown_counts(brighter, stored, resumed.centers, 4))
    np.testing.assert_array_equal(resumed.image_counts[0], full.image_counts[0])

    # append: a scene of another range, and an 8-bit photo (shown by its type's range, as QGIS does)
    grown_inputs = [a, b, write_scene(tmp_path / "c.tif", scene(factor=120)), str(PHOTOS[1])]
    grown = extract_palette(grown_inputs, store=tmp_path / "full.zarr", append=True, **options)
    assert grown.attrs["display_range"] == stored
    np.testing.assert_array_equal(
        grown.image_counts[2], shown_counts(scene(factor=120), stored, grown.centers, 4)
    )
    coffee = np.asarray(Image.open(PHOTOS[1]).convert("RGB"))
    np.testing.assert_array_equal(
        grown.image_counts[3], shown_counts(coffee, [[0.0] * 3, [255.0] * 3], grown.centers, 4)
    )


@pytest.mark.slow
def test_a_palette_store_brings_its_range_and_a_file_none(client, tmp_path, capsys):
    pixels = scene()
    path = write_scene(tmp_path / "scene.tif", pixels)
    options = dict(client=client, space="rgb", sample_size=SAMPLE)
    fitted = extract_palette(path, 4, store=tmp_path / "fitted.zarr", **options)
    later = write_scene(tmp_path / "later.tif", scene(factor=60, flip=True))
    messages = []
    applied = extract_palette(
        later,
        store=tmp_path / "applied.zarr",
        palette=tmp_path / "fitted.zarr",
        report=messages.append,
        **options,
    )
    assert applied.attrs["display_range"] == fitted.attrs["display_range"]
    assert any(m.startswith("showing the uint16 data by the display range of") for m in messages)
    for store, whence in [("fitted.zarr", "--scale auto"), ("applied.zarr", "from the palette applied")]:
        assert main(["show", str(tmp_path / store), "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert document["display_range"] == fitted.attrs["display_range"]
        assert main(["show", str(tmp_path / store)]) == 0
        low, high = fitted.attrs["display_range"]
        shown = ", ".join(f"{a:g}-{b:g}" for a, b in zip(low, high))
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("display range:"))
        assert (
            line.startswith(f"display range: colour bands' values {shown} shown as 0-255 (")
            and whence in line
        )
    expected = shown_counts(scene(factor=60, flip=True), fitted.attrs["display_range"], fitted.centers, 4)
    np.testing.assert_array_equal(applied.counts, expected)
    # applied to its own scene, the store's own counts
    again = extract_palette(path, palette=tmp_path / "fitted.zarr", **options)
    np.testing.assert_array_equal(again.counts, fitted.counts)
    # a file is the colours as shown: it carries no range, and says what to give
    exported = export_palette(fitted, tmp_path / "palette.json")
    carries = (
        r"palette\.json: holds no display range for this run's uint16 data \(a \.json, \.csv or \.gpl "
        r"palette carries none.*\): give --scale \(scale=\) LOW,HIGH or dtype$"
    )
    with pytest.raises(ParameterError, match=carries):
        extract_palette(later, palette=exported, **options)
    by_hand = extract_palette(later, palette=exported, scale=(0, 10_000), **options)
    np.testing.assert_array_equal(
        by_hand.counts, shown_counts(scene(factor=60, flip=True), [[0.0] * 3, [1e4] * 3], by_hand.centers, 4)
    )


@pytest.mark.slow
def test_what_auto_cannot_measure_is_one_line(client, tmp_path):
    wide = write_scene(tmp_path / "scene.tif", scene(60, 80))
    mixed = r"8-bit \(uint8\) and wider integer \(uint16\), whose values share no scale"
    with pytest.raises(ParameterError, match=mixed):
        extract_palette([PHOTOS[2], wide], 3, client=client)
    with pytest.raises(
        ParameterError, match=r"exclude \(--exclude\) needs a known display range, .* of uint16 data"
    ):
        extract_palette(wide, 3, client=client, exclude="#ffffff")
    store = tmp_path / "photo.zarr"  # 8-bit: no range measured, none to grow with wider data
    extract_palette(PHOTOS[2], 3, client=client, store=store)
    with pytest.raises(
        ParameterError,
        match=r"photo\.zarr: holds no display range \(its run met no data wider than 8 bits\), .* uint16 "
        r"data .*: run them into a new store$",
    ):
        extract_palette([PHOTOS[2], wide], client=client, store=store, append=True)
    # with one range given, the same images run
    assert extract_palette([PHOTOS[2], wide], 3, client=client, scale=(0, 10_000)).k == 3


def test_what_the_cut_still_leaves_near_black_is_warned(client, tmp_path):
    pixels = np.zeros((100, 100, 3), np.uint16)  # a fill value not declared as no-data, 99% of the scene
    pixels[:8, :8] = 5000
    path = write_scene(tmp_path / "dark.tif", pixels)
    with pytest.warns(PaletteDaskWarning, match=r"band \d of the colours is constant \(0\)"):
        with pytest.warns(PaletteDaskWarning, match="near black .* still shows most of them dark"):
            result = extract_palette(path, 2, client=client)
    assert result.attrs["display_range"] == [[0.0] * 3, [0.0] * 3]


def older_store(path) -> None:
    """Make a store look like one made before ``scale`` was recorded (``dtype`` then): no ``scale``."""
    group = zarr.open_group(path, mode="r+")
    parameters = dict(group.attrs["parameters"])
    assert parameters.pop("scale") == "dtype"
    group.attrs["parameters"] = parameters


@pytest.mark.slow
def test_a_palette_store_made_with_dtype_is_applied_with_it(client, tmp_path, capsys):
    pixels = scene(factor=250)  # most of uint16's range: dtype shows it, not near black
    path = write_scene(tmp_path / "scene.tif", pixels)
    options = dict(client=client, space="rgb", sample_size=SAMPLE)
    fitted = extract_palette(path, 4, store=tmp_path / "dtype.zarr", scale="dtype", **options)
    later = write_scene(tmp_path / "later.tif", scene(factor=200, flip=True))
    expected = shown_counts(scene(factor=200, flip=True), [[0.0] * 3, [65535.0] * 3], fitted.centers, 4)
    applied = extract_palette(later, store=tmp_path / "a.zarr", palette=tmp_path / "dtype.zarr", **options)
    assert applied.attrs["parameters"]["scale"] == "dtype" and "display_range" not in applied.attrs
    np.testing.assert_array_equal(applied.counts, expected)
    older_store(tmp_path / "dtype.zarr")  # a store of an older version: its scale was dtype
    argv = ["run", later, "--palette", str(tmp_path / "dtype.zarr"), "-o", str(tmp_path / "b.zarr")]
    assert main([*argv, "--threads", "-q"]) == 0
    assert zarr.open_group(tmp_path / "b.zarr").attrs["parameters"]["scale"] == "dtype"
    np.testing.assert_array_equal(zarr.open_group(tmp_path / "b.zarr")["counts"][:], expected)
    # a store of 8-bit data measured no range: applied to wider data, one line saying what to give
    extract_palette(PHOTOS[2], 3, store=tmp_path / "photo.zarr", **options)
    with pytest.raises(
        ParameterError, match=r"photo\.zarr: holds no display range for this run's uint16 data .* or dtype$"
    ):
        extract_palette(later, palette=tmp_path / "photo.zarr", **options)
    assert extract_palette(later, palette=tmp_path / "photo.zarr", scale="dtype", **options).k == 3
    capsys.readouterr()


@pytest.mark.slow
def test_inputs_and_resume_on_a_dtype_store_take_its_scale(client, tmp_path, capsys):
    paths = [
        write_scene(tmp_path / "a.tif", scene(factor=250)),
        write_scene(tmp_path / "b.tif", scene(factor=250, flip=True)),
    ]
    argv = ["run", *paths, "-k", "3", "--batch-size", "1", "--space", "rgb", "--threads", "-q"]
    assert main([*argv, "--scale", "dtype", "-o", str(tmp_path / "full.zarr")]) == 0
    assert main([*argv, "--scale", "dtype", "-o", str(tmp_path / "cut.zarr")]) == 0
    group = zarr.open_group(tmp_path / "cut.zarr", mode="r+")  # as if stopped after the first image
    group["image_status"][1], group["image_counts"][1] = 0, 0
    group.attrs["complete"] = False
    older_store(tmp_path / "cut.zarr")
    # the command the interrupted run's message gives, without --scale: the store's own
    assert main([*argv, "-o", str(tmp_path / "cut.zarr"), "--resume"]) == 0
    full, resumed = (every_array(zarr.open_group(tmp_path / n, mode="r")) for n in ("full.zarr", "cut.zarr"))
    for name in full:
        np.testing.assert_array_equal(resumed[name], full[name], err_msg=name)
    capsys.readouterr()
    # a scale given must still be the store's
    assert main([*argv, "-o", str(tmp_path / "cut.zarr"), "--resume", "--scale", "percentile"]) == 1
    assert "was made with scale 'dtype' (now 'percentile')" in capsys.readouterr().err


@pytest.mark.slow
def test_a_range_of_integers_is_not_applied_to_floats(client, tmp_path):
    pixels = scene()
    path = write_scene(tmp_path / "scene.tif", pixels)
    options = dict(client=client, space="rgb", sample_size=SAMPLE)
    fitted = extract_palette(path, 4, store=tmp_path / "u16.zarr", **options)
    assert fitted.attrs["display_range_kind"] == "integer"
    floats = write_scene(tmp_path / "floats.tif", (pixels / 10_000).astype(np.float32))  # the same, as 0-1
    measured = r"its display range was measured on integer data, and this run's images are float32"
    with pytest.raises(ParameterError, match=rf"u16\.zarr: {measured}.* give --scale \(scale=\) LOW,HIGH"):
        extract_palette(floats, palette=tmp_path / "u16.zarr", **options)
    with pytest.raises(ParameterError, match=rf"u16\.zarr: {measured}.*: run them into a new store$"):
        extract_palette(floats, store=tmp_path / "u16.zarr", append=True, **options)
    # an 8-bit photo applied to it: shown by its type's range, the store's range neither used nor stored
    photo = extract_palette(PHOTOS[1], palette=tmp_path / "u16.zarr", store=tmp_path / "p.zarr", **options)
    assert "display_range" not in photo.attrs and photo.to_dict().get("display_range") is None
    coffee = np.asarray(Image.open(PHOTOS[1]).convert("RGB"))
    np.testing.assert_array_equal(
        photo.counts, shown_counts(coffee, [[0.0] * 3, [255.0] * 3], fitted.centers, 4)
    )


@pytest.mark.slow
def test_a_resume_that_samples_again_keeps_the_stored_range(client, tmp_path):
    a, b, options, full = two_scenes(client, tmp_path / "s.zarr")
    stored = full.attrs["display_range"]
    # as if stopped after the range was stored, before the palette: the resumed run samples again
    group = zarr.open_group(tmp_path / "s.zarr", mode="r+")
    group["image_status"][:] = 0
    del group["centers"]
    group.attrs["complete"] = False
    brighten(b)
    messages = []
    resumed = extract_palette(
        [a, b], 4, store=tmp_path / "s.zarr", resume=True, report=messages.append, **options
    )
    assert "reading and sampling 2 images in 2 batches" in messages and resumed.complete
    assert resumed.attrs["display_range"] == stored
    # measured again, the brighter b would have moved it
    assert extract_palette([a, b], 4, **options).attrs["display_range"] != stored


@pytest.mark.slow
def test_the_report_previews_a_wider_store_by_its_range(client, tmp_path):
    from palette_dask.outputs.report import preview

    pixels = scene()
    result = extract_palette(
        write_scene(tmp_path / "scene.tif", pixels), 4, client=client, space="rgb", sample_size=SAMPLE,
        store=tmp_path / "s.zarr",
    )  # fmt: skip
    shown, recoloured = preview(result, 0, side=256, client=client)
    low, high = (np.asarray(v, np.float64) for v in result.attrs["display_range"])
    expected = np.clip(np.rint((pixels.astype(np.float64) - low) * (255.0 / (high - low))), 0, 255)
    assert np.abs(shown[..., :3].astype(np.int16) - expected).max() <= 1  # dtype's range: near black
    assert {tuple(c) for c in recoloured[..., :3].reshape(-1, 3)} <= {tuple(c) for c in result.colors}
