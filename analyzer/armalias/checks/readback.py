"""Where the bytes at an execution address are also read as data: the readers that make AA002's
hazard a failure rather than a residue.

The 2017 report's failure: kprobes hands `p->addr` to patch_text() and reads `*p->addr` back as data
(`__mem_to_opcode_arm(*p->addr)` in arch_prepare_kprobe); a stale D-cache line at that address, which
the patch's clean leaves valid on a VIVT cache, returns the old breakpoint.  ftrace_modify_code() reads
`pc` with copy_from_kernel_nofault() before it patches it, kgdb reads `bpt->bpt_addr` the same way.

Both sides are read from the calls of the index: a call that hands an address on as where code runs
(an execution entry point's parameter, a parameter a summary says runs) and, in the same function or,
for a member of a structure (`p->addr`), in the same file, a call that reads that address as data (a
dereference or a subscript in an argument, or the source of a reading call of the vocabulary,
`[[data_read]]`).  No flow is needed: the readers are often functions that maintain nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from armalias.facts import Call
from armalias.flow.expr import root, strip

# `*X`, `*(T *)X` and `X[i]`, `((T *)X)[i]` at the start of an argument: X read as data
_DEREF = re.compile(r"^\*\s*(.+)$", re.S)
_SUBSCRIPT = re.compile(r"^(.+?)\s*\[[^\[\]]*\]$", re.S)


@dataclass(frozen=True)
class ReadBack:
    """An address handed on as where code runs and also read as data."""

    entry: str  # the function it is handed to as where code runs
    address: str  # the expression naming it (its root: `p->addr`, `pc`)
    run_at: tuple[str, int]  # file, line of that call
    read_at: tuple[str, int]  # file, line of the call reading it
    reader: str  # the call reading it


def _address(text: str) -> str:
    """The root of an address expression, casts and parentheses aside (`(void *)pc`: `pc`)."""
    r = root(strip(text))
    return r if re.fullmatch(r"[A-Za-z_]\w*(?:(?:->|\.)[A-Za-z_]\w*)*", r) else ""


def _read(arg: str) -> str:
    """The address an argument reads as data (`*p->addr`, `((u16 *)addr)[0]`), or ""."""
    t = strip(arg)
    m = _DEREF.match(t)
    if m:
        return _address(m.group(1))
    m = _SUBSCRIPT.match(t)
    if m:
        return _address(m.group(1))
    return ""


def _key(c: Call, address: str) -> tuple[str, str, str]:
    """Where two calls must both be to name one address: a member of a structure in one file, a
    variable or parameter in one function."""
    return (c.file, "" if ("->" in address or "." in address) else c.caller, address)


def read_backs(calls: Iterable[Call], runs: Callable[[str], tuple[int, ...]], data_reads: dict[str, int],
               applies: Callable[[str], bool]) -> list[ReadBack]:
    """`runs(name)`: the argument positions a call of `name` hands on as where code runs;
    `data_reads`: reading calls and the position of the address they read; `applies(file)`: whether
    ARM's vocabulary holds for code there."""
    handed: dict[tuple[str, str, str], list[tuple[Call, str]]] = {}
    read: dict[tuple[str, str, str], list[tuple[Call, str]]] = {}
    for c in calls:
        if not c.caller or not applies(c.file):
            continue
        for i in runs(c.callee):
            if i < len(c.args) and (a := _address(c.args[i])):
                handed.setdefault(_key(c, a), []).append((c, a))
        src = data_reads.get(c.callee, -1)
        for i, arg in enumerate(c.args):
            if i != src and "*" not in arg and "[" not in arg:
                continue  # no dereference, no subscript: nothing read there
            a = _address(arg) if i == src else _read(arg)
            if a:
                read.setdefault(_key(c, a), []).append((c, a))
    out = []
    for key in sorted(handed.keys() & read.keys()):
        for c, a in handed[key]:
            r, _ = min(read[key], key=lambda x: (x[0].line, x[0].column))
            out.append(ReadBack(c.callee, a, (c.file, c.line), (r.file, r.line), r.callee))
    return sorted(set(out), key=lambda rb: (rb.run_at, rb.entry))
