"""Store: the zarr v3 group that holds a run's palette and histograms.

Layout (ARCHITECTURE.md, "Store layout"): ``centers`` (k, 3) float32 in the clustering space,
``centers_rgb`` the same as sRGB floats, ``colors`` (k, 3) uint8 as shown,
``counts`` (k,) int64, and per image ``image_names``, ``image_counts``
(n, k), ``image_valid``, ``image_masked``, ``image_status`` (0 pending,
1 done, 2 failed), ``image_errors`` and the squared errors; optionally
``image_palettes`` (n, K, 3) and ``image_palette_shares`` (n, K), each
image's own colours (``per_image=K``), and ``labels/<i>``, an OME-Zarr
label image per input. Every array names its
dimensions, so xarray reads the group too. The group's attributes record the
parameters, the package version, ``batch_size`` and ``complete``, true once
every image is done or failed.

Per-image arrays are chunked by batch: images ``b * batch_size`` to
``(b + 1) * batch_size`` share one chunk of every per-image array, and the
process that drives the run writes each chunk whole, once, when its batch is
finished (statuses last). So a million images make a few hundred files, no
two writers ever touch one chunk, and a run killed at any moment leaves every
batch either stored or pending. Label rasters are written by the tasks that
count their images, each task its own images.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
import zarr.storage

from .._version import __version__
from ..errors import Failure, Status, StoreError
from ..options import MAX_BATCH_SIZE, RunConfig

__all__ = [
    "MAX_BATCH_SIZE",
    "default_batch_size",
    "PENDING",
    "DONE",
    "FAILED",
    "PaletteResult",
    "create_store",
    "check_store_path",
    "is_store",
    "open_store",
    "load_result",
]

PENDING, DONE, FAILED = Status.PENDING, Status.DONE, Status.FAILED
#: By default a run has about this many batches: enough to share among workers, few files in the store.
BATCHES = 32


def default_batch_size(n_images: int) -> int:
    """Images per batch by default: ``n / 32``, from 1 to :data:`MAX_BATCH_SIZE`.

    A million images make 123 batches, so a few hundred files in the store
    and as many tasks per pass; 20,000 make 32. The batching never changes
    a result, only how the work and the store are divided.

    Examples
    --------
    >>> default_batch_size(5), default_batch_size(20_000), default_batch_size(1_000_000)
    (1, 625, 8192)
    """
    return int(min(MAX_BATCH_SIZE, max(1, -(-n_images // BATCHES))))


@dataclass
class PaletteResult:
    """A run's palette and histograms, as read back from its store.

    Attributes
    ----------
    centers : ndarray of float32, shape (k, 3)
        The cluster centres in the clustering space (``attrs["space"]``:
        CIELAB or sRGB 0–255): what every pixel is labelled by.
    centers_rgb : ndarray of float32, shape (k, 3)
        The same centres as sRGB floats, 0–255.
    colors : ndarray of uint8, shape (k, 3)
        The colours shown: ``centers_rgb`` rounded to 8 bits.
    counts : ndarray of int64, shape (k,)
        Valid pixels per colour over all images.
    image_names, image_counts, image_valid, image_masked, image_status, image_errors
        The per-image arrays of the store.
    attrs : dict
        The store's attributes (parameters, version, ``space``, ``complete``, ``inertia``, ``lab_error``...).
    store : str or None
        Path of the store, None when it was in memory.
    image_lab_squared_error : ndarray of float64, shape (n,), or None
        Per image, the sum of squared CIELAB distances to the nearest colour shown.
    image_palettes : ndarray of uint8, shape (n, K, 3), or None
        With ``per_image=K``: each image's own K colours (8-bit sRGB), largest share first.
    image_palette_shares : ndarray of float64, shape (n, K), or None
        Their shares of the image's valid pixels (zero past its distinct colours).
    vocabulary : dict or None
        ``{name: "#rrggbb"}`` the colours are named from (see
        :mod:`palette_dask.outputs.names`); None: the CSS colour names.
    """

    centers: np.ndarray
    centers_rgb: np.ndarray
    colors: np.ndarray
    counts: np.ndarray
    image_names: list[str]
    image_counts: np.ndarray
    image_valid: np.ndarray
    image_masked: np.ndarray
    image_status: np.ndarray
    image_errors: list[str]
    attrs: dict = field(default_factory=dict)
    store: str | None = None
    image_lab_squared_error: np.ndarray | None = None
    vocabulary: dict | None = None
    image_palettes: np.ndarray | None = None
    image_palette_shares: np.ndarray | None = None

    @property
    def k(self) -> int:
        """Number of colours in the palette."""
        return len(self.centers)

    @property
    def config(self) -> RunConfig:
        """The options of the run, as the store records them."""
        return RunConfig.from_parameters(self.attrs.get("parameters", {}))

    @property
    def proportions(self) -> np.ndarray:
        """Share of the valid pixels of each colour (sums to 1)."""
        total = self.counts.sum()
        return self.counts / total if total else np.zeros(len(self.counts))

    @property
    def order(self) -> np.ndarray:
        """Colour indices by share, largest first (ties by index)."""
        return self.ordered("share")

    def ordered(self, by: str = "share") -> np.ndarray:
        """Colour indices by ``share`` (largest first), ``lightness`` (CIELAB L*, dark first) or ``hue``.

        ``hue`` goes round the colour wheel from red; grays (saturation below 0.1) come first, dark to light.
        """
        index = np.arange(self.k)
        if by == "share":
            return np.lexsort((index, -self.counts))
        from skimage.color import rgb2hsv, rgb2lab

        rgb = np.clip(self.centers_rgb.astype(np.float64) / 255.0, 0, 1)[np.newaxis]
        lightness = rgb2lab(rgb)[0, :, 0]
        if by == "lightness":
            return np.lexsort((index, lightness))
        if by == "hue":
            hsv = rgb2hsv(rgb)[0]
            gray = hsv[:, 1] < 0.1
            return np.lexsort((index, lightness, np.where(gray, -1.0, hsv[:, 0])))
        raise ValueError(f"order must be share, lightness or hue, got {by!r}")

    @property
    def image_proportions(self) -> np.ndarray:
        """``(n, k)`` share of each colour in each image (rows of failed images are 0)."""
        valid = np.maximum(self.image_valid, 1)[:, None]
        return self.image_counts / valid

    @property
    def complete(self) -> bool:
        """Whether every image is done or failed."""
        return bool(self.attrs.get("complete", False))

    @property
    def failures(self) -> list[Failure]:
        """Each failed image and why, in input order (``image_errors`` holds each one's whole line)."""
        return [
            Failure.of(name, error)
            for name, error, status in zip(self.image_names, self.image_errors, self.image_status)
            if status == FAILED
        ]

    @property
    def nodata(self) -> dict | None:
        """The no-data value applied: ``{"values": [...], "from": "option" | "inputs"}``, or None.

        The value given (``nodata=``, ``--nodata``), else those the inputs
        declare (GeoTIFF ``GDAL_NODATA``, ``_FillValue``...); NaN as ``"nan"``, for JSON.
        """
        given = self.attrs.get("parameters", {}).get("nodata")
        values = [given] if given is not None else self.attrs.get("nodata_applied") or []
        if not values:
            return None
        shown = ["nan" if math.isnan(v) else (int(v) if float(v).is_integer() else v) for v in values]
        return {"values": shown, "from": "option" if given is not None else "inputs"}

    def palette(self, order: str = "share") -> list[dict]:
        """The palette as a list of dicts, largest share first unless ``order`` says (see :meth:`ordered`).

        Each colour keeps its ``id`` whatever the order: its value in the label
        rasters, and ``id - 1`` its index in ``colors``, ``counts`` and the
        columns of ``image_counts`` and ``image_proportions``. ``name`` is the
        nearest named colour by CIEDE2000 (:attr:`vocabulary`), distinct within
        the palette, and ``name_delta_e`` the CIEDE2000 difference to it
        (over :data:`~palette_dask.outputs.names.FAR`, the colour is only near it).
        """
        from ..kernels.colour import hex_code
        from .names import named_colours

        proportions, names = self.proportions, named_colours(self.colors, self.vocabulary)
        return [
            {
                "id": int(i) + 1,
                "name": names[i][0],
                "name_delta_e": round(names[i][1], 2),
                "hex": hex_code(self.colors[i]),
                "rgb": [float(v) for v in self.centers_rgb[i]],
                "count": int(self.counts[i]),
                "proportion": float(proportions[i]),
            }
            for i in self.ordered(order)
        ]

    def to_dict(self) -> dict:
        """The JSON document of the command line (the README's "Command line")."""
        status = np.asarray(self.image_status)
        done, failed = int((status == DONE).sum()), int((status == FAILED).sum())
        params = self.attrs.get("parameters", {})
        return {
            "k": self.k,
            "k_requested": params.get("k", self.k),
            "space": self.attrs.get("space", "rgb"),
            "store": self.store,
            "complete": self.complete,
            "pixels": {"valid": int(self.counts.sum()), "masked": int(self.image_masked.sum())},
            "nodata": self.nodata,
            "inertia": self.attrs.get("inertia"),
            "lab_error": self.attrs.get("lab_error"),
            "palette": self.palette(),
            "images": {"total": len(self.image_names), "done": done, "failed": failed},
            "failures": [{"image": f.image, "error": f.reason} for f in self.failures],
        }


def _dims(*names):
    return {"dimension_names": list(names)}


def create_store(
    path: str | os.PathLike | None,
    image_names: list[str],
    *,
    attrs: dict,
    overwrite: bool = False,
    batch_size: int | None = None,
) -> zarr.Group:
    """Create the group and its per-image arrays, chunked by batch; ``path=None`` keeps it in memory.

    With ``overwrite``, an existing palette_dask store at ``path`` is replaced;
    anything else there is refused and left untouched (see :func:`check_store_path`).

    Raises
    ------
    StoreError
        When ``path`` exists and is not a store ``overwrite`` may replace.
    """
    check_store_path(path, overwrite=overwrite)
    if path is not None and os.path.lexists(path) and any(Path(path).iterdir()):
        shutil.rmtree(path)  # a palette_dask store, checked just above
    n = len(image_names)
    batch = int(batch_size or default_batch_size(n))
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    attributes = {
        **attrs,
        "palette_dask_version": __version__,
        "created": created,
        "batch_size": batch,
        "complete": False,
    }
    store = zarr.storage.MemoryStore() if path is None else str(path)
    group = zarr.open_group(store, mode="w-", attributes=attributes)  # recognisable from its first write

    def per_image(name, dtype, fill_value):
        return group.create_array(
            name, shape=(n,), chunks=(batch,), dtype=dtype, fill_value=fill_value, **_dims("image")
        )

    names = per_image("image_names", str, "")
    for start in range(0, n, batch):  # a chunk at a time: one long URL must not widen the whole array
        names[start : start + batch] = np.array(image_names[start : start + batch], dtype=object)
    per_image("image_status", "uint8", int(PENDING))
    per_image("image_errors", str, "")
    per_image("image_valid", "int64", 0)
    per_image("image_masked", "int64", 0)
    per_image("image_squared_error", "float64", 0.0)
    per_image("image_lab_squared_error", "float64", 0.0)
    own = int(attrs.get("parameters", {}).get("per_image") or 0)
    if own:  # each image's own palette (per_image=K): its colours and their shares
        group.create_array(
            "image_palettes", shape=(n, own, 3), chunks=(batch, own, 3), dtype="uint8", fill_value=0,
            **_dims("image", "own_color", "channel"),
        )  # fmt: skip
        group.create_array(
            "image_palette_shares", shape=(n, own), chunks=(batch, own), dtype="float64", fill_value=0.0,
            **_dims("image", "own_color"),
        )  # fmt: skip
    return group


def batches(group: zarr.Group) -> list[range]:
    """The store's batches, as ranges of image indices (its chunks along the image axis)."""
    n, batch = group["image_status"].shape[0], group["image_status"].chunks[0]
    return [range(start, min(start + batch, n)) for start in range(0, n, batch)]


def remove_store(path: str | os.PathLike) -> None:
    """Remove a palette_dask store (and only one: anything else at ``path`` is left as it is).

    Its group's ``zarr.json`` goes first: a task still writing a label raster
    into the store sees it gone and removes what it wrote (:func:`task_writes`).
    """
    if is_store(path):
        (Path(path) / "zarr.json").unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)


