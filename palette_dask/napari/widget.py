"""The napari widget: the dominant colours of an image layer, on dask, shown as a Labels layer and a table.

The user chooses an image layer (numpy or dask, RGB or channels first; a
multiscale layer is read at full resolution, lazily), ``k``, the space, the
bands, colours to leave out, and a LocalCluster or a scheduler's address;
or a palette (a store, a ``.json``, ``.csv`` or ``.gpl`` file) to apply
instead of fitting one. The run is :func:`~palette_dask.extract_palette`, in
a thread (napari's ``create_worker``): the dashboard's link, each stage and
each count of images are shown as the run reports them, and Stop ends it
(:class:`~palette_dask.run.tasks.RunStop`, then the report raises). The
result is added as a Labels layer (:func:`~.layers.labels_layer`: the
palette's colours, the image layer's scale and translate) with a table of
its colours beside the controls.

Qt is imported here, napari only where a widget is made or run: doctest
imports this module without starting Qt.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading

import numpy as np
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..constants import DEFAULT_K, SPACES
from ..errors import ParameterError, one_line
from ..options import hex_colour
from ..run.cluster import connect, dashboard_link
from ..run.pipeline import extract_palette
from ..run.tasks import RunStop
from .layers import LabelsLayer, labels_layer

__all__ = ["PaletteWidget", "layer_pixels", "RunStopped", "Report"]

#: The table's columns; the last is the area, in the image layer's units.
COLUMNS = ("id", "colour", "name", "share", "pixels", "area")
#: The feature each column shows.
FEATURES = ("index", "hex", "name", "share", "pixels", "area")

#: Folders of the stores of runs given no store: each removed when its run ends without a result or its
#: Labels layer is removed (the layer reads it), the others when napari exits.
_FOLDERS: list[tempfile.TemporaryDirectory] = []


def _remove_folder(folder: tempfile.TemporaryDirectory) -> None:
    """Remove a run's temporary store's folder now (not at exit)."""
    folder.cleanup()
    if folder in _FOLDERS:
        _FOLDERS.remove(folder)


class RunStopped(Exception):
    """The user stopped the run (the widget's Stop)."""


def layer_pixels(layer) -> tuple[object, int | None]:
    """An image layer's pixels as the API takes them, and their channel axis.

    A multiscale layer gives its full resolution level; an array that is
    neither numpy nor dask (zarr, a reader's lazy array) is wrapped in dask,
    so it is read tile by tile, never whole. RGB(A) layers have their
    channels last; other 3-D layers are taken as channels first (napari's
    ``channel_axis=0``), 2-D ones as one band.
    """
    import dask.array as da

    data = layer.data[0] if layer.multiscale else layer.data
    if not isinstance(data, np.ndarray | da.Array):
        data = da.from_array(data, chunks=getattr(data, "chunks", None) or "auto")
    if layer.rgb:
        return data, data.ndim - 1
    if data.ndim == 3:
        return data, 0
    if data.ndim == 2:
        return data, None
    raise ParameterError(f"{layer.name}: an image layer of {data.ndim} dimensions; give one of 2 or 3")


class Report(QObject):
    """:func:`~palette_dask.extract_palette`'s report: each line and count handed to the widget as a signal.

    Once :meth:`stop` is called it raises :class:`RunStopped` at its next
    line, and cancels the run's tasks meanwhile (its :class:`RunStop`).
    """

    line = Signal(str)
    count = Signal(str, int, int)
    dashboard = Signal(str)

    def __init__(self):
        super().__init__()
        self.stopped = threading.Event()
        self.run_stop = RunStop()  # the run's passes: their tasks cancelled on stop, no other of the client

    def __call__(self, message: str) -> None:
        """A stage starts, an image failed..."""
        self._check()
        self.line.emit(message)

    def update(self, stage: str, done: int, total: int) -> None:
        """``done`` of ``total`` images have finished ``stage``."""
        self._check()
        self.count.emit(stage, done, total)

    def stop(self) -> None:
        """Stop the run: its tasks cancelled now, the report raising from its next line."""
        self.stopped.set()
        self.run_stop.stop()

    def _check(self) -> None:
        if self.stopped.is_set():
            raise RunStopped("stopped")


def run_palette(pixels, k, store, scheduler, report: Report, options: dict):
    """The run in the widget's thread: a cluster (``scheduler``, else a LocalCluster), then the API's run."""
    with connect(scheduler or None, dashboard_address="127.0.0.1:0") as client:
        report.dashboard.emit(dashboard_link(client) or "")
        report._check()  # stopped while the cluster started
        with report.run_stop.running():
            return extract_palette(pixels, k, store=store, client=client, labels=True, report=report,
                                   **options)  # fmt: skip


class PaletteWidget(QWidget):
    """The dock widget (napari's Plugins menu: Dominant colours).

    ``reported`` is emitted with each line the run reports, ``run_finished``
    when its thread has ended (its worker's ``finished``), however it ended.
    """

    reported = Signal(str)
    run_finished = Signal()

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.report: Report | None = None
        self.result = None
        self.labels: LabelsLayer | None = None
        self.layer = None  # the napari Labels layer of the last run
        self._run_folder: tempfile.TemporaryDirectory | None = None  # the run's store's, given none
        self._folders: dict[int, tempfile.TemporaryDirectory] = {}  # id of a Labels layer → its store's

        self.layer_box = QComboBox()
        self.k_box = QSpinBox()
        self.k_box.setRange(1, 256)
        self.k_box.setValue(DEFAULT_K)
        self.space_box = QComboBox()
        self.space_box.addItems(["lab", *[s for s in SPACES if s != "lab"]])
        self.bands_edit = QLineEdit(placeholderText="all; or 0,1,2 (from 0, as napari counts)")
        self.exclude_edit = QLineEdit(placeholderText="e.g. white, #000000")
        self.palette_edit = QLineEdit(placeholderText="fit one; or a store, .json, .csv, .gpl to apply")
        self.scheduler_edit = QLineEdit(placeholderText="a LocalCluster; or tcp://host:8786")
        self.store_edit = QLineEdit(placeholderText="a temporary folder; or a path to keep it")
        form = QFormLayout()
        for label, field in (
            ("image", self.layer_box), ("k", self.k_box), ("space", self.space_box),
            ("bands", self.bands_edit), ("leave out", self.exclude_edit), ("palette", self.palette_edit),
            ("scheduler", self.scheduler_edit), ("store", self.store_edit),
        ):  # fmt: skip
            form.addRow(label, field)

        self.run_button = QPushButton("Run")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        self.dashboard = QLabel()
        self.dashboard.setOpenExternalLinks(True)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        for widget in (self.dashboard, self.progress, self.status, self.table):
            layout.addWidget(widget)

        self.run_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        self._listed: list = []  # the image layers the box lists, in its order
        layers = napari_viewer.layers
        events = layers.events
        handlers = [(events.inserted, self._layer_inserted), (events.removed, self._layer_removed)]
        for event, handler in handlers:
            event.connect(handler)
        for layer in layers:
            layer.events.name.connect(self._list_layers)
        list_layers = self._list_layers

        def disconnect(*_):  # the widget deleted: the viewer's events call it no more (a slot not of self)
            for event, handler in handlers:
                event.disconnect(handler)
            for layer in layers:  # the layers the viewer holds now
                layer.events.name.disconnect(list_layers)

        self.destroyed.connect(disconnect)
        self._list_layers()

    def _layer_inserted(self, event) -> None:
        event.value.events.name.connect(self._list_layers)  # a renamed layer: listed by its new name
        self._list_layers()

    def _layer_removed(self, event) -> None:
        event.value.events.name.disconnect(self._list_layers)
        folder = self._folders.pop(id(event.value), None)
        if folder is not None:
            _remove_folder(folder)
        self._list_layers()

    def _image_layers(self) -> list:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def _list_layers(self, event=None) -> None:
        index = self.layer_box.currentIndex()
        chosen = self._listed[index] if 0 <= index < len(self._listed) else None
        self._listed = self._image_layers()
        self.layer_box.clear()
        self.layer_box.addItems([layer.name for layer in self._listed])
        if chosen is not None and any(layer is chosen for layer in self._listed):  # kept, even renamed
            self.layer_box.setCurrentIndex(next(i for i, layer in enumerate(self._listed) if layer is chosen))

    def _options(self, layer) -> tuple:
        """``(pixels, k, store, scheduler, options)`` from the controls; ParameterError on a bad entry."""
        pixels, channel_axis = layer_pixels(layer)
        options = {"space": self.space_box.currentText(), "channel_axis": channel_axis}
        bands = self.bands_edit.text().strip()
        if bands:
            try:
                options["bands"] = tuple(int(b) for b in bands.split(","))
            except ValueError:
                raise ParameterError(f"bands: expected indices from 0 such as 0,1,2, got {bands!r}") from None
        try:
            exclude = [hex_colour(c) for c in self.exclude_edit.text().replace(",", " ").split()]
        except argparse.ArgumentTypeError as exc:
            raise ParameterError(f"leave out: {exc}") from None
        if exclude:
            options["exclude"] = exclude
        palette = self.palette_edit.text().strip()
        k = None if palette else self.k_box.value()
        if palette:
            options["palette"] = palette
        store = self.store_edit.text().strip()
        if not store:
            folder = tempfile.TemporaryDirectory(prefix="palette-dask-napari-")
            _FOLDERS.append(folder)
            self._run_folder = folder
            store = os.path.join(folder.name, "palette.zarr")
        return pixels, k, store, self.scheduler_edit.text().strip(), options

    def chosen_layer(self):
        """The image layer chosen, or None."""
        name = self.layer_box.currentText()
        return next((layer for layer in self._image_layers() if layer.name == name), None)

    def run(self) -> None:
        """Start a run on the chosen layer, in a thread."""
        from napari.qt.threading import create_worker

        layer = self.chosen_layer()
        if layer is None:
            self.status.setText("choose an image layer")
            return
        self.result, self._run_folder = None, None
        try:
            pixels, k, store, scheduler, options = self._options(layer)
        except ParameterError as exc:
            self.status.setText(one_line(exc))
            return
        self.report = report = Report()
        report.line.connect(self._line)
        report.count.connect(self._count)
        report.dashboard.connect(self._dashboard)
        handlers = {
            "returned": lambda result: self._show(result, layer),
            "errored": self._failed,  # shown as one line, not raised again in napari
            "finished": self._finished,
        }
        self.worker = create_worker(
            run_palette, pixels, k, store, scheduler, report, options, _connect=handlers, _start_thread=False
        )  # fmt: skip
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText(f"starting on {layer.name}")
        self.progress.setRange(0, 0)  # busy until a count comes
        self.worker.start()

    def stop(self) -> None:
        """Stop the run: its tasks cancelled, the run ending at its next report."""
        if self.report is not None:
            self.status.setText("stopping")
            self.report.stop()

    def _line(self, message: str) -> None:
        self.status.setText(message)
        self.progress.setRange(0, 0)
        self.reported.emit(message)

    def _count(self, stage: str, done: int, total: int) -> None:
        self.status.setText(f"{stage}: {done:,}/{total:,} images")
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _dashboard(self, link: str) -> None:
        self.dashboard.setText(f'dashboard: <a href="{link}">{link}</a>' if link else "no dashboard")

    def _failed(self, exc: BaseException) -> None:
        stopped = self.report is not None and self.report.stopped.is_set()
        self.status.setText("stopped" if stopped else f"failed: {one_line(exc)}")

    def _finished(self) -> None:
        if self.result is None and self._run_folder is not None:  # failed or stopped: its store goes
            _remove_folder(self._run_folder)
        self._run_folder = None
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if self.result is not None else 0)
        self.run_finished.emit()

    def _show(self, result, layer) -> None:
        """Add the run's Labels layer, scaled and translated as ``layer``, and fill the table."""
        from napari.layers import Layer

        if result.failures:  # the image alone, and it failed: its reason, no layer
            self.status.setText(f"failed: {result.failures[0]}")
            return
        unit = str(layer.units[-1]) if getattr(layer, "units", None) else None
        self.result = result
        self.labels = labels_layer(
            result, 0, scale=tuple(layer.scale[-2:]), translate=tuple(layer.translate[-2:]), unit=unit,
            name=f"{layer.name} palette",
        )  # fmt: skip
        self.layer = self.viewer.add_layer(Layer.create(*self.labels.layer_data()))
        if self._run_folder is not None:  # its store removed with the layer
            self._folders[id(self.layer)] = self._run_folder
        self.status.setText(f"{result.k} colours, stored in {result.store}")
        self._fill_table(self.labels)

    def _fill_table(self, labels: LabelsLayer) -> None:
        features = labels.features
        rows = sorted(range(1, len(features["index"])), key=lambda j: (-features["share"][j], j))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels([*COLUMNS[:-1], f"area ({labels.area_unit})"])
        for row, j in enumerate(rows):
            swatch = QTableWidgetItem("")
            swatch.setBackground(QColor(features["hex"][j]))
            swatch.setToolTip(features["hex"][j])
            cells = [
                QTableWidgetItem(str(features["index"][j])),
                swatch,
                QTableWidgetItem(features["name"][j]),
                QTableWidgetItem(f"{features['share'][j]:.2%}"),
                QTableWidgetItem(f"{features['pixels'][j]:,}"),
                QTableWidgetItem(f"{features['area'][j]:,.6g}"),
            ]
            for column, cell in enumerate(cells):  # the value shown, unrounded, for a program to read
                cell.setData(Qt.UserRole, features[FEATURES[column]][j])
                self.table.setItem(row, column, cell)
