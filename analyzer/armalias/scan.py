"""The scan: choose files (the prefilter's rounds: armalias.selection), extract them (in parallel,
through the content cache: armalias.extraction), build the index and call graph, and analyse them
(armalias.pipeline: list the call sites of watched functions, run the alias rules and replay their
findings on the cache model).  Returns plain data; never prints."""

from __future__ import annotations

import os
import posixpath
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from armalias.cache import default_cache_dir, trusted_cache
from armalias.errors import InputError
from armalias.facts import FileFacts, Skipped
from armalias.rules import load_vocabulary, load_watched
from armalias.source.files import ASM_SUFFIXES, C_SUFFIXES
from armalias.source.text import Unreadable
from armalias.source.tree import DirectorySource, GitSource, OverlaySource, TreeSource

if TYPE_CHECKING:
    from armalias.callgraph import CallGraph
    from armalias.extraction import Extractor
    from armalias.index import SymbolIndex
    from armalias.selection import SelectionHints

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

    @classmethod
    def from_row(cls, row: list) -> "CallSite":
        """From its fields in order, as JSON gives them back (armalias.state)."""
        return cls(row[0], row[1], row[2], row[3], row[4], tuple(row[5]), tuple(row[6]))


@dataclass(frozen=True)
class ScanOptions:
    whole_tree: bool = False
    jobs: int = 0  # 0: the CPUs available
    use_cache: bool = True
    cache_dir: Path | None = None
    model: bool = True  # replay findings on the cache model
    prefilter: bool = True  # parse only files that mention a word of the rules (or a caller of one)
    # answer from the remembered state of an unchanged directory (armalias.state): no facts, index
    # or graph then, only counts, call sites, findings and what suppressions need
    reuse: bool = False
    # a file whose extraction takes longer is skipped, with the reason (the bound is far above what
    # any file of the kernel trees takes: it stops a pathological input)
    file_timeout: float = 30.0
    # objects known to be cleaned to the point of coherency for a reader with the MMU off besides
    # those the tree cleans (a check's head: those its base cleans); a scan given some is not remembered
    mmu_off_evidence: frozenset[str] = frozenset()
    # the base's versions of the functions a check's change alters (armalias.check.evidence): what
    # they made runnable stays known to hold code in the head; a scan given some is not remembered
    base_functions: tuple = ()
    head_functions: tuple = ()  # the head's versions of them (a scan's own tree), analysed whatever it selects
    # what runs instead of the functions the change deletes (armalias.check.replaced.Replacement)
    replacements: tuple = ()
    # a kernel .config's settings (--config): findings are replayed only on what it builds
    config_options: tuple[tuple[str, bool], ...] = ()

    @property
    def leans_on_base(self) -> bool:
        """Whether the findings may lean on a check's base (its evidence) rather than be the tree's
        own: such a scan is not remembered as the tree's."""
        return bool(self.mmu_off_evidence or self.base_functions)


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
    error_files: int = 0
    error_functions: int = 0
    reused: bool = False  # answered from the remembered state of an unchanged directory
    cache_dir: Path | None = None  # the content cache used (None: --no-cache)
    jobs: int = 1  # worker processes the analysis may use
    summarized: frozenset[str] = frozenset()  # the functions the flow analysis summarized (wrappers)
    asm_listed: dict[int, list[str]] = field(default_factory=dict)  # id(source) -> Scope.asm_files
    mmu_off_evidence: frozenset[str] = frozenset()  # ScanOptions.mmu_off_evidence of the scan
    base_functions: tuple = ()  # ScanOptions.base_functions of the scan
    head_functions: tuple = ()  # ScanOptions.head_functions of the scan
    replacements: tuple = ()  # ScanOptions.replacements of the scan
    lent: frozenset[str] = frozenset()  # fingerprints of findings made only with a check's base evidence


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# -- scope ------------------------------------------------------------------------------------
INCLUDE_DIRS = ("arch/arm/include", "arch/arm/include/uapi", "include", "include/uapi")


