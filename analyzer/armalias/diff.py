"""Pre-submit checking: what a change does to the findings.

A change is two trees read through TreeSource: a git range (two revisions), the index or the working
tree against HEAD (an OverlaySource over HEAD), or a patch — a unified diff, a `git format-patch`
file or an mbox of a series — applied in memory over a tree.  Nothing here writes into the user's
tree, index or refs: git is only asked read-only plumbing questions (`rev-parse`, `ls-tree`,
`diff-tree`, `diff-index`, `ls-files`, `cat-file`), with optional locks off so not even the index's
stat cache is refreshed.

Both sides are scanned (unchanged files come from the content cache: their git blob ids are their
digests) and compared by fingerprint — rule, file, function, normalized expressions, never a line
number — as multisets.  A renamed file's findings are compared under its new name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import quopri
import re
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from armalias.cache import JsonEntries
from armalias.check.evidence import changed_functions, cleaned_in
from armalias.check.git import run_git
from armalias.errors import InputError
from armalias.findings import Finding, severity_rank
from armalias.rules import Vocabulary
from armalias.scan import (Progress, ScanOptions, ScanResult, StaleState, cache_dir_for, find_alias_bugs,
                           scan_sources, speculative_state, timed_out, trusted_options)
from armalias.source.tree import (SOURCE_SUFFIXES, DirectorySource, GitSource, OverlaySource, TreeSource, blob_id,
                                  tree_identity)
from armalias.source.files import read_input, read_regular
from armalias.source.text import MAX_FILE_BYTES, Unreadable
from armalias.state import analysis_digest, finding_from_dict
from armalias.suppress import apply_suppressions

# A patch, a format-patch file or an mbox larger than this is refused (a series of thousands of patches fits).
MAX_PATCH_BYTES = 256 * 1024 * 1024

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree
NULL_SHA = "0" * 40
SETTINGS_NAME = ".armalias.toml"  # armalias.config.CONFIG_NAME: untracked, it still counts


class PatchError(InputError):
    """A patch that does not apply: names the file and the hunk."""


# -- reading patches ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    header: str  # the @@ line as written
    lines: tuple[bytes, ...]  # each begins with b" ", b"-" or b"+"
    old_no_eol: bool = False  # "\ No newline at end of file" after the last old-side line
    new_no_eol: bool = False


@dataclass(frozen=True)
class FilePatch:
    old: str | None  # the path before (None: the patch creates the file)
    new: str | None  # the path after (None: the patch deletes it)
    hunks: tuple[Hunk, ...] = ()
    binary: bool = False
    copy: bool = False  # "copy from/to": the old file stays
    subject: str = ""  # the mail subject (or file name) of the patch it came from

    @property
    def path(self) -> str:
        return self.new or self.old or ""

    @property
    def renamed(self) -> bool:
        return self.old is not None and self.new is not None and self.old != self.new and not self.copy


_FROM_LINE = re.compile(rb"^From \S+ +\w{3} \w{3} +\d+ \d+:\d+:\d+ \d{4}")
_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GIT_HEADER = re.compile(rb"^diff --git (\"(?:[^\"\\]|\\.)*\"|\S+) (\"(?:[^\"\\]|\\.)*\"|\S+)$")


def _is_crlf(lines: list[bytes]) -> bool:
    with_cr = sum(1 for line in lines if line.endswith(b"\r"))
    return with_cr > 0 and with_cr * 2 >= sum(1 for line in lines if line)


def _unquote(raw: bytes) -> bytes:
    """A path as git writes it: C-quoted ("a/f\\303\\251.c") when it has unusual bytes."""
    if not (raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2):
        return raw
    out = bytearray()
    body = raw[1:-1]
    i = 0
    simple = {ord("n"): 10, ord("t"): 9, ord('"'): 34, ord("\\"): 92, ord("a"): 7, ord("b"): 8, ord("f"): 12,
              ord("r"): 13, ord("v"): 11}
    while i < len(body):
        c = body[i]
        if c == 92 and i + 1 < len(body):
            n = body[i + 1]
            if re.fullmatch(rb"[0-7]{3}", body[i + 1:i + 4]):
                out.append(int(body[i + 1:i + 4], 8))
                i += 4
                continue
            out.append(simple.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _path(raw: bytes, strip: int) -> str | None:
    """The tree-relative path of a ---/+++ operand: quotes, timestamp and `strip` components removed."""
    raw = raw.rstrip()
    if not raw.startswith(b'"'):
        raw = raw.split(b"\t", 1)[0].rstrip()
    raw = _unquote(raw)
    if raw == b"/dev/null":
        return None
    parts = [p for p in raw.decode("utf-8", "surrogateescape").split("/") if p]
    if len(parts) <= strip:
        raise InputError(f"cannot strip {strip} leading components from the patch path {raw.decode(errors='replace')!r}")
    return "/".join(parts[strip:])


def _messages(lines: list[bytes]) -> list[tuple[str, list[bytes]]]:
    """(subject, body lines) of each message of an mbox; one untitled message for a bare diff."""
    starts = [i for i, line in enumerate(lines) if _FROM_LINE.match(line)]
    if not starts:
        return [("", lines)]
    out = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        msg = lines[start + 1:end]
        headers: dict[str, str] = {}
        i = 0
        last = ""
        while i < len(msg) and msg[i].strip():
            line = msg[i].decode("utf-8", "replace")
            if line[:1] in " \t" and last:
                headers[last] += " " + line.strip()
            elif ":" in line:
                name, _, value = line.partition(":")
                last = name.strip().lower()
                headers[last] = value.strip()
            i += 1
        body = msg[i + 1:] if i < len(msg) else []
        encoding = headers.get("content-transfer-encoding", "").lower()
        if encoding in ("quoted-printable", "base64"):
            raw = b"\n".join(body)
            try:
                decoded = quopri.decodestring(raw) if encoding == "quoted-printable" else base64.b64decode(raw)
            except (ValueError, binascii.Error) as exc:
                raise InputError(f"patch {headers.get('subject', '')!r}: cannot decode its {encoding} body: {exc}") from None
            body = decoded.split(b"\n")
            if _is_crlf(body):
                body = [line[:-1] if line.endswith(b"\r") else line for line in body]
        # mboxrd quoting: ">From " lines in a body stand for "From "
        body = [line[1:] if re.match(rb"^>+From ", line) else line for line in body]
        out.append((headers.get("subject", f"message {k + 1}"), body))
    return out


def parse_patch(data: bytes, name: str = "patch", strip: int = 1) -> list[FilePatch]:
    """Every file change in a unified diff, a format-patch file or an mbox series, in order."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if _is_crlf(lines):  # a patch that went through a mailer or an editor with CRLF line ends
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    out: list[FilePatch] = []
    for subject, body in _messages(lines):
        out.extend(_parse_body(body, subject or name, strip))
    return out


