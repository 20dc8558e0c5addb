"""Benchmark: decompression bombs, read within the memory limit or refused, with the peak of the process tree.

A "bomb" is a small file that decodes to a huge image. Here: a TIFF of
1–2 MB holding one deflate strip of 20000 x 20000 RGB pixels (1.2 GB
decoded; every row one colour of a gradient, so it holds thousands of
distinct colours), the same as LZW (which cannot be decoded in bands) and a
PNG claiming 100,000 x 100,000 pixels. Each is run through ``palette-dask run``
as a whole process; reported: the outcome, the wall seconds and the peak
resident memory of the process tree (sampled every 50 ms from /proc), beside
the floor: one plain pass of zlib over the strip, streaming, with no
palette_dask code.

    .venv/bin/python benchmarks/bombs.py [--dir /tmp/bombs] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import tifffile
from measure import emit, timed

CLI = str(Path(sys.executable).parent / "palette-dask")


def gradient_row(row: int, rows: int, cols: int) -> bytes:
    """One row of the bomb: a single colour, which changes from row to row."""
    t = row / max(rows - 1, 1)
    colour = np.array([255 * t, 255 * (1 - t), 128 + 127 * np.sin(12 * t)], dtype=np.float64)
    return np.broadcast_to(np.rint(colour).astype(np.uint8), (cols, 3)).tobytes()


def strip_bomb(path: Path, rows: int = 20000, cols: int = 20000, *, level: int = 9) -> Path:
    """A TIFF of one deflate strip, ``rows x cols`` RGB, compressed row by row (never whole in memory)."""
    deflate = zlib.compressobj(level)
    pieces = [deflate.compress(gradient_row(r, rows, cols)) for r in range(rows)]
    strip = b"".join(pieces) + deflate.flush()
    tifffile.imwrite(
        path, iter([strip]), shape=(rows, cols, 3), dtype=np.uint8, photometric="rgb",
        compression="zlib", rowsperstrip=rows,
    )  # fmt: skip
    return path


def lzw_bomb(path: Path, rows: int, cols: int) -> Path:
    """A TIFF of one LZW strip (LZW cannot be decoded in bands), encoded whole here."""
    image = np.stack([np.frombuffer(gradient_row(r, rows, cols), np.uint8) for r in range(rows)])
    tifffile.imwrite(
        path, image.reshape(rows, cols, 3), photometric="rgb", compression="lzw", rowsperstrip=rows
    )
    return path


def png_claiming(path: Path, side: int = 100_000) -> Path:
    """A PNG whose header claims ``side x side`` pixels and holds almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    )
    return path


def inflate_floor(path: Path) -> float:
    """Seconds of one plain streaming zlib pass over the file's one strip (no palette_dask code)."""
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    start = time.perf_counter()
    with open(path, "rb") as handle:
        handle.seek(offset)
        inflate, left = zlib.decompressobj(), count
        while left:
            data = handle.read(min(left, 2**20))
            left -= len(data)
            while data:
                inflate.decompress(data, 2**22)
                data = inflate.unconsumed_tail
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/palette-bombs")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    cases = {
        "deflate strip": strip_bomb(folder / "deflate-strip.tif", args.rows, args.rows),
        "LZW strip": lzw_bomb(folder / "lzw-strip.tif", 16000, 16000),
        "PNG header": png_claiming(folder / "claims.png"),
    }
    rows = []
    for name, path in cases.items():
        store = folder / f"{path.stem}.zarr"
        command = [CLI, "run", str(path), "-o", str(store), "--overwrite", "--json", "-q"]
        seconds, peak, out = timed(command, ok=(0, 1, 3))
        document = json.loads(out)
        if document["images"]["failed"]:
            outcome = "refused: " + document["failures"][0]["error"].split(": ", 1)[1]
        else:
            outcome = f"read: {document['pixels']['valid']:,} valid pixels"
        rows.append((name, path.stat().st_size, outcome, seconds, peak))
    floor = inflate_floor(cases["deflate strip"])
    lines = [
        "\n## Decompression bombs (issue 11)\n",
        f"`.venv/bin/python benchmarks/bombs.py --rows {args.rows}` — each file through `palette-dask run` "
        "(default LocalCluster, 2 cores); peak RSS of the whole process tree. The deflate strip decodes to "
        f"{args.rows * args.rows * 3 / 1e9:.1f} GB; the floor is one plain streaming inflate of it: "
        f"{floor:.1f} s.\n",
        "| file | size | outcome | seconds | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for name, size, outcome, seconds, peak in rows:
        lines.append(
            f"| {name} | {size / 1e6:.2f} MB | {outcome} | {seconds:.1f} | {peak / 2**20:,.0f} MiB |"
        )
    emit("\n".join(lines) + "\n", args.write)


if __name__ == "__main__":
    main()
