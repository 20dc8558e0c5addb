import collections

import numpy as np
import pytest
import tifffile
import zarr
from helpers import PHOTOS, reference_labels, sklearn_best_inertia, write_png
from PIL import Image

from palette_dask import PaletteDaskWarning, extract_palette
from palette_dask.inputs.read import probe, read_region
from palette_dask.kernels.pixels import block_features, pixel_spec
from palette_dask.outputs.store import DONE, FAILED


def valid_pixels(path, space="rgb") -> np.ndarray:
    """The valid pixels of an image file in a colour space, computed in memory as a reference."""
    info = probe(str(path))
    block = read_region(info, slice(0, info.shape[0]), slice(0, info.shape[1]))
    features, valid = block_features(block, pixel_spec(info, space=space))
    return features[valid].astype(np.float64)


def check_against_references(result, paths, k):
    """Counts against numpy's bincount, inertia against scikit-learn's, in the run's colour space."""
    space = result.attrs["space"]
    centers = result.centers
    pixels = [valid_pixels(p, space) for p in paths]
    everything = np.concatenate(pixels)
    labels = reference_labels(everything, centers)
    np.testing.assert_array_equal(result.counts, np.bincount(labels, minlength=result.k))
    start = 0
    for row, image_pixels in zip(result.image_counts, pixels):
        image_labels = labels[start : start + len(image_pixels)]
        np.testing.assert_array_equal(row, np.bincount(image_labels, minlength=result.k))
        start += len(image_pixels)
    assert result.counts.sum() == len(everything)
    assert result.proportions.sum() == pytest.approx(1.0, abs=1e-12)
    inertia = float(((everything - centers[labels].astype(np.float64)) ** 2).sum())
    assert result.attrs["inertia"] == pytest.approx(inertia, rel=1e-9)
    reference = sklearn_best_inertia(everything, k)
    assert inertia <= 1.02 * reference, f"inertia {inertia / reference:.4f}x scikit-learn's"
    return everything


@pytest.mark.parametrize("space", ["lab", "rgb"])
@pytest.mark.slow
def test_scikit_image_photos_match_scikit_learn(client, tmp_path, space):
    result = extract_palette(PHOTOS, 5, store=tmp_path / "out.zarr", client=client, space=space)
    assert result.k == 5 and result.complete and result.attrs["space"] == space
    assert (result.image_status == DONE).all()
    assert result.image_valid.tolist() == [512 * 512, 400 * 600, 500 * 500]  # the logo is opaque
    check_against_references(result, PHOTOS, 5)


def test_transparent_pixels_are_left_out(client, tmp_path):
    photo = np.asarray(Image.open(PHOTOS[1]))
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:, :250] = [255, 0, 255, 0]  # a transparent magenta band, as in the tutorial's PNG
    rgba[:50, 300:] = [0, 255, 0, 0]
    path = write_png(tmp_path / "cut-out.png", rgba)
    result = extract_palette(path, 5, client=client)
    opaque = int((rgba[..., 3] > 0).sum())
    assert result.image_valid.tolist() == [opaque] and result.image_masked.tolist() == [
        rgba[..., 0].size - opaque
    ]
    assert np.abs(result.centers_rgb - [255, 0, 255]).sum(axis=1).min() > 60  # no magenta colour
    check_against_references(result, [path], result.k)


def test_same_seed_same_palette_on_threads_and_processes(client, process_client, tmp_path):
    paths = PHOTOS[:2]
    on_threads = extract_palette(paths, 5, seed=11, client=client)
    on_processes = extract_palette(paths, 5, seed=11, client=process_client)
    np.testing.assert_array_equal(on_threads.centers, on_processes.centers)
    np.testing.assert_array_equal(on_threads.image_counts, on_processes.image_counts)
    other_seed = extract_palette(paths, 5, seed=12, client=client)
    assert not np.array_equal(other_seed.centers, on_threads.centers)


