"""The exceptions and warnings palette_dask raises, and the outcome of each image.

Every error palette_dask raises on purpose subclasses :class:`PaletteDaskError`,
which is a :class:`ValueError`, so ``except ValueError`` keeps working. The
messages name the input and the problem on one line, and say what to do when
there is something to do.
"""

from __future__ import annotations

import enum
import functools
from typing import NamedTuple

__all__ = [
    "PaletteDaskError",
    "ParameterError",
    "InputError",
    "ImageReadError",
    "TransientReadError",
    "NoValidPixelsError",
    "StoreError",
    "ClusterError",
    "ClusterLostError",
    "ImageFailedError",
    "RunIncompleteError",
    "one_line",
    "plural",
    "image_error",
    "no_valid_pixels",
    "PaletteDaskWarning",
    "without_context",
    "Failure",
    "Status",
]


class PaletteDaskError(ValueError):
    """Base class of palette_dask's errors."""


class ParameterError(PaletteDaskError):
    """A parameter has an invalid value (``k=0``, a negative sample size...)."""


class InputError(PaletteDaskError):
    """An input cannot be turned into images: missing path, empty directory..."""


class ImageReadError(PaletteDaskError):
    """One image cannot be read or decoded, or has a layout that is not supported."""


class TransientReadError(ImageReadError):
    """A read that met a fault which may pass (a 503, a reset connection, a timeout) on every try.

    The image fails, the store records the failure as transient, and ``--resume`` reads it again.
    """


class NoValidPixelsError(PaletteDaskError):
    """Every pixel is masked (transparent, nodata or NaN)."""


class StoreError(PaletteDaskError):
    """The output store cannot be created, or an existing one would be overwritten."""


class ImageFailedError(PaletteDaskError):
    """An image failed and ``on_error="fail"`` asked to stop there."""


class RunIncompleteError(PaletteDaskError):
    """Workers died under some images; they are left pending and the store incomplete."""


def one_line(exc: BaseException) -> str:
    r"""An error's message on one line, whitespace folded.

    Examples
    --------
    >>> one_line(ValueError("a.tif: bad\n  header"))
    'a.tif: bad header'
    """
    return " ".join(str(exc).split())


def plural(count: int, word: str, words: str | None = None) -> str:
    """``count`` and the word, singular or plural, for messages ("1 image", "2,048 images").

    Examples
    --------
    >>> plural(1, "image"), plural(2048, "batch", "batches"), plural(0, "colour")
    ('1 image', '2,048 batches', '0 colours')
    """
    return f"{count:,} {word if count == 1 else words or word + 's'}"


def image_error(name: str, exc: BaseException) -> str:
    """One line naming the image and the problem: our errors name it already, others get it added.

    Examples
    --------
    >>> image_error("a.png", KeyError("x"))
    "a.png: KeyError: 'x'"
    """
    return one_line(exc if isinstance(exc, PaletteDaskError) else f"{name}: {type(exc).__name__}: {exc}")


class Status(enum.IntEnum):
    """An image's outcome in a run, as ``image_status`` stores it (uint8).

    Stores made before ``FAILED_TRANSIENT`` hold 0 to 2: each of their failures reads as permanent.
    """

    PENDING = 0  # not yet counted (or its batch's workers died)
    DONE = 1  # counted
    FAILED = 2  # could not be read, or had no valid pixel: ``image_errors`` says why
    FAILED_TRANSIENT = 3  # failed on a fault that may pass (a 503, a reset, a timeout): resume reads it again


class Failure(NamedTuple):
    """An image that failed, why, and whether on a fault that may pass; ``str()`` gives ``image: reason``.

    ``transient``: the read met a fault that may pass (a 503, a reset, a
    timeout) on every try; ``--resume`` reads the image again.

    Examples
    --------
    >>> failure = Failure.of("a.png", "a.png: empty file (0 bytes)")
    >>> failure.reason, str(failure), failure.transient
    ('empty file (0 bytes)', 'a.png: empty file (0 bytes)', False)
    """

    image: str
    reason: str
    transient: bool = False

    @classmethod
    def of(cls, image: str, line: str, transient: bool = False) -> Failure:
        """The failure of ``image`` from its one-line error, which names it first (or not)."""
        prefix = f"{image}: "
        return cls(image, line[len(prefix) :] if line.startswith(prefix) else line, bool(transient))

    def __str__(self) -> str:
        return f"{self.image}: {self.reason}"


def no_valid_pixels(name: str) -> NoValidPixelsError:
    """The error of an image whose every pixel is masked."""
    return NoValidPixelsError(f"{name}: no valid pixels (every pixel is transparent, nodata or NaN)")


class PaletteDaskWarning(UserWarning):
    """Something worth knowing that does not stop the run (e.g. a smaller palette)."""


class ClusterError(PaletteDaskError):
    """The dask cluster cannot be reached or started as asked."""


class ClusterLostError(ClusterError):
    """The run lost its scheduler mid-run (killed, preempted, its network gone).

    The store keeps every batch finished before; ``resume`` on a new scheduler finishes it.
    """


def without_context(func):
    """Re-raise palette_dask's errors from ``func`` without their ``__context__``.

    dask.distributed pickles an exception with its whole chain of causes; a
    chained decoder or network error may not pickle (an HTTP error holds its
    socket), and then the worker sends back a bare ``Exception`` instead of
    ours. Functions that run inside tasks raise a clean error instead.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PaletteDaskError as exc:
            error = exc
        error.__context__ = error.__cause__ = None
        raise error

    return wrapper
