"""Fuzzing the readers: mutated real images must give a result or palette_dask's own error, nothing else.

Seeds are real images encoded here (PNG in every mode, JPEG, GIF, BMP, WebP,
TIFF contiguous, planar, tiled, compressed, 16-bit, GeoTIFF) from
scikit-image's photos and tests/data. Each case flips bits, overwrites,
zeroes, inserts or truncates bytes of one seed, then probes the file, reads
its first chunk (and all of it when small) and turns the pixels into features.

    .venv/bin/python benchmarks/fuzz.py --cases 2000 [--write benchmarks/RESULTS.md]

``make test`` runs a few hundred cases (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import skimage
import tifffile
from measure import emit
from PIL import Image

from palette_dask.errors import PaletteDaskError
from palette_dask.inputs.read import probe, read_image
from palette_dask.kernels.pixels import block_features, pixel_spec

REAL_RASTERS = Path(__file__).resolve().parents[1] / "tests" / "data"


def seeds() -> dict[str, bytes]:
    """Small real images in many encodings, as bytes."""
    data = Path(skimage.__file__).parent / "data"
    photo = Image.open(data / "astronaut.png").convert("RGB").resize((48, 40))
    rgb = np.asarray(photo)
    out: dict[str, bytes] = {}

    def pil(name, image, fmt, **options):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        out[name] = buffer.getvalue()

    pil("rgb.png", photo, "PNG")
    pil("rgba.png", photo.convert("RGBA"), "PNG")
    pil("gray.png", photo.convert("L"), "PNG")
    pil("la.png", photo.convert("LA"), "PNG")
    pil("p.png", photo.convert("P", palette=Image.ADAPTIVE, colors=16), "PNG", transparency=0)
    pil("bits.png", photo.convert("1"), "PNG")
    pil("i16.png", Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG")
    pil("photo.jpg", photo, "JPEG", quality=80)
    pil("progressive.jpg", photo, "JPEG", progressive=True)
    pil("anim.gif", photo.convert("P"), "GIF")
    pil("image.bmp", photo, "BMP")
    pil("image.webp", photo, "WEBP")
    for name, options in {
        "contig.tif": {},
        "planar.tif": {"planarconfig": "separate"},
        "tiled.tif": {"tile": (16, 16)},
        "lzw.tif": {"compression": "lzw"},
        "deflate-tiled.tif": {"compression": "zlib", "tile": (16, 16)},
        "big.tif": {"bigtiff": True},
    }.items():
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, rgb, **options)
        out[name] = buffer.getvalue()
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, rgb.astype(np.uint16) * 200, extratags=[(42113, "s", 0, "0", True)])
    out["geo16.tif"] = buffer.getvalue()
    out["world.rgb.tif"] = (REAL_RASTERS / "world.rgb.tif").read_bytes()
    return out


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation of the kinds that break decoders."""
    data = bytearray(data)
    kind = rng.integers(6)
    if kind == 0:  # flip bits
        for _ in range(rng.integers(1, 9)):
            i = rng.integers(len(data))
            data[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # overwrite a span with random bytes
        start = rng.integers(len(data))
        span = rng.integers(1, 64)
        data[start : start + span] = rng.bytes(span)[: len(data[start : start + span])]
    elif kind == 2:  # truncate
        data = data[: rng.integers(len(data))]
    elif kind == 3:  # zero a span
        start = rng.integers(len(data))
        data[start : start + rng.integers(1, 256)] = b"\0" * len(data[start : start + 256][:255])
    elif kind == 4:  # insert random bytes
        start = rng.integers(len(data))
        data[start:start] = rng.bytes(int(rng.integers(1, 32)))
    else:  # header: the first 64 bytes hold sizes, offsets, modes
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(min(64, len(data)))
            data[i] = int(rng.integers(256))
    return bytes(data)


def run_case(path: str) -> str:
    """``ok``, ``error`` (palette_dask's own), or ``crash: ...`` for anything else."""
    try:
        info = probe(path, max_pixels=4_000_000)
        spec = pixel_spec(info, bands=None if info.shape[2] - info.alpha in (1, 3) else (0,))
        image = read_image(info, chunk_bytes=64 * 1024)
        first = image.blocks[0, 0].compute(scheduler="sync")
        block_features(first, spec)
        if info.pixels <= 1_000_000:
            block_features(image.compute(scheduler="sync"), spec)
        return "ok"
    except PaletteDaskError:
        return "error"
    except Exception as exc:  # the outcome this harness exists to find
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return f"crash: {type(exc).__name__}: {exc} ({Path(frame.filename).name}:{frame.lineno})"


def fuzz(cases: int, seed: int = 0, folder: str | None = None) -> Counter:
    """Run ``cases`` mutated files; returns a Counter of outcomes (crashes by message)."""
    rng = np.random.default_rng(seed)
    bank = seeds()
    names = sorted(bank)
    outcomes: Counter = Counter()
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for case in range(cases):
            name = names[case % len(names)]
            path = os.path.join(tmp, f"case{case}{Path(name).suffix}")
            with open(path, "wb") as handle:
                handle.write(mutate(bank[name], rng))
            outcomes[run_case(path)] += 1
            os.unlink(path)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", metavar="RESULTS.md")
    args = parser.parse_args()
    start = time.perf_counter()
    outcomes = fuzz(args.cases, args.seed)
    seconds = time.perf_counter() - start
    crashes = {k: v for k, v in outcomes.items() if k.startswith("crash")}
    lines = [
        f"\n### Reader fuzzing, {args.cases:,} mutated files (seed {args.seed})\n",
        f"`.venv/bin/python benchmarks/fuzz.py --cases {args.cases} --seed {args.seed}`, {time.strftime('%Y-%m-%d')}, {seconds:.0f} s\n",
        f"- read correctly (the mutation left a valid image): {outcomes['ok']:,}",
        f"- rejected with palette_dask's own one-line error: {outcomes['error']:,}",
        f"- anything else (crash, foreign exception): {sum(crashes.values()):,}",
    ]
    lines += [f"  - {count} x {message}" for message, count in sorted(crashes.items())]
    table = "\n".join(lines) + "\n"
    emit(table, args.write)
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
