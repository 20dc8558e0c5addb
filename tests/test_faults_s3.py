"""S3 that fails now and then: moto's S3 server behind a proxy that injects faults at set rates (issue 33).

The proxy (:mod:`fault_proxy`) answers some requests with S3's 503
``SlowDown`` or 500 ``InternalError``, resets some connections and cuts some
bodies short, and counts what it injected. Photos downloaded whole, a tiled
TIFF read by ranges, a zarr store read by chunks, and a store written to S3,
each through it: every run must store what the same run stores from the
files read locally, with no image failed, and each fault kind injected. An
object that always answers ``SlowDown`` fails alone, as transient, naming its tries.
"""

import contextlib
import re

import numpy as np
import pytest
import tifffile
import zarr
from fault_proxy import Faults, fault_proxy
from helpers import every_array, photo_crops, photo_mosaic, write_png
from PIL import Image
from servers import moto_s3_env

from palette_dask import extract_palette
from palette_dask.cli import EXIT_ERROR, main
from palette_dask.errors import PaletteDaskWarning
from palette_dask.outputs.store import remove_store, store_exists

pytestmark = pytest.mark.slow  # every run here takes seconds: its faults are waited out

OPTIONS = {"k": 4, "seed": 2, "chunk_bytes": 2**18}  # the TIFF and the zarr mosaic in chunks of 256 kB
#: Every 5th request of those faulted gets SlowDown, every 7th InternalError, every 11th a reset, every
#: 13th (with a body) half its body: each fault passes when its request comes again.
RATES = {"slowdown": 5, "internal": 7, "reset": 11, "cut": 13}


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The files on this disk: PNG and JPEG photos, a tiled TIFF, a zarr mosaic."""
    root = tmp_path_factory.mktemp("faults")
    (root / "photos").mkdir()
    for i, crop in enumerate(photo_crops(8, seed=5, corners=200, sides=(60, 180))):
        if i % 2:
            Image.fromarray(crop).save(root / "photos" / f"p{i}.jpg", quality=90)
        else:
            write_png(root / "photos" / f"p{i}.png", crop)
    tifffile.imwrite(root / "tiled.tif", photo_mosaic(768, 1024), tile=(128, 128), compression="deflate")
    mosaic = zarr.create_array(
        str(root / "mosaic.zarr"), shape=(600, 800, 3), chunks=(200, 200, 3), dtype="uint8"
    )
    mosaic[:] = photo_mosaic(600, 800)
    return root


@pytest.fixture(scope="module")
def s3(local):
    """moto's S3 server: the files in bucket ``faulty-in``, an empty bucket ``faulty-out``; yields its URL.

    moto keeps its buckets in the process, whatever its server: these names are no other module's.
    """
    with moto_s3_env() as endpoint:
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("faulty-in")
        fs.mkdir("faulty-out")
        for name in ("photos", "tiled.tif", "mosaic.zarr"):
            fs.put(str(local / name), f"faulty-in/{name}", recursive=True)
        yield endpoint
        s3fs.S3FileSystem.clear_instance_cache()  # none of them outlives its server


@contextlib.contextmanager
def faulty(endpoint: str, faults: Faults, monkeypatch):
    """S3 read and written through the fault proxy (``AWS_ENDPOINT_URL``) while the block lasts."""
    import s3fs

    with fault_proxy(endpoint, faults) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        s3fs.S3FileSystem.clear_instance_cache()  # a file system made for moto itself would be reused
        try:
            yield proxy
        finally:
            faults.off()
            monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
            s3fs.S3FileSystem.clear_instance_cache()


def stored(store) -> dict:
    """Every array of a store (read without faults), but the names of its images."""
    group = zarr.open_group(store if not str(store).startswith("s3://") else opened(store), mode="r")
    arrays = every_array(group)
    arrays.pop("image_names")
    return arrays


def opened(url: str):
    return zarr.storage.FsspecStore.from_url(url, read_only=True)


def assert_same(remote: dict, local: dict) -> None:
    assert remote.keys() == local.keys()
    for name in local:
        np.testing.assert_array_equal(remote[name], local[name], err_msg=name)


def assert_every_fault(faults: Faults) -> None:
    for kind in RATES:
        assert faults.injected[kind] > 0, (kind, faults.injected)


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param(["photos/p0.png", "photos/p1.jpg", "photos/p2.png", "photos/p3.jpg",
                      "photos/p4.png", "photos/p5.jpg", "photos/p6.png", "photos/p7.jpg"], id="photos"),
        pytest.param(["tiled.tif"], id="tiff-by-ranges"),
        pytest.param(["mosaic.zarr"], id="zarr"),
    ],
)  # fmt: skip
def test_inputs_read_through_faults_give_the_local_store(s3, local, client, tmp_path, monkeypatch, inputs):
    faults = Faults(every=RATES, matches=r"^(GET|HEAD) /faulty-in/")
    with faulty(s3, faults, monkeypatch):
        result = extract_palette(
            [f"s3://faulty-in/{name}" for name in inputs],
            store=tmp_path / "remote.zarr",
            client=client,
            **OPTIONS,
        )
    assert result.failures == []
    assert_every_fault(faults)
    extract_palette(
        [str(local / name) for name in inputs], store=tmp_path / "local.zarr", client=client, **OPTIONS
    )
    assert_same(stored(tmp_path / "remote.zarr"), stored(tmp_path / "local.zarr"))


def test_a_store_written_to_s3_through_faults_equals_the_local_store(
    s3, local, client, tmp_path, monkeypatch
):
    inputs = [str(local / "photos" / f"p{i}.png") for i in (0, 1, 2, 3)]
    inputs = [name.replace("p1.png", "p1.jpg").replace("p3.png", "p3.jpg") for name in inputs]
    every_request = r"^(GET|HEAD|PUT|POST|DELETE) /faulty-out[/?]"  # writes, reads, listings, deletes
    # some 800 requests (zarr asks for each array's metadata often): about one in 11 faulted
    faults = Faults(every={kind: n * 8 + 1 for kind, n in RATES.items()}, matches=every_request)
    url = "s3://faulty-out/faulty.zarr"
    with faulty(s3, faults, monkeypatch):
        result = extract_palette(inputs, store=url, client=client, labels=True, batch_size=2, **OPTIONS)
    assert result.failures == []
    assert_every_fault(faults)
    assert any(line.startswith("GET /faulty-out?") for line in faults.requests)  # listed (the store's check)
    extract_palette(
        inputs, store=tmp_path / "local.zarr", client=client, labels=True, batch_size=2, **OPTIONS
    )
    assert_same(stored(url), stored(tmp_path / "local.zarr"))
    faults = Faults(every={"slowdown": 2, "internal": 3}, matches=every_request)
    with faulty(s3, faults, monkeypatch):  # removed through faults too: listed, then deleted
        remove_store(url)
        assert not store_exists(url)
    assert faults.injected["slowdown"] > 0 and faults.injected["internal"] > 0
    assert any(
        line.startswith(("POST /faulty-out?delete", "DELETE /faulty-out/")) for line in faults.requests
    )


def test_an_object_always_slowed_down_fails_alone_as_transient_naming_its_tries(
    s3, local, client, tmp_path, monkeypatch
):
    inputs = [f"s3://faulty-in/photos/p{i}.png" for i in (0, 2, 4)]
    slow = r"^/faulty-in/photos/p2\.png"
    faults = Faults(always={slow: "slowdown"})
    with faulty(s3, faults, monkeypatch), pytest.warns(PaletteDaskWarning, match="1 of 3 images failed"):
        result = extract_palette(inputs, store=tmp_path / "remote.zarr", client=client, tries=3, **OPTIONS)
    [failure] = result.failures
    assert failure.image == inputs[1] and failure.transient
    # its header asked first (HEAD: S3 sends no code without a body), 3 times by botocore, then given up
    assert (
        failure.reason
        == "503 Service Unavailable: a transient fault on each of 3 tries (--resume tries it again)"
    )
    asked = {line: n for line, n in faults.requests.items() if "p2.png" in line}
    assert asked == {"HEAD /faulty-in/photos/p2.png": 3} and faults.injected == {"slowdown": 3}
    status = zarr.open_group(tmp_path / "remote.zarr", mode="r")["image_status"][:]
    assert status[[0, 2]].tolist() == [1, 1]


def test_a_store_write_failing_for_good_ends_the_run_in_one_line_and_resume_finishes_it(
    s3, local, tmp_path, monkeypatch, capsys
):
    """Every PUT throttled once a batch is stored: the run stops, naming the store; --resume ends it."""
    photos = [str(local / "photos" / f"p{i}.png") for i in (0, 2, 4, 6)]
    url, flags = (
        "s3://faulty-out/stopped.zarr",
        ["-k", "4", "--seed", "2", "--threads", "-q", "--batch-size", "1"],
    )
    store = r"^PUT /faulty-out/stopped\.zarr/"
    faults = Faults(every={"slowdown": 1}, matches=store, once=store + "image_status/c/", passes=False)
    with faulty(s3, faults, monkeypatch):
        assert main(["run", *photos, "-o", url, *flags, "--tries", "2"]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and faults.injected["slowdown"] > 0
    assert err.startswith(f"palette-dask: {url}: the store could not be written: SlowDown (503): "), err
    assert re.search(r"keeps [123] of 4 batches: palette-dask run \.\.\. --resume", err), err
    status = zarr.open_group(opened(url), mode="r")["image_status"][:]
    assert 0 < (status == 1).sum() < 4  # the batches written before are kept
    assert main(["run", "--resume", url, "--threads", "-q"]) == 0
    assert main(["run", *photos, "-o", str(tmp_path / "local.zarr"), *flags]) == 0
    assert_same(stored(url), stored(tmp_path / "local.zarr"))


def test_a_tile_and_a_zarr_listing_that_outlast_their_tries_fail_as_transient_naming_them(
    s3, local, tmp_path, monkeypatch
):
    """Read after the header, a tile always throttled; a zarr group's listing (it has no image) too.

    Each raised as a TransientReadError naming botocore's tries, not "cannot read" nor an OSError
    that ended the run.
    """
    from palette_dask import probe
    from palette_dask.errors import TransientReadError
    from palette_dask.inputs import retry
    from palette_dask.inputs.read import decode

    group = zarr.open_group(tmp_path / "plain.zarr", mode="w")  # a group of arrays, not an OME-Zarr image
    group.create_array("a", shape=(4, 4), dtype="uint8")
    faults = Faults()
    with faulty(s3, faults, monkeypatch), retry.using(retry.Retry(tries=2)):
        import s3fs

        s3fs.S3FileSystem().put(str(tmp_path / "plain.zarr"), "faulty-in/plain.zarr", recursive=True)
        info = probe("s3://faulty-in/tiled.tif")
        # its bytes, not its size (a HEAD): what botocore and s3fs gave up on reached the decoder
        faults.every, faults.matches, faults.passes = {"slowdown": 1}, r"^GET /faulty-in/tiled\.tif", False
        faults.always = {r"^/faulty-in\?list-type=2&prefix=plain\.zarr%2F&": "slowdown"}
        with pytest.raises(TransientReadError) as tile:
            decode(info, slice(0, 128), slice(0, 128))
        with pytest.raises(TransientReadError) as listing:
            probe("s3://faulty-in/plain.zarr")
    tries = r": SlowDown \(503\): Please reduce your request rate: a transient fault on each of {} tries "
    assert re.fullmatch(
        "s3://faulty-in/tiled.tif" + tries.format(4) + r"\(--resume tries it again\)", str(tile.value)
    )
    assert re.fullmatch(
        "s3://faulty-in/plain.zarr" + tries.format(2) + r"\(--resume tries it again\)", str(listing.value)
    )
    listed = "GET /faulty-in?list-type=2&prefix=plain.zarr%2F&delimiter=%2F&encoding-type=url"
    assert faults.requests[listed] >= 2 and faults.injected["slowdown"] >= 4 + 2  # both were throttled
