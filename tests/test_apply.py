"""Applying a stored palette (``palette=``, ``--palette``): no sample, no fit, the same colour ids."""

import json
import shutil

import numpy as np
import pytest
from helpers import PHOTOS, SKIMAGE_DATA
from PIL import Image

from palette_dask import extract_palette
from palette_dask.cli import main
from palette_dask.errors import ParameterError, StoreError
from palette_dask.kernels.colour import srgb_to_lab
from palette_dask.outputs.palettes import read_palette
from palette_dask.outputs.render import export_palette
from palette_dask.outputs.result import load_result

LATER = [SKIMAGE_DATA / "chelsea.png", SKIMAGE_DATA / "rocket.jpg"]


def numpy_counts(path, centers, space):
    """Each colour's pixels by a plain numpy nearest-centre count (float64; ties to the lower id)."""
    rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(np.float64)
    x = srgb_to_lab(rgb) if space == "lab" else rgb
    distances = ((x[:, None, :] - np.asarray(centers, np.float64)[None]) ** 2).sum(axis=2)
    return np.bincount(distances.argmin(axis=1), minlength=len(centers))


@pytest.fixture(scope="module")
def fitted(client, tmp_path_factory):
    """A store fitted on half of a collection (k=6)."""
    store = tmp_path_factory.mktemp("fitted") / "a.zarr"
    return extract_palette(PHOTOS[:2], 6, store=store, client=client)


@pytest.mark.parametrize("space", ["lab", "rgb"])
def test_a_stores_palette_counts_later_images_as_numpy_does(client, tmp_path, space):
    source = extract_palette(PHOTOS[:2], 6, store=tmp_path / "a.zarr", client=client, space=space)
    lines = []
    applied = extract_palette(
        LATER, store=tmp_path / "b.zarr", client=client, palette=tmp_path / "a.zarr", report=lines.append
    )
    assert np.array_equal(applied.centers, source.centers) and applied.k == 6
    assert applied.attrs["space"] == space
    assert applied.attrs["parameters"]["palette"] == str(tmp_path / "a.zarr")
    assert "sample_inertia" not in applied.attrs  # nothing was fitted
    assert not any("sampl" in line or "fitting" in line for line in lines), lines
    for i, path in enumerate(LATER):
        assert np.array_equal(applied.image_counts[i], numpy_counts(path, source.centers, space)), path


def test_a_store_applied_to_its_own_images_gives_its_own_counts(client, fitted, tmp_path):
    again = extract_palette(PHOTOS[:2], client=client, palette=fitted.store)
    assert np.array_equal(again.image_counts, fitted.image_counts)
    assert again.attrs["inertia"] == pytest.approx(fitted.attrs["inertia"], rel=1e-12)


def test_exported_files_keep_their_ids(fitted, tmp_path):
    for suffix in (".json", ".csv", ".gpl"):
        path = export_palette(fitted, tmp_path / f"p{suffix}")  # in share order: ids shuffled
        given = read_palette(path, "lab")
        if suffix == ".gpl":  # 8-bit colours
            assert np.array_equal(given.centers_rgb, fitted.colors), suffix
        else:
            assert np.allclose(given.centers_rgb, fitted.centers_rgb, atol=5e-4), suffix
        assert np.allclose(given.centers, srgb_to_lab(given.centers_rgb), atol=1e-4), suffix


def test_plain_colour_lists_are_read_in_file_order(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(["#ff0000", [0, 128, 0], {"hex": "0000ff"}]))
    (tmp_path / "b.csv").write_text("R,G,B\n255,0,0\n0,128,0\n0,0,255\n")
    gimp = "GIMP Palette\nName: three\n#\n255 0 0 red\n0 128 0\t green\n0 0 255 blue\n"
    (tmp_path / "c.gpl").write_text(gimp)
    for name in ("a.json", "b.csv", "c.gpl"):
        given = read_palette(tmp_path / name, "rgb")
        assert given.centers.tolist() == [[255, 0, 0], [0, 128, 0], [0, 0, 255]], name


