"""Fetch: http(s) inputs downloaded once per run into a local copy, within a byte cap and a deadline.

A run reads a URL's body once: :func:`local_copy` saves it in the run's
download folder, named by a hash of the URL, and every later reader on the
same host (the header probe, the sampling and counting tasks, the figure and
the report) opens that file. A worker on another host downloads it once for
itself into a folder of the same name.

Each download has one total deadline (:data:`URL_DEADLINE` seconds, however
slowly the bytes come), a byte cap (:data:`URL_MAX_BYTES`), and follows
redirects to http(s) only.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import http.client
import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from .errors import ImageReadError

__all__ = [
    "URL_MAX_BYTES",
    "URL_DEADLINE",
    "is_url",
    "download",
    "local_copy",
    "download_folder",
    "remove_downloads",
]

#: At most this many bytes are downloaded per URL, within this many seconds in all.
URL_MAX_BYTES = 512 * 2**20
URL_DEADLINE = 300.0


def is_url(source: str) -> bool:
    """Whether ``source`` is an http(s) URL.

    Examples
    --------
    >>> is_url("https://example.org/a.png"), is_url("photos/a.png")
    (True, False)
    """
    return urllib.parse.urlsplit(str(source)).scheme.lower() in ("http", "https")


class _Deadline:
    """Shuts down every socket of one download when its time is up, whatever the download is waiting for."""

    def __init__(self, seconds: float):
        self.seconds, self.expired = seconds, False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()

    def connect(self, *args, **kwargs) -> socket.socket:
        """``socket.create_connection``, for a connection that this deadline watches."""
        sock = socket.create_connection(*args, **kwargs)
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def connection(self, kind):
        """An ``http.client`` connection class whose sockets this deadline watches."""

        def make(host, **kwargs):
            connection = kind(host, **kwargs)
            connection._create_connection = self.connect  # what HTTPConnection.connect opens sockets with
            return connection

        return make


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req):
        return self.do_open(self.deadline.connection(http.client.HTTPConnection), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req):
        return self.do_open(self.deadline.connection(http.client.HTTPSConnection), req, context=self._context)


class _RefusedRedirect(Exception):
    pass


class _HTTPOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only (urllib's own handler also follows ftp://)."""

    def http_error_302(self, req, fp, code, msg, headers):
        target = urllib.parse.urljoin(req.full_url, headers.get("location") or headers.get("uri") or "")
        if not is_url(target):
            fp.close()
            raise _RefusedRedirect(target)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def download(
    url: str, path: str | os.PathLike, *, max_bytes: int | None = None, deadline: float | None = None
):
    """Save the body of an http(s) URL to ``path``, or raise :class:`ImageReadError` and save nothing.

    Parameters
    ----------
    max_bytes : int, optional
        Refuse bodies larger than this (default :data:`URL_MAX_BYTES`).
    deadline : float, optional
        Seconds for the whole download, connection and redirects included
        (default :data:`URL_DEADLINE`); a server sending a byte now and then
        is cut off when they are up.
    """
    max_bytes = URL_MAX_BYTES if max_bytes is None else max_bytes
    deadline = URL_DEADLINE if deadline is None else deadline
    if not is_url(url):
        raise ImageReadError(f"{url}: only http and https URLs are read")
    partial = Path(f"{path}.{uuid.uuid4().hex}.download")
    try:
        with _Deadline(deadline) as watch, open(partial, "wb") as out:
            opener = urllib.request.build_opener(
                _HTTPHandler(watch), _HTTPSHandler(watch), _HTTPOnlyRedirects()
            )
            try:
                with opener.open(url, timeout=deadline) as response:
                    received = 0
                    while piece := response.read1(2**20):
                        received += len(piece)
                        if received > max_bytes:
                            raise ImageReadError(f"{url}: larger than the {max_bytes:,}-byte download limit")
                        out.write(piece)
            except _RefusedRedirect as target:
                raise ImageReadError(
                    f"{url}: redirected to {target}, refused: only http(s) is followed"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                if not watch.expired:
                    raise ImageReadError(f"{url}: download failed: {exc}") from None
            if watch.expired:  # a cut connection can look like the end of the body
                raise ImageReadError(f"{url}: download stopped at its deadline of {deadline:g} s")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def local_copy(url: str, folder: str | os.PathLike) -> str:
    """The path of ``url``'s body in ``folder``, downloaded there first unless this host already has it.

    Examples
    --------
    >>> local_copy("file:///etc/passwd", tempfile.gettempdir())
    Traceback (most recent call last):
    ...
    palette_dask.errors.ImageReadError: file:///etc/passwd: only http and https URLs are read
    """
    name = hashlib.sha256(url.encode()).hexdigest()[:32] + Path(urllib.parse.urlsplit(url).path).suffix[:8]
    path = Path(folder) / name
    if not path.is_file():
        if not Path(folder).is_dir():
            Path(folder).mkdir(parents=True, exist_ok=True)
            atexit.register(shutil.rmtree, folder, True)  # a worker on another host cleans up after itself
        download(url, path)
    return str(path)


_process_folder: list[str] = []


def process_folder() -> str:
    """A download folder for this process (removed when it exits), for URLs read outside a run."""
    if not _process_folder:
        _process_folder.append(tempfile.mkdtemp(prefix="palette-dask-urls-"))
        atexit.register(shutil.rmtree, _process_folder[0], True)
    return _process_folder[0]


@contextlib.contextmanager
def download_folder(sources, folder: str | None = None, client=None):
    """The folder a run downloads its URLs into, while the ``with`` block lasts.

    ``folder`` when given (its owner removes it); None when no source is a
    URL; else a new temporary folder, removed afterwards here and, through
    ``client``, on the workers.
    """
    if folder is not None or not any(is_url(source) for source in sources):
        yield folder
        return
    folder = tempfile.mkdtemp(prefix="palette-dask-urls-")
    try:
        yield folder
    finally:
        remove_downloads(folder, client)


def remove_downloads(folder: str | None, client=None) -> None:
    """Remove a download folder on the client's workers (other hosts may hold copies) and here."""
    if folder is None:
        return
    if client is not None:
        with contextlib.suppress(Exception):  # a worker gone away holds nothing any more
            client.run(shutil.rmtree, folder, True)
    shutil.rmtree(folder, ignore_errors=True)
