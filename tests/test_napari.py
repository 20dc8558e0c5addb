"""The napari plugin driven as a user drives it, headless: the widget, the reader, a screenshot.

napari's own ``make_napari_viewer`` fixture (pytest-qt's ``qtbot`` under it)
on an Xvfb display of the tests' own (:func:`headless`); every run is a real one, on a real cluster, into
a real store, and what napari holds is compared with that store.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import tempfile
from urllib.parse import urlsplit

import dask.array as da
import numpy as np
import pytest
import zarr
from helpers import workers_busy

# napari's own autouse fixtures, here only (tests/conftest.py makes them no-ops for the other modules)
from napari.utils._testsupport import LeakSafeLogRecord, _clean_themes, _disable_qt_warnings  # noqa: F401
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from palette_dask import extract_palette, load_result
from palette_dask.napari.layers import labels_layer
from palette_dask.napari.reader import get_reader, read_store
from palette_dask.napari.widget import PaletteWidget, layer_pixels
from palette_dask.run.cluster import dashboard_link


@pytest.fixture(autouse=True, scope="module")
def use_leak_safe_log_records():
    """napari's log record factory (keeps no logged objects) for this module's tests, then the one before."""
    before = logging.getLogRecordFactory()
    logging.setLogRecordFactory(LeakSafeLogRecord)
    yield
    logging.setLogRecordFactory(before)


#: A run, a cluster started: generous, for a loaded machine (the tests wait on signals, not for this long).
RUN_TIMEOUT_MS = 240_000


#: The tests' QApplication, on their Xvfb display (pytest-qt's ``qapp`` takes it): kept for the session.
_APPLICATION: list = []


def _die_with_this_process() -> None:  # pragma: no cover - runs in the child, before exec
    """Ask Linux to send this child SIGTERM when the process that started it dies (``PR_SET_PDEATHSIG``)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


#: The tests' Xvfb server (kept: it ends with its last client, or with this process).
_SERVER: list = []


@pytest.fixture(scope="session")
def headless():
    """A display of the tests' own: an Xvfb server, drawn by Mesa's llvmpipe, Qt on it (``xcb``).

    Qt's ``offscreen`` platform will not do (measured here, Qt 5.15 and 6.11,
    Mesa 22.3): it makes OpenGL contexts only through GLX on an X display
    (``XOpenDisplay``), so with none napari cannot add a layer (vispy reads
    no ``GL_EXTENSIONS``); and on Xvfb the framebuffer napari's
    ``screenshot()`` grabs (``QOpenGLWidget.grabFramebuffer``) stays black
    but for one pixel. On Xvfb through ``xcb``, llvmpipe draws it.
    Debian's ``xvfb`` and Qt's xcb libraries come with ``make system``.
    ``QT_QPA_PLATFORM`` and ``DISPLAY`` are set only while the QApplication
    is made (it keeps its connection), then restored. Xvfb outlives the
    tests as the QApplication does (Qt ends its process when its X server
    goes away) and ends once that connection closes (``-terminate``).
    """
    if QApplication.instance() is not None:
        pytest.fail("a QApplication was made before the napari tests' display: it cannot draw them")
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("the napari tests need Xvfb for OpenGL: run `make test`, or apt-get install xvfb")
    read, write = os.pipe()
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-terminate"],
        pass_fds=(write,), stderr=subprocess.DEVNULL, preexec_fn=_die_with_this_process,
    )  # fmt: skip
    _SERVER.append(server)
    os.close(write)
    with os.fdopen(read) as pipe:
        display = pipe.readline().strip()  # Xvfb writes its display's number once it listens
    if not display:
        pytest.fail(f"Xvfb exited with {server.wait()} before it listened")
    before = {name: os.environ.get(name) for name in ("QT_QPA_PLATFORM", "DISPLAY")}
    os.environ.update(QT_QPA_PLATFORM="xcb", DISPLAY=f":{display}")
    try:
        _APPLICATION.append(QApplication([]))
    except BaseException:  # Qt never connected: -terminate would never end the server
        server.kill()
        server.wait()
        raise
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return _APPLICATION[0]


@pytest.fixture(scope="session")
def qapp(headless):
    """pytest-qt's QApplication (under ``qtbot`` and ``make_napari_viewer``): :func:`headless`'s."""
    return headless


