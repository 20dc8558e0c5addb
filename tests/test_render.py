import io
import json

import numpy as np
import pytest
import zarr
from helpers import PHOTOS, write_png
from PIL import Image

from palette_dask import palette_bar, palette_figure, read_image, thumbnail
from palette_dask.cli import main


def test_bar_segments_are_proportional_and_largest_first():
    colors = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    bar = palette_bar(colors, [0.2, 0.5, 0.3])
    assert bar.shape == (50, 300, 3) and bar.dtype == np.uint8
    widths = {tuple(c): int((bar[0] == c).all(axis=1).sum()) for c in colors}
    assert widths == {(0, 255, 0): 150, (0, 0, 255): 90, (255, 0, 0): 60}
    assert bar[25, 0].tolist() == [0, 255, 0] and bar[25, 299].tolist() == [255, 0, 0]
    assert (bar == bar[:1]).all()  # every row is the same


@pytest.mark.parametrize("shares", [[1, 1, 1], [0.001, 0.999], [3, 0, 7], [1 / 7] * 7])
def test_bar_always_fills_its_width(shares):
    colors = np.linspace(10, 250, 3 * len(shares)).reshape(-1, 3)
    bar = palette_bar(colors, shares, width=301, height=4)
    assert bar.shape == (4, 301, 3)
    painted = np.zeros(301, bool)
    for color, share in zip(np.rint(colors).astype(np.uint8), np.asarray(shares) / np.sum(shares)):
        width = int((bar[0] == color).all(axis=1).sum())
        assert abs(width - share * 301) <= 1
        painted |= (bar[0] == color).all(axis=1)
    assert painted.all()


def test_thumbnail_and_figure():
    image = read_image(str(PHOTOS[0]))
    small = thumbnail(image, max_side=100)
    assert small.shape == (86, 86, 3)  # every 6th pixel: at most 100 on a side
    np.testing.assert_array_equal(small, image.compute(scheduler="sync")[::6, ::6])
    figure = palette_figure(small, [[200, 10, 10], [10, 10, 200]], [3, 1], title="astronaut")
    assert len(figure.axes) == 2
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pixels = np.asarray(Image.open(buffer).convert("RGB")).reshape(-1, 3)
    assert Image.open(buffer).size == (1000, 400)
    for colour in ([200, 10, 10], [10, 10, 200]):  # the bar's colours are drawn as they are
        assert (pixels == colour).all(axis=1).sum() > 1000


def test_orders_and_exports(capsys, tmp_path):
    import csv
    import json

    from palette_dask.cli import main

    store = tmp_path / "s.zarr"
    assert main(["run", str(PHOTOS[0]), "-o", str(store), "--threads", "-q", "-k", "6"]) == 0
    capsys.readouterr()
    exports = [tmp_path / name for name in ("p.json", "p.csv", "p.gpl")]
    argv = ["show", str(store), "--order", "lightness", "--png", str(tmp_path / "bar.png")]
    assert main([*argv, *(a for path in exports for a in ("--export", str(path)))]) == 0
    table = capsys.readouterr().out
    entries = json.loads(exports[0].read_text())
    from skimage.color import rgb2lab

    lightness = [rgb2lab(np.array([[e["rgb"]]]) / 255)[0, 0, 0] for e in entries]
    assert lightness == sorted(lightness) and len(entries) == 6
    with open(exports[1]) as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["id"]), r["hex"]) for r in rows] == [(e["id"], e["hex"]) for e in entries]
    assert abs(sum(float(r["proportion"]) for r in rows) - 1) < 1e-5
    gpl = exports[2].read_text().splitlines()
    assert gpl[:4] == ["GIMP Palette", "Name: palette_dask", "Columns: 6", "#"]
    assert [line.split()[3:6] for line in gpl[4:]] == [[str(e["id"]), e["name"], e["hex"]] for e in entries]
    assert table.index(entries[0]["hex"]) < table.index(entries[-1]["hex"])  # the table in the same order
    bar = np.asarray(Image.open(tmp_path / "bar.png"))
    assert tuple(bar[0, 0]) == tuple(int(v) for v in bytes.fromhex(entries[0]["hex"][1:]))  # darkest first
    assert main(["show", str(store), "--export", str(tmp_path / "p.txt")]) == 2
    assert "must end in .json, .csv or .gpl" in capsys.readouterr().err
    hues = main(["show", str(store), "--order", "hue", "--export", str(tmp_path / "h.json")])
    assert hues == 0 and len(json.loads((tmp_path / "h.json").read_text())) == 6


