"""Cache maintenance in C inline assembly, as calls the flow knows.

arch/arm/mm's C code maintains some aliases with `asm()` statements rather than calls:
`flush_pfn_alias()` cleans and invalidates one colour alias with the ARM1136 block operation
`mcrr p15, 0, %1, %0, c14`, copypage-v6's `discard_old_kernel_data()` drops a kernel alias's lines
with `mcrr ... c6`, flush_cache_mm() cleans the whole D-cache with `mcr p15, 0, %0, c7, c14, 0`.
Each instruction of the template that rules/cache-ops.toml decodes to a range or whole-cache
operation becomes a call named `asm:<operation>` (rules/vocabulary.toml gives those names their
effect), with the C operands it is given as arguments: (start, end) for a range, the end made
exclusive (`mcrr` takes the inclusive last address), none for the whole cache.

Left out, and why: line operations (`mcr ... c7, c14, 1`) in C sit in the copy loops of copypage-*.c,
on a register the loop moves (`"+&r" (kto)`), interleaved with the stores they follow, so one of them
is no statement about an extent; an operand that is not a plain `%N` / `%[name]` (a fixed register
such as `ip`) names no C expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from armalias.source.asm import LABEL_RE, CacheOpTable, load_cache_ops, logical_lines, parse_encoding, parse_mcrr

if TYPE_CHECKING:  # tree-sitter is imported by source/cparse.py alone
    from tree_sitter import Node

ASM_CALL = "asm:"  # the prefix of the call names (asm:clean+invalidate-d-range)

_RANGE = frozenset({"clean-d-range", "invalidate-d-range", "clean+invalidate-d-range", "invalidate-i-range"})
_WHOLE = frozenset({"clean-d-all", "invalidate-d-all", "clean+invalidate-d-all", "invalidate-i-all",
                    "invalidate-i-all-is"})
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "r": "\r"}
_REF = re.compile(r"^%(?:(\d+)|\[(\w+)\])$")


@dataclass(frozen=True)
class AsmMaintenance:
    op: str  # a rules/cache-ops.toml operation
    args: tuple[str, ...]  # (start, exclusive end) as C text for a range; () for the whole cache

    @property
    def call(self) -> str:
        return ASM_CALL + self.op


@lru_cache(maxsize=1)
def _table() -> CacheOpTable:
    return load_cache_ops()


def _literal(text: str) -> str:
    """The bytes of one C string literal's content, its escapes read."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


def _template(src: bytes, node: Node) -> str:
    parts = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == "string_literal":
            text = src[n.start_byte:n.end_byte].decode("utf-8", "replace").strip()
            if text.startswith('"') and text.endswith('"'):
                parts.append(_literal(text[1:-1]))
            continue
        stack.extend(reversed(n.named_children))
    return "".join(parts)


def _operands(src: bytes, node: Node) -> tuple[list[str], dict[str, int]]:
    """The C expressions of the operands in %N order (outputs, then inputs), and the names of
    those named `[name]`."""
    exprs: list[str] = []
    names: dict[str, int] = {}
    for field in ("output_operands", "input_operands"):
        group = node.child_by_field_name(field)
        if group is None:
            continue
        for op in group.named_children:
            if op.type not in ("gnu_asm_output_operand", "gnu_asm_input_operand"):
                continue
            value = op.child_by_field_name("value")
            symbol = op.child_by_field_name("symbol")
            if symbol is not None:
                names[src[symbol.start_byte:symbol.end_byte].decode("utf-8", "replace")] = len(exprs)
            text = src[value.start_byte:value.end_byte].decode("utf-8", "replace") if value is not None else ""
            exprs.append(" ".join(text.split()))
    return exprs, names


def _statements(template: str) -> list[tuple[str, str]]:
    """(mnemonic, operands) of each instruction, as the .S reader lexes a file (logical_lines:
    comments off, `;` split), labels before it off."""
    out = []
    for _, line in logical_lines(template):
        while (label := LABEL_RE.match(line)) is not None:
            line = label["rest"].strip()
        if line:
            parts = line.split(None, 1)
            out.append((parts[0].lower(), parts[1] if len(parts) > 1 else ""))
    return out


def asm_maintenance(src: bytes, node: Node) -> list[AsmMaintenance]:
    """The maintenance one `gnu_asm_expression` does, in the order of its instructions."""
    code = node.child_by_field_name("assembly_code")
    if code is None:
        return []
    template = _template(src, code)
    if "mcr" not in template.lower():
        return []
    exprs, names = _operands(src, node)

    def operand(reg: str) -> str | None:
        m = _REF.match(reg.strip())
        if m is None:
            return None
        i = int(m.group(1)) if m.group(1) is not None else names.get(m.group(2), -1)
        return exprs[i] if 0 <= i < len(exprs) and exprs[i] else None

    table = _table()
    out = []
    for mnem, args in _statements(template):
        if mnem.startswith("mcrr"):
            parsed = parse_mcrr(args)
            if parsed is None:
                continue
            key, rt, rt2 = parsed
            for op in table.mcrr.get(key, ()):
                end, start = operand(rt), operand(rt2)
                if op in _RANGE and start is not None and end is not None:
                    out.append(AsmMaintenance(op, (start, f"({end}) + 1")))
        elif mnem.startswith("mcr"):
            key = parse_encoding(args)
            for op in table.mcr.get(key, ()) if key else ():
                if op in _WHOLE:
                    out.append(AsmMaintenance(op, ()))
    return out