def test_bad_images_in_a_collection_are_recorded_and_the_rest_finish(client, tmp_path):
    good = str(PHOTOS[1])
    (tmp_path / "zero.png").write_bytes(b"")
    data = PHOTOS[0].read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
    write_png(tmp_path / "clear.png", np.zeros((20, 20, 4), np.uint8))
    inputs = [
        good,
        tmp_path / "zero.png",
        tmp_path / "missing.png",
        tmp_path / "cut.png",
        tmp_path / "clear.png",
    ]
    with pytest.warns(PaletteDaskWarning, match=r"^4 of 5 images failed \(first: .*zero.png: empty file"):
        result = extract_palette(inputs, 5, store=tmp_path / "s.zarr", client=client)
    assert result.image_status.tolist() == [DONE, FAILED, FAILED, FAILED, FAILED]
    errors = result.image_errors
    assert errors[0] == ""
    assert errors[1] == f"{tmp_path / 'zero.png'}: empty file (0 bytes)"
    assert errors[2] == f"{tmp_path / 'missing.png'}: no such file"
    assert errors[3].startswith(f"{tmp_path / 'cut.png'}: cannot decode")
    assert (
        errors[4] == f"{tmp_path / 'clear.png'}: no valid pixels (every pixel is transparent, nodata or NaN)"
    )
    assert result.image_counts[1:].sum() == 0 and result.complete
    check_against_references(result, [good], 5)


def test_all_images_failing_leave_no_store_behind(client, tmp_path):
    write_png(tmp_path / "clear.png", np.zeros((20, 20, 4), np.uint8))
    messages = []
    result = extract_palette(
        [tmp_path / "clear.png", tmp_path / "nope.png"], 5, store=tmp_path / "s.zarr", client=client,
        report=messages.append,
    )  # fmt: skip
    assert result.k == 0 and result.complete and result.store is None
    assert result.image_status.tolist() == [FAILED, FAILED]
    assert result.to_dict()["images"] == {"total": 2, "done": 0, "failed": 2, "transient": 0}
    assert not (tmp_path / "s.zarr").exists()  # the obvious retry is not refused as "already exists"
    assert messages[-1] == f"no image was stored: {tmp_path / 's.zarr'} is not kept"
    (tmp_path / "empty.zarr").mkdir()  # a folder that was there before the run stays
    with pytest.warns(PaletteDaskWarning, match="images? failed"):
        extract_palette([tmp_path / "clear.png"], 5, store=tmp_path / "empty.zarr", client=client)
    assert (tmp_path / "empty.zarr").is_dir()


def test_store_is_plain_zarr_v3_with_one_image_per_chunk(client, tmp_path):
    result = extract_palette(PHOTOS[:2], 4, store=tmp_path / "out.zarr", client=client, seed=3)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert group.metadata.zarr_format == 3
    expected = {
        "centers": ("float32", (4, 3)),
        "colors": ("uint8", (4, 3)),
        "counts": ("int64", (4,)),
        "image_counts": ("int64", (2, 4)),
        "image_valid": ("int64", (2,)),
        "image_status": ("uint8", (2,)),
    }
    for name, (dtype, shape) in expected.items():
        assert (str(group[name].dtype), group[name].shape) == (dtype, shape), name
        assert group[name].metadata.dimension_names is not None
    for name in ("image_names", "image_errors", "image_valid", "image_status", "image_counts"):
        assert group[name].chunks[0] == 1, name
    assert list(group["image_names"][:]) == [str(p) for p in PHOTOS[:2]]
    attrs = group.attrs.asdict()
    assert attrs["complete"] is True and attrs["parameters"]["k"] == 4 and attrs["parameters"]["seed"] == 3
    assert "palette_dask_version" in attrs and attrs["space"] == "lab"  # the default
    assert group["centers_rgb"].shape == (4, 3)  # `centers` are in Lab, the feature space (ARCHITECTURE.md)
    np.testing.assert_array_equal(group["centers"][:], result.centers)
    np.testing.assert_array_equal(group["colors"][:], np.rint(result.centers_rgb).astype(np.uint8))
    assert group["counts"][:].sum() == group["image_valid"][:].sum()


def test_an_existing_store_is_not_overwritten(client, tmp_path):
    from palette_dask import StoreError

    extract_palette(PHOTOS[1], 3, store=tmp_path / "out.zarr", client=client)
    with pytest.raises(StoreError, match="already exists; pass --overwrite"):
        extract_palette(PHOTOS[1], 3, store=tmp_path / "out.zarr", client=client)
    extract_palette(PHOTOS[1], 2, store=tmp_path / "out.zarr", client=client, overwrite=True)
    assert zarr.open_group(tmp_path / "out.zarr", mode="r")["centers"].shape == (2, 3)


