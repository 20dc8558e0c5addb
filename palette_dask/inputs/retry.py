"""Retry: a transient fault of a remote read or write is tried again, with a capped, jittered backoff.

Object stores and web servers fail now and then and recover: S3 answers 503
"SlowDown" when a prefix is read fast, GCS 429, a server resets a connection
or cuts a body short. A run over 10^5 remote images meets thousands of such
faults. Every request palette_dask makes to a remote input or store is tried
up to :attr:`Retry.tries` times, each within :attr:`Retry.timeout` seconds,
waiting between tries a capped exponential backoff with jitter (or what the
server's ``Retry-After`` asks, up to the cap). A fault on every try fails the
image alone with :class:`~palette_dask.errors.TransientReadError` (the store
records it as transient, and ``--resume`` reads it again); a permanent one (a
404, a corrupt file) is not tried again.

One policy (:func:`current`, from the run's ``tries`` and ``request_timeout``
options; set on every worker by the run), and one loop per request, in the
layer that opens the bytes:

- http(s) bodies downloaded whole (urllib, :func:`~.fetch.download`):
  :func:`call` here, around each download, each try from the first byte
  and within ``timeout`` (a 503's or 429's ``Retry-After`` waited);
- http(s) read by ranges, zarr over http, listings (fsspec's
  ``HTTPFileSystem`` over aiohttp, which retries nothing): :class:`HttpRetry`,
  the aiohttp session's middleware (:func:`http_client_kwargs`, in
  :func:`~.fetch.storage_options`), each try the request and its whole body
  within ``timeout`` (a body buffered only when it is a range or at most
  :data:`BUFFERED_BYTES` long: fsspec asks a file's size by a GET that
  never reads the body, and the whole of a multi-GB file would come), the
  session given no timeout of its own (aiohttp's counts every try
  together) but ``sock_read``, so a body read unbuffered, and so not
  retried, never stalls for ever. aiohttp's resend of an idempotent request on a
  kept-alive connection found closed never comes: the middleware meets that
  fault first. fsspec asks a file's size by a HEAD, then, if that fails, by a
  GET: two requests, each tried ``tries`` times;
- s3 (s3fs over aiobotocore), inputs and stores alike (reads, writes,
  listings, deletes: every s3fs made through
  :func:`~.fetch.storage_options`, zarr's stores too), configured by
  :func:`s3_options`. botocore, ``standard`` retry mode, tries each request
  ``tries`` times in all (``total_max_attempts``) on 500, 502, 503, 504,
  S3's throttling codes (``SlowDown``...), ``RequestTimeout`` and
  connection errors, waiting ``rand() * min(2 ** (n - 1), 20)`` seconds
  (its retry quota, 500 per client, 5 a retry, 10 a timeout's, given back
  when a retry succeeds, stops retrying during a long outage: the image
  then fails as transient sooner); ``connect_timeout`` ``min(timeout, 60)``,
  ``read_timeout`` ``timeout`` (botocore has no deadline for a whole
  request: one is cut when no byte comes for that long). botocore does not
  retry a body cut short or broken once its headers came: s3fs's own loop
  does, :data:`S3FS_TRIES` (2) tries (``S3FileSystem.retries``, set on the
  class for the process: see :func:`s3_options`). That loop also goes round
  botocore's tries once more on a ``SlowDown`` (not a HEAD's, which has no
  code) and on a connection closed with no answer (its two loops nest on a
  read: up to 4 rounds); at s3fs's default of 5 a throttled read was 5 x
  ``tries`` requests, and 25 x on a closed one. aiohttp sends an idempotent request once more when
  a kept-alive connection is found reset. A failure names the tries made
  (:func:`tries_made`: botocore's count, times s3fs's rounds);
- gs (gcsfs) and az (adlfs): their own retries, on their own terms, which
  ``tries`` and ``request_timeout`` do not change: gcsfs tries each request
  6 times on 408, 429, 500-504 and aiohttp's errors (waits of 1, 2, 4... s,
  up to 32); adlfs's azure-storage-blob clients 4 times (``ExponentialRetry``,
  3 retries, waits of about 18, 24 and 42 s) on 408, 429, 500, 502-504 and
  connection errors. A fault that outlasts them fails the image as transient
  all the same (:func:`is_transient` knows gcsfs's and azure-core's errors).

:func:`is_transient` is the one rule of what is transient, for every layer.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..constants import DEFAULT_REQUEST_TIMEOUT, DEFAULT_TRIES
from ..errors import TransientReadError, one_line

__all__ = [
    "TRANSIENT_STATUSES",
    "BUFFERED_BYTES",
    "RESUME",
    "outlasted",
    "Retry",
    "current",
    "use",
    "using",
    "is_transient",
    "retry_after",
    "call",
    "gave_up",
    "S3FS_TRIES",
    "s3_options",
    "tries_made",
    "fault",
    "exhausted",
    "StatusFault",
    "HttpRetry",
    "http_client_kwargs",
]

#: HTTP statuses that may pass: request timeout, too many requests, server errors and overloads.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: S3's error codes for the same (botocore retries them by code, not status).
TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
})  # fmt: skip
#: The longest body the http middleware reads whole within a try (so retries when it comes short) unless
#: it is a range: a longer one is handed on unread (fsspec asks a file's size by a GET it never reads).
BUFFERED_BYTES = 16 * 2**20
_CONNECTION_ERRNOS = frozenset({
    errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
    errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETRESET,
})  # fmt: skip


@dataclass(frozen=True)
class Retry:
    """How a remote request is tried: ``tries`` in all, each within ``timeout`` seconds.

    The wait before try ``n + 1`` is half of ``min(max_wait, first_wait * 2**(n - 1))``
    plus a random share of the other half (so many workers meeting one
    fault spread out), or the server's ``Retry-After``, at most ``max_wait``.

    Examples
    --------
    >>> policy = Retry(tries=4, first_wait=1.0, max_wait=3.0)
    >>> [0.5 <= policy.wait(1) <= 1.0, 1.0 <= policy.wait(2) <= 2.0, 1.5 <= policy.wait(9) <= 3.0]
    [True, True, True]
    >>> policy.wait(1, retry_after=2.0), policy.wait(1, retry_after=60.0)
    (2.0, 3.0)
    """

    tries: int = DEFAULT_TRIES
    timeout: float = DEFAULT_REQUEST_TIMEOUT
    first_wait: float = 0.5
    max_wait: float = 30.0

    @classmethod
    def of(cls, config) -> Retry:
        """The policy of a run's options (``tries``, ``request_timeout``)."""
        return cls(tries=config.tries, timeout=config.request_timeout)

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try ``attempt`` (from 1) before the next."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait)
        step = min(self.max_wait, self.first_wait * 2 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)  # noqa: S311 - jitter, not secrets


