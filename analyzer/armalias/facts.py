"""Plain data extracted from one source file: what the front end hands to the index and the flow.

Everything here is frozen, picklable (it crosses process boundaries and lands in the content cache)
and free of tree-sitter objects.  Lines and columns are 1-based and refer to the real file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import NamedTuple


def positional_pickle(cls):
    """Pickled as the class and its fields in order, rebuilt by calling the class.  The frozen,
    slotted dataclasses' own __getstate__/__setstate__ look the fields up again for every object,
    and the main process unpickles every fact the worker processes send back (those of every file
    a whole-tree scan parses)."""
    get = attrgetter(*(f.name for f in fields(cls)))
    single = len(fields(cls)) == 1

    def __reduce__(self):
        return (cls, (get(self),) if single else get(self))

    cls.__reduce__ = __reduce__
    return cls


@positional_pickle
@dataclass(frozen=True, slots=True)
class FunctionDef:
    name: str
    file: str
    line: int  # line of the function's name (what ctags reports)
    end_line: int
    params: tuple[str, ...] = ()
    static: bool = False
    has_error: bool = False  # tree-sitter recovered from an error inside the body


# Call.callee of a call through an expression or a function-pointer variable of the function
# (`((void (*)(void))sram)()`, `fn(x)` with `void (*fn)(int) = ...`): code runs at what it names
CALLED = "()"


class Call(NamedTuple):
    """A call in code.  ``callee`` is the identifier called, or ``.member`` for a call through a
    struct member (``cpu_cache.coherent_kern_range(s, e)`` gives ``.coherent_kern_range``).
    A named tuple, not a frozen dataclass like the other facts: a whole tree holds 150,000 of them,
    and a named tuple is made from the cache's rows by tuple.__new__ (armalias.cache), with no
    __init__ of a dataclass run for each."""

    callee: str
    caller: str  # enclosing function, or macro name when found in a macro body; "" at file scope
    file: str
    line: int
    column: int
    args: tuple[str, ...] = ()
    in_macro: bool = False  # found in the body of #define ``caller``


@positional_pickle
@dataclass(frozen=True, slots=True)
class MacroDef:
    name: str
    file: str
    line: int
    end_line: int
    params: tuple[str, ...] | None  # None: object-like
    body: str  # continuation lines joined, comments blanked, original line breaks kept as spaces


@positional_pickle
@dataclass(frozen=True, slots=True)
class Initializer:
    """A designated initializer ``.member = value`` inside the initializer of ``variable``."""

    struct: str  # struct tag, e.g. "cpu_cache_fns" ("" when unknown)
    variable: str
    member: str
    value: str
    file: str
    line: int


@positional_pickle
@dataclass(frozen=True, slots=True)
class AsmSymbol:
    """A global symbol defined in an assembly file (ENTRY(x), SYM_FUNC_START(x), .globl x; x:)."""

    name: str
    file: str
    line: int


@positional_pickle
@dataclass(frozen=True, slots=True)
class FileFacts:
    file: str  # relative to the scanned root, with '/'
    digest: str  # content hash the cache is keyed by
    functions: tuple[FunctionDef, ...] = ()
    calls: tuple[Call, ...] = ()
    macros: tuple[MacroDef, ...] = ()
    initializers: tuple[Initializer, ...] = ()
    asm_symbols: tuple[AsmSymbol, ...] = ()
    includes: tuple[str, ...] = ()  # the <...> / "..." names of #include lines
    error_functions: int = 0
    has_error: bool = False
    notes: tuple[str, ...] = field(default=())
    # (first, last) lines of each top-level part of the file (a definition, a declaration, a
    # preprocessor block) that tree-sitter parsed with an error
    error_lines: tuple[tuple[int, int], ...] = ()
    # the statement events (armalias.source.cflow.FunctionBody) of the functions that call a word
    # of extract.body_words directly, read from the tree the facts came from
    bodies: tuple = ()


@positional_pickle
@dataclass(frozen=True, slots=True)
class Skipped:
    file: str
    reason: str
