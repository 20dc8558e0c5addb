import csv
import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import PHOTOS, every_array, photo_crops, write_png
from PIL import Image

from palette_dask import load_result
from palette_dask.cli import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_run_json_is_one_document_as_designed(capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "run", *PHOTOS[:2], "-o", tmp_path / "o.zarr", "--json", "--threads", "--seed", "1"
    )
    assert code == 0
    document = json.loads(out)  # exactly one document: json.loads rejects anything after it
    assert document["k"] == 5 and document["space"] == "lab" and document["store"] == str(tmp_path / "o.zarr")
    assert document["pixels"] == {"valid": 512 * 512 + 400 * 600, "masked": 0}
    assert document["images"] == {"total": 2, "done": 2, "failed": 0, "transient": 0}
    palette = document["palette"]
    shares = [entry["proportion"] for entry in palette]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1)
    assert sum(entry["count"] for entry in palette) == document["pixels"]["valid"]
    for entry in palette:
        assert entry["hex"] == "#{:02x}{:02x}{:02x}".format(*(int(round(v)) for v in entry["rgb"]))
        assert any(v != round(v) for v in entry["rgb"])  # unrounded centres
    assert err.startswith("palette-dask: dashboard at") and len(err.splitlines()) == 1  # no progress


def test_run_table_show_and_png(capsys, tmp_path):
    code, out, err = run_cli(
        capsys,
        "run",
        PHOTOS[1],
        "-o",
        tmp_path / "o.zarr",
        "--threads",
        "--png",
        tmp_path / "bar.png",
        "--figure",
        tmp_path / "fig.png",
    )
    assert code == 0
    assert "share" in out and "1 of 1 image done" in out
    assert "fitting k=5 colours" in err and "dashboard at http://127.0.0.1:" in err
    bar = np.asarray(Image.open(tmp_path / "bar.png"))
    assert bar.shape == (50, 300, 3)
    assert Image.open(tmp_path / "fig.png").size[0] > 300
    code, shown, _ = run_cli(capsys, "show", tmp_path / "o.zarr")
    assert code == 0 and shown == out
    code, document, _ = run_cli(capsys, "show", tmp_path / "o.zarr", "--json")
    assert json.loads(document)["palette"][0]["hex"] in out


def test_some_images_failing_exit_3(capsys, tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    code, out, err = run_cli(
        capsys, "run", PHOTOS[1], tmp_path / "zero.png", "-o", tmp_path / "o.zarr", "--json", "--threads"
    )
    assert code == 3
    document = json.loads(out)
    assert document["images"] == {"total": 2, "done": 1, "failed": 1, "transient": 0}
    assert document["failures"] == [
        {"image": str(tmp_path / "zero.png"), "error": "empty file (0 bytes)", "transient": False}
    ]


def bad_inputs(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    data = PHOTOS[1].read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    write_png(tmp_path / "clear.png", np.zeros((8, 8, 4), np.uint8))
    (tmp_path / "text.png").write_text("not an image")
    return {
        "missing.png": "missing.png: no such file",
        "empty": "empty: directory holds no images",
        "zero.png": "zero.png: empty file (0 bytes)",
        "cut.png": "cut.png: cannot decode",
        "clear.png": "clear.png: no valid pixels",
        "text.png": "text.png: not a readable image",
    }


@pytest.mark.parametrize("name", ["missing.png", "empty", "zero.png", "cut.png", "clear.png", "text.png"])
def test_bad_input_is_one_line_and_exit_1(capsys, tmp_path, name):
    expected = bad_inputs(tmp_path)[name]
    code, out, err = run_cli(capsys, "run", tmp_path / name, "-o", tmp_path / "o.zarr", "--threads", "-q")
    assert code == 1
    lines = err.strip().splitlines()
    failed = "" if name in ("missing.png", "empty") else "failed: "  # stopped before, or failed (-q shows it)
    assert len(lines) == 1 and lines[0].startswith(f"palette-dask: {failed}{tmp_path}/{expected}")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "-k", "0", "a.png"], "argument -k: expected a whole number >= 1, got 0"),
        (["run", "-k", "five", "a.png"], "argument -k: expected a whole number, got 'five'"),
        (["run", "--seed", "-2", "a.png"], "argument --seed: expected a whole number >= 0"),
        (["run"], "the following arguments are required: INPUT"),
        (["run", "a.png", "--colour"], "unrecognized arguments: --colour"),
        (["paint"], "invalid choice: 'paint'"),
        (["run", "a.png", "--space", "hsv"], "argument --space: invalid choice: 'hsv'"),
        (["run", "a.png", "--batch-size", "9000"], "expected a whole number from 1 to 8192, got 9000"),
        ([], "the following arguments are required: command"),
    ],
)
def test_usage_errors_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_existing_output_is_refused_before_any_work(capsys, tmp_path):
    store = tmp_path / "o.zarr"
    store.mkdir()
    (store / "data.bin").write_bytes(b"someone's")
    code, _, err = run_cli(capsys, "run", PHOTOS[1], "-o", store)
    assert code == 1
    assert (
        err.strip()
        == f"palette-dask: {store}: already exists and is not a palette_dask store: choose another output"
    )


