"""The ``palette-dask`` command: a thin shell over :func:`~palette_dask.extract_palette`.

Exit codes: 0 success, 1 error, 2 usage error, 3 finished but some images failed,
4 the scheduler was lost mid-run (the store keeps what was finished: ``--resume``).
With ``--json`` exactly one JSON document goes to stdout; progress, warnings
and errors always go to stderr, one line each.
"""

from __future__ import annotations

import _thread
import contextlib
import dataclasses
import glob
import json
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

from .cli_parser import UsageError, build_parser
from .errors import (
    ClusterError,
    ClusterLostError,
    InputError,
    PaletteDaskError,
    ParameterError,
    one_line,
    plural,
)
from .options import (
    RunConfig,
    bands_argument,
    from_arguments,
    given_options,
    scale_argument,
    spelled_as_flags,
)
from .outputs.result import PaletteResult, load_result
from .outputs.store import DONE

__all__ = [
    "main", "bands_argument", "scale_argument",
    "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_PARTIAL", "EXIT_CLUSTER_LOST",
]  # fmt: skip

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_CLUSTER_LOST = 0, 1, 2, 3, 4

DEMO_IMAGES = ("astronaut.png", "coffee.png", "logo.png", "chelsea.png", "rocket.jpg")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Examples
    --------
    >>> main(["run", "-k", "0", "a.png"])
    2
    """
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    with warnings.catch_warnings(), _quiet_logs(args):  # restores warnings.showwarning for in-process callers
        _configure_output(args)
        return _dispatch(args)


#: Set at a Ctrl-C, and once the command has caught it: no more are raised (see :func:`_on_interrupt`).
_INTERRUPT_RECEIVED, _INTERRUPT_SEEN = threading.Event(), threading.Event()
#: Seconds after a Ctrl-C that the command has not caught yet before it is raised again.
INTERRUPT_AGAIN = 2.0


def _on_interrupt(signum, frame) -> None:
    """SIGINT: raise KeyboardInterrupt in the main thread, and again until the command has caught it.

    Python runs this between two bytecodes of the main thread, wherever it
    is: inside a garbage-collector callback (distributed installs some) the
    exception is printed and dropped, and the run would go on. So, until the
    command says it caught one, the interrupt is raised again every
    :data:`INTERRUPT_AGAIN` seconds.
    """

    def again():
        if not _INTERRUPT_SEEN.is_set():
            _thread.interrupt_main(signal.SIGINT)

    _INTERRUPT_RECEIVED.set()
    timer = threading.Timer(INTERRUPT_AGAIN, again)
    timer.daemon = True
    timer.start()
    raise KeyboardInterrupt


def _raise_a_dropped_interrupt() -> None:
    """Raise the Ctrl-C a garbage-collector callback dropped, before it was raised again.

    A run that ends within :data:`INTERRUPT_AGAIN` of a dropped one would
    otherwise end as if nobody had asked it to stop.
    """
    if _INTERRUPT_RECEIVED.is_set() and not _INTERRUPT_SEEN.is_set():
        raise KeyboardInterrupt


def console_main() -> None:
    """The ``palette-dask`` command: :func:`main`, then a quick exit.

    Python's own teardown of the two thousand modules that dask, dask-ml and
    scikit-learn import takes 0.4-0.8 s. By the time :func:`main` returns, the
    cluster is closed and every store write has finished, so the command
    flushes its output and leaves with ``os._exit``. Ctrl-C always stops it
    (exit 130; see :func:`_on_interrupt`).
    """
    signal.signal(signal.SIGINT, _on_interrupt)
    code = EXIT_ERROR
    try:
        code = main()
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader of our output went away (| head)
        pass
    finally:
        os._exit(code)


def _dispatch(args) -> int:
    try:
        code = _COMMANDS[args.command](args)
        _raise_a_dropped_interrupt()
        return code
    except ClusterLostError as exc:  # mid-run: the store keeps what was finished
        print(f"palette-dask: {one_line(exc)}", file=sys.stderr)
        return EXIT_CLUSTER_LOST
    except (ParameterError, ClusterError) as exc:
        print(f"palette-dask: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except PaletteDaskError as exc:
        print(f"palette-dask: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        _INTERRUPT_SEEN.set()
        print(f"palette-dask: {exc if isinstance(exc, _Interrupted) else 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (| head): nothing more to say
        return EXIT_ERROR
    except OSError as exc:  # an output that cannot be written: --png, --html, report -o, sweep --png
        print(f"palette-dask: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"palette-dask: unexpected {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr
        )
        return EXIT_ERROR


#: The loggers of the libraries a run uses, silent without -v: the command's own lines are its output.
QUIET_LOGGERS = (
    "distributed", "distributed.client", "distributed.gc", "dask_ml", "bokeh",
    "tornado", "tornado.application",
)  # fmt: skip


def _quiet_logs(args):
    """Without -v, dask's logging configuration for the command: distributed, once imported, stays silent.

    Importing distributed sets its loggers' levels from that configuration
    (``distributed: info``), after :func:`_configure_output` has run: a lost
    scheduler would otherwise add its tracebacks to the command's one line.
    """
    if args.verbose:
        return contextlib.nullcontext()
    import dask.config

    return dask.config.set({"logging": dict.fromkeys(QUIET_LOGGERS, "critical")})


def _configure_output(args) -> None:
    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"palette-dask: warning: {message}", file=sys.stderr)

    warnings.showwarning = one_line_warning
    if not args.verbose:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _failures_only(message: str) -> None:
    """The reporter of --quiet and --json: the images that failed, one line each on stderr, nothing else."""
    if message.startswith("failed: "):
        print(f"palette-dask: {message}", file=sys.stderr, flush=True)


def _reporter(args):
    """Progress lines on stderr; with -q or --json only the images that fail."""
    from .run.progress import Progress

    return _failures_only if args.quiet or args.json else Progress()


def _jobqueue(args) -> dict | None:
    """The job-queue cluster asked for, if any (--cluster, --cluster-config, or the dask config)."""
    from .run.cluster import jobqueue_options

    if not (args.cluster or args.cluster_config or args.print_job_script):
        return None
    if args.scheduler:
        raise ClusterError("pass either --scheduler or --cluster, not both")
    names = ("jobs", "cores", "memory", "walltime", "queue", "account", "lifetime", "lifetime_stagger")
    overrides = {name: getattr(args, name) for name in names}
    return jobqueue_options(args.cluster_config, kind=args.cluster, **overrides)


def _run(args) -> int:
    if args.print_job_script:
        return _print_job_script(args)
    from .outputs.store import is_store

    if args.resume and args.out is None and len(args.inputs) == 1 and is_store(args.inputs[0]):
        args.out, args.inputs = args.inputs[0], []  # run --resume STORE
    if not args.inputs:
        if not (args.resume and args.out):
            raise ParameterError("the following arguments are required: INPUT (or --resume STORE)")
        _from_store(args)
    else:
        _jobqueue(args)  # usage errors first (exit 2), then a missing input (exit 1)
        _vocabulary(args)
        _check_named(args.inputs)
    return _finish(args, _extract(args, args.inputs, args.out))


def _vocabulary(args) -> dict | None:
    """The colour names of ``--names FILE``; None for the CSS names."""
    from .outputs.names import read_vocabulary

    return read_vocabulary(args.names) if getattr(args, "names", None) else None


def _check_named(inputs) -> None:
    """Stop at a typo: an input named on the command line that does not exist (list entries fail alone)."""
    for item in map(str, inputs):
        if "://" not in item and not glob.has_magic(item) and not os.path.lexists(item):
            raise InputError(f"{item}: no such file or directory")


def _from_store(args) -> None:
    """Finish a run from its store alone: its inputs and parameters are the store's own."""
    from .outputs.store import open_store

    group = open_store(args.out, mode="r")
    names = [str(name) for name in group["image_names"][:]]
    arrays = [name for name in names if name.startswith("array:")]
    if arrays:
        raise InputError(
            f"{args.out}: holds arrays given from Python ({arrays[0]}...); resume it from Python"
        )
    config = RunConfig.from_parameters(
        group.attrs.get("parameters", {}), batch_size=group.attrs.get("batch_size")
    )
    args.inputs = names
    for name, value in config.values().items():
        setattr(args, name, value)
    args.given = given_options(args) | set(config.values())  # as if given: the store's own


