"""A worker killed by its memory limit on one huge block: that image alone fails (issue 33)."""

import struct
import zlib

import dask
import numpy as np
import pytest
import zarr
from dask.utils import format_bytes
from distributed import Client, LocalCluster
from helpers import PHOTOS, every_array

from palette_dask import extract_palette
from palette_dask.errors import Failure
from palette_dask.inputs.read import probe
from palette_dask.run import passes
from palette_dask.run.tasks import deaths_per_try

#: A 20,000 x 20,000 RGB PNG: one block of 1.2 GB, decoded whole, for workers limited to 1.2 GB (a
#: worker holds 300 MB after a run's imports, and 600 MB while numba compiles the counting kernels).
SIDE, LIMIT = 20_000, 1_200_000_000
#: The nanny restarts its worker at 95% of the limit; the worker neither spills nor pauses (paused at
#: 80% with nothing to spill, it would wait for ever).
MEMORY = {
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
    # a LocalCluster closes the nanny of a worker not back 15 s after it left (a restart on a loaded
    # machine): it would leave the run with no worker
    "distributed.deploy.lost-worker-timeout": "1h",
}


def write_big_png(path, side: int) -> str:
    """A real 8-bit RGB PNG of ``side`` x ``side`` pixels (a colour ramp), written a few rows at a time."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ramp = np.linspace(0, 255, side * 3).astype(np.uint8).tobytes()
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)))
        deflate = zlib.compressobj(1)
        rows = (b"\x00" + ramp) * 500  # filter 0, then the row
        for _ in range(side // 500):
            file.write(chunk(b"IDAT", deflate.compress(rows)))
        file.write(chunk(b"IDAT", deflate.flush()) + chunk(b"IEND", b""))
    return str(path)


@pytest.mark.cluster
@pytest.mark.slow
def test_a_block_beyond_the_workers_memory_limit_fails_its_image_alone(tmp_path, client, monkeypatch):
    big = write_big_png(tmp_path / "big.png", SIDE)
    assert probe(big, max_pixels=SIDE**2).shape == (SIDE, SIDE, 3)  # a real PNG, as the reader sees it
    inputs = [str(PHOTOS[0]), big, str(PHOTOS[1]), str(PHOTOS[2])]
    # the big image's pixels count towards the run's in one run and not in the other (refused on its
    # header): errors exact in both (no estimate from the tables, kernels/count.py), as compared below
    monkeypatch.setattr(passes, "LOOKUP_PIXELS", 2**62)
    with dask.config.set(MEMORY):
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, memory_limit=LIMIT, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0",
            ) as cluster,
            Client(cluster) as limited,
        ):  # fmt: skip
            lines = []
            store = tmp_path / "s.zarr"
            result = extract_palette(
                inputs, 4, store=store, client=limited, report=lines.append, max_pixels=SIDE**2
            )
            restarts = limited.get_events("worker-restart-memory")
    # the fault happened: the nanny restarted its worker beyond 95% of its limit, as many times as dask
    # allows a task's workers to die (allowed-failures, 3 by default, + 1) and no more: the image's
    # task is not submitted again, and the reason says how many times it was tried
    tries = deaths_per_try()
    assert tries == dask.config.get("distributed.scheduler.allowed-failures") + 1 == 4
    assert len(restarts) == tries and all(event["rss"] > 0.95 * LIMIT for _, event in restarts), restarts
    reason = (
        f"workers ran out of memory decoding a block of {format_bytes(SIDE * SIDE * 3)} (their memory "
        f"limit is {format_bytes(LIMIT)}; tried {tries} times): use workers with more memory (the file "
        "decodes it in one piece), in a new run (--overwrite): --resume does not read this failure again"
    )
    assert result.failures == [Failure(big, reason)]
    assert f"failed: {big}: {reason}" in lines
    assert result.image_status.tolist() == [1, 2, 1, 1]
    # the trusted reference: the same files on threads, where the big one fails as a decompression bomb
    reference = extract_palette(
        inputs, 4, store=tmp_path / "r.zarr", client=client, max_pixels=SIDE**2 - 1, report=[].append
    )
    assert [f.image for f in reference.failures] == [big]
    expected = every_array(zarr.open_group(tmp_path / "r.zarr", mode="r"))
    found = every_array(zarr.open_group(tmp_path / "s.zarr", mode="r"))
    assert set(found) == set(expected)
    for name in set(expected) - {"image_errors"}:
        np.testing.assert_array_equal(found[name], expected[name], err_msg=name)
