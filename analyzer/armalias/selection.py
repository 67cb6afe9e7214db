"""Which files a scan extracts: the prefilter's rounds of select-then-extract (prefiltered), each
round's words the names found reaching a root in the files chosen so far (reaching_names), and, for
the head of a change, the base's remembered rounds taken where they still hold (SelectionHints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from armalias.facts import FileFacts, Skipped
from armalias.rules import load_vocabulary, load_watched
from armalias.source.tree import TreeSource

if TYPE_CHECKING:
    from armalias.extraction import Extractor
    from armalias.scan import Progress, Scope


class StaleState(Exception):
    """The base's remembered state, taken on trust, turned out not to hold (SelectionHints.stamps)."""


@dataclass(frozen=True)
class SelectionHints:
    """What the prefilter decided on the base of a change (its remembered rounds, ScanState.rounds),
    for the head's whole-tree scan: a round whose words and restrictions are those the base searched
    takes the base's choice for every file the change leaves alone, and searches only the changed
    files, by the same `select`.  The prefilter's answer for a file depends only on its bytes and on
    those words, so the choice is the one a search of every file would make.  From the first round
    whose words differ (the change made a function reach a root, or stop) the tree's files are those
    of the base's listing (ScanState.listing; a state without one has the tree listed again), and
    each round the base also ran takes what still holds of its choice (delta_round); a round the
    base did not run searches as without hints.  Only for changes that modify files (none added,
    deleted or renamed): the listing of the tree is then the base's.  Listing and searching the
    whole tree again is otherwise most of what a check of a small change costs."""

    rounds: tuple[tuple[frozenset[str], dict[str, frozenset[str]], tuple[str, ...], tuple[Skipped, ...]], ...]
    changed: frozenset[str]  # files whose bytes the change modifies
    considered: int  # the files listed (the base's count)
    walk_skipped: tuple[Skipped, ...]  # what listing the tree skipped
    # the stamps (state.stamp_of) of the base's files once its state is known to hold (it may still be
    # being checked: speculative_state), for the rounds after those the hints give; raises
    # StaleState when it does not hold
    stamps: Callable[[], dict[str, list[int]]] | None = field(default=None, compare=False)
    # the files the base's listing gave (ScanState.listing), on the same terms: what a round that
    # searches the tree takes instead of listing it again (a walk of every directory); empty: list it
    listing: Callable[[], list[str]] | None = field(default=None, compare=False)
    # a round's search of the files the base passed over, for the words that now apply where they
    # did not, runs in worker processes while the scan goes on as if it found nothing, when
    # `speculate` says so of those words (the change brought them in: a name new to the tree is
    # seldom named in a file the change leaves alone): `pending` holds it until confirm waits for
    # it, and a scan whose search found a file is made again without (SpeculationMissed)
    speculate: Callable[[frozenset[str]], bool] | None = field(default=None, compare=False)
    pending: list = field(default_factory=list, compare=False)

    @classmethod
    def from_state(cls, state, changed: frozenset[str], holds: Callable[[], bool] | None = None,
                   speculate: Callable[[frozenset[str]], bool] | None = None) -> "SelectionHints | None":
        """`holds`: what tells whether the state holds, when that is not known yet."""
        if not state.whole_tree or not state.rounds:
            return None
        rounds = tuple((frozenset(w), {k: frozenset(a) for k, a in r.items()}, tuple(c),
                        tuple(Skipped(f, why) for f, why in b)) for w, r, c, b in state.rounds)

        def held(value):
            def get():
                if holds is not None and not holds():
                    raise StaleState(state.root)
                return value
            return get

        return cls(rounds, changed, state.files, tuple(Skipped(f, why) for f, why in state.walk_skipped),
                   held(state.deps), held(state.listing), speculate)


def _hinted_round(hint, source: TreeSource, words: frozenset[str], restricted: dict, jobs: int,
                  hints: SelectionHints, taken: set[str]) -> tuple[list[str], list[Skipped]]:
    """One round's choice from the base's (SelectionHints): its files but the changed ones, and the
    changed files not taken by an earlier round, searched."""
    from armalias.prefilter import select

    _, _, base_chosen, base_bad = hint
    chosen = [r for r in base_chosen if r not in hints.changed]
    bad = [b for b in base_bad if b.file not in hints.changed]
    todo = sorted(r for r in hints.changed if r not in taken)
    if todo:
        more, more_bad = select(source, todo, words, jobs, None, None, restricted, None)
        chosen.extend(more)
        bad.extend(more_bad)
    return sorted(chosen), sorted(bad, key=lambda b: b.file)


def _applies(word: str, words: frozenset[str], restricted: dict) -> frozenset[str] | None:
    """Where a word selects files: None everywhere, else its architectures (with generic code,
    which every word selects: prefilter.file_matcher); an empty set when it is not a word."""
    if word not in words:
        return frozenset()
    return restricted.get(word)


