"""palette_dask leaves the settings of the libraries it uses as it found them (Pillow, tifffile, dask-ml)."""

import io
import logging
import threading

import numpy as np
import tifffile
from dask_ml.cluster import k_means
from helpers import PHOTOS, write_png
from PIL import Image

from palette_dask import extract_palette
from palette_dask.inputs.pillow import _pillow_limit
from palette_dask.inputs.tiff import open_tiff


def settings() -> tuple:
    tiff_logger = logging.getLogger("tifffile")
    return (
        Image.MAX_IMAGE_PIXELS,
        tiff_logger.level,
        list(tiff_logger.filters),
        type(k_means._centers_dense._cache).__name__,
    )


def test_a_run_leaves_pillow_tifffile_and_dask_ml_as_it_found_them(client, tmp_path):
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((64, 64, 3), np.uint8), tile=(16, 16), compression="zlib")
    (tmp_path / "cut.tif").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # tifffile logs
    tifffile.imwrite(tmp_path / "whole.tif", np.full((32, 32, 3), 200, np.uint8))
    write_png(tmp_path / "photo.png", np.asarray(Image.open(PHOTOS[0]).convert("RGB")))
    before = settings()
    quiet = lambda line: None  # noqa: E731
    result = extract_palette(str(tmp_path), 3, client=client, max_pixels=400_000_000, report=quiet)
    assert [f.image.endswith("cut.tif") for f in result.failures] == [True]  # the damage was met
    assert settings() == before
    assert logging.getLogger("tifffile").isEnabledFor(logging.WARNING)  # tifffile still speaks to its user


def test_tifffile_still_logs_for_the_user_while_palette_dask_reads_in_another_thread(tmp_path):
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((8, 8, 3), np.uint8))
    opened, done = threading.Event(), threading.Event()

    def ours():
        with open_tiff(io.BytesIO(buffer.getvalue())):
            opened.set()
            done.wait(60)

    heard = []

    class Heard(logging.Handler):
        def emit(self, record):
            heard.append(record.getMessage())

    handler = Heard()
    logging.getLogger("tifffile").addHandler(handler)
    reader = threading.Thread(target=ours)
    reader.start()
    try:
        assert opened.wait(60)
        logging.getLogger("tifffile").warning("the user's own warning")
    finally:
        done.set()
        reader.join()
        logging.getLogger("tifffile").removeHandler(handler)
    assert heard == ["the user's own warning"]


def test_pillow_limit_is_the_highest_asked_while_opens_overlap_and_pillows_own_after():
    own = Image.MAX_IMAGE_PIXELS
    first, second = _pillow_limit(3 * own), _pillow_limit(2 * own)
    first.__enter__()
    assert Image.MAX_IMAGE_PIXELS == 3 * own
    second.__enter__()
    assert Image.MAX_IMAGE_PIXELS == 3 * own
    first.__exit__(None, None, None)
    assert Image.MAX_IMAGE_PIXELS == 2 * own
    second.__exit__(None, None, None)
    assert Image.MAX_IMAGE_PIXELS == own
    with _pillow_limit(own // 2):  # never lowered
        assert Image.MAX_IMAGE_PIXELS == own
    assert Image.MAX_IMAGE_PIXELS == own