@pytest.mark.parametrize("name", ["RGB.byte.tif", "RGBA.uint16.tif", "world.rgb.tif"])
def test_real_rasters(client, real_rasters, name):
    path = real_rasters / name
    if name == "RGBA.uint16.tif":  # its valid pixels all hold one colour, (10000, 10000, 10000)
        with pytest.warns(PaletteDaskWarning, match="only 1 distinct colour among"):
            with pytest.warns(PaletteDaskWarning, match="near black .*L\\* 16.* uint16"):  # 10000 of 65535
                result = extract_palette(path, 5, client=client, sample_size=50_000, scale="dtype")
        assert result.k == 1 and result.centers_rgb[0] == pytest.approx([10000 * 255 / 65535] * 3)
    else:
        result = extract_palette(path, 5, client=client, sample_size=50_000)
    raw = tifffile.imread(path)
    if name == "world.rgb.tif":
        raw = np.moveaxis(raw, 0, -1)
    if name == "RGB.byte.tif":  # GDAL_NODATA=0: a pixel is nodata when all its bands are 0
        expected_valid = int((raw != 0).any(axis=-1).sum())
        assert 0.25 < 1 - expected_valid / raw[..., 0].size < 0.45  # the no-data border
        assert np.linalg.norm(result.centers_rgb, axis=1).min() > 20  # no black colour from the border
    elif name == "RGBA.uint16.tif":
        expected_valid = int((raw[..., 3] > 0).sum())
    else:
        expected_valid = raw[..., 0].size
    assert result.image_valid.tolist() == [expected_valid]
    check_against_references(result, [path], result.k)


@pytest.mark.slow
def test_resume_finishes_only_what_is_pending_and_matches_a_full_run(client, tmp_path):
    inputs = [*PHOTOS, tmp_path / "missing.png"]
    with pytest.warns(PaletteDaskWarning, match="images? failed"):  # missing.png
        full = extract_palette(inputs, 4, store=tmp_path / "full.zarr", client=client, seed=5)
    with pytest.warns(PaletteDaskWarning, match="images? failed"):
        extract_palette(inputs, 4, store=tmp_path / "cut.zarr", client=client, seed=5)
    # as if the run had stopped before its second image and the end were written
    group = zarr.open_group(tmp_path / "cut.zarr", mode="r+")
    group["image_status"][1] = 0
    group["image_counts"][1] = 0
    group["image_valid"][1] = 0
    del group["counts"]
    group.attrs["complete"] = False
    messages = []
    resumed = extract_palette(
        inputs, 4, store=tmp_path / "cut.zarr", client=client, seed=5, resume=True, report=messages.append
    )
    assert "reading 1 image in 1 batch" in messages
    assert not any("sampling" in m for m in messages)
    for name in ("centers", "counts", "image_counts", "image_valid", "image_status", "image_errors"):
        np.testing.assert_array_equal(
            zarr.open_group(tmp_path / "full.zarr")[name][:], zarr.open_group(tmp_path / "cut.zarr")[name][:]
        )
    assert resumed.complete and resumed.attrs["inertia"] == pytest.approx(full.attrs["inertia"], rel=1e-12)
    messages.clear()
    extract_palette(
        inputs, 4, store=tmp_path / "cut.zarr", client=client, seed=5, resume=True, report=messages.append
    )
    assert messages == ["all 4 images were already done or failed; nothing to do"]


def test_resume_needs_the_same_inputs_and_parameters(client, tmp_path):
    from palette_dask import StoreError

    extract_palette(PHOTOS[1], 3, store=tmp_path / "s.zarr", client=client)
    with pytest.raises(
        StoreError, match=r"was made with k 3 \(now 4\), seed 0 \(now 2\); resuming needs the same"
    ):
        extract_palette(PHOTOS[1], 4, store=tmp_path / "s.zarr", client=client, resume=True, seed=2)
    with pytest.raises(StoreError, match="resuming needs the same inputs"):
        extract_palette(PHOTOS[0], 3, store=tmp_path / "s.zarr", client=client, resume=True)


