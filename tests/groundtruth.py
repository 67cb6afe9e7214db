"""An independent ground truth for the real-tree acceptance test (tests/test_realtree_scan.py).

Deliberately shares nothing with armalias's front end (no tree-sitter, no rules/neutralize.toml):
a careful text search over the C sources plus universal-ctags.

- ``watched_calls(root, names)``: every call, in code, of a watched name under arch/arm, with the
  enclosing function (own brace matching, cross-checked against ctags' end lines), and every
  expansion site of a macro whose ``#define`` body calls a watched name (transitively, through other
  macros and object-like aliases), with the chain of macros crossed (``via``).
- ``ctags_functions(root)``: what universal-ctags lists as function definitions in arch/arm ``.c``.

Everything works on "code text": the real bytes with comments, string and character literals blanked
to spaces (same length, newlines kept), so offsets, lines and columns are those of the real file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------
_LEXEME = re.compile(
    r"//(?:[^\n\\]|\\.|\\\n)*"          # line comment (a trailing backslash continues it)
    r"|/\*.*?(?:\*/|\Z)"                  # block comment
    r'|"(?:[^"\\\n]|\\.|\\\n)*"'          # string literal
    r"|'(?:[^'\\\n]|\\.)*'",              # character literal
    re.S,
)


def _spaces(s: str) -> str:
    """Blank all but newlines; a backslash-newline stays, so a comment inside a multi-line #define
    does not end the macro."""
    return _NOT_BSNL.sub(" ", _PLAIN.sub(" ", s))


_PLAIN = re.compile(r"[^\n\\]")
_NOT_BSNL = re.compile(r"\\(?!\n)")


def code_text(text: str) -> str:
    """Comments and string/char literals blanked (newlines kept; a string keeps its quotes)."""
    def repl(m: re.Match[str]) -> str:
        s = m.group(0)
        if s[0] == "/":
            return _spaces(s)
        return s[0] + _spaces(s[1:-1]) + s[-1] if len(s) >= 2 else s
    return _LEXEME.sub(repl, text)


_DIRECTIVE = re.compile(r"(?m)^[ \t]*#(?:[^\n]*\\\n)*[^\n]*")
_DEFINE = re.compile(r"[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(\([^)]*\))?")
_COND = re.compile(r"[ \t]*#[ \t]*(if|ifdef|ifndef|elif|else|endif)\b(.*)", re.S)


def line_starts(text: str) -> list[int]:
    out = [0]
    for m in re.finditer("\n", text):
        out.append(m.end())
    return out


def pos_to_line_col(starts: list[int], pos: int) -> tuple[int, int]:
    import bisect
    i = bisect.bisect_right(starts, pos) - 1
    return i + 1, pos - starts[i] + 1


@dataclass
class Define:
    name: str
    file: str
    line: int
    params: tuple[str, ...] | None
    body: str          # code text of the body, continuation backslashes blanked
    body_start: int    # offset of the body in the file


@dataclass
class Source:
    rel: str
    text: str                       # real text
    code: str                       # comments/literals blanked, directives blanked too
    starts: list[int]
    defines: list[Define]
    directive_spans: list[tuple[int, int]]
    if0_spans: list[tuple[int, int]] = field(default_factory=list)  # #if 0 ... #else/#endif


def load_source(root: Path, rel: str) -> Source:
    text = (root / rel).read_text(encoding="utf-8", errors="replace")
    ct = code_text(text)
    buf = list(ct)
    defines: list[Define] = []
    spans = []
    if0: list[tuple[int, int]] = []
    stack: list[tuple[bool, int]] = []  # (is "#if 0", start of the dead region)
    for m in _DIRECTIVE.finditer(ct):
        spans.append((m.start(), m.end()))
        d = _DEFINE.match(ct, m.start())
        if d:
            params = None
            if d.group(2) is not None:
                params = tuple(p.strip() for p in d.group(2)[1:-1].split(",") if p.strip())
            body = ct[d.end() : m.end()].replace("\\\n", " \n")
            defines.append(Define(d.group(1), rel, ct.count("\n", 0, m.start()) + 1, params, body, d.end()))
        c = _COND.match(ct, m.start())
        if c:
            kind, rest = c.group(1), c.group(2).replace("\\\n", " ").strip()
            if kind in ("if", "ifdef", "ifndef"):
                stack.append((kind == "if" and rest in ("0", "(0)"), m.end()))
            elif kind in ("elif", "else") and stack:
                dead, start = stack[-1]
                if dead:
                    if0.append((start, m.start()))
                stack[-1] = (False, m.end())
            elif kind == "endif" and stack:
                dead, start = stack.pop()
                if dead:
                    if0.append((start, m.start()))
        for i in range(m.start(), m.end()):
            if buf[i] != "\n":
                buf[i] = " "
    return Source(rel, text, "".join(buf), line_starts(text), defines, spans, if0)


# --------------------------------------------------------------------------------------------
# functions by brace matching (only the first branch of #if/#else counts for brace depth)
# --------------------------------------------------------------------------------------------
KEYWORDS = frozenset(
    "if while for switch return sizeof typeof __typeof__ __typeof do case else goto default "
    "asm __asm__ __asm volatile __volatile__ _Generic __attribute__ __attribute struct union enum "
    "static extern const inline __inline__ __inline register auto unsigned signed int long short char "
    "void float double _Bool bool typedef offsetof defined __builtin_offsetof".split()
)
# `NAME(f, ...) { ... }` at file scope defines a function that is not called NAME.
DEFINERS = {f"SYSCALL_DEFINE{i}": ("sys_", 0) for i in range(7)}


@dataclass(frozen=True)
class Func:
    name: str
    line: int       # line of the name
    open: int       # offset of the body's '{'
    close: int      # offset of the body's '}'


def _depth_code(src: Source) -> str:
    """Code text prepared for brace counting across conditionals.

    For each #if/#elif/#else/#endif group (innermost first): when every branch is brace-balanced
    all branches are kept (a function wholly inside an #else is still a function); otherwise only
    the first branch's braces count, as a compiler would see one branch
    (`#ifdef X  f(a) {  #else  f(b) {  #endif`)."""
    buf = list(src.code)
    real = src.text
    stack: list[list[tuple[int, int]]] = []  # per open group: branch spans (start, end)
    for s, e in src.directive_spans:
        c = _COND.match(code_text(real[s:e]))
        if not c:
            continue
        kind = c.group(1)
        if kind in ("if", "ifdef", "ifndef"):
            stack.append([(e, -1)])
        elif kind in ("elif", "else") and stack:
            b0, _ = stack[-1][-1]
            stack[-1][-1] = (b0, s)
            stack[-1].append((e, -1))
        elif kind == "endif" and stack:
            branches = stack.pop()
            b0, _ = branches[-1]
            branches[-1] = (b0, s)
            deltas = []
            for a, b in branches:
                seg = "".join(buf[a:b])
                deltas.append(seg.count("{") - seg.count("}"))
            if len(branches) > 1 and any(d != 0 for d in deltas):
                for a, b in branches[1:]:
                    for i in range(a, b):
                        if buf[i] in "{}":
                            buf[i] = " "
    return "".join(buf)


def _match_back(text: str, close: int) -> int:
    """Offset of the '(' matching the ')' at close, or -1."""
    depth = 0
    i = close
    while i >= 0:
        c = text[i]
        if c == ")":
            depth += 1
        elif c == "(":
            depth -= 1
            if depth == 0:
                return i
        elif c in "{};" and depth > 0:
            return -1
        i -= 1
    return -1


def _match_fwd(text: str, open_: int) -> int:
    depth = 0
    for i in range(open_, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def brace_functions(src: Source) -> list[Func]:
    text = _depth_code(src)
    out: list[Func] = []
    depth = 0
    open_at = -1
    name_info: tuple[str, int] | None = None
    for m in re.finditer(r"[{}]", text):
        if m.group(0) == "{":
            if depth == 0:
                name_info = _function_head(text, src.code, m.start())
                open_at = m.start()
            depth += 1
        else:
            depth -= 1
            if depth < 0:
                depth = 0
            if depth == 0 and name_info is not None:
                name, pos = name_info
                out.append(Func(name, pos_to_line_col(src.starts, pos)[0], open_at, m.start()))
                name_info = None
    return out


def _function_head(text: str, code: str, brace: int) -> tuple[str, int] | None:
    """If the '{' at brace opens a function body, (name, offset of the name)."""
    j = brace - 1
    while j >= 0 and text[j].isspace():
        j -= 1
    # trailing annotations between ')' and '{': `) __acquires(x) {`, `) __attribute__((x)) {`
    for _ in range(4):
        if j < 0 or text[j] != ")":
            break
        o = _match_back(text, j)
        if o < 0:
            return None
        name, name_at = _ident_before(text, o)
        if not name:
            return None
        if name.startswith("__") and name not in DEFINERS and _is_annotation(text, name_at):
            j = name_at - 1
            while j >= 0 and text[j].isspace():
                j -= 1
            continue
        if name in KEYWORDS:
            return None
        if name in DEFINERS:
            prefix, idx = DEFINERS[name]
            close = _match_fwd(text, o)
            args = [a.strip() for a in text[o + 1 : close].split(",")]
            if len(args) > idx and re.fullmatch(r"\w+", args[idx]):
                return prefix + args[idx], o + 1 + text[o + 1 :].index(args[idx])
            return None
        return name, name_at
    return None


def _ident_before(text: str, pos: int) -> tuple[str, int]:
    """The identifier that ends just before pos (whitespace allowed), and where it starts."""
    j = pos - 1
    while j >= 0 and text[j].isspace():
        j -= 1
    k = j
    while k >= 0 and (text[k].isalnum() or text[k] == "_"):
        k -= 1
    if k == j or text[k + 1].isdigit():
        return "", -1
    return text[k + 1 : j + 1], k + 1


def _is_annotation(text: str, name_start: int) -> bool:
    """The identifier at name_start follows a ')' (it is after a parameter list, not a name)."""
    k = name_start - 1
    while k >= 0 and text[k].isspace():
        k -= 1
    return k >= 0 and text[k] == ")"


# --------------------------------------------------------------------------------------------
# ctags
# --------------------------------------------------------------------------------------------
# Identifiers ctags must skip to see kernel definitions: the list scripts/tags.sh gives ctags, and
# (with '+', which makes universal-ctags skip the parenthesised argument list too) the annotations
# that take arguments.
CTAGS_IGNORE = (
    "__initdata,__exitdata,__initconst,__ro_after_init,__initdata_memblock,__refdata,__maybe_unused,"
    "__always_unused,__deprecated,__always_inline,__read_mostly,____cacheline_aligned,"
    "____cacheline_aligned_in_smp,__cacheline_aligned,__cacheline_aligned_in_smp,"
    "____cacheline_internodealigned_in_smp,__used,__packed,__packed2__,__must_check,"
    "EXPORT_SYMBOL,EXPORT_SYMBOL_GPL,ACPI_EXPORT_SYMBOL,DEFINE_TRACE,EXPORT_TRACEPOINT_SYMBOL,"
    "EXPORT_TRACEPOINT_SYMBOL_GPL,"
    "__attribute+,__attribute__+,__acquires+,__releases+,__must_hold+,__aligned+,__printf+,__section+"
)
# What plain ctags gets wrong in arch/arm, and the option that corrects it:
# - `NOKPROBE_SYMBOL(f)` with no ';' before a function (kernel/traps.c, probes/kprobes/opt-arm.c) is
#   taken for the next function's name: skip it with its arguments;
# - `MACHINE_END` (which expands to `};`, no ';' written after it) hides the next function
#   (mach-at91/sama5.c, mach-sunxi/sunxi.c): define it as ';' (ctags does not take `};` here).
CTAGS_TUNING = ("-I", "NOKPROBE_SYMBOL+", "-D", "MACHINE_END=;")


def ctags_available() -> str | None:
    """None when universal-ctags is usable, else why not."""
    exe = shutil.which("ctags")
    if exe is None:
        return "ctags not installed (apt-get install universal-ctags)"
    try:
        v = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ctags not runnable: {exc}"
    if "Universal Ctags" not in v:
        return "ctags is not universal-ctags (apt-get install universal-ctags)"
    return None


@dataclass(frozen=True)
class CtagsFunc:
    name: str
    file: str
    line: int
    end: int  # 0 when ctags gives none


def ctags_functions(root: Path, rels: list[str], tuned: bool = True) -> list[CtagsFunc]:
    """Function definitions universal-ctags finds in the given files (paths relative to root).

    tuned=False: the plain `ctags --language-force=C --kinds-C=f`; tuned=True adds the kernel's own
    ignore list (scripts/tags.sh) and the CTAGS_TUNING corrections.  Code under `#if 0` is not
    listed (ctags' default)."""
    out: list[CtagsFunc] = []
    chunk = 400
    for i in range(0, len(rels), chunk):
        opts = ["-I", CTAGS_IGNORE, *CTAGS_TUNING] if tuned else []
        cmd = ["ctags", "--language-force=C", "--kinds-C=f", "--fields=+ne", *opts,
               "-o", "-", "--sort=no", *rels[i : i + chunk]]
        res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True)
        for ln in res.stdout.splitlines():
            if ln.startswith("!_"):
                continue
            parts = ln.split("\t")
            if len(parts) < 4:
                continue
            name, file = parts[0], parts[1]
            extra = {}
            for p in parts[3:]:
                if ":" in p:
                    k, v = p.split(":", 1)
                    extra[k] = v
            if extra.get("kind", "f") not in ("f", "function"):
                continue
            out.append(CtagsFunc(name, file, int(extra.get("line", 0)), int(extra.get("end", 0) or 0)))
    return out


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
def arch_files(root: Path, suffixes: tuple[str, ...] = (".c", ".h")) -> list[str]:
    out = []
    base = root / "arch" / "arm"
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith(suffixes):
                out.append((Path(dirpath) / f).relative_to(root).as_posix())
    return out


_INCLUDE = re.compile(r'(?m)^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]')


@lru_cache(maxsize=4)
def _generic_y(root: Path) -> frozenset[str]:
    """asm/ headers arch/arm takes from asm-generic (Kbuild generic-y and asm-generic mandatory-y)."""
    names: set[str] = set()
    for kb in (root / "arch/arm/include/asm/Kbuild", root / "include/asm-generic/Kbuild"):
        if kb.is_file():
            for m in re.finditer(r"(?:generic|mandatory)-y\s*\+=\s*(\S+)", kb.read_text()):
                names.add(m.group(1))
    return frozenset(names)


def included_headers(root: Path, start: list[str]) -> list[str]:
    """Headers outside arch/arm that arch/arm files include, transitively (kernel include paths)."""
    dirs = ["arch/arm/include", "arch/arm/include/uapi", "include", "include/uapi"]
    generic = _generic_y(root)
    seen = set(start)
    queue = list(start)
    extra = []
    while queue:
        rel = queue.pop()
        try:
            text = (root / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for m in _INCLUDE.finditer(code_text(text)):
            name = m.group(2).strip()
            cands = []
            if m.group(1) == '"':
                cands.append(os.path.normpath((Path(rel).parent / name).as_posix()))
            cands += [f"{d}/{name}" for d in dirs]
            if name.startswith("asm/") and name[4:] in generic:
                cands.append(f"include/asm-generic/{name[4:]}")
            for c in cands:
                if (root / c).is_file():
                    if c not in seen and c.endswith(".h"):
                        seen.add(c)
                        queue.append(c)
                        extra.append(c)
                    break
    return sorted(extra)


# --------------------------------------------------------------------------------------------
# calls of watched names
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Site:
    callee: str
    caller: str          # enclosing function ("" at file scope)
    file: str
    line: int
    column: int
    via: tuple[str, ...]  # macros crossed, outermost first; () for a direct call
    kind: str = "call"    # "call" or "expansion"


@dataclass
class Dropped:
    """An occurrence of NAME( that is not a call, and why (kept for review)."""
    name: str
    file: str
    line: int
    why: str


_STMT_START = frozenset("; { } :".split())
NOT_TYPES = frozenset("return else do case goto sizeof typeof __typeof__ defined".split())


def _prev_token(code: str, pos: int) -> tuple[str, int]:
    j = pos - 1
    while j >= 0 and code[j].isspace():
        j -= 1
    if j < 0:
        return "", -1
    if code[j].isalnum() or code[j] == "_":
        k = j
        while k >= 0 and (code[k].isalnum() or code[k] == "_"):
            k -= 1
        return code[k + 1 : j + 1], k + 1
    if code[j] == ">" and j > 0 and code[j - 1] == "-":
        return "->", j - 1
    if code[j] == "#" and j > 0 and code[j - 1] == "#":
        return "##", j - 1
    return code[j], j


def _next_nonspace(code: str, pos: int) -> tuple[str, int]:
    j = pos
    while j < len(code) and code[j].isspace():
        j += 1
    return (code[j], j) if j < len(code) else ("", j)


def _is_declaration(code: str, start: int, close: int) -> str | None:
    """Why the NAME( at start (its ')' at close) declares or defines NAME, or None for a call."""
    tok, at = _prev_token(code, start)
    typeish = False
    if tok and (tok[0].isalpha() or tok[0] == "_") and tok not in NOT_TYPES:
        typeish = True
    elif tok == "*":
        # `void *NAME(` / `struct page **NAME(`: a type before the stars, at the start of a statement
        k = at
        while True:
            t, k2 = _prev_token(code, k)
            if t != "*":
                break
            k = k2
        t, k2 = _prev_token(code, k)
        if t and (t[0].isalpha() or t[0] == "_") and t not in NOT_TYPES:
            before, _ = _prev_token(code, k2)
            # `a * NAME(` inside an expression has an operand, not a type keyword, before it;
            # accept when what precedes the type is a statement boundary or another type word
            if before in _STMT_START or before == "" or (before and (before[0].isalpha() or before[0] == "_")) or before == ")":
                typeish = True
    if not typeish:
        return None
    nxt, j = _next_nonspace(code, close + 1)
    # skip trailing annotations: `) __attribute__((x));`, `) __releases(x) {`
    for _ in range(4):
        m = re.match(r"[A-Za-z_]\w*", code[j:])
        if not m:
            break
        k = j + m.end()
        n2, k2 = _next_nonspace(code, k)
        if n2 == "(":
            e = _match_fwd(code, k2)
            if e < 0:
                break
            nxt, j = _next_nonspace(code, e + 1)
        else:
            nxt, j = n2, k2
    if nxt == ";" or nxt == ",":
        return f"prototype (`{tok} NAME(...){nxt}`)"
    if nxt == "{":
        return f"definition (`{tok} NAME(...) {{`)"
    return None


@dataclass
class Truth:
    sites: list[Site]
    dropped: list[Dropped]
    reach: dict[str, list[tuple[str, tuple[str, ...]]]]  # macro -> [(watched name, via after it)]
    ctags_disagreements: list[str]
    files: list[str]


def _call_pattern(names: set[str]) -> re.Pattern[str]:
    alts = "|".join(sorted((re.escape(n) for n in names), key=len, reverse=True))
    return re.compile(r"(?<![\w$])(" + alts + r")\s*\(")


_ALIAS_BODY = re.compile(r"\s*\(?\s*([A-Za-z_]\w*)\s*\)?\s*")
_ANY_CALL = re.compile(r"(?<![\w$])([A-Za-z_]\w*)\s*\(")


def macro_edges(defines: list[Define]) -> dict[str, set[str]]:
    """Macro name -> names its bodies call or alias (union over every #define of the name).

    A body calls W when it holds ``W(`` not after ``.``/``->``/``#``, W not one of the macro's
    parameters; an object-like macro whose whole body is one identifier W aliases W."""
    edges: dict[str, set[str]] = defaultdict(set)
    for d in defines:
        body = d.body
        edges[d.name]  # every defined macro is a node
        if d.params is None:
            a = _ALIAS_BODY.fullmatch(body)
            if a and a.group(1) != d.name:
                edges[d.name].add(a.group(1))
        for m in _ANY_CALL.finditer(body):
            callee = m.group(1)
            if callee in KEYWORDS or callee == d.name or (d.params and callee in d.params):
                continue
            tok, _ = _prev_token(body, m.start())
            if tok in (".", "->", "#", "##"):
                continue
            edges[d.name].add(callee)
    return edges


def reverse_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    rev: dict[str, set[str]] = defaultdict(set)
    for a, ts in edges.items():
        for t in ts:
            rev[t].add(a)
    return rev


def macro_reach(edges: dict[str, set[str]], watched: set[str],
                local: dict[str, set[str]] | None = None,
                rev_global: dict[str, set[str]] | None = None) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """For each macro, the watched names its expansion calls and the macros crossed after it,
    transitively through the bodies of the macros it calls or aliases (depth <= 12).  ``local``:
    a .c file's own macros, which hide header macros of the same name."""
    local = local or {}
    if rev_global is None:
        rev_global = reverse_edges(edges)
    rev_local = reverse_edges(local)

    def targets(n: str) -> set[str]:
        return local[n] if n in local else edges.get(n, set())

    def is_macro(n: str) -> bool:
        return n in local or n in edges

    # macros from which a watched name is reachable (reverse search)
    relevant: set[str] = set()
    queue = list(watched)
    while queue:
        n = queue.pop()
        for a in rev_global.get(n, set()) | rev_local.get(n, set()):
            if a in local and n not in local[a]:
                continue  # the header definition of a name the file redefines
            if a not in relevant:
                relevant.add(a)
                queue.append(a)
    reach: dict[str, list[tuple[str, tuple[str, ...]]]] = {}

    def walk(via: tuple[str, ...], out: set[tuple[str, tuple[str, ...]]]) -> None:
        if len(via) > 12:
            return
        for t in targets(via[-1]):
            if t in via:
                continue
            if t in watched:
                out.add((t, via[1:]))
            if t in relevant and is_macro(t):
                walk(via + (t,), out)

    for name in relevant:
        out: set[tuple[str, tuple[str, ...]]] = set()
        walk((name,), out)
        if out:
            reach[name] = sorted(out)
    return reach


def watched_calls(root: Path, watched: set[str], with_ctags: bool = True, headers_too: bool = True) -> Truth:
    """Ground truth: calls of watched names in arch/arm .c/.h code, direct and through macros, and
    (headers_too) in the headers outside arch/arm that arch/arm includes, transitively."""
    arch = arch_files(root)
    headers = included_headers(root, arch)
    files = arch + headers if headers_too else arch
    sources = {rel: load_source(root, rel) for rel in arch + headers}
    header_defs: list[Define] = []
    for rel in arch + headers:
        if rel.endswith(".h"):
            header_defs.extend(sources[rel].defines)
    global_edges = macro_edges(header_defs)
    global_rev = reverse_edges(global_edges)
    global_reach = macro_reach(global_edges, watched, None, global_rev)

    sites: list[Site] = []
    dropped: list[Dropped] = []
    disagreements: list[str] = []
    ctags_by_file: dict[str, list[CtagsFunc]] = defaultdict(list)
    if with_ctags:  # the enclosing function of every site is cross-checked with ctags' extents
        for f in ctags_functions(root, files):
            ctags_by_file[f.file].append(f)

    for rel in files:
        src = sources[rel]
        # macros visible in this file: the headers' (union) and, for a .c file, its own
        if rel.endswith(".c") and src.defines:
            reach = macro_reach(global_edges, watched, macro_edges(src.defines), global_rev)
        else:
            reach = global_reach
        names = set(watched) | set(reach)
        pat = _call_pattern(names)
        funcs = brace_functions(src)
        opens = [f.open for f in funcs]

        def enclosing(pos: int) -> str:
            import bisect
            i = bisect.bisect_right(opens, pos) - 1
            if i >= 0 and funcs[i].open < pos < funcs[i].close:
                return funcs[i].name
            return ""

        ct_funcs = ctags_by_file.get(rel, [])

        def ctags_enclosing(line: int) -> str | None:
            inside = [f for f in ct_funcs if f.end and f.line <= line <= f.end]
            return max(inside, key=lambda f: f.line).name if inside else ""

        code = src.code
        for m in pat.finditer(code):
            name = m.group(1)
            tok, _ = _prev_token(code, m.start())
            line, col = pos_to_line_col(src.starts, m.start())
            if tok in (".", "->"):
                dropped.append(Dropped(name, rel, line, "struct member access"))
                continue
            if tok in ("#", "##"):
                dropped.append(Dropped(name, rel, line, "token pasting"))
                continue
            if any(s <= m.start() < e for s, e in src.if0_spans):
                dropped.append(Dropped(name, rel, line, "inside #if 0"))
                continue
            close = _match_fwd(code, m.end() - 1)
            why = _is_declaration(code, m.start(), close) if close > 0 else None
            if why:
                dropped.append(Dropped(name, rel, line, why))
                continue
            caller = enclosing(m.start())
            if with_ctags:
                other = ctags_enclosing(line)
                if other != caller:
                    disagreements.append(f"{rel}:{line} {name}: braces say {caller or '(file scope)'}, "
                                         f"ctags says {other or '(file scope)'}")
            if name in watched:
                sites.append(Site(name, caller, rel, line, col, (), "call"))
            for target, via in reach.get(name, ()):
                sites.append(Site(target, caller, rel, line, col, (name,) + via, "expansion"))
    sites = sorted(set(sites), key=lambda s: (s.file, s.line, s.column, s.callee, s.via))
    return Truth(sites, dropped, global_reach, disagreements, files)