def _parse_body(lines: list[bytes], subject: str, strip: int) -> list[FilePatch]:
    out: list[FilePatch] = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        if line.startswith(b"diff --git "):
            i = _parse_git_section(lines, i, subject, strip, out)
        elif line.startswith(b"--- ") and i + 2 < n and lines[i + 1].startswith(b"+++ ") and _HUNK.match(lines[i + 2]):
            old, new = _path(lines[i][4:], strip), _path(lines[i + 1][4:], strip)
            hunks, i = _parse_hunks(lines, i + 2, subject, new or old or "")
            out.append(FilePatch(old, new, hunks, subject=subject))
        else:
            i += 1
    return out


def _parse_git_section(lines: list[bytes], i: int, subject: str, strip: int, out: list[FilePatch]) -> int:
    header = lines[i]
    m = _GIT_HEADER.match(header)
    a = b = None
    if m:
        a, b = _path(m.group(1), strip), _path(m.group(2), strip)
    elif header[11:].count(b" ") % 2 == 1:  # unquoted paths with spaces: "a/x y b/x y"
        rest = header[11:]
        half = len(rest) // 2
        if rest[half:half + 1] == b" " and rest[:half][2:] == rest[half + 1:][2:]:
            a, b = _path(rest[:half], strip), _path(rest[half + 1:], strip)
    old, new = a, b
    created = deleted = binary = copy = False
    i += 1
    n = len(lines)
    while i < n and not lines[i].startswith((b"diff --git ", b"@@ ")):
        line = lines[i]
        if line.startswith(b"new file mode"):
            created = True
        elif line.startswith(b"deleted file mode"):
            deleted = True
        elif line.startswith((b"rename from ", b"copy from ")):
            old = _path(b"x/" + line.split(b" ", 2)[2], 1)
            copy = line.startswith(b"copy")
        elif line.startswith((b"rename to ", b"copy to ")):
            new = _path(b"x/" + line.split(b" ", 2)[2], 1)
        elif line.startswith(b"Binary files ") or line == b"GIT binary patch":
            binary = True
        elif line.startswith(b"--- ") and i + 1 < n and lines[i + 1].startswith(b"+++ "):
            o, nw = _path(line[4:], strip), _path(lines[i + 1][4:], strip)
            old = o if o is not None else old
            new = nw if nw is not None else new
            i += 2
            break
        elif not line.startswith((b"old mode", b"new mode", b"index ", b"similarity index", b"dissimilarity index",
                                  b"literal ", b"delta ")) and not binary and line.strip():
            break  # the end of this section (the signature, the next message's text)
        i += 1
    if created:
        old = None
    if deleted:
        new = None
    if old is None and new is None:
        raise InputError(f"patch {subject!r}: cannot tell which file `{header.decode(errors='replace')}` changes")
    hunks: tuple[Hunk, ...] = ()
    if i < n and lines[i].startswith(b"@@ "):
        hunks, i = _parse_hunks(lines, i, subject, new or old or "")
    if binary:  # skip the base85 payload
        while i < n and not lines[i].startswith(b"diff --git ") and lines[i] != b"-- ":
            i += 1
    out.append(FilePatch(old, new, hunks, binary=binary, copy=copy, subject=subject))
    return i