def test_show_of_something_else(capsys, tmp_path):
    code, _, err = run_cli(capsys, "show", tmp_path / "nothing.zarr")
    assert code == 1 and "not a palette_dask store" in err


@pytest.mark.cluster
@pytest.mark.slow
def test_default_process_cluster_and_demo(capsys, tmp_path):
    code, out, err = run_cli(capsys, "demo", "--out", tmp_path / "demo", "--workers", "2")
    assert code == 0, err
    assert "dashboard at http://127.0.0.1:" in err
    for name in ("palette.png", "astronaut-palette.png", "logo-palette.png", "demo.zarr/zarr.json"):
        assert (tmp_path / "demo" / name).exists(), name
    assert "5 of 5 images done" in out
    assert load_result(tmp_path / "demo" / "demo.zarr").image_palettes.shape == (5, 5, 3)  # own colours
    assert out.count(" #") >= 5 * 3 and "palette-dask search" in out


def test_lab_space_on_the_command_line_and_in_show(capsys, tmp_path):
    store = tmp_path / "lab.zarr"
    code, out, _ = run_cli(capsys, "run", PHOTOS[1], "-o", store, "--space", "lab", "--json", "--threads")
    document = json.loads(out)
    assert code == 0 and document["space"] == "lab" and document["lab_error"] > 0
    code, out, _ = run_cli(capsys, "show", store)
    rms = document["lab_error"] ** 0.5
    assert code == 0 and f"(RMS delta E {rms:.2f})" in out


@pytest.mark.slow
def test_a_failed_run_leaves_nothing_and_the_same_command_runs_twice(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "run", "missing.png", "--threads", "-q")
    assert code == 1 and err.strip() == "palette-dask: missing.png: no such file or directory"
    code, _, err = run_cli(capsys, "run", "missing.png", "-o", "o.zarr", "--threads", "-q")
    assert code == 1 and list(tmp_path.iterdir()) == []  # refused before a cluster or a store
    write_png(tmp_path / "clear.png", np.zeros((8, 8, 4), np.uint8))
    code, _, err = run_cli(capsys, "run", "clear.png", "-o", "o.zarr", "--threads", "-q")
    assert code == 1 and "clear.png: no valid pixels" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clear.png"]  # no store of nothing
    code, out, _ = run_cli(capsys, "run", "clear.png", "-o", "o.zarr", "--threads")
    assert code == 1 and "no store kept (o.zarr: no image was done)" in out, out  # -o was given
    for _ in range(2):  # without -o: printed, nothing kept, so the same command works again
        code, out, _ = run_cli(capsys, "run", str(PHOTOS[1]), "-k", "3", "--threads")
        assert code == 0 and "no store kept (-o OUT.zarr keeps one)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clear.png"]
    code, _, err = run_cli(capsys, "run", str(PHOTOS[1]), "--labels", "--threads")
    assert code == 2 and "--labels needs a store: -o OUT.zarr" in err


