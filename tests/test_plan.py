"""One checked run plan for both shells: the same checks, before any cluster, in each shell's own words."""

import pytest
from helpers import PHOTOS

from palette_dask import extract_palette
from palette_dask.cli import EXIT_USAGE, main
from palette_dask.errors import ParameterError
from palette_dask.run.plan import plan_run

#: A scheduler nobody listens at: a command that got as far as its cluster would fail on it instead.
NOWHERE = "tcp://127.0.0.1:9"


@pytest.mark.parametrize(
    "flags, keywords, on_the_command_line, from_python",
    [
        (
            ["--labels"], {"labels": True},
            "--labels needs a store: -o OUT.zarr", "labels=True needs a store: store=PATH",
        ),  # fmt: skip
        (
            ["-o", "{store}", "--append", "--resume"],
            {"store": "{store}", "append": True, "resume": True},
            "--append adds to a store: not with --resume or --overwrite",
            "append=True adds to a store: not with resume=True or overwrite=True",
        ),
        (
            ["-o", "{store}", "--append", "--source-labels", "kmeans"],
            {"store": "{store}", "append": True, "source_labels": "kmeans"},
            "--source-labels writes into the inputs of one run: not with --append",
            "source_labels=NAME writes into the inputs of one run: not with append=True",
        ),
    ],
)
def test_both_shells_refuse_the_same_runs_each_in_its_own_words(
    capsys, tmp_path, flags, keywords, on_the_command_line, from_python
):
    store = str(tmp_path / "run.zarr")
    flags = [flag.format(store=store) for flag in flags]
    keywords = {name: store if value == "{store}" else value for name, value in keywords.items()}
    code = main(["run", str(PHOTOS[0]), *flags, "--scheduler", NOWHERE, "-q"])
    assert code == EXIT_USAGE and on_the_command_line in capsys.readouterr().err
    with pytest.raises(ParameterError, match=from_python.replace("(", r"\(")):
        extract_palette(PHOTOS[0], client=NOWHERE, **keywords)
    with pytest.raises(ParameterError, match=from_python.replace("(", r"\(")):
        plan_run(PHOTOS[0], **keywords)  # the plan alone: no client at all


def test_a_palette_file_that_cannot_be_read_is_refused_before_any_cluster(capsys, tmp_path):
    missing = tmp_path / "missing.json"
    code = main(["run", str(PHOTOS[0]), "--palette", str(missing), "--scheduler", NOWHERE, "-q"])
    err = capsys.readouterr().err
    assert code != 0 and str(missing) in err and "scheduler" not in err and NOWHERE not in err


def test_the_plan_holds_the_inputs_classified_once_and_the_options_checked(tmp_path):
    plan = plan_run([PHOTOS[0], PHOTOS[0], PHOTOS[1]], k=3, store=tmp_path / "run.zarr", labels=True)
    assert plan.names == [str(PHOTOS[0]), str(PHOTOS[1])] and not plan.zarr and not plan.arrays
    assert plan.config.k == 3 and plan.config.labels and plan.explicit == {"k", "labels"}
    assert not (tmp_path / "run.zarr").exists()  # a plan makes nothing
