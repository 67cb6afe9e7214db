"""Loads the data in rules/: kernel vocabulary tables and (later) one TOML file per rule.

The rules directory is found next to the package in a source checkout, or installed with it as
package data; ARMALIAS_RULES overrides both (tests point it at fixture rule sets).
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


def rules_dir() -> Path:
    env = os.environ.get("ARMALIAS_RULES")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "rules", here / "_rules"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("armalias: the rules/ directory is missing from this installation")


def _load(name: str) -> dict:
    with open(rules_dir() / name, "rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class NeutralizeSpec:
    annotations: tuple[str, ...]
    annotations_with_args: tuple[str, ...]
    statement_macros: tuple[str, ...]
    loop_macro_patterns: tuple[str, ...]


@lru_cache(maxsize=None)
def load_neutralize() -> NeutralizeSpec:
    raw = _load("neutralize.toml")
    return NeutralizeSpec(
        annotations=tuple(raw.get("annotations", ())),
        annotations_with_args=tuple(raw.get("annotations_with_args", ())),
        statement_macros=tuple(raw.get("statement_macros", ())),
        loop_macro_patterns=tuple(raw.get("loop_macro_patterns", ())),
    )


@dataclass(frozen=True)
class WatchedSpec:
    names: tuple[str, ...]
    cache_fns_struct: str
    cache_fns_members: tuple[str, ...]
    fixpoint_roots: tuple[str, ...] = ()
    fixpoint_levels: int = 2


@lru_cache(maxsize=None)
def load_watched() -> WatchedSpec:
    raw = _load("watched.toml")
    fns = raw.get("cache_fns", {})
    return WatchedSpec(
        names=tuple(raw["watched"]["names"]),
        cache_fns_struct=fns.get("struct", "cpu_cache_fns"),
        cache_fns_members=tuple(fns.get("members", ())),
        fixpoint_roots=tuple(raw.get("prefilter", {}).get("fixpoint_roots", ())),
        fixpoint_levels=int(raw.get("prefilter", {}).get("levels", 2)),
    )


@lru_cache(maxsize=None)
def rules_digest() -> str:
    """A hash of every data file in rules/: part of the content-cache key."""
    h = hashlib.sha256()
    for path in sorted(rules_dir().glob("*.toml")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


# -- the alias-analysis vocabulary (rules/vocabulary.toml) ----------------------------------------
# The D-cache effects (MaintenanceSpec.d) that write dirty lines back.
D_CLEANS = ("clean", "clean+invalidate")
D_INVALIDATES = ("invalidate", "clean+invalidate")


@dataclass(frozen=True)
class MaintenanceSpec:
    name: str
    member: str
    start: int
    end: int = -1  # argument index of the end address, or -1
    size: int = -1  # argument index of the byte count, or -1
    whole: bool = False
    d: str = "none"
    i: str = "none"
    point: str = "pou"


# a C identifier: findall/sub find them in a text, fullmatch tells a text that is one (the one
# pattern of armalias: the index, the flow and check's relevance use it)
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Vocabulary:
    alias_sources: dict[str, tuple[str, int]]  # call name -> (alias kind, origin argument)
    alias_globals: dict[str, str]  # global variable -> alias kind
    alias_constants: dict[str, str]  # constant text -> alias kind
    write_sinks: dict[str, tuple[int, int]]  # call name -> (dest arg, size arg)
    maintenance: dict[str, MaintenanceSpec]
    cache_predicates: dict[str, dict[str, bool]]  # cache kind -> predicate -> value
    exec_entries: dict[str, str]  # function -> parameter holding the execution address ("" if from code)
    alias_rules: tuple[str, ...] = ()  # rules that need ARM's vocabulary
    foreign_prefixes: tuple[str, ...] = ()
    native_prefixes: tuple[str, ...] = ()
    runs_at: dict[str, str] = field(default_factory=dict)  # alias kind -> the address its bytes run at ("" none)
    runs_here: frozenset[str] = frozenset()  # alias kinds whose bytes run at the very alias written
    fills: frozenset[str] = frozenset()  # write sinks that write a repeated byte: data, never code
    alias_slots: dict[str, int] = field(default_factory=dict)  # alias source -> argument naming its slot
    address_offsets: tuple[str, ...] = ()  # patterns of an offset within a page given for an address
    constants: dict[str, int] = field(default_factory=dict)  # names with one value on ARM (PAGE_SIZE)
    asm_words: tuple[str, ...] = ()  # mnemonics whose inline assembly can maintain the cache (prefilter)
    at_least: dict[str, str] = field(default_factory=dict)  # call -> a size its value is never below
    same_page: frozenset[str] = frozenset()  # calls whose value is the page their first argument names
    same_place: dict[str, frozenset[str]] = field(default_factory=dict)  # alias kind -> kinds at its address
    data_reads: dict[str, int] = field(default_factory=dict)  # call -> the argument it reads memory at
    copied_kinds: frozenset[str] = frozenset()  # alias kinds code is copied into and called (prefilter)

    def alias_words(self) -> frozenset[str]:
        """The alias globals, and those alias constants that are names rather than numbers: a call
        whose arguments name one can matter to the rules, whatever it calls."""
        return frozenset(self.alias_globals) | frozenset(c for c in self.alias_constants if IDENTIFIER.fullmatch(c))

    def arch_of(self, path: str) -> str | None:
        """The architecture a path belongs to (`arch/<name>/...`, from foreign_prefixes), or None
        for generic code."""
        for prefix in self.foreign_prefixes:
            if path.startswith(prefix):
                return path[len(prefix):].split("/", 1)[0]
        return None

    def sees(self, code_file: str, def_file: str) -> bool:
        """Whether a definition in def_file (a macro's) is the one code in code_file gets: its own
        architecture's, or generic code's; in generic code, the vocabulary's own architecture's
        (native_prefixes).  A whole tree holds every architecture's definitions of a name
        (kexec_flush_icache_page is a flush_icache_range on ia64 and empty for everyone else)."""
        arch = self.arch_of(def_file)
        if arch is None:
            return True
        here = self.arch_of(code_file)
        if here is not None:
            return arch == here
        return def_file.startswith(self.native_prefixes)

    def macro_definitions(self, code_file: str, defs: list) -> list:
        """The definitions of one macro (MacroDef) that hold for code in code_file: those it sees
        (sees), and of those the architecture's own over generic code's, which are fallbacks
        (`#ifndef flush_icache_user_range` in asm-generic/cacheflush.h, where ARM has its own)."""
        seen = [d for d in defs if self.sees(code_file, d.file)]
        own = [d for d in seen if self.arch_of(d.file) is not None]
        return own or seen

    def alias_rules_apply(self, rel: str) -> bool:
        """Whether ARM's alias vocabulary holds for code at this path."""
        if rel.startswith(self.native_prefixes):
            return True
        return not rel.startswith(self.foreign_prefixes)

    def __hash__(self) -> int:
        return id(self)


@lru_cache(maxsize=None)
def load_vocabulary() -> Vocabulary:
    raw = _load("vocabulary.toml")
    sources = {n: (s["kind"], int(s.get("origin", -1))) for s in raw.get("alias_source", ()) for n in s["names"]}
    globals_ = {n: g["kind"] for g in raw.get("alias_global", ()) for n in g["names"]}
    consts = {v: c["kind"] for c in raw.get("alias_constant", ()) for v in c["values"]}
    sinks = {n: (int(s["dest"]), int(s.get("size", -1))) for s in raw.get("write_sink", ()) for n in s["names"]}
    maint = {}
    for m in raw.get("maintenance", ()):
        for n in m["names"]:
            maint[n] = MaintenanceSpec(n, m["member"], int(m.get("start", 0)), int(m.get("end", -1)),
                                       int(m.get("size", -1)), bool(m.get("whole", False)), m.get("d", "none"),
                                       m.get("i", "none"), m.get("point", "pou"))
    preds = {k: dict(v) for k, v in raw.get("cache_predicates", {}).items()}
    entries = {e["function"]: e.get("param", "") for e in raw.get("exec_entry", ())}
    scope = raw.get("scope", {})
    runs_at = {g["kind"]: g["runs_at"] for g in raw.get("alias_global", ()) if g.get("runs_at")}
    runs_here = frozenset(s["kind"] for s in raw.get("alias_source", ()) if s.get("runs") == "here")
    return Vocabulary(sources, globals_, consts, sinks, maint, preds, entries,
                      tuple(scope.get("alias_rules", ())), tuple(scope.get("foreign_prefixes", ())),
                      tuple(scope.get("native_prefixes", ())), runs_at, runs_here,
                      frozenset(n for s in raw.get("write_sink", ()) if s.get("fills") for n in s["names"]),
                      {n: int(s["slot"]) for s in raw.get("alias_source", ()) if "slot" in s for n in s["names"]},
                      tuple(raw.get("address_offsets", {}).get("patterns", ())),
                      {k: int(v) for k, v in raw.get("constants", {}).items()},
                      tuple(raw.get("inline_asm", {}).get("words", ())),
                      {k: str(v) for k, v in raw.get("at_least", {}).items()},
                      frozenset(raw.get("same_page", {}).get("names", ())), _same_place(raw),
                      {n: int(r["src"]) for r in raw.get("data_read", ()) for n in r["names"]},
                      frozenset(raw.get("copied_and_called", {}).get("kinds", ())))


def _same_place(raw: dict) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for group in raw.get("same_place", {}).get("kinds", ()):
        for kind in group:
            out[kind] = out.get(kind, frozenset()) | frozenset(k for k in group if k != kind)
    return out


# -- rules: one TOML file per rule (rules/AA###-slug.toml) -----------------------------------------
@dataclass(frozen=True)
class RuleSpec:
    code: str
    slug: str
    category: str
    severity: str
    confidence: str
    message: str
    docs: tuple[tuple[str, object], ...]
    path: str
    variants: tuple[tuple[str, str], ...] = ()  # other messages of the rule, for other shapes of evidence
    # a variant's own severity, where its evidence is stronger than the rule's usual shape
    variant_severity: tuple[tuple[str, str], ...] = ()

    def severity_of(self, variant: str) -> str:
        return dict(self.variant_severity).get(variant, self.severity) if variant else self.severity


@lru_cache(maxsize=None)
def load_rules() -> dict[str, RuleSpec]:
    out = {}
    for path in sorted(rules_dir().glob("AA[0-9][0-9][0-9]-*.toml")):
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
        out[raw["code"]] = RuleSpec(raw["code"], raw["slug"], raw["category"], raw["severity"],
                                    raw.get("confidence", "medium"), raw["message"],
                                    tuple(raw.get("docs", {}).items()), path.name,
                                    tuple(raw.get("variants", {}).items()),
                                    tuple(raw.get("variant_severity", {}).items()))
    return out
