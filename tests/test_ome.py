"""OME-Zarr inputs as microscopes write them: 0.4 (zarr v2) and 0.5 (zarr v3), TCZYX, local and remote."""

from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import PHOTOS, photo_mosaic, write_ome_zarr
from servers import http_server

from palette_dask import extract_palette
from palette_dask.cli import main


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    """One image as a plain zarr array (the reference) and as OME-Zarr 0.4 and 0.5."""
    folder = tmp_path_factory.mktemp("ome")
    image = photo_mosaic(300, 400)
    zarr.create_array(str(folder / "plain.zarr"), data=image, chunks=(128, 128, 3))
    for version in ("0.4", "0.5"):
        write_ome_zarr(folder / f"v{version[-1]}.ome.zarr", image, version)
    assert (folder / "v4.ome.zarr" / ".zgroup").exists() and (folder / "v5.ome.zarr" / "zarr.json").exists()
    return folder


@pytest.mark.slow
def test_ome_zarr_04_and_05_read_alike_locally_by_file_url_and_over_http(client, slides, tmp_path):
    reference = extract_palette(
        str(slides / "plain.zarr"), 4, seed=1, store=tmp_path / "ref.zarr", client=client
    )
    with http_server(slides) as (url, _):
        inputs = {
            "0.4": str(slides / "v4.ome.zarr"),
            "0.5": str(slides / "v5.ome.zarr"),
            "0.4 as file://": (slides / "v4.ome.zarr").as_uri(),
            "0.4 over http": f"{url}/v4.ome.zarr",
            "0.4's full level": str(slides / "v4.ome.zarr" / "s0"),  # its axes from the parent's multiscales
            "0.5 over http": f"{url}/v5.ome.zarr",
        }
        for n, (what, source) in enumerate(inputs.items()):
            result = extract_palette(source, 4, seed=1, store=tmp_path / f"{n}.zarr", client=client)
            np.testing.assert_array_equal(result.counts, reference.counts, err_msg=what)
            np.testing.assert_array_equal(result.centers, reference.centers, err_msg=what)


@pytest.mark.slow
def test_a_tczyx_level_without_names_is_read_with_its_length_one_axes_dropped(client, slides, tmp_path):
    reference = extract_palette(str(slides / "plain.zarr"), 4, seed=1, client=client)
    level = zarr.open_array(str(slides / "v4.ome.zarr" / "s0"), mode="r")[:]
    zarr.create_array(str(tmp_path / "bare.zarr"), data=level, chunks=(1, 3, 1, 128, 128))  # no axis names
    for channel_axis in (None, 1):
        result = extract_palette(
            str(tmp_path / "bare.zarr"), 4, seed=1, channel_axis=channel_axis, client=client
        )
        np.testing.assert_array_equal(result.counts, reference.counts)


def test_more_than_one_plane_is_one_line_and_nothing_is_counted(capsys, tmp_path):
    zarr.create_array(str(tmp_path / "stack.zarr"), data=np.zeros((1, 3, 2, 40, 50), np.uint8))
    for given in ([], ["--channel-axis", "1"]):
        assert main(["run", str(tmp_path / "stack.zarr"), "-k", "3", "--threads", *given]) == 1
        err = capsys.readouterr().err
        assert "holds more than one 2-D image" in err or "cannot tell rows, columns" in err
        assert "no image was read" in err and "counting the pixels" not in err


