"""Servers the tests start on 127.0.0.1: files over http with range requests, and moto's S3."""

import collections
import contextlib
import http.server
import itertools
import logging
import os
import re
import socket
import struct
import threading
import time


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Files from a folder, honouring ``Range: bytes=a-b``; counts requests and bytes sent per path.

    Paths under ``/norange/`` are the same files from a server that ignores ranges. ``requests``
    counts GETs, ``whole`` those without a range, ``sent`` the bytes of bodies written, ``ranged``
    the bytes of the ranges answered.
    """

    requests: collections.Counter
    whole: collections.Counter
    sent: collections.Counter
    ranged: collections.Counter

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
        self.ranged[self.path] += stop - start
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
        if "Range" not in self.headers:
            self.whole[self.path] += 1
        self._left = None
        super().do_GET()


class HeadlessHandler(RangeHandler):
    """:class:`RangeHandler` whose HEAD answers 405 (``head = "405"``) or says no length (``"no-length"``).

    A presigned URL answers a HEAD 403, some servers 405, others no ``Content-Length``: fsspec then
    asks a file's size by a GET. ``heads`` counts the HEADs answered so. Made by :func:`headless_handler`.
    """

    head: str = "405"
    heads: collections.Counter

    def do_HEAD(self):
        self.heads[self.path] += 1
        if self.head == "405":
            self.send_error(405)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()


def headless_handler(head: str) -> type[HeadlessHandler]:
    """A :class:`HeadlessHandler` class of its own (its own counts) whose HEADs answer as ``head`` says."""
    return type("Headless", (HeadlessHandler,), {"head": head, "heads": collections.Counter()})


class FaultHandler(RangeHandler):
    """:class:`RangeHandler` that answers every n-th request (GET and HEAD, all paths together) with a fault.

    ``every`` maps each fault to its period, tried in this order: ``"503"``
    and ``"429"`` (with ``Retry-After: 0``), ``"reset"`` (the connection
    reset before any reply), ``"cut"`` (the headers promise the whole body
    or range, half of it comes, the connection closes; a GET only),
    ``"stall"`` (no answer at all until the client hangs up), at most
    ``limit`` in all. Paths in ``always`` answer 503 every time; a range of a
    path in ``from_byte`` that starts at or past its byte too (a TIFF's
    tiles, its header read). ``injected`` counts the faults sent, ``times``
    when each path was asked for. Made by :func:`fault_handler`.
    """

    every: dict = {}
    always: frozenset = frozenset()
    from_byte: dict = {}
    limit: float = float("inf")
    retry_after: str = "0"
    injected: collections.Counter
    times: collections.defaultdict
    _numbers: itertools.count
    _lock: threading.Lock

    def _fault(self) -> str | None:
        """The fault this request gets (counted), or None."""
        with self._lock:
            number = next(self._numbers)
            self.times[self.path].append(time.monotonic())
        start = re.match(r"bytes=(\d+)", self.headers.get("Range", ""))
        past = start is not None and int(start[1]) >= self.from_byte.get(self.path, float("inf"))
        if self.path in self.always or past:
            fault = "503"
        elif sum(self.injected.values()) >= self.limit:
            fault = None
        else:
            due = [f for f, n in self.every.items() if number % n == 0]
            due = [f for f in due if f != "cut" or self.command == "GET"]  # a HEAD has no body to cut
            fault = due[0] if due else None
        if fault is not None:
            with self._lock:
                self.injected[fault] += 1
        return fault

    def _answer(self, fault: str) -> None:
        if fault == "stall":  # the request was read whole: the next byte read is the client hanging up
            with contextlib.suppress(OSError):
                self.rfile.read(1)
            self.close_connection = True
            return
        if fault == "reset":  # a close with SO_LINGER 0 sends RST, not FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(int(fault))
        self.send_header("Retry-After", self.retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        fault = self._fault()
        if fault in (None, "cut"):
            self._cut = fault == "cut"
            super().do_GET()
        else:
            self.requests[self.path] += 1
            self._answer(fault)

    def do_HEAD(self):
        fault = self._fault()
        if fault is None:
            super().do_HEAD()
        else:
            self._answer(fault)

    def copyfile(self, source, outputfile):
        if getattr(self, "_cut", False):  # half of what the headers promised, then hang up
            left = self._left if self._left is not None else os.fstat(source.fileno()).st_size - source.tell()
            self._left = left // 2
            super().copyfile(source, outputfile)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
            return
        super().copyfile(source, outputfile)


def fault_handler(
    every: dict, always=(), from_byte=None, limit: float = float("inf"), retry_after: str = "0"
) -> type[FaultHandler]:
    """A :class:`FaultHandler` class of its own (its own counts) injecting faults at the periods ``every``."""
    return type(
        "Faults",
        (FaultHandler,),
        {
            "every": dict(every), "always": frozenset(always), "from_byte": dict(from_byte or {}),
            "limit": limit, "retry_after": retry_after,
            "injected": collections.Counter(), "times": collections.defaultdict(list),
            "_numbers": itertools.count(1), "_lock": threading.Lock(),
        },
    )  # fmt: skip


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client hanging up early
        pass


@contextlib.contextmanager
def http_server(folder, handler=RangeHandler):
    """Serve ``folder`` on 127.0.0.1 while the block lasts; yields ``(url, handler class)``."""
    import functools

    handler.requests, handler.whole = collections.Counter(), collections.Counter()
    handler.sent, handler.ranged = collections.Counter(), collections.Counter()
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
    """:func:`moto_s3` and the environment that finds it (AWS_ENDPOINT_URL, test credentials).

    s3fs's cached file systems are dropped on entry and exit: one made for another server or other
    credentials (test_remote's unsigned reads) would be reused by the next module in the process.
    """
    import pytest
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.MonkeyPatch.context() as env, moto_s3() as endpoint:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_NO_SIGN_REQUEST", raising=False)
        try:
            yield endpoint
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