def quadrants(side: int = 64, seed: int = 0) -> np.ndarray:
    """An RGB image of four flat quadrants of far-apart colours, with a little noise."""
    colours = np.array([[200, 30, 40], [30, 160, 60], [40, 60, 210], [230, 220, 60]], np.float64)
    half = side // 2
    image = np.empty((side, side, 3))
    for q, (rows, cols) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        image[rows * half : (rows + 1) * half, cols * half : (cols + 1) * half] = colours[q]
    noise = np.random.default_rng(seed).normal(0, 4, image.shape)
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


def run_widget(qtbot, widget: PaletteWidget) -> None:
    """Click Run and wait on the run's end (the widget's signal, emitted on its worker's ``finished``)."""
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(widget.run_button, Qt.LeftButton)


def table_rows(widget: PaletteWidget) -> list[dict]:
    """The table as the user reads it: each row's cells, and the values they show."""
    rows = []
    for row in range(widget.table.rowCount()):
        cells = [widget.table.item(row, column) for column in range(widget.table.columnCount())]
        rows.append(
            {
                "id": int(cells[0].text()),
                "swatch": cells[1].background().color().name(),
                "name": cells[2].text(),
                "share": cells[3].data(Qt.UserRole),
                "pixels": int(cells[4].text().replace(",", "")),
                "area": cells[5].data(Qt.UserRole),
            }
        )
    return rows


def assert_layer_is_the_store(layer, store: str, index: int = 0) -> None:
    """The Labels layer's data are the store's label raster, its colours the palette's, 0 transparent."""
    group = zarr.open_group(store, mode="r")
    np.testing.assert_array_equal(np.asarray(layer.data), group[f"labels/{index}/0"][:])
    colors = group["colors"][:]
    ids = np.arange(len(colors) + 1)
    mapped = layer.colormap.map(ids)
    np.testing.assert_allclose(mapped[1:, :3], colors / 255.0, atol=1e-6)
    np.testing.assert_array_equal(mapped[1:, 3], 1.0)
    assert mapped[0, 3] == 0.0  # left out: transparent
    assert layer.colormap.map(np.array([len(colors) + 1]))[0, 3] == 0.0  # no such colour: transparent


