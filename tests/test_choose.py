"""Choosing k: the sweep's fits against scikit-learn, its elbow on data with a known number of colours."""

import json

import numpy as np
import pytest
from helpers import sklearn_best_inertia, write_png
from PIL import Image

from palette_dask import sweep_k
from palette_dask.cli import main
from palette_dask.run.choose import fit_sweep, suggest_k


def blobs(centres, per_blob=4000, spread=6.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = [rng.normal(c, spread, (per_blob, 3)) for c in centres]
    return np.clip(np.concatenate(points), 0, 255).astype(np.float32)


FOUR = [(30, 30, 30), (220, 40, 40), (40, 200, 60), (50, 60, 220)]


def test_the_elbow_of_four_colours_is_four_and_each_fit_matches_scikit_learn():
    sample = blobs(FOUR)
    sweep = fit_sweep(sample, range(2, 9), seed=0)
    assert sweep.suggested == 4
    assert all(a >= b for a, b in zip(sweep.inertias, sweep.inertias[1:]))  # decreasing
    for k, inertia in zip(sweep.ks, sweep.inertias):
        assert inertia <= sklearn_best_inertia(sample, k) * 1.02, k


def test_suggest_k_on_flat_and_short_curves():
    assert suggest_k([2, 3, 4], [5.0, 5.0, 5.0]) == 2
    assert suggest_k([3, 4, 5, 6, 7], [900, 300, 120, 100, 90]) == 4  # 1 - x - y: 0, .49, .46, .24, 0


@pytest.mark.slow
def test_sweep_from_files_and_the_command_line(client, tmp_path, capsys):
    image = blobs(FOUR[:3], per_blob=3000).reshape(90, 100, 3).round().astype(np.uint8)
    path = write_png(tmp_path / "three.png", image)
    sweep = sweep_k(path, range(2, 8), client=client)
    assert sweep.suggested == 3 and sweep.sample_size == 9000
    curve = tmp_path / "curve.png"
    code = main(
        [
            "sweep",
            path,
            str(tmp_path / "nothing.png"),
            "-k",
            "2..7",
            "--threads",
            "--json",
            "--png",
            str(curve),
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 3 and document["suggested_k"] == 3 and document["ks"] == [2, 3, 4, 5, 6, 7]  # one left out
    assert len(document["failures"]) == 1 and document["failures"][0]["image"].endswith("nothing.png")
    assert document["failures"][0]["error"] == "no such file"
    assert Image.open(curve).size == (600, 400)


@pytest.mark.parametrize("k", ["5", "2..3", "0..5", "a..b"])
def test_bad_k_ranges_are_usage_errors(capsys, k):
    assert main(["sweep", "x.png", "-k", k]) == 2
    assert "LOW..HIGH" in capsys.readouterr().err