def _parse_hunks(lines: list[bytes], i: int, subject: str, path: str) -> tuple[tuple[Hunk, ...], int]:
    hunks = []
    n = len(lines)
    while i < n:
        m = _HUNK.match(lines[i])
        if not m:
            if lines[i].startswith(b"@@"):  # a hunk whose header cannot be read: never silently no change
                raise InputError(f"patch {subject!r}: {path}: malformed hunk header "
                                 f"`{lines[i][:60].decode(errors='replace')}` (line {i + 1} of the message)")
            break
        header = lines[i].decode("utf-8", "replace")
        old_start, new_start = int(m.group(1)), int(m.group(3))
        old_len = int(m.group(2)) if m.group(2) is not None else 1
        new_len = int(m.group(4)) if m.group(4) is not None else 1
        body: list[bytes] = []
        old_left, new_left = old_len, new_len
        old_no_eol = new_no_eol = False
        i += 1
        while i < n and (old_left > 0 or new_left > 0 or lines[i].startswith(b"\\")):
            line = lines[i]
            tag = line[:1]
            if tag == b"\\":
                prev = body[-1][:1] if body else b" "
                old_no_eol |= prev in (b" ", b"-")
                new_no_eol |= prev in (b" ", b"+")
            elif tag in (b" ", b"") and old_left > 0 and new_left > 0:
                body.append(b" " + line[1:])  # an empty line: a context line whose space a mailer ate
                old_left -= 1
                new_left -= 1
            elif tag == b"-" and old_left > 0:
                body.append(line)
                old_left -= 1
            elif tag == b"+" and new_left > 0:
                body.append(line)
                new_left -= 1
            else:
                raise InputError(f"patch {subject!r}: {path}: hunk `{header}` is cut short or malformed "
                                 f"(line {i + 1} of the message: {line[:60].decode(errors='replace')!r})")
            i += 1
        if old_left or new_left:
            raise InputError(f"patch {subject!r}: {path}: hunk `{header}` is cut short")
        hunks.append(Hunk(old_start, old_len, new_start, new_len, header, tuple(body), old_no_eol, new_no_eol))
    return tuple(hunks), i