_policy = [Retry()]


def current() -> Retry:
    """The policy this process reads and writes remote files with."""
    return _policy[0]


def use(policy: Retry) -> None:
    """Make ``policy`` this process's (a run sets it here and on each of its workers)."""
    _policy[0] = policy


@contextlib.contextmanager
def using(policy: Retry):
    """``policy`` while the ``with`` block lasts, the one before it afterwards."""
    before = current()
    use(policy)
    try:
        yield policy
    finally:
        use(before)


#: Tries of an S3 body cut short or stalled (s3fs's own loop, which botocore's tries go round).
S3FS_TRIES = 2
#: botocore's default connection timeout: an S3 endpoint that takes longer to accept is lost.
S3_CONNECT_TIMEOUT = 60.0


def s3_options(policy: Retry | None = None) -> dict:
    """The s3fs options that try each S3 request ``policy.tries`` times, each within ``policy.timeout``.

    botocore retries: ``standard`` mode (every AWS SDK's, with a retry quota
    per client; ``adaptive`` would also slow every request of the client
    after a throttle, a client-side rate it keeps per process and AWS calls
    experimental: S3 throttles per prefix, and the backoff already spreads
    the workers out), ``total_max_attempts`` the policy's tries. s3fs's own
    loop is set to :data:`S3FS_TRIES` for the process, as botocore does not
    retry a body cut short: ``S3FileSystem.retries`` on the class, as s3fs
    takes it as no option, and an attribute set on an instance would not
    last (fsspec pickles a file system as its options, and a worker makes it
    anew from them; zarr's stores make their own instances). Every process
    of a run sets it (the driver here, each worker by the run's plugin).

    Examples
    --------
    >>> s3_options(Retry(tries=4, timeout=30.0))["config_kwargs"]
    {'retries': {'mode': 'standard', 'total_max_attempts': 4}, 'connect_timeout': 30.0, 'read_timeout': 30.0}
    """
    import s3fs

    policy = policy or current()
    s3fs.S3FileSystem.retries = S3FS_TRIES
    return {
        "config_kwargs": {
            "retries": {"mode": "standard", "total_max_attempts": policy.tries},
            "connect_timeout": min(policy.timeout, S3_CONNECT_TIMEOUT),
            "read_timeout": policy.timeout,
        }
    }


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (a number, or an HTTP date); None when unsaid.

    Examples
    --------
    >>> retry_after("0"), retry_after("2.5"), retry_after(None), retry_after("soon")
    (0.0, 2.5, None, None)
    """
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def _status(exc: BaseException) -> int | None:
    """The HTTP status an error carries (aiohttp, urllib, azure-core, botocore), if any."""
    for attribute in ("status", "code", "status_code"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        value = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return value if isinstance(value, int) else None
    return None


def _transient_alone(exc: BaseException) -> bool:
    if isinstance(exc, TransientReadError):
        return True
    status = _status(exc)
    if status is not None:
        return status in TRANSIENT_STATUSES
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Code") in TRANSIENT_CODES:
        return True
    aiohttp = sys.modules.get("aiohttp")  # none of its errors without it imported
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):
        return _aiohttp_transient(exc)
    if isinstance(exc, socket.gaierror):  # a name not resolved: only "try again later" passes
        return exc.errno == socket.EAI_AGAIN
    if isinstance(exc, (ConnectionError, TimeoutError)):  # resets, refusals, broken pipes; timeouts
        return True
    if isinstance(exc, OSError) and exc.errno in _CONNECTION_ERRNOS:
        return True
    name, module = type(exc).__name__, type(exc).__module__ or ""
    if module.startswith("azure"):  # azure-core: no answer, or one cut or unreadable
        return name in {"ServiceRequestError", "ServiceResponseError", "ServiceRequestTimeoutError",
                        "ServiceResponseTimeoutError"}  # fmt: skip
    if module.startswith("http.client"):
        return name in {"IncompleteRead", "RemoteDisconnected", "BadStatusLine"}
    if module.startswith(("botocore", "aiobotocore")):
        return name in {
            "ConnectionError", "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
            "ConnectTimeoutError", "IncompleteReadError", "ResponseStreamingError", "HTTPClientError",
        }  # fmt: skip
    return module.startswith("fsspec") and name == "FSTimeoutError"


def _aiohttp_transient(exc: BaseException) -> bool:
    """Whether an aiohttp error may pass: connection errors (resets, refusals, timeouts...), bodies cut short.

    By aiohttp's base classes (``ClientConnectionError``, ``ClientPayloadError``),
    so their subclasses count. Not: TLS errors (a certificate refused, a
    fingerprint that differs), a name that does not resolve (but DNS's "try
    again later", ``EAI_AGAIN``), an invalid URL, anything else (a status is
    read before: :data:`TRANSIENT_STATUSES`).
    """
    import aiohttp

    if isinstance(exc, (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch)):
        return False
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, socket.gaierror):
        return exc.os_error.errno == socket.EAI_AGAIN
    return isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError))


def _chain(exc: BaseException | None):
    """``exc`` and the errors it was raised from or while handling, as its traceback shows them.

    ``raise ... from cause`` is followed to its cause; an error raised while
    another was handled to that one, unless ``raise ... from None`` said to
    leave it (a permanent error raised on purpose in an ``except`` for a
    transient one is not transient).

    Examples
    --------
    >>> try:
    ...     try:
    ...         raise ConnectionResetError("reset")
    ...     except OSError:
    ...         raise ValueError("not an image") from None
    ... except ValueError as exc:
    ...     [type(e).__name__ for e in _chain(exc)], is_transient(exc)
    (['ValueError'], False)
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        yield exc
        seen.add(id(exc))
        if exc.__cause__ is not None:
            exc = exc.__cause__
        else:
            exc = None if exc.__suppress_context__ else exc.__context__


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, is a fault that may pass when tried again.

    Transient: the statuses in :data:`TRANSIENT_STATUSES`, S3's
    :data:`TRANSIENT_CODES`, reset, refused or cut connections, bodies cut
    short, timeouts. Not: a missing file, a refused credential, a corrupt
    body, anything else.

    Examples
    --------
    >>> import urllib.error
    >>> is_transient(urllib.error.HTTPError("u", 503, "Slow Down", {}, None))
    True
    >>> is_transient(urllib.error.HTTPError("u", 404, "Not Found", {}, None)), is_transient(ValueError("bad"))
    (False, False)
    >>> try:
    ...     try:
    ...         raise ConnectionResetError(104, "Connection reset by peer")
    ...     except OSError as exc:
    ...         raise RuntimeError("decoding failed") from exc
    ... except RuntimeError as exc:
    ...     is_transient(exc)
    True
    """
    return any(_transient_alone(error) for error in _chain(exc))


def gave_up(what: str, exc: BaseException, tries: int, seconds: float) -> TransientReadError:
    """The error of a request that met a transient fault on each of its ``tries``.

    Examples
    --------
    >>> print(gave_up("https://x/a.png", ConnectionResetError("reset by peer"), 10, 93.4))
    https://x/a.png: reset by peer: a transient fault on each of 10 tries over 93 s (--resume tries it again)
    """
    return _transient_error(what, f"{_reason(what, exc)}: {outlasted(tries, seconds)}")


#: What a transient failure's reason ends with: the run's summary and report add nothing more to it.
RESUME = "(--resume tries it again)"


def outlasted(tries: int, seconds: float | None = None) -> str:
    """The words of a transient fault met on each of ``tries`` (over ``seconds``, when known).

    Examples
    --------
    >>> outlasted(3), outlasted(10, 93.4)
    ('a transient fault on each of 3 tries', 'a transient fault on each of 10 tries over 93 s')
    """
    over = "" if seconds is None else f" over {seconds:.0f} s"
    return f"a transient fault on each of {tries} tries{over}"


def _reason(what: str, exc: BaseException) -> str:
    """``exc``'s one line, without the ``what: `` it may start with."""
    reason = one_line(exc) or type(exc).__name__
    return reason[len(what) + 2 :] if reason.startswith(f"{what}: ") else reason


