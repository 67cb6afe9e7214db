"""Reading source bytes and reshaping them without moving a byte.

Every transformation here keeps the length of the text and every newline in place, so byte offsets,
lines and columns found in the result are those of the real file.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from functools import lru_cache

from armalias.rules import NeutralizeSpec, load_neutralize

MAX_FILE_BYTES = 8 * 1024 * 1024  # a generated header beyond this is skipped, with the reason


class Unreadable(Exception):
    """The file cannot be analysed; the message is the reason shown to the user."""


def check_text(data: bytes) -> None:
    """Raise Unreadable with the reason when bytes are no C text to analyse."""
    if not data or data.isspace():
        raise Unreadable("empty file")
    if b"\0" in data[:8192]:
        raise Unreadable("binary file (NUL bytes)")
    # bytes that are not UTF-8 (a Latin-1 name in a comment) are read as they are, as the kernel's
    # own tools do: skipping the file would hide what it does (a finding would count as fixed)


_SPACES = bytes(0x0A if b == 0x0A else 0x20 for b in range(256))  # every byte a space, but newlines


def blanked(seg: bytes) -> bytes:
    """The bytes with every one a space, but newlines."""
    return seg.translate(_SPACES)


def blank(buf: bytearray, start: int, end: int, keep_backslash_newline: bool = False) -> None:
    """Replace buf[start:end] with spaces, keeping newlines (and, if asked, a backslash before one)."""
    if start >= end:
        return
    seg = bytes(buf[start:end])
    out = blanked(seg)
    if keep_backslash_newline and b"\\" in seg:
        kept = bytearray(out)
        pos = seg.find(b"\\")
        while pos != -1:
            nxt = start + pos + 1
            if nxt < len(buf) and buf[nxt] == 0x0A:
                kept[pos] = 0x5C
            pos = seg.find(b"\\", pos + 1)
        out = bytes(kept)
    buf[start:end] = out


_COMMENT_OR_LITERAL = re.compile(
    rb'//(?:[^\n\\]|\\.)*|/\*.*?(?:\*/|\Z)|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'', re.S
)


@lru_cache(maxsize=4)  # neutralize and the directive reader ask for the same file's in turn
def comment_spans(data: bytes) -> tuple[tuple[int, int], ...]:
    """(start, end) of every comment (string and character literals are skipped over)."""
    return tuple((m.start(), m.end()) for m in _COMMENT_OR_LITERAL.finditer(data) if m.group(0)[:1] == b"/")


@lru_cache(maxsize=4)
def blank_comments(data: bytes) -> bytes:
    """Comments become spaces; string and character literals are kept as they are."""
    buf = bytearray(data)
    for start, end in comment_spans(data):
        blank(buf, start, end, keep_backslash_newline=True)
    return bytes(buf)


def at_line_start(pattern: re.Pattern[bytes], data: bytes, blanks: bytes = b" \t"
                  ) -> Iterator[tuple[int, re.Match[bytes]]]:
    """What `(?m)^[ \t]*` followed by `pattern` finds, as (start of the line, match of `pattern`).
    `pattern` begins with a literal (`#`), which re looks for with a quick scan; a line-anchored
    pattern is tried at every line start instead, and most lines of kernel C hold no `#`.  A match
    with something else than blanks before it on its line is passed over, and the search goes on
    one byte after its start, so the matches are those of the anchored pattern.  `blanks`: the
    bytes that may come before the match on its line."""
    pos = 0
    search = pattern.search
    while (m := search(data, pos)) is not None:
        start = m.start()
        line = data.rfind(b"\n", 0, start) + 1
        if line < start and data[line:start].strip(blanks):
            pos = start + 1
            continue
        yield line, m
        pos = max(m.end(), start + 1)


_DIRECTIVE = re.compile(rb"#(?:[^\n]*\\\n)*[^\n]*")


_DEFINE_START = re.compile(rb"[ \t]*#[ \t]*define\b")


def directive_spans(data: bytes) -> list[tuple[int, int]]:
    return [(line, m.end()) for line, m in at_line_start(_DIRECTIVE, data)]


def code_directive_spans(data: bytes) -> list[tuple[int, int]]:
    """The preprocessor lines of a file, as the compiler splits them: a comment begun on a
    directive line carries the directive on to the end of the line the comment ends on (comments
    become a space before lines are read as directives).  `#define X 0x02 /* a comment over two
    lines */` is one directive; its second line is no code."""
    spans = directive_spans(blank_comments(data))
    if b"/*" not in data:
        return spans
    comments = [(a, b) for a, b in comment_spans(data) if data[a + 1] == 0x2A and data.find(b"\n", a, b) != -1]
    if not comments:
        return spans
    starts = [c[0] for c in comments]
    out: list[tuple[int, int]] = []
    for start, end in spans:
        while True:
            i = bisect_right(starts, end) - 1
            if i < 0 or not comments[i][0] < end < comments[i][1]:
                break
            nl = data.find(b"\n", comments[i][1])
            end = len(data) if nl == -1 else nl
        if out and start < out[-1][1]:  # a directive found inside the one just extended
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


def balanced_end(data: bytes, open_pos: int) -> int:
    """Index just past the ')' that closes the '(' at open_pos, or -1 when unbalanced."""
    depth = 0
    i = open_pos
    n = len(data)
    while i < n:
        c = data[i]
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def _skip_ws(data: bytes, i: int) -> int:
    n = len(data)
    while i < n and data[i] in b" \t\r\n":
        i += 1
    return i


# bytes that continue an identifier (the regular expression \w over bytes)
IDENTIFIER_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def whole_identifier(data: bytes, start: int, end: int) -> bool:
    """data[start:end] is a whole identifier: no identifier byte just before or just after it."""
    return ((start == 0 or data[start - 1] not in IDENTIFIER_BYTES)
            and (end == len(data) or data[end] not in IDENTIFIER_BYTES))


def multi_find(patterns: list[bytes], overlapping: bool = False):
    """`data -> [(pattern index, start, end), ...]` for many byte strings at once: the one place
    armalias uses ahocorasick-rs.  By default one DFA reporting leftmost-longest matches, none
    overlapping (of patterns that are identifiers, an occurrence as a whole identifier is never
    hidden by another match: that one would have to run through the non-identifier byte before
    it, or be longer at the same start and so run through the one after it); `overlapping`: every
    occurrence of every pattern."""
    import ahocorasick_rs

    if overlapping:
        find = ahocorasick_rs.BytesAhoCorasick(patterns).find_matches_as_indexes
        return lambda data: find(data, overlapping=True)
    return ahocorasick_rs.BytesAhoCorasick(patterns, matchkind=ahocorasick_rs.MATCHKIND_LEFTMOST_LONGEST,
                                           implementation=ahocorasick_rs.Implementation.DFA).find_matches_as_indexes


def any_occurrence(patterns: list[bytes], tests: list[Callable[[bytes, int, int], bool]]
                   ) -> Callable[[bytes], bool] | None:
    """`data -> bool`: does some occurrence of a pattern (every one, overlapping ones too) pass its
    test, `tests[i](data, start, end)`?  One Hyperscan database of the literals, whose matcher for
    many literals keeps its speed where ahocorasick-rs's packed searcher stops (65 patterns and
    more, multi_find falls back to its DFA), as a whole-tree scan's later rounds need.  The scan
    stops at the first occurrence that passes.  None when Hyperscan cannot be had here (not
    installed, or a CPU it does not support): the caller uses multi_find."""
    try:
        import hyperscan
    except ImportError:
        return None
    try:
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(expressions=list(patterns), ids=list(range(len(patterns))), elements=len(patterns), literal=True)
        scratch = hyperscan.Scratch(db)
    except hyperscan.error:
        return None
    lengths = [len(p) for p in patterns]
    stop = hyperscan.ScanTerminated

    def found(data: bytes) -> bool:
        def on_match(index: int, _start: int, end: int, _flags: int, _context) -> bool:
            return tests[index](data, end - lengths[index], end)  # True ends the scan

        try:
            db.scan(data, match_event_handler=on_match, scratch=scratch)
        except stop:
            return True
        return False

    return found


@lru_cache(maxsize=4)
def _patterns(spec: NeutralizeSpec):
    """The names' occurrences as whole identifiers (multi_find): one search of the text for all the
    names, not a lookup from Python of every identifier of the file in a set."""
    names = sorted({n.encode() for n in set(spec.annotations) | set(spec.annotations_with_args) | set(spec.statement_macros)})
    find = multi_find(names) if names else None

    def occurrences(data: bytes):
        if find is None:
            return
        for _, start, end in find(data):
            if whole_identifier(data, start, end):
                yield start, end

    loops = _loop_macros(spec.loop_macro_patterns) if spec.loop_macro_patterns else None
    return occurrences, loops


_OPEN_PAREN = re.compile(rb"\s*\(")


def _anchor(pattern: str) -> bytes | None:
    r"""The longest run of literal identifier characters that every identifier a pattern of
    loop_macro_patterns (`^\w*for_each\w*$`) matches holds.  The pattern is read as letters,
    digits and `_`, the escapes `\w` and `\d` (one character of a run that is not literal) and `\b`,
    and `*` or `+` after one of those (a quantified letter ends the run before it); anything else
    (another escape, an alternative, a group, a class, `.`, `?`) gives None."""
    runs, run, i = [], "", 0
    body = pattern.strip("^$")
    while i < len(body):
        c = body[i]
        if c == "\\":
            if body[i + 1:i + 2] not in ("w", "d", "b"):
                return None
            runs.append(run)
            run, i = "", i + 2
        elif c in "*+":
            if i == 0 or body[i - 1] in "*+":
                return None
            if body[i - 2:i - 1] != "\\":  # a quantified letter: the run ends before it
                runs.append(run[:-1])
                run = ""
            i += 1
        elif ord(c) in IDENTIFIER_BYTES:
            run += c
            i += 1
        else:
            return None
    runs.append(run)
    best = max(runs, key=len)
    return best.encode() if best else None


def _loop_macros(patterns: tuple[str, ...]):
    r"""`data -> [(start, end), ...]`: the identifiers that match one of the patterns whole and are
    followed by `(`, what `\b(?:patterns)\b(?=\s*\()` finds.  That expression tries every word
    start of the file, and neutralize runs over every file a scan parses; this looks for a literal
    part of each pattern (multi_find) and tries only the identifiers holding one."""
    alts = b"|".join(p.strip("^$").encode() for p in patterns)
    slow = re.compile(rb"\b(?:" + alts + rb")\b(?=\s*\()")
    anchors = [_anchor(p) for p in patterns]
    if None in anchors:
        return lambda data: [m.span() for m in slow.finditer(data)]
    whole = re.compile(rb"(?:" + alts + rb")")
    find = multi_find(sorted(set(anchors)))

    def macros(data: bytes) -> list[tuple[int, int]]:
        out = []
        last = -1
        for _, s, e in find(data):
            while s > 0 and data[s - 1] in IDENTIFIER_BYTES:
                s -= 1
            if s == last:  # another part of the identifier just tried
                continue
            last = s
            while e < len(data) and data[e] in IDENTIFIER_BYTES:
                e += 1
            if whole.fullmatch(data, s, e) and _OPEN_PAREN.match(data, e):
                out.append((s, e))
        return out

    return macros


def neutralize(data: bytes, spec: NeutralizeSpec | None = None) -> bytes:
    """Blank kernel annotations and file-scope statement macros; turn loop macros into `while`."""
    spec = spec or load_neutralize()
    occurrences, loops = _patterns(spec)
    buf = bytearray(data)
    spans = code_directive_spans(data)
    for start, end in spans:
        if _DEFINE_START.match(data, start):
            blank(buf, start, end)  # macro bodies are read by directives.py, not parsed as code
    span_i = 0

    def in_directive(pos: int) -> bool:
        nonlocal span_i
        while span_i < len(spans) and spans[span_i][1] <= pos:
            span_i += 1
        return span_i < len(spans) and spans[span_i][0] <= pos

    with_args = set(spec.annotations_with_args)
    plain = set(spec.annotations)
    statements = set(spec.statement_macros)
    last_end = 0
    for start, token_end in occurrences(data):
        if start < last_end or in_directive(start):
            continue
        name = data[start:token_end].decode()
        after = _skip_ws(data, token_end)
        has_args = after < len(data) and data[after] == 0x28
        if name in statements and has_args:
            line_start = data.rfind(b"\n", 0, start) + 1
            if not data[line_start:start].strip():
                end = balanced_end(data, after)
                if end > 0:
                    semi = _skip_ws(data, end)
                    if semi < len(data) and data[semi] == 0x3B:
                        end = semi + 1
                    blank(buf, start, end)
                    last_end = end
                    continue
        if name in with_args and has_args:
            end = balanced_end(data, after)
            if end > 0:
                blank(buf, start, end)
                last_end = end
                continue
        if name in plain:
            blank(buf, start, token_end)
            last_end = token_end
    if loops is not None:
        span_i = 0
        for start, end in loops(data):
            if in_directive(start) or not _loop_position(data, start, end):
                continue
            width = end - start
            if width >= 5:
                buf[start:end] = b"while" + b" " * (width - 5)
    _blank_if0(data, buf, spans)
    return bytes(buf)


_STATEMENT_START = (b"", b"{", b"}", b";", b")", b":", b"else")


def _loop_position(data: bytes, start: int, end: int) -> bool:
    """A loop macro used as a statement: first on its line (or after `{ } ; ) else :`), and
    followed, after its arguments, by a statement rather than `;` (a plain call of a function that
    happens to be named *_for_each) or by `{` after a type (its definition)."""
    line_start = data.rfind(b"\n", 0, start) + 1
    before = data[line_start:start].strip()
    if not any(before.endswith(t) for t in _STATEMENT_START if t) and before != b"":
        return False
    open_pos = _skip_ws(data, end)
    close = balanced_end(data, open_pos)
    if close < 0:
        return False
    if before.endswith(b"}"):  # `do { ... } while_each_thread(g, t);`
        return True
    nxt = _skip_ws(data, close)
    return nxt < len(data) and data[nxt] not in b";,)"


_IF0 = re.compile(rb"[ \t]*#[ \t]*if[ \t]+0\b")
_COND_OPEN = re.compile(rb"[ \t]*#[ \t]*if")
_COND_ELSE = re.compile(rb"[ \t]*#[ \t]*(?:else|elif)\b")
_COND_END = re.compile(rb"[ \t]*#[ \t]*endif\b")


def _blank_if0(data: bytes, buf: bytearray, spans: list[tuple[int, int]]) -> None:
    """Code under `#if 0` is not code: blank it up to the matching #else / #elif / #endif."""
    i = 0
    while i < len(spans):
        start, end = spans[i]
        if not _IF0.match(data, start):
            i += 1
            continue
        depth = 0
        j = i + 1
        while j < len(spans):
            s2 = spans[j][0]
            if _COND_OPEN.match(data, s2):
                depth += 1
            elif _COND_END.match(data, s2) or (_COND_ELSE.match(data, s2) and depth == 0):
                if depth == 0:
                    break
                if _COND_END.match(data, s2):
                    depth -= 1
            j += 1
        stop = spans[j][0] if j < len(spans) else len(data)
        blank(buf, end, stop)
        i = j
