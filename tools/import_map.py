"""Print the package-level import map: each part of palette_dask and the parts it imports.

A part is a module or package directly under ``palette_dask/`` (``run``,
``outputs``, ``options``...). The imports are grimp's, those inside
functions too, as the import contract counts them; the parts come in the
order of the contract's layers (pyproject.toml, ``[tool.importlinter]``),
top to bottom. ARCHITECTURE.md shows this output ("Where each stage lives");
``tests/test_layers.py`` fails when it differs.

Usage: ``python tools/import_map.py``
"""

from __future__ import annotations

import re
from pathlib import Path

import grimp

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter's own dependency
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def layers(pyproject: Path = PYPROJECT) -> list[str]:
    """The parts named by the contract's layers, top to bottom (``"cli : cli_parser"`` gives two)."""
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "layers")
    return [part for layer in contract["layers"] for part in re.split(r"\s*[:|]\s*", layer.strip())]


def import_map(package: str = "palette_dask") -> str:
    """The map as text: a line per part, ``part → the parts it imports``, in the order of the layers."""
    graph = grimp.build_graph(package, cache_dir=None)
    declared = layers()
    parts = declared + sorted({m.split(".")[1] for m in graph.find_children(package)} - set(declared))
    imports: dict[str, set[str]] = {part: set() for part in parts}
    for module in graph.modules - {package}:  # the package's __init__ re-exports the API: no part
        for imported in graph.find_modules_directly_imported_by(module) - {package}:
            importer, part = module.split(".")[1], imported.split(".")[1]
            if part != importer:
                imports[importer].add(part)
    width = max(map(len, parts))
    return "\n".join(
        f"{part:<{width}} → {', '.join(p for p in parts if p in imports[part])}".rstrip() for part in parts
    )


if __name__ == "__main__":
    print(import_map())