# -- applying patches in memory ------------------------------------------------------------------
def _same(a: bytes, b: bytes) -> bool:
    return a == b or a.rstrip(b"\r") == b.rstrip(b"\r")


def apply_hunks(data: bytes, hunks: tuple[Hunk, ...], path: str, subject: str = "") -> bytes:
    """The file's bytes with the hunks applied, each found at its line or the nearest offset (like
    `patch` without fuzz).  CRLF files keep CRLF on the lines the patch adds."""
    final_nl = data.endswith(b"\n") or not data
    lines = (data[:-1] if data.endswith(b"\n") else data).split(b"\n") if data else []
    crlf = _is_crlf(lines)
    out: list[bytes] = []
    pos = 0
    offset = 0
    for h in hunks:
        old = [line[1:] for line in h.lines if line[:1] in (b" ", b"-")]
        want = (h.old_start - 1 if h.old_len else h.old_start) + offset
        at = _find(lines, old, want, pos)
        if at is None:
            where = f" (patch {subject!r})" if subject else ""
            expected = "\n".join("    " + line.decode("utf-8", "replace") for line in old[:8])
            raise PatchError(f"patch does not apply{where}: {path}: hunk `{h.header}` does not match the tree"
                             + (f"; expected near line {max(want, 0) + 1}:\n{expected}" if old else ""))
        out.extend(lines[pos:at])
        k = at
        for line in h.lines:
            tag, text = line[:1], line[1:]
            if tag == b" ":
                out.append(lines[k])
                k += 1
            elif tag == b"-":
                k += 1
            else:
                out.append(text + b"\r" if crlf and not text.endswith(b"\r") else text)
        pos = k
        offset = at - (h.old_start - 1 if h.old_len else h.old_start)
        if pos == len(lines):
            if h.new_no_eol:
                final_nl = False
            elif h.old_no_eol:
                final_nl = True
    out.extend(lines[pos:])
    if not out:
        return b""
    return b"\n".join(out) + (b"\n" if final_nl else b"")


def _find(lines: list[bytes], old: list[bytes], want: int, lowest: int) -> int | None:
    """Where `old` occurs in lines at or after `lowest`, nearest to `want`."""
    top = len(lines) - len(old)
    if top < lowest:
        return None
    want = min(max(want, lowest), top)
    for delta in range(0, max(want - lowest, top - want) + 1):
        for at in ((want - delta, want + delta) if delta else (want,)):
            if lowest <= at <= top and all(_same(lines[at + j], old[j]) for j in range(len(old))):
                return at
    return None


@dataclass
class Applied:
    changes: dict[str, bytes | None] = field(default_factory=dict)  # path -> new bytes, None: deleted
    renames: dict[str, str] = field(default_factory=dict)  # old path -> new path
    notes: list[str] = field(default_factory=list)
    patches: int = 0  # files changed


def apply_patches(source: TreeSource, patches: list[FilePatch], applied: Applied | None = None) -> Applied:
    """The patches applied in order over the source, in memory (the source is only read)."""
    result = applied if applied is not None else Applied()
    state = result.changes

    def exists(rel: str) -> bool:
        return state[rel] is not None if rel in state else source.is_file(rel)

    def read(rel: str) -> bytes:
        if rel in state:
            data = state[rel]
            assert data is not None
            return data
        try:
            return source.read(rel)
        except Unreadable as exc:
            raise PatchError(f"patch does not apply: {rel}: {exc}") from None

    for fp in patches:
        where = f" (patch {fp.subject!r})" if fp.subject else ""
        if fp.binary and fp.new is not None:
            result.notes.append(f"{fp.path}: binary change skipped{where}")
            continue
        if fp.old is not None and not exists(fp.old):
            raise PatchError(f"patch does not apply{where}: {fp.old}: no such file in the tree")
        if fp.new is not None and fp.new != fp.old and exists(fp.new):
            raise PatchError(f"patch does not apply{where}: {fp.new}: already exists in the tree")
        if fp.new is None and not fp.hunks:  # a deletion without its text (binary, or a header-only diff)
            state[fp.old] = None  # type: ignore[index]
            result.patches += 1
            continue
        before = read(fp.old) if fp.old is not None else b""
        after = apply_hunks(before, fp.hunks, fp.path, fp.subject) if fp.hunks else before
        if fp.new is None:
            if after and fp.hunks:
                raise PatchError(f"patch does not apply{where}: {fp.old}: the deletion does not remove the whole file")
            state[fp.old] = None  # type: ignore[index]
        else:
            if fp.renamed:
                state[fp.old] = None  # type: ignore[index]
                first = next((o for o, n in result.renames.items() if n == fp.old), fp.old)
                result.renames.pop(first, None)
                result.renames[first] = fp.new  # type: ignore[index]
            state[fp.new] = after
        result.patches += 1
    return result


