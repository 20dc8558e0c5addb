"""What the job scripts share: cluster options, the run itself with exit codes, the common outputs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from palette_dask import PaletteDaskError, connect, extract_palette, palette_bar, save_png
from palette_dask.cli import EXIT_CLUSTER_LOST, EXIT_ERROR, EXIT_USAGE
from palette_dask.errors import ClusterError, ClusterLostError, ParameterError
from palette_dask.outputs.store import check_store_path, failed_images
from palette_dask.run.cluster import dashboard_link, jobqueue_options
from palette_dask.run.progress import Progress


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("-k", type=int, default=5, help="number of colours (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scheduler", help="address of a running dask scheduler")
    parser.add_argument("--cluster-config", help="job-queue cluster YAML (palette-dask: cluster: ...)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--threads", action="store_true", help="LocalCluster: one worker, a thread per core")
    kind.add_argument("--processes", action="store_true", help="LocalCluster: a worker process per core")
    parser.add_argument("--resume", action="store_true", help="finish an interrupted run (or start one)")
    parser.add_argument("--overwrite", action="store_true", help="replace the store of an earlier run")


def _processes(args) -> bool | None:
    """--threads, --processes, or None: palette_dask sizes the LocalCluster to the machine."""
    return True if args.processes else False if args.threads else None


def run(args, inputs, **options):
    """Run the pipeline into OUT/palette.zarr; returns the result and the failures its store held before
    (a resume's), or the exit code of a failure: palette-dask's (2 usage or a cluster that cannot be
    reached, 4 a scheduler lost mid-run, 1 another error)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "palette.zarr"
    # this run's failures are the rest; a resume reads again those met on a transient fault
    earlier = failed_images(store, permanent=True) if args.resume else 0
    try:
        check_store_path(store, overwrite=args.overwrite, resume=args.resume)  # before a cluster starts
        jobqueue = jobqueue_options(args.cluster_config) if args.cluster_config else None
        with connect(args.scheduler, jobqueue=jobqueue, processes=_processes(args)) as client:
            print(f"palette-dask: dashboard at {dashboard_link(client)}", file=sys.stderr)
            result = extract_palette(
                inputs, args.k, store=store, seed=args.seed, client=client, report=Progress(),
                resume=args.resume, overwrite=args.overwrite, **options,
            )  # fmt: skip
            return result, earlier
    except ClusterLostError as exc:  # a ClusterError, lost mid-run: the store keeps what was finished
        print(f"palette-dask: {exc}", file=sys.stderr)
        return EXIT_CLUSTER_LOST
    except (ParameterError, ClusterError) as exc:
        print(f"palette-dask: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PaletteDaskError as exc:
        print(f"palette-dask: {exc}", file=sys.stderr)
        return EXIT_ERROR


def write_summary(result, out: Path) -> None:
    """OUT/palette.json (the CLI's --json document) and OUT/palette.png (the bar), when there is a palette."""
    (out / "palette.json").write_text(json.dumps(result.to_dict(), indent=2))
    if result.k:
        save_png(palette_bar(result.colors, result.proportions), out / "palette.png")
