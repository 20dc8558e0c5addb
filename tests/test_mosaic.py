"""Mosaics and collections: layouts, bands, masks, scaling, label rasters, arrays."""

import json
import re
import warnings

import cloudpickle
import dask.array as da
import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr
from helpers import PHOTOS, ome_zarr, photo_mosaic, reference_labels, write_png
from PIL import Image

from palette_dask import ImageReadError, extract_palette, probe
from palette_dask.errors import PaletteDaskWarning
from palette_dask.outputs.store import DONE


@pytest.fixture(scope="module")
def multispectral(tmp_path_factory):
    """A 5-band uint16 planar tiled BigTIFF with a nodata (0) border: bands 3,2,1 are a photo mosaic."""
    rgb = photo_mosaic(300, 420).astype(np.uint16) * 40  # 0..10200
    bands = np.stack([rgb[..., 2], rgb[..., 1], rgb[..., 0], rgb[..., 0] // 2 + 7, rgb[..., 1] // 3 + 9])
    bands[:, :40] = 0  # border
    bands[:, :, -25:] = 0
    path = tmp_path_factory.mktemp("ms") / "scene.tif"
    tifffile.imwrite(
        path, bands, bigtiff=True, tile=(64, 64), photometric="minisblack", planarconfig="separate"
    )
    return path, bands


def reference(bands, order=(2, 1, 0), high=65535.0, low=0.0):
    chosen = np.moveaxis(bands, 0, -1)[..., list(order)]
    colour = chosen.astype(np.float64)
    valid = ~np.all(chosen == 0, axis=-1)  # no-data: the chosen bands all 0 (the others are not read)
    features = np.clip((colour - low) * (255.0 / (high - low)), 0, 255).astype(np.float32)
    return features, valid


@pytest.mark.slow
def test_multispectral_bands_nodata_and_labels(client, tmp_path, multispectral):
    path, bands = multispectral
    with pytest.raises(ImageReadError, match="5 bands"):
        from palette_dask.kernels.pixels import pixel_spec

        pixel_spec(probe(str(path)))
    with pytest.warns(PaletteDaskWarning, match=r"near black .* uint16 data .* --scale percentile"):
        result = extract_palette(
            path,
            4,
            bands=(2, 1, 0),
            nodata=0,
            labels=True,
            store=tmp_path / "s.zarr",
            client=client,
            chunk_bytes=2**16,
            space="rgb",  # the reference below labels sRGB features
            scale="dtype",  # by the type's range, 0-65535, as the reference: near black, warned
        )
    features, valid = reference(bands)
    assert result.image_valid.tolist() == [int(valid.sum())] and result.image_masked.tolist() == [
        int((~valid).sum())
    ]
    labels = reference_labels(features[valid], result.centers)
    np.testing.assert_array_equal(result.counts, np.bincount(labels, minlength=4))
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")
    raster = group["labels/0/0"]
    assert raster.shape == bands.shape[1:] and raster.chunks[0] < bands.shape[1]  # written chunk by chunk
    expected = np.zeros(bands.shape[1:], np.uint8)
    expected[valid] = labels + 1
    np.testing.assert_array_equal(raster[:], expected)
    ome = group["labels/0"].attrs["ome"]
    colours = {c["label-value"]: c["rgba"] for c in ome["image-label"]["colors"]}
    assert colours == {j + 1: [*map(int, result.colors[j]), 255] for j in range(4)}
    assert group["labels"].attrs["ome"]["labels"] == ["0"]


@pytest.mark.slow
def test_scale_minmax_and_percentile(client, multispectral):
    path, bands = multispectral
    features, valid = reference(bands)
    colour = np.moveaxis(bands, 0, -1)[..., [2, 1, 0]][valid].astype(np.float64)
    result = extract_palette(path, 4, bands=(2, 1, 0), nodata=0, scale="minmax", client=client)
    np.testing.assert_array_equal(result.attrs["display_range"], [colour.min(0), colour.max(0)])
    low, high = colour.min(0), colour.max(0)
    scaled = np.clip((colour - low) * (255.0 / (high - low)), 0, 255)
    assert np.abs(result.centers_rgb.max() - scaled.max()) < 40  # the brightest colour nears 255 now
    result = extract_palette(
        path, 4, bands=(2, 1, 0), nodata=0, scale="percentile", client=client, sample_size=20_000
    )
    measured = np.array(result.attrs["display_range"])
    np.testing.assert_allclose(measured, np.percentile(colour, [2, 98], axis=0), rtol=0.05, atol=80)
    explicit = extract_palette(path, 4, bands=(2, 1, 0), nodata=0, scale=(0, 10200), client=client)
    assert explicit.centers_rgb.max() > 150  # 0–10200 spread over 0–255, not 0–40 as by dtype


def test_ome_zarr_image_or_level_and_a_group_without_image(client, tmp_path):
    rgb = photo_mosaic(200, 260)
    image = ome_zarr(tmp_path / "image.zarr", rgb)
    by_group = extract_palette(image, 3, client=client)
    by_level = extract_palette(image / "0", 3, client=client)
    by_file = extract_palette(write_png(tmp_path / "same.png", rgb), 3, client=client)
    np.testing.assert_array_equal(by_group.centers, by_file.centers)
    np.testing.assert_array_equal(by_level.image_counts, by_file.image_counts)
    assert probe(str(image)).axes == "tczyx"
    zarr.open_group(tmp_path / "plain.zarr", mode="w").create_array("thing", shape=(4,), dtype="u1")
    with pytest.raises(
        ImageReadError,
        match="zarr group without an image; pass an OME-Zarr image or one of its arrays \\(thing\\)",
    ):
        probe(str(tmp_path / "plain.zarr"))


def test_ome_tiff(tmp_path):
    rgb = photo_mosaic(100, 120)
    path = tmp_path / "x.ome.tif"
    tifffile.imwrite(path, np.moveaxis(rgb, -1, 0)[None, :, None], ome=True, metadata={"axes": "TCZYX"})
    info = probe(str(path))
    assert info.shape == (100, 120, 3)
    from palette_dask.inputs.read import read_image

    np.testing.assert_array_equal(read_image(info).compute(scheduler="sync"), rgb)
    stack = tmp_path / "stack.ome.tif"
    tifffile.imwrite(stack, np.zeros((4, 10, 12), np.uint8), ome=True, metadata={"axes": "ZYX"})
    with pytest.raises(ImageReadError, match="holds more than one 2-D image \\(z=4\\); pass one plane"):
        probe(str(stack))


@pytest.mark.slow
def test_numpy_dask_and_xarray_inputs_match_the_file(client, tmp_path):
    rgb = photo_mosaic(160, 240)
    by_file = extract_palette(write_png(tmp_path / "m.png", rgb), 3, client=client)
    planar = np.moveaxis(rgb, -1, 0).copy()
    inputs = {
        "numpy": rgb,
        "numpy planar": planar,
        "dask": da.from_array(rgb, chunks=(50, 70, 3)),
        "xarray": xr.DataArray(planar, dims=("band", "y", "x"), name="scene"),
    }
    for kind, array in inputs.items():
        result = extract_palette(array, 3, client=client)
        np.testing.assert_array_equal(result.centers, by_file.centers, err_msg=kind)
        np.testing.assert_array_equal(result.image_counts, by_file.image_counts, err_msg=kind)
    assert extract_palette([inputs["xarray"], PHOTOS[1]], 3, client=client).image_names == [
        "array:scene",
        str(PHOTOS[1]),
    ]


@pytest.mark.slow
def test_collection_of_mixed_images_is_one_palette_with_consistent_rows(client, tmp_path):
    rng = np.random.default_rng(0)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in PHOTOS]
    expected_valid = []
    for i in range(120):
        h, w = rng.integers(8, 90, 2)
        y, x = rng.integers(0, 300, 2)
        crop = photos[i % 3][y : y + h, x : x + w]
        kind = ("png", "jpg", "tif")[i % 3]
        path = tmp_path / "photos" / f"{i:03d}.{kind}"
        path.parent.mkdir(exist_ok=True)
        if kind == "tif":
            tifffile.imwrite(path, crop)
        else:
            Image.fromarray(crop).save(path)
        expected_valid.append(crop.shape[0] * crop.shape[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = extract_palette(tmp_path / "photos", 6, store=tmp_path / "c.zarr", client=client)
    assert [str(w.message) for w in caught] == []  # no "Sending large graph" or any other warning
    assert (result.image_status == DONE).all() and len(result.image_names) == 120
    assert result.image_valid.tolist() == [expected_valid[int(n[-7:-4])] for n in result.image_names]
    np.testing.assert_array_equal(result.image_counts.sum(axis=1), result.image_valid)
    np.testing.assert_array_equal(result.image_counts.sum(axis=0), result.counts)


def test_all_nodata_raster_and_nodata_override_from_the_command_line(capsys, tmp_path):
    from palette_dask.cli import main

    zeros = np.zeros((40, 50, 3), np.uint8)
    tifffile.imwrite(tmp_path / "empty.tif", zeros, extratags=[(42113, "s", 0, "0", True)])
    assert probe(str(tmp_path / "empty.tif")).nodata == 0
    code = main(["run", str(tmp_path / "empty.tif"), "-o", str(tmp_path / "a.zarr"), "--threads", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().endswith(
        "empty.tif: no valid pixels (every pixel is transparent, nodata or NaN)"
    )
    scene = photo_mosaic(60, 80)
    tifffile.imwrite(
        tmp_path / "scene.tif",
        np.moveaxis(np.dstack([scene, scene[..., :2]]), -1, 0),
        photometric="minisblack",
    )
    argv = ["run", str(tmp_path / "scene.tif"), "--threads", "--json", "-k", "3"]
    assert main([*argv, "-o", str(tmp_path / "b.zarr")]) == 1  # 5 bands and no --bands
    assert "5 bands" in capsys.readouterr().err
    assert (
        main(
            [*argv, "-o", str(tmp_path / "c.zarr"), "--bands", "1,2,3", "--nodata", "255", "--scale", "0,255"]
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out)
    white = int(np.all(np.dstack([scene, scene[..., :2]]) == 255, axis=-1).sum())
    assert document["pixels"] == {"valid": 60 * 80 - white, "masked": white}


V2_ARRAY = {"zarr_format": 2, "shape": [4, 4, 3], "chunks": [4, 4, 3], "dtype": "|u1", "compressor": None,
            "fill_value": 0, "order": "C", "filters": None}  # fmt: skip
V3_ARRAY = {"zarr_format": 3, "node_type": "array", "shape": [4, 4, 3], "data_type": "uint8",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 4, 3]}},
            "chunk_key_encoding": {"name": "default"}, "fill_value": 0,
            "codecs": [{"name": "bytes"}, {"name": "zstd", "configuration": {"level": 0}}]}  # fmt: skip


def sharded(*inner):
    config = {
        "chunk_shape": [2, 2, 3],
        "codecs": [{"name": "bytes"}, *inner],
        "index_codecs": [{"name": "bytes"}],
    }
    return {**V3_ARRAY, "codecs": [{"name": "sharding_indexed", "configuration": config}]}


@pytest.mark.parametrize(
    "name, metadata, declared",
    [
        (".zarray", {**V2_ARRAY, "dtype": "|O", "filters": [{"id": "pickle"}]}, "data type '|O'"),
        (".zarray", {**V2_ARRAY, "compressor": {"id": "pickle"}}, "codec 'pickle'"),
        ("zarr.json", {**V3_ARRAY, "codecs": [{"name": "bytes"}, {"name": "numcodecs.pickle"}]},
         "codec 'numcodecs.pickle'"),
        ("zarr.json", {**V3_ARRAY, "data_type": "string"}, "data type 'string'"),
        ("zarr.json", sharded({"name": "numcodecs.msgpack2"}), "codec 'numcodecs.msgpack2'"),
        ("zarr.json", {"zarr_format": 3, "node_type": "group", "consolidated_metadata": {"kind": "inline",
         "must_understand": False, "metadata": {"0": {**V3_ARRAY, "codecs": [{"name": "vlen-bytes"}]}}}},
         "codec 'vlen-bytes'"),
    ],
)  # fmt: skip
def test_zarr_declaring_anything_but_numbers_is_refused(tmp_path, name, metadata, declared):
    (tmp_path / "evil.zarr").mkdir()
    (tmp_path / "evil.zarr" / name).write_text(json.dumps(metadata))
    with pytest.raises(
        ImageReadError, match=f"evil.zarr: zarr metadata {name} declares {re.escape(declared)}; refused"
    ):
        probe(str(tmp_path / "evil.zarr"))


@pytest.mark.parametrize("escaped", ["\\u0070ickle", "numcodecs.\\u0070ickle", "PICKLE"])
def test_escaped_codec_names_are_read_as_what_they_are(tmp_path, escaped):
    text = json.dumps({**V3_ARRAY, "codecs": [{"name": "bytes"}, {"name": "CODEC"}]}).replace(
        "CODEC", escaped
    )
    assert "pickle" not in text  # the old text search let exactly this through
    (tmp_path / "evil.zarr").mkdir()
    (tmp_path / "evil.zarr" / "zarr.json").write_text(text)
    with pytest.raises(ImageReadError, match="declares codec '(numcodecs.)?(pickle|PICKLE)'; refused"):
        probe(str(tmp_path / "evil.zarr"))


def test_an_ome_zarr_level_declaring_pickle_is_refused_through_its_group(tmp_path):
    image = tmp_path / "image.zarr"
    group = zarr.open_group(str(image), mode="w")
    group.create_array("0", shape=(8, 8, 3), dtype="u1")
    group.attrs["ome"] = {"multiscales": [{"axes": ["y", "x", "c"], "datasets": [{"path": "0"}]}]}
    assert probe(str(image)).shape == (8, 8, 3)
    metadata = json.loads((image / "0" / "zarr.json").read_text())
    metadata["codecs"].append({"name": "numcodecs.pickle"})
    (image / "0" / "zarr.json").write_text(json.dumps(metadata))
    with pytest.raises(
        ImageReadError, match="image.zarr: zarr metadata 0/zarr.json declares codec 'numcodecs.pickle'"
    ):
        probe(str(image))


@pytest.mark.slow
def test_empty_and_chunked_identically_whatever_the_chunk_size(client, tmp_path):
    zarr.create_array(str(tmp_path / "empty.zarr"), shape=(0, 10, 3), dtype="u1")
    with pytest.raises(ImageReadError, match="image has no pixels"):
        probe(str(tmp_path / "empty.zarr"))
    rgb = photo_mosaic(300, 400)
    tifffile.imwrite(tmp_path / "t.tif", rgb, tile=(32, 32))
    results = [
        extract_palette(tmp_path / "t.tif", 4, client=client, chunk_bytes=size)
        for size in (32 * 32 * 3, 10**5, 10**8)
    ]
    for other in results[1:]:
        np.testing.assert_array_equal(other.centers, results[0].centers)
        np.testing.assert_array_equal(other.image_counts, results[0].image_counts)


def test_an_in_memory_array_is_sent_to_the_workers_not_put_in_the_graph(client):
    from palette_dask.run.state import on_workers

    rgb = photo_mosaic(200, 300)
    lazy = on_workers(client, rgb)

    def graph_bytes(array):
        return len(cloudpickle.dumps(dict(array.__dask_graph__())))

    assert graph_bytes(da.from_array(rgb)) > rgb.nbytes  # what embedding would cost
    assert graph_bytes(lazy) < 5_000 and lazy.shape == rgb.shape
    np.testing.assert_array_equal(client.compute(lazy).result(), rgb)  # where the data was sent
    planar = xr.DataArray(np.moveaxis(rgb, -1, 0), dims=("band", "y", "x"))
    assert isinstance(on_workers(client, planar).data, da.Array)


@pytest.mark.slow
def test_big_label_rasters_get_a_pyramid_that_ome_zarr_readers_open(client, tmp_path):
    """Levels halve until no side exceeds 1024: a mosaic read tile by tile, a PNG decoded in its batch."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models import open_ome_zarr
    from ome_zarr_models.v05 import ImageLabel, Labels

    mosaic = photo_mosaic(4000, 3000)  # 36 MB: read tile by tile
    zarr.create_array(str(tmp_path / "m.zarr"), shape=mosaic.shape, chunks=(512, 512, 3), dtype="uint8")[
        :
    ] = mosaic
    png = write_png(tmp_path / "p.png", mosaic[:2600, :2100])  # 16 MB: decoded by its batch's task
    extract_palette([str(tmp_path / "m.zarr"), png], 4, labels=True, store=tmp_path / "s.zarr", client=client)
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert isinstance(open_ome_zarr(group["labels"]), Labels)
    for index, shapes in (
        (0, [(4000, 3000), (2000, 1500), (1000, 750)]),
        (1, [(2600, 2100), (1300, 1050), (650, 525)]),
    ):
        label = group[f"labels/{index}"]
        assert isinstance(open_ome_zarr(label), ImageLabel)  # OME-Zarr 0.5, validated
        datasets = label.attrs["ome"]["multiscales"][0]["datasets"]
        assert [d["coordinateTransformations"][0]["scale"] for d in datasets] == [[1, 1], [2, 2], [4, 4]]
        level0 = label["0"][:]
        assert level0.shape == shapes[0] and set(np.unique(level0)) <= {1, 2, 3, 4}
        assert (
            max(label["0"].chunks) <= 512
        )  # tiles, as viewers read them (a mosaic's: in shards, one a task)
        for level, shape in enumerate(shapes):
            np.testing.assert_array_equal(label[str(level)][:], level0[:: 2**level, :: 2**level])
            assert label[str(level)].shape == shape
        (node,) = [n for n in Reader(parse_url(str(tmp_path / "s.zarr" / "labels" / str(index))))() if n.data]
        assert [tuple(level.shape) for level in node.data] == shapes  # what napari would show, level by level
