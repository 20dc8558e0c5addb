"""A fault-injecting HTTP proxy in front of a server (moto's S3): faults at set rates, each one counted.

Every request is forwarded to the server unless it is the n-th of a fault's
rate (counted over the requests that :attr:`Faults.matches`), which instead
gets one of:

- ``slowdown``: 503 with S3's ``<Error><Code>SlowDown</Code>`` body;
- ``internal``: 500 with S3's ``<Error><Code>InternalError</Code>`` body;
- ``reset``: the connection reset (an RST, nothing answered);
- ``cut``: the server's answer with its full ``Content-Length`` but half its body, then the connection closed
  (a GET's: one due on another request goes to the next GET; an answer without a body passes, uncounted).

Faults are deterministic: the n-th matching request, in the order they
arrive, after the first ``after``. A fault passes (``passes``, as a
transient one does): the request that met one is forwarded when it comes
again (the same method, path and range), whatever else came in between. ``always`` names
paths answered with a fault on every request.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import http.server
import re
import socket
import struct
import threading
import urllib.parse
from dataclasses import dataclass, field

KINDS = ("slowdown", "internal", "reset", "cut")
_S3_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
}


@dataclass
class Faults:
    """What the proxy injects, and what it did.

    Attributes
    ----------
    every : dict
        Fault kind -> n: every n-th matching request gets that fault (the first kind listed wins a tie).
    matches : str
        A regular expression; only requests whose ``METHOD path`` it searches are counted and faulted.
    after : int
        Matching requests forwarded before any fault of ``every``.
    once : str
        A regular expression: no fault of ``every`` before a request whose ``METHOD path`` it searches came
        (and was forwarded).
    passes : bool
        Whether a request that met a fault is forwarded when it comes again.
    always : dict
        A regular expression of paths -> fault kind, answered on every request (counted apart).
    injected : Counter
        Faults injected, by kind.
    requests : Counter
        Requests received, by ``METHOD path``.
    """

    every: dict = field(default_factory=dict)
    matches: str = ""
    after: int = 0
    once: str = ""
    passes: bool = True
    always: dict = field(default_factory=dict)
    injected: collections.Counter = field(default_factory=collections.Counter)
    requests: collections.Counter = field(default_factory=collections.Counter)
    _seen: int = 0
    _cut_owed: bool = False
    _faulted: set = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def choose(self, method: str, path: str, key: tuple) -> str | None:
        """The fault for this request (``key``: method, path and range), or None to forward it."""
        line = f"{method} {path}"
        with self._lock:
            self.requests[line] += 1
            for pattern, kind in self.always.items():
                if re.search(pattern, path):
                    return kind
            if self.once and re.search(self.once, line):
                self.once = ""  # from the next request on
                return None
            if self.once or not self.every or not re.search(self.matches, line):
                return None
            if self.passes and key in self._faulted:
                self._faulted.discard(key)
                return None
            self._seen += 1
            if self._seen <= self.after:
                return None
            for kind, n in self.every.items():
                if (self._seen - self.after) % n == 0:
                    if kind == "cut" and method != "GET":  # no body to cut: the next GET's instead
                        self._cut_owed = True
                        return None
                    return kind
            if self._cut_owed and method == "GET":
                self._cut_owed = False
                return "cut"
        return None

    def count(self, kind: str, key: tuple) -> None:
        """A fault of ``kind`` was injected into the request ``key``."""
        with self._lock:
            self.injected[kind] += 1
            self._faulted.add(key)

    def off(self) -> None:
        """Inject nothing more (what was injected stays counted)."""
        with self._lock:
            self.every, self.always = {}, {}


def _s3_error(kind: str, path: str) -> tuple[int, bytes]:
    status, code, message = _S3_ERRORS[kind]
    resource = urllib.parse.urlsplit(path).path
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><Resource>{resource}</Resource>"
        "<RequestId>4442587FB7D0A2F9</RequestId></Error>"
    )
    return status, body.encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients use it
    upstream: tuple[str, int]
    faults: Faults

    def log_message(self, *args):
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            pieces = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(pieces)
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()

    def _forward(self, body: bytes):
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or body:
            headers["Content-Length"] = str(len(body))
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response, data

    def _handle(self):
        body = self._body()
        key = (self.command, self.path, self.headers.get("Range"))
        kind = self.faults.choose(self.command, self.path, key)
        if kind == "reset":
            self.faults.count(kind, key)
            self._reset()
            return
        if kind in _S3_ERRORS:
            self.faults.count(kind, key)
            status, data = _s3_error(kind, self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        response, data = self._forward(body)
        cut = kind == "cut" and self.command != "HEAD" and len(data) >= 2
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if self.command == "HEAD":
            return
        if cut:
            self.faults.count(kind, key)
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._reset()
            return
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client hanging up, a reset we made
        pass


@contextlib.contextmanager
def fault_proxy(upstream: str, faults: Faults):
    """A proxy on 127.0.0.1 to ``upstream`` (``http://host:port``) injecting ``faults``; yields its URL."""
    parts = urllib.parse.urlsplit(upstream)
    handler = type("Handler", (_Handler,), {"upstream": (parts.hostname, parts.port), "faults": faults})
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
