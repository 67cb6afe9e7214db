"""A patch read and applied in memory: a unified diff, a `git format-patch` file or an mbox of a
series (quoted-printable and base64 bodies read), its hunks applied over a tree's files with the
offset and whitespace tolerance `git apply` has.  A malformed hunk is an error, never a no-op."""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field

from armalias.errors import InputError
from armalias.source.text import Unreadable
from armalias.source.tree import TreeSource


# A patch, a format-patch file or an mbox larger than this is refused (a series of thousands of patches fits).
MAX_PATCH_BYTES = 256 * 1024 * 1024

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
