"""Derived features: arithmetic over other features, written in the config, evaluated safely.

`source.derived: {tb_diff: "tmbrs-1 - tmbrs-2"}` appends a feature `tb_diff`. Feature names hold
dashes, so a name is matched against the input's features before the text reaches Python's parser:
each feature name becomes a placeholder identifier. The expression is parsed with `ast` and only
numbers, feature names, unary and binary + - * / ** and the functions in `FUNCTIONS` are allowed;
anything else (attributes, subscripts, calls of other names, strings, lambdas) is refused with the
offending piece named. Values are float32; a cell is NaN wherever an input is NaN (and wherever
the arithmetic is undefined, e.g. log of a negative number or a division by zero).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence

import numpy as np

FUNCTIONS: dict[str, Callable] = {"abs": np.abs, "sqrt": np.sqrt, "log": np.log, "exp": np.exp,
                                  "minimum": np.minimum, "maximum": np.maximum}
_OPERATORS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power}
# A feature reference: letters, digits, '_', '-' and '/', not starting with a digit; `a - b` needs spaces.
_NAME = re.compile(r"(?<![A-Za-z0-9_.])[A-Za-z_][A-Za-z0-9_/]*(?:-[A-Za-z0-9_/]+)*")
_MAX_LENGTH = 500


class DerivedFeatureError(ValueError):
    """An expression is not allowed or names a feature the input lacks."""


def parse(expression: str) -> tuple[ast.Expression, tuple[str, ...]]:
    """(checked syntax tree, feature names it uses, in order). Raises DerivedFeatureError."""
    if not isinstance(expression, str) or not expression.strip():
        raise DerivedFeatureError("an expression must be non-empty text, e.g. 'tmbrs-1 - tmbrs-2'")
    if len(expression) > _MAX_LENGTH:
        raise DerivedFeatureError(f"expression longer than {_MAX_LENGTH} characters")
    names: list[str] = []

    def placeholder(match: re.Match) -> str:
        word = match.group(0)
        if word in FUNCTIONS and "-" not in word:
            return word
        if word not in names:
            names.append(word)
        return f"_f{names.index(word)}"

    text = _NAME.sub(placeholder, expression)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise DerivedFeatureError(f"{expression!r} is not an arithmetic expression "
                                  "(write a difference with spaces: 'tmbrs-1 - tmbrs-2')") from None
    for node in ast.walk(tree):
        _check_node(node, expression)
    return tree, tuple(names)


def _check_node(node: ast.AST, expression: str) -> None:
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Name, ast.Load, *_OPERATORS)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise DerivedFeatureError(f"{expression!r}: only numbers are allowed as constants, not {node.value!r}")
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise DerivedFeatureError(f"{expression!r}: only the functions {', '.join(FUNCTIONS)} may be called "
                                      "(positional arguments only)")
    elif not isinstance(node, allowed):
        raise DerivedFeatureError(f"{expression!r}: {type(node).__name__} is not allowed; use numbers, feature "
                                  f"names, + - * / ** and {', '.join(FUNCTIONS)}")


def check_inputs(derived: dict[str, str], features: Sequence[str]) -> None:
    """Every expression names only existing features, and no derived name repeats a feature."""
    for name, expression in derived.items():
        if name in features:
            raise DerivedFeatureError(f"derived feature {name!r} repeats a feature of the input; choose another name")
        missing = [n for n in parse(expression)[1] if n not in features]
        if missing:
            raise DerivedFeatureError(f"derived feature {name!r} = {expression!r} uses {', '.join(missing)}, "
                                      f"which the input does not have")


def evaluate(expression: str, feature: Callable[[str], np.ndarray]) -> np.ndarray:
    """The expression's float32 values; `feature(name)` gives a feature's values (NaN = invalid)."""
    tree, names = parse(expression)
    values = {f"_f{k}": np.asarray(feature(name), np.float32) for k, name in enumerate(names)}
    with np.errstate(all="ignore"):
        result = _evaluate(tree.body, values)
        invalid = np.zeros(np.shape(result), bool)
        for array in values.values():
            invalid |= ~np.isfinite(array)
    result = np.where(invalid | ~np.isfinite(result), np.float32(np.nan), result)
    return result.astype(np.float32, copy=False)


def _evaluate(node: ast.AST, values: dict[str, np.ndarray]):
    if isinstance(node, ast.Constant):
        return np.float32(node.value)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        return _OPERATORS[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    return FUNCTIONS[node.func.id](*(_evaluate(arg, values) for arg in node.args))