def _covers(before: frozenset[str] | None, now: frozenset[str] | None) -> bool:
    """Files `before` applies to include every file `now` applies to."""
    return before is None or (now is not None and now <= before)


def delta_round(hint, source: TreeSource, words: frozenset[str], restricted: dict, jobs: int,
                cache_dir: Path | None, stamps: dict, hints: SelectionHints, remaining: list[str],
                base_taken: set[str]) -> tuple[list[str], list[Skipped]]:
    """One round's choice from the base's same round when the words or their architectures differ
    (a change made a function reach a root, or stop).  A file the base's round searched and passed
    over mentions none of the words it applied there, so it is chosen now exactly when it mentions
    a word that applies where the base's did not: only those words are searched for in it (a few,
    not all 274 of 6.12's second round).  A file the base chose is chosen again when every word the
    base applied to it still applies, else searched with the words; a changed file, and one the
    base's rounds took before this one, is searched with the words.  `remaining`: the files no
    earlier round took; `base_taken`: those the base's earlier rounds took.  When
    `hints.speculate` says so of the new words, the search of the files passed over, when it runs
    in worker processes (past prefilter.POOL_FILES of them that the prefilter's memo does not
    answer), goes on there and this round's choice leaves it out: hints.pending, confirmed by
    confirm.
    That search is a large part of a whole-tree check of a small change, and a name new to the
    tree is seldom named in a file the change leaves alone: going on without it (and reading no
    other architecture's files, prefilter._applicable) saves it when no file names the name, at
    the price of making the scan again when one does."""
    from armalias.prefilter import select_started

    base_words, base_restricted, base_chosen, base_bad = hint
    chosen_before = frozenset(base_chosen)
    bad_before = {b.file: b for b in base_bad}
    known = [r for r in remaining if r not in hints.changed and r not in base_taken]
    unknown = [r for r in remaining if r in hints.changed or r in base_taken]
    new = frozenset(w for w in words if not _covers(_applies(w, base_words, base_restricted),
                                                    _applies(w, words, restricted)))
    kept = all(_covers(_applies(w, words, restricted), _applies(w, base_words, base_restricted))
               for w in base_words)
    chosen: list[str] = []
    bad = [bad_before[r] for r in known if r in bad_before]
    passed = [r for r in known if r not in chosen_before and r not in bad_before]
    again = [r for r in known if r in chosen_before]
    if kept:
        chosen.extend(again)
    else:
        unknown.extend(again)
    for rels, these, may_go_on in ((unknown, words, False), (passed, new, True)):
        if not these:  # no new word: the files passed over stay so
            continue
        # select keeps the restrictions of the words it is given
        selection = select_started(source, sorted(rels), these, jobs, cache_dir, stamps, restricted, None)
        # done: searched in this process (fewer than prefilter.POOL_FILES files, or one job), or the
        # memo knew every file; nothing to go on without
        if may_go_on and not selection.done and hints.speculate is not None and hints.speculate(these):
            hints.pending.append(selection)
            continue
        more, more_bad = selection()
        chosen.extend(more)
        bad.extend(more_bad)
    return sorted(chosen), sorted(bad, key=lambda b: b.file)


class SpeculationMissed(Exception):
    """A search the scan went on without (SelectionHints.speculate) found a file: the scan is
    made again, its answer known (the prefilter's memo holds it)."""


def confirm(hints: SelectionHints | None) -> None:
    """Wait for the searches the scan went on without; SpeculationMissed if one found a file."""
    if hints is None:
        return
    missed = False
    while hints.pending:
        chosen, bad = hints.pending.pop(0)()
        missed = missed or bool(chosen or bad)
    if missed:
        raise SpeculationMissed()


def end_pending(hints: SelectionHints | None) -> None:
    """The workers of searches not waited for, ended (an error path)."""
    if hints is None:
        return
    while hints.pending:
        hints.pending.pop(0).close()


