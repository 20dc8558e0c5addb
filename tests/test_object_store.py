"""A store in object storage (moto's S3 on 127.0.0.1): as on disk, overwrite safety, a kill and --resume."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import PHOTOS, every_array, photo_mosaic, write_png
from servers import moto_s3_env

from palette_dask import connect, extract_palette
from palette_dask.cli import main
from palette_dask.inputs import retry
from palette_dask.outputs.result import load_result
from palette_dask.outputs.store import is_store, task_writes

FLAGS = ["-k", "4", "--seed", "2", "--threads", "-q"]


@pytest.fixture(scope="module")
def bucket():
    """An empty bucket ``out`` on moto's S3 server, found through AWS_ENDPOINT_URL; yields its s3fs."""
    with moto_s3_env():
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("out")
        yield fs


def opened(url):
    """The store's group, read from S3."""
    return zarr.open_group(zarr.storage.FsspecStore.from_url(url, read_only=True), mode="r")


def test_a_store_in_s3_holds_what_the_same_run_stores_on_disk(capsys, bucket, tmp_path):
    assert main(["run", *map(str, PHOTOS), "-o", str(tmp_path / "local.zarr"), *FLAGS]) == 0
    assert main(["run", *map(str, PHOTOS), "-o", "s3://out/same.zarr", *FLAGS]) == 0
    local = every_array(zarr.open_group(tmp_path / "local.zarr", mode="r"))
    remote = every_array(opened("s3://out/same.zarr"))
    assert local.keys() == remote.keys()
    for name in local:
        assert (local[name] == remote[name]).all(), name
    capsys.readouterr()
    assert main(["show", "s3://out/same.zarr", "--json"]) == 0
    assert '"store": "s3://out/same.zarr"' in capsys.readouterr().out
    assert load_result("s3://out/same.zarr").store == "s3://out/same.zarr"