def resolve_include(source: TreeSource, directory: str, name: str, probed: set[str] | None = None,
                    paths: dict[str, str | None] | None = None) -> str | None:
    """The file an `#include` names: next to the includer (in `directory`), then the kernel's
    include paths.  `probed` collects the directories looked in (a file added there could change
    the answer).  `paths`: name -> what the include paths give, shared by the calls of one scan
    (it does not depend on the includer: 4,711 includes of arch/arm look up 1,100 names)."""
    near = posixpath.normpath(posixpath.join(directory, name))
    if not near.startswith("../"):
        if probed is not None:
            probed.add(posixpath.dirname(near))
        if source.is_file(near):
            return near
    if paths is not None and name in paths:
        return paths[name]
    candidates = [f"{d}/{name}" for d in INCLUDE_DIRS]
    if name.startswith("asm/"):
        candidates.append(f"include/asm-generic/{name[4:]}")
    hit = None
    for c in candidates:
        if c.startswith("../"):
            continue
        if probed is not None:
            probed.add(posixpath.dirname(c))
        if source.is_file(c):
            hit = c
            break
    if paths is not None:
        paths[name] = hit
    return hit


def is_kernel_root(source: TreeSource) -> bool:
    return source.is_dir("arch/arm") and source.is_dir("include")


@dataclass
class Scope:
    """What a scan chose and read: the facts of the files parsed, and what the result depends on."""

    facts: list[FileFacts] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    considered: int = 0
    read: list[str] = field(default_factory=list)  # every file whose bytes decided the result
    dirs: set[str] = field(default_factory=set)  # every directory whose listing did
    words: frozenset[str] = frozenset()  # the words of the last prefilter round (empty: no prefilter)
    all_words: frozenset[str] = frozenset()  # every word found (what selects the headers arch/arm includes)
    cache_dir: Path | None = None  # the content cache used (None: off, or it would be inside the tree)
    built: dict = field(default_factory=dict)  # the last index and graph the prefilter built, and on what
    stamps: dict = field(default_factory=dict)  # rel -> stamps (state.stamp_of) the prefilter took (armalias.state)
    restricted: dict = field(default_factory=dict)  # of `words`: those selecting some architectures' files only
    includes: dict | None = None  # rel -> its #include names, of the files the first prefilter round read (when asked)
    # each prefilter round: (its words, those restricted, the files it chose, the files no C text);
    # and what listing the tree skipped (symlink loops...): armalias.state keeps them (SelectionHints)
    rounds: list = field(default_factory=list)
    walk_skipped: list = field(default_factory=list)
    asm_files: list[str] | None = None  # arch/arm's assembly files, when the scope listed all of arch/arm


# -- extraction -------------------------------------------------------------------------------
TOO_SLOW = "took longer than"  # how a reason for skipping a file past its time bound begins


def timed_out(skipped: list[Skipped]) -> bool:
    """A file was skipped for its time bound: the result depends on the machine's speed, and is
    neither remembered (armalias.state) nor cached (check's findings)."""
    return any(s.reason.startswith(TOO_SLOW) for s in skipped)


def _relevant_names(index: SymbolIndex, summarized: set[str], vocab) -> frozenset[str]:
    """Every name a call of which can change what the analysis finds: the vocabulary's calls, the
    watched names, the execution entry points, the functions summarized (wrappers), and every macro
    that reaches one of those.  A call of any other name only adds an edge to the call graph
    (armalias.incremental relies on this)."""
    from collections import defaultdict

    watched = load_watched()
    targets = (set(vocab.maintenance) | set(vocab.write_sinks) | set(vocab.alias_sources) | set(vocab.exec_entries)
               | set(watched.names) | summarized)
    into: dict[str, set[str]] = defaultdict(set)  # name -> the macros whose bodies call or alias it
    for macro in index.macros:
        for target in index.alias_targets(macro):
            into[target].add(macro)
    for macro, calls in index.macro_calls.items():
        for c in calls:
            into[c.callee].add(macro)
    seen = set(targets)
    stack = list(targets)
    while stack:
        for macro in into.get(stack.pop(), ()):
            if macro not in seen:
                seen.add(macro)
                stack.append(macro)
    return frozenset(seen)


