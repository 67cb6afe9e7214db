"""What a scan of a directory found, remembered with every file and directory it depended on.

A later scan of the same directory with the same options and the same armalias code and rules stats
those files and directories instead of reading them: when every size and modification time is what
it was, the remembered result is the result (the way make and git's index decide a file did not
change).  A directory's modification time covers files added to it, removed from it or renamed in
it.  A file modified within a few seconds of the scan that read it is never trusted (the "racy"
case: its content may have changed within the clock's granularity), so no state is written for it.

`check` starts from the same state: the base side of a patch checked against a directory is the
directory as it is, and the head side is the base with the patched files changed (armalias.incremental).

One JSON file per (directory, options), written atomically; a file that does not load or does not
match its key is ignored and rewritten.  Nothing here imports the parser, networkx or the model, so a
run that is answered from the state starts quickly.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from armalias.cache import MarshalEntries
from armalias.facts import FileFacts, FunctionDef, Skipped
from armalias.findings import Finding, MaintenanceEvidence, ModelResult, WriteEvidence

RACY_NS = 3_000_000_000  # a file modified this close to the scan's start is not trusted
FORMAT = 1


@lru_cache(maxsize=1)
def analysis_digest() -> str:
    """armalias's own code and rules/: everything besides the tree that decides a result."""
    from armalias.rules import rules_digest

    h = hashlib.sha256(f"{FORMAT}\0{rules_digest()}\0".encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def stamp_of(st: os.stat_result) -> list[int]:
    """What says a file is the one read: its size, mtime, ctime and inode.  A same-size edit whose
    mtime is put back (touch -r) still moves the ctime; a file replaced by a rename has another inode."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return stamp_of(st)


def finding_from_dict(d: dict) -> Finding:
    model = d.get("model") or {}
    return Finding(**{
        **d,
        "write": WriteEvidence(**d["write"]) if d.get("write") else None,
        "maintenance": tuple(MaintenanceEvidence(**m) for m in d.get("maintenance", ())),
        "chain": tuple(d.get("chain", ())),
        "model": ModelResult(model.get("verdict", "not-run"), tuple(tuple(x) for x in model.get("implementations", ())),
                             tuple(model.get("witness", ())), tuple(model.get("configs", ())),
                             tuple(model.get("built_under", ())), tuple(model.get("defconfigs", ()))),
        "key_exprs": tuple(d.get("key_exprs", ())),
    })


@dataclass
class ScanState:
    """A scan's result as plain data, with what it depended on."""

    root: str  # the directory, resolved; or "git:" and the digest of a revision's blob ids
    started_ns: int  # wall clock when the scan began
    deps: dict[str, list[int]] = field(default_factory=dict)  # rel file -> stamps (state.stamp_of)
    dirs: dict[str, int] = field(default_factory=dict)  # rel directory -> mtime_ns
    selected: list[str] = field(default_factory=list)  # files parsed
    words: list[str] = field(default_factory=list)  # the words that selected them (last prefilter round)
    restricted: dict[str, list[str]] = field(default_factory=dict)  # word -> the architectures it selects files of
    all_words: list[str] = field(default_factory=list)  # every word found (selects arch/arm's headers)
    # names whose calls can change the result (armalias.incremental); empty: not known
    relevant: list[str] = field(default_factory=list)
    whole_tree: bool = False
    files: int = 0
    parsed: int = 0
    functions: int = 0
    error_files: int = 0
    error_functions: int = 0
    skipped: list[list[str]] = field(default_factory=list)  # [file, reason]
    callsites: list[list] = field(default_factory=list)  # CallSite fields in order
    findings: list[dict] = field(default_factory=list)  # before the model
    modelled: list[dict] | None = None  # after the model, when it ran
    notes: dict[str, list[str]] = field(default_factory=dict)  # file -> suppression notes
    spans: dict[str, list[list]] = field(default_factory=dict)  # file -> [[function, line, end_line], ...]
    # whole tree: each prefilter round, [its words, {word: architectures}, the files it chose, [[file,
    # reason] of those no C text]], and what listing the tree skipped (armalias.selection.SelectionHints)
    rounds: list[list] = field(default_factory=list)
    walk_skipped: list[list[str]] = field(default_factory=list)
    # whole tree: the files listing the tree gave, in order (the strings of `deps`, which the state's
    # encoding holds once): a change's head takes it instead of listing the tree again
    listing: list[str] = field(default_factory=list)

    # -- validity --------------------------------------------------------------------------------
    def unchanged(self, seen: dict[str, list[int]] | None = None) -> bool:
        """Every file and directory the scan depended on is as it was (a git revision's state has
        none to stat: its key is the digest of the revision's blob ids).  `seen`, when given and the
        answer is yes, receives the stamps (state.stamp_of) of every file (a scan of the same directory in
        the same run, check's head side, need not stat them again)."""
        if not self.dirs and not self.deps:
            return True
        if os.stat not in os.supports_dir_fd:
            holds = self._stamps_hold(None)
        else:
            try:  # stat'ed relative to the root's descriptor: each path's walk starts there, not at the
                # root's own path again for each of the 61,000 files of a whole-tree state
                fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                return False
            try:
                holds = self._stamps_hold(fd)
            finally:
                os.close(fd)
        if holds and seen is not None:
            seen.update(self.deps)
        return holds

    def unchanged_later(self) -> Callable[[], bool]:
        """`unchanged`, answered later: what returns the answer, found meanwhile in a process forked
        for it, so the caller can go on with the state on the CPU it leaves.  Where no process can be
        forked (no os.fork, or threads running, which a fork would leave locked), found now.  A
        process that fails answers no."""
        import threading

        if not hasattr(os, "fork") or threading.active_count() > 1 or not (self.dirs or self.deps):
            now = self.unchanged()
            return lambda: now
        try:
            pid = os.fork()
        except OSError:
            now = self.unchanged()
            return lambda: now
        if pid == 0:  # the child: stats, and out without running anything of the parent's
            code = 1
            try:
                code = 0 if self.unchanged() else 1
            finally:
                os._exit(code)
        found: list[bool] = []

        def answer() -> bool:
            if not found:
                _, status = os.waitpid(pid, 0)
                found.append(os.waitstatus_to_exitcode(status) == 0)
            return found[0]

        return answer

    def _stamps_hold(self, fd: int | None) -> bool:
        """Every stamp as it is: the paths relative to the root's descriptor `fd`, or joined to it."""
        if fd is None:
            root = self.root

            def stat(rel: str, dir_fd: None = None):
                return os.stat(os.path.join(root, rel))
        else:
            stat = os.stat
        for rel, mtime in self.dirs.items():  # -1: a directory looked for that was not there
            try:
                if stat(rel or ".", dir_fd=fd).st_mtime_ns != mtime:
                    return False
            except OSError:
                if mtime != -1:
                    return False
        for rel, stamped in self.deps.items():
            try:
                st = stat(rel, dir_fd=fd)
            except OSError:
                return False
            if stamp_of(st) != list(stamped):
                return False
        return True

    def racy(self) -> bool:
        limit = self.started_ns - RACY_NS
        return any(s[1] >= limit for s in self.deps.values()) or any(m >= limit for m in self.dirs.values())

    # -- what reporters and the check read --------------------------------------------------------
    def finding_objects(self, modelled: bool) -> list[Finding]:
        rows = self.modelled if modelled and self.modelled is not None else self.findings
        return [finding_from_dict(d) for d in rows]

    def suppression_facts(self) -> list[FileFacts]:
        """Just enough of the facts for armalias.suppress: the notes and the function spans."""
        out = []
        for rel in sorted(set(self.notes) | set(self.spans)):
            fns = tuple(FunctionDef(name, rel, line, end) for name, line, end in self.spans.get(rel, ()))
            out.append(FileFacts(rel, "", functions=fns, notes=tuple(self.notes.get(rel, ()))))
        return out

    def skipped_objects(self) -> list[Skipped]:
        return [Skipped(f, r) for f, r in self.skipped]


def state_key(root: str, whole_tree: bool, prefilter: bool) -> str:
    h = hashlib.sha256(f"{analysis_digest()}\0{root}\0{whole_tree}\0{prefilter}".encode())
    return h.hexdigest()[:32]


def state_dir(cache_dir: Path) -> Path:
    return cache_dir.parent / "state"


def in_tree(directory: Path, guard: Path) -> bool:
    """Whether a cache directory lies inside the scanned tree `guard` (resolved), or that cannot be
    told: armalias writes nothing there, and reads no state from there (what lies there is the
    tree's, not armalias's)."""
    try:
        return directory.resolve().is_relative_to(guard)
    except OSError:
        return True


def load_state(cache_dir: Path, root: str, whole_tree: bool, prefilter: bool, guard: Path | None = None
               ) -> ScanState | None:
    """The remembered state of this tree (a resolved directory, or "git:" and a revision's digest),
    if there is one for these options and it loads; never one inside the tree (`guard`)."""
    def decode(raw: dict) -> ScanState:
        state = ScanState(**raw["state"])
        if state.root != root:
            raise ValueError("the state of another tree")
        return state

    if guard is not None and in_tree(state_dir(cache_dir), guard):
        return None
    return MarshalEntries(state_dir(cache_dir)).read((state_key(root, whole_tree, prefilter),), decode)


def save_state(cache_dir: Path, state: ScanState, prefilter: bool, guard: Path) -> bool:
    """Write the state unless a file it depends on is too new to trust, or the cache directory is
    inside the tree (`guard`).  True when written."""
    directory = state_dir(cache_dir)
    if in_tree(directory, guard):
        return False
    if state.racy():
        return False
    key = state_key(state.root, state.whole_tree, prefilter)
    return MarshalEntries(directory).write((key,), {"state": vars(state)})  # plain data already


def finding_dicts(findings: list[Finding]) -> list[dict]:
    return [asdict(f) for f in findings]