def test_overwrite_replaces_only_a_store_in_s3(capsys, bucket):
    bucket.pipe("out/notes/todo.txt", b"mine")
    assert main(["run", str(PHOTOS[0]), "-o", "s3://out/notes", "--overwrite", *FLAGS]) == 1
    assert "holds objects that are not a palette_dask store" in capsys.readouterr().err
    assert bucket.cat("out/notes/todo.txt") == b"mine"
    assert main(["run", str(PHOTOS[0]), "-o", "s3://out/mine.zarr", *FLAGS]) == 0
    assert main(["run", str(PHOTOS[1]), "-o", "s3://out/mine.zarr", *FLAGS]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    bucket.pipe("out/mine.zarr/notes.txt", b"mine too")
    assert main(["run", str(PHOTOS[1]), "-o", "s3://out/mine.zarr", "--overwrite", *FLAGS]) == 1
    assert "holds notes.txt, which palette-dask did not write" in capsys.readouterr().err
    bucket.rm("out/mine.zarr/notes.txt")
    assert main(["run", str(PHOTOS[1]), "-o", "s3://out/mine.zarr", "--overwrite", *FLAGS]) == 0
    assert load_result("s3://out/mine.zarr").image_names == [str(PHOTOS[1])]


def test_label_rasters_written_by_worker_processes_into_s3_equal_those_on_disk(bucket, tmp_path):
    """A mosaic read tile by tile (its chunks' tasks write level 0, a pyramid), PNGs decoded whole."""
    from ome_zarr_models import open_ome_zarr
    from ome_zarr_models.v05 import Labels

    mosaic = photo_mosaic(2600, 2100)
    array = zarr.create_array(
        str(tmp_path / "m.zarr"), shape=mosaic.shape, chunks=(512, 512, 3), dtype="uint8"
    )
    array[:] = mosaic
    inputs = [str(tmp_path / "m.zarr"), write_png(tmp_path / "p.png", mosaic[:2200, :1000]), str(PHOTOS[1])]
    options = {"k": 4, "seed": 2, "labels": True, "chunk_bytes": 2**20}  # the mosaic in 1 MB chunks
    # worker processes started under moto's environment: they write the label rasters, not the driver
    with connect(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as client:
        geo = {"local": tmp_path / "geo-local", "s3": tmp_path / "geo-s3"}
        local = extract_palette(
            inputs, store=tmp_path / "s.zarr", client=client, labels_geotiff=geo["local"], **options
        )
        url = "s3://out/labels.zarr"
        remote = extract_palette(inputs, store=url, client=client, labels_geotiff=geo["s3"], **options)
    on_disk, in_s3 = zarr.open_group(tmp_path / "s.zarr", mode="r"), opened(url)
    arrays = every_array(on_disk)
    assert {"labels/0/0", "labels/0/2", "labels/1/1", "labels/2/0"} <= arrays.keys()
    assert arrays.keys() == every_array(in_s3).keys()
    assert in_s3["labels/0/0"].chunks[0] < 2600  # chunk by chunk, each by its counting task
    for name, values in every_array(in_s3).items():
        np.testing.assert_array_equal(values, arrays[name], err_msg=name)
    for index in range(3):
        assert in_s3[f"labels/{index}"].attrs.asdict() == on_disk[f"labels/{index}"].attrs.asdict()
    assert isinstance(open_ome_zarr(in_s3["labels"]), Labels)  # OME-Zarr 0.5, validated where it lies
    np.testing.assert_array_equal(remote.labels(1).values, local.labels(1).values)
    for name in ("m.labels.tif", "p.labels.tif", "coffee.labels.tif"):  # GeoTIFFs read from the S3 store
        assert (geo["s3"] / name).read_bytes() == (geo["local"] / name).read_bytes(), name


def test_a_store_at_a_buckets_root_is_replaced_and_the_bucket_kept(bucket):
    bucket.mkdir("whole")
    assert main(["run", str(PHOTOS[0]), "-o", "s3://whole", *FLAGS]) == 0
    assert main(["run", str(PHOTOS[1]), "-o", "s3://whole", "--overwrite", *FLAGS]) == 0
    assert load_result("s3://whole").image_names == [str(PHOTOS[1])]
    bucket.invalidate_cache()
    assert bucket.exists("whole")


def test_a_label_raster_written_after_its_s3_store_went_is_removed(bucket):
    """As on disk (an interrupted run removes its store while a task writes): nothing is left behind."""
    for name, gone in (("kept.zarr", False), ("gone.zarr", True)):
        group = zarr.open_group(zarr.storage.FsspecStore.from_url(f"s3://out/{name}"), mode="w")
        group.require_group("labels")
        with task_writes(f"s3://out/{name}/labels/0"):
            label = zarr.open_group(zarr.storage.FsspecStore.from_url(f"s3://out/{name}/labels/0"), mode="w")
            label.create_array("0", shape=(4, 4), dtype="uint8")[:] = 1
            assert bucket.exists(f"out/{name}/labels/0/0/c/0/0")
            if gone:
                bucket.rm(f"out/{name}/zarr.json")
        bucket.invalidate_cache()
        assert bucket.exists(f"out/{name}/labels/0/0/c/0/0") is not gone
        assert bucket.exists(f"out/{name}/labels/0/zarr.json") is not gone


def test_a_store_out_of_reach_for_a_while_is_not_taken_for_gone(bucket, monkeypatch):
    """Only a missing zarr.json removes what a task wrote: a timeout or a refusal keeps it."""
    import s3fs

    from palette_dask.outputs.store.paths import _url_gone

    zarr.open_group(zarr.storage.FsspecStore.from_url("s3://out/here.zarr"), mode="w")
    assert _url_gone("s3://out/never-made.zarr") and not _url_gone("s3://out/here.zarr")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        with retry.using(retry.Retry(tries=1)):  # botocore's tries: refused at once
            assert not _url_gone("s3://out/never-made.zarr")  # unknown: what was written stays
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def test_a_run_killed_while_writing_to_s3_is_finished_by_resume(bucket, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(24):
        shutil.copy(PHOTOS[i % 2], photos / f"{i:02d}.png")
    command = [str(Path(sys.executable).parent / "palette-dask"), "run", str(photos), "--batch-size", "1"]
    url = "s3://out/killed.zarr"
    process = subprocess.Popen([*command, "-o", url, *FLAGS], stderr=subprocess.DEVNULL)
    try:  # wait for the store to hold a finished batch, then kill the run
        deadline = time.monotonic() + 300
        while not (
            is_store(url)
            and "image_status" in (group := opened(url))
            and (group["image_status"][:] == 1).any()
        ):
            assert process.poll() is None and time.monotonic() < deadline, "no batch was stored"
            time.sleep(0.1)
    finally:
        process.kill()
        process.wait()
    assert not opened(url).attrs["complete"], "the run ended before it was killed"
    assert main(["run", "--resume", url, "--threads", "-q"]) == 0
    assert main(["run", str(photos), "-o", str(tmp_path / "full.zarr"), "--batch-size", "1", *FLAGS]) == 0
    full, resumed = every_array(zarr.open_group(tmp_path / "full.zarr", mode="r")), every_array(opened(url))
    for name in full:
        assert (full[name] == resumed[name]).all(), name


def test_an_object_store_without_its_bucket_or_out_of_reach_is_one_line(capsys, bucket, monkeypatch):
    assert main(["run", str(PHOTOS[0]), "-o", "s3://nowhere/run.zarr", "--threads"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("palette-dask: s3://nowhere/run.zarr: there is no bucket 'nowhere'")
    assert err.count("\n") == 1 and "dashboard" not in err  # before any cluster
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    s3fs.S3FileSystem.clear_instance_cache()  # a file system made for moto would be reused
    try:  # the store is checked before the run's --tries apply: botocore's tries, one
        with retry.using(retry.Retry(tries=1)):
            assert main(["run", str(PHOTOS[0]), "-o", "s3://out/run.zarr", "--threads"]) == 1
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    err = capsys.readouterr().err
    assert err.startswith("palette-dask: s3://out/run.zarr: cannot list the store: ") and err.count("\n") == 1
