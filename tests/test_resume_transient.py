"""A failure met on a transient fault is stored as such, and ``--resume`` reads it again (issue 33).

A real http server answers 503 for chosen paths while they are listed: a
run with ``tries=2`` fails those images as transient (status 3) beside a
corrupt file that fails for good (status 2); once the server recovers, a
resume reads the transient ones again, and its store equals, array for array,
the store of a run whose server never failed. Runs apply one palette (fitted
from the files read locally), so that a run which met the fault counts with
the same colours as one which did not.
"""

import json

import numpy as np
import pytest
import skimage
import tifffile
import zarr
from helpers import PHOTOS, every_array, write_png
from servers import RangeHandler, http_server

from palette_dask import extract_palette
from palette_dask.cli import EXIT_OK, EXIT_PARTIAL, main
from palette_dask.outputs.report import html_report
from palette_dask.outputs.result import load_result
from palette_dask.outputs.store import DONE, FAILED, FAILED_TRANSIENT, failed_images

#: Each test runs the same files several times (a reference, a run meeting the fault, a resume).
pytestmark = pytest.mark.slow

TRIES = ["--tries", "2"]


class Flaky(RangeHandler):
    """:class:`RangeHandler` answering 503 (``Retry-After: 0``) to the paths in ``failing``, while listed.

    ``from_byte`` maps a path to the first byte whose ranges fail: below it
    (a TIFF's header) the file is served; ``answered`` counts the 503s sent.
    """

    failing: set
    from_byte: dict
    answered: int

    def _fails(self) -> bool:
        if self.path not in self.failing:
            return False
        start = self.headers.get("Range", "bytes=0-").removeprefix("bytes=").split("-")[0]
        return int(start or 0) >= self.from_byte.get(self.path, 0)

    def send_head(self):
        if not self._fails():
            return super().send_head()
        type(self).answered += 1
        self.send_response(503)
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()
        return None