def _transient_error(what: str, fault: str) -> TransientReadError:
    """The one error of a request for ``what`` that met ``fault`` on each try: ``--resume`` tries it again."""
    return TransientReadError(f"{what}: {fault} {RESUME}")


def _client_error(exc: BaseException | None):
    """The botocore ``ClientError`` in ``exc``'s chain (what s3fs translates into an OSError), or None."""
    return next(
        (e for e in _chain(exc) if isinstance(getattr(e, "response", None), dict) and "Error" in e.response),
        None,
    )


def _body_fault(exc: BaseException | None) -> bool:
    """Whether ``exc``'s chain holds a body cut short or broken once its headers came (aiohttp, botocore)."""
    names = ("ClientPayloadError", "ResponseStreamingError", "IncompleteReadError")
    return any(type(error).__name__ in names for error in _chain(exc))


def tries_made(what: str, exc: BaseException, policy: Retry | None = None) -> int:
    """How many tries the layers below made of the request for ``what`` that raised ``exc``.

    botocore says so in its error (``RetryAttempts``, its retries); s3fs goes
    round botocore's tries once more on a ``SlowDown`` of anything but a
    listing, and tries an S3 body cut short :data:`S3FS_TRIES` times. Any
    other: the policy's tries.

    Examples
    --------
    >>> from botocore.exceptions import ClientError
    >>> answer = {"Code": "SlowDown", "Message": "Please reduce your request rate."}
    >>> throttled = ClientError(
    ...     {"Error": answer, "ResponseMetadata": {"HTTPStatusCode": 503, "RetryAttempts": 2}}, "GetObject"
    ... )
    >>> raised = OSError(16, "Please reduce your request rate.")  # what s3fs raises once botocore gave up
    >>> raised.__cause__ = throttled
    >>> is_transient(raised), tries_made("s3://b/a.tif", raised)
    (True, 6)
    >>> fault("s3://b/a.tif", raised)
    'SlowDown (503): Please reduce your request rate: a transient fault on each of 6 tries'
    """
    error = _client_error(exc)
    if error is None:
        s3 = str(what).lower().startswith("s3://")
        return S3FS_TRIES if s3 and _body_fault(exc) else (policy or current()).tries
    metadata = error.response.get("ResponseMetadata", {})
    made = int(metadata.get("RetryAttempts", 0)) + 1
    code = error.response["Error"].get("Code")
    s3fs_round = code == "SlowDown" and not str(getattr(error, "operation_name", "")).startswith("List")
    return made * S3FS_TRIES if s3fs_round else made