def extract_scope(source: TreeSource, options: ScanOptions, progress: Progress | None = None,
                  only: list[str] | None = None, stamps: dict[str, list[int]] | None = None,
                  extracted: Callable[[], None] | None = None, keep: list[Extractor] | None = None,
                  hints: SelectionHints | None = None) -> Scope:
    """The files in scope, extracted, with what the result depends on.

    Kernel root: the files of arch/arm (C, headers, assembly) and the headers arch/arm includes
    (transitively) that mention a word of the rules or a function reaching one (every file of arch/arm
    with `prefilter=False`).  --whole-tree: the
    identifier prefilter over the whole tree, in rounds until no new file is selected.  `stamps`:
    stamps (state.stamp_of) of files taken in this run already (rel -> stamp), not taken again.
    `extracted`: called once the first round of files is extracted.  `keep`: receives the
    extractor, finished but not closed (its workers still writing the cache: the caller closes it);
    without, it is closed before this returns.  `hints`: the base's prefilter rounds, for the head
    of a change (SelectionHints; a whole-tree scan only).
    """
    from armalias.extraction import Extractor

    extractor = Extractor(source, options)
    try:
        scope = _extract_scope(source, options, extractor, progress, only, stamps or {}, extracted or (lambda: None),
                               hints)
    except BaseException:
        extractor.close()
        raise
    extractor.finish()
    if keep is None:
        extractor.close()
    else:
        keep.append(extractor)
    return scope


def _extract_scope(source: TreeSource, options: ScanOptions, extractor: Extractor, progress: Progress | None,
                   only: list[str] | None, stamps: dict[str, list[int]], extracted: Callable[[], None],
                   hints: SelectionHints | None = None) -> Scope:
    from armalias.prefilter import rule_words
    from armalias.selection import prefiltered, reaching_names
    from armalias.source.directives import read_includes

    if only is not None:
        facts, skipped = extractor.run(only, progress)
        return Scope(facts, skipped, len(only), list(only), cache_dir=extractor.directory)
    # a file writing an object the evidence names is worth parsing, whatever else it calls
    words = rule_words() | {w for w in options.mmu_off_evidence if len(w) >= 4}
    jobs = options.jobs or available_cpus()
    if is_kernel_root(source) and not options.whole_tree:
        found = source.discover("arch/arm")
        scope = Scope(skipped=list(found.skipped), read=list(found.files), dirs=set(found.dirs),
                      cache_dir=extractor.directory, includes={}, stamps=dict(stamps),
                      asm_files=[r for r in found.files if r.endswith(".S")])
        headers = _Headers(source, scope, set(found.files), extractor, progress)
        if options.prefilter:
            facts, sk, words, scope.words = prefiltered(source, extractor, list(found.files), words, jobs,
                                                        progress, scope, extracted, headers.beside)
        else:
            facts, sk = extractor.run(found.files, progress)
            extracted()
            words = words | frozenset(reaching_names(facts))
        scope.facts = facts
        scope.all_words = words
        scope.skipped.extend(sk)
        # the files whose #include names the prefilter did not give: those parsed have them in their
        # facts; those passed over (and not read by the prefilter) still pull in their headers
        included = {f.file: f.includes for f in facts}
        known = scope.includes or {}
        more: list[tuple[str, tuple[str, ...]]] = []
        for rel in found.files:
            if rel in headers.followed:
                continue
            names = included.get(rel)
            if names is None:
                names = known.get(rel)
            if names is None:
                try:
                    names = read_includes(source.read(rel))
                except Unreadable:
                    continue
            more.append((rel, names))
        headers.follow(more)
        got, sk = headers.extracted(words)
        scope.facts.extend(got)
        scope.skipped.extend(sk)
        scope.considered = len(headers.seen)
        return scope
    if hints is not None and options.whole_tree and options.prefilter:  # the base's listing (SelectionHints)
        scope = Scope(skipped=list(hints.walk_skipped), considered=hints.considered, cache_dir=extractor.directory,
                      stamps=dict(stamps), walk_skipped=list(hints.walk_skipped))
        scope.facts, sk, _, scope.words = prefiltered(source, extractor, None, words, jobs, progress, scope,
                                                      extracted, hints=hints)
        scope.skipped.extend(sk)
        return scope
    found = source.discover("")
    scope = Scope(skipped=list(found.skipped), considered=len(found.files), read=list(found.files),
                  dirs=set(found.dirs), cache_dir=extractor.directory, stamps=dict(stamps),
                  walk_skipped=list(found.skipped))
    if not options.whole_tree and len(found.files) <= 5000:
        scope.facts, sk = extractor.run(found.files, progress)
    else:
        scope.facts, sk, _, scope.words = prefiltered(source, extractor, list(found.files), words, jobs,
                                                      progress, scope, extracted)
    scope.skipped.extend(sk)
    return scope


