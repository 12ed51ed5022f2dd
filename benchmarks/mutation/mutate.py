"""Mutants of a Python module, found in its AST and applied as small text edits.

Each mutant replaces one node's source text (a comparison, an operator, a constant, a statement,
a slice) and leaves every other byte of the file alone, so a mutant reads as a one-line diff.
A candidate is kept only if the mutated file still parses and its AST differs from the original.

Operators (the `operator` field of a mutant):
    compare-negate    `<` -> `>=`, `==` -> `!=`, `is` -> `is not`, `in` -> `not in` (and back)
    compare-boundary  `<` -> `<=`, `>` -> `>=` (and back)
    arith-swap        `+` <-> `-`, `*` <-> `/`, `//` -> `/`, `%` -> `//`, `**` -> `*`, `<<` <-> `>>`,
                      `&` <-> `|`, `^` -> `|` (binary and augmented assignment)
    unary-remove      `-x` -> `x`
    const-plus/minus  an int or float constant +1 / -1
    bool-flip         `True` <-> `False`
    not-remove        `not x` -> `x`
    condition-negate  `if c:` -> `if not (c):` (also while, assert, `a if c else b`, comprehension
                      filters) when `c` is not already a comparison or a `not`
    boolop-swap       `and` <-> `or`
    statement-remove  a call statement, an in-place assignment (`a[i] = v`, `a.b = v`, `x += 1`), a
                      re-assignment of a name bound earlier in the function, `raise`, `assert`,
                      `break`, `continue`, `del` -> `pass`
    return-none       `return value` -> `return None`
    slice-lower/upper `a[i:j]` -> `a[(i) + 1:j]` / `a[i:(j) - 1]` (a missing bound becomes 1 / -1)

Not mutated: docstrings, type annotations, f-string internals, `if TYPE_CHECKING:` blocks,
`__all__`, string constants, `if __name__ == "__main__":` blocks.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import asdict, dataclass

COMPARE_NEGATE = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq,
                  ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
COMPARE_BOUNDARY = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
ARITH_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
              ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
              ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.BitXor: ast.BitOr}
ATOMS = (ast.Constant, ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.List, ast.Tuple, ast.Dict, ast.Set)


@dataclass(frozen=True)
class Mutant:
    """One edit: bytes [start, end) of line/col positions replaced by `replacement`."""

    path: str          # relative to the repository root, '/'-separated
    line: int
    col: int
    end_line: int
    end_col: int       # AST offsets: 1-based lines, UTF-8 byte columns
    operator: str
    original: str
    replacement: str
    line_text: str     # the stripped source line the edit starts on (for reading and for the id)

    @property
    def id(self) -> str:
        """Stable across edits elsewhere in the file: built from the line's text, not its number."""
        key = "\0".join([self.path, self.line_text, str(self.col), self.operator, self.original, self.replacement])
        stem = self.path.removeprefix("satflow/").removesuffix(".py").replace("/", ".")
        return f"{stem}:{self.operator}:{hashlib.sha1(key.encode()).hexdigest()[:8]}"

    def as_dict(self) -> dict:
        return {"id": self.id, **asdict(self)}


def _byte_offset(lines: list[bytes], line: int, col: int) -> int:
    return sum(len(text) for text in lines[:line - 1]) + col


def apply(source: str, mutant: Mutant) -> str:
    """The module text with the mutant's edit made."""
    data = source.encode()
    lines = data.splitlines(keepends=True)
    start = _byte_offset(lines, mutant.line, mutant.col)
    end = _byte_offset(lines, mutant.end_line, mutant.end_col)
    if data[start:end].decode() != mutant.original:
        raise ValueError(f"mutant {mutant.id} does not match the source at {mutant.path}:{mutant.line}")
    return (data[:start] + mutant.replacement.encode() + data[end:]).decode()