def remove_remnant(path: str | os.PathLike) -> bool:
    """Remove what tasks killed while writing left of a store this run removed; whether anything went.

    Only a folder that is no store (its group's ``zarr.json`` is gone) and
    holds nothing but what zarr writes (see :func:`check_store_path`) is removed.
    """
    path = Path(path)
    if not path.is_dir() or path.is_symlink() or is_store(path) or _foreign_entry(path) is not None:
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


@contextlib.contextmanager
def task_writes(node: str | os.PathLike):
    """Write under ``node``, a label image of a store (``<store>/labels/<i>``), from a task.

    A task may still be writing when the run that started it stops and
    removes its store (an interrupted run that stored no image). Whatever the
    outcome of the write, if the store's group is gone by its end, the task
    removes the node it wrote and the folders left empty above it, up to
    the store's own: nothing of a removed store is left behind.
    """
    node = Path(node)
    root = node.parent.parent
    try:
        yield
    finally:
        if not (root / "zarr.json").exists():
            shutil.rmtree(node, ignore_errors=True)
            for folder in (node.parent, root):
                try:
                    folder.rmdir()
                except OSError:  # not empty: another task's, which removes it in turn
                    break


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a palette_dask store: a folder with a zarr v3 group of palette_dask's attributes.

    Only the group's ``zarr.json`` is read (as JSON, at most 16 MB); nothing is opened or changed.

    Examples
    --------
    >>> is_store(".")
    False
    """
    metadata = Path(path) / "zarr.json"
    try:
        if Path(path).is_symlink() or metadata.stat().st_size > 2**24:
            return False
        document = json.loads(metadata.read_text())
    except (OSError, ValueError):
        return False
    attributes = document.get("attributes") if isinstance(document, dict) else None
    return (
        document.get("node_type") == "group"
        and isinstance(attributes, dict)
        and "palette_dask_version" in attributes
        and "parameters" in attributes
    )


def _foreign_entry(root: Path) -> str | None:
    """The first entry under a store's folder that zarr did not write there, or None.

    A store holds ``zarr.json`` files (one per group or array), chunk files
    under each array's ``c/`` folder (named by their chunk index), and the
    ``*.partial`` files of interrupted writes; nothing else, and no links.
    """
    for folder, subfolders, files in os.walk(root):
        where = Path(folder).relative_to(root)
        in_chunks = "c" in where.parts
        for name in subfolders:
            if (Path(folder) / name).is_symlink() or (in_chunks and not name.isdigit()):
                return str(where / name)
        for name in files:
            if (Path(folder) / name).is_symlink():
                return str(where / name)
            if name.endswith(".partial") or (name.isdigit() if in_chunks else name == "zarr.json"):
                continue
            return str(where / name)
    return None


def check_store_path(
    path: str | os.PathLike | None, *, overwrite: bool = False, resume: bool = False
) -> None:
    """Refuse, before anything runs, a store path that the run must not create, replace or resume.

    A path that does not exist, or an empty folder, is free. ``resume`` needs a
    palette_dask store there. ``overwrite`` replaces only a palette_dask store
    (recognised by :func:`is_store`) that holds nothing but what zarr wrote: a
    file, a link, a folder of photos or any other folder is refused, untouched.

    Raises
    ------
    StoreError
        Naming the path and the reason, on one line.

    Examples
    --------
    >>> check_store_path("README.md", overwrite=True)
    Traceback (most recent call last):
    ...
    palette_dask.errors.StoreError: README.md: is a file, not a palette_dask store; \
