"""Per-image palettes (--per-image K): every image's own colours and shares, against scikit-learn."""

import json

import numpy as np
import pytest
import zarr
from helpers import photo_crops, write_png
from sklearn.cluster import KMeans

from palette_dask import extract_palette, load_result
from palette_dask.cli import main
from palette_dask.kernels.colour import delta_e00, lab_to_srgb, srgb_to_lab
from palette_dask.outputs.search import search_store

K = 5


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """30 crops of real photos (PNG), 40 to 120 pixels a side."""
    folder = tmp_path_factory.mktemp("crops")
    for i, crop in enumerate(photo_crops(30, seed=7, corners=300, sides=(40, 120))):
        write_png(folder / f"c{i:02d}.png", np.ascontiguousarray(crop))
    return folder


def _error(lab: np.ndarray, colours: np.ndarray) -> float:
    """Mean squared CIELAB distance of pixels to the nearest of 8-bit colours (as shown)."""
    shown = srgb_to_lab(np.asarray(colours, np.float64))
    return float(((lab[:, None, :] - shown[None]) ** 2).sum(axis=2).min(axis=1).mean())


@pytest.mark.slow
def test_per_image_palettes_are_as_good_as_scikit_learn_kmeans_in_lab(client, crops):
    result = extract_palette(crops, 3, client=client, per_image=K)
    ratios = []
    for name, colours, shares in zip(result.image_names, result.image_palettes, result.image_palette_shares):
        from PIL import Image

        lab = srgb_to_lab(np.asarray(Image.open(name).convert("RGB"), np.float64).reshape(-1, 3))
        reference = KMeans(K, random_state=0, n_init="auto").fit(lab).cluster_centers_
        ours, theirs = _error(lab, colours[shares > 0]), _error(lab, np.rint(lab_to_srgb(reference)))
        ratios.append(ours / theirs)
        assert ours <= 1.1 * theirs + 2.0  # within 10 %, or under a just noticeable difference (ΔE*ab² 2)
        assert shares.sum() == pytest.approx(1.0) and (np.diff(shares) <= 0).all()  # largest first
        exact = np.bincount(  # each pixel to its nearest own colour, against the shares given
            ((lab[:, None, :] - srgb_to_lab(colours.astype(float))[None]) ** 2).sum(axis=2).argmin(axis=1),
            minlength=K,
        )
        alike = delta_e00(colours, colours) < 5  # colours that hardly differ split their pixels at will
        group = alike.argmax(axis=1)
        np.testing.assert_allclose(
            np.bincount(group, exact / len(lab), K), np.bincount(group, shares, K), rtol=0, atol=0.03
        )
    assert np.mean(ratios) <= 1.02, ratios


@pytest.mark.slow
def test_per_image_palettes_do_not_depend_on_batches_and_leave_out_excluded_pixels(client, crops, tmp_path):
    runs = {}
    for size in (1, 7, 256):
        store = tmp_path / f"b{size}.zarr"
        extract_palette(crops, 3, client=client, store=store, per_image=K, batch_size=size)
        group = zarr.open_group(store, mode="r")
        assert group["image_palettes"].chunks == (size, K, 3)  # one chunk per batch
        runs[size] = (group["image_palettes"][:], group["image_palette_shares"][:])
    for size in (7, 256):
        np.testing.assert_array_equal(runs[size][0], runs[1][0])
        np.testing.assert_array_equal(runs[size][1], runs[1][1])
    image = np.full((60, 80, 3), 255, np.uint8)
    image[10:50, 20:60] = next(photo_crops(1, seed=3, corners=200, sides=(40, 41)))[:40, :40]
    path = write_png(tmp_path / "on-white.png", image)
    kept = extract_palette(path, 3, client=client, per_image=K)
    left = extract_palette(path, 3, client=client, per_image=K, exclude=["#ffffff"])
    assert delta_e00(kept.image_palettes[0][:1], [[255, 255, 255]]).min() < 3  # white, the largest
    own = left.image_palettes[0][left.image_palette_shares[0] > 0]
    assert delta_e00(own, [[255, 255, 255]]).min() > 6


