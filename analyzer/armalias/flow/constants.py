"""The value of a C integer expression of numbers and names whose values are known (object-like
macros, a caller's constant locals): what a guard such as `flags & FLAG_PA_IS_EXEC` is at a call."""

from __future__ import annotations

import ast
import operator
import re
from functools import lru_cache
from typing import Callable

_CONST_TOKEN = re.compile(r"\s*(0[xX][0-9a-fA-F]+|\d+)[uUlL]*|\s*([A-Za-z_]\w*)|\s*(<<|>>|==|!=|&&|\|\||[-+*&|^~!()])")


def const_eval(text: str, value: Callable[[str], int | None]) -> int | None:
    """The value of a C integer expression of numbers, names `value` knows and the operators
    | & ^ << >> + - * ~ ! == != && || with parentheses; None for anything else."""
    tree = _parsed(text.strip())
    return None if tree is None else _fold(tree, value)


@lru_cache(maxsize=8192)
def _parsed(text: str) -> ast.AST | None:
    """The expression's tree, its names as `n_<name>`: parsed once per text (Kconfig's select
    conditions are evaluated again for every defconfig, 40,000 times for 6.12's)."""
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _CONST_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            return None
        pos = m.end()
        if m.group(1) is not None:
            tokens.append(str(int(m.group(1), 0)))
        elif m.group(2) is not None:
            tokens.append(f"n_{m.group(2)}")
        else:
            tokens.append({"&&": " and ", "||": " or ", "!": " not "}.get(m.group(3), m.group(3)))
    try:
        return ast.parse("".join(tokens).strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None


_BINARY = {ast.BitOr: operator.or_, ast.BitAnd: operator.and_, ast.BitXor: operator.xor, ast.Add: operator.add,
           ast.Sub: operator.sub, ast.Mult: operator.mul, ast.LShift: operator.lshift, ast.RShift: operator.rshift}


def _fold(node: ast.AST, value: Callable[[str], int | None]) -> int | None:
    """An expression tree of const_eval's tokens folded to an int, its names given their `value`;
    values kept within 64 bits."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name):
        return value(node.id[2:])
    if isinstance(node, ast.UnaryOp):
        v = _fold(node.operand, value)
        if v is None:
            return None
        return {ast.Invert: lambda x: ~x, ast.USub: lambda x: -x, ast.UAdd: lambda x: x,
                ast.Not: lambda x: int(not x)}[type(node.op)](v)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        a, b = _fold(node.left, value), _fold(node.right, value)
        if a is None or b is None or (isinstance(node.op, (ast.LShift, ast.RShift)) and not 0 <= b < 64):
            return None
        v = _BINARY[type(node.op)](a, b)
        return v if -(1 << 64) < v < (1 << 64) else None
    if isinstance(node, ast.BoolOp):
        vals = [_fold(v, value) for v in node.values]
        if any(v is None for v in vals):
            return None
        return int(all(vals)) if isinstance(node.op, ast.And) else int(any(vals))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in (ast.Eq, ast.NotEq):
        a, b = _fold(node.left, value), _fold(node.comparators[0], value)
        if a is None or b is None:
            return None
        return int((a == b) == isinstance(node.ops[0], ast.Eq))
    return None
