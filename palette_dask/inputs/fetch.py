"""Fetch: remote inputs (s3://, gs://, az://, http(s)://), read by byte ranges or downloaded once per run.

Remote files are read through fsspec (s3fs, gcsfs, adlfs, aiohttp), with
credentials and endpoints found the usual way: ``AWS_*`` variables and
profiles, ``AWS_ENDPOINT_URL`` for S3-compatible stores (MinIO, Ceph, moto),
``AWS_NO_SIGN_REQUEST=YES`` (or no credentials at all) for public buckets.

- zarr and OME-Zarr stores are opened by zarr itself over fsspec: each task
  fetches the chunks it reads;
- TIFFs (``.tif``, ``.tiff``; Cloud-Optimized GeoTIFF, any tiled TIFF) are
  read by byte ranges (:func:`open_url`): the header, then only the tiles a
  task decodes, by the worker that decodes them;
- any other file (PNG, JPEG...) must be decoded whole, so a run reads its
  body once: :func:`local_copy` saves it in the run's download folder, named
  by a hash of the URL, and every later reader on the same host opens that
  file. A worker on another host downloads it once for itself into a folder
  of the same name. Each download has a byte cap (:data:`URL_MAX_BYTES`);
  over http(s), a deadline for each try (the retry policy's ``timeout``,
  however slowly the bytes come), and redirects followed to http(s) only.

A transient fault (a 503, a reset, a body cut short...) is tried again as
:mod:`.retry` says: a download by :func:`retry.call`, a read by ranges or a
zarr chunk over http by fsspec's aiohttp session with :class:`.retry.HttpRetry`
as its middleware (:func:`storage_options`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import http.client
import os
import shutil
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from ..errors import ImageReadError, TransientReadError, one_line
from . import retry

__all__ = [
    "URL_MAX_BYTES",
    "URL_SCHEMES",
    "is_url",
    "storage_options",
    "filesystem",
    "open_url",
    "serves_ranges",
    "download",
    "local_copy",
    "download_folder",
    "remove_downloads",
]

#: At most this many bytes are downloaded per URL.
URL_MAX_BYTES = 512 * 2**20


#: The URL schemes read, and the package fsspec reads each with.
URL_SCHEMES = {
    "http": "aiohttp", "https": "aiohttp", "s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs",
    "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs",
}  # fmt: skip
_SCHEMES_READ = "http(s), s3, gs and az"  # abfs(s) and gcs too, the same as az and gs
#: File name endings read by byte ranges when remote: TIFFs, whose tiles can be fetched alone.
RANGE_SUFFIXES = (".tif", ".tiff")
#: Bytes fetched past each read of a remote file (GDAL reads a TIFF's first 16 kB the same way): a
#: header in a request or two, little waste per tile.
READ_AHEAD = 2**14


def scheme(source: str) -> str:
    """The URL scheme of ``source``, lower case; ``""`` for a path."""
    return urllib.parse.urlsplit(str(source)).scheme.lower()


def is_url(source) -> bool:
    """Whether ``source`` is a URL that palette_dask reads or writes (http, https, s3, gs, az...).

    The one rule, for inputs and stores alike: anything else is a path (an
    input's :class:`~.source.Source` records the answer, ``Source.remote``).

    Examples
    --------
    >>> is_url("https://example.org/a.png"), is_url("s3://bucket/scene.tif"), is_url("photos/a.png")
    (True, True, False)
    """
    text = str(source)
    return "://" in text and scheme(text) in URL_SCHEMES


def is_http(source: str) -> bool:
    """Whether ``source`` is an http(s) URL."""
    return scheme(source) in ("http", "https")


def check_scheme(url: str) -> None:
    """Raise :class:`ImageReadError` naming the package to install when ``url``'s scheme cannot be read here.

    Examples
    --------
    >>> check_scheme("https://example.org/a.png")
    >>> try:
    ...     check_scheme("ftp://x/a.png")
    ... except ImageReadError as exc:
    ...     print(exc)
    ftp://x/a.png: unsupported URL scheme 'ftp'; only http(s), s3, gs and az URLs are read
    """
    import fsspec

    name = scheme(url)
    if name not in URL_SCHEMES:
        raise ImageReadError(f"{url}: unsupported URL scheme {name!r}; only {_SCHEMES_READ} URLs are read")
    try:
        fsspec.get_filesystem_class(name)
    except ImportError:
        raise ImageReadError(
            f"{url}: reading {name}:// URLs needs the package {URL_SCHEMES[name]} (pip install "
            f"{URL_SCHEMES[name]}, or palette-dask[cloud])"
        ) from None


def _anonymous_s3() -> bool:
    """Whether S3 is read without signing: ``AWS_NO_SIGN_REQUEST=YES``, or no credentials to be found."""
    if os.environ.get("AWS_NO_SIGN_REQUEST", "").lower() in ("1", "yes", "true"):
        return True
    return not _has_aws_credentials()


@functools.cache
def _has_aws_credentials() -> bool:
    import botocore.session

    return botocore.session.get_session().get_credentials() is not None


def storage_options(url: str) -> dict:
    """The fsspec options for ``url``: S3's retries (unsigned for public buckets), http(s)'s middleware."""
    if scheme(url) == "s3":  # the run's tries and timeouts, by botocore and s3fs (retry.s3_options)
        options = retry.s3_options(retry.current())
        return {**options, "anon": True} if _anonymous_s3() else options
    if is_http(url):  # the run's tries, each within its timeout, by an aiohttp middleware
        return {"client_kwargs": retry.http_client_kwargs(retry.current())}
    return {}


def filesystem(url: str):
    """``(fs, path)``: the fsspec file system that reads ``url``, and the path within it."""
    import fsspec

    check_scheme(url)
    return fsspec.core.url_to_fs(url, **storage_options(url))


@functools.lru_cache(maxsize=4096)
def serves_ranges(url: str) -> bool:
    """Whether byte ranges of a remote TIFF can be read: object stores can; an http server may not.

    Bytes 2-3 read by a range request must be bytes 2-3 of the file's start (a
    server that ignores ranges sends the start instead, or the whole body).
    Such a server's file is read from a local copy, downloaded once. Asked
    once per URL and process; a transient fault that outlasts its tries is
    raised (:class:`~palette_dask.errors.TransientReadError`), its answer not kept.
    """
    if not is_http(url):
        return True
    try:
        with open_url(url) as handle:
            handle.seek(2)
            middle = handle.read(2)
        with open_url(url) as handle:
            head = handle.read(4)
    except Exception as exc:
        transient = retry.exhausted(url, exc)
        if transient is not None:
            raise transient from None
        # fsspec: "The HTTP server doesn't appear to support range requests"; any other failure:
        # reading it will say what
        return not isinstance(exc, ValueError)
    return middle == head[2:4]


def open_url(url: str, block_size: int = READ_AHEAD):
    """A seekable binary file over a remote file: a read fetches its byte range and ``block_size`` more.

    Raises
    ------
    ImageReadError
        When the file is missing or cannot be opened, in one line.
    """
    fs, path = filesystem(url)
    try:
        return fs.open(path, "rb", block_size=block_size, cache_type="readahead")
    except Exception as exc:  # credentials, network, a server without range requests...
        # a fault that outlasted the tries of botocore, s3fs or the http middleware (fsspec's http
        # answers a HEAD and a GET that gave up with a FileNotFoundError)
        transient = retry.exhausted(url, exc)
        if transient is not None:
            raise transient from None
        if isinstance(exc, FileNotFoundError):
            raise ImageReadError(f"{url}: no such file") from None
        if isinstance(exc, IsADirectoryError):
            raise ImageReadError(f"{url}: is a directory, not an image") from None
        raise ImageReadError(f"{url}: cannot open: {one_line(exc) or type(exc).__name__}") from None


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
        if not is_http(target):
            fp.close()
            raise _RefusedRedirect(target)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def download(
    url: str, path: str | os.PathLike, *, max_bytes: int | None = None, deadline: float | None = None
):
    """Save the body of a URL to ``path``, or raise :class:`ImageReadError` and save nothing.

    Parameters
    ----------
    max_bytes : int, optional
        Refuse bodies larger than this (default :data:`URL_MAX_BYTES`).
    deadline : float, optional
        For http(s): seconds for each try of the whole download, connection
        and redirects included (default: the retry policy's ``timeout``,
        :func:`retry.current`); a server sending a byte now and then is cut
        off when they are up.

    Raises
    ------
    TransientReadError
        When every try (the policy's ``tries``) met a transient fault: a 408,
        429 (its ``Retry-After`` waited), 500, 502, 503 or 504, a reset or
        refused connection, a body cut short, the deadline.
    ImageReadError
        At once on any other fault (a 404, a 403, a body over ``max_bytes``).
    """
    max_bytes = URL_MAX_BYTES if max_bytes is None else max_bytes
    deadline = retry.current().timeout if deadline is None else deadline
    if not is_url(url):
        raise ImageReadError(f"{url}: only {_SCHEMES_READ} URLs are read")
    partial = Path(f"{path}.{uuid.uuid4().hex}.download")
    try:
        with open(partial, "wb") as out:
            if is_http(url):
                _download_http(url, out, max_bytes, deadline)
            else:
                _download_object(url, out, max_bytes)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _too_big(url: str, max_bytes: int) -> ImageReadError:
    return ImageReadError(f"{url}: larger than the {max_bytes:,}-byte download limit")


def _download_object(url: str, out, max_bytes: int) -> None:
    """An object store's file, by fsspec, in pieces of a MB."""
    with open_url(url, block_size=2**20) as remote:
        if remote.size is not None and remote.size > max_bytes:
            raise _too_big(url, max_bytes)
        try:
            while piece := remote.read(2**20):
                out.write(piece)
        except Exception as exc:
            transient = retry.exhausted(url, exc)
            if transient is not None:
                raise transient from None
            raise ImageReadError(f"{url}: download failed: {one_line(exc) or type(exc).__name__}") from None


def _download_http(url: str, out, max_bytes: int, deadline: float) -> None:
    """A URL's body into ``out``, each try (:func:`retry.call`) from the start and within ``deadline``."""

    def attempt():
        out.seek(0)
        out.truncate()
        _download_http_once(url, out, max_bytes, deadline)

    retry.call(url, attempt)


def _download_http_once(url: str, out, max_bytes: int, deadline: float) -> None:
    """One try: a transient fault raises :class:`TransientReadError` (with the ``retry_after`` asked)."""
    with _Deadline(deadline) as watch:
        opener = urllib.request.build_opener(_HTTPHandler(watch), _HTTPSHandler(watch), _HTTPOnlyRedirects())
        try:
            with opener.open(url, timeout=deadline) as response:
                received = 0
                while piece := response.read1(2**20):
                    received += len(piece)
                    if received > max_bytes:
                        raise _too_big(url, max_bytes)
                    out.write(piece)
                missing = response.length  # what the server promised and did not send (None: unsaid)
        except _RefusedRedirect as target:
            raise ImageReadError(
                f"{url}: redirected to {target}, refused: only http(s) is followed"
            ) from None
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code not in retry.TRANSIENT_STATUSES:
                raise ImageReadError(f"{url}: download failed: {exc}") from None
            error = TransientReadError(f"{url}: download failed: {exc}")
            error.retry_after = retry.retry_after(exc.headers.get("Retry-After"))
            raise error from None
        except (OSError, http.client.HTTPException) as exc:
            if not watch.expired:
                reason = getattr(exc, "reason", None)  # urllib's URLError holds the socket's error
                transient = retry.is_transient(exc) or (
                    isinstance(reason, BaseException) and retry.is_transient(reason)
                )
                error_class = TransientReadError if transient else ImageReadError
                raise error_class(f"{url}: download failed: {one_line(exc) or type(exc).__name__}") from None
        if watch.expired:  # a cut connection can look like the end of the body
            raise TransientReadError(f"{url}: download stopped at its deadline of {deadline:g} s")
        if missing:  # http.client ends a body the server cut short without an error
            raise TransientReadError(
                f"{url}: download cut short: the connection closed after {received:,} of "
                f"{received + missing:,} bytes"
            )


def local_copy(url: str, folder: str | os.PathLike) -> str:
    """The path of ``url``'s body in ``folder``, downloaded there first unless this host already has it.

    Examples
    --------
    >>> local_copy("file:///etc/passwd", tempfile.gettempdir())
    Traceback (most recent call last):
    ...
    palette_dask.errors.ImageReadError: file:///etc/passwd: only http(s), s3, gs and az URLs are read
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
