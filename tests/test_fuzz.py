"""A bounded fuzz run of the readers (the full one is benchmarks/fuzz.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from fuzz import fuzz, run_case  # noqa: E402


@pytest.mark.slow
def test_mutated_images_give_a_result_or_our_own_error(tmp_path):
    outcomes = fuzz(300, seed=11, folder=str(tmp_path))
    crashes = {k: v for k, v in outcomes.items() if k.startswith("crash")}
    assert not crashes
    assert outcomes["ok"] > 30 and outcomes["error"] > 100  # both outcomes happen: the mutations bite


def test_a_tiff_claiming_far_more_pixels_than_it_holds(tmp_path):
    import numpy as np
    import tifffile

    tifffile.imwrite(tmp_path / "t.tif", np.zeros((40, 48, 3), np.uint8))
    data = bytearray((tmp_path / "t.tif").read_bytes())
    with tifffile.TiffFile(tmp_path / "t.tif") as tif:
        offset = tif.pages[0].tags["ImageLength"].valueoffset
    data[offset : offset + 4] = (100_000).to_bytes(4, "little")
    (tmp_path / "bomb.tif").write_bytes(bytes(data))
    assert run_case(str(tmp_path / "bomb.tif")) == "error"
    from palette_dask import ImageReadError, probe

    with pytest.raises(ImageReadError, match="damaged TIFF: its header claims .* in 2,500 strips or tiles"):
        probe(str(tmp_path / "bomb.tif"))


def test_a_tiny_png_claiming_100000_by_100000_pixels(tmp_path):
    import struct
    import zlib

    def chunk(kind, payload):
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "bomb.png").write_bytes(png)
    from palette_dask import ImageReadError, probe

    assert len(png) < 200
    with pytest.raises(ImageReadError, match="bomb.png: .*10,000,000,000 pixels"):
        probe(str(tmp_path / "bomb.png"))
    with pytest.raises(ImageReadError, match="more than the limit of 1,000 for images decoded whole"):
        probe(str(tmp_path / "bomb.png"), max_pixels=1_000)
