"""The command line only parses: no module of satflow/cli imports a data library, anywhere in it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import satflow.cli

CLI_DIR = Path(satflow.cli.__file__).parent
DATA_LIBRARIES = {"numpy", "xarray", "zarr", "pandas", "dask", "distributed"}


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` names, at module level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CLI_DIR.glob("*.py")), ids=lambda p: p.name)
def test_cli_module_imports_no_data_library(path):
    found = sorted(name for name in imported_modules(path) if name.split(".")[0] in DATA_LIBRARIES)
    assert found == [], f"{path.name} imports {found}: move that work into the stage's api"


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import json\n\ndef handler():\n    from numpy import stack\n    import dask.array as da\n")
    assert imported_modules(module) == {"json", "numpy", "dask.array"}