# -- git, read-only -------------------------------------------------------------------------------
def _git(repo: Path, *args: str) -> bytes:
    # GIT_INDEX_FILE is kept (check.git): in a `git commit -a` hook it names the index being committed.
    return run_git(repo, *args).stdout


def repo_toplevel(path: Path) -> Path | None:
    """The work tree top of the git repository holding path, or None (not in a repository)."""
    try:
        res = run_git(path, "rev-parse", "--show-toplevel", check=False)
    except InputError:
        return None
    if res.returncode != 0 or not res.stdout.strip():
        return None
    return Path(res.stdout.decode("utf-8", "surrogateescape").strip())


def resolve_commit(repo: Path, rev: str) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}").decode().strip()
    except InputError:
        raise InputError(f"{repo}: unknown revision {rev!r}") from None


def _head_or_empty(repo: Path) -> str:
    """HEAD's commit, or the empty tree in a repository with no commit yet."""
    res = run_git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return res.stdout.decode().strip() if res.returncode == 0 else EMPTY_TREE


@dataclass(frozen=True)
class RawEntry:
    """One line of `git diff-* --raw -z`."""

    old_mode: str
    new_mode: str
    old_sha: str
    new_sha: str
    status: str  # A C D M R T U (the letter)
    old: str
    new: str


def _raw_entries(out: bytes) -> list[RawEntry]:
    fields = out.split(b"\0")
    entries = []
    i = 0
    while i < len(fields) and fields[i]:
        meta = fields[i].decode()
        old_mode, new_mode, old_sha, new_sha, status = meta.lstrip(":").split()
        letter = status[0]
        paths = fields[i + 1:i + (3 if letter in "RC" else 2)]
        i += 3 if letter in "RC" else 2
        names = [p.decode("utf-8", "surrogateescape") for p in paths]
        entries.append(RawEntry(old_mode, new_mode, old_sha, new_sha, letter, names[0], names[-1]))
    return entries


def _read_blobs(repo: Path, shas: list[str]) -> dict[str, bytes]:
    if not shas:
        return {}
    res = run_git(repo, "cat-file", "--batch", stdin="".join(s + "\n" for s in shas).encode(), check=False)
    out: dict[str, bytes] = {}
    data = res.stdout
    pos = 0
    for sha in shas:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] != b"blob":
            raise InputError(f"{repo}: cannot read blob {sha}")
        size = int(header[2])
        out[sha] = data[pos:pos + size]
        pos += size + 1
    return out


_SKIP_MODES = ("120000", "160000")  # symlinks and submodules are not followed


@dataclass
class Change:
    """Two sides to compare and what differs between them."""

    base: TreeSource
    head: TreeSource
    base_label: str  # what was compared: a commit id, "index", "working tree", "PATCH applied to ..."
    head_label: str
    changed: list[str] = field(default_factory=list)  # paths that differ (a renamed file under its new name)
    renames: dict[str, str] = field(default_factory=dict)  # old path -> new path
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        for side in (self.base, self.head):
            while isinstance(side, OverlaySource):
                side = side.base
            if isinstance(side, GitSource):
                side.close()


