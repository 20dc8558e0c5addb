"""The layers: ARCHITECTURE.md's import map is what the imports draw (the contract itself: `make test`)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_map() -> str:
    spec = importlib.util.spec_from_file_location("import_map", ROOT / "tools" / "import_map.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.import_map()


def test_the_import_map_in_architecture_md_is_the_one_the_imports_draw():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    after = text.split("`python tools/import_map.py`", 1)[1]
    shown = after.split("```\n", 2)[1]  # the first fenced block after it
    # when it fails: paste the output of `python tools/import_map.py` into ARCHITECTURE.md
    assert shown.strip() == _import_map()
