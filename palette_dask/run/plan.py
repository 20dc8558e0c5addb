"""Plan: a run's checks, made once for every shell, before any cluster starts.

:func:`plan_run` classifies the inputs (once), checks the options and how
they combine, the store path, the label outputs asked for, and reads a
palette to apply: everything that can be known without a worker. The API
(:func:`~palette_dask.run.pipeline.extract_palette`) and the command line
both call it; the command line only spells the errors with its flags
(:func:`palette_dask.options.spelled_as_flags`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..constants import DEFAULT_K
from ..errors import ParameterError, plural
from ..options import RunConfig, spell
from ..outputs import store as stores
from ..outputs.geotiff import check_geotiff_folder
from ..outputs.palettes import GivenPalette, read_palette
from ..outputs.source_labels import check_source_labels
from .state import split_inputs

__all__ = ["Plan", "plan_run"]


@dataclass(frozen=True)
class Plan:
    """A run that passed every check that needs no cluster: what :func:`~.pipeline.run_plan` carries out.

    Attributes
    ----------
    names, arrays, zarr
        The inputs: every image's name, the arrays given from Python by
        their index, the names that are zarr nodes (see :func:`~.state.split_inputs`).
    config : RunConfig
        The options, checked.
    explicit : frozenset of str
        The options the caller set (an appended store's parameters must agree with them).
    given : GivenPalette or None
        The palette to apply, read (``palette=``), or None to fit one.
    store, overwrite, resume, append, labels_geotiff, source_labels
        Where the store goes and what the run does with it, as given.
    """

    names: list
    arrays: dict
    zarr: frozenset
    config: RunConfig
    explicit: frozenset
    given: GivenPalette | None
    store: str | os.PathLike | None
    overwrite: bool
    resume: bool
    append: bool
    labels_geotiff: str | os.PathLike | None
    source_labels: str | None


def plan_run(
    inputs,
    k: int | None = None,
    *,
    store: str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: bool = False,
    append: bool = False,
    labels_geotiff: str | os.PathLike | None = None,
    source_labels: str | None = None,
    **options,
) -> Plan:
    """Check a run before it starts: inputs, options, store, outputs, the palette to apply.

    Takes what :func:`~.pipeline.extract_palette` takes, but a client, a
    reporter and a download folder.

    Raises
    ------
    ParameterError, InputError, StoreError
        One line, naming the option (as the shell spells it) or the path.
    """
    # what the caller set: an appended store's own parameters must agree with them
    asked = labels_geotiff is not None or source_labels is not None  # label rasters, in other forms too
    explicit = set(options) | ({"k"} if k is not None else set()) | ({"labels"} if asked else set())
    own_labels = bool(options.pop("labels", False))
    labels = own_labels or asked
    if store is None and (labels or append or resume):
        needs = (
            "resume" if resume else "append" if append
            else "source_labels" if source_labels is not None and not own_labels
            else "labels"
        )  # fmt: skip
        raise ParameterError(
            f"{spell(needs)} needs a store: {spell('store')} (without it the results are kept in memory only)"
        )
    if append and (overwrite or resume):
        raise ParameterError(
            f"{spell('append')} adds to a store: not with {spell('resume')} or {spell('overwrite')}"
        )
    if append and source_labels is not None:  # the store's earlier inputs were never checked for it
        raise ParameterError(
            f"{spell('source_labels')} writes into the inputs of one run: not with {spell('append')}"
        )
    stores.check_store_path(store, overwrite=overwrite, resume=resume, append=append)
    given = None
    if options.get("palette") is not None and not append:  # applied, not fitted: its colours, its space
        resumed = resume and stores.is_store(store)  # holds the palette it applied
        source = store if resumed and "centers" in stores.open_store(store) else options["palette"]
        given = read_palette(source, options.get("space", "lab"))
        k, options["space"] = _palette_k(k, given), given.space
        if options.get("scale") in ("minmax", "percentile"):
            raise ParameterError(
                f"scale={options['scale']!r} is measured on a run's own sample; with a palette applied, "
                "give the display range: scale='dtype' or (low, high), or none: a store's own, with its range"
            )
        if "scale" not in options and given.scale is not None:  # a store's data shown as it showed them
            options["scale"] = given.scale
    config = RunConfig(k=DEFAULT_K if k is None else k, labels=labels, **options)
    names, arrays, zarr = split_inputs(inputs)
    if append and arrays:
        raise ParameterError(
            f"{spell('append')} adds image files and URLs; arrays given from Python cannot be"
        )
    replace = overwrite or resume or append
    if labels_geotiff is not None:
        check_geotiff_folder(labels_geotiff, names, replace=replace)
    if source_labels is not None:
        check_source_labels(names, source_labels, replace=replace)
    return Plan(
        names, arrays, zarr, config, frozenset(explicit), given,
        store, overwrite, resume, append, labels_geotiff, source_labels,
    )  # fmt: skip


def _palette_k(k: int | None, given: GivenPalette) -> int:
    """The ``k`` of a run applying ``given``: its number of colours (``k`` not given, or equal)."""
    if k not in (None, len(given.centers)):
        raise ParameterError(
            f"k={k}, but the palette of {given.source} has {plural(len(given.centers), 'colour')}; "
            "a palette applied gives k"
        )
    return len(given.centers)