def _is_docstring(node: ast.stmt, parent: ast.AST) -> bool:
    body = getattr(parent, "body", None)
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str) and isinstance(body, list) and body and body[0] is node)


class _Finder(ast.NodeVisitor):
    def __init__(self, source: str, path: str):
        self.source = source
        self.path = path
        self.lines = source.splitlines()
        self.candidates: list[tuple[ast.AST, str, str, bool]] = []   # node, operator, new text, is expr
        self.bound_before: list[dict[str, int]] = []    # per enclosing function: name -> first line bound

    # -- helpers --------------------------------------------------------------------------------------
    def add(self, node: ast.AST, operator: str, new_node_or_text, expression: bool = True) -> None:
        text = new_node_or_text if isinstance(new_node_or_text, str) else ast.unparse(new_node_or_text)
        self.candidates.append((node, operator, text, expression))

    def generic_visit(self, node):
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns", "type_comment"):
                continue                                    # annotations cannot change behaviour
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self._visit_child(item, node)
            elif isinstance(value, ast.AST):
                self._visit_child(value, node)

    def _visit_child(self, child: ast.AST, parent: ast.AST) -> None:
        child._parent = parent  # type: ignore[attr-defined]
        self.visit(child)

    # -- regions that are skipped ---------------------------------------------------------------------
    def visit_JoinedStr(self, node):
        return                                              # f-string internals: messages, not behaviour

    def visit_If(self, node):
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING") or test.startswith("__name__ =="):
            return
        self._negate_condition(node.test)
        self.generic_visit(node)

    def visit_Assign(self, node):
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        self.generic_visit(node)

    # -- functions: names bound so far, for re-assignment removal --------------------------------------
    def _visit_function(self, node):
        bound: dict[str, int] = {}
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                bound[arg.arg] = 0
        for inner in ast.walk(node):
            targets = []
            if isinstance(inner, ast.Assign):
                targets = inner.targets
            elif isinstance(inner, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
                targets = [inner.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        bound.setdefault(name.id, inner.lineno)
                        bound[name.id] = min(bound[name.id], inner.lineno)
        self.bound_before.append(bound)
        self.generic_visit(node)
        self.bound_before.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_function

    # -- statements -----------------------------------------------------------------------------------
    def visit(self, node):
        if isinstance(node, ast.stmt):
            self._statement(node)
        return super().visit(node)

    def _statement(self, node: ast.stmt) -> None:
        parent = getattr(node, "_parent", None)
        if parent is None or _is_docstring(node, parent):
            return
        removable = isinstance(node, (ast.Raise, ast.Assert, ast.Break, ast.Continue, ast.Delete, ast.AugAssign))
        if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):
            removable = True
        if isinstance(node, ast.Assign):
            if all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets):
                removable = True                            # in-place update of an object
            elif self.bound_before and all(isinstance(t, ast.Name) for t in node.targets):
                bound = self.bound_before[-1]
                removable = all(bound.get(t.id, node.lineno) < node.lineno for t in node.targets)
        if removable:
            self.add(node, "statement-remove", "pass", expression=False)
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            self.add(node, "return-none", "return None", expression=False)
        if isinstance(node, ast.AugAssign) and type(node.op) in ARITH_SWAP:
            self.add(node, "arith-swap", ast.AugAssign(node.target, ARITH_SWAP[type(node.op)](), node.value),
                     expression=False)

    def visit_While(self, node):
        self._negate_condition(node.test)
        self.generic_visit(node)

    def visit_Assert(self, node):
        self._negate_condition(node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node):
        self._negate_condition(node.test)
        self.generic_visit(node)

    def visit_comprehension(self, node):
        for test in node.ifs:
            self._negate_condition(test)
        self.generic_visit(node)

    def _negate_condition(self, test: ast.expr) -> None:
        if isinstance(test, ast.Compare) or (isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)):
            return                                          # compare-negate / not-remove already do this
        self.add(test, "condition-negate", ast.UnaryOp(ast.Not(), test))

    # -- expressions ----------------------------------------------------------------------------------
    def visit_Compare(self, node):
        for i, op in enumerate(node.ops):
            for name, table in (("compare-negate", COMPARE_NEGATE), ("compare-boundary", COMPARE_BOUNDARY)):
                if type(op) in table:
                    ops = list(node.ops)
                    ops[i] = table[type(op)]()
                    self.add(node, name, ast.Compare(node.left, ops, node.comparators))
        self.generic_visit(node)

    def visit_BinOp(self, node):
        strings = (ast.JoinedStr,)
        is_text = any(isinstance(side, strings) or (isinstance(side, ast.Constant) and isinstance(side.value, (str, bytes)))
                      for side in (node.left, node.right))
        if type(node.op) in ARITH_SWAP and not is_text:
            self.add(node, "arith-swap", ast.BinOp(node.left, ARITH_SWAP[type(node.op)](), node.right))
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self.add(node, "boolop-swap", ast.BoolOp(other, node.values))
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.Not):
            self.add(node, "not-remove", node.operand)
        elif isinstance(node.op, ast.USub):
            operand = node.operand
            if isinstance(operand, ast.Constant) and _is_number(operand.value):
                self._number(node, -operand.value)
                return
            self.add(node, "unary-remove", operand)
        self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool):
            self.add(node, "bool-flip", ast.Constant(not value))
        elif _is_number(value):
            self._number(node, value)

    def _number(self, node: ast.AST, value) -> None:
        for name, new in (("const-plus", value + 1), ("const-minus", value - 1)):
            self.add(node, name, repr(new) if new >= 0 else f"({new!r})")

    def visit_Slice(self, node):
        if node.lower is not None or node.upper is not None:
            lower = ast.BinOp(node.lower, ast.Add(), ast.Constant(1)) if node.lower is not None else ast.Constant(1)
            self.add(node, "slice-lower", ast.Slice(lower, node.upper, node.step), expression=False)
            upper = (ast.BinOp(node.upper, ast.Sub(), ast.Constant(1)) if node.upper is not None
                     else ast.UnaryOp(ast.USub(), ast.Constant(1)))
            self.add(node, "slice-upper", ast.Slice(node.lower, upper, node.step), expression=False)
        self.generic_visit(node)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _segment(source_bytes_lines: list[bytes], node: ast.AST) -> str:
    start = _byte_offset(source_bytes_lines, node.lineno, node.col_offset)
    end = _byte_offset(source_bytes_lines, node.end_lineno, node.end_col_offset)
    return b"".join(source_bytes_lines)[start:end].decode()


def find_mutants(source: str, path: str) -> list[Mutant]:
    """Every mutant of one module, in source order; each one parses and changes the AST."""
    tree = ast.parse(source)
    finder = _Finder(source, path)
    finder.visit(tree)
    reference = ast.dump(tree)
    byte_lines = source.encode().splitlines(keepends=True)
    text_lines = source.splitlines()
    mutants: dict[str, Mutant] = {}
    for node, operator, text, expression in finder.candidates:
        if getattr(node, "lineno", None) is None:
            continue
        if expression and not isinstance(node, ATOMS) and not text.startswith("("):
            text = f"({text})"                              # keep precedence wherever the node sits
        mutant = Mutant(path=path, line=node.lineno, col=node.col_offset, end_line=node.end_lineno,
                        end_col=node.end_col_offset, operator=operator, original=_segment(byte_lines, node),
                        replacement=text, line_text=text_lines[node.lineno - 1].strip())
        try:
            changed = ast.parse(apply(source, mutant))
        except (SyntaxError, ValueError):
            continue
        if ast.dump(changed) != reference:
            mutants.setdefault(mutant.id, mutant)
    return sorted(mutants.values(), key=lambda m: (m.line, m.col, m.operator, m.replacement))