def prefiltered(source: TreeSource, extractor: Extractor, remaining: list[str] | None, words: frozenset[str],
                jobs: int, progress: Progress | None, scope: Scope, extracted: Callable[[], None],
                beside: Callable[[frozenset[str]], None] = lambda words: None,
                hints: SelectionHints | None = None
                ) -> tuple[list[FileFacts], list[Skipped], frozenset[str], frozenset[str]]:
    """Rounds of select-then-extract: files naming a word, then files naming their callers.  A caller
    found reaching only in some architectures' builds selects only those architectures' files
    (and generic code's): prefilter.Restricted.
    Returns the facts, the files that are no C text, every word found, and the words of the last
    round searched (a file is selected exactly when it names one of those, as restricted in
    `scope.restricted`).  Leaves in `scope` the last index and graph built (`built`) and the files'
    stamps the prefilter took (`stamps`) and each round's choice (`rounds`).  `remaining` None: the
    files are listed only when a round cannot take its choice from `hints`."""
    from armalias.prefilter import select

    facts: list[FileFacts] = []
    skipped: list[Skipped] = []
    rule_words = words
    restricted: dict[str, frozenset[str]] = {}
    searched = words
    taken: set[str] = set()  # the files chosen or found no C text by the rounds so far
    base_taken: set[str] = set()  # the files the base's rounds before this one took (hints)
    delta = False  # a round took the base's choice as far as it holds (delta_round): so do the rest
    cache_dir = extractor.cache.directory if extractor.cache is not None else None
    for level in range(1 + load_watched().fixpoint_levels):
        searched = words
        scope.restricted = restricted
        hint = hints.rounds[level] if hints is not None and level < len(hints.rounds) else None
        if hint is not None and not delta and hint[0] == words and hint[1] == restricted:
            chosen, bad = _hinted_round(hint, source, words, restricted, jobs, hints, taken)
        else:
            if hints is not None and hints.stamps is not None and not delta:  # the base's files need no stat
                scope.stamps.update(hints.stamps())
            if remaining is None:
                listed = hints.listing() if hints is not None and hints.listing is not None else None
                if listed:  # the base's, the state holding: the change adds, deletes and renames no file
                    scope.walk_skipped = list(hints.walk_skipped)
                else:
                    found = source.discover("")
                    scope.walk_skipped = list(found.skipped)
                    listed = found.files
                remaining = [r for r in listed if r not in taken]
            if hint is not None:
                delta = True
                chosen, bad = delta_round(hint, source, words, restricted, jobs, cache_dir, scope.stamps, hints,
                                          remaining, base_taken)
            else:
                hints = None  # from here on, as without
                # the #include names (when asked) from the first round's reading: the later rounds read
                # the same files again, or, with the memo, a few
                chosen, bad = select(source, remaining, words, jobs, cache_dir, scope.stamps, restricted,
                                     scope.includes if level == 0 else None)
        if hint is not None:
            base_taken.update(hint[2])
            base_taken.update(b.file for b in hint[3])
        scope.rounds.append((words, restricted, chosen, bad))
        skipped.extend(bad)
        taken.update(b.file for b in bad)
        taken.update(chosen)
        if remaining is not None:
            remaining = [r for r in remaining if r not in taken]
        if not chosen:
            break
        wait = extractor.start(chosen, progress)
        beside(words)
        got, sk = wait()
        extracted()
        facts.extend(got)
        skipped.extend(sk)
        # the words of round k+1 are the names at most k+1 files from a root (rules/watched.toml
        # [prefilter] levels): a round's files never hold more than their callers, however deep
        # the calls that happen to lie within the files chosen so far (ia64's set_pte_at of 6.1,
        # reaching flush_icache_range, made vmalloc a word and chose 1,482 files)
        reach = reaching_names(facts, scope.built, level + 1)
        new_words = frozenset(reach) - words
        if not new_words:
            break
        words = words | new_words
        restricted = {n: frozenset(a) for n, a in reach.items() if n not in rule_words and None not in a}
    return facts, skipped, words, searched


def reaching_names(facts: list[FileFacts], built: dict | None = None, depth: int | None = None
                   ) -> dict[str, set[str | None]]:
    """Functions and macros (visible outside their file) that reach a fixpoint root (rules/watched.toml
    [prefilter]) in some build of the kernel (CallGraph.reaching_in_one_build), at most `depth`
    files away (None: any), and macros that expand to a watched name, with the architectures of
    those builds (None: every build; a macro's: those of its definitions)."""
    from armalias.callgraph import CallGraph
    from armalias.index import SymbolIndex

    watched = load_watched()
    facts = sorted(facts, key=lambda f: f.file)  # the order the scan's own index is built in
    index = SymbolIndex(facts, watched.cache_fns_members)
    graph = CallGraph(index, watched.cache_fns_struct)
    if built is not None:  # the scan reuses them when its files are the same
        built.update(files=[f.file for f in facts], index=index, graph=graph)
    arch_of = load_vocabulary().arch_of
    stop = frozenset(watched.names) - frozenset(watched.fixpoint_roots)
    reach = graph.reaching_in_one_build(watched.fixpoint_roots, stop, arch_of, depth)
    found = set(reach) - stop
    if built is not None:  # every name found reaching, in any round (armalias.incremental)
        built["found"] = built.get("found", frozenset()) | frozenset(found)
    visible = {}
    for name in sorted(found):
        defs = index.functions.get(name, ())
        if name in index.macros or any(not d.static or d.file.endswith(".h") for d in defs):
            visible[name] = reach[name]
    # a macro that expands to a watched name is another spelling of its call (ARM's
    # gic_flush_dcache_to_poc is __cpuc_flush_dcache_area): the files calling it hold call sites
    names = frozenset(watched.names)
    for name, defs in index.macros.items():
        if defs and name not in names and not names.isdisjoint(index.reachable_names(name)):
            visible.setdefault(name, set()).update(arch_of(d.file) for d in defs)
    return visible
