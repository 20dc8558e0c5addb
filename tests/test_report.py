"""The HTML report: its pictures checked pixel by pixel, and the page opened in a real headless Chromium."""

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from helpers import PHOTOS, browse, reference_labels, write_png
from PIL import Image

from palette_dask import extract_palette, palette_bar
from palette_dask.cli import main
from palette_dask.errors import PaletteDaskWarning
from palette_dask.outputs.report import html_report


class Images(HTMLParser):
    """Every <img> of a page: its attributes, and its picture decoded from the data: URI."""

    def __init__(self):
        super().__init__()
        self.images = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            attrs = dict(attrs)
            payload = attrs["src"].split(",", 1)[1]
            attrs["picture"] = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))))
            self.images.append(attrs)


def images_of(path) -> list[dict]:
    parser = Images()
    parser.feed(path.read_text())
    return parser.images


def test_a_few_images_get_previews_recoloured_with_the_palette(client, tmp_path):
    result = extract_palette(
        [str(p) for p in PHOTOS[:2]], 5, client=client, store=tmp_path / "s.zarr", space="rgb"
    )
    page = tmp_path / "report.html"
    html_report(result, page, client=client)
    images = images_of(page)
    assert all(not img["src"].startswith("http") for img in images)  # self-contained
    (bar,) = [img for img in images if img.get("id") == "global-bar"]
    np.testing.assert_array_equal(bar["picture"], palette_bar(result.colors, result.proportions))
    recoloured = [img for img in images if img.get("class") == "recoloured"]
    assert len(recoloured) == 2
    # the astronaut (512 px, shown whole): each pixel in the colour of its nearest centre, computed here
    astronaut = np.asarray(Image.open(PHOTOS[0]).convert("RGB")).reshape(-1, 3)
    expected = result.colors[reference_labels(astronaut, result.centers)]
    shown = recoloured[0]["picture"].reshape(-1, 4)
    assert (shown[:, 3] == 255).all()
    assert (shown[:, :3] == expected).all(axis=1).mean() > 0.999  # ties aside