@pytest.mark.slow
def test_the_widget_runs_on_a_layer_and_adds_the_store_s_labels_in_the_palette_s_colours(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    image = quadrants()
    viewer.add_image(image, rgb=True, name="photo", scale=(0.5, 2.0), translate=(10.0, -5.0))
    viewer.add_image(np.zeros((8, 8)), name="other")
    widget = PaletteWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert [widget.layer_box.itemText(i) for i in range(widget.layer_box.count())] == ["photo", "other"]
    widget.layer_box.setCurrentText("other")
    viewer.layers["other"].name = "renamed"  # listed by its new name, still chosen
    assert [widget.layer_box.itemText(i) for i in range(widget.layer_box.count())] == ["photo", "renamed"]
    assert widget.layer_box.currentText() == "renamed"
    widget.layer_box.setCurrentText("photo")
    widget.k_box.setValue(4)
    widget.store_edit.setText(str(tmp_path / "run.zarr"))
    lines, counts_seen = [], []
    widget.reported.connect(lines.append)

    def on_report_made():  # each run makes its report: follow its counts as the progress bar does
        widget.report.count.connect(lambda *count: counts_seen.append(count))

    widget.run_button.clicked.connect(on_report_made)  # after the widget's own slot: its report exists
    run_widget(qtbot, widget)

    assert widget.status.text().startswith("4 colours"), widget.status.text()
    assert any(line.startswith("counting the pixels of 1 image") for line in lines), lines
    assert ("counting", 1, 1) in counts_seen, counts_seen
    assert widget.progress.value() == widget.progress.maximum() == 1
    assert "http://127.0.0.1:" in widget.dashboard.text()  # its own LocalCluster's dashboard
    store = str(tmp_path / "run.zarr")
    assert widget.result.store == store
    layer = viewer.layers["photo palette"]
    assert layer is widget.layer and type(layer).__name__ == "Labels"
    assert_layer_is_the_store(layer, store)
    np.testing.assert_array_equal(layer.scale, viewer.layers["photo"].scale)
    np.testing.assert_array_equal(layer.translate, viewer.layers["photo"].translate)
    # the labels follow the quadrants: one colour each, of a quarter of the pixels
    group = zarr.open_group(store, mode="r")
    labels, counts = group["labels/0/0"][:], group["image_counts"][0]
    quarters = [np.unique(labels[r : r + 32, c : c + 32]) for r in (0, 32) for c in (0, 32)]
    assert all(len(ids) == 1 for ids in quarters) and len({int(ids[0]) for ids in quarters}) == 4
    np.testing.assert_array_equal(np.bincount(np.asarray(layer.data).ravel(), minlength=5)[1:], counts)

    rows = table_rows(widget)
    assert sorted(row["id"] for row in rows) == [1, 2, 3, 4]
    colors, valid = group["colors"][:], int(group["image_valid"][0])
    palette = {entry["id"]: entry for entry in load_result(store).palette()}
    for row in rows:
        j = row["id"]
        assert row["swatch"] == "#%02x%02x%02x" % tuple(colors[j - 1])
        assert row["name"] == palette[j]["name"]
        assert row["pixels"] == counts[j - 1]
        assert row["share"] == pytest.approx(counts[j - 1] / valid)
        assert row["area"] == pytest.approx(counts[j - 1] * 0.5 * 2.0)  # in the image layer's units
    shares = [row["share"] for row in rows]
    assert shares == sorted(shares, reverse=True)
    assert widget.table.horizontalHeaderItem(5).text() == "area (pixel²)"
    assert layer.features["name"].tolist()[1:] == [palette[j]["name"] for j in (1, 2, 3, 4)]

    # the palette of that store applied to the same layer: nothing fitted, the same labels
    widget.palette_edit.setText(store)
    widget.store_edit.setText(str(tmp_path / "applied.zarr"))
    run_widget(qtbot, widget)
    applied = viewer.layers["photo palette [1]"]
    assert load_result(str(tmp_path / "applied.zarr")).attrs["parameters"]["palette"] == store
    np.testing.assert_array_equal(np.asarray(applied.data), labels)
    assert_layer_is_the_store(applied, str(tmp_path / "applied.zarr"))

    # the widget deleted: the viewer's events no longer call it
    events = viewer.layers.events
    connected = {name: len(getattr(events, name).callbacks) for name in ("inserted", "removed")}
    renames = len(viewer.layers["photo"].events.name.callbacks)
    viewer.window.remove_dock_widget(widget)
    widget.deleteLater()
    with qtbot.waitSignal(widget.destroyed, timeout=RUN_TIMEOUT_MS):
        pass
    assert {name: len(getattr(events, name).callbacks) for name in connected} == {
        name: n - 1 for name, n in connected.items()
    }
    assert len(viewer.layers["photo"].events.name.callbacks) == renames - 1
    viewer.add_image(np.zeros((4, 4)), name="after")  # no call on the deleted widget's combo box


@pytest.mark.slow
def test_a_multiscale_layer_of_channels_is_read_at_full_resolution_lazily_with_the_bands_chosen(
    make_napari_viewer, qtbot, client, tmp_path
):
    viewer = make_napari_viewer()
    rgb = quadrants(96, seed=1)
    planes = np.concatenate([np.moveaxis(rgb, -1, 0), np.full((1, 96, 96), 255, np.uint8)])  # 4 channels
    level0 = zarr.open_array(str(tmp_path / "level0.zarr"), mode="w", shape=planes.shape, chunks=(4, 32, 32),
                             dtype=np.uint8)  # fmt: skip
    level0[:] = planes
    level1 = da.from_array(planes[:, ::2, ::2])
    layer = viewer.add_image([level0, level1], multiscale=True, name="stack", scale=(1.0, 0.5, 2.0),
                             translate=(0.0, 7.0, -3.0))  # fmt: skip
    pixels, channel_axis = layer_pixels(layer)
    assert isinstance(pixels, da.Array) and pixels.shape == (4, 96, 96) and channel_axis == 0
    assert pixels.chunks[1][0] == 32  # the zarr's chunks: read tile by tile, never whole

    widget = PaletteWidget(viewer)
    widget.layer_box.setCurrentText("stack")
    widget.k_box.setValue(4)
    widget.bands_edit.setText("0,1,2")
    widget.space_box.setCurrentText("rgb")
    widget.scheduler_edit.setText(client.scheduler.address)  # a scheduler given by its address
    run_widget(qtbot, widget)
    assert widget.result is not None, widget.status.text()
    port = urlsplit(dashboard_link(client)).port
    assert f":{port}/status" in widget.dashboard.text(), widget.dashboard.text()  # that scheduler's

    # the same run through the API, on the full resolution pixels in memory
    expected = extract_palette(planes, 4, client=client, channel_axis=0, bands=(0, 1, 2), space="rgb",
                               labels=True, store=str(tmp_path / "api.zarr"))  # fmt: skip
    np.testing.assert_array_equal(widget.result.colors, expected.colors)
    np.testing.assert_array_equal(widget.result.image_counts, expected.image_counts)
    shown = viewer.layers["stack palette"]
    assert shown.data.shape == (96, 96)
    np.testing.assert_array_equal(shown.scale, [0.5, 2.0])  # the rows' and columns' of the layer
    np.testing.assert_array_equal(shown.translate, [7.0, -3.0])
    api_labels = zarr.open_group(str(tmp_path / "api.zarr"), mode="r")["labels/0/0"][:]
    np.testing.assert_array_equal(np.asarray(shown.data), api_labels)
    assert_layer_is_the_store(shown, widget.result.store)


def temporary_stores() -> set:
    """The folders the widget made for runs given no store (their prefix, in the temporary folder)."""
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "palette-dask-napari-*")))


