"""Exit codes a job script can trust (issue 33): 3 only for failures this command met, an output not written
is an error, and where outputs go is checked before any cluster starts."""

import subprocess
import sys
import textwrap

import pytest
from helpers import PHOTOS

from palette_dask.cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, main
from palette_dask.outputs.result import load_result

#: A scheduler nobody listens at: a command that got as far as its cluster would fail on it instead.
NOWHERE = "tcp://127.0.0.1:9"


@pytest.fixture
def store_with_a_failure(tmp_path, capsys):
    """A store whose run met one bad file (exit 3), and a good photo not in it yet."""
    (tmp_path / "broken.png").write_bytes(b"not a png")
    store = tmp_path / "run.zarr"
    inputs = [str(PHOTOS[0]), str(tmp_path / "broken.png")]
    assert main(["run", *inputs, "-o", str(store), "--threads", "-q"]) == EXIT_PARTIAL
    capsys.readouterr()
    return store


def test_an_append_that_meets_no_failure_exits_0_and_counts_earlier_ones(store_with_a_failure, capsys):
    store = store_with_a_failure
    code = main(["run", str(PHOTOS[1]), "-o", str(store), "--append", "--threads", "-q"])
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    assert f"{store} holds 1 failed image from before this command" in err
    assert load_result(store).to_dict()["images"] == {"total": 3, "done": 2, "failed": 1, "transient": 0}


def test_a_resume_with_nothing_to_do_exits_0(store_with_a_failure, capsys):
    code = main(["run", "--resume", str(store_with_a_failure), "--threads", "-q"])
    assert code == EXIT_OK and "holds 1 failed image from before" in capsys.readouterr().err


def test_an_append_that_meets_a_failure_exits_3(store_with_a_failure, tmp_path, capsys):
    (tmp_path / "cut.png").write_bytes(PHOTOS[1].read_bytes()[:200])
    code = main(["run", str(tmp_path / "cut.png"), "-o", str(store_with_a_failure), "--append", "--threads"])
    assert code == EXIT_PARTIAL and "cut.png" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--html", "--figure", "--png"])
def test_an_output_into_a_missing_folder_is_refused_before_any_cluster(tmp_path, capsys, flag):
    target = tmp_path / "missing" / "out.file"
    code = main(["run", str(PHOTOS[0]), flag, str(target), "--scheduler", NOWHERE, "-q"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and f"{target}: cannot be written: there is no folder {target.parent}" in err
    assert NOWHERE not in err and "scheduler" not in err


@pytest.mark.parametrize("flag, says", [("--html", "no report"), ("--figure", "no figure")])
def test_an_output_that_cannot_be_written_is_an_error_and_the_store_is_kept(tmp_path, capsys, flag, says):
    target = tmp_path / ("r" * 300 + ".png")  # a name longer than the file system allows: refused by open()
    store = tmp_path / "run.zarr"
    code = main(["run", str(PHOTOS[0]), "-o", str(store), flag, str(target), "--threads", "-q"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and f"{says} {target}" in err and f"{store} is kept" in err
    assert load_result(store).to_dict()["images"] == {"total": 1, "done": 1, "failed": 0, "transient": 0}


def test_a_ctrl_c_dropped_by_a_garbage_collector_callback_still_stops_the_command():
    """Python drops a KeyboardInterrupt raised inside ``__del__``: the command still exits 130.

    Seen under load: distributed's Future.__del__ swallowed the Ctrl-C, and a
    run that ended within the 2 s before it was raised again exited 0.
    """
    script = textwrap.dedent(
        """
        import os, signal, sys
        from palette_dask import cli

        class Drops:
            def __del__(self):  # the handler runs in here, and its KeyboardInterrupt is dropped
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10_000):
                    pass

        def show(args):
            Drops()
            print("the command went on", file=sys.stderr)
            return 0

        cli._COMMANDS["show"] = show
        sys.argv = ["palette-dask", "show", "store.zarr"]
        cli.console_main()
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "Exception ignored" in done.stderr and "KeyboardInterrupt" in done.stderr  # it was dropped
    assert "the command went on" in done.stderr
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "palette-dask: interrupted"
