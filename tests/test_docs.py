"""The docs are true: every example runs, the generated reference is current, every relative link resolves.

Conventions (docs/README.md, "The examples"): ```sh and ```python blocks run, in order, each page in a
fresh copy of one sample folder; a shell line ending in ``# exit N`` must exit with N, every other 0.
```console blocks are shown only (a bucket, a scheduler, SLURM, minutes of benchmarks); ```text,
```json and the API reference's ```pycon show output. The README's quick start and its satellite and
slide examples are run by tests/test_cli.py, with assertions of their own.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import PHOTOS, REAL_RASTERS, photo_mosaic, write_ome_zarr

from palette_dask.cli import main

ROOT = Path(__file__).resolve().parents[1]
GUIDE = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EVERY_PAGE = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN = {"sh", "python"}
SHOWN = {"console", "text", "json", "pycon"}
#: The README's sections whose ```sh blocks tests/test_cli.py runs (and checks what they write).
RUN_BY_TEST_CLI = {"Quick start", "A satellite scene", "A microscope slide"}
#: Flags that choose where a run runs: without one, a run in the docs' tests gets --threads.
WHERE = {"--threads", "--processes", "--workers", "--scheduler", "--cluster", "--cluster-config"}


@dataclass
class Block:
    info: str
    code: str
    heading: str
    line: int


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, each with its info string and the heading it is under."""
    found, heading, fence = [], "", None
    for number, line in enumerate(text.splitlines(), 1):
        if fence is None:
            opening = re.match(r"^ {0,3}(`{3,})\s*([^`\s]*)", line)
            if opening:
                fence, info, start, code = opening.group(1), opening.group(2), number, []
            elif line.startswith("#"):
                heading = line.lstrip("#").strip()
        elif line.strip().startswith(fence) and not line.strip().strip("`"):
            found.append(Block(info, "\n".join(code), heading, start))
            fence = None
        else:
            code.append(line)
    assert fence is None, f"a fence opened on line {start} is never closed"
    return found


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture(scope="session")
def sample_folder(tmp_path_factory) -> Path:
    """The files the examples name (docs/README.md lists them), made once."""
    import rasterio
    import tifffile
    import zarr

    folder = tmp_path_factory.mktemp("docs") / "sample"
    (folder / "photos").mkdir(parents=True)
    for photo in PHOTOS:
        shutil.copy(photo, folder / "photos")
    shutil.copy(REAL_RASTERS / "RGB.byte.tif", folder / "scene.tif")
    with rasterio.open(folder / "scene.tif") as scene:
        profile, pixels = scene.profile, scene.read()
    with rasterio.open(folder / "later.tif", "w", **profile) as later:  # a later date: the same place, darker
        later.write((pixels * 0.8).astype(pixels.dtype))
    near_infrared = np.where(pixels[0] > 0, np.clip(295 - pixels[0].astype(int), 1, 255), 0)
    reflectance = np.concatenate([pixels, near_infrared[None]]).astype(np.uint16) * 39  # 0-9945
    with rasterio.open(folder / "reflectance.tif", "w", **{**profile, "count": 4, "dtype": "uint16"}) as out:
        out.write(reflectance)
    write_ome_zarr(folder / "slide.ome.zarr", photo_mosaic(300, 400), "0.5")
    image = photo_mosaic(600, 500)
    tiles = {"photometric": "rgb", "tile": (256, 256)}
    metadata = {"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25}
    tifffile.imwrite(folder / "slide.ome.tif", image, metadata=metadata, compression="zlib", **tiles)
    description = "Aperio Image Library v12.0.0\n600x500 [0,0 600x500] (256x256) JPEG/RGB Q=70|MPP = 0.5"
    tifffile.imwrite(folder / "slide.svs", image, description=description, compression="jpeg", **tiles)
    write_ome_zarr(folder / "cells.ome.zarr", photo_mosaic(200, 240)[..., ::-1], "0.5")  # DAPI (blue) first
    cells = zarr.open_group(str(folder / "cells.ome.zarr"), mode="r+")
    channels = [
        {"label": "DAPI", "color": "0000FF", "active": True},
        {"label": "FITC", "color": "00FF00", "active": True},
        {"label": "TRITC", "color": "FF0000", "active": True},
    ]
    cells.attrs["ome"] = {**cells.attrs["ome"], "omero": {"channels": channels}}
    os.symlink(ROOT / "workflows", folder / "workflows")
    return folder


def run_shell_line(line: str, capsys) -> tuple[int, str]:
    """One line of a ```sh block: palette-dask in this process (on threads unless it says), others in bash."""
    words = shlex.split(line, comments=True)
    if words[0] != "palette-dask":
        done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=SHELL_ENV)
        return done.returncode, done.stdout + done.stderr
    target = None
    if ">" in words:  # a redirection: the command's stdout goes to the file
        words, target = words[: words.index(">")], words[words.index(">") + 1]
    argv = words[1:]
    if argv[0] in ("run", "sweep", "demo") and not WHERE & set(argv):
        argv.append("--threads")
    code = main(argv)
    out, err = capsys.readouterr()
    if target:
        Path(target).write_text(out)
    return code, out + err


