"""`armalias check`: both sides of a change scanned (unchanged files from the content cache: their
git blob ids are their digests, and a side remembered in the state is not scanned again), the head
given the base's evidence (check/evidence.py), the findings compared and replayed on the model."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace

from armalias.cache import JsonEntries
from armalias.check.changes import Change
from armalias.check.compare import kept_in_changed, compare
from armalias.check.evidence import changed_functions, cleaned_in
from armalias.check.replaced import replaced_functions
from armalias.findings import Finding, severity_rank
from armalias.pipeline import find_alias_bugs
from armalias.rules import Vocabulary, load_vocabulary
from armalias.scan import (Progress, ScanOptions, ScanResult, available_cpus, cache_dir_for, scan_sources,
                           speculative_state, timed_out, trusted_options)
from armalias.selection import StaleState
from armalias.source.text import Unreadable
from armalias.source.tree import SOURCE_SUFFIXES, OverlaySource, tree_identity
from armalias.state import analysis_digest, finding_from_dict
from armalias.suppress import apply_suppressions


class FindingsCache(JsonEntries):
    """The findings of a whole tree (before the model, after suppressions, every rule) by the tree's
    content, so the side of a check seen before — HEAD in a pre-commit hook, after the commit that
    was checked as the index; the base of a CI range — is not scanned again.  JSON, written
    atomically; an entry that does not load is a miss."""

    def key(self, identity: str, options: ScanOptions, vocab: Vocabulary | None) -> str:
        extra = ""
        if vocab is not None:
            extra = json.dumps([sorted(vocab.alias_sources.items()), sorted(vocab.exec_entries.items())])
        return hashlib.sha256(f"{identity}\0{analysis_digest()}\0{options.whole_tree}\0{extra}".encode()).hexdigest()

    def get(self, key: str) -> tuple[list[Finding], int] | None:
        return self.read((key,), lambda raw: ([finding_from_dict(d) for d in raw["findings"]], int(raw["suppressed"])))

    def put(self, key: str, findings: list[Finding], suppressed: int) -> None:
        self.write((key,), {"suppressed": suppressed, "findings": [asdict(f) for f in findings]})


# -- the check ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckOptions:
    scan: ScanOptions = field(default_factory=lambda: ScanOptions())
    codes: frozenset[str] | None = None  # the rule codes reported (None: every rule)
    baseline: frozenset[str] = frozenset()  # fingerprints never reported as new
    vocab: Vocabulary | None = None  # the vocabulary extended by .armalias.toml (None: rules/ as it is)


@dataclass
class CheckResult:
    change: Change
    base: ScanResult | None  # None: the base's findings came from the findings cache, or equal the head's
    head: ScanResult
    new: list[Finding]
    fixed: list[Finding]
    unchanged: int
    suppressed: int = 0  # findings of the head silenced by `armalias: ignore[...]`
    baselined: int = 0  # new findings whose fingerprints are in the baseline
    base_from: str = "scan"  # scan | cache | state (the directory as scanned before) | head (no source changed)
    seconds: float = 0.0
    head_from: str = "scan"  # scan | state (derived from the base's state: the change only moves code)
    # findings of one side in a file the other side could not analyse: neither new nor fixed
    unknown: list[Finding] = field(default_factory=list)
    skipped_base: list = field(default_factory=list)  # Skipped of the base side, when it was scanned

    def fails(self, fail_on: str) -> bool:
        threshold = severity_rank(fail_on)
        return any(severity_rank(f.severity) >= threshold for f in self.new)


def _side_findings(result: ScanResult, options: CheckOptions) -> tuple[list[Finding], int]:
    """The findings of one side before the model, suppressions applied: (kept, suppressed count)."""
    findings = list(result.findings)
    if options.vocab is not None:
        findings = find_alias_bugs(result, vocab=options.vocab)
    kept, suppressed, _ = apply_suppressions(findings, result.facts)
    return kept, len(suppressed)


def _head_from_state(change: Change, state, options: ScanOptions, label: str) -> ScanResult | None:
    """The head side derived from the base's state, when the change cannot alter it but by moving
    positions (armalias.incremental); None: scan it."""
    from armalias.incremental import head_state
    from armalias.scan import from_state

    moved = head_state(state, change.base, change.head, change.changed, change.renames, options)
    if moved is None:
        return None
    return from_state(ScanResult(root=label), moved, options, change.head, time.perf_counter())


def _selection_hints(change: Change, state, holds=None):
    """The base's prefilter rounds for the head's scan (armalias.selection.SelectionHints), when the change
    only modifies source files the base's scan listed, in memory over the same directory.  `holds`:
    what tells whether the state holds, when that is not known yet (speculative_state)."""
    from armalias.selection import SelectionHints

    if (state is None or change.renames or not isinstance(change.head, OverlaySource)
            or change.head.base is not change.base):
        return None
    changed = frozenset(rel for rel in change.changed if rel.endswith(SOURCE_SUFFIXES))
    if any(rel not in state.deps or not change.head.is_file(rel) for rel in changed):
        return None  # a file added or deleted, or one the base did not list (the listing would differ)
    return SelectionHints.from_state(state, changed, holds, speculate=_brought_in(change, changed))


def _brought_in(change: Change, changed: frozenset[str]):
    """Whether a change brought in all of some words: the base's bytes of the files it changes name
    none of them (prefilter.matcher).  The head's scan goes on while the files the base passed over
    are searched for such words (SelectionHints.speculate): a function the change adds is seldom
    named in a file it leaves alone, where one it makes reach a watched call often has callers."""
    from armalias.prefilter import matcher

    def brought_in(words: frozenset[str]) -> bool:
        mentions = matcher(words)
        for rel in sorted(changed):
            try:
                if mentions(change.base.read(rel)):
                    return False
            except (OSError, Unreadable):
                pass
        return True

    return brought_in


def run_check(change: Change, options: CheckOptions = CheckOptions(), progress: Progress | None = None,
              root_label: str | None = None) -> CheckResult:
    """Scan both sides of the change and compare their findings.  A directory scanned before with
    the same options is not scanned again (armalias.state), and the head side is then derived from
    it when the change only moves code (armalias.incremental)."""
    started = time.perf_counter()
    # The model replays only what is reported (new and fixed findings), not every finding twice.
    scan_options = replace(trusted_options(options.scan), model=False)
    # what the base cleans to PoC in the files the change touches stays known to need it in the head:
    # deleting the only sync_cache_w() of a pen release must not delete the evidence with it
    evidence = cleaned_in(change.base, change.changed)
    # and what the base's versions of the functions the change alters made runnable holds code still
    before, after, removed = changed_functions(change.base, change.head, change.changed, change.renames)
    # and a function it deletes from its file leaves another definition of its name running (a
    # __weak generic one, when the change deletes ARM's override)
    replacements = replaced_functions(change.base, change.head, removed, options.vocab or load_vocabulary(),
                                      scan_options.jobs or available_cpus(), cache_dir_for(options.scan))
    head_options = replace(scan_options, mmu_off_evidence=evidence, base_functions=before, head_functions=after,
                           replacements=replacements)
    label = root_label if root_label is not None else change.head.label
    cache_dir = cache_dir_for(options.scan)
    cache = FindingsCache(cache_dir.parent / "check") if cache_dir is not None else None
    # the base's state is checked (the stats of its 61,000 files, for a whole tree) in a process of
    # its own while the head is derived from it or scanned with its prefilter rounds; when it does
    # not hold, the head is scanned again without it
    base_state, holds = speculative_state(change.base, scan_options) if options.vocab is None else (None, None)
    head, head_from = None, "scan"
    if base_state is not None:
        head = _head_from_state(change, base_state, head_options, label)
        if head is not None:
            head_from = "state"
        elif (hints := _selection_hints(change, base_state, holds)) is not None:
            try:
                head = scan_sources([(change.head, None)], head_options, progress, label, None, hints)
            except StaleState:
                pass
        if not holds():
            base_state, head, head_from = None, None, "scan"
    if head is None:
        # the files the base's state was checked against, as they are: the head need not stat them
        seen = dict(base_state.deps) if base_state is not None else {}
        head = scan_sources([(change.head, None)], head_options, progress, label, seen)
    head_findings, suppressed = _side_findings(head, options)
    if head_from == "scan" and timed_out(head.skipped):
        cache = None  # a file skipped for its time bound: this answer depends on the machine's speed
    # the tree's own findings, to remember for the check whose base it is next, are the head's but
    # those its base's evidence lent it (only added, never taken away); with PoC objects as evidence,
    # which reach writes anywhere, nothing is remembered
    head_cache = cache if not evidence else None
    own_findings = [f for f in head_findings if f.fingerprint not in head.lent]
    head_id = tree_identity(change.head) if cache is not None else None
    if head_cache is not None and head_id is not None:  # the index checked now is the HEAD of the next check
        head_cache.put(head_cache.key(head_id, options.scan, options.vocab), own_findings, suppressed)
    base: ScanResult | None = None
    if not any(rel.endswith(SOURCE_SUFFIXES) for rel in change.changed):
        base_findings, base_from = head_findings, "head"
    elif base_state is not None:
        kept, dropped, _ = apply_suppressions(base_state.finding_objects(False), base_state.suppression_facts())
        base_findings, base_from = kept, "state"
    else:
        base_id = tree_identity(change.base) if cache is not None else None
        key = cache.key(base_id, options.scan, options.vocab) if cache is not None and base_id is not None else None
        hit = cache.get(key) if cache is not None and key is not None else None
        if hit is not None:
            base_findings, base_from = hit[0], "cache"
        else:
            # remembered for the next check of this directory (when nothing else is asked of the scan)
            base_options = replace(scan_options, reuse=options.vocab is None)
            base = scan_sources([(change.base, None)], base_options, progress, label)
            base_findings, base_suppressed = _side_findings(base, options)
            base_from = "scan"
            if cache is not None and key is not None and not timed_out(base.skipped):
                cache.put(key, base_findings, base_suppressed)
    if options.codes is not None:
        head_findings = [f for f in head_findings if f.rule in options.codes]
        base_findings = [f for f in base_findings if f.rule in options.codes]
    new, fixed, unchanged = compare(base_findings, head_findings, change.renames)
    baselined = sum(1 for f in new if f.fingerprint in options.baseline)
    new = [f for f in new if f.fingerprint not in options.baseline]
    # a file one side could not analyse says nothing of its findings there: a skipped file is no fix
    head_skipped = {sk.file for sk in head.skipped}
    skipped_base = list(base.skipped) if base is not None else (base_state.skipped_objects() if base_state else [])
    base_skipped = {sk.file for sk in skipped_base}
    unknown = [f for f in fixed if f.file in head_skipped] + [f for f in new if f.file in base_skipped]
    fixed = [f for f in fixed if f.file not in head_skipped]
    new = [f for f in new if f.file not in base_skipped]
    pairs = kept_in_changed(base_findings, head_findings, change)
    if options.scan.model and (new or fixed or pairs):
        # Both sides read their cache implementations from the same place (the repository's work
        # tree, the directory, or the reference table): decode them once.
        from armalias.model.builds import Builds, lister
        from armalias.model.validate import implementations_for, validate

        impls = implementations_for(change.head, cache_dir)
        config = dict(options.scan.config_options) or None
        head_builds = Builds(change.head.read, lister(change.head), config)
        base_builds = Builds(change.base.read, lister(change.base), config)
        new = validate(new, impls, head_builds)
        fixed = validate(fixed, impls, base_builds)
        # a finding the change keeps, in a file it changes, that now holds on implementations where
        # it did not (the invalidate moved to another buffer): new, as far as those are concerned (a
        # note stays a residual hazard wherever it holds), unless a new finding of that function
        # says what the change did (a clean deleted: AA001, and AA002's stale line with it)
        explained = {(f.file, f.function) for f in new}
        for b, h in pairs:
            (b,), (h,) = validate([b], impls, base_builds), validate([h], impls, head_builds)
            before, after = set(b.model.confirming()), set(h.model.confirming())
            if (after - before and h.severity != "note" and h.fingerprint not in options.baseline
                    and (h.file, h.function) not in explained):
                unchanged -= 1
                new.append(replace(h, message=h.message + f" (this change makes it hold on {', '.join(sorted(after - before))},"
                                   " where it did not before)"))
        new.sort(key=Finding.sort_key)
    # a call aimed elsewhere (checks.change.check_reaimed) explains a change only where nothing else
    # new in that function does
    said = {(f.file, f.function) for f in new if f.key_exprs[:1] != ("reaimed",)}
    new = [f for f in new if f.key_exprs[:1] != ("reaimed",) or (f.file, f.function) not in said]
    return CheckResult(change, base, head, new, fixed, unchanged, suppressed, baselined, base_from,
                       time.perf_counter() - started, head_from, sorted(unknown, key=Finding.sort_key), skipped_base)