@pytest.mark.slow
def test_the_readme_quick_start_runs_top_to_bottom_in_one_folder(capsys, tmp_path, monkeypatch, real_rasters):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0] for line in block.splitlines() if line.startswith("palette-dask ")]
    assert len(commands) >= 5
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    for photo in PHOTOS:
        shutil.copy(photo, tmp_path / "photos")
    shutil.copy(real_rasters / "RGB.byte.tif", tmp_path / "scene.tif")
    for command in commands:
        argv = shlex.split(command.replace(">", " > "))
        if ">" in argv:  # a shell redirection: the JSON document goes to the file
            argv, target = argv[: argv.index(">")], argv[argv.index(">") + 1]
        else:
            target = None
        code = main([*argv[1:], "--threads"] if argv[1] in ("run", "sweep") else argv[1:])
        out = capsys.readouterr().out
        assert code == 0, command
        if target:
            Path(target).write_text(out)
    assert json.loads(Path("palette.json").read_text())["images"]["done"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bar.png", "change.csv", "curve.png", "palette.json", "photos", "photos.zarr", "report.html",
        "scene.tif", "scene.zarr",
    ]  # fmt: skip
    grown, scene = load_result("photos.zarr"), load_result("scene.zarr")
    assert len(grown.image_names) == 4 and np.array_equal(grown.image_counts[3], scene.image_counts[0])


@pytest.mark.slow
def test_the_readme_satellite_and_microscopy_examples_run_end_to_end(
    capsys, tmp_path, monkeypatch, real_rasters
):
    import rasterio
    from helpers import photo_mosaic, write_ome_zarr

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### A satellite scene", 1)[1].split("\n## ", 1)[0]  # and "A microscope slide"
    blocks = section.split("```")[1::2]
    commands = [
        [line.split("#")[0] for line in block.splitlines() if line.startswith("palette-dask ")]
        for block in blocks
    ]
    assert [len(c) for c in commands] == [4, 2]
    monkeypatch.chdir(tmp_path)
    shutil.copy(real_rasters / "RGB.byte.tif", "scene.tif")
    with rasterio.open("scene.tif") as scene:  # a later date: the same place, darker
        profile, pixels = scene.profile, scene.read()
    with rasterio.open("later.tif", "w", **profile) as later:
        later.write((pixels * 0.8).astype(pixels.dtype))
    write_ome_zarr(tmp_path / "slide.ome.zarr", photo_mosaic(300, 400), "0.5")
    outputs = {}
    for command in commands[0] + commands[1]:
        argv = shlex.split(command)[1:]
        code = main([*argv, "--threads"] if argv[0] == "run" else argv)
        outputs[command] = capsys.readouterr().out
        assert code == 0, command
    show = next(out for command, out in outputs.items() if "show scene.zarr" in command)
    assert show.splitlines()[0].split()[-2:] == ["area", "km²"]
    compared = json.loads(next(out for command, out in outputs.items() if "compare" in command))
    assert len(compared["stores"]) == 2
    with rasterio.open("scene-labels/scene.labels.tif") as labels, rasterio.open("scene.tif") as scene:
        assert labels.crs == scene.crs and labels.transform == scene.transform
    assert Path("scene-labels/scene.labels.tif.aux.xml").exists()
    slide = json.loads(next(out for command, out in outputs.items() if "show slide.zarr" in command))
    assert all(entry["area_m2"] > 0 for entry in slide["palette"])
    label = zarr.open_group("slide.zarr/labels/0", mode="r").attrs["ome"]
    assert label["multiscales"][0]["axes"][0]["unit"] == "micrometer"
    assert Path("slide.html").exists()