@pytest.mark.slow
def test_a_bad_entry_is_one_line_and_starts_nothing(make_napari_viewer, qtbot, client, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the temporary stores here, no other process's
    before = temporary_stores()
    viewer = make_napari_viewer()
    viewer.add_image(quadrants(16), rgb=True, name="photo")
    widget = PaletteWidget(viewer)
    widget.exclude_edit.setText("not-a-colour")
    qtbot.mouseClick(widget.run_button, Qt.LeftButton)
    assert widget.worker is None
    expected = "leave out: expected #rrggbb or a CSS colour name such as white, got 'not-a-colour'"
    assert widget.status.text() == expected
    # a bad option the API refuses: its one line, from the run's thread
    widget.exclude_edit.setText("")
    widget.k_box.setValue(1)
    widget.palette_edit.setText("/no/such/palette.json")
    widget.scheduler_edit.setText(client.scheduler.address)
    run_widget(qtbot, widget)
    assert widget.status.text().startswith("failed: ") and "/no/such/palette.json" in widget.status.text()
    assert widget.result is None and len(viewer.layers) == 1
    # an image whose every pixel is left out: its failure's one line, no layer
    viewer.add_image(np.zeros((16, 16, 3), np.uint8), rgb=True, name="black")
    widget.layer_box.setCurrentText("black")
    widget.palette_edit.setText("")
    widget.exclude_edit.setText("black")
    run_widget(qtbot, widget)
    assert widget.status.text().startswith("failed: "), widget.status.text()
    assert "valid" in widget.status.text(), widget.status.text()
    assert widget.result is None and [layer.name for layer in viewer.layers] == ["photo", "black"]
    assert temporary_stores() == before  # the failed runs' temporary stores removed
    # a run given no store: its temporary store kept while its layer is, removed with it
    widget.layer_box.setCurrentText("photo")
    widget.exclude_edit.setText("")
    widget.k_box.setValue(2)
    run_widget(qtbot, widget)
    assert widget.result is not None, widget.status.text()
    (made,) = temporary_stores() - before
    assert widget.result.store.startswith(made) and os.path.isdir(widget.result.store)
    viewer.layers.remove("photo palette")
    assert temporary_stores() == before


def test_stop_ends_the_widget_s_run_without_a_layer(make_napari_viewer, qtbot, client, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(quadrants(64), rgb=True, name="photo")
    widget = PaletteWidget(viewer)
    widget.scheduler_edit.setText(client.scheduler.address)
    widget.store_edit.setText(str(tmp_path / "stopped.zarr"))
    with workers_busy(client):  # the run's tasks wait: it is stopped while they do
        with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS):
            with qtbot.waitSignal(widget.reported, timeout=RUN_TIMEOUT_MS):  # its first stage started
                qtbot.mouseClick(widget.run_button, Qt.LeftButton)
            qtbot.mouseClick(widget.stop_button, Qt.LeftButton)
    assert widget.status.text() == "stopped"
    assert widget.result is None and [layer.name for layer in viewer.layers] == ["photo"]
    assert widget.run_button.isEnabled() and not widget.stop_button.isEnabled()
    assert not (tmp_path / "stopped.zarr").exists()  # it held no image: removed, as an interrupted run's


@pytest.fixture(scope="module")
def scene_store(tmp_path_factory, real_rasters, client):
    """A store made by a real run, with labels, of a georeferenced scene (its pixel size in metres)."""
    store = str(tmp_path_factory.mktemp("reader") / "scene.zarr")
    extract_palette(str(real_rasters / "RGB.byte.tif"), 5, store=store, labels=True, client=client)
    return store


def test_the_reader_opens_a_store_as_its_labels_features_and_bar(make_napari_viewer, scene_store):
    assert get_reader(scene_store) is read_store
    viewer = make_napari_viewer()
    layers = viewer.open(scene_store, plugin="palette-dask")  # through the manifest, as File > Open does
    assert [type(layer).__name__ for layer in layers] == ["Labels", "Image"]
    labels, bar = layers
    assert_layer_is_the_store(labels, scene_store)
    result = load_result(scene_store)
    size = result.image_pixel_size[0]
    assert size.min() > 1  # Landsat-like metres
    np.testing.assert_allclose(labels.scale, size)
    assert [str(unit) for unit in labels.units] == ["meter", "meter"]
    features = labels.features
    assert features["index"].tolist() == list(range(6))
    counts, valid = result.image_counts[0], int(result.image_valid[0])
    np.testing.assert_array_equal(features["pixels"][1:], counts)
    np.testing.assert_allclose(features["share"][1:], counts / valid)
    np.testing.assert_allclose(features["area"][1:], counts * size[0] * size[1])
    ome = zarr.open_group(scene_store, mode="r")["labels/0"].attrs["ome"]
    properties = ome["image-label"]["properties"]  # the store's own OME properties: the same names
    assert [p["name"] for p in properties] == features["name"].tolist()[1:]
    assert bar.rgb and bar.data.shape == (50, 300, 3)
    shown = np.unique(bar.data.reshape(-1, 3), axis=0)
    np.testing.assert_array_equal(shown, np.unique(result.colors, axis=0))
    assert bar.translate[0] > labels.translate[0] + labels.data.shape[0] * labels.scale[0]  # under the labels


@pytest.mark.slow
def test_the_reader_gives_a_label_pyramid_as_a_multiscale_layer(make_napari_viewer, client, tmp_path):
    store = str(tmp_path / "tall.zarr")
    tall = np.repeat(quadrants(16, seed=3), [132] * 8 + [131] * 8, axis=0)  # 2,104 rows: a pyramid
    extract_palette(tall, 4, client=client, labels=True, store=store)
    group = zarr.open_group(store, mode="r")
    stored = [group[f"labels/0/{level}"][:] for level in range(3)]
    assert "labels/0/3" not in group and stored[2].shape == (526, 4)
    viewer = make_napari_viewer()
    (layer, _) = viewer.open(store, plugin="palette-dask")
    assert layer.multiscale and len(layer.data) == 3
    for level, expected in zip(layer.data, stored):
        np.testing.assert_array_equal(np.asarray(level), expected)
    colours = layer.colormap.map(np.arange(1, 5))[:, :3]
    np.testing.assert_allclose(colours, group["colors"][:] / 255.0, atol=1e-6)


def test_the_reader_shows_the_images_counted_and_a_store_without_labels_as_its_bar(
    client, tmp_path, monkeypatch
):
    from palette_dask.errors import PaletteDaskWarning
    from palette_dask.napari import reader
    from palette_dask.outputs.result import PaletteResult

    two = np.zeros((32, 32, 3), np.uint8)
    two[:16], two[16:] = (200, 30, 40), (30, 160, 60)
    images, store = [two, np.zeros_like(two)], str(tmp_path / "s.zarr")  # the second's every pixel left out
    with pytest.warns(PaletteDaskWarning, match="1 of 2 images failed"):
        result = extract_palette(images, 2, exclude=["#000000"], labels=True, store=store, client=client)
    assert sorted(zarr.open_group(store, mode="r")["labels"].group_keys()) == ["0", "1"]  # both made
    layers = read_store(store)
    assert [(meta["name"], kind) for _, meta, kind in layers] == [
        (f"palette of {result.image_names[0]}", "labels"), ("palette bar", "image")
    ]  # fmt: skip
    np.testing.assert_allclose(layers[0][1]["features"]["share"], [np.nan, 0.5, 0.5])
    # the failed image's raster asked for: its shares blank (no valid pixels), not 0
    assert np.isnan(labels_layer(result, 1).features["share"]).all()

    # more images than the reader shows: the first, and a warning saying so; the palette made once
    many = str(tmp_path / "many.zarr")
    extract_palette([two, two[::-1], two[:, ::-1]], 2, labels=True, store=many, client=client)
    monkeypatch.setattr(reader, "MOST_LAYERS", 2)
    made, palette = [], PaletteResult.palette

    def counted(self, *args):
        made.append(self)
        return palette(self, *args)

    monkeypatch.setattr(PaletteResult, "palette", counted)
    with pytest.warns(PaletteDaskWarning, match="the first 2 of 3 images shown"):
        shown = read_store(many)
    assert [kind for _, _, kind in shown] == ["labels", "labels", "image"] and len(made) == 1

    bare = str(tmp_path / "bare.zarr")
    extract_palette(two, 2, store=bare, client=client)  # no labels: the bar alone
    ((bar, meta, kind),) = read_store(bare)
    assert kind == "image" and meta["name"] == "palette bar" and "translate" not in meta
    np.testing.assert_array_equal(np.unique(bar.reshape(-1, 3), axis=0), np.unique(result.colors, axis=0))


def test_the_manifest_offers_the_reader_for_folders_not_for_every_file(tmp_path):
    """napari asks each reader whose patterns match: with ``*`` every file had two, and a dialog to choose."""
    from importlib.resources import files

    import npe2

    manager = npe2.PluginManager()
    manager.register(npe2.PluginManifest.from_file(str(files("palette_dask.napari") / "napari.yaml")))
    (tmp_path / "store.zarr").mkdir()
    for path in ["a.tif", "b.png", "c.csv", "d.zarr.zip"]:
        assert not list(manager.iter_compatible_readers([str(tmp_path / path)])), path
    readers = [reader.command for reader in manager.iter_compatible_readers([str(tmp_path / "store.zarr")])]
    assert readers == ["palette-dask.get_reader"]


def test_the_reader_declines_what_is_not_a_store(tmp_path):
    (tmp_path / "plain.zarr").mkdir()
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    assert get_reader(str(tmp_path / "plain.zarr")) is None
    assert get_reader(str(tmp_path)) is None


@pytest.mark.slow
def test_a_screenshot_shows_the_palette_s_colours_where_the_labels_are(make_napari_viewer, client, tmp_path):
    from napari.layers import Layer

    image = quadrants(64, seed=2)
    store = str(tmp_path / "shot.zarr")
    result = extract_palette(image, 4, client=client, labels=True, store=store)
    viewer = make_napari_viewer(show=True)  # drawn: what screenshot() grabs
    layer = viewer.add_layer(Layer.create(*labels_layer(result).layer_data()))
    layer.opacity = 1.0
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3]
    labels = zarr.open_group(store, mode="r")["labels/0/0"][:]
    shown = np.any(shot != shot[0, 0], axis=-1)  # the canvas's background is its corner
    rows, cols = np.nonzero(shown)
    assert rows.size, "the screenshot shows nothing but the background"
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    for quadrant_rows, quadrant_cols in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        # the centre of each quadrant, on screen and in the raster
        y = int(top + (bottom - top) * (0.25 + 0.5 * quadrant_rows))
        x = int(left + (right - left) * (0.25 + 0.5 * quadrant_cols))
        label = labels[16 + 32 * quadrant_rows, 16 + 32 * quadrant_cols]
        np.testing.assert_allclose(shot[y, x], result.colors[label - 1], atol=2)