--overwrite only replaces a store made by palette-dask: choose another output
    """
    if path is None or not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path) and not any(Path(path).iterdir()):
        return  # an empty folder: nothing in it to lose
    recognised = is_store(path)
    if resume:
        if not recognised:
            raise StoreError(
                f"{path}: not a palette_dask store; --resume finishes a store made by palette-dask"
            )
        return
    if not overwrite:
        if recognised:
            raise StoreError(
                f"{path}: already exists; pass --overwrite (overwrite=True) to replace it "
                "or --resume (resume=True) to finish it"
            )
        raise StoreError(f"{path}: already exists and is not a palette_dask store: choose another output")
    refusal = "--overwrite only replaces a store made by palette-dask: choose another output"
    if os.path.islink(path):
        raise StoreError(f"{path}: is a symbolic link, not a palette_dask store; {refusal}")
    if not os.path.isdir(path):
        raise StoreError(f"{path}: is a file, not a palette_dask store; {refusal}")
    if not recognised:
        raise StoreError(f"{path}: is a folder that is not a palette_dask store; {refusal}")
    stray = _foreign_entry(Path(path))
    if stray is not None:
        raise StoreError(f"{path}: holds {stray}, which palette-dask did not write; {refusal}")


def remove_partial_writes(path: str | os.PathLike) -> int:
    """Delete the temporary files a killed write left in a store on disk; returns how many.

    zarr writes each chunk to ``<chunk>.<uuid>.partial`` and then renames it, so a
    process killed in between leaves that file behind, never a half-written chunk.
    Only a folder that :func:`is_store` recognises is searched; links are not followed.
    """
    if not is_store(path):
        raise StoreError(f"{path}: not a palette_dask store; its files are left as they are")
    removed = 0
    for folder, _, files in os.walk(path):
        for name in files:
            if name.endswith(".partial"):
                (Path(folder) / name).unlink(missing_ok=True)
                removed += 1
    return removed


def open_store(path: str | os.PathLike, mode: str = "r") -> zarr.Group:
    """Open an existing store, with a clear error when it is not one."""
    if not is_store(path):
        what = "no such folder" if not os.path.lexists(path) else "no palette_dask group there"
        raise StoreError(f"{path}: not a palette_dask store ({what})")
    try:
        group = zarr.open_group(str(path), mode=mode)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        raise StoreError(f"{path}: not a palette_dask store (no zarr group there)") from None
    if "image_status" not in group:
        raise StoreError(f"{path}: not a palette_dask store (no image_status array)")
    return group


def write_palette(group: zarr.Group, centers: np.ndarray, centers_rgb: np.ndarray | None = None) -> None:
    """Write the centres, as sRGB and as colours, and make the (n, k) count array.

    ``centers`` are in the clustering space (CIELAB or sRGB), ``centers_rgb``
    the same centres as sRGB floats 0–255 (default: ``centers``, for a palette
    clustered in sRGB); ``colors`` are those rounded to 8 bits, the colours
    shown. ``centers`` goes last: its presence is what says the palette is complete.
    """
    centers_rgb = centers if centers_rgb is None else centers_rgb
    k = len(centers)
    n, batch = group["image_status"].shape[0], group["image_status"].chunks[0]
    group.create_array(
        "image_counts",
        shape=(n, k),
        chunks=(batch, max(k, 1)),
        dtype="int64",
        fill_value=0,
        overwrite=True,
        **_dims("image", "color"),
    )  # overwrite: what a run stopped while writing the palette left behind
    palette = {"shape": (k, 3), **_dims("color", "channel")}
    group.create_array("colors", dtype="uint8", overwrite=True, **palette)[:] = _rounded(centers_rgb)
    group.create_array("centers_rgb", dtype="float32", overwrite=True, **palette)[:] = centers_rgb
    group.create_array("centers", dtype="float32", **palette)[:] = centers


def _rounded(centers_rgb) -> np.ndarray:
    """The colours shown: sRGB centres rounded to 8 bits."""
    return np.clip(np.rint(np.asarray(centers_rgb, dtype=np.float64)), 0, 255).astype(np.uint8)


#: A label raster with a side longer than this gets a multiscale pyramid ...
PYRAMID_ABOVE = 2048
#: ... of levels halving each side (nearest: every other pixel), down to a level no side of which is longer.
PYRAMID_DOWN_TO = 1024


def label_levels(shape) -> int:
    """How many levels the label raster of an image of this ``(rows, cols, ...)`` shape has.

    Examples
    --------
    >>> label_levels((2048, 900)), label_levels((2600, 2100)), label_levels((100_000, 100_000))
    (1, 3, 8)
    """
    side, levels = max(shape[:2]), 1
    if side <= PYRAMID_ABOVE:
        return 1
    while side > PYRAMID_DOWN_TO:
        side, levels = -(-side // 2), levels + 1
    return levels


def _label_group(labels: zarr.Group, index: int, name: str, colors, levels: int) -> zarr.Group:
    """``labels/<index>``: an OME-Zarr 0.5 label image whose metadata gives each value's palette colour.

    Level ``l`` holds every ``2**l``-th pixel of each row and column of level 0.
    """
    colors = _rounded(colors).astype(int)
    label = labels.require_group(str(index))
    datasets = [
        {"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": [2.0**level] * 2}]}
        for level in range(levels)
    ]
    label.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "name": name,
                "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                "datasets": datasets,
            }
        ],
        "image-label": {
            "version": "0.5",
            "colors": [{"label-value": j + 1, "rgba": [*map(int, c), 255]} for j, c in enumerate(colors)],
            "source": {"image": name},
        },
    }
    return label


def label_dtype(k: int) -> str:
    """The dtype of label rasters for ``k`` colours (values up to k, 0 for masked)."""
    return "uint8" if k < 255 else "uint16"


def create_labels(group: zarr.Group, index: int, image, colors: np.ndarray) -> str:
    """Make ``labels/<index>`` chunked like ``image`` (read tile by tile) for its tasks; returns its path.

    Values are colour index + 1, and 0 for masked pixels. The counting tasks
    write level 0; :func:`write_label_pyramid` the levels above it.
    """
    root = getattr(group.store, "root", None)
    if root is None:
        raise StoreError("label rasters need a store on disk")
    name, levels = str(group["image_names"][index]), label_levels(image.shape)
    label = _label_group(group.require_group("labels"), index, name, colors, levels)
    label.create_array(
        "0",
        shape=image.shape[:2],
        chunks=(image.chunks[0][0], image.chunks[1][0]),
        dtype=label_dtype(len(colors)),
        fill_value=0,
        overwrite=True,
        **_dims("y", "x"),
    )
    return str(Path(root) / "labels" / str(index) / "0")


def write_label_pyramid(level0: str) -> None:
    """Write the levels above a label raster's level 0 (``labels/<i>/0``, written), on the current scheduler.

    Each level is every other pixel of the level below it, read back from the
    store and written in chunks of 1024², each chunk by one task.
    """
    import dask.array as da

    parent = str(Path(level0).parent)
    label = zarr.open_group(parent, mode="r+")
    for level in range(1, len(label.attrs["ome"]["multiscales"][0]["datasets"])):
        below = da.from_zarr(f"{parent}/{level - 1}")
        shape = tuple(-(-n // 2) for n in below.shape)
        chunks = tuple(min(PYRAMID_DOWN_TO, n) for n in shape)
        label.create_array(
            str(level), shape=shape, chunks=chunks, dtype=below.dtype, fill_value=0, overwrite=True,
            **_dims("y", "x"),
        )  # fmt: skip
        da.store(below[::2, ::2].rechunk(chunks), _LevelTarget(f"{parent}/{level}"), lock=False)


@dataclass(frozen=True)
class _LevelTarget:
    """A label pyramid's level as ``dask.array.store``'s target: chunks written by :func:`task_writes`."""

    path: str

    def __setitem__(self, index, block) -> None:
        with task_writes(os.path.dirname(self.path)):
            zarr.open_array(self.path, mode="r+")[index] = block


def write_label_image(root: str, index: int, name: str, labels: np.ndarray, colors) -> None:
    """Write an image decoded whole's label raster and its pyramid to ``labels/<index>`` (in a task)."""
    levels = label_levels(labels.shape)
    with task_writes(f"{root}/labels/{index}"):
        label = _label_group(zarr.open_group(f"{root}/labels", mode="r+"), index, name, colors, levels)
        for level in range(levels):
            step = 2**level
            label.create_array(
                str(level),
                shape=labels[::step, ::step].shape,
                dtype=labels.dtype,
                fill_value=0,
                overwrite=True,
                **_dims("y", "x"),
            )[:] = labels[::step, ::step]


