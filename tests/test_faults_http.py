"""http that fails now and then: a server with range requests that injects faults at set rates (issue 33).

The server (:class:`servers.FaultHandler`) answers every 4th request with
503 and every 5th with 429 (``Retry-After: 0``), resets every 7th connection
and cuts every 9th body in half, and counts what it injected. Photos
downloaded whole (urllib, :func:`retry.call`), a tiled TIFF and a COG read by
ranges, a zarr mosaic and an OME-Zarr image read by chunks (fsspec over
aiohttp, :class:`retry.HttpRetry`): every run must store what the same run
stores from the files read locally, with no image failed, and each fault
kind injected. A file that always answers 503 fails alone, as transient,
naming its tries; a 404 fails at once.
"""

import contextlib
import re
import time

import numpy as np
import pytest
import tifffile
import zarr
from helpers import every_array, photo_crops, photo_mosaic, write_cog, write_ome_zarr, write_png
from PIL import Image
from servers import fault_handler, headless_handler, http_server

from palette_dask import extract_palette, probe
from palette_dask.cli import main
from palette_dask.errors import ImageReadError, PaletteDaskWarning, TransientReadError
from palette_dask.inputs import retry
from palette_dask.inputs.fetch import download
from palette_dask.inputs.read import decode

#: Every 4th request answers 503, every 5th 429 (both ``Retry-After: 0``), every 7th a reset, every 9th
#: GET half its body: each fault passes when its request comes again.
RATES = {"503": 4, "429": 5, "reset": 7, "cut": 9}
OPTIONS = {"k": 4, "seed": 2, "chunk_bytes": 2**18}  # the TIFFs and the zarr mosaic in chunks of 256 kB
PHOTOS = [f"photos/p{i}.{'jpg' if i % 2 else 'png'}" for i in range(8)]
GAVE_UP = r"a transient fault on each of {} tries over \d+ s \(--resume tries it again\)"


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The files on this disk: PNG and JPEG photos, a 2048 x 2048 tiled TIFF, a COG, zarr and OME-Zarr."""
    root = tmp_path_factory.mktemp("faults-http")
    (root / "photos").mkdir()
    for name, crop in zip(PHOTOS, photo_crops(len(PHOTOS), seed=5, corners=200, sides=(60, 180))):
        if name.endswith(".jpg"):
            Image.fromarray(crop).save(root / name, quality=90)
        else:
            write_png(root / name, crop)
    tifffile.imwrite(root / "tiled.tif", photo_mosaic(2048, 2048), tile=(256, 256), compression="deflate")
    write_cog(root / "scene.tif", photo_mosaic(1024, 1024))
    mosaic = zarr.create_array(
        str(root / "mosaic.zarr"), shape=(600, 800, 3), chunks=(200, 200, 3), dtype="uint8"
    )
    mosaic[:] = photo_mosaic(600, 800)
    write_ome_zarr(root / "image.ome.zarr", photo_mosaic(512, 640), "0.5")
    return root


@contextlib.contextmanager
def served(local, every=RATES, **faults):
    """The files over http from a :class:`servers.FaultHandler`; yields ``(url, handler class)``."""
    with http_server(local, fault_handler(every, **faults)) as (url, handler):
        yield url, handler


def stored(store) -> dict:
    """Every array of a store, but the names of its images."""
    arrays = every_array(zarr.open_group(store, mode="r"))
    arrays.pop("image_names")
    return arrays


def assert_same(remote: dict, local: dict) -> None:
    assert remote.keys() == local.keys()
    for name in local:
        np.testing.assert_array_equal(remote[name], local[name], err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param(PHOTOS, id="photos"),
        pytest.param(["tiled.tif"], id="tiff-by-ranges"),
        pytest.param(["scene.tif"], id="cog"),
        pytest.param(["mosaic.zarr"], id="zarr"),
        pytest.param(["image.ome.zarr", "image.ome.zarr/s1"], id="ome-zarr-and-a-level"),
    ],
)
def test_inputs_read_through_faults_give_the_local_store(local, client, tmp_path, inputs):
    with served(local) as (url, handler):
        result = extract_palette(
            [f"{url}/{name}" for name in inputs], store=tmp_path / "remote.zarr", client=client, **OPTIONS
        )
    assert result.failures == []
    for kind in RATES:  # every fault kind happened, and was tried again
        assert handler.injected[kind] > 0, (kind, handler.injected)
    extract_palette(
        [str(local / name) for name in inputs], store=tmp_path / "local.zarr", client=client, **OPTIONS
    )
    assert_same(stored(tmp_path / "remote.zarr"), stored(tmp_path / "local.zarr"))


@pytest.mark.slow
def test_a_file_always_503_fails_alone_as_transient_naming_its_tries_and_a_404_at_once(
    local, client, tmp_path
):
    """A photo and a TIFF that always answer 503 fail as transient after 3 tries; a 404 after 1 request."""
    names = ["photos/p0.png", "photos/p1.jpg", "missing.png", "photos/p2.png", "tiled.tif"]
    with served(local, {}, always={"/photos/p1.jpg", "/tiled.tif"}) as (url, handler):
        with pytest.warns(PaletteDaskWarning, match="3 of 5 images failed"):
            urls = [f"{url}/{name}" for name in names]
            result = extract_palette(urls, store=tmp_path / "s.zarr", client=client, tries=3, **OPTIONS)
    failures = {failure.image[len(url) + 1 :]: failure.reason for failure in result.failures}
    assert failures.keys() == {"photos/p1.jpg", "missing.png", "tiled.tif"}
    unavailable = "download failed: HTTP Error 503: Service Unavailable: "
    assert re.fullmatch(unavailable + GAVE_UP.format(3), failures["photos/p1.jpg"]), failures
    assert re.fullmatch("HTTP 503 Service Unavailable: " + GAVE_UP.format(3), failures["tiled.tif"]), failures
    assert failures["missing.png"] == "download failed: HTTP Error 404: File not found"
    assert handler.requests["/photos/p1.jpg"] == 3 and handler.requests["/missing.png"] == 1
    # its HEAD (not in requests) 3 times, then fsspec's GET for its size, 3 times
    assert len(handler.times["/tiled.tif"]) == 6 and handler.requests["/tiled.tif"] == 3
    assert result.image_status.tolist() == [1, result.image_status[1], 2, 1, result.image_status[4]]
    assert result.image_status[1] == result.image_status[4] != 1
    # the same files read locally, the failed ones missing there: the same store, but why they failed
    here = [local / "photos/p0.png", tmp_path / "p1.jpg", tmp_path / "missing.png", local / "photos/p2.png"]
    here = [*map(str, here), str(tmp_path / "tiled.tif")]
    with pytest.warns(PaletteDaskWarning, match="3 of 5 images failed"):
        extract_palette(here, store=tmp_path / "local.zarr", client=client, **OPTIONS)
    remote, local_store = stored(tmp_path / "s.zarr"), stored(tmp_path / "local.zarr")
    for name in ("image_errors", "image_status"):
        remote.pop(name), local_store.pop(name)
    assert_same(remote, local_store)


def test_what_reaches_the_per_image_handlers_is_a_transient_read_error(local, tmp_path):
    """A download, a TIFF's header, its tiles read by ranges after the header, a zarr chunk, an OME level."""
    with tifffile.TiffFile(local / "tiled.tif") as tif:
        first_tile = int(min(tif.pages[0].dataoffsets))
    always = {"/photos/p3.jpg", "/image.ome.zarr/s1/c/0/0/0/0/0", "/mosaic.zarr/c/1/1/0"}
    policy = retry.Retry(tries=2, first_wait=0.01)
    with served(local, {}, always=always, from_byte={"/tiled.tif": first_tile}) as (url, handler):
        with retry.using(policy):
            with pytest.raises(TransientReadError, match=GAVE_UP.format(2)):
                download(f"{url}/photos/p3.jpg", tmp_path / "p3.jpg")
            assert list(tmp_path.iterdir()) == []  # no partial file left
            info = probe(f"{url}/tiled.tif")  # its header comes before its first tile
            with pytest.raises(TransientReadError, match="tiled.tif: HTTP 503 Service Unavailable: "):
                decode(info, slice(0, 256), slice(0, 256))
            for name in ("mosaic.zarr", "image.ome.zarr/s1"):
                info = probe(f"{url}/{name}")
                with pytest.raises(TransientReadError, match=GAVE_UP.format(2)):
                    decode(info)
    assert handler.injected["503"] == 2 + 2 + 2 + 2
    with served(local, {}) as (url, handler), pytest.raises(ImageReadError) as raised:
        download(f"{url}/missing.png", tmp_path / "x.png")
    assert not isinstance(raised.value, TransientReadError) and handler.requests["/missing.png"] == 1


