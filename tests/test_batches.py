"""Collections in batches: results independent of the batching, a failing image alone, the store by batch."""

import collections
import os

import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr
from helpers import PHOTOS, every_array, photo_crops
from PIL import Image

from palette_dask import extract_palette
from palette_dask.errors import PaletteDaskWarning
from palette_dask.inputs.read import open_batch
from palette_dask.outputs.store import DONE, FAILED, layout

PER_IMAGE = (
    "image_names",
    "image_status",
    "image_errors",
    "image_valid",
    "image_masked",
    "image_counts",
    "image_squared_error",
    "image_lab_squared_error",
)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """23 crops (PNG, JPEG, 16-bit TIFF), a broken file, and a mosaic too big for a batch (tiled TIFF)."""
    folder = tmp_path_factory.mktemp("mixed")
    for i, crop in enumerate(photo_crops(23, seed=4, corners=250, sides=(40, 160))):
        if i % 5 == 4:
            tifffile.imwrite(folder / f"{i:02d}.tif", crop.astype(np.uint16) * 257)
        else:
            Image.fromarray(crop).save(folder / f"{i:02d}.{'jpg' if i % 3 == 0 else 'png'}", quality=90)
    (folder / "11b-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    astronaut = np.asarray(Image.open(PHOTOS[0]).convert("RGB"))
    mosaic = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)  # 512 x 1024
    tifffile.imwrite(folder / "zz-mosaic.tif", mosaic, tile=(128, 128))
    return folder


def run(folder, store, batch_size, client, **options):
    """The mixed collection (one broken file: its failure is announced by a warning).

    Its 16-bit TIFFs fill their type's range (x257), as its 8-bit photos do: each is shown by its
    type's range (``scale="auto"`` measures no one cut for a sample of 8-bit and wider images).
    """
    with pytest.warns(PaletteDaskWarning, match=r"1 of \d+ images failed \(first: .*broken.png"):
        return extract_palette(
            folder, 4, store=store, client=client, batch_size=batch_size, chunk_bytes=512 * 512 * 3,
            scale="dtype", **options,
        )  # fmt: skip


@pytest.mark.slow
def test_batch_sizes_1_7_and_256_give_identical_stores(mixed, tmp_path, client):
    stores = {}
    for size in (1, 7, 256):
        result = run(mixed, tmp_path / f"b{size}.zarr", size, client, labels=True)
        stores[size] = zarr.open_group(tmp_path / f"b{size}.zarr", mode="r")
        assert stores[size]["image_status"].chunks == (size,)
    assert result.image_status.tolist().count(FAILED) == 1  # the broken file alone
    assert result.image_status.tolist().count(DONE) == 24
    mosaic = result.image_names.index(str(mixed / "zz-mosaic.tif"))
    assert result.image_valid[mosaic] == 512 * 1024  # read tile by tile, joined to its batch
    one = every_array(stores[256])
    assert {f"labels/{mosaic}/0", "labels/0/0", "centers_rgb"} <= set(one)
    for size in (1, 7):
        other = every_array(stores[size])
        assert set(other) == set(one)
        for name in one:
            np.testing.assert_array_equal(other[name], one[name], err_msg=f"batch size {size}: {name}")
    for name in ("inertia", "lab_error", "sample_inertia"):
        assert stores[1].attrs[name] == stores[256].attrs[name], name


@pytest.mark.slow
def test_memory_budgets_none_some_and_all_give_identical_stores(mixed, tmp_path, client):
    """Images kept between the passes or decoded again: the same numbers."""
    stores = {}
    for budget in (0, 200_000, 2**40):
        run(mixed, tmp_path / f"m{budget}.zarr", 7, client, labels=True, memory_budget=budget)
        stores[budget] = every_array(zarr.open_group(tmp_path / f"m{budget}.zarr", mode="r"))
    for budget in (0, 200_000):
        assert set(stores[budget]) == set(stores[2**40])
        for name, array in stores[2**40].items():
            np.testing.assert_array_equal(stores[budget][name], array, err_msg=f"budget {budget}: {name}")


def test_a_batch_keeps_decoded_images_up_to_its_budget_and_decodes_the_others(mixed):
    paths = sorted(str(path) for path in mixed.glob("*.[pj][np]g") if "broken" not in path.name)[:6]
    strict = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    budget = strict[0].nbytes + strict[1].nbytes
    batch = open_batch(paths, 0, keep=budget)
    assert [pixels is not None for pixels in batch.pixels] == [True, True, False, False, False, False]
    for (_, _, pixels), reference in zip(batch.images(), strict):
        np.testing.assert_array_equal(pixels, reference)
    headers_only = open_batch(paths, 0, keep=0)  # headers from the files' first bytes, not Pillow's
    assert headers_only.pixels is None and headers_only.infos == batch.infos
    for (_, _, pixels), reference in zip(headers_only.images(), strict):
        np.testing.assert_array_equal(pixels, reference)


def test_a_bad_image_fails_alone_not_its_batch(mixed, client):
    result = run(mixed, None, 256, client)  # one batch for everything
    broken = str(mixed / "11b-broken.png")
    assert [failure.image for failure in result.failures] == [broken]
    assert result.failures[0].reason.startswith("not a readable image")
    assert str(result.failures[0]).startswith(f"{broken}: not a readable image")
    assert (result.image_valid[result.image_status == DONE] > 0).all()


def test_the_store_opens_in_xarray_with_one_chunk_per_batch(mixed, tmp_path, client):
    run(mixed, tmp_path / "s.zarr", 7, client)
    dataset = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)
    assert dataset.sizes["image"] == 25
    for name in PER_IMAGE:
        assert dataset[name].chunks[0] == (7, 7, 7, 4), name
    assert dataset["image_counts"].dims == ("image", "color")
    assert int(dataset["image_counts"].sum()) == int(dataset["counts"].sum())


@pytest.mark.slow
def test_work_and_files_grow_with_batches_not_images(tmp_path, client):
    from dask.utils import key_split
    from distributed import get_task_stream

    folder = tmp_path / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(0)
    photo = np.asarray(Image.open(PHOTOS[0]).convert("RGB"))
    for i in range(1200):
        y, x = rng.integers(0, 500, 2)
        Image.fromarray(photo[y : y + 8, x : x + 8]).save(folder / f"{i:04d}.png")
    with get_task_stream(client) as stream:
        result = extract_palette(folder, 3, store=tmp_path / "s.zarr", client=client)
    batches = -(-1200 // result.attrs["batch_size"])
    assert batches == 32  # the default: a 32nd of the images per batch
    tasks = collections.Counter(key_split(task["key"]) for task in stream.data)
    assert sum(tasks.values()) <= 3 * batches, tasks  # read + sample, count: no task per image
    files = sum(len(names) for _, _, names in os.walk(tmp_path / "s.zarr"))
    arrays = sum(array.per_image for array in layout.ARRAYS)  # as the layout declares them: 11
    assert files <= arrays * batches + 16 < 1200, files  # a chunk of each per-image array per batch
    assert result.to_dict()["images"] == {"total": 1200, "done": 1200, "failed": 0, "transient": 0}


def test_an_array_whose_axes_cannot_be_told_apart_fails_alone(client):
    with pytest.warns(PaletteDaskWarning, match="images failed"):
        result = extract_palette([PHOTOS[1], np.zeros((2, 3, 20, 30), np.uint8)], 3, client=client)
    assert result.image_status.tolist() == [DONE, FAILED]
    assert result.image_errors[1] == (
        "array:1: cannot tell rows, columns and bands apart in shape (2, 3, 20, 30); "
        "pass channel_axis (--channel-axis)"
    )
