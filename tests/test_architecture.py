"""The house rules of DESIGN's Layout, checked on the source with `ast` (nothing is imported).

- no import cycle between satflow's modules (function-level imports count: a deferred import is
  still a dependency; only `if TYPE_CHECKING:` blocks, which never run, are left out);
- the command line only parses: no module of `satflow/cli/` imports an array or data library;
- no module imports a private name (`_name`) of another module, tests and scripts included;
- the codecs import one way.

`tests/test_config.py` checks that `satflow.config` imports only the light `options` modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "satflow"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for sub in ast.walk(node))
    return skipped


def imported_names(path: Path) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every import of the file, relative ones resolved."""
    here = _module_name(path) if path.is_relative_to(PACKAGE) else ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> list[tuple[str, str | None]]:
    tree = ast.parse(source)
    skipped = _type_checking_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found += [(base, alias.name) for alias in node.names]
    return found


def _owning_module(dotted: str) -> str | None:
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def satflow_dependencies(module: str, imports: list[tuple[str, str | None]] | None = None) -> set[str]:
    """The satflow modules `module` imports (a `from pkg import submodule` names the submodule)."""
    deps = set()
    for base, name in imported_names(MODULES[module]) if imports is None else imports:
        target = f"{base}.{name}" if name and f"{base}.{name}" in MODULES else base
        owner = _owning_module(target)
        if owner and owner != module:
            deps.add(owner)
    return deps


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph = {module: satflow_dependencies(module) for module in MODULES}
    assert import_cycles(graph) == []


HEAVY_FOR_A_PARSER = {"numpy", "xarray", "zarr", "pandas", "dask", "distributed", "torch", "netCDF4", "pyarrow"}


def test_the_command_line_only_parses():
    offenders = {}
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        heavy = sorted({base.split(".")[0] for base, _ in imported_names(path)} & HEAVY_FOR_A_PARSER)
        if heavy:
            offenders[path.name] = heavy
    assert offenders == {}


def _python_files():
    for folder in ("satflow", "tests", "benchmarks", "jobs"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_name_uses(source: str) -> list[str]:
    """`from satflow.x import _name`, `from satflow import _module`, and `module._name` where `module`
    came from satflow."""
    tree = ast.parse(source)
    module_names, uses = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("satflow")):
            uses += [f"line {node.lineno}: imports {a.name}" for a in node.names if _private(a.name)]
            uses += [f"line {node.lineno}: imports from {node.module}" for part in (node.module or "").split(".")
                     if _private(part)]
            module_names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            module_names.update(a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("satflow"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in module_names:
                uses.append(f"line {node.lineno}: reads {ast.unparse(node)}")
    return uses


def test_the_private_name_check_sees_both_forms():
    source = ("from satflow.codecs import prediction\nfrom satflow.codecs.errorbound import _LIMIT\n"
              "from satflow.codecs._hidden import thing\ndef f():\n    return prediction._around\n")
    assert private_name_uses(source) == ["line 2: imports _LIMIT", "line 3: imports from satflow.codecs._hidden",
                                         "line 5: reads prediction._around"]


def test_no_module_imports_a_private_name_of_another():
    found = {str(path.relative_to(ROOT)): uses for path in _python_files()
             if (uses := private_name_uses(path.read_text()))}
    assert found == {}


def test_the_codecs_import_one_way():
    """errorbound -> prediction -> residuals -> kernels; errorbound -> learned.context_model -> checkpoint
    -> context -> prediction: the learned context never reaches back into the coder that uses it."""
    assert "satflow.codecs.errorbound" not in satflow_dependencies("satflow.codecs.prediction")
    assert "satflow.codecs.learned.checkpoint" not in satflow_dependencies("satflow.codecs.learned.context")


@pytest.mark.parametrize("source, expected", [
    ("from satflow.codecs import container", {"satflow.codecs.container"}),
    ("from .. import metrics", {"satflow.metrics"}),
    ("from .plan import EvalPlan", {"satflow.eval.plan"}),
    ("def f():\n    from satflow.store.read import open_group", {"satflow.store.read"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from satflow.metrics import ErrorSums", set()),
    ("import numpy as np", set()),
])
def test_the_walk_resolves_imports(source, expected):
    imports = imports_in(source, package="satflow.eval")
    assert satflow_dependencies("satflow.eval.api", imports) == expected