def _print_job_script(args) -> int:
    from .run.cluster import jobqueue_cluster

    with jobqueue_cluster(_jobqueue(args)) as cluster:
        print(cluster.job_script())
    return EXIT_OK


@contextlib.contextmanager
def _client(args, jobqueue):
    """The run's dask client (see cluster.connect), its dashboard link printed on stderr."""
    from .run.cluster import connect, dashboard_link

    with connect(
        args.scheduler, jobqueue=jobqueue, processes=_processes(args), n_workers=args.workers
    ) as client:
        link = dashboard_link(client)
        if link and not args.quiet:
            print(f"palette-dask: dashboard at {link}", file=sys.stderr, flush=True)
        yield client


def _sweep(args) -> int:
    if args.print_job_script:
        return _print_job_script(args)
    from .inputs.sources import resolve_sources
    from .run.choose import sweep_figure
    from .run.pipeline import sweep_k

    jobqueue = _jobqueue(args)
    inputs = resolve_sources(args.inputs)  # before the cluster; classified once, sweep_k keeps them
    options = from_arguments(args, "input")
    with _client(args, jobqueue) as client:
        sweep = sweep_k(inputs, args.k, client=client, report=_reporter(args), **options)
    if args.png:
        sweep_figure(sweep, args.png)
    if args.json:
        json.dump(sweep.to_dict(), sys.stdout)
        sys.stdout.write("\n")
        return EXIT_PARTIAL if sweep.failures else EXIT_OK
    print("   k   inertia of the sample")
    for k, inertia, colours in zip(sweep.ks, sweep.inertias, sweep.colours):
        mark = "  <- suggested" if k == sweep.suggested else ""
        found = f"  (only {plural(colours, 'distinct colour')})" if colours < k else ""
        print(f"{k:4d}   {inertia:,.0f}{found}{mark}")
    sampled = plural(sweep.sample_size, "sampled pixel")
    print(f"suggested k={sweep.suggested} (the elbow of the curve; {sampled})")
    for failure in sweep.failures[:5]:
        print(f"palette-dask: left out: {failure}", file=sys.stderr)
    return EXIT_PARTIAL if sweep.failures else EXIT_OK