@pytest.mark.parametrize(
    "name, text, problem",
    [
        ("twice.json", '["#ff0000", "#FF0000"]', "given twice"),
        ("ids.json", '[{"id": 1, "hex": "#ff0000"}, {"id": 3, "hex": "#00ff00"}]', "ids must be 1 to 2"),
        ("range.csv", "r,g,b\n300,0,0\n", "not sRGB from 0 to 255"),
        ("empty.json", "[]", "holds no colour"),
        ("columns.csv", "red;green\n1;2\n", "not a palette"),
        ("bad.json", "{not json", "not a palette"),
        ("object.json", '{"colours": []}', "without a 'palette' list"),
        ("entry.json", '[{"name": "red"}]', "no key 'hex'"),
        ("header.gpl", "255 0 0 red\n", "GIMP Palette"),
        ("colours.txt", "#ff0000\n", "nor a palette file"),
    ],
)
def test_a_bad_palette_is_one_line_naming_it(tmp_path, name, text, problem):
    (tmp_path / name).write_text(text)
    with pytest.raises(ParameterError) as caught:
        read_palette(tmp_path / name, "lab")
    message = str(caught.value)
    assert message.startswith(str(tmp_path / name)) and problem in message and "\n" not in message


def test_a_palette_file_with_a_byte_order_mark_keeps_its_ids(tmp_path):
    (tmp_path / "bom.csv").write_text("\ufeffid,hex,r,g,b\n2,#ff0000,255,0,0\n1,#0000ff,0,0,255\n")
    assert read_palette(tmp_path / "bom.csv", "rgb").centers.tolist() == [[0, 0, 255], [255, 0, 0]]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("list.json", '{"palette": [{"id": [1], "hex": "#ff0000"}]}', "the ids must be whole numbers"),
        ("inf.json", '{"palette": [{"id": 1e999, "hex": "#ff0000"}]}', "the ids must be whole numbers"),
        ("wide.csv", "hex\n#" + "f" * 200_000 + "\n", "not a palette"),
    ],
)
def test_a_hostile_palette_file_is_one_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ParameterError, match=message):
        read_palette(tmp_path / name, "rgb")


def test_resuming_an_applied_store_needs_no_palette_file(client, tmp_path):
    (tmp_path / "p.json").write_text(json.dumps(["#ff0000", "#00ff00", "#0000ff"]))
    store = tmp_path / "r.zarr"
    first = extract_palette(LATER, palette=tmp_path / "p.json", store=store, client=client)
    (tmp_path / "p.json").unlink()  # the store holds what it applied
    again = extract_palette(LATER, palette=tmp_path / "p.json", store=store, client=client, resume=True)
    assert np.array_equal(again.image_counts, first.image_counts) and again.k == 3
    with pytest.raises(ParameterError, match="scale='minmax' is measured on a run's own sample"):
        extract_palette(LATER, palette=store, scale="minmax", client="tcp://127.0.0.1:1")


def test_k_must_agree_with_the_palette(capsys, fitted, tmp_path):
    for k in (3, 5):  # 5, the default, given: refused too
        with pytest.raises(ParameterError, match="has 6 colours"):
            extract_palette(LATER, k, palette=fitted.store, client="tcp://127.0.0.1:1")  # before connecting
    argv = ["run", str(LATER[0]), "--palette", str(fitted.store), "--threads"]
    assert main([*argv, "-k", "5"]) == 2
    assert "k=5, but the palette of" in capsys.readouterr().err
    with pytest.raises(ParameterError, match="not a palette_dask store"):
        extract_palette(LATER, palette=tmp_path / "missing.zarr")


