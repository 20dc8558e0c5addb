"""Benchmark: an image decoded again by the counting pass (not kept), against Pillow and a plain decode.

In one process, on ``--photos`` of benchmarks/scaling.py's 640 x 480 JPEGs,
per image: a plain imagecodecs decode of the file (the floor); Pillow's
strict decode by path (what decoding again cost before 2026-12-03); and
palette_dask's read path for an image not kept (``open_batch(keep=0)``, its
header from the file's first bytes, then the bytes read once and decoded as
the first pass decodes them), with and without counting it (k=8, CIELAB).
Every contender is run twice, the second timed.

    .venv/bin/python benchmarks/decode_again.py [--photos 640] [--dir /tmp/palette-dask-scaling]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=640)
    parser.add_argument("--dir", default="/tmp/palette-dask-scaling")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import imagecodecs
    from PIL import Image
    from scaling import build_collection

    from palette_dask.inputs.read import open_batch
    from palette_dask.kernels.colour import lab_to_srgb
    from palette_dask.kernels.count import batch_stats
    from palette_dask.options import RunConfig

    paths = sorted(str(p) for p in build_collection(Path(args.dir), args.photos).glob("*.jpg"))
    lab = np.array([[50, 0, 0], [80, 10, 10], [30, -20, 20], [60, 40, -30], [90, 0, 0], [20, 5, 5],
                    [70, -40, 40], [40, 30, 30]], np.float32)  # fmt: skip
    rgb, config = lab_to_srgb(lab), RunConfig(k=8)

    def read_only():
        for s in range(0, len(paths), 64):
            for _ in open_batch(paths[s : s + 64], s, keep=0).images():
                pass

    def counted():
        for s in range(0, len(paths), 64):
            batch_stats(open_batch(paths[s : s + 64], s, keep=0), config, None, lab, rgb, lookup=True)

    def each(decode):  # one image at a time, none kept (kept, they would time fresh memory too)
        def work():
            for path in paths:
                decode(path)

        return work

    contenders = {
        "plain imagecodecs decode (floor)": each(lambda p: imagecodecs.jpeg8_decode(Path(p).read_bytes())),
        "Pillow by path (decoding again before)": each(lambda p: np.asarray(Image.open(p).convert("RGB"))),
        "palette_dask, not kept: read and decode": read_only,
        "palette_dask, not kept: read, decode and count": counted,
    }  # fmt: skip
    print("| contender | ms per image |\n|---|---|")
    for name, work in contenders.items():
        work()
        start = time.perf_counter()
        work()
        print(f"| {name} | {(time.perf_counter() - start) / len(paths) * 1e3:.2f} |")


if __name__ == "__main__":
    main()