SHELL_ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _page_params() -> list:
    params = []
    for page in GUIDE:
        if any(block.info in RUN for block in blocks(page.read_text())):
            params.append(pytest.param(page, id=page_id(page), marks=pytest.mark.slow))
    return params


@pytest.mark.parametrize("page", _page_params())
@pytest.mark.slow
def test_every_example_of_the_page_runs(page, sample_folder, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "sample"
    shutil.copytree(sample_folder, folder, symlinks=True)
    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "__main__"}
    for block in blocks(page.read_text()):
        if block.info not in RUN or (page.name == "README.md" and block.heading in RUN_BY_TEST_CLI):
            continue
        where = f"{page_id(page)} line {block.line}"
        if block.info == "python":
            exec(compile(block.code, where, "exec"), namespace)
            capsys.readouterr()
            continue
        for line in block.code.replace("\\\n", " ").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            expected = re.search(r"#\s*exit (\d+)\b", line)
            code, said = run_shell_line(line, capsys)
            assert code == (int(expected.group(1)) if expected else 0), f"{where}: {line}\n{said}"
            assert "Traceback" not in said, f"{where}: {line}\n{said}"


def test_every_block_says_whether_it_runs():
    """An info string outside the convention (```bash, none) would be skipped silently: name them all."""
    for page in EVERY_PAGE:
        for block in blocks(page.read_text()):
            assert block.info in RUN | SHOWN, (
                f"{page_id(page)} line {block.line}: ```{block.info}: use sh or python (run by the tests), "
                "console (shown only), or text or json (output)"
            )


ACTIVATE = "source .venv/bin/activate"


def test_no_page_runs_palette_dask_before_saying_how_it_gets_on_the_path():
    """A newcomer's shell has no ``palette-dask`` until the virtualenv is active (or it is called by path)."""
    for page in EVERY_PAGE:
        text = page.read_text()
        said = text.find(ACTIVATE)
        for block in blocks(text):
            if block.info not in RUN | {"console"}:
                continue
            at = text.index(block.code)  # where the block's lines are
            for line in block.code.splitlines():
                if not re.match(r"^(\S+=\S+\s+)*palette-dask\s", line) or line.startswith(ACTIVATE):
                    continue  # .venv/bin/palette-dask, or not the command
                where = f"{page_id(page)} line {block.line}: {line}"
                assert 0 <= said < at, f"{where}: runs palette-dask before saying `{ACTIVATE}`"
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("```", 1)[0]
    assert ACTIVATE in quick_start and ".venv/bin/palette-dask" in quick_start  # how it gets on the PATH


def load_generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_reference_is_what_the_code_gives_now():
    stale = [
        str(path.relative_to(ROOT))
        for path, text in load_generator().pages().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"{', '.join(stale)}: out of date; run .venv/bin/python docs/generate.py"


def test_the_options_reference_names_every_declared_option_and_flag():
    from palette_dask.cli_parser import build_parser
    from palette_dask.options import OPTIONS

    page = (ROOT / "docs" / "reference" / "options.md").read_text()
    for option in OPTIONS:
        assert f"| `{option.name}` |" in page
        assert option.flag is None or f"`{option.flag}`" in page
    flags = {flag for action in build_parser()._actions for flag in action.option_strings}
    for command in build_parser()._subparsers._group_actions[0].choices.values():
        flags |= {flag for action in command._actions for flag in action.option_strings}
    assert not [flag for flag in flags - {"-h", "--help"} if f"`{flag}`" not in page]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"`|\*|\[|\]\([^)]*\)", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, seen = set(), {}
    text = re.sub(r"(?ms)^ {0,3}(`{3,}).*?^ {0,3}\1`*\s*$", "", page.read_text())  # headings outside code
    for heading in re.findall(r"(?m)^#{1,6} +(.+?) *#*$", text):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def test_every_relative_link_resolves():
    broken = []
    for page in EVERY_PAGE:
        text = re.sub(r"(?ms)^ {0,3}(`{3,}).*?^ {0,3}\1`*\s*$", "", page.read_text())
        text = re.sub(r"``.*?``|`[^`\n]*`", "", text)  # code spans hold no links
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page_id(page)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page_id(page)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_readme_is_short_and_links_every_guide_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    for page in sorted((ROOT / "docs").rglob("*.md")):
        if page.name != "README.md":
            assert f"({page.relative_to(ROOT)})" in readme, (
                f"the README does not link {page.relative_to(ROOT)}"
            )