@pytest.mark.slow
def test_per_image_palettes_on_the_command_line_and_in_search(crops, tmp_path, capsys):
    store = tmp_path / "s.zarr"
    assert main(["run", str(crops), "-k", "3", "--per-image", "4", "-o", str(store), "-q"]) == 0
    capsys.readouterr()
    assert main(["show", str(store), "--images", "--json"]) == 0
    images = json.loads(capsys.readouterr().out)["images"]
    result = load_result(store)
    first = images[0]["own_palette"]
    assert [c["rgb"] for c in first] == result.image_palettes[0][result.image_palette_shares[0] > 0].tolist()
    assert sum(c["share"] for c in first) == pytest.approx(1.0, abs=1e-5)
    assert main(["show", str(store), "--csv", str(tmp_path / "s.csv")]) == 0
    header = (tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert header[-8:] == [f"{p}{i}" for i in range(1, 5) for p in ("own_", "own_share_")]
    assert main(["run", str(crops), "--per-image", "0"]) == 2  # 1 to 64 colours
    # search: the larger of the shared palette's share and the image's own, against numpy on the arrays
    colour = tuple(int(v) for v in result.image_palettes[3][0])
    ids, matches, total = search_store(store, colour, within=4, min_share=0.3)
    shared = result.image_counts[:, np.array(ids, int) - 1].sum(axis=1) / result.image_valid
    close = delta_e00(result.image_palettes.reshape(-1, 3), [colour]).reshape(-1, 4) <= 4
    expected = np.maximum(shared, np.where(close, result.image_palette_shares, 0).sum(axis=1))
    wanted = sorted(np.flatnonzero(expected >= 0.3), key=lambda i: (-expected[i], i))
    assert [m.index for m in matches] == wanted and 3 in wanted and total == len(wanted)


def test_a_mosaic_read_chunk_by_chunk_gets_its_own_palette_from_its_chunks_bins(client, tmp_path):
    from helpers import periodic_mosaic

    from palette_dask.inputs.read import probe
    from palette_dask.kernels.per_image import BITS, _bins, add_parts, bins_of, block_parts, lattice_step
    from palette_dask.kernels.pixels import pixel_spec

    pixels = periodic_mosaic(600, 150, 2)  # four photos' tiles
    path = tmp_path / "m.zarr"
    zarr.create_array(path, data=pixels, chunks=(128, 128, 3))
    # the chunks' bins add up to the bins of the image decoded whole, exactly
    spec = pixel_spec(probe(str(path)))
    step = lattice_step(pixels.shape[:2])
    edges = [(start, min(start + 128, 600)) for start in range(0, 600, 128)]
    parts = add_parts(
        [block_parts(pixels[slice(*r), slice(*c)], spec, (r, c), step) for r in edges for c in edges]
    )
    for bits in (BITS, 6):
        whole = _bins(pixels.reshape(-1, 3), np.arange(3), np.ones(600 * 600, np.uint8), bits)
        for ours, theirs in zip(bins_of(parts, bits), whole):
            np.testing.assert_array_equal(ours, theirs)
    assert len(parts.pixels) == (-(-600 // step)) ** 2 <= 4096
    result = extract_palette(str(path), 3, client=client, per_image=K, chunk_bytes=2**16)
    colours, shares = result.image_palettes[0], result.image_palette_shares[0]
    lab = srgb_to_lab(pixels.reshape(-1, 3).astype(np.float64))
    reference = KMeans(K, random_state=0, n_init="auto").fit(lab[::7]).cluster_centers_
    assert _error(lab, colours[shares > 0]) <= 1.1 * _error(lab, np.rint(lab_to_srgb(reference))) + 2.0
    assert shares.sum() == pytest.approx(1.0) and (np.diff(shares) <= 0).all() and (shares > 0).sum() == K
    nearest = ((lab[:, None, :] - srgb_to_lab(colours.astype(float))[None]) ** 2).sum(axis=2).argmin(axis=1)
    exact = np.bincount(nearest, minlength=K) / len(lab)
    np.testing.assert_allclose(exact, shares, rtol=0, atol=0.03)  # the lattice's shares, near every pixel's