def test_labels_carry_the_sources_pixel_size_in_ome_zarr_and_geotiff(client, slides, tmp_path):
    """napari places OME labels by their scale; rasterio and Fiji read the label TIFF's pixel size."""
    import warnings

    import rasterio
    import tifffile
    from ome_zarr_models import open_ome_zarr
    from ome_zarr_models.v05 import ImageLabel

    tifffile.imwrite(
        tmp_path / "slide.ome.tif", photo_mosaic(120, 160), photometric="rgb",
        metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25},  # µm, OME's default unit
    )  # fmt: skip
    inputs = [str(slides / "v4.ome.zarr"), str(tmp_path / "slide.ome.tif"), str(slides / "plain.zarr")]
    geo = tmp_path / "geo"
    result = extract_palette(inputs, 3, store=tmp_path / "s.zarr", labels_geotiff=geo, client=client)
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")
    names = {entry["id"]: entry["name"] for entry in result.palette()}
    for index, scale, unit in (
        (0, [0.325, 0.325], "micrometer"),
        (1, [0.25, 0.5], "micrometer"),
        (2, [1, 1], None),
    ):
        label = group[f"labels/{index}"]  # 0 and 2 made by the driver (read tile by tile), 1 by its task
        assert isinstance(open_ome_zarr(label), ImageLabel)
        multiscale = label.attrs["ome"]["multiscales"][0]
        assert multiscale["datasets"][0]["coordinateTransformations"] == [{"type": "scale", "scale": scale}]
        assert [axis.get("unit") for axis in multiscale["axes"]] == [unit, unit]
        properties = label.attrs["ome"]["image-label"]["properties"]  # per label value, as napari lists them
        values = np.bincount(label["0"][:].ravel(), minlength=4)[1:]
        assert [p["pixels"] for p in properties] == list(values) == list(result.image_counts[index])
        assert [p["share"] for p in properties] == pytest.approx(values / values.sum())
        assert [p["name"] for p in properties] == [names[p["label-value"]] for p in properties]
        areas = [p.get("area_m2") for p in properties]
        assert areas == (pytest.approx(list(result.image_areas[index])) if unit else [None] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rasterio.errors.NotGeoreferencedWarning)  # its pixel size is there
        with rasterio.open(geo / "slide.ome.labels.tif") as labels:
            assert labels.res == (0.5, 0.25) and labels.crs is None
            np.testing.assert_array_equal(labels.read(1), group["labels/1/0"][:])
    with tifffile.TiffFile(geo / "slide.ome.labels.tif") as tif:  # as Fiji reads it: pixels per centimetre
        tags = tif.pages.first.tags
        assert tags["ResolutionUnit"].value == 3
        assert tags["XResolution"].value == (20000, 1) and tags["YResolution"].value == (40000, 1)


def test_previews_read_the_lowest_ome_zarr_level_big_enough(client, slides, tmp_path):
    from palette_dask.inputs.read import probe, pyramid_level
    from palette_dask.outputs.report import preview

    info = probe(str(slides / "v4.ome.zarr"))
    assert [pyramid_level(info, side).source.rsplit("/", 1)[-1] for side in (400, 200, 150, 100, 10)] == [
        "s0", "s1", "s1", "s2", "s2",
    ]  # fmt: skip
    result = extract_palette(str(slides / "v4.ome.zarr"), 3, store=tmp_path / "s.zarr", client=client)
    shown, _ = preview(result, 0, side=150)
    level = zarr.open_array(str(slides / "v4.ome.zarr" / "s1"), mode="r")[
        0, :, 0
    ]  # (c, y, x): its own pixels
    np.testing.assert_array_equal(shown[..., :3], np.moveaxis(level, 0, -1)[::2, ::2])


@pytest.mark.slow
def test_omero_channel_colours_say_which_band_is_shown_as_which_colour(client, tmp_path):
    """DAPI stored first, blue in its metadata, is shown blue; an inactive fourth channel is left aside."""
    import tifffile

    image = photo_mosaic(120, 160)  # as stored: band 0 the image's blue, band 1 green, band 2 red
    stored = image[..., ::-1]
    channels = [
        {"label": "DAPI", "color": "0000FF", "active": True},
        {"label": "FITC", "color": "00FF00", "active": True},
        {"label": "TRITC", "color": "FF0000", "active": True},
        {"label": "Cy5", "color": "FF00FF", "active": False},
    ]
    for bands, name in ((3, "three"), (4, "four")):
        planes = np.concatenate([stored, stored[..., :1]], axis=-1)[..., :bands]
        write_ome_zarr(tmp_path / f"{name}.ome.zarr", planes, "0.5")
        group = zarr.open_group(str(tmp_path / f"{name}.ome.zarr"), mode="r+")
        group.attrs["ome"] = {**group.attrs["ome"], "omero": {"channels": channels[:bands]}}
    colour = {"0000FF": 65535, "00FF00": 16711935, "FF0000": -16776961}  # OME-XML's signed RGBA
    tifffile.imwrite(  # the same as an OME-TIFF: planar, its channels named and coloured in OME-XML
        tmp_path / "three.ome.tif", np.moveaxis(stored, -1, 0),
        metadata={"axes": "CYX", "Channel": {"Name": [c["label"] for c in channels[:3]],
                                             "Color": [colour[c["color"]] for c in channels[:3]]}},
    )  # fmt: skip
    zarr.create_array(str(tmp_path / "rgb.zarr"), data=image, chunks=(64, 64, 3))
    reference = extract_palette(str(tmp_path / "rgb.zarr"), 4, seed=1, client=client)
    for name, suffix in (("three", "ome.zarr"), ("four", "ome.zarr"), ("tiff", "ome.tif")):
        store = tmp_path / f"{name}.zarr"
        source = tmp_path / f"{'three' if name == 'tiff' else name}.{suffix}"
        shown = extract_palette(str(source), 4, seed=1, store=store, client=client)
        np.testing.assert_array_equal(shown.colors, reference.colors)
        np.testing.assert_array_equal(shown.counts, reference.counts)
        assert main(["report", str(store), "-o", str(tmp_path / f"{name}.html")]) == 0
        assert "(red: TRITC, green: FITC, blue: DAPI)" in (tmp_path / f"{name}.html").read_text()  # named
    in_order = extract_palette(str(tmp_path / "three.ome.zarr"), 4, seed=1, bands=(0, 1, 2), client=client)
    assert not np.array_equal(in_order.colors, reference.colors)  # --bands still says otherwise