class _Headers:
    """The headers the files of arch/arm include, transitively, as the include paths resolve them
    (resolve_include), each read once, and those of them that mention a word, extracted.  The
    closure is followed from the prefilter's #include names while the first round is extracted, and
    the headers that mention the first round's words are extracted beside that round's files (their
    facts stay out of the rounds' own: what reaches a root is decided on the rounds' files alone);
    the last words decide the rest (`extracted`).  The words only grow from round to round."""

    def __init__(self, source: TreeSource, scope: Scope, seen: set[str], extractor: Extractor,
                 progress: Progress | None):
        self.source = source
        self.scope = scope
        self.seen = seen  # arch/arm's files and the headers found
        self.followed: set[str] = set()  # the files of arch/arm whose includes were followed
        self.held: list[tuple[str, bytes]] = []  # (header, its bytes)
        self._extractor = extractor
        self._progress = progress
        self._taken: set[str] = set()  # headers whose extraction was started
        self._searched = False  # the headers were searched for the first words
        self._pending: list[Callable[[], tuple[list[FileFacts], list[Skipped]]]] = []
        self._resolved: dict[tuple[str, str], str | None] = {}  # (includer's directory, name) -> file
        self._paths: dict[str, str | None] = {}  # name -> what the include paths give (resolve_include)

    def beside(self, words: frozenset[str]) -> None:
        """Called once a prefilter round's files are being extracted, with that round's words.  In the
        first round: the closure from the #include names the prefilter read, and the extraction of
        the headers that mention the first words started (4 of 6.12's 19).  Not for the second
        round's words: past prefilter.PACKED_PATTERNS words the search of the headers that arch/arm
        includes leaves the automaton's packed searcher, and costs about what extracting the
        headers beside the round saves."""
        if self._searched:
            return
        known = self.scope.includes or {}
        self.followed.update(known)
        self.follow(known.items())
        self._start(words)

    def _start(self, words: frozenset[str]) -> None:
        from armalias.prefilter import matcher

        mentions = matcher(words)
        new = sorted(rel for rel, data in self.held if rel not in self._taken and mentions(data))
        self._searched = True
        if new:
            self._taken.update(new)
            self._pending.append(self._extractor.start(new, self._progress))

    def extracted(self, words: frozenset[str]) -> tuple[list[FileFacts], list[Skipped]]:
        """The headers found that mention any of the (last) words, extracted."""
        self._start(words)
        facts: list[FileFacts] = []
        skipped: list[Skipped] = []
        for wait in self._pending:
            got, sk = wait()
            facts.extend(got)
            skipped.extend(sk)
        self._pending = []
        return facts, skipped

    def follow(self, includers: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        """Follow the #include names of files ((file, names) pairs) to every header they reach."""
        from armalias.source.directives import read_includes

        dirname = posixpath.dirname
        resolved, seen, scope = self._resolved, self.seen, self.scope
        # (including file's directory, included name): the directory taken once per file
        frontier = [(here, n) for rel, names in includers for here in (dirname(rel),) for n in names]
        while frontier:
            new = []
            for key in frontier:
                target = resolved.get(key, resolved)
                if target is resolved:
                    target = resolved[key] = resolve_include(self.source, key[0], key[1], scope.dirs, self._paths)
                if target is not None and target not in seen and target.endswith(".h"):
                    seen.add(target)
                    new.append(target)
            frontier = []
            for rel in sorted(new):
                try:
                    data = self.source.read(rel)
                except Unreadable as exc:  # a header refused (a link out of the tree...) is said so
                    scope.skipped.append(Skipped(rel, str(exc)))
                    continue
                scope.read.append(rel)
                here = dirname(rel)
                frontier.extend((here, n) for n in read_includes(data))
                self.held.append((rel, data))


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
                 progress: Progress | None = None, root_label: str | None = None,
                 stamps: dict[str, list[int]] | None = None, hints: SelectionHints | None = None) -> ScanResult:
    """`stamps`: stamps (state.stamp_of) of files of the first source's directory taken in this run
    already (remembered_state's), so the prefilter does not stat them again.  `hints`: the prefilter
    rounds of the base of a change, for its head (SelectionHints; ignored for a source whose result
    is remembered, whose state lists every file it read)."""
    options = trusted_options(options)
    started = time.perf_counter()
    started_ns = time.time_ns()
    result = ScanResult(root=root_label if root_label is not None else sources[0][0].label,
                        jobs=options.jobs or available_cpus())
    memo = _memo(sources, options)
    if memo is not None and options.reuse:
        state = remembered_state(sources[0][0], options)
        if state is not None:
            return from_state(result, state, options, sources[0][0], started)
    from armalias.selection import SpeculationMissed, end_pending

    extractors: list[Extractor] = []  # their workers write the cache while the flow runs
    model = _ModelStart(sources, options, result.jobs)
    hints = hints if memo is None and len(sources) == 1 and sources[0][1] is None else None
    try:
        try:
            result = _scan_extracted(sources, options, progress, stamps, result, memo, started_ns, extractors, model,
                                     hints)
        except SpeculationMissed:
            assert hints is not None
            hints = replace(hints, speculate=None, pending=[])
            result = _scan_extracted(sources, options, progress, stamps, ScanResult(root=result.root, jobs=result.jobs),
                                     memo, started_ns, extractors, model, hints)
    finally:
        end_pending(hints)
        for extractor in extractors:
            extractor.close()
        if model.early is not None:  # also when the scan stops early (StaleState, an interrupt)
            model.early.close()
    result.seconds = time.perf_counter() - started
    return result


