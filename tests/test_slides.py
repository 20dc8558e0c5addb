"""Whole-slide images as scanners write them: OME-TIFF pyramids (sub-IFDs) and SVS-style tiled JPEG TIFFs."""

import numpy as np
import pytest
import tifffile
import zarr
from helpers import photo_mosaic

from palette_dask import extract_palette


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    """The same 3000 x 2500 H&E-like pixels as an OME-TIFF pyramid and an SVS-style slide (tifffile)."""
    folder = tmp_path_factory.mktemp("slides")
    image = photo_mosaic(3000, 2500)
    tiles = {"photometric": "rgb", "tile": (256, 256)}
    with tifffile.TiffWriter(folder / "slide.ome.tif", bigtiff=True) as tif:  # levels in sub-IFDs
        metadata = {"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25}
        tif.write(image, subifds=2, metadata=metadata, compression="zlib", **tiles)
        for step in (2, 4):
            tif.write(image[::step, ::step], subfiletype=1, compression="zlib", **tiles)
    description = "Aperio Image Library v12.0.0\n3000x2500 [0,0 3000x2500] (256x256) JPEG/RGB Q=70|MPP = 0.5"
    with tifffile.TiffWriter(folder / "slide.svs") as tif:  # full level, thumbnail, then a lower level
        tif.write(image, description=description, compression="jpeg", **tiles)
        tif.write(image[::8, ::8], description="thumbnail", compression="jpeg", photometric="rgb")
        tif.write(image[::2, ::2], description="level", compression="jpeg", **tiles)
    with tifffile.TiffFile(folder / "slide.ome.tif") as tif:
        assert tif.is_ome and [level.shape[:2] for level in tif.series[0].levels] == [
            (3000, 2500),
            (1500, 1250),
            (750, 625),
        ]
    with tifffile.TiffFile(folder / "slide.svs") as tif:
        assert tif.is_svs and len(tif.pages) == 3
        decoded = tif.pages.first.asarray()  # JPEG: the pixels the decoder gives, the reference's
    zarr.create_array(str(folder / "ome.zarr"), data=image, chunks=(512, 512, 3))
    zarr.create_array(str(folder / "svs.zarr"), data=decoded, chunks=(512, 512, 3))
    return folder


@pytest.mark.parametrize(
    "name, pixels, micrometres", [("slide.ome.tif", "ome.zarr", 0.25), ("slide.svs", "svs.zarr", 0.5)]
)
@pytest.mark.slow
def test_a_slide_is_read_at_full_resolution_as_the_same_pixels_in_zarr(
    client, slides, name, pixels, micrometres
):
    options = {"seed": 3, "chunk_bytes": 4 * 2**20}  # read tile by tile, as a big slide is
    slide = extract_palette(str(slides / name), 4, client=client, **options)
    reference = extract_palette(str(slides / pixels), 4, client=client, **options)
    np.testing.assert_array_equal(slide.counts, reference.counts)
    np.testing.assert_array_equal(slide.centers, reference.centers)
    assert slide.image_valid[0] == 3000 * 2500
    np.testing.assert_allclose(slide.image_pixel_size[0], [micrometres * 1e-6] * 2)  # OME-XML, Aperio's MPP
    assert slide.areas.sum() == pytest.approx(3000 * 2500 * (micrometres * 1e-6) ** 2)
