"""Benchmark: palette quality against the palette tools users know, by the CIELAB error.

For each of scikit-image's photos and for k = 5 and 10, every tool makes a
k-colour palette of the image, and this script measures each palette the same
way: the mean over the image's valid pixels (alpha > 0) of the squared CIELAB
distance (ΔE*ab², scikit-image's ``rgb2lab``) to the nearest palette colour,
rounded to 8-bit sRGB as every tool shows it. Lower is better.

Each peer runs with its most thorough settings:

- Pylette ``extract_colors(mode="KMeans", resize=False)`` (all pixels),
- fast-colorthief ``get_palette(quality=1)`` (modified median cut, all pixels),
- Pillow ``quantize(method=MEDIANCUT, kmeans=10)`` (median cut refined by k-means),
- scikit-learn ``KMeans(n_clusters=k)`` on all RGB pixels (the tutorial's recipe),
- palette_dask ``extract_palette(space="lab")`` and ``space="rgb"``, default settings.

    .venv/bin/python benchmarks/palettes.py [--write benchmarks/RESULTS.md]

Needs ``pip install Pylette fast-colorthief`` (not part of palette_dask's dependencies).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import skimage
from measure import emit
from PIL import Image
from skimage.color import rgb2lab

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "logo.png", "motorcycle_left.png")
KS = (5, 10)


def valid_rgb(path: Path) -> np.ndarray:
    """The image's pixels that count, as (n, 3) uint8: transparent ones left out."""
    image = Image.open(path)
    rgba = np.asarray(image.convert("RGBA"))
    return rgba[..., :3][rgba[..., 3] > 0]


def lab_error(pixels: np.ndarray, palette) -> float:
    """Mean squared CIELAB distance of the pixels to their nearest palette colour (rounded to 8 bits)."""
    shown = np.clip(np.rint(np.asarray(palette, dtype=np.float64)), 0, 255)
    pixel_lab = rgb2lab(pixels[None] / 255.0)[0]
    nearest = np.full(len(pixels), np.inf)
    for colour in rgb2lab(shown[None] / 255.0)[0]:
        nearest = np.minimum(nearest, ((pixel_lab - colour) ** 2).sum(axis=1))
    return float(nearest.mean())


def pylette_palette(path: Path, k: int):
    from pylette import extract_colors

    palette = extract_colors(image=str(path), palette_size=k, resize=False, mode="KMeans")
    return [colour.rgb[:3] for colour in palette.colors]


def colorthief_palette(path: Path, k: int):
    import fast_colorthief

    rgba = np.asarray(Image.open(path).convert("RGBA"))
    return fast_colorthief.get_palette(np.ascontiguousarray(rgba), color_count=k, quality=1)


def pillow_palette(path: Path, k: int):
    image = Image.open(path).convert("RGB")
    quantized = image.quantize(colors=k, method=Image.Quantize.MEDIANCUT, kmeans=10)
    used = sorted({index for _, index in quantized.getcolors()})
    palette = np.array(quantized.getpalette()[: 3 * 256]).reshape(-1, 3)
    return palette[used]


def sklearn_palette(path: Path, k: int):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, random_state=0).fit(valid_rgb(path).astype(np.float64)).cluster_centers_


def palette_dask_palette(space: str):
    def run(path: Path, k: int):
        from palette_dask import extract_palette

        return extract_palette(str(path), k, space=space, client=CLIENT).colors

    return run


CLIENT = None
TOOLS = {
    "palette_dask (lab)": palette_dask_palette("lab"),
    "palette_dask (rgb)": palette_dask_palette("rgb"),
    "scikit-learn KMeans (rgb)": sklearn_palette,
    "Pylette (KMeans)": pylette_palette,
    "fast-colorthief": colorthief_palette,
    "Pillow median cut + k-means": pillow_palette,
}


def main() -> None:
    global CLIENT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()
    from palette_dask import connect

    data = Path(skimage.__file__).parent / "data"
    header = "| photo | k | " + " | ".join(TOOLS) + " | lowest |"
    lines = [
        "\n### Palette quality: mean squared CIELAB error (ΔE*ab²) to the nearest colour shown, lower is better\n",
        f"`.venv/bin/python benchmarks/palettes.py` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; "
        "every palette measured by this script with scikit-image's rgb2lab over all valid pixels\n",
        header,
        "|" + "---|" * (len(TOOLS) + 3),
    ]
    wins = 0
    cases = 0
    with connect(processes=False, dashboard_address="127.0.0.1:0") as CLIENT:
        for name in PHOTOS:
            path = data / name
            pixels = valid_rgb(path)
            for k in KS:
                errors = {tool: lab_error(pixels, make(path, k)) for tool, make in TOOLS.items()}
                best = min(errors, key=errors.get)
                cases += 1
                wins += best.startswith("palette_dask (lab)")
                cells = " | ".join(f"{errors[tool]:.1f}" for tool in TOOLS)
                lines.append(f"| {name} | {k} | {cells} | {best} |")
                print(lines[-1], file=sys.stderr)
    lines.append(f"\npalette_dask (lab) has the lowest error in {wins} of {cases} cases.\n")
    emit("\n".join(lines), args.write)


if __name__ == "__main__":
    main()
