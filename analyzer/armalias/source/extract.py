"""One file in, FileFacts out: the unit of work that runs in worker processes and is cached."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from itertools import accumulate

from armalias.cache import code_digest
from armalias.facts import FileFacts
from armalias.rules import load_neutralize, load_watched, rules_dir
from armalias.source.cflow import bodies_in_tree
from armalias.source.cparse import check_deadline, extract_c
from armalias.source.directives import read_asm_symbols, read_defines, read_includes
from armalias.source.inline_asm import ASM_CALL
from armalias.source.text import neutralize

# Bump when what extraction produces changes shape or meaning: it is part of every cache key.
EXTRACTOR_VERSION = "6"

# `NAME(fn, ...) { body }` at file scope defines the function named (prefix + argument index).
DEFINERS = {
    "SYSCALL_DEFINE0": ("sys_", 0), "SYSCALL_DEFINE1": ("sys_", 0), "SYSCALL_DEFINE2": ("sys_", 0),
    "SYSCALL_DEFINE3": ("sys_", 0), "SYSCALL_DEFINE4": ("sys_", 0), "SYSCALL_DEFINE5": ("sys_", 0),
    "SYSCALL_DEFINE6": ("sys_", 0),
}


@lru_cache(maxsize=1)
def body_words() -> frozenset[str]:
    """A function calling one of these directly has its body read with its facts (FileFacts.bodies):
    the prefilter's first-round words (the maintenance calls, the watched functions, the alias
    globals, the entry points, the cpu_cache_fns members).  The flow analysis asks for the bodies of
    those functions and of few others, and gets them without parsing the file again."""
    from armalias.prefilter import rule_words

    return rule_words()


@lru_cache(maxsize=1)
def extractor_key() -> str:
    """What, besides a file's bytes, decides its facts: the extractor, the neutralize data, the
    cpu_cache_fns members and the words whose callers' bodies are read."""
    h = hashlib.sha256(EXTRACTOR_VERSION.encode())
    h.update((rules_dir() / "neutralize.toml").read_bytes())
    h.update((rules_dir() / "cache-ops.toml").read_bytes())  # inline assembly's maintenance calls
    h.update("\0".join(load_watched().cache_fns_members).encode())  # whose initializers are read
    h.update("\0".join(sorted(body_words())).encode())
    h.update(code_digest("facts.py", "source/extract.py", "source/cparse.py", "source/directives.py",
                         "source/text.py", "source/cflow.py",
                         "source/inline_asm.py").encode())
    return h.hexdigest()[:16]


_SUPPRESS = re.compile(rb"armalias:\s*ignore\[([A-Za-z0-9_, ]+)\]([^\n*]*)")


def read_suppressions(data: bytes) -> tuple[str, ...]:
    """`armalias: ignore[AA001] reason` comments, as "LINE:CODES:reason" notes."""
    out = []
    for m in _SUPPRESS.finditer(data):
        line = data.count(b"\n", 0, m.start()) + 1
        codes = ",".join(c.strip().upper() for c in m.group(1).decode().split(",") if c.strip())
        out.append(f"{line}:{codes}:{m.group(2).decode('utf-8', 'replace').strip()}")
    return tuple(out)


# Braces inside braces a file may have: the kernel's deepest C is a few levels (6 in 6.12's arch/arm);
# deeper, tree-sitter leaves the inner code out of its tree and the walks over it recurse too far
MAX_NESTING = 256
_NOT_BRACES = bytes(b for b in range(256) if b not in b"{}")


class TooDeep(Exception):
    """A file whose braces nest deeper than MAX_NESTING: its functions cannot be read whole."""


def brace_depth(text: bytes) -> int:
    """How deep the braces of a text nest (one pass over its braces alone)."""
    return max(accumulate(1 if c == 0x7B else -1 for c in text.translate(None, _NOT_BRACES)), default=0)


def extract_bytes(rel: str, data: bytes, digest: str, deadline: float | None = None) -> FileFacts:
    """The facts of one file.  `deadline`: a cparse.monotonic() time past which cparse.TooSlow is
    raised (a per-file time bound: tree-sitter's parse stops there, and each step after another
    checks it)."""
    if rel.endswith(".S"):
        return FileFacts(rel, digest, asm_symbols=read_asm_symbols(rel, data), includes=read_includes(data))
    macros, macro_calls = read_defines(rel, data)
    check_deadline(deadline)
    neutral = neutralize(data, load_neutralize())
    check_deadline(deadline)
    if (depth := brace_depth(neutral)) > MAX_NESTING:
        raise TooDeep(f"braces nested {depth} deep (more than {MAX_NESTING}): its functions are not read")
    functions, calls, inits, has_error, error_lines, tree = extract_c(rel, data, neutral, DEFINERS,
                                                                      load_watched().cache_fns_members, deadline)
    words = body_words()
    callers = {c.caller for c in calls
               if c.caller and (c.callee in words or c.callee[1:] in words or c.callee.startswith(ASM_CALL))}
    bodies = tuple(bodies_in_tree(rel, neutral, tree.root_node, callers)) if callers else ()
    check_deadline(deadline)
    return FileFacts(
        file=rel, digest=digest, functions=functions, calls=calls + macro_calls, macros=macros,
        initializers=inits, includes=read_includes(data),
        error_functions=sum(1 for f in functions if f.has_error), has_error=has_error,
        notes=read_suppressions(data) if b"armalias:" in data else (), error_lines=error_lines, bodies=bodies,
    )