@pytest.mark.slow
def test_labels_written_beside_their_image_are_found_by_ome_readers(client, slides, tmp_path):
    """--source-labels: the one output outside the store, asked for; the image's own data untouched."""
    import hashlib
    import shutil

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models import open_ome_zarr

    from palette_dask import InputError, ParameterError

    images = []
    for version in ("4", "5"):
        shutil.copytree(slides / f"v{version}.ome.zarr", tmp_path / f"v{version}.ome.zarr")
        images.append(str(tmp_path / f"v{version}.ome.zarr"))

    def image_files():
        return {
            str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for image in images
            for p in Path(image).rglob("*")
            if p.is_file() and "labels" not in p.parts
        }

    before = image_files()
    result = extract_palette(images, 3, store=tmp_path / "s.zarr", source_labels="colours", client=client)
    assert image_files() == before  # nothing of the images' own changed: only labels/ added
    store = zarr.open_group(tmp_path / "s.zarr", mode="r")
    for index, image in enumerate(images):
        label = zarr.open_group(f"{image}/labels/colours", mode="r")
        open_ome_zarr(label)  # valid OME-Zarr 0.4 / 0.5 label image (raises if not)
        assert label["0"].shape == (1, 1, 300, 400)  # t, z, y, x: the image's axes but its channels
        np.testing.assert_array_equal(label["0"][0, 0], store[f"labels/{index}/0"][:])
        properties = (label.attrs.get("ome") or label.attrs)["image-label"]["properties"]
        assert [p["pixels"] for p in properties] == list(result.image_counts[index])
        nodes = Reader(parse_url(image))()  # as napari-ome-zarr reads the image: its labels come along
        found = [node for node in nodes if node.data and "colours" in str(node.zarr)]
        assert found and tuple(found[0].data[0].shape) == (1, 1, 300, 400)
    with pytest.raises(InputError, match="holds labels/colours already; pass --overwrite"):
        extract_palette(images, 3, store=tmp_path / "t.zarr", source_labels="colours", client=client)
    extract_palette(
        images, 3, store=tmp_path / "t.zarr", source_labels="colours", overwrite=True, client=client
    )
    zarr.open_group(f"{images[0]}/labels", mode="a").create_group("theirs")
    with pytest.raises(InputError, match="palette-dask did not write it"):
        extract_palette(
            images, 3, store=tmp_path / "u.zarr", source_labels="theirs", overwrite=True, client=client
        )
    with pytest.raises(InputError, match="this is not one"):
        extract_palette(
            [str(PHOTOS[0])], 3, store=tmp_path / "u.zarr", source_labels="colours", client=client
        )
    assert not (tmp_path / "u.zarr").exists()  # refused before anything was made
    with pytest.raises(ParameterError, match="not with append=True"):  # the store's inputs were not checked
        extract_palette(
            images[:1], store=tmp_path / "s.zarr", append=True, source_labels="more", client=client
        )
    old = tmp_path / "v03.ome.zarr"  # OME-Zarr 0.3 in zarr v2: refused, never rewritten in zarr v3
    shutil.copytree(slides / "v4.ome.zarr", old)
    group = zarr.open_group(str(old), mode="r+")
    group.attrs["multiscales"] = [{**group.attrs["multiscales"][0], "version": "0.3"}]
    before = sorted(p.name for p in old.iterdir())
    with pytest.raises(
        InputError, match=r"OME-Zarr 0.4 \(zarr v2\) or 0.5 \(zarr v3\); this is OME-Zarr 0.3"
    ):
        extract_palette([str(old)], 3, store=tmp_path / "w.zarr", source_labels="colours", client=client)
    assert sorted(p.name for p in old.iterdir()) == before and not (old / "zarr.json").exists()