def _scan_extracted(sources: list[tuple[TreeSource, list[str] | None]], options: ScanOptions,
                    progress: Progress | None, stamps: dict[str, list[int]] | None, result: ScanResult,
                    memo: Memo | None, started_ns: int, keep: list[Extractor], model: "_ModelStart",
                    hints: SelectionHints | None = None) -> ScanResult:
    from armalias.callgraph import CallGraph
    from armalias.index import SymbolIndex
    from armalias.pipeline import find_alias_bugs, replay_on_model, watched_callsites
    from armalias.selection import confirm

    watched = load_watched()
    scopes = []
    for source, only in sources:
        if only is not None:
            bad = [r for r in only if not r.endswith(C_SUFFIXES + ASM_SUFFIXES)]
            result.skipped.extend(Skipped(r, "not a C, header or assembly file") for r in bad)
            only = [r for r in only if r not in bad]
        scope = extract_scope(source, options, progress, only, stamps if source is sources[0][0] else None, model,
                              keep, hints)
        scopes.append(scope)
        result.files += scope.considered
        result.facts.extend(scope.facts)
        result.skipped.extend(scope.skipped)
        result.sources.update({f.file: source for f in scope.facts})
        if scope.asm_files is not None:
            result.asm_listed[id(source)] = scope.asm_files
        result.cache_dir = result.cache_dir or scope.cache_dir
    model()
    early = model.early
    result.facts.sort(key=lambda f: f.file)
    result.parsed = len(result.facts)
    result.functions = sum(len(f.functions) for f in result.facts)
    result.error_files = sum(1 for f in result.facts if f.has_error)
    result.error_functions = sum(f.error_functions for f in result.facts)
    built = scopes[0].built if len(scopes) == 1 else {}
    if built.get("files") == [f.file for f in result.facts]:  # what the prefilter's last round built
        result.index, result.graph = built["index"], built["graph"]
    else:
        result.index = SymbolIndex(result.facts, watched.cache_fns_members)
        result.graph = CallGraph(result.index, watched.cache_fns_struct)
    result.callsites = watched_callsites(result.index, watched)
    result.mmu_off_evidence = options.mmu_off_evidence
    result.base_functions = options.base_functions
    result.head_functions = options.head_functions
    result.replacements = options.replacements
    raw = find_alias_bugs(result)
    result.findings = raw
    if options.model and raw:
        from armalias.model.validate import implementations_for

        impls = early.result(result.cache_dir) if early is not None else None
        if impls is None:
            impls = implementations_for(sources[0][0], result.cache_dir)
        result.findings = replay_on_model(raw, impls, _tree_reader(result, sources[0][0]), sources[0][0],
                                          options.config_options)
    if early is not None:
        early.close()
    confirm(hints)
    result.skipped.sort(key=lambda s: s.file)
    if memo is not None and not timed_out(result.skipped):
        _remember(result, raw, scopes[0], memo, options, started_ns)
    return result


