"""Benchmark: per-image palettes (``--per-image 5``) against the same run without them.

On the 20,000 thumbnails of benchmarks/collection.py (built there into
``--dir`` if missing): ``palette-dask run DIR -o STORE`` with and without
``--per-image 5``, interleaved, ``--repeats`` times each, as whole processes
on the default LocalCluster; and the palettes' quality on ``--quality``
thumbnails: the mean squared CIELAB error of each image's own colours
against scikit-learn's ``KMeans`` (k=5, its defaults) fitted to all the
image's pixels in CIELAB, its centres shown as 8-bit sRGB likewise.

    .venv/bin/python benchmarks/per_image.py [--dir /tmp/palette-collections] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from collection import collection
from measure import emit, timed


def quality(store: Path, count: int) -> list[float]:
    """Error ratios, own palette / scikit-learn, of the first ``count`` images of a store."""
    from PIL import Image
    from sklearn.cluster import KMeans

    from palette_dask import load_result
    from palette_dask.kernels.colour import lab_to_srgb, srgb_to_lab

    def error(lab, colours):
        shown = srgb_to_lab(np.asarray(colours, np.float64))
        return ((lab[:, None, :] - shown[None]) ** 2).sum(axis=2).min(axis=1).mean()

    result, ratios = load_result(store), []
    for index in range(count):
        lab = srgb_to_lab(
            np.asarray(Image.open(result.image_names[index]).convert("RGB"), float).reshape(-1, 3)
        )
        own = result.image_palettes[index][result.image_palette_shares[index] > 0]
        reference = np.rint(lab_to_srgb(KMeans(5, random_state=0, n_init="auto").fit(lab).cluster_centers_))
        ratios.append(error(lab, own) / error(lab, reference))
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/palette-collections")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quality", type=int, default=200, help="thumbnails compared with scikit-learn")
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()
    root = Path(args.dir)
    folder = collection(root, "thumbs", 0)
    cli = str(Path(sys.executable).parent / "palette-dask")
    seconds = {"without": [], "with": []}
    for _ in range(args.repeats):
        for kind, extra in (("without", []), ("with", ["--per-image", "5"])):
            store = root / f"thumbs-{kind}.zarr"
            elapsed, _, _ = timed(
                [cli, "run", str(folder), "-o", str(store), "--overwrite", "-q", *extra], ok=(0,)
            )
            seconds[kind].append(elapsed)
            print(kind, f"{elapsed:.1f} s", file=sys.stderr)
    ratios = quality(root / "thumbs-with.zarr", args.quality)
    without, with_ = np.median(seconds["without"]), np.median(seconds["with"])
    table = "\n".join(
        [
            "\n### Per-image palettes, 20,000 thumbnails (issue 16)\n",
            f"`.venv/bin/python benchmarks/per_image.py` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}: "
            f"`palette-dask run thumbs/` with and without `--per-image 5`, interleaved, {args.repeats} runs each "
            "(default LocalCluster, whole processes).\n",
            "| run | seconds (each) | median | vs without |",
            "|---|---|---|---|",
            f"| without | {', '.join(f'{s:.1f}' for s in seconds['without'])} | {without:.1f} | 1.00x |",
            f"| --per-image 5 | {', '.join(f'{s:.1f}' for s in seconds['with'])} | {with_:.1f} | {with_ / without:.2f}x |",
            "",
            f"Quality on the first {len(ratios)} thumbnails: mean squared CIELAB error of each image's own 5 "
            "colours over scikit-learn KMeans' (k=5, defaults, all pixels in CIELAB, both shown as 8-bit sRGB): "
            f"mean {np.mean(ratios):.4f}, median {np.median(ratios):.4f}, worst {np.max(ratios):.4f}, "
            f"best {np.min(ratios):.4f}.",
        ]
    )
    emit(table + "\n", args.write)


if __name__ == "__main__":
    main()
