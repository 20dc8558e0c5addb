"""Servers the tests start on 127.0.0.1: files over http with range requests, and moto's S3."""

import collections
import contextlib
import http.server
import logging
import os
import re
import threading


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Files from a folder, honouring ``Range: bytes=a-b``; counts requests and bytes sent per path.

    Paths under ``/norange/`` are the same files from a server that ignores ranges.
    """

    requests: collections.Counter
    sent: collections.Counter

    def log_message(self, *args):
        pass

    def send_head(self):
        path = self.path
        ranged = not path.startswith("/norange/")
        if not ranged:
            self.path = path[len("/norange") :]
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "")) if ranged else None
        if match is None:
            return super().send_head()
        file = self.translate_path(self.path)
        if not os.path.isfile(file):
            self.send_error(404)
            return None
        size = os.path.getsize(file)
        start = int(match[1])
        stop = min(size, int(match[2]) + 1) if match[2] else size
        if start >= size:
            self.send_error(416)
            return None
        handle = open(file, "rb")  # noqa: SIM115 (closed by the caller)
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.send_header("Content-Length", str(stop - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._left = stop - start
        return handle

    def copyfile(self, source, outputfile):
        left = getattr(self, "_left", None)
        while left is None or left > 0:
            piece = source.read(2**16 if left is None else min(left, 2**16))
            if not piece:
                break
            outputfile.write(piece)
            self.sent[self.path] += len(piece)
            if left is not None:
                left -= len(piece)

    def do_GET(self):
        self.requests[self.path] += 1
        self._left = None
        super().do_GET()


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client hanging up early
        pass


@contextlib.contextmanager
def http_server(folder, handler=RangeHandler):
    """Serve ``folder`` on 127.0.0.1 while the block lasts; yields ``(url, handler class)``."""
    import functools

    handler.requests, handler.sent = collections.Counter(), collections.Counter()
    httpd = QuietServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def moto_s3():
    """moto's S3 server on 127.0.0.1, as ``AWS_ENDPOINT_URL`` with test credentials, while the block lasts."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def moto_s3_env():
    """:func:`moto_s3` and the environment that finds it (AWS_ENDPOINT_URL, test credentials)."""
    import pytest

    with pytest.MonkeyPatch.context() as env, moto_s3() as endpoint:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_NO_SIGN_REQUEST", raising=False)
        yield endpoint
