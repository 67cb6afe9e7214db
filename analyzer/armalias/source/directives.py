"""The preprocessor lines tree-sitter does not look into: #define bodies, #include names, and the
global symbols an assembly file defines.  Works on the real bytes with comments blanked."""

from __future__ import annotations

import re

from armalias.facts import AsmSymbol, Call, MacroDef
from armalias.source.text import at_line_start, blank_comments

_DEFINE = re.compile(rb"#[ \t]*define[ \t]+([A-Za-z_]\w*)(\([^)]*\))?((?:[^\n]*\\\n)*[^\n]*)")
_INCLUDE = re.compile(rb'#[ \t]*include[ \t]*[<"]([^>"\n]+)[>"]')
_CALL_IN_BODY = re.compile(r"(?<![\w#])(\.|->)?\s*([A-Za-z_]\w*)\s*\(")

NOT_CALLS = frozenset(
    "if while for switch return sizeof typeof __typeof__ __typeof defined do case else asm __asm__ "
    "volatile __volatile__ _Generic __builtin_constant_p __builtin_expect __builtin_choose_expr "
    "__builtin_types_compatible_p offsetof __alignof__ _Alignof".split()
)


def read_defines(rel: str, data: bytes) -> tuple[tuple[MacroDef, ...], tuple[Call, ...]]:
    """Every #define (object- and function-like, multi-line) and the calls written in its body."""
    clean = blank_comments(data)
    macros: list[MacroDef] = []
    calls: list[Call] = []
    for start, m in at_line_start(_DEFINE, clean):
        name = m.group(1).decode()
        params = None
        if m.group(2) is not None:
            params = tuple(p.strip() for p in m.group(2)[1:-1].decode("utf-8", "replace").split(",") if p.strip())
        raw_body = m.group(3).decode("utf-8", "replace")
        line = clean.count(b"\n", 0, start) + 1
        end_line = line + raw_body.count("\n")
        body = " ".join(raw_body.replace("\\\n", " ").split())
        macros.append(MacroDef(name, rel, line, end_line, params, body))
        for cm in _CALL_IN_BODY.finditer(raw_body):
            callee = cm.group(2)
            if callee in NOT_CALLS or (params and callee in params and cm.group(1) is None):
                continue
            if cm.group(1):
                callee = "." + callee
            body_line = line + raw_body.count("\n", 0, cm.start(2))
            args = _macro_call_args(raw_body, cm.end() - 1)
            calls.append(Call(callee, name, rel, body_line, 0, args, in_macro=True))
    return tuple(macros), tuple(calls)


def _macro_call_args(body: str, open_pos: int) -> tuple[str, ...]:
    depth = 0
    start = open_pos + 1
    args = []
    for i in range(open_pos, len(body)):
        c = body[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                tail = body[start:i]
                if tail.strip() or args:
                    args.append(tail)
                break
        elif c == "," and depth == 1:
            args.append(body[start:i])
            start = i + 1
    return tuple(" ".join(a.replace("\\\n", " ").split()) for a in args)


def read_includes(data: bytes) -> tuple[str, ...]:
    return tuple(m.group(1).decode("utf-8", "replace").strip() for _, m in at_line_start(_INCLUDE, data))


_ASM_SYMBOL = re.compile(
    rb"(?m)^[ \t]*(?:ENTRY|ENDPROC_ALIAS|SYM_(?:TYPED_)?FUNC_START(?:_LOCAL|_ALIAS|_WEAK)?|SYM_CODE_START(?:_LOCAL)?|GLOBAL|WEAK)"
    rb"\([ \t]*([A-Za-z_.$]\w*)[ \t]*\)"
    rb"|^[ \t]*\.(?:globl|global|weak)[ \t]+([A-Za-z_.$][\w.$]*)"
)


def read_asm_symbols(rel: str, data: bytes) -> tuple[AsmSymbol, ...]:
    clean = blank_comments(data)
    out = []
    for m in _ASM_SYMBOL.finditer(clean):
        name = (m.group(1) or m.group(2)).decode()
        out.append(AsmSymbol(name, rel, clean.count(b"\n", 0, m.start()) + 1))
    return tuple(out)