def test_one_id_per_colour_in_the_table_json_labels_and_per_image_arrays(tmp_path, capsys):
    """Three flat colours whose shares are not in the store's order: each keeps one id everywhere."""
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)
    image = np.repeat(colours, [100, 600, 300], axis=0).reshape(25, 40, 3)  # shares 10%, 60%, 30%
    other = np.repeat(colours, [500, 100, 400], axis=0).reshape(25, 40, 3)
    paths = [write_png(tmp_path / "a.png", image), write_png(tmp_path / "b.png", other)]
    store = tmp_path / "s.zarr"
    assert main(["run", *paths, "-o", str(store), "-k", "3", "--threads", "--labels", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)["palette"]
    assert sorted(e["id"] for e in entries) == [1, 2, 3]
    assert [e["proportion"] for e in entries] == sorted((e["proportion"] for e in entries), reverse=True)
    group = zarr.open_group(store, mode="r")
    assert main(["show", str(store), "--order", "lightness"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:] if line.split()[0].isdigit()]
    table = {row[1]: int(row[0]) for row in rows}
    for entry in entries:
        column = entry["id"] - 1
        assert table[entry["hex"]] == entry["id"]  # the table, in another order, shows the same id
        assert "#{:02x}{:02x}{:02x}".format(*group["colors"][column]) == entry["hex"]
        assert group["counts"][column] == entry["count"]
        for index, pixels in enumerate((image, other)):
            labels = group[f"labels/{index}/0"][:]
            here = labels == entry["id"]
            assert here.sum() == group["image_counts"][index, column]
            assert len(np.unique(pixels[here], axis=0)) == 1  # one colour under one label value
            assert (pixels[here][0] == colours).all(axis=1).any()


@pytest.mark.slow
def test_colour_names_are_the_nearest_by_ciede2000_in_css_or_a_file(tmp_path, capsys):
    from skimage.color import deltaE_ciede2000, rgb2lab

    from palette_dask.constants import css_colours
    from palette_dask.outputs.names import colour_names

    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (300, 3)).astype(np.uint8)
    css = css_colours()
    assert len(css) == 148 and css["rebeccapurple"] == "#663399"
    lab = {
        name: rgb2lab(np.array([[[int(code[i : i + 2], 16) / 255 for i in (1, 3, 5)]]]))[0, 0]
        for name, code in css.items()
    }
    for colour in colours:
        (named,) = colour_names([colour])  # one colour: its nearest name
        here = rgb2lab(colour[None, None] / 255.0)[0, 0]
        distances = {name: float(deltaE_ciede2000(here, value)) for name, value in lab.items()}  # brute force
        assert distances[named] == min(distances.values())
    vocabulary = tmp_path / "names.txt"
    vocabulary.write_text("# the museum's own\nbrick red, #c74c32\nsea green #2e8b57\n\nnight\t#101020\n")
    store = tmp_path / "s.zarr"
    assert main(["run", str(PHOTOS[1]), "-k", "3", "-o", str(store), "--threads", "-q"]) == 0
    capsys.readouterr()
    assert main(["show", str(store), "--names", str(vocabulary), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)["palette"]
    assert {e["name"] for e in entries} <= {"brick red", "sea green", "night"}
    assert (
        entries[0]["name"]
        == colour_names(
            [[int(entries[0]["hex"][i : i + 2], 16) for i in (1, 3, 5)]],
            {"brick red": "#c74c32", "sea green": "#2e8b57", "night": "#101020"},
        )[0]
    )
    vocabulary.write_text("brick red, #c74c3\n")
    assert main(["show", str(store), "--names", str(vocabulary)]) == 2
    assert f"{vocabulary}:1: expected a name and a hex code" in capsys.readouterr().err


def _css_by_code():
    """CSS's named colours as ``{code: [names, sorted]}``, and each name's 8-bit colour."""
    from palette_dask.constants import css_colours

    css, codes = css_colours(), {}
    for name, code in css.items():
        codes.setdefault(code, []).append(name)
    rgb = {name: [int(code[i : i + 2], 16) for i in (1, 3, 5)] for name, code in css.items()}
    return css, codes, rgb


def test_a_colour_css_spells_twice_is_one_name_in_a_palette_its_gray_spelling():
    from palette_dask.outputs.names import named_colours

    css, codes, rgb = _css_by_code()
    twins = {code: names for code, names in codes.items() if len(names) > 1}
    assert {n for names in twins.values() for n in names} >= {
        f"{tone}{spelling}" for tone in ("", "dark", "dim", "light", "slate", "darkslate", "lightslate")
        for spelling in ("gray", "grey")
    }  # fmt: skip
    for code, names in twins.items():  # the colour twice: its first name (gray), then another colour's
        (first, zero), (second, _) = named_colours([rgb[names[0]]] * 2)
        assert first == names[0] and zero == 0 and "grey" not in first
        assert css[second] != code, (names, second)
    # every CSS colour once, twins by both spellings: each colour its own name, at 0, spelled once
    palette = list(css)
    named = named_colours([rgb[name] for name in palette])
    for name, (shown, difference) in zip(palette, named):
        first = codes[css[name]][0]
        assert (shown, difference) == ((first, 0) if name == first else (f"{first} 2", 0)), name
    assert len({shown for shown, _ in named}) == len(palette)


@pytest.mark.slow
def test_every_pair_of_css_colours_gets_two_colours_names_never_one_colour_spelled_twice():
    from palette_dask.outputs.names import named_colours

    css, codes, rgb = _css_by_code()
    names = list(css)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            (first, d1), (second, d2) = named_colours([rgb[a], rgb[b]], css)
            if css[a] != css[b]:  # two colours: each its own name, its first spelling, at 0
                assert (first, d1, second, d2) == (codes[css[a]][0], 0, codes[css[b]][0], 0), (a, b)
            else:  # one colour spelled twice: its first name, then another colour's
                assert first == codes[css[a]][0] and css[second] != css[a], (a, b, second)


def test_the_figure_shows_masked_pixels_on_a_checkerboard_not_black(tmp_path):
    rgba = np.zeros((120, 160, 4), np.uint8)
    rgba[:, 80:] = [200, 40, 40, 255]  # the right half red, the left half transparent (masked)
    path = write_png(tmp_path / "half.png", rgba)
    assert main(["run", path, "-k", "1", "--figure", str(tmp_path / "f.png"), "--threads", "-q"]) == 0
    figure = np.asarray(Image.open(tmp_path / "f.png").convert("RGB")).reshape(-1, 3)
    grey = (figure == [204, 204, 204]).all(axis=1).sum()
    black = (figure == [0, 0, 0]).all(axis=1).sum()
    assert grey > 20_000 and black < 500  # the masked half: checkerboard squares, not a black block (titles)


def test_show_images_columns_stay_aligned_whatever_the_status():
    from palette_dask.errors import Status
    from palette_dask.outputs.render import format_images
    from palette_dask.outputs.result import PaletteResult

    two = np.array([[0, 0, 0], [255, 255, 255]], np.float32)
    statuses = [Status.DONE, Status.FAILED_TRANSIENT, Status.FAILED, Status.DONE]
    result = PaletteResult(
        two, two, two.astype(np.uint8), np.array([4, 12]), ["a.png", "b.png", "c.png", "d.png"],
        np.array([[1, 3], [0, 0], [0, 0], [2, 2]]), np.array([4, 0, 0, 4]), np.zeros(4, int),
        np.array([int(s) for s in statuses]), ["", "b.png: HTTP 503", "c.png: not an image", ""],
    )  # fmt: skip
    lines = format_images(result).splitlines()
    assert lines[2].startswith("failed_transient  ") and lines[3].startswith("failed            ")
    valid_ends = lines[0].index("valid") + len("valid")  # the column of valid pixels, right-aligned
    assert lines[1].index("4") + 1 == lines[4].index("4") + 1 == valid_ends
    assert lines[2].index("b.png") == lines[3].index("c.png") == valid_ends + 2  # errors after it