class _Ran(NamedTuple):
    """What a run command did: its result, the failures its store held before, the outputs not written."""

    result: PaletteResult
    earlier: int
    unwritten: list


def _extract(args, inputs, store) -> _Ran:
    from .inputs.fetch import download_folder, remove_downloads
    from .outputs.store import failed_images, is_store, remove_remnant, store_exists
    from .run.pipeline import run_plan
    from .run.plan import plan_run

    # the checks that need no cluster come first, so that a bad command starts none
    jobqueue = _jobqueue(args)
    vocabulary = _vocabulary(args)
    append = getattr(args, "append", False)
    options, given = from_arguments(args, "run"), given_options(args)
    # those given: the rest are the defaults, or the store's resumed or grown, or a palette's store's scale
    options = {name: value for name, value in options.items() if name in given}
    with spelled_as_flags():  # the run's own checks, their errors in the command's words
        plan = plan_run(
            inputs, store=store, resume=args.resume, overwrite=args.overwrite, append=append,
            labels_geotiff=args.labels_geotiff, source_labels=getattr(args, "source_labels", None), **options,
        )  # fmt: skip
    _check_outputs(args, plan.names, store)
    report = _reporter(args)  # the command reports failures itself: no Python warning
    ours = store is not None and (not store_exists(store) or is_store(store))  # this run may remove it
    # this command's failures are the rest; a resume reads again those met on a transient fault
    earlier = failed_images(store, permanent=args.resume) if args.resume or append else 0
    unwritten = []  # the outputs asked for that could not be written: each an error, the store kept
    try:
        # URLs are downloaded once, into a folder that lasts until the figure and the report are drawn
        with download_folder(plan.names) as downloads, _client(args, jobqueue) as client:
            try:
                try:
                    result = run_plan(plan, client=client, report=report, downloads=downloads)
                    _raise_a_dropped_interrupt()
                except KeyboardInterrupt:
                    _INTERRUPT_SEEN.set()  # caught: the cluster closes without another one
                    raise
                result = dataclasses.replace(result, vocabulary=vocabulary)
                if getattr(args, "html", None):
                    unwritten.append(_save_report(result, args.html, client, downloads))
                if args.figure and result.k:
                    first = int((result.image_status == DONE).argmax())
                    unwritten.append(_save_figure(result, first, args.figure, downloads))
            finally:
                remove_downloads(downloads, client)  # copies on the workers' hosts
            return _Ran(result, earlier, [line for line in unwritten if line])
    except KeyboardInterrupt:
        raise _Interrupted(_interrupted(store)) from None
    finally:  # the cluster is closed: no task writes any more
        if ours and not is_store(store):  # a store the run removed: what killed tasks left of it goes too
            remove_remnant(store)


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C, with the line the command ends with: what the run left."""


def _interrupted(store) -> str:
    """What an interrupted run says: whether its store keeps what was done."""
    from .outputs.store import is_store

    if store is None:
        return "interrupted; nothing was kept (-o OUT.zarr keeps a store that --resume finishes)"
    if is_store(store):
        return f"interrupted; {store} keeps what was done: finish it with --resume"
    return f"interrupted before any image was stored: nothing is kept ({store}); run the command again"


def _check_outputs(args, inputs: list[str], store) -> None:
    """Refuse an output that is one of the inputs, or a file whose folder is missing or not writable.

    The outputs: --png, --figure, --html, --export and the store. Only inputs
    with an output's file name are resolved, so a million inputs cost no file system calls.
    """
    files = [args.png, args.figure, getattr(args, "html", None), *args.export]
    for output in (str(o) for o in [store, *files] if o is not None and os.path.lexists(o)):
        name, real = os.path.basename(os.path.normpath(output)), os.path.realpath(output)
        if any(os.path.realpath(s) == real for s in inputs if os.path.basename(os.path.normpath(s)) == name):
            raise InputError(f"{output}: is one of the inputs; palette-dask never writes over its inputs")
    for output in (str(o) for o in files if o is not None):  # before any cluster: where it goes
        folder = os.path.dirname(os.path.abspath(output))
        if os.path.isdir(output):
            raise InputError(f"{output}: is a folder; name a file to write")
        if not os.path.isdir(folder):
            raise InputError(f"{output}: cannot be written: there is no folder {folder}")
        if not os.access(folder, os.W_OK):
            raise InputError(f"{output}: cannot be written: the folder {folder} is not writable")


def _save_report(result: PaletteResult, path, client, downloads=None) -> str | None:
    """The HTML report; None, or why it could not be written (the run's result stands)."""
    from .outputs.report import html_report

    try:
        html_report(result, path, client=client, downloads=downloads)
    except (OSError, PaletteDaskError) as exc:
        return f"no report {path}: {one_line(exc)}"
    return None


def _processes(args) -> bool | None:
    """--threads, --processes, or None: the machine decides (see cluster.THREADS_UP_TO_CORES)."""
    return True if args.processes else False if args.threads else None


def _save_bar(result: PaletteResult, path, order: str = "share") -> None:
    from .outputs.render import palette_bar, save_png

    if result.k:
        index = result.ordered(order)
        save_png(palette_bar(result.colors[index], result.proportions[index], sort=False), path)


def _export(args, result: PaletteResult) -> None:
    from .outputs.render import export_palette

    for path in args.export:
        if result.k:
            export_palette(result, path, order=args.order)


def _finish(args, ran: _Ran) -> int:
    """Write the outputs asked for, print the result, and say how the command ended (its exit code).

    3 only for failures this command met: a resume or an append that met none
    exits 0, and says how many the store held before it. An output asked for
    and not written is an error (1), named, the store kept.
    """
    result = ran.result
    _export(args, result)
    if args.png:
        _save_bar(result, args.png, args.order)
    _print_result(args, result)
    kept = f"; {result.store} is kept" if result.store else ""
    for line in ran.unwritten:
        print(f"palette-dask: {line}{kept}", file=sys.stderr)
    status = result.to_dict()["images"]
    if status["done"] == 0:
        if status["total"] > 1:
            print(f"palette-dask: all {status['total']} images failed", file=sys.stderr)
        return EXIT_ERROR
    if ran.earlier:
        print(
            f"palette-dask: {result.store} holds {plural(ran.earlier, 'failed image')} from before this "
            f"command (palette-dask show {result.store} --images lists them)",
            file=sys.stderr,
        )
    if ran.unwritten:
        return EXIT_ERROR
    return EXIT_PARTIAL if status["failed"] > ran.earlier else EXIT_OK


def _save_figure(result: PaletteResult, index: int, path, downloads=None) -> str | None:
    """The image beside its bar; None, or why it could not be drawn (the run's result stands).

    The image is shown as the run read it (its bands, no-data and scale), masked pixels on a checkerboard.
    """
    from .outputs.render import palette_figure
    from .outputs.report import preview

    name = result.image_names[index]
    shown = preview(result, index, downloads=downloads)
    if isinstance(shown, str):  # an image that cannot be read any more: why
        return f"no figure {path} for {name}: {shown}"
    figure = palette_figure(shown[0], result.colors, result.image_counts[index], title=os.path.basename(name))
    try:
        figure.savefig(path, dpi=100)
    except (OSError, ValueError) as exc:  # ValueError: a file ending matplotlib does not write
        return f"no figure {path}: {one_line(str(exc))}"
    return None


def _print_result(args, result: PaletteResult) -> None:
    if args.json:
        json.dump(result.to_dict(), sys.stdout)
        sys.stdout.write("\n")
        return
    from .outputs.render import format_table

    summary = result.to_dict()
    images, pixels = summary["images"], summary["pixels"]
    if result.k:
        print(format_table(result, color=sys.stdout.isatty(), order=getattr(args, "order", "share")))
    transient = f" ({images['transient']:,} on a transient fault: --resume reads them again)"
    print(
        f"{images['done']:,} of {plural(images['total'], 'image')} done, {images['failed']:,} failed"
        + (transient if images["transient"] else "")
        + f"; {plural(pixels['valid'], 'valid pixel')}, {pixels['masked']:,} masked; "
        + (
            f"store: {result.store}"
            if result.store
            else f"no store kept ({args.out}: no image was done)"
            if getattr(args, "out", None)
            else "no store kept (-o OUT.zarr keeps one)"
        )
    )
    if summary["palette_from"]:
        print(f"palette applied from {summary['palette_from']} (not fitted): its colour ids")
    if summary["nodata"]:
        values, source = summary["nodata"]["values"], summary["nodata"]["from"]
        print(
            f"no-data: pixels whose colour bands all equal {', '.join(map(str, values))} are left out "
            + ("(--nodata)" if source == "option" else "(declared by the inputs; --nodata overrides it)")
        )
    if summary["display_range"]:
        print(_range_line(summary["display_range"], result.attrs.get("parameters", {})))
    if summary.get("lab_error") is not None:
        print(
            f"palette error: mean squared CIELAB distance {summary['lab_error']:.1f} "
            f"(RMS delta E {summary['lab_error'] ** 0.5:.2f}) of every pixel to its nearest colour as shown"
            + ("" if summary["errors"]["exact"] else _estimated(summary))
        )
    if not result.complete:
        print(
            "palette-dask: the store is incomplete: finish it with 'palette-dask run ... --resume'",
            file=sys.stderr,
        )


def _range_line(display_range, parameters: dict) -> str:
    """What ``show`` says of a stored display range: each colour band's values shown as 0-255, and whence."""
    low, high = display_range
    shown = ", ".join(f"{a:g}-{b:g}" for a, b in zip(low, high))
    scale = parameters.get("scale")
    whence = (
        f"from the palette applied ({parameters['palette']})" if parameters.get("palette")
        else "the sample's 2-98% cut of the data wider than 8 bits, --scale auto" if scale == "auto"
        else f"--scale {scale}"
    )  # fmt: skip
    return (
        f"display range: colour bands' values {shown} shown as 0-255 ({whence}); "
        "--resume, --append and --palette with this store reuse it"
    )


def _estimated(summary: dict) -> str:
    """What an estimated error was measured on, as ``show`` says it."""
    measured, valid = summary["errors"]["measured_pixels"], summary["pixels"]["valid"]
    share = f"1 in {valid / measured:.0f}" if measured else "none"
    return f"; errors estimated from {plural(measured, 'pixel')} of the {valid:,} ({share})"


def _show(args) -> int:
    from .outputs.render import (
        IMAGE_COLUMNS,
        declared,
        format_images,
        image_rows,
        own_palette,
        write_image_shares,
    )

    result = dataclasses.replace(load_result(args.store), vocabulary=_vocabulary(args))
    _export(args, result)
    if args.png:
        _save_bar(result, args.png, args.order)
    if args.csv:
        write_image_shares(result, args.csv)
        print(
            f"palette-dask: wrote the shares of {plural(len(result.image_names), 'image')} to {args.csv}",
            file=sys.stderr,
        )
    if not (args.images or args.csv):
        _print_result(args, result)
    elif args.json:
        images = [
            {**dict(zip(IMAGE_COLUMNS, row)), **declared(result, index), "shares": row[len(IMAGE_COLUMNS) :]}
            | ({"own_palette": own_palette(result, index)} if result.image_palettes is not None else {})
            for index, row in enumerate(image_rows(result))
        ]
        json.dump({"palette": result.palette(), "images": images}, sys.stdout)
        sys.stdout.write("\n")
    elif args.images:
        print(format_images(result))
    return EXIT_OK


def _demo(args) -> int:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.overwrite = args.overwrite or not args.resume
    args.html = args.html or str(out / "report.html")
    args.per_image = args.per_image or 5  # each photo's own colours too
    args.given = given_options(args) | {"per_image"}  # as if given: the run takes only those
    ran = _extract(args, [str(data / name) for name in DEMO_IMAGES], str(out / "demo.zarr"))
    result, unwritten = ran.result, list(ran.unwritten)
    _save_bar(result, out / "palette.png")
    for index, name in enumerate(result.image_names):
        if result.image_status[index] == DONE:
            unwritten.append(_save_figure(result, index, out / f"{Path(name).stem}-palette.png"))
    for line in filter(None, unwritten):
        print(f"palette-dask: {line}", file=sys.stderr)
    _print_result(args, result)
    if not args.json:
        from .outputs.render import format_images

        print(f"\nEach image: its share of each colour id, then its own {args.per_image} colours\n")
        print(format_images(result))
        print(
            f"\noutputs in {out}/: report.html (open it in a browser), demo.zarr (the store), "
            "palette.png (the global bar), <image>-palette.png\n"
            f"next: palette-dask show {out}/demo.zarr --images --csv shares.csv; "
            f"palette-dask search {out}/demo.zarr --colour tomato"
        )
    if any(unwritten):
        return EXIT_ERROR
    return EXIT_OK if result.to_dict()["images"]["failed"] == 0 else EXIT_PARTIAL


def _search(args) -> int:
    from .outputs.search import parse_colour, search_store

    colour = parse_colour(args.colour, _vocabulary(args))
    near, matches, total = search_store(
        args.store, colour, within=args.within, min_share=args.min_share, top=args.top
    )
    if args.json:
        found = [{"index": m.index, "image": m.image, "share": m.share} for m in matches]
        from .kernels.colour import hex_code

        json.dump({"colour": hex_code(colour), "ids": near, "found": total, "images": found}, sys.stdout)
        sys.stdout.write("\n")
        return EXIT_OK
    ids = ", ".join(map(str, near)) or "none"
    shown = f"; the top {len(matches):,}" if len(matches) < total else ""
    print(
        f"colour ids within delta E00 {args.within:g} of {args.colour}: {ids}; "
        f"{plural(total, 'image')} with at least {args.min_share:.0%} of their pixels near it{shown}",
        file=sys.stderr,
    )
    for match in matches:
        print(f"{match.share:7.2%}  {match.image}")
    return EXIT_OK


#: Most dates compare's table shows (the first and last half of them); --csv and --json give each one.
TABLE_DATES = 8


def _compare(args) -> int:
    from .outputs.compare import compare_dates, compare_results, write_comparison

    vocabulary = _vocabulary(args)
    results = [dataclasses.replace(load_result(s), vocabulary=vocabulary) for s in args.stores]
    if len(args.stores) == 1:  # one store of images of several dates (STAC items): its days
        comparison = compare_dates(results[0], args.stores[0])
    else:
        comparison = compare_results(results, args.stores)
    if args.csv:
        write_comparison(comparison, args.csv)
    if args.json:
        json.dump(comparison, sys.stdout)
        sys.stdout.write("\n")
        return EXIT_OK
    dates = "dates" in comparison
    labels = comparison["dates"] if dates else [f"store {i + 1}" for i in range(len(args.stores))]
    width = 10 if dates else 9  # 2024-06-01
    shown = list(range(len(labels)))
    if len(shown) > TABLE_DATES:  # a year of dates: the first and last, each one in --csv or --json
        shown = shown[: TABLE_DATES // 2] + shown[-TABLE_DATES // 2 :]
    columns = "  ".join(f"{labels[i]:>{width}s}" for i in shown)
    print(f" id  hex      name                {columns}     change")
    for entry in comparison["palette"]:
        shares = "  ".join(f"{entry['shares'][i]:{width}.2%}" for i in shown)
        name, change = entry["name"][:18], entry["change"]
        print(f"{entry['id']:3d}  {entry['hex']}  {name:18s}  {shares}  {change:+9.2%}")
    if dates:
        days = [f"{labels[i]} ({plural(comparison['images'][i], 'image')})" for i in shown]
        print(f"{args.stores[0]}: {', '.join(days)}")
    if len(shown) < len(labels):
        print(
            f"{len(labels)} {'dates' if dates else 'stores'}: the first and last {TABLE_DATES // 2} shown; "
            "--csv FILE or --json gives each"
        )
    for label, store in zip([] if dates else labels, args.stores):
        print(f"{label}: {store}")
    return EXIT_OK


def _report(args) -> int:
    from .outputs.report import html_report

    result = load_result(args.store)
    print(html_report(result, args.out))
    return EXIT_OK


_COMMANDS = {
    "run": _run,
    "show": _show,
    "demo": _demo,
    "sweep": _sweep,
    "report": _report,
    "search": _search,
    "compare": _compare,
}


if __name__ == "__main__":  # pragma: no cover
    console_main()
