"""The ``palette-dask`` command's arguments: its subcommands and their flags.

The run's options come from their one declaration (:func:`~palette_dask.options.add_arguments`);
what is here is the command line's own: subcommands, inputs, outputs, the cluster.
"""

from __future__ import annotations

import argparse

from ._version import __version__
from .options import add_arguments, non_negative, share, whole_number

__all__ = ["UsageError", "build_parser"]


class UsageError(Exception):
    """A command line the parser refuses: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UsageError(f"{self.prog}: {message} (see --help)")


_positive_int = whole_number(1)


def _k_range(text: str) -> range:
    """``2..16`` → range(2, 17): at least three values, from 1."""
    try:
        low, high = (int(part) for part in text.split(".."))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW..HIGH such as 2..16, got {text!r}") from None
    if low < 1 or high - low < 2:
        raise argparse.ArgumentTypeError(
            f"expected LOW..HIGH with 1 <= LOW and at least 3 values, got {text!r}"
        )
    return range(low, high + 1)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``palette-dask`` and its subcommands (run, show, sweep, report, search, demo)."""
    parser = _Parser(
        prog="palette-dask", description="Dominant colours of huge images and large collections."
    )
    parser.add_argument("--version", action="version", version=f"palette-dask {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    common.add_argument("-v", "--verbose", action="store_true", help="tracebacks and dask logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", parents=[common], help="find the palette of images and store it")
    run.add_argument(
        "inputs", nargs="*", metavar="INPUT",
        help="image file, directory, glob, list file, zarr array or URL; none with --resume STORE",
    )  # fmt: skip
    _add_run_options(run, default_store=None)
    run.add_argument(
        "--append", action="store_true",
        help="add the inputs to the store -o names and count them with its palette and parameters",
    )  # fmt: skip

    show = sub.add_parser("show", parents=[common], help="print the palette of a store")
    show.add_argument("store", metavar="OUT.zarr")
    show.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    show.add_argument("--png", metavar="BAR.png", help="also write the palette bar as PNG")
    show.add_argument(
        "--images", action="store_true", help="every image's share of each colour id (and failures' errors)"
    )
    show.add_argument(
        "--csv", metavar="FILE.csv", help="write every image's shares as CSV (implies --images)"
    )
    _add_palette_options(show)

    sweep = sub.add_parser(
        "sweep", parents=[common], help="fit the sample for a range of k and suggest one (nothing stored)"
    )
    sweep.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image file, directory, glob, list file, zarr array or URL"
    )
    sweep.add_argument(
        "-k", type=_k_range, default=range(2, 17), metavar="LOW..HIGH", help="values of k (default: 2..16)"
    )
    _add_input_options(sweep)
    sweep.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    sweep.add_argument("--png", metavar="CURVE.png", help="also draw the inertia curve as PNG")

    report = sub.add_parser("report", parents=[common], help="write the HTML report of a store")
    report.add_argument("store", metavar="OUT.zarr")
    report.add_argument(
        "-o", "--out", default="report.html", metavar="REPORT.html", help="where (default: %(default)s)"
    )

    search = sub.add_parser(
        "search", parents=[common], help="the images of a store where a colour covers a share, most first"
    )
    search.add_argument("store", metavar="OUT.zarr")
    search.add_argument(
        "--colour", "--color", required=True, metavar="COLOUR", help="#rrggbb or a colour name"
    )
    search.add_argument(
        "--within", type=non_negative, default=10.0, metavar="DE", help="CIEDE2000 distance (default: 10)"
    )
    search.add_argument(
        "--min-share",
        type=share,
        default=0.2,
        metavar="S",
        help="least share of an image, 0-1 (default: 0.2)",
    )
    search.add_argument("--top", type=_positive_int, metavar="N", help="the N images with the largest shares")
    search.add_argument("--names", metavar="FILE", help="colour names for --colour (default: the CSS names)")
    search.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    compare = sub.add_parser(
        "compare", parents=[common],
        help="each colour's share in stores that share a palette (--palette), or in the dates of one store",
    )  # fmt: skip
    compare.add_argument(
        "stores", nargs="+", metavar="STORE.zarr",
        help="two or more, the first's palette; or one whose images have dates (STAC items): its days",
    )  # fmt: skip
    compare.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    compare.add_argument("--csv", metavar="FILE.csv", help="also write the table as CSV")
    compare.add_argument("--names", metavar="FILE", help="colour names (default: the CSS names)")
    demo = sub.add_parser("demo", parents=[common], help="run on the sample photos shipped with scikit-image")
    _add_run_options(demo, default_store=False)
    demo.add_argument(
        "--out", default="palette-demo", metavar="DIR", help="output folder (default: %(default)s)"
    )
    return parser


