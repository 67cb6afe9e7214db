"""The value of a C integer expression of numbers and names whose values are known (object-like
macros, a caller's constant locals): what a guard such as `flags & FLAG_PA_IS_EXEC` is at a call."""

from __future__ import annotations

import ast
import operator
import re
from typing import Callable

_CONST_TOKEN = re.compile(r"\s*(0[xX][0-9a-fA-F]+|\d+)[uUlL]*|\s*([A-Za-z_]\w*)|\s*(<<|>>|==|!=|&&|\|\||[-+*&|^~!()])")


def const_eval(text: str, value: Callable[[str], int | None]) -> int | None:
    """The value of a C integer expression of numbers, names `value` knows and the operators
    | & ^ << >> + - * ~ ! == != && || with parentheses; None for anything else."""
    tokens: list[str] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _CONST_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            return None
        pos = m.end()
        if m.group(1) is not None:
            tokens.append(str(int(m.group(1), 0)))
        elif m.group(2) is not None:
            v = value(m.group(2))
            if v is None:
                return None
            tokens.append(f"({v})")
        else:
            tokens.append({"&&": " and ", "||": " or ", "!": " not "}.get(m.group(3), m.group(3)))
    try:
        tree = ast.parse("".join(tokens).strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None
    return _fold(tree.body)


_BINARY = {ast.BitOr: operator.or_, ast.BitAnd: operator.and_, ast.BitXor: operator.xor, ast.Add: operator.add,
           ast.Sub: operator.sub, ast.Mult: operator.mul, ast.LShift: operator.lshift, ast.RShift: operator.rshift}


def _fold(node: ast.AST) -> int | None:
    """An expression tree of const_eval's tokens folded to an int; values kept within 64 bits."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp):
        v = _fold(node.operand)
        if v is None:
            return None
        return {ast.Invert: lambda x: ~x, ast.USub: lambda x: -x, ast.UAdd: lambda x: x,
                ast.Not: lambda x: int(not x)}[type(node.op)](v)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        a, b = _fold(node.left), _fold(node.right)
        if a is None or b is None or (isinstance(node.op, (ast.LShift, ast.RShift)) and not 0 <= b < 64):
            return None
        v = _BINARY[type(node.op)](a, b)
        return v if -(1 << 64) < v < (1 << 64) else None
    if isinstance(node, ast.BoolOp):
        vals = [_fold(v) for v in node.values]
        if any(v is None for v in vals):
            return None
        return int(all(vals)) if isinstance(node.op, ast.And) else int(any(vals))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in (ast.Eq, ast.NotEq):
        a, b = _fold(node.left), _fold(node.comparators[0])
        if a is None or b is None:
            return None
        return int((a == b) == isinstance(node.ops[0], ast.Eq))
    return None