class ModelEarly:
    """The cache model's implementations (model.validate.tree_implementations: decoding arch/arm/mm, a
    sizeable part of a cold arch/arm scan) read in a process of its own, from the end of the scan's
    first round of extraction (_ModelStart), on the CPU the scan's main process leaves idle while it
    selects, extracts the rest and analyses.  The process is joined by `close`, and ended first if
    its answer is no longer wanted: one left running (a pool's idle worker, never told to stop
    before the command leaves by os._exit) holds the command's output pipes open after it ends."""

    def __init__(self, root: Path, cache_dir: Path | None):
        import importlib
        import multiprocessing

        importlib.import_module("armalias.model.validate")  # here, once: the forked process finds it loaded
        self.cache_dir = cache_dir
        self._answer, sender = multiprocessing.Pipe(duplex=False)
        self.process = multiprocessing.Process(target=_decode_model, args=(root, cache_dir, sender), daemon=True)
        self.process.start()
        sender.close()
        self._got: list = []

    def result(self, cache_dir: Path | None):
        """The implementations, or None (asked for another cache, or the process failed)."""
        if cache_dir != self.cache_dir:
            return None
        if not self._got:
            try:
                self._got.append(self._answer.recv())
            except (EOFError, OSError):  # the process ended without an answer
                self._got.append(None)
        return self._got[0]

    def close(self) -> None:
        """Once the answer is in, or not wanted; again, nothing."""
        if not self._got and self.process.is_alive():
            self.process.terminate()  # decoding what nobody will read
        self.process.join()
        self._answer.close()


def _decode_model(root: Path, cache_dir: Path | None, sender) -> None:
    from armalias.model.validate import tree_implementations

    try:
        found = tree_implementations(root, cache_dir)
    except Exception:  # noqa: BLE001 - the scan decodes them itself
        found = None
    try:
        sender.send(found)
    except Exception:  # noqa: BLE001 - no answer: the scan decodes them itself
        pass
    sender.close()


class _ModelStart:
    """Starts the cache model's decoding (ModelEarly) once: when the scan's first round of files
    is extracted, or when called at the latest.  Started with the scan, the decoding would compete
    with the extraction's workers for the CPUs and slow the first round down; after that round the
    scan's own process works alone (the second round, the headers, the flow), and the decoding runs
    on the CPU it leaves idle."""

    def __init__(self, sources: list[tuple[TreeSource, list[str] | None]], options: ScanOptions, jobs: int):
        self._args = (sources, options, jobs)
        self._started = False
        self.early: ModelEarly | None = None

    def __call__(self) -> None:
        if not self._started:
            self._started = True
            self.early = _model_early(*self._args)


