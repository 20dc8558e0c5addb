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
  :func:`call` here, around each download;
- http(s) read by ranges, zarr over http, listings (fsspec's
  ``HTTPFileSystem`` over aiohttp, which retries nothing): an aiohttp client
  middleware, :func:`http_client_kwargs`;
- s3 (s3fs over aiobotocore): botocore's own retries, configured by
  :func:`s3_options`;
- gs (gcsfs) and az (adlfs): their own retries (gcsfs retries 408, 429, 5xx
  and connection errors 6 times; azure-core's exponential policy 10 times),
  left as they are.

:func:`is_transient` is the one rule of what is transient, for every layer.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..constants import DEFAULT_REQUEST_TIMEOUT, DEFAULT_TRIES
from ..errors import TransientReadError, one_line

__all__ = [
    "TRANSIENT_STATUSES",
    "Retry",
    "current",
    "use",
    "using",
    "is_transient",
    "retry_after",
    "call",
    "gave_up",
]

#: HTTP statuses that may pass: request timeout, too many requests, server errors and overloads.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: S3's error codes for the same (botocore retries them by code, not status).
TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
})  # fmt: skip
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
    """The HTTP status an error carries (aiohttp, urllib, botocore), if any."""
    for attribute in ("status", "code"):
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
    if isinstance(exc, (ConnectionError, TimeoutError)):  # resets, refusals, broken pipes; timeouts
        return True
    if isinstance(exc, OSError) and exc.errno in _CONNECTION_ERRNOS:
        return True
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if module.startswith("aiohttp"):  # payload cut short, server disconnected, connection errors
        return name in {
            "ClientPayloadError", "ServerDisconnectedError", "ClientConnectionError", "ClientOSError",
            "ClientConnectorError", "ServerTimeoutError", "ConnectionTimeoutError",
            "SocketTimeoutError", "ClientConnectionResetError",
        }  # fmt: skip
    if module.startswith("http.client"):
        return name in {"IncompleteRead", "RemoteDisconnected", "BadStatusLine"}
    if module.startswith(("botocore", "aiobotocore")):
        return name in {
            "ConnectionError", "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
            "ConnectTimeoutError", "IncompleteReadError", "ResponseStreamingError", "HTTPClientError",
        }  # fmt: skip
    return module.startswith("fsspec") and name == "FSTimeoutError"


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
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if _transient_alone(exc):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def gave_up(what: str, exc: BaseException, tries: int, seconds: float) -> TransientReadError:
    """The error of a request that met a transient fault on each of its ``tries``.

    Examples
    --------
    >>> print(gave_up("https://x/a.png", ConnectionResetError("reset by peer"), 10, 93.4))
    https://x/a.png: reset by peer: a transient fault on each of 10 tries over 93 s (--resume tries it again)
    """
    reason = one_line(exc) or type(exc).__name__
    if reason.startswith(f"{what}: "):
        reason = reason[len(what) + 2 :]
    return TransientReadError(
        f"{what}: {reason}: a transient fault on each of {tries} tries over {seconds:.0f} s "
        "(--resume tries it again)"
    )


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
