"""http(s) inputs, served by a real HTTP server on 127.0.0.1 that counts what it is asked for."""

import collections
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from helpers import PHOTOS
from PIL import Image
from servers import RangeHandler, http_server

from palette_dask import ImageReadError, extract_palette, probe, read_image
from palette_dask.cli import main
from palette_dask.errors import PaletteDaskWarning, TransientReadError
from palette_dask.inputs import retry
from palette_dask.inputs.fetch import download

DRIP_SECONDS = 20  # the dripping server gives up after this, whatever the client does


class Handler(RangeHandler):
    """Files from a folder (range requests too), plus redirects and a server that drips one byte at a time."""

    def do_GET(self):
        if self.path.startswith("/redirect/"):
            self.requests[self.path] += 1
            self.send_response(302)
            self.send_header("Location", self.path[len("/redirect/") :].replace("|", "/"))
            self.end_headers()
        elif self.path == "/cut-short.jpg":  # promises the whole photo, sends a third of it, hangs up
            self.requests[self.path] += 1
            data = (Path(self.directory) / "photo.jpg").read_bytes()
            self.wfile.write(f"HTTP/1.0 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode())
            self.wfile.write(data[: len(data) // 3])
            self.close_connection = True
        elif self.path in ("/drip-body.png", "/drip-headers.png"):
            self.requests[self.path] += 1
            self.drip(headers=self.path == "/drip-headers.png")
        else:
            super().do_GET()

    hung_up = collections.defaultdict(threading.Event)  # path → the client hung up while it dripped

    def drip(self, *, headers: bool) -> None:
        """A byte every 0.2 s, for at most DRIP_SECONDS: in the status line, or in the body."""
        start = time.monotonic()
        message = b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n"
        if not headers:
            self.wfile.write(message)
            message = b"\x89PNG" + b"\0" * 99996
        try:
            for byte in message:
                if time.monotonic() - start > DRIP_SECONDS:
                    break
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:  # the client hung up: what it should do
            self.hung_up[self.path].set()


@pytest.fixture(scope="module")
def www(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "coffee.png").write_bytes(PHOTOS[1].read_bytes())
    (root / "junk.png").write_bytes(b"<html>not found</html>")
    Image.open(PHOTOS[1]).save(root / "photo.jpg", quality=90)
    rgb = np.asarray(Image.open(PHOTOS[0]).convert("RGB"))
    tifffile.imwrite(root / "tiled.tif", rgb, tile=(128, 128), compression="zlib")
    tifffile.imwrite(root / "jpeg-tiles.tif", rgb, tile=(128, 128), compression="jpeg", photometric="rgb")
    whole = (root / "jpeg-tiles.tif").read_bytes()
    (root / "cut-tiles.tif").write_bytes(whole[: len(whole) * 2 // 3])  # its last tiles past the end
    return root


@pytest.fixture(scope="module")
def server(www):
    with http_server(www, Handler) as (url, _):
        yield url


def test_url_is_read_like_the_file(server):
    url = f"{server}/coffee.png"
    assert probe(url).shape == (400, 600, 3)
    np.testing.assert_array_equal(
        read_image(url).compute(scheduler="sync"), np.asarray(Image.open(PHOTOS[1]))
    )


def test_url_in_a_run_and_its_failures(server, client):
    with pytest.warns(
        PaletteDaskWarning, match=r"^2 of 3 images failed \(first: .*/missing.png: download failed"
    ):
        result = extract_palette(
            [f"{server}/coffee.png", f"{server}/missing.png", f"{server}/junk.png"], 3, client=client
        )
    assert result.image_status.tolist() == [1, 2, 2]
    assert result.image_valid[0] == 400 * 600
    assert result.image_errors[1].startswith(f"{server}/missing.png: download failed: HTTP Error 404")
    assert result.image_errors[2] == f"{server}/junk.png: not a readable image (unknown format)"


def test_download_limit(server, monkeypatch, tmp_path):
    import palette_dask.inputs.fetch as fetch

    monkeypatch.setattr(fetch, "URL_MAX_BYTES", 1000)
    with pytest.raises(ImageReadError, match="larger than the 1,000-byte download limit"):
        probe(f"{server}/coffee.png", downloads=str(tmp_path))
    assert os.listdir(tmp_path) == []  # nothing half-downloaded is left


@pytest.mark.slow
def test_each_url_is_fetched_once_per_run_figure_and_report_included(server, capsys, tmp_path, monkeypatch):
    """A PNG is downloaded once; a TIFF from a server without range requests too, the other read by ranges."""
    urls = [f"{server}/coffee.png", f"{server}/norange/tiled.tif", f"{server}/tiled.tif"]
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # this run's temporary folders only
    Handler.requests.clear()
    Handler.sent.clear()
    outputs = ["-o", tmp_path / "s.zarr", "--html", tmp_path / "r.html", "--figure", tmp_path / "f.png"]
    code = main(["run", *urls, *map(str, outputs), "--processes", "--workers", "2", "-q"])
    assert code == 0, capsys.readouterr().err
    assert Handler.requests["/coffee.png"] == 1
    # the server without ranges: a refused range request by the worker that probes it and by this
    # process (the report and the figure), and one download, read by both (one host)
    assert Handler.requests["/norange/tiled.tif"] == 3
    assert Handler.requests["/tiled.tif"] > 2  # header, then tiles
    assert (tmp_path / "r.html").stat().st_size > 10_000 and (tmp_path / "f.png").exists()
    assert list(temporary.glob("palette-dask-urls-*")) == []  # removed
    local = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert local["image_valid"][:].tolist() == [400 * 600, 512 * 512, 512 * 512]
    counts = local["image_counts"][:]
    np.testing.assert_array_equal(counts[1], counts[2])


def test_a_url_tiff_is_read_tile_by_tile_by_byte_ranges(server, www, tmp_path):
    info = probe(f"{server}/tiled.tif", downloads=str(tmp_path))
    assert info.downloads is None and os.listdir(tmp_path) == []  # no local copy
    image = read_image(info, chunk_bytes=128 * 512 * 3)
    assert image.numblocks == (4, 1, 1)  # not one chunk decoded whole
    rgb = np.asarray(Image.open(PHOTOS[0]).convert("RGB"))
    Handler.sent.clear()
    np.testing.assert_array_equal(image[128:256].compute(scheduler="sync"), rgb[128:256])
    with tifffile.TiffFile(www / "tiled.tif") as tif:
        tiles = tif.pages[0].databytecounts[4:8]  # the second row of 4 tiles
    # its header, its 4 tiles, and at most READ_AHEAD bytes after each read
    assert (
        sum(tiles)
        <= Handler.sent["/tiled.tif"]
        <= sum(tiles) + 6 * 2**16
        < (www / "tiled.tif").stat().st_size
    )
    np.testing.assert_array_equal(image.compute(scheduler="sync"), rgb)


@pytest.mark.parametrize("path", ["/drip-body.png", "/drip-headers.png"])
@pytest.mark.slow
def test_a_dripping_server_is_cut_at_the_deadline(server, tmp_path, path):
    Handler.hung_up[path].clear()
    stopped = f"{path}: download stopped at its deadline of 1.5 s: a transient fault on each of 2 tries"
    with retry.using(retry.Retry(tries=2, first_wait=0.01)), pytest.raises(TransientReadError, match=stopped):
        download(f"{server}{path}", tmp_path / "x", deadline=1.5)
    assert os.listdir(tmp_path) == []
    # the client hung up while the server still dripped (each byte came within any per-read
    # timeout: only the total deadline stopped it), long before the server's own DRIP_SECONDS
    assert Handler.hung_up[path].wait(timeout=DRIP_SECONDS / 2)


@pytest.mark.parametrize("target", ["ftp:||127.0.0.1|coffee.png", "file:|||etc|passwd"])
def test_redirects_to_other_schemes_are_refused(server, tmp_path, target):
    url = f"{server}/redirect/{target}"
    shown = target.replace("|", "/")
    with pytest.raises(ImageReadError, match=f"redirected to {shown}, refused: only http\\(s\\) is followed"):
        download(url, tmp_path / "x")
    download(f"{server}/redirect/|coffee.png", tmp_path / "x")  # to http: followed
    assert (tmp_path / "x").read_bytes() == PHOTOS[1].read_bytes()


def test_a_body_cut_short_by_the_server_is_an_error_not_a_smaller_file(server, tmp_path):
    """Cut short on every try: a transient fault, tried again, then an error; never a smaller file."""
    Handler.requests.clear()
    cut = "download cut short: the connection closed after .* bytes: a transient fault on each of 3 tries"
    with retry.using(retry.Retry(tries=3, first_wait=0.01)):
        with pytest.raises(TransientReadError, match=cut):
            download(f"{server}/cut-short.jpg", tmp_path / "x.jpg")
        assert Handler.requests["/cut-short.jpg"] == 3
        assert list(tmp_path.iterdir()) == []  # nothing half-downloaded left
        with pytest.raises(TransientReadError, match="cut-short.jpg: download cut short"):
            probe(f"{server}/cut-short.jpg")


def test_a_cut_tiff_read_by_byte_ranges_is_refused_not_filled_with_grey(server):
    with pytest.raises(ImageReadError, match="cut-tiles.tif: truncated TIFF: its strips or tiles end "):
        probe(f"{server}/cut-tiles.tif")  # tifffile alone decodes the missing tiles as grey
    assert probe(f"{server}/jpeg-tiles.tif").shape == (512, 512, 3)