def list_labels(group: zarr.Group) -> None:
    """List the label images under ``labels`` in its metadata, as OME-Zarr readers look for them."""
    if "labels" in group:
        names = sorted(group["labels"].group_keys(), key=int)
        group["labels"].attrs["ome"] = {"version": "0.5", "labels": names}


def write_batch(group: zarr.Group, result) -> None:
    """Write one finished batch: a whole chunk of every per-image array, statuses last.

    ``result`` is a :class:`~palette_dask.kernels.count.BatchCounts`: its rows are
    images ``result.start`` onwards, and its start is a chunk boundary. A
    crash before the statuses are written leaves the batch pending, so
    ``--resume`` counts it again; never half a result marked done.
    """
    rows = slice(result.start, result.start + len(result.status))
    if "image_counts" in group:
        group["image_counts"][rows] = result.counts
    group["image_valid"][rows] = result.counts.sum(axis=1)
    group["image_masked"][rows] = result.masked
    group["image_squared_error"][rows] = result.squared_error
    group["image_lab_squared_error"][rows] = result.lab_squared_error
    group["image_errors"][rows] = np.array(result.errors, dtype=object)
    if result.palettes is not None:
        group["image_palettes"][rows] = result.palettes
        group["image_palette_shares"][rows] = result.palette_shares
    group["image_status"][rows] = result.status