def test_a_collection_is_a_sortable_list_in_a_real_browser(client, tmp_path, chromium):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sizes = {}
    for i in range(14):
        height, width = int(rng.integers(20, 60)), int(rng.integers(20, 60))
        image = np.zeros((height, width, 3), np.uint8)
        image[:, : width * i // 14] = (200, 30, 30)  # a red share growing with i
        image[:, width * i // 14 :] = (20, 40, 190)
        sizes[f"img{i:02d}.png"] = height * width
        write_png(folder / f"img{i:02d}.png", image)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.warns(PaletteDaskWarning, match="images failed"):
        result = extract_palette(str(folder), 2, client=client)
    page = tmp_path / "report.html"
    html_report(result, page, client=client)

    dom = browse(chromium, page.as_uri() + "#sort=valid-asc", screenshot=tmp_path / "shot.png")
    assert 'data-ready="yes"' in dom  # the page's script ran
    names = re.findall(r'<td data-sort="([^"]+\.png)">', dom)
    assert len(names) == 15 and 'data-sorted-by="valid-asc"' in dom
    done = [n for n in names if not n.endswith("broken.png")]
    valid = [sizes[n.rsplit("/", 1)[-1]] for n in done]
    assert valid == sorted(valid)  # ascending by valid pixels, as the URL asked
    assert names[0].endswith("broken.png")  # 0 valid pixels first
    assert "failed" in dom and "broken.png" in dom

    # the global bar as the browser drew it: each colour a run of its share of 600 pixels
    shot = np.asarray(Image.open(tmp_path / "shot.png").convert("RGB"))
    for colour, share in zip(result.colors, result.proportions):
        runs = [_longest_run(row, colour) for row in shot[:400]]
        assert max(runs) == pytest.approx(share * 600, abs=3)


def _longest_run(row: np.ndarray, colour: np.ndarray) -> int:
    same = np.concatenate([[0], (row == colour).all(axis=1).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(same))
    return int((edges[1::2] - edges[::2]).max()) if len(edges) else 0


def test_report_from_the_command_line(capsys, tmp_path):
    store, page = tmp_path / "s.zarr", tmp_path / "run.html"
    assert main(["run", str(PHOTOS[1]), "-o", str(store), "--threads", "-q", "--html", str(page)]) == 0
    assert len([img for img in images_of(page) if img.get("class") == "recoloured"]) == 1
    capsys.readouterr()
    assert main(["report", str(store), "-o", str(tmp_path / "again.html")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "again.html")
    assert (tmp_path / "again.html").stat().st_size > 10_000


def test_a_tiled_mosaic_preview_is_downsampled_from_its_tiles(client, tmp_path):
    import tifffile

    rng = np.random.default_rng(3)
    mosaic = np.zeros((1700, 1650, 3), np.uint8)
    for i in range(0, 1700, 100):  # blocks of four colours
        for j in range(0, 1650, 150):
            mosaic[i : i + 100, j : j + 150] = [(220, 20, 20), (20, 200, 40), (30, 30, 210), (240, 240, 240)][
                int(rng.integers(0, 4))
            ]
    tifffile.imwrite(tmp_path / "mosaic.tif", mosaic, tile=(256, 256), photometric="rgb")
    result = extract_palette(str(tmp_path / "mosaic.tif"), 4, client=client, space="rgb")
    page = tmp_path / "mosaic.html"
    html_report(result, page, client=client)
    (recoloured,) = [img["picture"] for img in images_of(page) if img.get("class") == "recoloured"]
    step = 3  # ceil(1700 / 800): every third pixel of every third row
    assert recoloured.shape == (567, 550, 4)
    expected = result.colors[reference_labels(mosaic[::step, ::step].reshape(-1, 3), result.centers)]
    np.testing.assert_array_equal(recoloured[..., :3].reshape(-1, 3), expected)


def test_lab_previews_recolour_by_the_nearest_lab_centre(client, tmp_path):
    from palette_dask.kernels.colour import srgb_to_lab

    result = extract_palette(str(PHOTOS[1]), 5, client=client, store=tmp_path / "lab.zarr", space="lab")
    page = tmp_path / "lab.html"
    html_report(result, page, client=client)
    (recoloured,) = [img["picture"] for img in images_of(page) if img.get("class") == "recoloured"]
    coffee = np.asarray(Image.open(PHOTOS[1]).convert("RGB")).reshape(-1, 3)
    lab = srgb_to_lab(coffee.astype(np.float64)).astype(np.float32)
    expected = result.colors[reference_labels(lab, result.centers)]
    assert (recoloured[..., :3].reshape(-1, 3) == expected).all(axis=1).mean() > 0.999  # ties aside


def test_an_output_that_cannot_be_written_is_one_line_and_exit_1(capsys, tmp_path):
    store = tmp_path / "s.zarr"
    assert main(["run", str(PHOTOS[1]), "-o", str(store), "--threads", "-q"]) == 0
    capsys.readouterr()
    assert main(["report", str(store), "-o", str(tmp_path / "no" / "such" / "r.html")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("palette-dask: ") and "No such file or directory" in err
    assert len(err.splitlines()) == 1


class Table(HTMLParser):
    """The text of every cell of one table of a page, row by row (a spreadsheet's paste of it)."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.inside = dict(attrs).get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th"):
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_a_failed_image_has_blank_figures_and_its_reason_alone_in_csv_and_html(capsys, tmp_path):
    import csv

    for name, photo in (("a.png", PHOTOS[0]), ("b.png", PHOTOS[1])):
        write_png(tmp_path / name, np.asarray(Image.open(photo).convert("RGB"))[:60, :80])
    (tmp_path / "bad.png").write_bytes(b"not a png")
    store, page, shares = tmp_path / "s.zarr", tmp_path / "r.html", tmp_path / "shares.csv"
    names = [str(tmp_path / name) for name in ("a.png", "b.png", "bad.png")]
    assert main(["run", *names, "-k", "3", "-o", str(store), "--threads", "-q", "--html", str(page)]) == 3
    assert main(["show", str(store), "--csv", str(shares)]) == 0
    capsys.readouterr()
    reason = "not a readable image (unknown format)"

    with open(shares, newline="") as handle:
        rows = {row["image"]: row for row in csv.DictReader(handle)}
    failed = rows[names[2]]
    assert failed["status"] == "failed" and failed["error"] == reason  # the row names the image already
    columns = ["valid_pixels", "masked_pixels", "share_1", "share_2", "share_3"]
    assert [failed[column] for column in columns] == [""] * 5  # blank, not 0
    assert all(rows[name][column] != "" for name in names[:2] for column in columns)
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(shares)
    for column in ("share_1", "valid_pixels"):  # a mean over the two images counted, not three
        assert frame[column].mean() == pytest.approx(frame[column][:2].sum() / 2)
    assert frame["share_1"].isna().tolist() == [False, False, True]

    table = Table("images")
    table.feed(page.read_text())
    header, *body = table.rows
    (bad,) = [row for row in body if row[1] == names[2]]
    assert bad[2] == "failed" + reason  # the status, then the reason alone (on its own line)
    first_share = header.index("palette") + 1  # then one column per colour, largest share first
    assert bad[header.index("valid pixels")] == "" and bad[first_share:] == ["", "", ""]
    for row in (row for row in body if row is not bad):
        assert row[header.index("valid pixels")] == "4,800" and all("%" in c for c in row[first_share:])
