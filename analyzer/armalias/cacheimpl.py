"""Plain data describing what a CPU's cache implementation does.

Shared by the assembly reader / audit (which fills it from arch/arm/mm/*.S and Kconfig) and the
VIVT cache model (which replays findings on it). No behaviour lives here.

Operation names (``CacheFunction.ops``) are the vocabulary defined in ``rules/cache-ops.toml``; the
model understands every name listed there:

    clean-d-line, invalidate-d-line, clean+invalidate-d-line        (by MVA, to the point of coherency)
    clean-d-line-pou                                                 (v7 c7,c11,1: clean to PoU)
    clean-d-all, invalidate-d-all, clean+invalidate-d-all           (whole D-cache, incl. set/way loops)
    clean-d-range, invalidate-d-range, clean+invalidate-d-range     (Feroceon range forms, c15)
    invalidate-i-line, invalidate-i-all, invalidate-i-range
    invalidate-i-all-is                                              (v7 inner-shareable c7,c1,0)
    drain-wb, flush-btb, flush-btb-line, dsb, isb, barrier
    unknown                                                          (an encoding not decoded; never dropped)
"""

from __future__ import annotations

from dataclasses import dataclass, field

# CacheImpl.cache_type: how the L1 caches are indexed and tagged; "none" when the implementation
# maintains no cache at all (every member does nothing: nop_cache_fns).
CACHE_TYPES = ("VIVT", "VIPT", "PIPT", "none", "unknown")
D_EFFECTS = ("none", "clean", "invalidate", "clean+invalidate")
I_EFFECTS = ("none", "invalidate")
# "page": the function covers one page from the start whatever the size it is given (CONTRACT.md).
SCOPES = ("range", "whole", "none", "page")
EXTENTS = ("range", "page", "fixed", "line", "whole", "")

# The vocabulary above as data, so readers of rules/cache-ops.toml can check their input against it.
CACHE_OPS = (
    "clean-d-line", "invalidate-d-line", "clean+invalidate-d-line",
    "clean-d-line-pou",
    "clean-d-all", "invalidate-d-all", "clean+invalidate-d-all",
    "clean-d-all-pou", "clean+invalidate-d-all-pou",  # whole-cache loops that stop at LoUIS (flush_kern_louis)
    "clean-d-range", "invalidate-d-range", "clean+invalidate-d-range",
    "invalidate-i-line", "invalidate-i-all", "invalidate-i-range",
    "invalidate-i-all-is",
    "drain-wb", "flush-btb", "flush-btb-line", "dsb", "isb", "barrier",
    "unknown",
)  # fmt: skip

# The cpu_cache_fns members the audit and the model care about.
CACHE_MEMBERS = (
    "flush_icache_all",
    "flush_kern_all",
    "flush_kern_louis",
    "flush_user_all",
    "flush_user_range",
    "coherent_kern_range",
    "coherent_user_range",
    "flush_kern_dcache_area",
    "dma_map_area",
    "dma_unmap_area",
    "dma_flush_range",
)


@dataclass(frozen=True)
class CacheOp:
    """One decoded maintenance step, where it sits and under which conditions it runs."""

    op: str  # a name from the vocabulary above
    raw: str  # the instruction as written (after macro expansion), e.g. "mcrne p15, 0, r0, c7, c5, 1"
    file: str  # relative path of the file holding the instruction (or the macro body)
    line: int  # 1-based line in that file
    function: str = ""  # the assembly symbol whose body holds the instruction
    conditions: tuple[str, ...] = ()  # enclosing #if / .if / ALT_SMP conditions, outermost first
    conditional: bool = False  # the instruction carries a condition code (mcrne, ...)
    macros: tuple[str, ...] = ()  # macros expanded to produce it, outermost first
    # What it covers, read from the flow of the member's arguments (armalias.source.asmregs):
    # "range" (the range or size the caller gave), "page" (one page from the start, whatever
    # the size), "fixed" (a fixed length from the start), "line" (one line: no loop around it),
    # "whole" (the whole cache); "" for operations without data effect or not analysed.
    extent: str = ""


@dataclass(frozen=True)
class CacheFunction:
    """What one cpu_cache_fns member of one implementation does."""

    member: str  # e.g. "coherent_kern_range"
    symbol: str  # the assembly/C symbol, e.g. "feroceon_coherent_kern_range"
    d: str  # one of D_EFFECTS (strongest effect on the D-cache over the range/whole)
    i: str  # one of I_EFFECTS
    scope: str  # one of SCOPES
    ops: tuple[str, ...]  # decoded operations in program order (loops appear once)
    file: str = ""
    line: int = 0
    undecoded: tuple[str, ...] = ()  # raw instruction text the reader could not decode
    # Added by the assembly reader (compatible extensions):
    resolved: str = ""  # the code label `symbol` resolves to through .equ/.set/SYM_FUNC_ALIAS
    d_scope: str = "none"  # one of SCOPES, for the D-cache operations alone
    i_scope: str = "none"  # one of SCOPES, for the I-cache operations alone
    steps: tuple[CacheOp, ...] = ()  # every decoded instruction behind `ops`, unsquashed
    via: tuple[str, ...] = ()  # other symbols whose code runs: branches, calls, fall-through
    condition: str = ""  # the #if condition under which the table names this symbol, if any
    notes: tuple[str, ...] = ()  # fall-through, unresolved branches, unexpanded macros, ...


@dataclass(frozen=True)
class CacheImpl:
    """One cache implementation (a `define_cache_functions NAME` table or a C `struct cpu_cache_fns`)."""

    name: str  # e.g. "feroceon", "v4wb", "v7"
    file: str  # relative path, e.g. "arch/arm/mm/proc-feroceon.S"
    cache_type: str  # one of CACHE_TYPES
    write_through: bool = False
    configs: tuple[str, ...] = ()  # CPU_* Kconfig options whose processors use it
    functions: dict[str, CacheFunction] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # Added by the assembly reader (compatible extensions):
    table_file: str = ""  # where the cpu_cache_fns table is defined (cache.c in newer kernels)
    table_line: int = 0
    table_condition: str = ""  # #if around the table, e.g. "CONFIG_CPU_CACHE_V7"
    # Added by the audit (compatible extensions):
    unified: bool = False  # one cache holds instructions and data (ARM720T's "IDC"): a fetch sees D lines
    mpu_only: bool = False  # every CPU using it has no MMU: one address per byte, no virtual aliases