def fault(what: str, exc: BaseException, policy: Retry | None = None) -> str:
    """``exc``, a transient fault that outlasted the tries of the layer that retried it, and those tries.

    S3's code, status and message where S3 answered; else the error's one line.

    Examples
    --------
    >>> fault("s3://b/a.png", ConnectionResetError("reset by peer"), Retry(tries=4))
    'reset by peer: a transient fault on each of 4 tries'
    """
    error = _client_error(exc)
    if error is not None:
        code = error.response["Error"].get("Code") or ""
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.response["Error"].get("Message") or ""
        reason = f"{status} {message}" if code == str(status) else f"{code} ({status}): {message}"
    else:
        reason = _reason(what, exc)
    return f"{reason.rstrip('.')}: {outlasted(tries_made(what, exc, policy))}"


def exhausted(what: str, exc: BaseException, policy: Retry | None = None) -> TransientReadError | None:
    """The error of a request for ``what`` whose transient fault outlasted the tries of the layer below.

    For a request that botocore, s3fs or aiohttp tried (:func:`tries_made`):
    ``what``, the :func:`fault` and that ``--resume`` tries it again; None
    when ``exc`` is no transient fault (:func:`is_transient`).
    """
    if isinstance(exc, TransientReadError):
        return exc
    if not is_transient(exc):
        return None
    given_up = _given_up(exc)  # a loop here gave up (the http middleware), under another error (fsspec's)
    if given_up is not None:
        return TransientReadError(*given_up.args)
    return _transient_error(what, fault(what, exc, policy))


