"""Arithmetic in profiles: ``100 * used / size``, ``value == 1``, ``a / b if b > 0 else None``.

Only numbers, names, arithmetic, comparisons, and/or/not and conditional expressions are allowed:
the expression is checked once when the profile loads, so a profile can never run code.
"""

from __future__ import annotations

import ast
import math
from typing import Any

_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Name,
            ast.Load, ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
            ast.USub, ast.UAdd, ast.Not, ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt,
            ast.GtE)


class ExpressionError(ValueError):
    pass


class Expression:
    """A checked expression over named numbers; evaluates to a float, or None when not computable."""

    def __init__(self, source: Any, names: set[str]) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError(f"expression {source!r} must be a non-empty string")
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"expression {source!r}: {exc.msg}") from None
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED):
                raise ExpressionError(f"expression {source!r}: {type(node).__name__} is not allowed")
            if isinstance(node, ast.Constant) and not (node.value is None or isinstance(node.value, (int, float))):
                raise ExpressionError(f"expression {source!r}: only numbers and None are allowed")
            if isinstance(node, ast.Name) and node.id not in names:
                raise ExpressionError(f"expression {source!r}: unknown name {node.id!r} "
                                      f"(known: {', '.join(sorted(names)) or 'none'})")
        self.source = source
        self.names = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))
        self._code = compile(tree, "<profile expression>", "eval")

    def __call__(self, values: dict[str, float | None]) -> float | None:
        if any(values.get(n) is None for n in self.names):
            return None
        try:
            result = eval(self._code, {"__builtins__": {}}, values)  # noqa: S307 - checked above
        except (ZeroDivisionError, OverflowError, ValueError, TypeError):
            return None
        if result is None:
            return None
        result = float(result)
        return result if math.isfinite(result) else None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)
