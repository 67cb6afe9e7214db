"""The C objects that ARM assembly reads: the names its instructions and data words take as operands.

Code that runs with the MMU or the caches off (secondary boot, resume, MCPM entry, cache-coherency
setup) is assembly, and what it reads of the kernel's C data it names there: `ldr r0, =secondary_data`,
`adr r1, mcpm_entry_vectors`, `.long sleep_save_sp - .`.  A C function that writes such an object must
clean it to the point of coherency before the reader runs (AA005).  Reading every `.S` of arch/arm
through the tree source keeps to the files the scan may read, and nothing is written anywhere.
"""

from __future__ import annotations

import re

from armalias.source.text import Unreadable

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*|@[^\n]*|^\s*#[^\n]*", re.S | re.M)
# Code that runs with the MMU off addresses data relative to where it runs, never through a link-time
# virtual address: `adr rX, sym` and the kernel's adr_l / ldr_l / str_l macros, a data word holding an
# offset (`.long sym - .`), or a data word next to a `.long .` whose difference gives the offset from
# virtual to physical addresses (`1: .long . ; .long pen_release`).  A literal `ldr rX, =sym` or a bare
# `.word sym` is a virtual address, for code that runs with the MMU on.
_ADDRESS = re.compile(r"(?<![\w.$])(?:adrl?|adr_l|ldr_l|str_l|badr)(?:\.\w+|eq|ne|cs|cc|mi|pl|hi|ls|ge|lt|gt|le)?"
                      r"[ \t]+[^,\n]+,[ \t]*([A-Za-z_]\w*)")
_DATA = re.compile(r"^[ \t]*(?:[A-Za-z_.$0-9][\w.$]*:[ \t]*)*\.(?:long|word)[ \t]+([^\n]+)", re.M)
_RELATIVE = re.compile(r"([A-Za-z_]\w*)\s*-\s*(?:\.|\d+[bf]|[A-Za-z_]\w*)\s*$")
_IDENT = re.compile(r"(?<![\w.$\\])[A-Za-z_]\w*")
_NEAR = 4  # data words this close to a `.long .` belong to its offset block


_DOT = re.compile(r"^[ \t]*(?:[\w.$]+:[ \t]*)*\.(?:long|word)[ \t]+\.[ \t]*$", re.M)


def referenced_objects(text: str) -> set[str]:
    """The symbols an assembly text addresses the way code running with the MMU off does."""
    clean = _COMMENT.sub(" ", text)
    out = set(_ADDRESS.findall(clean))
    dots = [clean.count("\n", 0, m.start()) for m in _DOT.finditer(clean)]
    for m in _DATA.finditer(clean):
        line = None
        for word in m.group(1).split(","):
            rel = _RELATIVE.search(word.strip())
            if rel:
                out.add(rel.group(1))
                continue
            if not dots:
                continue
            if line is None:
                line = clean.count("\n", 0, m.start())
            if any(abs(line - d) <= _NEAR for d in dots):
                out.update(_IDENT.findall(word))
    return out


def asm_objects(files, names: frozenset[str]) -> frozenset[str]:
    """Those of `names` that the assembly files [(tree source, relative path)] take the address of
    (a file naming none of them is not parsed)."""
    out: set[str] = set()
    encoded = [n.encode() for n in names]
    if not encoded:
        return frozenset()
    for source, rel in files:
        try:
            data = source.read(rel)
        except Unreadable:
            continue
        if any(n in data for n in encoded):
            out |= referenced_objects(data.decode("utf-8", "replace")) & names
    return frozenset(out)


def functions_naming(names: frozenset[str], files: dict[str, list[tuple[int, int, str]]], read) -> set[str]:
    """The functions whose bodies name one of `names` as a whole identifier.  `files`: relative path ->
    [(first line, last line, function)], `read(rel)` its bytes (Unreadable when it cannot be had)."""
    from armalias.source.text import multi_find, whole_identifier

    if not names:
        return set()
    find = multi_find(sorted(n.encode() for n in names))
    out: set[str] = set()
    for rel, spans in files.items():
        try:
            data = read(rel)
        except Unreadable:
            continue
        lines = [data.count(b"\n", 0, start) + 1 for _, start, end in find(data) if whole_identifier(data, start, end)]
        for line in lines:
            out.update(name for first, last, name in spans if first <= line <= last)
    return out