def write_image_failed(group: zarr.Group, index: int, error: str) -> None:
    """Record one failed image and why."""
    group["image_errors"][index] = error
    group["image_status"][index] = FAILED


def finish_store(group: zarr.Group) -> None:
    """Write the global counts, inertia and CIELAB error, and mark the store complete.

    ``lab_error`` is the mean over every valid pixel of the squared CIELAB
    distance (ΔE*ab²) to its nearest palette colour as shown (8-bit sRGB).
    """
    k = group["centers"].shape[0] if "centers" in group else 0
    counts, squared, lab = np.zeros(k, dtype=np.int64), [], []
    for rows in batches(group):  # a chunk at a time: the (n, k) counts are never all in memory
        done = group["image_status"][rows.start : rows.stop] == DONE
        if k:
            counts += group["image_counts"][rows.start : rows.stop][done].sum(axis=0)
        squared.append(group["image_squared_error"][rows.start : rows.stop][done])
        lab.append(group["image_lab_squared_error"][rows.start : rows.stop][done])
    group.create_array("counts", shape=(k,), dtype="int64", overwrite=True, **_dims("color"))[:] = counts
    valid = int(counts.sum())
    list_labels(group)
    inertia, lab_error = (math.fsum(np.concatenate([[], *parts])) for parts in (squared, lab))  # exact sums
    group.attrs.update(
        {
            "inertia": inertia if k else None,
            "lab_error": lab_error / valid if valid else None,
            "complete": True,
        }
    )