def _strip_prefix(entries: list[RawEntry], prefix: str) -> list[RawEntry]:
    if not prefix:
        return entries
    p = prefix + "/"
    out = []
    for e in entries:
        old = e.old[len(p):] if e.old.startswith(p) else None
        new = e.new[len(p):] if e.new.startswith(p) else None
        if old is None and new is None:
            continue
        if old is None:  # renamed in from outside the tree: a new file here
            out.append(replace(e, status="A", old=new or "", new=new or ""))
        elif new is None:
            out.append(replace(e, status="D", old=old, new=old))
        else:
            out.append(replace(e, old=old, new=new))
    return out


def _treeish(commit: str, prefix: str) -> str:
    return f"{commit}:{prefix}" if prefix else commit


def _pathspec(prefix: str) -> list[str]:
    return ["--", prefix] if prefix else []


def git_range(repo: Path, prefix: str, spec: str) -> Change:
    """BASE..HEAD (BASE...HEAD: from their merge base; BASE alone: BASE..HEAD)."""
    if "..." in spec:
        a, b = spec.split("...", 1)
        b = b or "HEAD"
        a = _git(repo, "merge-base", "--", resolve_commit(repo, a or "HEAD"), resolve_commit(repo, b)).decode().strip()
    elif ".." in spec:
        a, b = spec.split("..", 1)
        a, b = a or "HEAD", b or "HEAD"
    else:
        a, b = spec, "HEAD"
    base_c, head_c = resolve_commit(repo, a), resolve_commit(repo, b)
    raw = _git(repo, "diff-tree", "-r", "-z", "-M", "--raw", "--no-commit-id", base_c, head_c, *_pathspec(prefix))
    entries = _strip_prefix(_raw_entries(raw), prefix)
    base = GitSource(repo, _treeish(base_c, prefix), str(repo))
    head = GitSource(repo, _treeish(head_c, prefix), str(repo))
    change = Change(base, head, base_c, head_c)
    for e in entries:
        if e.status == "R":
            change.renames[e.old] = e.new
        if e.status != "D":
            change.changed.append(e.new)
        else:
            change.changed.append(e.old)
    change.changed.sort()
    return change


def _overlay_from_index_diff(repo: Path, prefix: str, cached: bool) -> tuple[GitSource, dict[str, bytes | None],
                                                                             dict[str, str], str]:
    """HEAD, and the changes the index (cached) or the working tree makes to it."""
    head_c = _head_or_empty(repo)
    base = GitSource(repo, _treeish(head_c, prefix) if head_c != EMPTY_TREE else EMPTY_TREE, str(repo))
    args = ["diff-index", "-r", "-z", "-M", "--raw"] + (["--cached"] if cached else []) + [head_c] + _pathspec(prefix)
    entries = _strip_prefix(_raw_entries(_git(repo, *args)), prefix)
    unmerged = sorted({e.new for e in entries if e.status == "U"})
    if unmerged:
        raise InputError(f"{repo}: the index has unmerged paths: {', '.join(unmerged[:5])}")
    changes: dict[str, bytes | None] = {}
    renames: dict[str, str] = {}
    wanted: dict[str, str] = {}  # path -> blob to read from git
    root = repo / prefix if prefix else repo
    for e in entries:
        if e.new_mode in _SKIP_MODES or e.old_mode in _SKIP_MODES:
            continue
        if e.status == "R":
            changes[e.old] = None
            renames[e.old] = e.new
        if e.status == "D":
            changes[e.old] = None
            continue
        if e.new_sha != NULL_SHA:
            wanted[e.new] = e.new_sha
            continue
        try:  # the working tree's bytes (dirty relative to the index)
            data = read_regular(root / e.new, MAX_FILE_BYTES, repo)[0]
        except FileNotFoundError:
            changes[e.new] = None
            continue
        except OSError as exc:
            raise InputError(f"{root / e.new}: cannot read: {exc.strerror}") from None
        if e.status != "A" and blob_id(data) == e.old_sha:
            continue  # only the stat information was stale
        changes[e.new] = data
    blobs = _read_blobs(repo, sorted(set(wanted.values())))
    for rel, sha in wanted.items():
        changes[rel] = blobs[sha]
    return base, changes, renames, head_c


