"""Benchmark: what a run fetches from a remote Cloud-Optimized GeoTIFF, against the file's size.

A COG of the diverse mosaic of ``benchmarks/mosaic.py`` (seven photos resized
with anti-aliasing; ``--side`` pixels a side, 512² deflate tiles, overviews;
written by GDAL's COG driver through rasterio) is served over http with range
requests by ``tests/servers.py`` on 127.0.0.1, which counts the bytes and
requests it answers. Through the API on a LocalCluster of 2 worker processes:

- **run**: ``extract_palette(URL, k)``, the image kept in the workers' memory
  between the passes (the default for a few images up to 512 MB decoded);
- **run, not kept**: the same as for a mosaic too big to keep: the sample
  reads a share of the tiles, the counting pass all of them;
- **sample**: the sampling pass alone (``cell_candidates``);
- **local**: the same run on the local file, for the time (after a first,
  unmeasured run that warms up the workers);
- **report of the run**: ``html_report`` of the run's store (the ``--html``
  of the command): its previews read the lowest overview at least 800
  pixels long, not the full-resolution tiles again;
- **tiled TIFF, not a COG**: the same pixels written by tifffile in 256²
  deflate tiles, no overviews, its tag arrays after the tiles: a run over
  http, against the file's size.

    .venv/bin/python benchmarks/remote.py [--side 8192] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from measure import emit
from mosaic import diverse_band

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import http_server  # noqa: E402

TILE = 512


def build_cog(side: int, folder: Path) -> Path:
    """The diverse mosaic as a COG (built once), band by band through a plain GeoTIFF."""
    import rasterio
    import rasterio.shutil
    from rasterio.transform import Affine
    from rasterio.windows import Window

    path = folder / f"diverse-{side}.cog.tif"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    plain = folder / "plain.tif"
    profile = dict(driver="GTiff", width=side, height=side, count=3, dtype="uint8", tiled=True)
    transform = Affine(10, 0, 500_000, 0, -10, 4_600_000)
    with rasterio.open(plain, "w", **profile, crs="EPSG:32633", transform=transform) as out:
        rows = side // 4
        for band in range(4):
            out.write(np.moveaxis(diverse_band(side, band), -1, 0), window=Window(0, band * rows, side, rows))
    rasterio.shutil.copy(plain, path, driver="COG", blocksize=TILE, compress="deflate")
    plain.unlink()
    return path


def build_plain(cog: Path) -> Path:
    """The COG's full-resolution pixels as a plain tiled TIFF by tifffile (built once)."""
    import tifffile

    path = cog.with_name(cog.name.replace(".cog.tif", ".plain.tif"))
    if not path.exists():
        tifffile.imwrite(path, tifffile.imread(cog), tile=(256, 256), compression="deflate")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("-k", type=int, default=8)
    parser.add_argument("--dir", default="/tmp/palette-dask-remote")
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()

    import tifffile
    from distributed import Client, LocalCluster

    from palette_dask import extract_palette, probe
    from palette_dask.kernels.pixels import pixel_spec
    from palette_dask.kernels.sample import cell_candidates, cell_count, cell_share
    from palette_dask.outputs.report import html_report
    from palette_dask.run import passes

    path = build_cog(args.side, Path(args.dir))
    size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        tiles = sum(tif.pages[0].databytecounts)
    rows = []
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
        http_server(path.parent) as (url, handler),
    ):
        url = f"{url}/{path.name}"

        def measure(name, work, file=path):
            handler.sent.clear()
            handler.requests.clear()
            start = time.perf_counter()
            work()
            seconds = time.perf_counter() - start
            sent, requests = handler.sent[f"/{file.name}"], handler.requests[f"/{file.name}"]
            rows.append((name, sent, requests, seconds))

        extract_palette(str(path), args.k, client=client)  # warm: compiled kernels, imports
        measure("local file (no http)", lambda: extract_palette(str(path), args.k, client=client))
        measure("run", lambda: extract_palette(url, args.k, client=client))
        stored = Path(args.dir) / "report-run.zarr"
        shutil.rmtree(stored, ignore_errors=True)
        result = extract_palette(url, args.k, client=client, store=stored)
        report = Path(args.dir) / "report.html"
        measure("report of the run (--html previews)", lambda: html_report(result, report, client=client))
        keep = passes.KEEP_TILED_IMAGES
        passes.KEEP_TILED_IMAGES = 0
        try:
            measure("run, not kept", lambda: extract_palette(url, args.k, client=client))
        finally:
            passes.KEEP_TILED_IMAGES = keep
        info = probe(url)
        share = cell_share(cell_count(info), 0.25)
        measure(
            f"sample ({share:.0%} of {cell_count(info)} tiles)",
            lambda: client.compute(
                cell_candidates(
                    info,
                    pixel_spec(info),
                    0,
                    seed=0,
                    fraction=1.0,
                    share=share,
                    size=100_000,
                    cell_bytes=32 * 2**20,
                )  # fmt: skip
            ).result(),
        )
        plain = build_plain(path)
        plain_url = url.rsplit("/", 1)[0] + f"/{plain.name}"
        measure(
            "tiled TIFF, not a COG: run", lambda: extract_palette(plain_url, args.k, client=client), plain
        )
    plain_sent = rows[-1][1]
    lines = [
        f"\n### Remote COG over http: bytes fetched (issue 14)\n\n`.venv/bin/python benchmarks/remote.py "
        f"--side {args.side}` on 2 worker processes, {time.strftime('%Y-%m-%d')}. The COG: {args.side}² RGB "
        f"diverse mosaic, {TILE}² deflate tiles, overviews; {size / 1e6:.1f} MB, of which "
        f"{tiles / 1e6:.1f} MB of full-resolution tiles. k={args.k}.\n",
        "| what | fetched (MB) | fetched / full-resolution tiles | requests | seconds |",
        "|---|---|---|---|---|",
    ]
    for name, sent, requests, seconds in rows:
        ratio = f"{sent / tiles:.3f}" if sent else "-"
        lines.append(f"| {name} | {sent / 1e6:.1f} | {ratio} | {requests} | {seconds:.1f} |")
    lines.append(
        f"\nThe tiled TIFF that is no COG ({plain.stat().st_size / 1e6:.1f} MB): fetched "
        f"{plain_sent / plain.stat().st_size:.3f}x its size (its row's ratio above is to the COG's tiles).\n"
    )
    emit("\n".join(lines) + "\n", args.write)


if __name__ == "__main__":
    main()