def _model_early(sources: list[tuple[TreeSource, list[str] | None]], options: ScanOptions, jobs: int
                 ) -> ModelEarly | None:
    """Start decoding the cache implementations now, when the scan is of one kernel directory, will
    run the model, and may use more than one process."""
    if not options.model or jobs <= 1 or len(sources) != 1 or sources[0][1] is not None:
        return None
    source = sources[0][0]
    if type(source) is not DirectorySource:
        return None
    local = source.local_path("")
    if local is None or not (local / "arch" / "arm" / "mm").is_dir() or not is_kernel_root(source):
        return None
    try:
        return ModelEarly(local, facts_cache_dir(source, options))
    except (OSError, RuntimeError):  # no process to be had: the scan decodes them itself, later
        return None


def facts_cache_dir(source: TreeSource, options: ScanOptions) -> Path | None:
    """The facts cache directory a scan of this source uses: None with --no-cache or when it would
    be inside the tree (never written into)."""
    from armalias.state import in_tree

    cdir = cache_dir_for(options)
    if cdir is not None:
        local = source.local_path("")
        if local is not None and in_tree(cdir, local.resolve()):
            return None
    return cdir


def cache_dir_for(options: ScanOptions) -> Path | None:
    """The facts cache directory of these options (every other cache sits beside it), or None when
    the cache is off."""
    return (options.cache_dir or default_cache_dir()).resolve() if options.use_cache else None


def trusted_options(options: ScanOptions) -> ScanOptions:
    """The options, without the cache when its directory may not be trusted (cache.trusted_cache)."""
    if options.use_cache and not trusted_cache((options.cache_dir or default_cache_dir()).resolve()):
        return replace(options, use_cache=False)
    return options


@dataclass(frozen=True)
class Memo:
    """Where a scan's state is remembered: `key` names the tree (a resolved directory, or "git:" and
    the digest of a revision's blob ids); `directory`: the files to stat when it is a directory
    (None: a revision, whose content the key already fixes); `guard`: the tree, which the state is
    never written into."""

    key: str
    directory: Path | None
    guard: Path


def _memo(sources: list[tuple[TreeSource, list[str] | None]], options: ScanOptions) -> Memo | None:
    """One whole directory or git revision, with the cache on: its scan is remembered (armalias.state)."""
    if (len(sources) != 1 or sources[0][1] is not None or not options.use_cache or options.leans_on_base
            or options.config_options):
        return None
    return memo_of(sources[0][0])


def memo_of(source: TreeSource) -> Memo | None:
    from armalias.source.tree import tree_identity

    try:
        if type(source) is DirectorySource:
            root = source.root.resolve()
            return Memo(str(root), root, root)
        if type(source) is GitSource:
            identity = tree_identity(source)
            return Memo(f"git:{identity}", None, source.repo.resolve()) if identity else None
    except OSError:
        return None
    return None


def remembered_state(source: TreeSource, options: ScanOptions, seen: dict[str, list[int]] | None = None):
    """The remembered state of a directory or git revision when nothing it depends on changed
    (armalias.state), else None.  `seen` receives the stamps of the files found unchanged."""
    state = _stored_state(source, options)
    return state if state is not None and state.unchanged(seen) else None


def speculative_state(source: TreeSource, options: ScanOptions):
    """(the remembered state, what tells whether it holds): the state before its files are stat'ed,
    and ScanState.unchanged_later for that, so the caller can work with it meanwhile and throw the
    work away when the answer is no.  (None, None) when there is no state."""
    state = _stored_state(source, options)
    return (state, state.unchanged_later()) if state is not None else (None, None)


def _stored_state(source: TreeSource, options: ScanOptions):
    from armalias.state import load_state

    cache_dir = cache_dir_for(options)
    memo = memo_of(source) if cache_dir is not None else None
    if memo is None:
        return None
    return load_state(cache_dir, memo.key, options.whole_tree, options.prefilter, memo.guard)