def flaky_server(folder):
    """An http server over ``folder``, its own :class:`Flaky` class (none of its state shared)."""
    handler = type("FlakyHere", (Flaky,), {"failing": set(), "from_byte": {}, "answered": 0})
    return http_server(folder, handler)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Three photos and a corrupt PNG, and the palette fitted from them read locally (a store)."""
    root = tmp_path_factory.mktemp("served")
    for photo in PHOTOS:
        (root / photo.name).write_bytes(photo.read_bytes())
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not the rest of a png" * 10)
    palette = root.parent / "palette.zarr"
    local = [str(root / p.name) for p in PHOTOS]
    assert main(["run", *local, "-k", "4", "-o", str(palette), "--threads", "-q"]) == EXIT_OK
    return root, str(palette)


def _names(url: str) -> list[str]:
    return [f"{url}/{p.name}" for p in PHOTOS] + [f"{url}/corrupt.png"]


def _same_stores(found, expected) -> None:
    found, expected = (every_array(zarr.open_group(path, mode="r")) for path in (found, expected))
    assert found.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_array_equal(found[name], values, err_msg=name)


def test_the_cli_resume_reads_a_transient_failure_again_and_never_a_permanent_one(files, tmp_path, capsys):
    root, palette = files
    store, reference = tmp_path / "run.zarr", tmp_path / "reference.zarr"
    with flaky_server(root) as (url, handler):
        names = _names(url)
        common = ["--palette", palette, "--threads", "--batch-size", "2", "--labels", *TRIES]
        assert main(["run", *names, "-o", str(reference), *common, "-q"]) == EXIT_PARTIAL  # never failed
        capsys.readouterr()
        handler.failing.add(f"/{PHOTOS[1].name}")
        code = main(["run", *names, "-o", str(store), *common, "--json"])
        out, err = capsys.readouterr()
        assert code == EXIT_PARTIAL and handler.answered == 2  # each of its tries met the 503
        document = json.loads(out)
        assert document["images"] == {"total": 4, "done": 2, "failed": 2, "transient": 1}
        by_image = {f["image"]: f["transient"] for f in document["failures"]}
        assert by_image == {names[1]: True, names[3]: False}
        assert "a transient fault on each of 2 tries" in document["failures"][0]["error"]
        status = zarr.open_group(store, mode="r")["image_status"][:]
        assert list(status) == [DONE, FAILED_TRANSIENT, DONE, FAILED]
        assert failed_images(store) == 2 and failed_images(store, permanent=True) == 1
        assert main(["show", str(store)]) == EXIT_OK
        shown = capsys.readouterr().out
        assert "2 failed (1 on a transient fault: --resume reads them again)" in shown

        handler.failing.clear()  # the server recovered
        code = main(["run", *names, "-o", str(store), *common, "--resume"])
        err = capsys.readouterr().err
        assert code == EXIT_OK, err  # the corrupt file failed before this command: not its failure
        assert "reading again 1 image that failed on a transient fault" in err
        assert "reading 1 image in 1 batch" in err  # its batch's photo done before is kept as stored
        assert f"{store} holds 1 failed image from before this command" in err
        _same_stores(store, reference)  # the corrupt one's failure included

        code = main(["run", *names, "-o", str(store), *common, "--resume"])
        err = capsys.readouterr().err
        assert code == EXIT_OK and "nothing to do" in err and "reading again" not in err


def test_the_api_resume_reads_a_transient_failure_again(files, tmp_path, client):
    root, palette = files
    store, reference = tmp_path / "run.zarr", tmp_path / "reference.zarr"
    with flaky_server(root) as (url, handler):
        names, options = _names(url), {"palette": palette, "tries": 2, "client": client, "report": print}
        extract_palette(names, store=reference, **options)
        handler.failing.add(f"/{PHOTOS[0].name}")
        first = extract_palette(names, store=store, **options)
        assert [(f.image, f.transient) for f in first.failures] == [(names[0], True), (names[3], False)]
        assert first.to_dict()["images"]["transient"] == 1
        report = html_report(first, tmp_path / "report.html", client=client)
        assert "2 failed (1 on a transient fault: --resume reads them again)" in open(report).read()
        handler.failing.clear()
        resumed = extract_palette(names, store=store, resume=True, **options)
    assert [(f.image, f.transient) for f in resumed.failures] == [(names[3], False)]
    _same_stores(store, reference)


def test_a_failure_stored_before_transient_failures_were_told_apart_is_permanent(files, tmp_path, capsys):
    """An older store holds 0 to 2: its failures are permanent, and a resume leaves them."""
    root, palette = files
    store = tmp_path / "run.zarr"
    with flaky_server(root) as (url, handler):
        names = _names(url)
        handler.failing.add(f"/{PHOTOS[2].name}")
        common = ["--palette", palette, "--threads", *TRIES]
        assert main(["run", *names, "-o", str(store), *common, "-q"]) == EXIT_PARTIAL
        capsys.readouterr()
        group = zarr.open_group(store, mode="r+")
        status = group["image_status"][:]
        group["image_status"][:] = np.where(status == FAILED_TRANSIENT, FAILED, status)  # as an older run
        handler.failing.clear()
        code = main(["run", *names, "-o", str(store), *common, "--resume"])
        assert code == EXIT_OK and "nothing to do" in capsys.readouterr().err
    assert list(load_result(store).image_status) == [DONE, DONE, FAILED, FAILED]


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    """A tiled TIFF read by ranges, tile by tile (``chunk_bytes`` below its size), beside a small photo."""
    root = tmp_path_factory.mktemp("tiled")
    tifffile.imwrite(root / "tiled.tif", skimage.data.astronaut()[:256, :256], tile=(64, 64))
    with tifffile.TiffFile(root / "tiled.tif") as tif:
        first_tile = int(min(tif.pages[0].dataoffsets))
    write_png(root / "small.png", skimage.data.coffee()[100:150, 200:260])
    return root, first_tile


@pytest.mark.parametrize("stage", ["sampling", "counting"])
def test_a_tiled_tiff_read_by_ranges_that_meets_a_transient_fault_is_stored_as_transient(
    tiled, files, tmp_path, client, stage
):
    """Its header is read; its tiles answer 503: in the sampling pass (a palette fitted), or in the counting
    pass (a palette applied). It is stored as transient, and a resume reads it."""
    root, first_tile = tiled
    store, reference = tmp_path / "run.zarr", tmp_path / "reference.zarr"
    options = {"tries": 2, "client": client, "chunk_bytes": 2**15, "report": print}
    options |= {"palette": files[1]} if stage == "counting" else {"k": 3}
    with flaky_server(root) as (url, handler):
        names = [f"{url}/tiled.tif", f"{url}/small.png"]
        if stage == "counting":
            extract_palette(names, store=reference, **options)
        handler.failing.add("/tiled.tif")
        handler.from_byte["/tiled.tif"] = first_tile
        first = extract_palette(names, store=store, **options)
        assert handler.answered >= 2
        assert list(first.image_status) == [FAILED_TRANSIENT, DONE], first.failures
        assert first.failures[0].transient and "503" in first.failures[0].reason
        handler.failing.clear()
        resumed = extract_palette(names, store=store, resume=True, **options)
    assert list(resumed.image_status) == [DONE, DONE]
    if stage == "counting":  # the same palette: the same store
        _same_stores(store, reference)
