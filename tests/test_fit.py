import warnings

import dask.array as da
import numpy as np
import pytest
from helpers import PHOTOS, reference_labels, sklearn_best_inertia

from palette_dask import (
    NoValidPixelsError,
    PaletteDaskWarning,
    ParameterError,
    draw_sample,
    fit_palette,
    probe,
    read_image,
)
from palette_dask.kernels.fit import polish
from palette_dask.kernels.pixels import pixel_spec


@pytest.fixture(scope="module")
def photo_sample():
    infos = [probe(str(p)) for p in PHOTOS]
    return draw_sample([read_image(i) for i in infos], [pixel_spec(i) for i in infos], 30_000, seed=0)


def squared_inertia(x, centers):
    labels = reference_labels(x, centers)
    return float(((x - centers[labels]) ** 2).sum())


def test_fit_matches_scikit_learn_on_the_same_pixels(photo_sample):
    fitted = fit_palette(photo_sample, 5, random_state=0)
    assert fitted.centers.shape == (5, 3) and fitted.centers.dtype == np.float32
    reference = sklearn_best_inertia(photo_sample, 5)
    assert fitted.sample_inertia <= reference * 1.02
    # our inertia is a sum of squared distances, unlike dask-ml's inertia_
    assert fitted.sample_inertia == pytest.approx(squared_inertia(photo_sample, fitted.centers), rel=1e-5)


def test_same_seed_same_centres(photo_sample):
    a = fit_palette(photo_sample, 5, random_state=3)
    b = fit_palette(photo_sample, 5, random_state=3)
    np.testing.assert_array_equal(a.centers, b.centers)


def test_integer_pixels_give_float_centres():
    x = np.array([[0, 0, 0], [1, 1, 1], [200, 200, 200], [201, 201, 201]] * 50, dtype=np.uint8)
    fitted = fit_palette(x.astype(np.float32), 2)
    assert sorted(fitted.centers[:, 0].tolist()) == [0.5, 200.5]


@pytest.mark.parametrize("distinct", [2, 3])
def test_fewer_distinct_colours_than_k_give_a_smaller_palette(distinct):
    colours = np.array([[250, 0, 0], [0, 250, 0], [0, 0, 250]], dtype=np.float32)[:distinct]
    x = np.repeat(colours, [500, 300, 200][:distinct], axis=0)
    with pytest.warns(PaletteDaskWarning, match=f"only {distinct} distinct colours"):
        fitted = fit_palette(x, 5)
    assert len(fitted.centers) == distinct
    np.testing.assert_array_equal(np.unique(fitted.centers, axis=0), np.unique(colours, axis=0))


def test_exactly_k_distinct_colours_warn_nothing():
    colours = np.array([[10, 10, 10], [90, 90, 90], [170, 170, 170]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = fit_palette(np.repeat(colours, 100, axis=0), 3)
    np.testing.assert_array_equal(np.unique(fitted.centers, axis=0), colours)


def test_polish_reseeds_empty_clusters_instead_of_black():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 3, (400, 3)) for c in (60, 120, 180, 240)])
    # two centres nobody is near, and one duplicate: dask-ml would leave them empty (zeros)
    start = np.array([[60, 60, 60], [120, 120, 120], [120, 120, 120], [-500, -500, -500]], dtype=float)
    centers, inertia = polish(x, start)
    labels = reference_labels(x, centers)
    assert np.bincount(labels, minlength=4).min() > 0
    assert not np.any(np.all(centers == 0, axis=1))
    assert inertia == pytest.approx(squared_inertia(x, centers), rel=1e-6)


def test_every_fitted_colour_owns_pixels(photo_sample):
    fitted = fit_palette(photo_sample, 12, random_state=1)
    counts = np.bincount(reference_labels(photo_sample, fitted.centers), minlength=12)
    assert counts.min() > 0
    assert len(np.unique(fitted.centers, axis=0)) == 12


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "5"])
def test_bad_k(k):
    with pytest.raises(ParameterError, match="k must be a whole number"):
        fit_palette(np.zeros((10, 3), np.float32), k)


def test_empty_sample():
    with pytest.raises(NoValidPixelsError, match="no valid pixels"):
        fit_palette(np.zeros((0, 3), np.float32), 5)


def test_a_numpy_sample_is_fitted_in_process_without_cluster_round_trips(client, photo_sample):
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        local = fit_palette(photo_sample, 5, random_state=3)
    assert stream.data == []  # dask's threaded scheduler here, not the cluster
    persisted = client.persist(da.from_array(photo_sample, chunks=(20_000, 3)))
    on_cluster = fit_palette(persisted, 5, random_state=3)
    assert local.sample_inertia == pytest.approx(on_cluster.sample_inertia, rel=0.01)