def staged(repo: Path, prefix: str) -> Change:
    """The index against HEAD: what `git commit` would record."""
    base, changes, renames, head_c = _overlay_from_index_diff(repo, prefix, cached=True)
    return Change(base, OverlaySource(base, changes, str(repo)), head_c, "index", sorted(changes), renames)


def working_tree(repo: Path, prefix: str) -> Change:
    """The working tree (tracked changes and untracked, not ignored, source files) against HEAD."""
    base, changes, renames, head_c = _overlay_from_index_diff(repo, prefix, cached=False)
    root = repo / prefix if prefix else repo
    untracked = _git(repo, "ls-files", "-z", "--others", "--exclude-standard", *_pathspec(prefix)).split(b"\0")
    p = prefix + "/" if prefix else ""
    for raw in untracked:
        rel = raw.decode("utf-8", "surrogateescape")
        if not rel or not (rel.endswith(SOURCE_SUFFIXES) or rel.endswith(SETTINGS_NAME)) or not rel.startswith(p):
            continue
        rel = rel[len(p):]
        try:  # an untracked link leading out of the repository, a FIFO, a device: not read
            changes[rel] = read_regular(root / rel, MAX_FILE_BYTES, repo)[0]
        except OSError:
            continue
    _pair_exact_renames(base, changes, renames)
    return Change(base, OverlaySource(base, changes, str(repo)), head_c, "working tree", sorted(changes), renames)


def _pair_exact_renames(base: TreeSource, changes: dict[str, bytes | None], renames: dict[str, str]) -> None:
    """A file deleted and a new file with the same bytes: a rename (git's exact rename detection)."""
    gone = {base.digest(rel) or "": rel for rel, data in changes.items() if data is None and rel not in renames}
    for rel, data in changes.items():
        if data is None or base.is_file(rel) or rel in renames.values():
            continue
        old = gone.pop(blob_id(data), None)
        if old is not None:
            renames[old] = rel


def patch_change(tree: Path, patch: Path, strip: int = 1) -> Change:
    """A patch file (or '-' for stdin) applied in memory over the tree: its working tree when it is a
    git repository (HEAD plus local changes), else the directory as it is."""

    try:
        data = read_input(patch, MAX_PATCH_BYTES)
    except OSError as exc:
        raise InputError(f"{patch}: cannot read the patch: {exc.strerror or exc}") from None
    patches = parse_patch(data, patch.name, strip)
    if not patches:
        raise InputError(f"{patch}: no diff found in the patch")
    top = repo_toplevel(tree)
    if top is not None:
        prefix = _prefix(top, tree)
        wt = working_tree(top, prefix)
        base: TreeSource = wt.head
        base_label = "working tree" if wt.changed else wt.base_label
    else:
        base = DirectorySource(tree, str(tree))
        base_label = str(tree)
    applied = apply_patches(base, patches)
    _pair_exact_renames(base, applied.changes, applied.renames)
    head = OverlaySource(base, applied.changes, base.label)
    changed = sorted(rel for rel, d in applied.changes.items() if d is None or base.digest(rel) != blob_id(d))
    return Change(base, head, base_label, f"{base_label} + {patch}", changed, applied.renames, applied.notes)


def _prefix(top: Path, tree: Path) -> str:
    try:
        rel = tree.resolve().relative_to(top.resolve())
    except ValueError:
        raise InputError(f"{tree}: not inside the repository at {top}") from None
    return rel.as_posix() if str(rel) != "." else ""


def change_for(tree: Path | None, git_range_spec: str | None = None, use_index: bool = False,
               patch: Path | None = None, strip: int = 1) -> tuple[Path, Change]:
    """The tree root and the change the command line names (nothing named: the working tree)."""
    given = tree if tree is not None else Path.cwd()
    if not given.is_dir():
        raise InputError(f"{given}: no such directory")
    top = repo_toplevel(given)
    if patch is not None:
        root = given if tree is not None else (top or given)
        return root, patch_change(root, patch, strip)
    if top is None:
        raise InputError(f"{given}: not in a git repository (give --patch FILE to check a patch against a plain tree)")
    root = given if tree is not None else top
    prefix = _prefix(top, root)
    if git_range_spec is not None:
        return root, git_range(top, prefix, git_range_spec)
    if use_index:
        return root, staged(top, prefix)
    return root, working_tree(top, prefix)


