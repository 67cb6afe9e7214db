"""The scan pipeline: choose files, extract them (in parallel, through the content cache), build the
index and call graph, list the call sites of watched functions, run the alias rules and replay their
findings on the cache model.  Returns plain data; never prints."""

from __future__ import annotations

import os
import posixpath
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from armalias.cache import FactsCache, default_cache_dir
from armalias.callgraph import CallGraph
from armalias.errors import InputError
from armalias.facts import FileFacts, Skipped
from armalias.index import SymbolIndex
from armalias.rules import WatchedSpec, load_watched
from armalias.source.extract import extract_bytes, extractor_key
from armalias.source.files import ASM_SUFFIXES, C_SUFFIXES
from armalias.source.text import Unreadable
from armalias.source.tree import DirectorySource, GitSource, OverlaySource, TreeSource, read_checked

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class CallSite:
    callee: str
    caller: str
    file: str
    line: int
    column: int
    via: tuple[str, ...] = ()
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScanOptions:
    whole_tree: bool = False
    jobs: int = 0  # 0: the CPUs available
    use_cache: bool = True
    cache_dir: Path | None = None
    model: bool = True  # replay findings on the cache model
    prefilter: bool = True  # parse only files that mention a word of the rules (or a caller of one)


@dataclass
class ScanResult:
    root: str  # the path as given
    files: int = 0
    parsed: int = 0
    functions: int = 0
    seconds: float = 0.0
    skipped: list[Skipped] = field(default_factory=list)
    facts: list[FileFacts] = field(default_factory=list)
    callsites: list[CallSite] = field(default_factory=list)
    findings: list = field(default_factory=list)
    index: SymbolIndex | None = None
    graph: CallGraph | None = None
    sources: dict[str, TreeSource] = field(default_factory=dict)  # relative path -> where it was read
    cache_hits: int = 0
    error_files: int = 0
    error_functions: int = 0


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# -- scope ------------------------------------------------------------------------------------
INCLUDE_DIRS = ("arch/arm/include", "arch/arm/include/uapi", "include", "include/uapi")


def resolve_include(source: TreeSource, includer: str, name: str) -> str | None:
    """The file an `#include` names: next to the includer, then the kernel's include paths."""
    candidates = [posixpath.normpath(posixpath.join(posixpath.dirname(includer), name))]
    candidates.extend(f"{d}/{name}" for d in INCLUDE_DIRS)
    if name.startswith("asm/"):
        candidates.append(f"include/asm-generic/{name[4:]}")
    for c in candidates:
        if not c.startswith("../") and source.is_file(c):
            return c
    return None


def is_kernel_root(source: TreeSource) -> bool:
    return source.is_dir("arch/arm") and source.is_dir("include")


# -- extraction -------------------------------------------------------------------------------
def _extract_one(args: tuple[str, bytes, str, str | None, str]) -> FileFacts | Skipped:
    rel, data, digest, cache_dir, key = args
    try:
        facts = extract_bytes(rel, data, digest)
    except RecursionError:
        return Skipped(rel, "too deeply nested to parse")
    except Exception as exc:  # one bad file never stops the scan; the reason is shown
        return Skipped(rel, f"internal error while extracting: {type(exc).__name__}: {exc}")
    if cache_dir:
        FactsCache(Path(cache_dir), key).put(facts)
    return facts


