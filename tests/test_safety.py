"""Nothing of the user's is deleted or changed: only the store they named is replaced, if it is one."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import PHOTOS, REAL_RASTERS

from palette_dask import StoreError, extract_palette
from palette_dask.cli import main
from palette_dask.outputs.store import DONE, is_store

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"

ALREADY = (
    "already exists; pass --overwrite (overwrite=True) to replace it or --resume (resume=True) to finish it"
)


def snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder`` with the digest of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "dir"
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture
def photos(tmp_path) -> Path:
    """A user's folder: a GeoTIFF, two photos and a text file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.tif").write_bytes((REAL_RASTERS / "world.rgb.tif").read_bytes())
    for path in PHOTOS[1:]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "notes.txt").write_text("field notes, not backed up\n")
    return folder


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_overwrite_refuses_a_photo_folder_and_touches_nothing(capsys, photos):
    before = snapshot(photos)
    code, out, err = cli(capsys, "run", photos / "a.tif", "-o", photos, "--overwrite", "--threads")
    assert code == 1 and out == ""
    assert err == (
        f"palette-dask: {photos}: is a folder that is not a palette_dask store; "
        "--overwrite only replaces a store made by palette-dask: choose another output\n"
    )
    code, _, err = cli(capsys, "run", photos / "coffee.png", "-o", photos / "a.tif", "--overwrite")
    assert code == 1 and err.startswith(
        f"palette-dask: {photos / 'a.tif'}: is a file, not a palette_dask store"
    )
    code, _, err = cli(capsys, "run", photos / "coffee.png", "-o", photos)
    assert code == 1 and err.strip().endswith(
        "already exists and is not a palette_dask store: choose another output"
    )
    with pytest.raises(StoreError, match="is a folder that is not a palette_dask store"):
        extract_palette(photos / "a.tif", 3, store=photos, overwrite=True)
    assert snapshot(photos) == before


def test_overwrite_replaces_a_store_only_while_it_holds_nothing_else(capsys, tmp_path):
    store = tmp_path / "out.zarr"
    assert cli(capsys, "run", PHOTOS[1], "-o", store, "-k", "3", "--threads", "-q")[0] == 0
    assert is_store(store)
    code, _, err = cli(capsys, "run", PHOTOS[1], "-o", store, "-k", "3")
    assert code == 1 and ALREADY in err
    (store / "image_counts" / "my-notes.txt").write_text("kept")
    code, _, err = cli(capsys, "run", PHOTOS[1], "-o", store, "-k", "3", "--overwrite")
    assert code == 1
    assert f"{store}: holds image_counts/my-notes.txt, which palette-dask did not write" in err
    assert (store / "image_counts" / "my-notes.txt").read_text() == "kept"
    (store / "image_counts" / "my-notes.txt").unlink()
    link = tmp_path / "link.zarr"
    link.symlink_to(store)
    code, _, err = cli(capsys, "run", PHOTOS[1], "-o", link, "-k", "3", "--overwrite")
    assert code == 1 and "is a symbolic link, not a palette_dask store" in err and is_store(store)
    code, _, err = cli(capsys, "run", PHOTOS[0], "-o", store, "-k", "2", "--overwrite", "--threads", "-q")
    assert code == 0, err
    group = zarr.open_group(store, mode="r")
    assert group["image_names"][:].tolist() == [str(PHOTOS[0])] and group["centers"].shape == (2, 3)


def test_an_empty_folder_is_a_free_output(capsys, tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    code, _, err = cli(capsys, "run", PHOTOS[1], "-o", tmp_path / "empty.zarr", "-k", "2", "--threads", "-q")
    assert code == 0, err
    assert is_store(tmp_path / "empty.zarr")


def test_resume_refuses_a_folder_that_is_not_a_store_and_leaves_its_partial_files(capsys, photos):
    (photos / "upload.partial").write_bytes(b"half a download of the user's")
    before = snapshot(photos)
    code, _, err = cli(capsys, "run", photos / "coffee.png", "-o", photos, "--resume")
    assert code == 1
    refusal = "not a palette_dask store; --resume finishes a store made by palette-dask"
    assert err == f"palette-dask: {photos}: {refusal}\n"
    assert snapshot(photos) == before


@pytest.mark.slow
def test_a_store_inside_the_input_folder_is_never_an_input(capsys, photos):
    store = photos / "out.zarr"
    expected = sorted(str(photos / name) for name in ("a.tif", "coffee.png", "logo.png"))
    code, _, err = cli(capsys, "run", photos, "-o", store, "-k", "3", "--threads", "-q", "--labels")
    assert code == 0, err
    assert sorted(zarr.open_group(store, mode="r")["image_names"][:].tolist()) == expected
    assert (store / "labels" / "0" / "0" / "c" / "0" / "0").is_file()  # the store's files are not inputs
    code, _, err = cli(capsys, "run", photos, "-o", store, "-k", "3", "--threads", "--resume", "--labels")
    assert code == 0 and "nothing to do" in err
    code, _, err = cli(
        capsys, "run", photos, "-o", store, "-k", "3", "--threads", "-q", "--overwrite", "--labels"
    )
    assert code == 0, err
    group = zarr.open_group(store, mode="r")
    assert sorted(group["image_names"][:].tolist()) == expected
    assert (group["image_status"][:] == DONE).all()


def test_no_output_may_be_an_input(capsys, photos):
    before = snapshot(photos)
    for option in ("--png", "--figure", "--html", "--export"):
        target = photos / "logo.png" if option != "--export" else photos / "notes.txt"
        if option == "--export":
            (photos / "palette.csv").write_text("an input list of the user's")
            target = photos / "palette.csv"
            before = snapshot(photos)
        code, _, err = cli(
            capsys, "run", photos / "coffee.png", target, "-o", photos / "s.zarr", option, target
        )
        assert (
            code == 1
            and err
            == f"palette-dask: {target}: is one of the inputs; palette-dask never writes over its inputs\n"
        )
    assert snapshot(photos) == before and not (photos / "s.zarr").exists()


@pytest.mark.slow
def test_a_job_script_run_twice_refuses_unless_told(tmp_path):
    out = tmp_path / "out"

    def job(*flags):
        command = [
            sys.executable,
            str(WORKFLOWS / "collection_palette.py"),
            str(PHOTOS[1]),
            "--out",
            str(out),
        ]
        return subprocess.run(
            [*command, "-k", "3", "--threads", *flags], capture_output=True, text=True, timeout=300
        )

    assert job().returncode == 0
    created = zarr.open_group(out / "palette.zarr", mode="r").attrs["created"]
    second = job()
    assert second.returncode == 1
    assert ALREADY in second.stderr
    assert "Traceback" not in second.stderr
    resumed = job("--resume")
    assert resumed.returncode == 0 and "nothing to do" in resumed.stderr
    assert job("--overwrite").returncode == 0
    group = zarr.open_group(out / "palette.zarr", mode="r")
    assert group.attrs["complete"] is True and np.asarray(group["counts"][:]).sum() == 400 * 600
    assert os.path.exists(out / "palette.json") and group.attrs["created"] >= created