def _export_path(text: str) -> str:
    if not text.lower().endswith((".json", ".csv", ".gpl")):
        raise argparse.ArgumentTypeError(f"the file must end in .json, .csv or .gpl, got {text!r}")
    return text


def _add_palette_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--names",
        metavar="FILE",
        help="name the colours from FILE (a name and a #rrggbb code per line; default: the CSS colour names)",
    )
    parser.add_argument(
        "--order",
        choices=("share", "lightness", "hue"),
        default="share",
        help="palette order (default: share)",
    )
    parser.add_argument(
        "--export",
        action="append",
        default=[],
        type=_export_path,
        metavar="FILE",
        help="write the palette as .json, .csv or .gpl (GIMP, Inkscape); repeatable",
    )


def _add_run_options(parser: argparse.ArgumentParser, *, default_store: str | None | bool) -> None:
    """The options of ``run`` and ``demo``: those of every stage, and the outputs."""
    add_arguments(parser, "run")
    if default_store is not False:
        parser.add_argument(
            "-o", "--out", default=default_store, metavar="OUT.zarr",
            help="zarr store to keep the results in (default: none, the results are printed only)",
        )  # fmt: skip
    _add_input_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument(
        "--resume", action="store_true", help="finish the pending images of an existing store"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store")
    parser.add_argument("--png", metavar="BAR.png", help="also write the palette bar as PNG")
    _add_palette_options(parser)
    parser.add_argument(
        "--figure", metavar="FIG.png", help="also write the image (the first done) beside its palette bar"
    )
    parser.add_argument(
        "--html", metavar="REPORT.html", help="also write a self-contained HTML report with previews"
    )
    parser.add_argument(
        "--labels-geotiff",
        metavar="DIR",
        help="also write each label raster as a GeoTIFF in DIR, georeferenced (implies --labels)",
    )
    parser.add_argument(
        "--source-labels",
        metavar="NAME",
        help="also write each OME-Zarr input's labels into it, as its labels/NAME (implies --labels)",
    )


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    """How inputs are read and sampled, and where the work runs: shared by run, demo and sweep."""
    add_arguments(parser, "input")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="attach to a running dask scheduler")
    queue = parser.add_argument_group("job-queue cluster (dask-jobqueue)")
    queue.add_argument(
        "--cluster", metavar="KIND", help="start one: slurm, pbs, sge, lsf, moab, oar, htcondor"
    )
    queue.add_argument(
        "--cluster-config", metavar="FILE.yaml", help="its settings, under palette-dask: cluster:"
    )
    queue.add_argument("--jobs", type=_positive_int, metavar="N", help="jobs kept running")
    queue.add_argument("--cores", type=_positive_int, metavar="N", help="cores per job")
    queue.add_argument("--memory", metavar="SIZE", help="memory per job, e.g. 16GB")
    queue.add_argument("--walltime", metavar="HH:MM:SS", help="walltime per job")
    queue.add_argument("--queue", metavar="NAME", help="queue or partition")
    queue.add_argument("--account", metavar="NAME", help="account or project")
    queue.add_argument(
        "--lifetime", metavar="TIME", help="workers retire after this (default: walltime - 5m)"
    )
    queue.add_argument(
        "--lifetime-stagger", metavar="TIME", help="spread of the workers' lifetimes (default: 2m)"
    )
    queue.add_argument(
        "--print-job-script", action="store_true", help="print the job script and stop, submitting nothing"
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="LocalCluster workers (processes unless --threads)",
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument(
        "--threads", action="store_true", help="LocalCluster: one in-process worker with threads"
    )
    kind.add_argument(
        "--processes", action="store_true", help="LocalCluster: one worker process per core (or --workers)"
    )