class Extractor:
    """Extracts files of one source through the cache, misses in worker processes."""

    def __init__(self, source: TreeSource, options: ScanOptions):
        self.source = source
        self.options = options
        self.key = extractor_key()
        self.cache: FactsCache | None = None
        if options.use_cache:
            cdir = (options.cache_dir or default_cache_dir()).resolve()
            local = source.local_path("")
            if local is None or not cdir.is_relative_to(local.resolve()):  # never write into the scanned tree
                self.cache = FactsCache(cdir, self.key)
        self.jobs = options.jobs or available_cpus()
        self.hits = 0

    def run(self, rels: list[str], progress: Progress | None = None) -> tuple[list[FileFacts], list[Skipped]]:
        facts: list[FileFacts] = []
        skipped: list[Skipped] = []
        work = []
        for rel in rels:
            digest = self.source.digest(rel)
            hit = self.cache.get(rel, digest) if (self.cache is not None and digest) else None
            if hit is not None:
                facts.append(hit)
                continue
            try:
                data, digest = read_checked(self.source, rel)
            except Unreadable as exc:
                skipped.append(Skipped(rel, str(exc)))
                continue
            hit = self.cache.get(rel, digest) if self.cache is not None else None
            if hit is not None:
                facts.append(hit)
                continue
            work.append((rel, data, digest, str(self.cache.directory) if self.cache else None, self.key))
        self.hits += len(facts)
        total = len(work)
        if progress:
            progress(0, total)
        results: list[FileFacts | Skipped] = []
        if self.jobs <= 1 or total < 16:
            for i, w in enumerate(work):
                results.append(_extract_one(w))
                if progress:
                    progress(i + 1, total)
        else:
            chunk = max(1, min(32, total // (self.jobs * 8)))
            with ProcessPoolExecutor(max_workers=self.jobs) as pool:
                for i, r in enumerate(pool.map(_extract_one, work, chunksize=chunk)):
                    results.append(r)
                    if progress and (i % 16 == 0 or i + 1 == total):
                        progress(i + 1, total)
        for r in results:
            (facts if isinstance(r, FileFacts) else skipped).append(r)
        return facts, skipped




def _reaching_names(facts: list[FileFacts], words: frozenset[str]) -> set[str]:
    """Functions and macros (visible outside their file) that reach a fixpoint root (rules/watched.toml
    [prefilter]) or one of the words found so far that does."""
    watched = load_watched()
    index = SymbolIndex(facts, watched.cache_fns_members)
    graph = CallGraph(index, watched.cache_fns_struct)
    found: set[str] = set()
    stop = frozenset(watched.names) - frozenset(watched.fixpoint_roots)
    for w in watched.fixpoint_roots:
        found |= graph.callers_stopping_at(w, stop)
    found -= stop
    visible = set()
    for name in found:
        defs = index.functions.get(name, ())
        if name in index.macros or any(not d.static or d.file.endswith(".h") for d in defs):
            visible.add(name)
    return visible


def extract_scope(source: TreeSource, options: ScanOptions, progress: Progress | None = None,
                  only: list[str] | None = None) -> tuple[list[FileFacts], list[Skipped], int]:
    """The files in scope, extracted: (facts, skipped, number of files considered).

    Kernel root: the files of arch/arm (C, headers, assembly) and the headers arch/arm includes
    (transitively) that mention a word of the rules or a function reaching one (every file of arch/arm
    with `prefilter=False`).  --whole-tree: the
    identifier prefilter over the whole tree, in rounds until no new file is selected.
    """
    from armalias.prefilter import matcher, rule_words
    from armalias.source.directives import read_includes

    extractor = Extractor(source, options)
    if only is not None:
        facts, skipped = extractor.run(only, progress)
        return facts, skipped, len(only)
    words = rule_words()
    jobs = options.jobs or available_cpus()
    if is_kernel_root(source) and not options.whole_tree:
        found = source.discover("arch/arm")
        skipped = list(found.skipped)
        seen = set(found.files)
        if options.prefilter:
            facts, sk, words = _prefiltered(source, extractor, list(found.files), words, jobs, progress)
        else:
            facts, sk = extractor.run(found.files, progress)
            words = words | frozenset(_reaching_names(facts, words))
        skipped.extend(sk)
        frontier_includes = [(f.file, name) for f in facts for name in f.includes]
        parsed = {f.file for f in facts}
        for rel in found.files:  # files the prefilter passed over still pull in their headers
            if rel not in parsed:
                try:
                    frontier_includes.extend((rel, n) for n in read_includes(source.read(rel)))
                except Unreadable:
                    pass
        while frontier_includes:  # the headers arch/arm includes, transitively
            new = []
            for includer, name in frontier_includes:
                target = resolve_include(source, includer, name)
                if target is not None and target not in seen and target.endswith(".h"):
                    seen.add(target)
                    new.append(target)
            frontier_includes = []
            wanted = []
            mentions = matcher(words)
            for rel in sorted(new):
                try:
                    data = source.read(rel)
                except Unreadable:
                    continue
                frontier_includes.extend((rel, n) for n in read_includes(data))
                if mentions(data):
                    wanted.append(rel)
            got, sk = extractor.run(wanted, progress)
            facts.extend(got)
            skipped.extend(sk)
        return facts, skipped, len(seen)
    found = source.discover("")
    if not options.whole_tree and len(found.files) <= 5000:
        facts, sk = extractor.run(found.files, progress)
        return facts, list(found.skipped) + sk, len(found.files)
    facts, sk, _ = _prefiltered(source, extractor, list(found.files), words, jobs, progress)
    return facts, list(found.skipped) + sk, len(found.files)


def _prefiltered(source: TreeSource, extractor: Extractor, remaining: list[str], words: frozenset[str],
                 jobs: int, progress: Progress | None) -> tuple[list[FileFacts], list[Skipped], frozenset[str]]:
    """Rounds of select-then-extract: files naming a word, then files naming their callers."""
    from armalias.prefilter import select

    facts: list[FileFacts] = []
    skipped: list[Skipped] = []
    for _ in range(1 + load_watched().fixpoint_levels):
        chosen, bad = select(source, remaining, words, jobs,
                             extractor.cache.directory if extractor.cache is not None else None)
        skipped.extend(bad)
        bad_set = {b.file for b in bad}
        remaining = [r for r in remaining if r not in bad_set]
        if not chosen:
            break
        chosen_set = set(chosen)
        remaining = [r for r in remaining if r not in chosen_set]
        got, sk = extractor.run(chosen, progress)
        facts.extend(got)
        skipped.extend(sk)
        new_words = frozenset(_reaching_names(facts, words)) - words
        if not new_words:
            break
        words = words | new_words
    return facts, skipped, words


# -- call sites ---------------------------------------------------------------------------------
def watched_callsites(index: SymbolIndex, watched: WatchedSpec) -> list[CallSite]:
    """Every call in code of a watched name, directly or through macros (``via``)."""
    names = frozenset(watched.names)
    out: set[CallSite] = set()
    for c in index.code_calls:
        if c.callee in names:
            out.add(CallSite(c.callee, c.caller, c.file, c.line, c.column, (), c.args))
        if c.callee in index.macros and not names.isdisjoint(index.reachable_names(c.callee)):
            for e in index.expand(c.callee, c.args):
                if e.name in names:
                    out.add(CallSite(e.name, c.caller, c.file, c.line, c.column, e.via, e.args))
    return sorted(out, key=lambda s: (s.file, s.line, s.column, s.callee, s.via))


def find_alias_bugs(result: ScanResult, model: bool = True, vocab=None) -> list:
    """The alias analysis and its rules over a scanned tree (findings as plain data).  `vocab`: a
    Vocabulary extended by a tree's .armalias.toml (armalias.config.merge_vocabulary); None: rules/."""
    from armalias.checks.alias import AliasChecks
    from armalias.flow.alias import FlowAnalysis
    from armalias.rules import load_rules, load_vocabulary
    from armalias.validate import implementations_for, validate

    vocab = load_vocabulary() if vocab is None else vocab
    flows = FlowAnalysis(lambda rel: result.sources[rel].read(rel), result.index, vocab).run()
    findings = AliasChecks(load_rules(), vocab, result.graph).run(flows)
    if not findings or not model:
        return findings
    sources = list(dict.fromkeys(result.sources.values()))
    return validate(findings, implementations_for(sources[0]) if sources else ())


def source_for(path: Path, label: str | None = None) -> tuple[TreeSource, list[str] | None]:
    """The source a path given on the command line stands for (and the one file, if a file)."""
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        return DirectorySource(path.parent, label), [path.name]
    if not path.is_dir():
        raise InputError(f"{path}: not a file or directory")
    return DirectorySource(path, label), None


def scan_sources(sources: list[tuple[TreeSource, list[str] | None]], options: ScanOptions = ScanOptions(),
                 progress: Progress | None = None, root_label: str | None = None) -> ScanResult:
    started = time.perf_counter()
    watched = load_watched()
    result = ScanResult(root=root_label if root_label is not None else sources[0][0].label)
    for source, only in sources:
        if only is not None:
            bad = [r for r in only if not r.endswith(C_SUFFIXES + ASM_SUFFIXES)]
            result.skipped.extend(Skipped(r, "not a C, header or assembly file") for r in bad)
            only = [r for r in only if r not in bad]
        facts, skipped, considered = extract_scope(source, options, progress, only)
        result.files += considered
        result.facts.extend(facts)
        result.skipped.extend(skipped)
        result.sources.update({f.file: source for f in facts})
    result.facts.sort(key=lambda f: f.file)
    result.parsed = len(result.facts)
    result.functions = sum(len(f.functions) for f in result.facts)
    result.error_files = sum(1 for f in result.facts if f.has_error)
    result.error_functions = sum(f.error_functions for f in result.facts)
    result.index = SymbolIndex(result.facts, watched.cache_fns_members)
    result.graph = CallGraph(result.index, watched.cache_fns_struct)
    result.callsites = watched_callsites(result.index, watched)
    result.findings = find_alias_bugs(result, options.model)
    result.skipped.sort(key=lambda s: s.file)
    result.seconds = time.perf_counter() - started
    return result


def scan(paths: list[Path], options: ScanOptions = ScanOptions(), progress: Progress | None = None,
         root_label: str | None = None) -> ScanResult:
    """Scan the paths (the first one is the root every reported path is relative to)."""
    return scan_sources([source_for(p) for p in paths], options, progress,
                        root_label if root_label is not None else str(paths[0]))


__all__ = ["CallSite", "DirectorySource", "GitSource", "OverlaySource", "ScanOptions", "ScanResult",
           "TreeSource", "scan", "scan_sources", "source_for"]