# -- the comparison -------------------------------------------------------------------------------
def compare(base: list[Finding], head: list[Finding], renames: dict[str, str] | None = None
            ) -> tuple[list[Finding], list[Finding], int]:
    """(new, fixed, unchanged count): fingerprints compared as multisets; a base finding in a renamed
    file counts under the file's new name."""
    renames = renames or {}
    by_base: dict[str, list[Finding]] = defaultdict(list)
    by_head: dict[str, list[Finding]] = defaultdict(list)
    for f in base:
        moved = replace(f, file=renames[f.file]) if f.file in renames else f
        by_base[moved.fingerprint].append(f)
    for f in head:
        by_head[f.fingerprint].append(f)
    new: list[Finding] = []
    fixed: list[Finding] = []
    unchanged = 0
    for fp in by_base.keys() | by_head.keys():
        b = sorted(by_base.get(fp, ()), key=Finding.sort_key)
        h = sorted(by_head.get(fp, ()), key=Finding.sort_key)
        common = min(len(b), len(h))
        unchanged += common
        new.extend(h[common:])
        fixed.extend(b[common:])
    return sorted(new, key=Finding.sort_key), sorted(fixed, key=Finding.sort_key), unchanged


def _kept_in_changed(base: list[Finding], head: list[Finding], change: Change) -> list[tuple[Finding, Finding]]:
    """(base, head) pairs of one fingerprint, one of each side, in the files the change touches."""
    changed = set(change.changed)
    by_base: dict[str, list[Finding]] = defaultdict(list)
    for f in base:
        moved = replace(f, file=change.renames[f.file]) if f.file in change.renames else f
        if moved.file in changed:
            by_base[moved.fingerprint].append(f)
    out = []
    for f in head:
        if f.file in changed and by_base.get(f.fingerprint):
            out.append((by_base[f.fingerprint].pop(0), f))
    return out


# -- the findings of a whole tree, cached by its content ----------------------------------------
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
    from armalias.scan import _from_state

    moved = head_state(state, change.base, change.head, change.changed, change.renames, options)
    if moved is None:
        return None
    return _from_state(ScanResult(root=label), moved, options, change.head, time.perf_counter())


def _selection_hints(change: Change, state, holds=None):
    """The base's prefilter rounds for the head's scan (armalias.scan.SelectionHints), when the change
    only modifies source files the base's scan listed, in memory over the same directory.  `holds`:
    what tells whether the state holds, when that is not known yet (speculative_state)."""
    from armalias.scan import SelectionHints

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
    before, after = changed_functions(change.base, change.head, change.changed, change.renames)
    head_options = replace(scan_options, mmu_off_evidence=evidence, base_functions=before, head_functions=after)
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
    pairs = _kept_in_changed(base_findings, head_findings, change)
    if options.scan.model and (new or fixed or pairs):
        # Both sides read their cache implementations from the same place (the repository's work
        # tree, the directory, or the reference table): decode them once.
        from armalias.model.builds import Builds, lister
        from armalias.validate import implementations_for, validate

        impls = implementations_for(change.head, cache_dir)
        config = dict(options.scan.config_options) or None
        head_builds = Builds(change.head.read, lister(change.head), config)
        base_builds = Builds(change.base.read, lister(change.base), config)
        new = validate(new, impls, head_builds)
        fixed = validate(fixed, impls, base_builds)
        # a finding the change keeps, in a file it changes, that now holds on implementations where
        # it did not (the invalidate moved to another buffer): new, as far as those are concerned (a
        # note stays a residual hazard wherever it holds)
        for b, h in pairs:
            (b,), (h,) = validate([b], impls, base_builds), validate([h], impls, head_builds)
            before, after = set(b.model.confirming()), set(h.model.confirming())
            if after - before and h.severity != "note" and h.fingerprint not in options.baseline:
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