def load_result(source: str | os.PathLike | zarr.Group) -> PaletteResult:
    """Read a store back as a :class:`PaletteResult`.

    Examples
    --------
    >>> from palette_dask.kernels.count import BatchCounts, ImageCounts
    >>> group = create_store(None, ["a.png"], attrs={"parameters": {"k": 1}})
    >>> write_palette(group, np.array([[10, 20, 30]], dtype=np.float32))
    >>> batch = BatchCounts.empty(0, 1, 1)
    >>> batch.done(0, ImageCounts(np.array([4]), np.zeros(1), masked=1))
    >>> write_batch(group, batch)
    >>> finish_store(group)
    >>> result = load_result(group)
    >>> result.palette()[0]["hex"], result.to_dict()["pixels"]
    ('#0a141e', {'valid': 4, 'masked': 1})
    """
    group = source if isinstance(source, zarr.Group) else open_store(source)
    n = group["image_status"].shape[0]
    if "centers" in group:
        centers, colors = group["centers"][:], group["colors"][:]
        centers_rgb = group["centers_rgb" if "centers_rgb" in group else "centers"][
            :
        ]  # older sRGB stores: one
        image_counts = group["image_counts"][:]
    else:  # nothing could be fitted
        centers = centers_rgb = np.zeros((0, 3), np.float32)
        colors, image_counts = np.zeros((0, 3), np.uint8), np.zeros((n, 0), np.int64)
    counts = group["counts"][:] if "counts" in group else image_counts.sum(axis=0)
    path = (
        None
        if isinstance(group.store, zarr.storage.MemoryStore)
        else str(getattr(group.store, "root", source))
    )
    return PaletteResult(
        centers=centers,
        centers_rgb=centers_rgb,
        colors=colors,
        counts=counts,
        image_names=[str(s) for s in group["image_names"][:]],
        image_counts=image_counts,
        image_valid=group["image_valid"][:],
        image_masked=group["image_masked"][:],
        image_status=group["image_status"][:],
        image_errors=[str(s) for s in group["image_errors"][:]],
        attrs=dict(group.attrs),
        store=path,
        image_lab_squared_error=(
            group["image_lab_squared_error"][:] if "image_lab_squared_error" in group else None
        ),
        image_palettes=group["image_palettes"][:] if "image_palettes" in group else None,
        image_palette_shares=group["image_palette_shares"][:] if "image_palette_shares" in group else None,
    )