@pytest.mark.slow  # a 6 s wait
@pytest.mark.parametrize("how", ["download", "ranges"])
def test_retry_after_is_waited_rather_than_the_backoff(local, tmp_path, how):
    """A 429 asking for 6 s, then the file: asked again 6 s later or more, not after the backoff (< 0.1 s)."""
    name = "/photos/p0.png" if how == "download" else "/tiled.tif"
    policy = retry.Retry(tries=3, first_wait=0.1, max_wait=30.0)  # a first backoff of 0.05 to 0.1 s
    with served(local, {"429": 1}, limit=1, retry_after="6") as (url, handler), retry.using(policy):
        if how == "download":
            download(f"{url}{name}", tmp_path / "p0.png")
        else:
            probe(f"{url}{name}")
    first, second = handler.times[name][:2]
    assert handler.injected == {"429": 1} and second - first >= 6.0 > 60 * policy.wait(1)


@pytest.mark.slow  # a 5 s timeout
@pytest.mark.parametrize("how", ["download", "ranges"])
def test_a_request_without_an_answer_is_cut_at_its_timeout_and_tried_again(local, tmp_path, how):
    """A request never answered is cut at 5 s, not waited on for ever; the next try gets the file."""
    name = "/photos/p0.png" if how == "download" else "/tiled.tif"
    policy = retry.Retry(tries=2, timeout=5.0, first_wait=0.01)
    with served(local, {"stall": 1}, limit=1) as (url, handler), retry.using(policy):
        start = time.monotonic()
        if how == "download":
            download(f"{url}{name}", tmp_path / "p0.png")
            assert (tmp_path / "p0.png").read_bytes() == (local / name[1:]).read_bytes()
        else:
            assert probe(f"{url}{name}").shape == (2048, 2048, 3)
    assert handler.injected == {"stall": 1} and len(handler.times[name]) >= 2
    assert time.monotonic() - start >= 5.0  # the stalled try was waited on to its timeout, no less


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A tiled TIFF of 27 MiB, over :data:`retry.BUFFERED_BYTES` (uncompressed, 512-pixel tiles)."""
    root = tmp_path_factory.mktemp("faults-http-big")
    tifffile.imwrite(root / "big.tif", photo_mosaic(3072, 3072), tile=(512, 512))
    assert (root / "big.tif").stat().st_size > retry.BUFFERED_BYTES
    return root


@pytest.mark.slow
@pytest.mark.parametrize("head", ["405", "no-length"])
def test_a_size_asked_by_a_get_downloads_no_body(big, client, tmp_path, head):
    """A HEAD answered 405 or without a length: fsspec asks the size by a GET, whose body is left unread.

    Through the middleware that read every body, each of those GETs downloaded the whole file.
    """
    size = (big / "big.tif").stat().st_size
    with http_server(big, headless_handler(head)) as (url, handler):
        result = extract_palette([f"{url}/big.tif"], store=tmp_path / "remote.zarr", client=client, **OPTIONS)
    assert result.failures == []
    gets = handler.whole["/big.tif"]
    assert handler.heads["/big.tif"] > 0 and gets > 0  # the HEADs said no size, and GETs asked it
    unread = handler.sent["/big.tif"] - handler.ranged["/big.tif"]  # bytes of the GETs' bodies
    assert unread < gets * size / 4, (unread, gets, size)  # socket buffers at most, not the file
    extract_palette([str(big / "big.tif")], store=tmp_path / "local.zarr", client=client, **OPTIONS)
    assert_same(stored(tmp_path / "remote.zarr"), stored(tmp_path / "local.zarr"))


@pytest.mark.slow
@pytest.mark.cluster  # worker processes, started by the command
def test_the_command_reads_photos_and_a_tiff_by_ranges_through_faults_on_worker_processes(local, tmp_path):
    """The issue's case: one 503 on a tiled TIFF read by ranges ended the run; now nothing fails."""
    inputs = [*PHOTOS, "tiled.tif"]
    flags = ["-k", "4", "--seed", "2", "-q", "--processes", "--workers", "2"]
    with served(local) as (url, handler):
        code = main(["run", *(f"{url}/{n}" for n in inputs), "-o", str(tmp_path / "remote.zarr"), *flags])
    assert code == 0
    assert all(handler.injected[kind] > 0 for kind in RATES), handler.injected
    assert main(["run", *(str(local / n) for n in inputs), "-o", str(tmp_path / "local.zarr"), *flags]) == 0
    assert_same(stored(tmp_path / "remote.zarr"), stored(tmp_path / "local.zarr"))


