"""The scan pipeline: choose files, extract them (in parallel, through the content cache), build the
index and call graph, list the call sites of watched functions.  Returns plain data; never prints."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from armalias.cache import FactsCache, default_cache_dir
from armalias.callgraph import CallGraph
from armalias.facts import FileFacts, Skipped
from armalias.index import SymbolIndex
from armalias.rules import WatchedSpec, load_watched
from armalias.source.directives import read_includes
from armalias.source.extract import extract_file, extractor_key
from armalias.source.files import ASM_SUFFIXES, C_SUFFIXES, Discovery, discover, is_kernel_root, walk

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
    index: SymbolIndex | None = None
    graph: CallGraph | None = None
    findings: list = field(default_factory=list)
    file_roots: dict[str, Path] = field(default_factory=dict)  # relative path -> the root it is under
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


def _resolve_include(root: Path, includer: str, name: str, quoted: bool) -> str | None:
    candidates = []
    if quoted:
        candidates.append((Path(includer).parent / name).as_posix())
    candidates.extend(f"{d}/{name}" for d in INCLUDE_DIRS)
    if name.startswith("asm/"):
        candidates.append(f"include/asm-generic/{name[4:]}")
    for c in candidates:
        p = root / c
        if p.is_file():
            try:
                rel = p.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                continue
            return rel
    return None


def kernel_scope(root: Path, out: Discovery) -> None:
    """arch/arm (C, headers, assembly) plus the headers it includes, transitively, from elsewhere."""
    walk(root, root / "arch" / "arm", C_SUFFIXES + ASM_SUFFIXES, out)
    selected = set(out.files)
    queue = [f for f in out.files]
    while queue:
        rel = queue.pop()
        try:
            data = (root / rel).read_bytes()
        except OSError:
            continue
        for line_name in read_includes(data):
            quoted = False
            target = _resolve_include(root, rel, line_name, quoted)
            if target is None:
                target = _resolve_include(root, rel, line_name, True)
            if target is not None and target not in selected and target.endswith(".h"):
                selected.add(target)
                out.files.append(target)
                queue.append(target)


def choose_files(paths: list[Path], options: ScanOptions) -> list[Discovery]:
    result = discover(paths)
    for d in result:
        if d.files or d.skipped:  # a single file given
            continue
        if is_kernel_root(d.root) and not options.whole_tree:
            kernel_scope(d.root, d)
        else:
            walk(d.root, d.root, C_SUFFIXES + ASM_SUFFIXES, d)
        d.files = sorted(set(d.files))
    return result


# -- extraction -------------------------------------------------------------------------------
def _extract_one(args: tuple[str, str, str | None, str]) -> FileFacts | Skipped:
    root, rel, cache_dir, key = args
    try:
        cache = FactsCache(Path(cache_dir), key) if cache_dir else None
        if cache is not None:
            from armalias.source.text import Unreadable, read_source

            try:
                src = read_source(Path(root) / rel)
            except Unreadable as exc:
                return Skipped(rel, str(exc))
            hit = cache.get(rel, src.digest)
            if hit is not None:
                return hit
            from armalias.source.extract import extract_bytes

            facts = extract_bytes(rel, src.data, src.digest)
            cache.put(facts)
            return facts
        return extract_file(Path(root), rel)
    except RecursionError:
        return Skipped(rel, "too deeply nested to parse")
    except Exception as exc:  # one bad file never stops the scan; the reason is shown
        return Skipped(rel, f"internal error while extracting: {type(exc).__name__}: {exc}")


def extract_all(root: Path, files: list[str], options: ScanOptions, progress: Progress | None = None,
                ) -> tuple[list[FileFacts], list[Skipped]]:
    cache_dir = None
    if options.use_cache:
        cdir = (options.cache_dir or default_cache_dir()).resolve()
        if not cdir.is_relative_to(root.resolve()):  # never write into the scanned tree
            cache_dir = str(cdir)
    key = extractor_key()
    work = [(str(root), rel, cache_dir, key) for rel in files]
    jobs = options.jobs or available_cpus()
    results: list[FileFacts | Skipped] = []
    if jobs <= 1 or len(work) < 8:
        for i, w in enumerate(work):
            results.append(_extract_one(w))
            if progress:
                progress(i + 1, len(work))
    else:
        chunk = max(1, min(64, len(work) // (jobs * 8)))
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for i, r in enumerate(pool.map(_extract_one, work, chunksize=chunk)):
                results.append(r)
                if progress and (i % 16 == 0 or i + 1 == len(work)):
                    progress(i + 1, len(work))
    facts = [r for r in results if isinstance(r, FileFacts)]
    skipped = [r for r in results if isinstance(r, Skipped)]
    return facts, skipped


# -- call sites ---------------------------------------------------------------------------------
def watched_callsites(index: SymbolIndex, watched: WatchedSpec) -> list[CallSite]:
    """Every call in code of a watched name, directly or through macros (``via``)."""
    names = set(watched.names)
    out: set[CallSite] = set()
    for c in index.code_calls:
        if c.callee in names:
            out.add(CallSite(c.callee, c.caller, c.file, c.line, c.column, (), c.args))
        if c.callee in index.macros:
            for e in index.expand(c.callee, c.args):
                if e.name in names:
                    out.add(CallSite(e.name, c.caller, c.file, c.line, c.column, e.via, e.args))
    return sorted(out, key=lambda s: (s.file, s.line, s.column, s.callee, s.via))


def find_alias_bugs(result: ScanResult) -> list:
    """The alias analysis and its rules over a scanned tree (findings as plain data)."""
    from armalias.checks.alias import AliasChecks
    from armalias.flow.alias import FlowAnalysis
    from armalias.rules import load_rules, load_vocabulary

    vocab = load_vocabulary()
    from armalias.validate import tree_implementations, validate

    flows = FlowAnalysis(lambda rel: result.file_roots[rel] / rel, result.index, vocab).run()
    findings = AliasChecks(load_rules(), vocab, result.graph).run(flows)
    if not findings:
        return findings
    roots = sorted(set(result.file_roots.values()))
    return validate(findings, tree_implementations(roots[0]) if roots else ())


def scan(paths: list[Path], options: ScanOptions = ScanOptions(), progress: Progress | None = None,
         root_label: str | None = None) -> ScanResult:
    """Scan the paths (the first one is the root every reported path is relative to)."""
    started = time.perf_counter()
    watched = load_watched()
    discoveries = choose_files(paths, options)
    result = ScanResult(root=root_label if root_label is not None else str(paths[0]))
    for d in discoveries:
        result.files += len(d.files)
        result.skipped.extend(d.skipped)
        facts, skipped = extract_all(d.root, d.files, options, progress)
        result.file_roots.update({f.file: d.root for f in facts})
        result.facts.extend(facts)
        result.skipped.extend(skipped)
    result.parsed = len(result.facts)
    result.functions = sum(len(f.functions) for f in result.facts)
    result.error_files = sum(1 for f in result.facts if f.has_error)
    result.error_functions = sum(f.error_functions for f in result.facts)
    result.index = SymbolIndex(result.facts, watched.cache_fns_members)
    result.graph = CallGraph(result.index, watched.cache_fns_struct)
    result.callsites = watched_callsites(result.index, watched)
    result.findings = find_alias_bugs(result)
    result.skipped.sort(key=lambda s: s.file)
    result.seconds = time.perf_counter() - started
    return result