def _given_up(exc: BaseException | None) -> TransientReadError | None:
    """The :class:`TransientReadError` in ``exc``'s chain, or None."""
    return next((error for error in _chain(exc) if isinstance(error, TransientReadError)), None)


def call(what: str, request: Callable[[], object], policy: Retry | None = None):
    """``request()``, tried again after each transient fault (:func:`is_transient`) up to ``policy.tries``.

    A fault may say how long to wait with a ``retry_after`` attribute (seconds).

    Raises
    ------
    TransientReadError
        Naming ``what``, the last fault and the tries, when every try met a transient fault.
    Exception
        Whatever ``request`` raised that is not transient, at once.
    """
    policy = policy or current()
    start = time.monotonic()
    for attempt in range(1, policy.tries + 1):
        try:
            return request()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == policy.tries:
                raise gave_up(what, exc, attempt, time.monotonic() - start) from None
            time.sleep(policy.wait(attempt, getattr(exc, "retry_after", None)))
    raise AssertionError("unreachable")  # pragma: no cover


class StatusFault(Exception):
    """An HTTP answer with a transient status (a 503, a 429...), raised to be tried again.

    ``retry_after`` is the seconds its ``Retry-After`` asked for (None when unsaid), which :func:`call`
    and the http middleware wait.

    Examples
    --------
    >>> fault = StatusFault(503, "Service Unavailable", retry_after=0.0)
    >>> str(fault), is_transient(fault), fault.retry_after
    ('HTTP 503 Service Unavailable', True, 0.0)
    """

    def __init__(self, status: int, reason: str = "", retry_after: float | None = None):
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status, self.reason, self.retry_after = status, reason, retry_after

    def __reduce__(self):
        return type(self), (self.status, self.reason, self.retry_after)