@pytest.mark.slow
def test_resume_from_another_folder_and_by_the_store_alone(capsys, tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    for photo in PHOTOS[:2]:
        shutil.copy(photo, tmp_path / "here")
    monkeypatch.chdir(tmp_path / "here")
    argv = ["run", "astronaut.png", "coffee.png", "-k", "4", "--seed", "3", "--batch-size", "1", "--threads"]
    assert main([*argv, "-o", str(tmp_path / "full.zarr"), "-q"]) == 0
    assert main([*argv, "-o", str(tmp_path / "cut.zarr"), "-q"]) == 0
    group = zarr.open_group(tmp_path / "cut.zarr", mode="r+")  # as if stopped after the first batch
    group["image_status"][1] = 0
    group["image_counts"][1] = 0
    group.attrs["complete"] = False
    capsys.readouterr()
    monkeypatch.chdir(tmp_path / "elsewhere")  # relative inputs were stored as absolute paths
    assert main(["run", "--resume", str(tmp_path / "cut.zarr"), "-q", "--threads"]) == 0
    full, resumed = (every_array(zarr.open_group(tmp_path / n, mode="r")) for n in ("full.zarr", "cut.zarr"))
    assert full.keys() == resumed.keys()
    for name in full:
        np.testing.assert_array_equal(resumed[name], full[name], err_msg=name)
    capsys.readouterr()
    inputs = [str(tmp_path / "here" / name) for name in ("astronaut.png", "coffee.png")]
    code = main(["run", *inputs, "-k", "5", "--resume", "-o", str(tmp_path / "cut.zarr"), "--threads", "-q"])
    assert code == 1
    message = "was made with k 4 (now 5); resuming needs the same parameters"  # not --seed: the store's
    assert message in capsys.readouterr().err


def test_show_images_prints_and_writes_every_images_shares_by_colour_id(capsys, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    inputs = [str(PHOTOS[0]), str(PHOTOS[1]), str(tmp_path / "bad.png")]
    store = tmp_path / "s.zarr"
    assert main(["run", *inputs, "-k", "4", "-o", str(store), "--threads", "-q"]) == 3
    group = zarr.open_group(store, mode="r")
    counts, valid = group["image_counts"][:], group["image_valid"][:]
    capsys.readouterr()
    assert main(["show", str(store), "--images", "--csv", str(tmp_path / "shares.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["status", "valid", "id", "1", "id", "2", "id", "3", "id", "4", "image"]
    done = lines[1].split()
    assert done[0] == "done" and done[-1] == inputs[0]
    assert [float(v.rstrip("%")) for v in done[2:6]] == [round(100 * c / valid[0], 2) for c in counts[0]]
    assert lines[3].startswith("failed") and lines[3].endswith(
        "bad.png: not a readable image (unknown format)"
    )
    with open(tmp_path / "shares.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "image",
        "status",
        "valid_pixels",
        "masked_pixels",
        "error",
        *(f"share_{i}" for i in range(1, 5)),
    ]
    for index, row in enumerate(rows[1:3]):
        np.testing.assert_allclose([float(v) for v in row[5:]], counts[index] / valid[index], atol=1e-6)
    assert main(["show", str(store), "--images", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [entry["id"] for entry in document["palette"]] == [e["id"] for e in document["palette"]]
    assert document["images"][1]["shares"] == [round(c / valid[1], 6) for c in counts[1]]
    failed = document["images"][2]  # not counted: no figures, not 0; its reason alone
    assert failed["status"] == "failed" and failed["shares"] == [None] * 4 and failed["valid_pixels"] is None
    assert failed["error"] == "not a readable image (unknown format)"


def test_search_finds_the_images_a_colour_covers_as_a_numpy_filter_does(capsys, tmp_path):
    from skimage.color import deltaE_ciede2000, rgb2lab

    inputs = [str(tmp_path / f"crop{i}.png") for i in range(12)]
    for path, crop in zip(inputs, photo_crops(12, seed=1, corners=150, sides=(40, 120))):
        write_png(path, crop)
    store = tmp_path / "s.zarr"
    assert main(["run", *inputs, "-k", "6", "-o", str(store), "--threads", "-q", "--batch-size", "5"]) == 0
    group = zarr.open_group(store, mode="r")
    colors, counts, valid = group["colors"][:], group["image_counts"][:], group["image_valid"][:]
    target = np.clip(colors[1].astype(int) + [6, -4, 3], 0, 255)  # near colour id 2, not equal to it
    lab = rgb2lab(colors[None] / 255.0)[0]
    near = deltaE_ciede2000(lab, rgb2lab(target[None, None] / 255.0)[0, :1]) <= 10
    shares = counts[:, near].sum(axis=1) / valid  # the reference: a numpy filter of the stored arrays
    expected = sorted(((s, i) for i, s in enumerate(shares) if s >= 0.1), key=lambda p: (-p[0], p[1]))
    assert expected  # the test can fail: some images hold the colour
    hex_code = "#{:02x}{:02x}{:02x}".format(*target)
    capsys.readouterr()
    assert main(["search", str(store), "--colour", hex_code, "--min-share", "0.1", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ids"] == [i + 1 for i in np.flatnonzero(near)] and 2 in document["ids"]
    assert [(m["share"], m["index"], m["image"]) for m in document["images"]] == [
        (round(float(s), 6), i, inputs[i]) for s, i in expected
    ]
    assert main(["search", str(store), "--colour", hex_code, "--min-share", "0.1", "--top", "2"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[1] for line in out.splitlines()] == [inputs[i] for _, i in expected[:2]]
    assert f"{len(expected)} images with at least 10% of their pixels near it; the top 2" in err
    assert main(["search", str(store), "--colour", "not-a-colour"]) == 2


# Smaller truths a new user met (issue 22)


@pytest.mark.slow
def test_quiet_hides_progress_not_failures_and_sweep_exits_3_like_run(capsys, tmp_path):
    write_png(tmp_path / "a.png", np.asarray(Image.open(PHOTOS[1]))[:120, :160])
    (tmp_path / "b.png").write_bytes(b"not a png")
    code, out, err = run_cli(capsys, "run", tmp_path, "--threads", "-q")
    bad = f"{tmp_path / 'b.png'}: not a readable image (unknown format)"
    assert code == 3 and err.strip() == f"palette-dask: failed: {bad}"  # the failure, and no progress
    code, out, err = run_cli(capsys, "sweep", tmp_path, "-k", "2..4", "--threads", "-q")
    assert code == 3 and f"left out: {tmp_path / 'b.png'}: not a readable image" in err
    code, out, err = run_cli(capsys, "sweep", tmp_path, "-k", "2..4", "--threads", "--json")
    failure = {"image": str(tmp_path / "b.png"), "error": "not a readable image (unknown format)"}
    assert code == 3 and json.loads(out)["failures"] == [{**failure, "transient": False}]


def test_counts_are_said_in_the_singular_and_show_csv_says_what_it_wrote(capsys, tmp_path):
    store = tmp_path / "s.zarr"
    code, out, err = run_cli(capsys, "run", PHOTOS[1], "-o", store, "--threads")
    assert code == 0 and "reading and sampling 1 image in 1 batch" in err and "counting: 1/1 image" in err
    assert "1 of 1 image done" in out and " 1 images" not in out + err and " 1 batches" not in err
    code, out, err = run_cli(capsys, "show", store, "--csv", tmp_path / "s.csv")
    assert code == 0 and err.strip() == f"palette-dask: wrote the shares of 1 image to {tmp_path / 's.csv'}"
    assert (tmp_path / "s.csv").read_text().count("\n") == 2


def test_after_no_image_was_read_no_counting_or_done_line_follows(capsys, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    code, out, err = run_cli(capsys, "run", tmp_path, "-o", tmp_path / "o.zarr", "--threads")
    assert code == 1  # no image could be processed
    lines = err.splitlines()
    after = lines[lines.index("palette-dask: no image was read") + 1 :]
    assert not any("counting" in line or line == "palette-dask: done" for line in after), err


def test_the_counting_progress_counts_the_images_counted_not_those_held_or_failed(capsys, tmp_path):
    crops = photo_crops(3, seed=4, corners=100, sides=(30, 60))
    for name, crop in zip(("a.png", "b.png", "c.png"), crops):
        write_png(tmp_path / name, crop)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    store = tmp_path / "s.zarr"
    first = [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "bad.png"]  # batches [a, b], [bad]
    code, out, err = run_cli(capsys, "run", *first, "-k", "3", "-o", store, "--threads", "--batch-size", "2")
    counting = [line for line in err.splitlines() if line.startswith("palette-dask: counting:")]
    assert code == 3 and counting[-1] == "palette-dask: counting: 2/2 images", err  # bad.png: not counted
    assert all(line.endswith("/2 images") for line in counting) and len(set(counting)) == len(counting)
    # one image appended fills the last batch, [bad, c]: bad.png is held as stored, c.png alone is counted
    code, out, err = run_cli(capsys, "run", tmp_path / "c.png", "-o", store, "--append", "--threads")
    counting = [line for line in err.splitlines() if line.startswith("palette-dask: counting")]
    assert code == 0 and counting == [
        "palette-dask: counting the pixels of 1 image",
        "palette-dask: counting: 1/1 image",
    ], err


def test_the_sampling_progress_of_a_subset_counts_the_images_read_not_those_failed(capsys, tmp_path):
    for i, crop in enumerate(photo_crops(60, seed=2, corners=50, sides=(8, 16))):
        write_png(tmp_path / f"p{i:02d}.png", crop)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "empty.png").write_bytes(b"")
    code, out, err = run_cli(capsys, "run", tmp_path, "-k", "3", "--sample", "1000", "--threads")
    assert code == 3 and "sampling from the images chosen" in err  # a subset: a pass of its own
    sampling = [line for line in err.splitlines() if line.startswith("palette-dask: sampling:")]
    assert sampling[-1] == "palette-dask: sampling: 60/60 images", err  # the two broken files: not sampled
    assert all(line.endswith("/60 images") for line in sampling), err
    assert "palette-dask: reading: 62/62 images" in err  # the first pass reads all 62


def test_a_progress_line_is_not_written_twice_when_a_batch_adds_nothing():
    import io

    from palette_dask.run.progress import Progress

    for live in (False, True):
        stream = io.StringIO()
        progress = Progress(stream, live=live, interval=0)  # every new figure written
        for done in (0, 2, 2, 3, 3):  # a batch of failed or held images adds nothing
            progress.update("counting", done, 3)
        progress("done")
        written = stream.getvalue().replace("\r", "\n").splitlines()
        assert [line.split()[-2] for line in written if "/3" in line] == ["0/3", "2/3", "3/3"], written


def test_a_list_file_reads_paths_from_its_own_folder_and_says_so(capsys, tmp_path, monkeypatch):
    (tmp_path / "lists").mkdir()
    write_png(tmp_path / "a.png", np.asarray(Image.open(PHOTOS[1]))[:60, :80])
    listing = tmp_path / "lists" / "inputs.txt"
    listing.write_text("a.png\n")  # relative to the list's folder: lists/a.png, which does not exist
    monkeypatch.chdir(tmp_path)  # where a.png is
    code, out, err = run_cli(capsys, "run", listing, "--threads", "-q")
    assert code == 1 and "inputs.txt:1: 'a.png' is read relative to the list file's folder" in err
    listing.write_text("../a.png\n")
    assert run_cli(capsys, "run", listing, "--threads", "-q")[0] == 0


def test_palette_names_are_distinct_and_say_when_they_are_far(capsys, tmp_path):
    from palette_dask.constants import css_colours
    from palette_dask.outputs.names import named_colours

    sienna_like = [[160, 82, 45], [165, 85, 50], [43, 44, 61]]  # two near sienna; #2b2c3d, far from black
    found = named_colours(sienna_like)
    assert found[0][0] == "sienna" and found[1][0] not in ("sienna", found[0][0])
    assert len({name for name, _ in found}) == 3 and found[2][1] > 10  # no name within 10 of #2b2c3d
    assert named_colours([[0, 0, 0]] * 3, {"black": "#000000", "white": "#ffffff"})[2][0] == "black 2"
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:, :10], pixels[:, 10:20], pixels[:, 20:] = sienna_like
    write_png(tmp_path / "p.png", pixels)
    store = tmp_path / "p.zarr"
    code, out, err = run_cli(capsys, "run", tmp_path / "p.png", "-k", "3", "-o", store, "--threads")
    assert code == 0 and "~" in out and "the nearest name is more than CIEDE2000 10 away" in out
    names = [line.split()[2] for line in out.splitlines()[1:4]]
    assert len(set(names)) == 3 and "sienna" in names
    vocabulary = tmp_path / "names.txt"
    vocabulary.write_text("a decade\n")  # a name alone, its last word reads as hex: refused
    code, out, err = run_cli(capsys, "show", store, "--names", vocabulary)
    assert code == 2 and f"{vocabulary}:1: expected a name and a hex code" in err
    assert set(css_colours()) > {"sienna"}