def test_command_line_apply_show_search_and_resume(capsys, fitted, tmp_path):
    store = tmp_path / "later.zarr"
    argv = ["run", *map(str, LATER), "--palette", str(fitted.store), "-o", str(store), "--json"]
    code = main([*argv, "--threads"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0 and document["palette_from"] == str(fitted.store) and document["k"] == 6
    applied = load_result(store)
    assert [e["hex"] for e in applied.palette("lightness")] == [e["hex"] for e in fitted.palette("lightness")]
    assert main(["show", str(store)]) == 0
    assert f"palette applied from {fitted.store}" in capsys.readouterr().out
    darkest = fitted.palette("lightness")[0]  # the same colour, by the same id, in both stores
    for searched in (fitted.store, store):
        assert main(["search", str(searched), "--colour", darkest["hex"], "--min-share", "0", "--json"]) == 0
        found = json.loads(capsys.readouterr().out)
        assert found["ids"] == [darkest["id"]] and found["found"] == 2, searched
    assert main(["run", "--resume", str(store)]) == 0  # the store records its palette: nothing to do
    assert "nothing to do" in capsys.readouterr().err


def test_compare_gives_each_ids_share_in_every_store(capsys, client, fitted, tmp_path):
    later = extract_palette(LATER, store=tmp_path / "later.zarr", client=client, palette=fitted.store)
    stores = [str(fitted.store), str(later.store)]
    assert main(["compare", *stores, "--json", "--csv", str(tmp_path / "c.csv")]) == 0
    comparison = json.loads(capsys.readouterr().out)
    assert comparison["stores"] == stores and [e["id"] for e in comparison["palette"]] == list(range(1, 7))
    for entry in comparison["palette"]:
        i = entry["id"] - 1
        assert entry["shares"] == [float(fitted.proportions[i]), float(later.proportions[i])]
        assert entry["counts"] == [int(fitted.counts[i]), int(later.counts[i])]
        assert entry["change"] == pytest.approx(later.proportions[i] - fitted.proportions[i])
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert rows[0] == f"id,hex,name,{stores[0]},{stores[1]},change" and len(rows) == 7
    other = extract_palette(LATER, 4, store=tmp_path / "other.zarr", client=client)  # fitted anew
    assert main(["compare", stores[0], str(other.store)]) == 2
    assert f"its palette is not that of {stores[0]}" in capsys.readouterr().err


@pytest.mark.slow
def test_append_counts_new_images_with_the_stores_palette(client, tmp_path):
    store, photos = tmp_path / "grown.zarr", []
    for photo in PHOTOS:
        photos.append(tmp_path / photo.name)
        shutil.copy(photo, photos[-1])
    first = extract_palette(photos, 6, store=store, client=client, batch_size=2, per_image=3)
    photos[2].write_bytes(b"gone")  # held in the last batch, which the new images fill: never read again
    lines = []
    grown = extract_palette([*LATER, photos[0]], store=store, client=client, append=True, report=lines.append)
    assert f"skipping 1 image(s) already in {store}" in lines and not any("fitting" in line for line in lines)
    assert grown.image_names == [*map(str, photos), *map(str, LATER)] and (grown.image_status == 1).all()
    assert np.array_equal(grown.centers, first.centers) and grown.complete
    assert np.array_equal(grown.image_counts[:3], first.image_counts)  # the images it held: unchanged
    for i, path in enumerate(LATER):
        assert np.array_equal(grown.image_counts[3 + i], numpy_counts(path, first.centers, "lab")), path
    assert np.array_equal(grown.counts, grown.image_counts.sum(axis=0))
    assert grown.attrs["inputs"] == grown.image_names and grown.attrs["n_inputs"] == 5
    assert grown.image_palettes.shape == (5, 3, 3) and grown.image_palette_shares[3:].sum() > 0
    with pytest.raises(StoreError, match=r"was made with k 6 \(now 4\); appending needs the same"):
        extract_palette(LATER, 4, store=store, client=client, append=True)
    again = extract_palette(LATER, store=store, client=client, append=True)  # all held: nothing to do
    assert again.image_names == grown.image_names


def test_command_line_append_then_resume(capsys, fitted, tmp_path):
    store = tmp_path / "a.zarr"
    assert (
        main(["run", str(PHOTOS[0]), "-o", str(store), "-k", "4", "--sample", "50000", "--threads", "-q"])
        == 0
    )
    capsys.readouterr()
    code = main(["run", *map(str, LATER), "-o", str(store), "--append", "--threads", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0 and document["k"] == 4
    assert document["images"] == {"total": 3, "done": 3, "failed": 0, "transient": 0}
    assert main(["run", "--resume", str(store), "--threads"]) == 0  # the appended names are the store's
    assert "nothing to do" in capsys.readouterr().err
    more = ["run", str(PHOTOS[1]), "-o", str(store), "--append", "--threads", "-q"]
    for given in (["-k", "5"], ["--sample", "100000"]):  # options given at their defaults are compared too
        assert main([*more, *given]) == 1
        assert "was made with" in capsys.readouterr().err
    assert load_result(store).image_names[-1] != str(PHOTOS[1])  # refused: nothing added
    assert main(["run", str(LATER[0]), "--append", "--threads"]) == 2  # no store named
    assert "--append needs a store" in capsys.readouterr().err
    assert main(["run", str(LATER[0]), "-o", str(tmp_path / "none.zarr"), "--append"]) == 1
    assert "not a palette_dask store" in capsys.readouterr().err