def _replay(body: bytes):
    """An aiohttp stream that gives ``body`` again (the response's own was read to its end)."""
    import asyncio

    from aiohttp import StreamReader
    from aiohttp.base_protocol import BaseProtocol

    loop = asyncio.get_running_loop()
    stream = StreamReader(BaseProtocol(loop), max(len(body), 2**16), loop=loop)  # never paused
    stream.feed_data(body)
    stream.feed_eof()
    return stream


@dataclass(frozen=True)
class HttpRetry:
    """An aiohttp client middleware that tries each request as ``policy`` says: the one loop of fsspec's http.

    A try is the request and its body, within ``policy.timeout`` seconds; it
    meets a transient fault when the answer has a status in
    :data:`TRANSIENT_STATUSES` (its ``Retry-After`` waited), the connection is
    refused, reset or closed, the body comes short of its length, or the time
    is up. The body is read here (so aiohttp's ``ClientPayloadError`` is met
    here) when it is a range (a 206) or says it is at most
    :data:`BUFFERED_BYTES` long; any other is handed on unread, its status
    checked: fsspec asks a file's size by a GET when a HEAD fails (a
    presigned URL's 403, a server's 405) or says no length, and reads none of
    its body, which may be a multi-GB file. Any other answer (a 404, a 403) is
    returned as it came, for fsspec to read.
    After ``policy.tries`` faults: :func:`gave_up`'s
    :class:`~palette_dask.errors.TransientReadError`, which fsspec and zarr
    pass on. A frozen dataclass: picklable with the file systems and zarr
    stores that hold it, and equal (its ``repr`` too, which fsspec's cache of
    file systems keys on) for the same policy.
    """

    policy: Retry

    async def __call__(self, request, handler):
        """The response to ``request`` of the first try without a transient fault."""
        import asyncio

        policy, start = self.policy, time.monotonic()
        for attempt in range(1, policy.tries + 1):
            try:
                response, body = await asyncio.wait_for(self._try(request, handler), policy.timeout)
            except asyncio.TimeoutError as exc:  # the builtin TimeoutError from Python 3.11
                error: Exception = TimeoutError(f"no answer within {policy.timeout:g} s")
                error.__cause__ = exc
            except Exception as exc:  # a cancelled task (BaseException) is not a fault
                if not is_transient(exc):
                    raise
                error = exc
            else:
                if body is not None:  # for those who read the body as a stream (fsspec's streamed files)
                    response.content = _replay(body)
                return response
            if attempt == policy.tries:
                raise gave_up(str(request.url), error, attempt, time.monotonic() - start) from None
            await asyncio.sleep(policy.wait(attempt, getattr(error, "retry_after", None)))
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _try(request, handler):
        """One try: ``(response, body)``, None for a body left unread; a transient status a StatusFault.

        Read: a range's (206) body, or one whose ``Content-Length`` is at most
        :data:`BUFFERED_BYTES`; not a HEAD's, nor one of unknown or larger length.
        """
        response = await handler(request)
        if response.status in TRANSIENT_STATUSES:
            after = retry_after(response.headers.get("Retry-After"))
            response.release()
            raise StatusFault(response.status, response.reason or "", after)
        length = response.content_length
        small = length is not None and length <= BUFFERED_BYTES
        if request.method == "HEAD" or not (response.status == 206 or small):
            return response, None
        return response, await response.read()


def http_client_kwargs(policy: Retry | None = None) -> dict:
    """The aiohttp ``ClientSession`` options for ``policy``: fsspec's ``HTTPFileSystem``'s ``client_kwargs``.

    :class:`HttpRetry` as the session's middleware, and no session-wide
    timeout: aiohttp's counts every try of a request together (the
    middleware gives each try its own). ``sock_read`` is the policy's
    timeout: a body the middleware hands on unread (over
    :data:`BUFFERED_BYTES`) that stalls fails as a transient fault, not for ever.

    Examples
    --------
    >>> options = http_client_kwargs(Retry(tries=4, timeout=30.0))
    >>> options["middlewares"], options["timeout"].total, options["timeout"].sock_read
    ((HttpRetry(policy=Retry(tries=4, timeout=30.0, first_wait=0.5, max_wait=30.0)),), None, 30.0)
    """
    import aiohttp

    policy = policy or current()
    return {
        "middlewares": (HttpRetry(policy),),
        "timeout": aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=None, sock_read=policy.timeout
        ),
    }
