"""http(s) inputs, served by a real HTTP server on 127.0.0.1."""

import functools
import http.server
import threading

import numpy as np
import pytest
from conftest import PHOTOS
from PIL import Image

from palette_dask import ImageReadError, extract_palette, probe, read_image


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client hanging up at the size limit
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "coffee.png").write_bytes(PHOTOS[1].read_bytes())
    (root / "junk.png").write_bytes(b"<html>not found</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_is_read_like_the_file(server):
    url = f"{server}/coffee.png"
    assert probe(url).shape == (400, 600, 3)
    np.testing.assert_array_equal(
        read_image(url).compute(scheduler="sync"), np.asarray(Image.open(PHOTOS[1]))
    )


def test_url_in_a_run_and_its_failures(server, client):
    result = extract_palette(
        [f"{server}/coffee.png", f"{server}/missing.png", f"{server}/junk.png"], 3, client=client
    )
    assert result.image_status.tolist() == [1, 2, 2]
    assert result.image_valid[0] == 400 * 600
    assert result.image_errors[1].startswith(f"{server}/missing.png: download failed: HTTP Error 404")
    assert result.image_errors[2] == f"{server}/junk.png: not a readable image (unknown format)"


def test_download_limit(server, monkeypatch):
    import palette_dask.read as read

    monkeypatch.setattr(read, "URL_MAX_BYTES", 1000)
    with pytest.raises(ImageReadError, match="larger than the 1000-byte download limit"):
        probe(f"{server}/coffee.png")
