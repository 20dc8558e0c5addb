"""Channels are never guessed: a band is alpha only where the format or the user says so.

Every input kind (PNG, TIFF with and without an alpha extra-sample tag, zarr,
OME-Zarr, numpy, dask, xarray) with 1 to 5 bands, with no choice, with bands
chosen, and with an alpha band named; the masked pixels are compared with a
numpy count of the alpha band's zeros, or must be none.
"""

import dask.array as da
import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr
from helpers import ome_zarr, photo_crops
from PIL import Image

from palette_dask import extract_palette
from palette_dask.cli import main
from palette_dask.outputs.store import DONE, FAILED


@pytest.fixture(scope="module")
def planes():
    """The bands an image of n bands is made of: gray, or RGB, then a band that is 0 over a block."""
    rgb = next(photo_crops(1, seed=11, corners=150, sides=(64, 81)))[:64, :80]
    extra = np.maximum(rgb[..., 1], 1)
    extra[10:30, 20:50] = 0  # 600 pixels: masked where this band is taken as alpha, nowhere else
    other = rgb[..., 0] // 2 + 3
    return {
        1: [rgb[..., 1]],
        2: [rgb[..., 1], extra],
        3: [rgb[..., i] for i in range(3)],
        4: [*(rgb[..., i] for i in range(3)), extra],
        5: [*(rgb[..., i] for i in range(3)), extra, other],
    }


ZEROS = 600
#: Inputs whose format declares its last band alpha.
DECLARED = {("png", 2), ("png", 4), ("tiff-alpha", 2), ("tiff-alpha", 4)}
KINDS = {
    "png": (1, 2, 3, 4),
    "tiff-alpha": (2, 4),
    "tiff": (1, 2, 3, 4, 5),
    "zarr": (1, 2, 3, 4, 5),
    "ome-zarr": (1, 2, 3, 4, 5),
    "numpy": (1, 2, 3, 4, 5),
    "dask": (1, 2, 3, 4, 5),
    "xarray": (1, 2, 3, 4, 5),
}


def make(kind: str, n: int, planes, folder):
    """The image of ``n`` bands as an input of this kind."""
    yxc = np.stack(planes[n], axis=-1)
    path = folder / f"{kind}-{n}"
    if kind == "png":
        Image.fromarray(yxc if n > 1 else yxc[..., 0], mode={1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[n]).save(
            f"{path}.png"
        )
        return f"{path}.png"
    if kind.startswith("tiff"):
        photometric = "rgb" if n >= 3 else "minisblack"
        extra = (n - 3 if n >= 3 else n - 1) if n not in (1, 3) else 0
        tag = [2 if kind == "tiff-alpha" else 0] * extra  # 2: unassociated alpha; 0: unspecified
        tifffile.imwrite(f"{path}.tif", yxc, photometric=photometric, extrasamples=tag or None)
        return f"{path}.tif"
    if kind == "zarr":
        zarr.create_array(f"{path}.zarr", data=yxc, dimension_names=["y", "x", "c"])
        return f"{path}.zarr"
    if kind == "ome-zarr":
        return str(ome_zarr(f"{path}.ome.zarr", yxc))
    if kind == "numpy":
        return yxc
    if kind == "dask":
        return da.from_array(yxc, chunks=(32, 40, n))
    return xr.DataArray(np.moveaxis(yxc, -1, 0), dims=("band", "y", "x"))


@pytest.fixture(scope="module")
def inputs(planes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("channels")
    return {(kind, n): make(kind, n, planes, folder) for kind, counts in KINDS.items() for n in counts}


def run(client, inputs, **options):
    """One run over the given inputs; {(kind, n): (status, masked, error)}."""
    keys = list(inputs)
    images = [inputs[key] for key in keys]
    result = extract_palette(images, 3, client=client, report=lambda line: None, **options)
    return {
        key: (int(result.image_status[i]), int(result.image_masked[i]), result.image_errors[i])
        for i, key in enumerate(keys)
    }


def test_no_choice_reads_declared_alpha_only_and_refuses_the_rest(client, inputs):
    for key, (status, masked, error) in run(client, inputs).items():
        kind, n = key
        if key in DECLARED:
            assert (status, masked) == (DONE, ZEROS), (key, error)
        elif n in (1, 3):
            assert (status, masked) == (DONE, 0), (key, error)
        else:  # no mask made up: a one-line error naming what to pass
            assert status == FAILED, key
            assert "nothing says which are colours" in error and "--bands" in error, (key, error)
            assert ("--alpha" in error) == (n in (2, 4)), (key, error)
            assert "\n" not in error


@pytest.mark.parametrize("count", [1, 3])
def test_chosen_bands_read_those_bands_and_declared_alpha_only(client, inputs, count):
    chosen = {key: value for key, value in inputs.items() if (key[1] >= 3) == (count == 3)}
    bands = (0,) if count == 1 else (0, 1, 2)
    for key, (status, masked, error) in run(client, chosen, bands=bands).items():
        assert status == DONE, (key, error)
        assert masked == (ZEROS if key in DECLARED else 0), key  # never a mask nothing declared


@pytest.mark.parametrize("count", [2, 4, 5])
def test_an_alpha_band_named_by_the_user_masks(client, inputs, count):
    chosen = {key: value for key, value in inputs.items() if key[1] == count}
    bands, alpha = ((0,), 1) if count == 2 else ((0, 1, 2), 3)
    for key, (status, masked, error) in run(client, chosen, bands=bands, alpha=alpha).items():
        assert (status, masked) == (DONE, ZEROS), (key, error)
    if count == 4:  # alpha named, the colours left to the rule: the three others
        for key, (status, masked, error) in run(client, chosen, alpha=alpha).items():
            assert (status, masked) == (DONE, ZEROS), (key, error)


def test_the_command_line_alpha_and_bands_of_fluorescence_channels(capsys, tmp_path, inputs):
    dapi_fitc = inputs[("ome-zarr", 2)]
    assert main(["run", dapi_fitc, "--threads", "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--bands 1" in err and "--alpha 2" in err, err
    assert main(["run", dapi_fitc, "--threads", "--bands", "1", "--json"]) == 0
    assert '"masked": 0' in capsys.readouterr().out
    store = tmp_path / "a.zarr"
    rgba = inputs[("ome-zarr", 4)]
    assert main(["run", rgba, "--threads", "--alpha", "4", "-o", str(store), "--json"]) == 0
    assert f'"masked": {ZEROS}' in capsys.readouterr().out
    assert zarr.open_group(store, mode="r").attrs["parameters"]["alpha"] == 3  # kept, for --resume
    assert main(["run", inputs[("zarr", 3)], "--threads", "--alpha", "2", "--bands", "1,2,3", "-q"]) == 1
    assert "band 2 is both alpha (--alpha) and colour (--bands)" in capsys.readouterr().err
