"""A source is classified once, where inputs are expanded; formats are asked through the registry only."""

import ast
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import write_png
from servers import http_server

import palette_dask
from palette_dask import extract_palette
from palette_dask.inputs import source as source_module
from palette_dask.inputs.read import open_batch, probe
from palette_dask.inputs.registry import FILE_FORMATS, FORMATS, format_of
from palette_dask.inputs.sources import resolve_sources
from palette_dask.outputs.store import PENDING


def _inputs(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(3):
        write_png(folder / f"{n}.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    mosaic = zarr.create_array(tmp_path / "m.zarr", shape=(40, 50, 3), chunks=(16, 16, 3), dtype="uint8")
    mosaic[:] = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    return folder


def test_inputs_are_classified_where_they_are_expanded(tmp_path):
    folder = _inputs(tmp_path)
    found = resolve_sources([folder, tmp_path / "m.zarr", "s3://bucket/scene.tif", "https://x.org/a.zarr/0"])
    assert [(s.text, s.scheme, s.zarr, s.ranges) for s in found] == [
        (str(folder / "0.png"), "", False, False),
        (str(folder / "1.png"), "", False, False),
        (str(folder / "2.png"), "", False, False),
        (str(tmp_path / "m.zarr"), "", True, False),
        ("s3://bucket/scene.tif", "s3", False, True),
        ("https://x.org/a.zarr/0", "https", True, False),
    ]
    again = resolve_sources(found)  # sources given are kept as they are, not classified again
    assert [(s.text, s.scheme, s.zarr) for s in again] == [(s.text, s.scheme, s.zarr) for s in found]


def test_a_task_reads_the_sources_it_is_given_without_classifying_them(tmp_path, monkeypatch):
    folder = _inputs(tmp_path)
    with http_server(folder) as (url, _):
        sources = resolve_sources([folder, tmp_path / "m.zarr", f"{url}/1.png"])

        def refused(*args):
            raise AssertionError("a source was classified again")

        monkeypatch.setattr(source_module, "_is_zarr", refused)
        batch = open_batch(sources, 0)
        assert [info.source for info in batch.infos] == sources  # each ImageInfo carries its Source
        assert [info.format for info in batch.infos] == ["pillow"] * 3 + ["zarr", "pillow"]
        assert probe(sources[3]).shape == (40, 50, 3)


def test_a_run_given_sources_never_classifies_them_again(tmp_path, monkeypatch, client):
    folder = _inputs(tmp_path)
    sources = resolve_sources([folder, tmp_path / "m.zarr"])
    from_paths = extract_palette([folder, tmp_path / "m.zarr"], k=3, client=client)

    def refused(*args):
        raise AssertionError("a source was classified again")

    monkeypatch.setattr(source_module, "_is_zarr", refused)  # the workers are threads of this process
    from_sources = extract_palette(sources, k=3, client=client)
    assert not from_sources.failures
    np.testing.assert_array_equal(from_sources.image_counts, from_paths.image_counts)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_is_registered_under_its_own_name(name):
    assert FORMATS[name].name == name
    assert FILE_FORMATS[-1].name == "pillow"  # Pillow takes what no other format sniffs: last


def test_no_module_asks_which_format_an_image_is():
    """Only the registry maps a format's name to its reader: nobody compares ``.format`` to a name."""
    package = Path(palette_dask.__file__).parent
    asked = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(side, ast.Attribute) and side.attr == "format" for side in sides):
                    asked.append(f"{path.relative_to(package)}:{node.lineno}")
    assert asked == []
    assert format_of(probe(Path(__file__).parent / "data" / "RGB.byte.tif")).name == "tiff"


def test_an_append_reads_the_zarr_images_its_store_left_pending_as_zarr(tmp_path, client):
    """Images an append reads again (pending in the store it grows) are classified once, as it opens it."""
    folder = _inputs(tmp_path)
    store = tmp_path / "run.zarr"
    extract_palette([folder / "0.png", tmp_path / "m.zarr"], k=3, store=store, client=client)
    group = zarr.open_group(store, mode="r+")
    group["image_status"][1] = PENDING  # as a run killed before its batch was stored leaves it
    result = extract_palette([folder / "1.png"], store=store, append=True, client=client)
    assert result.to_dict()["images"] == {"total": 3, "done": 3, "failed": 0, "transient": 0}