def _remember(result: ScanResult, raw: list, scope: Scope, memo: Memo, options: ScanOptions,
              started_ns: int) -> None:
    from dataclasses import astuple

    from armalias.state import ScanState, finding_dicts, save_state, stamp

    deps: dict[str, list[int]] = {}
    dirs: dict[str, int] = {}
    root = memo.directory
    if root is not None:
        read = list(scope.read)
        if options.model:  # the model reads the cache implementations from arch/arm/mm (and its Kconfig)
            try:
                read.extend(f"arch/arm/mm/{e.name}" for e in os.scandir(root / "arch/arm/mm") if e.is_file())
            except OSError:
                pass
        for rel in read:  # the prefilter stat'ed most of them already, while it read them
            st = scope.stamps[rel] if rel in scope.stamps else stamp(os.path.join(root, rel))
            if st is not None:
                deps[rel] = st
        for rel in scope.dirs:
            st = stamp(os.path.join(root, rel))
            dirs[rel] = st[1] if st is not None else -1
    with_findings = {f.file for f in raw}
    state = ScanState(
        root=memo.key, started_ns=started_ns, deps=deps, dirs=dirs, selected=[f.file for f in scope.facts],
        words=sorted(scope.words), restricted={w: sorted(a) for w, a in sorted(scope.restricted.items())},
        all_words=sorted(scope.all_words), whole_tree=options.whole_tree, files=result.files, parsed=result.parsed,
        functions=result.functions, error_files=result.error_files, error_functions=result.error_functions,
        skipped=[[s.file, s.reason] for s in result.skipped], callsites=[list(astuple(c)) for c in result.callsites],
        findings=finding_dicts(raw), modelled=finding_dicts(result.findings) if options.model else None,
        relevant=sorted(_relevant_names(result.index, set(result.summarized), load_vocabulary())
                        | scope.built.get("found", frozenset()) | scope.all_words | scope.words),
        notes={f.file: list(f.notes) for f in result.facts if f.notes},
        spans={f.file: [[fn.name, fn.line, fn.end_line] for fn in f.functions] for f in result.facts
               if f.file in with_findings},
        rounds=[[sorted(w), {k: sorted(a) for k, a in sorted(r.items())}, list(c), [[b.file, b.reason] for b in bad]]
                for w, r, c, bad in scope.rounds] if options.whole_tree else [],
        walk_skipped=[[s.file, s.reason] for s in scope.walk_skipped] if options.whole_tree else [],
        listing=list(scope.read) if options.whole_tree else [])
    save_state(cache_dir_for(options), state, options.prefilter, memo.guard)


def _tree_reader(result: ScanResult, tree: TreeSource) -> Callable[[str], bytes]:
    """A scanned file from where the scan read it, anything else (Kconfig, Makefiles) from the tree."""
    return lambda rel: result.sources[rel].read(rel) if rel in result.sources else tree.read(rel)


def from_state(result: ScanResult, state, options: ScanOptions, source: TreeSource, started: float) -> ScanResult:
    result.files, result.parsed, result.functions = state.files, state.parsed, state.functions
    result.error_files, result.error_functions = state.error_files, state.error_functions
    result.skipped = state.skipped_objects()
    result.callsites = [CallSite.from_row(c) for c in state.callsites]
    result.facts = state.suppression_facts()
    if options.model and state.modelled is None and state.findings:
        from armalias.pipeline import replay_on_model
        from armalias.model.validate import implementations_for

        impls = implementations_for(source, facts_cache_dir(source, options))
        result.findings = replay_on_model(state.finding_objects(False), impls, source.read, source,
                                          options.config_options)
    else:
        result.findings = state.finding_objects(options.model)
    result.reused = True
    result.seconds = time.perf_counter() - started
    return result


def scan(paths: list[Path], options: ScanOptions = ScanOptions(), progress: Progress | None = None,
         root_label: str | None = None) -> ScanResult:
    """Scan the paths (the first one is the root every reported path is relative to)."""
    return scan_sources([source_for(p) for p in paths], options, progress,
                        root_label if root_label is not None else str(paths[0]))


__all__ = ["CallSite", "DirectorySource", "GitSource", "OverlaySource", "ScanOptions", "ScanResult",
           "TreeSource", "scan", "scan_sources", "source_for"]