def test_the_transient_rule_takes_aiohttps_classes_and_follows_what_a_traceback_shows():
    """aiohttp's subclasses of its connection errors are transient, but TLS and a name that never resolves.

    An error raised ``from None`` in the handler of a transient one is what it says, not transient.
    """
    import socket
    import ssl

    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("example.org", 443, True, True, None, None, None, "example.org")
    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    refused = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    transient = [
        aiohttp.ClientConnectorDNSError(key, again), aiohttp.ClientConnectionResetError("reset by peer"),
        aiohttp.ServerDisconnectedError(), aiohttp.SocketTimeoutError("timeout"),
        aiohttp.ClientPayloadError("Response payload is not completed"), again,
    ]  # fmt: skip
    permanent = [
        aiohttp.ClientConnectorDNSError(key, unknown), aiohttp.ClientConnectorCertificateError(key, refused),
        aiohttp.ServerFingerprintMismatch(b"a", b"b", "example.org", 443), aiohttp.InvalidURL("x"), unknown,
    ]  # fmt: skip
    assert [retry.is_transient(e) for e in transient] == [True] * len(transient)
    assert [retry.is_transient(e) for e in permanent] == [False] * len(permanent)

    def raised(suppress: bool) -> Exception:
        try:
            try:
                raise aiohttp.ServerDisconnectedError()
            except aiohttp.ClientError as exc:
                raise ValueError("not a TIFF file") from (None if suppress else exc)
        except ValueError as exc:
            return exc

    assert retry.is_transient(raised(suppress=False)) and not retry.is_transient(raised(suppress=True))
    assert retry.exhausted("u", raised(suppress=True)) is None