@pytest.mark.slow
def test_n_init_is_stored_when_set_and_more_starts_never_fit_the_sample_worse(client, tmp_path):
    from palette_dask import StoreError
    from palette_dask.cli import main

    one = extract_palette(PHOTOS[0], 5, store=tmp_path / "one.zarr", client=client, n_init=1)
    six = extract_palette(PHOTOS[0], 5, client=client)
    assert one.attrs["parameters"]["n_init"] == 1 and "n_init" not in six.attrs["parameters"]
    assert six.attrs["sample_inertia"] <= one.attrs["sample_inertia"]  # the first start is the same
    # resumed without n_init, the store's is kept; a different one given is refused
    again = extract_palette(PHOTOS[0], 5, store=tmp_path / "one.zarr", client=client, resume=True)
    assert again.attrs["parameters"]["n_init"] == 1
    np.testing.assert_array_equal(again.counts, one.counts)
    with pytest.raises(StoreError, match=r"n_init 1 \(now 2\); resuming needs the same"):
        extract_palette(PHOTOS[0], 5, store=tmp_path / "one.zarr", client=client, resume=True, n_init=2)
    two = str(tmp_path / "two.zarr")
    assert main(["run", str(PHOTOS[0]), "--n-init", "2", "--threads", "-q", "-o", two]) == 0
    assert zarr.open_group(tmp_path / "two.zarr", mode="r").attrs["parameters"]["n_init"] == 2


def test_a_small_run_decodes_each_image_once(client, tmp_path):
    from dask.utils import key_split
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        result = extract_palette(PHOTOS[1], 5, client=client)
    tasks = collections.Counter(key_split(task["key"]) for task in stream.data)
    # read and decoded once by its batch's first task, kept in memory from sampling to counting
    assert tasks["open_batch"] == tasks["sample_batch"] == tasks["batch_stats"] == 1
    assert tasks["read"] == tasks["drop_pixels"] == 0
    assert result.image_counts.sum() == 400 * 600


@pytest.mark.slow
def test_lab_space_stores_its_centres_and_beats_rgb_on_the_lab_error(client, tmp_path):
    from skimage.color import rgb2lab

    from palette_dask.kernels.colour import lab_to_srgb

    paths = [str(p) for p in PHOTOS[:2]]
    in_lab = extract_palette(paths, 5, space="lab", client=client, store=tmp_path / "lab.zarr")
    in_rgb = extract_palette(paths, 5, space="rgb", client=client)
    assert in_lab.attrs["space"] == "lab" and in_lab.to_dict()["space"] == "lab"
    assert in_lab.attrs["lab_error"] < in_rgb.attrs["lab_error"]
    group = zarr.open_group(tmp_path / "lab.zarr", mode="r")
    np.testing.assert_allclose(in_lab.centers_rgb, lab_to_srgb(group["centers"][:]), atol=1e-3)
    np.testing.assert_array_equal(in_lab.centers_rgb, group["centers_rgb"][:])
    # the stored error is its definition, computed independently with scikit-image's Lab
    pixels = np.concatenate([np.asarray(Image.open(p).convert("RGB")).reshape(-1, 3) for p in paths])
    pixel_lab = rgb2lab(pixels[None] / 255.0)[0]
    nearest = np.full(len(pixels), np.inf)
    for colour in rgb2lab(in_lab.colors[None] / 255.0)[0]:
        nearest = np.minimum(nearest, ((pixel_lab - colour) ** 2).sum(axis=1))
    assert in_lab.attrs["lab_error"] == pytest.approx(nearest.mean(), rel=1e-3)
    assert in_lab.to_dict()["lab_error"] == in_lab.attrs["lab_error"]


def test_what_is_done_to_the_data_is_said_and_stored(client, real_rasters, tmp_path):
    messages = []
    extract_palette(
        real_rasters / "RGB.byte.tif", 3, store=tmp_path / "a.zarr", client=client, report=messages.append
    )
    assert any("all equal the no-data value their input declares (0: GDAL_NODATA" in m for m in messages)
    assert zarr.open_group(tmp_path / "a.zarr", mode="r").attrs["nodata_applied"] == [0.0]
    messages.clear()
    extract_palette(
        real_rasters / "RGB.byte.tif",
        3,
        store=tmp_path / "b.zarr",
        client=client,
        nodata=255,
        report=messages.append,
    )
    assert not any("GDAL_NODATA" in m for m in messages)  # the value given replaces the file's
    assert "nodata_applied" not in zarr.open_group(tmp_path / "b.zarr", mode="r").attrs
    flat = np.zeros((40, 50, 3), np.uint16)
    flat[..., 0] = np.arange(50) * 1000
    flat[..., 1] = np.arange(40)[:, None] * 800
    flat[..., 2] = 7000  # a constant band: minmax maps it to 0
    tifffile.imwrite(tmp_path / "flat.tif", flat, photometric="rgb")
    with pytest.warns(
        PaletteDaskWarning, match=r"band 3 of the colours is constant \(7000\) .* --scale minmax"
    ):
        extract_palette(tmp_path / "flat.tif", 3, scale="minmax", client=client)
