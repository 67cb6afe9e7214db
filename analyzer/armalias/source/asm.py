"""A line-based reader of the cache implementations in arch/arm/mm.

Reads GNU-as-with-cpp assembly (``*.S``) without a grammar: comments, ``\\`` continuations, ``#if``
families and ``.if`` families (conditions are kept, not dropped: an instruction under ``#ifdef
CONFIG_X`` is recorded with that condition and the control flow has a path with and a path without
it), ``.macro`` / ``.irp`` / ``.rept`` expansion of the macros a file defines or includes (such as
``proc-macros.S``), the kernel's wrappers (``ALT_SMP``/``ALT_UP``, ``USER``, ``W``, ``ARM``/``THUMB``),
both symbol styles (``ENTRY``/``ENDPROC`` and ``SYM_*FUNC_START``/``SYM_FUNC_END``) and the aliases
(``.equ``, ``.set``, ``SYM_FUNC_ALIAS``).

From a ``cpu_cache_fns`` member symbol it follows the code as the CPU would (fall-through into the next
function, branches to local labels and to other functions, calls, returns) and decodes each cache
maintenance instruction with the table in ``rules/cache-ops.toml``. Whatever it cannot decode becomes
op ``unknown`` with its raw text; whatever flow it cannot follow becomes a note. A data flow of the
member's arguments over the same code (``AsmTree.coverage``, "Register flow" below) tells what each
instruction covers: the range it was given, one page from the start, one line, the whole cache.

The ``struct cpu_cache_fns`` tables are read both as ``.long`` lists after a ``NAME_cache_fns`` label
(older kernels, built by ``define_cache_functions``) and as C designated initializers (newer kernels'
``arch/arm/mm/cache.c``).
"""

from __future__ import annotations

import heapq
from collections import deque
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from armalias.cacheimpl import CACHE_MEMBERS, CACHE_OPS, CacheOp
from armalias.source.files import read_regular, within
from armalias.source.text import MAX_FILE_BYTES

# ---------------------------------------------------------------------------------------------------
# The decoding table (rules/cache-ops.toml)

_MCR_RE = re.compile(
    r"^p(?P<cp>\d+)\s*,\s*#?(?P<opc1>\d+)\s*,\s*(?:(?P<rt>[^,]+?)\s*,\s*)?"
    r"c(?P<crn>\d+)\s*,\s*c(?P<crm>\d+)(?:\s*,\s*#?(?P<opc2>\d+))?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CacheOpTable:
    """What each coprocessor encoding, barrier mnemonic and v7-M cache register does."""

    mcr: dict[tuple[int, int, int, int, int], tuple[str, ...]]
    mrc: dict[tuple[int, int, int, int, int], tuple[str, ...]]
    mnemonic: dict[str, tuple[str, ...]]
    mmio: dict[str, tuple[str, ...]]
    displacement: dict[str, tuple[str, ...]] = field(default_factory=dict)
    mcrr: dict[tuple[int, int, int], tuple[str, ...]] = field(default_factory=dict)  # (cp, opc1, CRm)
    quiet_macros: frozenset[str] = frozenset()  # header macros with no flow and no cache effect


def parse_encoding(text: str) -> tuple[int, int, int, int, int] | None:
    """``"p15, 0, c7, c10, 1"`` or the operands of an ``mcr`` (``p15, 0, r0, c7, c10, 1``)."""
    m = _MCR_RE.match(text.strip())
    if not m:
        return None
    return (int(m["cp"]), int(m["opc1"]), int(m["crn"]), int(m["crm"]), int(m["opc2"] or 0))


_MCRR_RE = re.compile(
    r"^p(?P<cp>\d+)\s*,\s*#?(?P<opc1>\d+)\s*,\s*(?:(?P<rt>[^,]+?)\s*,\s*(?P<rt2>[^,]+?)\s*,\s*)?"
    r"c(?P<crm>\d+)\s*$",
    re.IGNORECASE,
)


def parse_mcrr(text: str) -> tuple[tuple[int, int, int], str, str] | None:
    """``"p15, 0, c14"``, or the operands of an ``mcrr`` (``p15, 0, r1, r0, c14``): the encoding
    (cp, opc1, CRm) and the two registers (Rt, Rt2; "" in the short form)."""
    m = _MCRR_RE.match(text.strip())
    if not m:
        return None
    return (int(m["cp"]), int(m["opc1"]), int(m["crm"])), (m["rt"] or "").strip(), (m["rt2"] or "").strip()


def load_cache_ops(path: Path | None = None) -> CacheOpTable:
    """Load and check ``rules/cache-ops.toml`` (every op must be in the cacheimpl vocabulary)."""
    if path is None:
        from armalias.rules import rules_dir

        path = rules_dir() / "cache-ops.toml"
    with open(path, "rb") as fh:
        data = tomllib.load(fh)

    def ops_of(entry: dict, where: str) -> tuple[str, ...]:
        ops = tuple(entry.get("ops", ()))
        bad = [op for op in ops if op not in CACHE_OPS]
        if bad:
            raise ValueError(f"{path}: {where}: operation(s) {bad} are not in the cacheimpl vocabulary")
        return ops

    def encodings(section: str) -> dict[tuple[int, int, int, int, int], tuple[str, ...]]:
        table: dict[tuple[int, int, int, int, int], tuple[str, ...]] = {}
        for entry in data.get(section, ()):
            key = parse_encoding(entry["encoding"])
            if key is None:
                raise ValueError(f"{path}: cannot parse encoding {entry['encoding']!r}")
            if key in table:
                raise ValueError(f"{path}: [{section}] encoding {entry['encoding']!r} listed twice")
            table[key] = ops_of(entry, entry["encoding"])
        return table

    mcr, mrc = encodings("mcr"), encodings("mrc")
    mcrr: dict[tuple[int, int, int], tuple[str, ...]] = {}
    for entry in data.get("mcrr", ()):
        parsed = parse_mcrr(entry["encoding"])
        if parsed is None:
            raise ValueError(f"{path}: cannot parse encoding {entry['encoding']!r}")
        if parsed[0] in mcrr:
            raise ValueError(f"{path}: [mcrr] encoding {entry['encoding']!r} listed twice")
        mcrr[parsed[0]] = ops_of(entry, entry["encoding"])
    mnemonic = {e["name"].lower(): ops_of(e, e["name"]) for e in data.get("mnemonic", ())}
    mmio = {e["register"]: ops_of(e, e["register"]) for e in data.get("mmio", ())}
    displacement = {e["symbol"]: ops_of(e, e["symbol"]) for e in data.get("displacement", ())}
    quiet = frozenset(m.lower() for m in data.get("header_macros", {}).get("no_effect", ()))
    return CacheOpTable(mcr=mcr, mrc=mrc, mnemonic=mnemonic, mmio=mmio, displacement=displacement,
                        mcrr=mcrr, quiet_macros=quiet)  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Lexing: comments, continuations, statements

_SPECIAL_RE = re.compile(r'["@/]')
_SPECIAL_C_RE = re.compile(r'["/]')


def _strip_comments(line: str, in_block: bool, at_comments: bool) -> tuple[str, bool]:
    """Remove ``/* */``, ``//`` and (for assembly) ``@`` comments; returns (code, still_in_block)."""
    special = _SPECIAL_RE if at_comments else _SPECIAL_C_RE
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if in_block:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out), True
            out.append(" ")
            i, in_block = j + 2, False
            continue
        m = special.search(line, i)
        if not m:
            out.append(line[i:])
            break
        j = m.start()
        out.append(line[i:j])
        c = line[j]
        if c == '"':
            k = j + 1
            while k < n and line[k] != '"':
                k += 2 if line[k] == "\\" else 1
            out.append(line[j : k + 1])
            i = k + 1
        elif c == "@":
            break
        elif line.startswith("/*", j):
            in_block, i = True, j + 2
        elif line.startswith("//", j):
            break
        else:
            out.append("/")
            i = j + 1
    return "".join(out), in_block


def logical_lines(text: str, at_comments: bool = True) -> list[tuple[int, str]]:
    """(first physical line, statement) pairs: comments gone, continuations joined, ``;`` split."""
    out: list[tuple[int, str]] = []
    pending: str | None = None
    start = 0
    in_block = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        code, in_block = _strip_comments(raw, in_block, at_comments)
        if pending is not None:
            code = pending + " " + code
        else:
            start = lineno
        stripped = code.rstrip()
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            pending = stripped[:-1]
            continue
        pending = None
        stripped = stripped.strip()
        if not stripped:
            continue
        if stripped.startswith("#") or not at_comments or ";" not in stripped:
            out.append((start, stripped))
        else:
            for stmt in stripped.split(";"):
                if stmt.strip():
                    out.append((start, stmt.strip()))
    if pending is not None and pending.strip():
        out.append((start, pending.strip()))
    return out


# ---------------------------------------------------------------------------------------------------
# Items: what the reader makes of each statement

_COND = "eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al"
_BASES = (
    "adc|add|adr|adrl|and|asr|bic|bfc|bfi|clz|cmn|cmp|cps|cpsid|cpsie|dbg|dmb|dsb|eor|isb|ldc|ldm|ldr|"
    "lsl|lsr|mcr|mcr2|mcrr|mla|mls|mov|movw|movt|mrc|mrc2|mrrc|mrs|msr|mul|mvn|nop|orn|orr|pld|pldw|pli|"
    "pop|push|rev|rev16|rbit|ror|rrx|rsb|rsc|sbc|sbfx|sev|smull|smlal|stc|stm|str|sub|svc|swi|swp|teq|"
    "tst|ubfx|udf|umull|umlal|uxtb|uxth|sxtb|sxth|wfe|wfi|yield|clrex|bkpt|setend|it[te]{0,3}|tbb|tbh|"
    "cbz|cbnz|neg|ret|b|bl|blx|bx|bxj|smc|hvc|eret|ssat|usat|pkhbt|sel|uadd8|ldrex|strex"
)
_MNEMONIC_RE = re.compile(
    rf"^(?:{_BASES})(?:{_COND}|s|ia|ib|da|db|fd|ed|fa|ea|b|h|sb|sh|d|t|bt|ex|exd)*(?:\.w|\.n)?$"
)
_BRANCH_RE = re.compile(rf"^(?P<op>blx|bl|bx|b)(?P<cc>{_COND})?(?:\.w|\.n)?$")
_RET_RE = re.compile(rf"^ret(?P<cc>{_COND})?$")
_MOV_RE = re.compile(rf"^(?:mov|movs|mov(?:{_COND})s?)(?:\.w)?$")
_LDM_RE = re.compile(rf"^(?:ldm|pop)(?:{_COND}|ia|ib|da|db|fd|ed|fa|ea)*(?:\.w)?$")

_FUNC_START = {
    "ENTRY": True, "WEAK": True, "GLOBAL": True, "SYM_FUNC_START": True, "SYM_TYPED_FUNC_START": True,
    "SYM_CODE_START": True, "SYM_FUNC_START_LOCAL": False, "SYM_CODE_START_LOCAL": False,
    "SYM_FUNC_START_WEAK": True, "__ENTRY": True,
}  # fmt: skip
_FUNC_END = {"ENDPROC", "END", "SYM_FUNC_END", "SYM_CODE_END", "SYM_FUNC_END_ALIAS"}
_DATA_DIRECTIVES = {
    ".long", ".word", ".short", ".hword", ".byte", ".ascii", ".asciz", ".string", ".space", ".skip",
    ".quad", ".fill", ".zero", ".ltorg", ".pool", ".4byte", ".2byte", ".int",
}  # fmt: skip
_SECTION_DIRECTIVES = {
    ".text", ".data", ".bss", ".section", ".pushsection", ".popsection", ".previous",
    "__INIT", "__FINIT", "__INITDATA", "__INITRODATA", "__CPUINIT", "__REF", "__HEAD",
}  # fmt: skip
_WRAPPER_RE = re.compile(r"^(?P<w>ALT_SMP|ALT_UP|USER|W|ARM|THUMB|UNWIND|ARM_BE8|BSYM|TUSER)\s*\((?P<x>.*)\)\s*$")
_LABEL_RE = re.compile(r"^(?P<name>[A-Za-z_.$][\w.$]*|\d+)\s*:(?!:)\s*(?P<rest>.*)$")
_CALLLIKE_RE = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)\s*\((?P<args>.*)\)\s*$")
_IDENT_RE = re.compile(r"^[A-Za-z_.$][\w.$]*$")


@dataclass(slots=True)
class Item:
    """One statement that matters for control flow, symbols or tables."""

    kind: str  # insn label func endfunc alias global data section if else endif
    file: str
    line: int
    name: str = ""  # mnemonic / label / symbol / directive
    arg: str = ""  # operands / alias target / condition text
    conds: tuple[str, ...] = ()
    macros: tuple[str, ...] = ()
    cid: int = 0  # conditional block id (if/else/endif)
    exhaustive: bool = False  # endif: some branch is always taken


@dataclass
class AsmFile:
    """A read ``.S`` file: its items and symbol definitions."""

    rel: str
    items: list[Item] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)  # non-numeric label -> item index
    numeric: dict[str, list[int]] = field(default_factory=dict)  # "1" -> item indexes, ascending
    globals: set[str] = field(default_factory=set)
    aliases: dict[str, list[tuple[str, tuple[str, ...]]]] = field(default_factory=dict)
    owner: list[str] = field(default_factory=list)  # enclosing function symbol of each item
    notes: list[str] = field(default_factory=list)
    # computed by index(): the matching else/endif markers of every conditional block
    blocks: dict[int, tuple[list[int], int, bool]] = field(default_factory=dict)


@dataclass
class _Macro:
    name: str
    params: list[tuple[str, str | None]]  # (name, default); vararg ignored
    body: list[tuple[int, str]]
    file: str


@dataclass
class _Frame:
    kind: str  # "#" or "."
    cid: int
    parent_live: bool
    live: bool
    decided: bool  # an earlier branch was statically true
    emitted: bool  # markers were emitted (some branch is dynamic)
    exhaustive: bool
    prior: list[str]
    pushed: bool  # a condition is on the condition stack for the current branch


def _negate(cond: str) -> str:
    cond = cond.strip()
    if cond.startswith("!") and _IDENT_RE.match(cond[1:]):
        return cond[1:]
    if _IDENT_RE.match(cond):
        return "!" + cond
    return f"!({cond})"


_DEFINED_RE = re.compile(r"^!?\s*defined\s*\(?\s*([A-Za-z_]\w*)\s*\)?$")


class _Reader:
    """Turns the logical lines of one file (and what it includes) into items."""

    def __init__(self, tree: AsmTree, asm: AsmFile, directory: Path):
        self.tree = tree
        self.asm = asm
        self.directory = directory
        self.macros: dict[str, _Macro] = {}
        self.defines: set[str] = {"__ASSEMBLY__"}
        self.undefs: set[str] = set()
        self.frames: list[_Frame] = []
        self.conds: list[str] = []
        self.macro_chain: list[str] = []
        self.site: tuple[str, int] | None = None
        self.included: set[str] = set()
        self.counter = 0

    # -- conditions ----------------------------------------------------------------------------------
    def _live(self) -> bool:
        return not self.frames or self.frames[-1].live

    def _eval_cpp(self, kind: str, expr: str) -> bool | None:
        expr = expr.strip()
        if kind in ("ifdef", "ifndef"):
            name = expr.split()[0] if expr else ""
            val = True if name in self.defines else False if name in self.undefs else None
            if val is None:
                return None
            return val if kind == "ifdef" else not val
        if expr in ("0", "1"):
            return expr == "1"
        m = _DEFINED_RE.match(expr)
        if m:
            name = m.group(1)
            val = True if name in self.defines else False if name in self.undefs else None
            if val is None:
                return None
            return (not val) if expr.startswith("!") else val
        return None

    def _cond_text(self, kind: str, expr: str) -> str:
        expr = " ".join(expr.split())
        if kind == "ifdef":
            return expr
        if kind == "ifndef":
            return "!" + expr
        return expr

    def _open(self, kind: str, text: str, value: bool | None) -> None:
        cid = self.tree.next_cid()
        parent = self._live()
        frame = _Frame(kind, cid, parent, parent and value is not False, value is True, False, False, [text], False)
        if parent and value is None:
            self._emit("if", "", text, cid=cid)
            frame.emitted = True
            self.conds.append(text)
            frame.pushed = True
        self.frames.append(frame)

    def _else(self, kind: str, text: str | None, value: bool | None) -> None:
        """``text`` None means a plain else."""
        if not self.frames or self.frames[-1].kind != kind:
            self.asm.notes.append(f"unbalanced {kind}else")
            return
        frame = self.frames[-1]
        if frame.pushed:
            self.conds.pop()
            frame.pushed = False
        if frame.decided:
            frame.live = False
            return
        negated = " && ".join(_negate(p) for p in frame.prior)
        if text is None:
            value, branch = True, negated
        else:
            branch = f"{negated} && {text}" if negated else text
            frame.prior.append(text)
        if value is False:
            frame.live = False
            return
        frame.live = frame.parent_live
        if value is True:
            frame.decided = True
        if frame.emitted:
            if frame.parent_live:
                self._emit("else", "", branch, cid=frame.cid)
            if value is True:
                frame.exhaustive = True
        elif value is None and frame.parent_live:
            self._emit("if", "", branch, cid=frame.cid)
            frame.emitted = True
        if frame.emitted and frame.parent_live:
            self.conds.append(branch)
            frame.pushed = True

    def _close(self, kind: str) -> None:
        if not self.frames or self.frames[-1].kind != kind:
            self.asm.notes.append(f"unbalanced {kind}endif")
            return
        frame = self.frames.pop()
        if frame.pushed:
            self.conds.pop()
        if frame.emitted and frame.parent_live:
            self._emit("endif", "", "", cid=frame.cid, exhaustive=frame.exhaustive)

    # -- output --------------------------------------------------------------------------------------
    def _emit(self, kind: str, name: str, arg: str = "", cid: int = 0, exhaustive: bool = False,
              line: int = 0, file: str = "") -> None:  # fmt: skip
        if self.site is not None:
            file, line = self.site
        self.asm.items.append(
            Item(kind, file or self.asm.rel, line, name, arg, tuple(self.conds), tuple(self.macro_chain),
                 cid, exhaustive)  # fmt: skip
        )

    # -- reading -------------------------------------------------------------------------------------
    def read(self, lines: list[tuple[int, str]], rel: str) -> None:
        i = 0
        n = len(lines)
        while i < n:
            lineno, text = lines[i]
            i += 1
            low = text.lower()
            # preprocessor
            if text.startswith("#"):
                self._directive(text[1:].strip(), rel, lineno)
                continue
            head = low.split(None, 1)[0] if low else ""
            # collected blocks must be found even in dead code so their .endm/.endr do not leak
            if head in (".macro",):
                body, i = self._collect(lines, i, (".macro",), ".endm")
                if self._live():
                    self._define_macro(text, body, rel)
                continue
            if head in (".irp", ".irpc", ".rept"):
                body, i = self._collect(lines, i, (".irp", ".irpc", ".rept"), ".endr")
                if self._live():
                    self._repeat(head, text, body, rel)
                continue
            if head.startswith(".if") or head in (".else", ".elseif", ".endif"):
                self._gas_conditional(head, text[len(head):].strip())
                continue
            if not self._live():
                continue
            # ALT_SMP(x) followed by ALT_UP(y): one of the two runs
            m = _WRAPPER_RE.match(text)
            if m and m["w"] == "ALT_SMP":
                nxt = _WRAPPER_RE.match(lines[i][1]) if i < n else None
                self._open(".", "ALT_SMP", None)
                self._statement(m["x"].strip(), rel, lineno)
                if nxt and nxt["w"] == "ALT_UP":
                    self._else(".", None, None)
                    self._statement(nxt["x"].strip(), rel, lines[i][0])
                    i += 1
                self._close(".")
                continue
            self._statement(text, rel, lineno)

    def _collect(self, lines, i, openers, closer):
        depth = 1
        body = []
        while i < len(lines):
            lineno, text = lines[i]
            i += 1
            head = text.split(None, 1)[0].lower() if text else ""
            if head in openers:
                depth += 1
            elif head == closer:
                depth -= 1
                if depth == 0:
                    return body, i
            body.append((lineno, text))
        self.asm.notes.append(f"unterminated {openers[0]} block")
        return body, i

    def _directive(self, text: str, rel: str, lineno: int) -> None:
        parts = text.split(None, 1)
        if not parts:
            return
        kind, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        if kind in ("if", "ifdef", "ifndef"):
            if not self._live():
                self._open("#", "", False)
                return
            self._open("#", self._cond_text(kind, rest), self._eval_cpp(kind, rest))
        elif kind == "elif":
            self._else("#", self._cond_text("if", rest), self._eval_cpp("if", rest))
        elif kind == "else":
            self._else("#", None, True)
        elif kind == "endif":
            self._close("#")
        elif not self._live():
            return
        elif kind == "define":
            name = re.match(r"[A-Za-z_]\w*", rest)
            if name:
                self.defines.add(name.group(0))
                self.undefs.discard(name.group(0))
        elif kind == "undef":
            self.defines.discard(rest.strip())
            self.undefs.add(rest.strip())
        elif kind == "include":
            m = re.match(r'"([^"]+)"', rest)
            if m:
                self._include(m.group(1), rel)

    def _include(self, name: str, rel: str) -> None:
        path = self.directory / name
        if name in self.included:
            return
        if Path(name).is_absolute() or not within(path, self.tree.root):
            self.included.add(name)
            self.asm.notes.append(f"included {name} lies outside the tree: not read")
            return
        if not path.is_file():
            return
        self.included.add(name)
        lines = self.tree.lines_of(path)
        if lines is None:
            self.asm.notes.append(f"cannot read included {name}")
            return
        inc_rel = str(Path(rel).parent / name).replace("\\", "/")
        self.read(lines, inc_rel)

    def _define_macro(self, text: str, body: list[tuple[int, str]], rel: str) -> None:
        rest = text.split(None, 1)[1] if len(text.split(None, 1)) > 1 else ""
        m = re.match(r"\s*([\w.$\\]+)\s*,?\s*(.*)$", rest)
        if not m:
            return
        name = m.group(1).lower()
        params: list[tuple[str, str | None]] = []
        for piece in _split_args(m.group(2), len_hint=99):
            piece = piece.strip()
            if not piece:
                continue
            pm = re.match(r"^(\w+)(?::\w+)?\s*(?:=\s*(.*))?$", piece)
            if pm:
                params.append((pm.group(1), pm.group(2).strip() if pm.group(2) is not None else None))
        if name in self.macros:
            self.asm.notes.append(f"macro {name} defined twice; the first definition is used")
            return
        self.macros[name] = _Macro(name, params, body, rel)

    def _repeat(self, head: str, text: str, body: list[tuple[int, str]], rel: str) -> None:
        rest = text.split(None, 1)[1] if len(text.split(None, 1)) > 1 else ""
        if head == ".rept":  # a loop: its body once, as "loops appear once"
            self.read(body, rel)
            return
        m = re.match(r"\s*(\w+)\s*,?\s*(.*)$", rest)
        if not m:
            return
        var, values = m.group(1), m.group(2)
        seq = list(values.replace(",", "").strip()) if head == ".irpc" else values.split(",")
        for value in seq:
            sub = [(ln, _substitute(t, {var: value.strip()})) for ln, t in body]
            self.read(sub, rel)

    def _gas_conditional(self, head: str, rest: str) -> None:
        if head == ".endif":
            self._close(".")
            return
        if head == ".else":
            self._else(".", None, True)
            return
        kind = head[1:] if head != ".elseif" else "if"
        value: bool | None = None
        text = f"{head} {rest}".strip()
        arg = rest.strip()
        if kind in ("if", "ifne", "ifeq"):
            num = _int(arg)
            if num is not None:
                value = (num != 0) if kind in ("if", "ifne") else (num == 0)
        elif kind in ("ifb", "ifnb"):
            value = (not arg) if kind == "ifb" else bool(arg)
        elif kind in ("ifc", "ifnc"):
            a, _, b = arg.partition(",")
            same = a.strip().strip("'\"") == b.strip().strip("'\"")
            value = same if kind == "ifc" else not same
        if head == ".elseif":
            self._else(".", text, value)
        elif not self._live():
            self._open(".", "", False)
        else:
            self._open(".", text, value)

    def _statement(self, text: str, rel: str, lineno: int) -> None:
        # labels (possibly several) before a statement
        while True:
            m = _LABEL_RE.match(text)
            if not m:
                break
            self._emit("label", m["name"], line=lineno, file=rel)
            text = m["rest"].strip()
            if not text:
                return
        m = _WRAPPER_RE.match(text)
        if m:
            w, x = m["w"], m["x"].strip()
            if w in ("UNWIND",):
                return
            if w in ("ARM", "THUMB", "ARM_BE8", "ALT_UP"):
                cond = {"ARM": "!CONFIG_THUMB2_KERNEL", "THUMB": "CONFIG_THUMB2_KERNEL",
                        "ARM_BE8": "CONFIG_CPU_ENDIAN_BE8", "ALT_UP": "ALT_UP"}[w]  # fmt: skip
                self._open(".", cond, None)
                self._statement(x, rel, lineno)
                self._close(".")
                return
            self._statement(x, rel, lineno)  # USER, W, BSYM, TUSER: the instruction itself
            return
        m = _CALLLIKE_RE.match(text)
        if m and m["name"] in _FUNC_START:
            name = m["args"].split(",")[0].strip()
            self._emit("func", name, line=lineno, file=rel)
            self._emit("label", name, line=lineno, file=rel)
            if _FUNC_START[m["name"]]:
                self._emit("global", name, line=lineno, file=rel)
            return
        if m and m["name"] in _FUNC_END:
            self._emit("endfunc", m["args"].split(",")[0].strip(), line=lineno, file=rel)
            return
        if m and m["name"] in ("SYM_FUNC_ALIAS", "SYM_FUNC_ALIAS_LOCAL", "SYM_FUNC_ALIAS_WEAK"):
            a, _, b = m["args"].partition(",")
            self._emit("alias", a.strip(), b.strip(), line=lineno, file=rel)
            if m["name"] != "SYM_FUNC_ALIAS_LOCAL":
                self._emit("global", a.strip(), line=lineno, file=rel)
            return
        parts = text.split(None, 1)
        head = parts[0]
        rest = parts[1].strip() if len(parts) > 1 else ""
        low = head.lower()
        if low in (".equ", ".set", ".equiv", ".eqv"):
            a, _, b = rest.partition(",")
            if _IDENT_RE.match(b.strip()):
                self._emit("alias", a.strip(), b.strip(), line=lineno, file=rel)
            return
        am = re.match(r"^([A-Za-z_.$][\w.$]*)\s*=\s*([A-Za-z_.$][\w.$]*)$", text)
        if am and am.group(1).lower() not in self.macros:
            self._emit("alias", am.group(1), am.group(2), line=lineno, file=rel)
            return
        if low in (".globl", ".global"):
            for name in rest.split(","):
                self._emit("global", name.strip(), line=lineno, file=rel)
            return
        if low in _DATA_DIRECTIVES:
            self._emit("data", low, rest, line=lineno, file=rel)
            return
        if head in _SECTION_DIRECTIVES or low in _SECTION_DIRECTIVES:
            self._emit("section", head, rest, line=lineno, file=rel)
            return
        if low == ".size":
            return
        if low.startswith("."):
            if low == ".inst" or low.startswith(".inst."):
                self._emit("insn", low, rest, line=lineno, file=rel)
            return  # .align, .type, .arch, .syntax, .cfi_*, ...
        if low in self.macros:
            self._expand(self.macros[low], rest, rel, lineno)
            return
        self._emit("insn", low, rest, line=lineno, file=rel)

    def _expand(self, macro: _Macro, args: str, rel: str, lineno: int) -> None:
        if len(self.macro_chain) > 20 or macro.name in self.macro_chain:
            self.asm.notes.append(f"{rel}:{lineno}: macro {macro.name} recursion not expanded")
            return
        values: dict[str, str] = {}
        positional: list[str] = []
        names = {p for p, _ in macro.params}
        for piece in _split_args(args, len_hint=len(macro.params)):
            km = re.match(r"^\s*(\w+)\s*=\s*(.*)$", piece)
            if km and km.group(1) in names:
                values[km.group(1)] = km.group(2).strip()
            else:
                positional.append(piece.strip())
        pos = iter(positional)
        for pname, default in macro.params:
            if pname in values:
                continue
            value = next(pos, None)
            if value is None or value == "":
                value = default if default is not None else ""
            values[pname] = value
        self.counter += 1
        values["@"] = str(self.counter)
        body = [(ln, _substitute(t, values)) for ln, t in macro.body]
        outer_site = self.site
        if self.site is None:
            self.site = (rel, lineno)
        self.macro_chain.append(macro.name)
        try:
            self.read(body, macro.file)
        finally:
            self.macro_chain.pop()
            self.site = outer_site


def _comma_split(text: str, opens: str, closes: str) -> list[str]:
    """The pieces of `text` between the commas outside brackets (`opens`/`closes`), unstripped."""
    pieces: list[str] = []
    depth = 0
    cur: list[str] = []
    for c in text:
        if c in opens:
            depth += 1
        elif c in closes:
            depth -= 1
        if c == "," and depth <= 0:
            pieces.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    pieces.append("".join(cur))
    return pieces


def _split_args(text: str, len_hint: int) -> list[str]:
    """gas macro arguments: commas separate; without commas, blanks separate (when >1 parameter)."""
    text = text.strip()
    if not text:
        return []
    pieces = _comma_split(text, "([", ")]")
    if len(pieces) == 1 and len_hint > 1 and "=" not in text:
        return text.split()
    if len(pieces) == 1 and len_hint > 1 and "=" in text:
        return re.split(r"\s+(?=\w+\s*=)", text)
    return [p.strip() for p in pieces]


def _substitute(text: str, values: dict[str, str]) -> str:
    if "\\" not in text:
        return text

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "()":
            return ""
        if name in values:
            return values[name]
        return m.group(0)

    return re.sub(r"\\(\(\)|@|\w+)", repl, text)


def _int(text: str) -> int | None:
    text = text.strip().strip("()")
    try:
        return int(text, 0)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------
# Tables


@dataclass(frozen=True)
class TableEntry:
    symbol: str
    condition: str = ""  # the #if condition under which this symbol is the member's value
    line: int = 0


@dataclass(frozen=True)
class CacheTable:
    """One ``struct cpu_cache_fns`` instance: member -> candidate symbols (more than one under #if)."""

    name: str  # implementation name: "v7" for v7_cache_fns
    file: str
    line: int
    condition: str  # #if around the whole table ("" when unconditional)
    members: dict[str, tuple[TableEntry, ...]]


@dataclass(frozen=True)
class TableReference:
    """A processor table (``proc_info``) naming ``NAME_cache_fns``."""

    name: str
    file: str
    line: int
    conditions: tuple[str, ...]


_C_TABLE_RE = re.compile(r"\bstruct\s+cpu_cache_fns\s+(\w+)_cache_fns\b[^;={]*=\s*\{")
_C_MEMBER_RE = re.compile(r"\.\s*(\w+)\s*=\s*&?\s*(\w+)")


def read_c_cache_tables(text: str, rel: str) -> list[CacheTable]:
    """``struct cpu_cache_fns NAME_cache_fns ... = { .member = symbol, ... };`` with #if tracking."""
    tables: list[CacheTable] = []
    stack: list[tuple[list[str], list[str]]] = []  # per open #if: (conditions tested, branch texts)
    current: dict | None = None
    for lineno, stmt in logical_lines(text, at_comments=False):
        if stmt.startswith("#"):
            parts = stmt[1:].strip().split(None, 1)
            kind, rest = (parts[0] if parts else ""), " ".join(parts[1].split()) if len(parts) > 1 else ""
            if kind in ("if", "ifdef", "ifndef"):
                cond = "!" + rest if kind == "ifndef" else rest
                stack.append(([cond], [cond]))
            elif kind in ("elif", "else") and stack:
                tested, branches = stack[-1]
                negated = " && ".join(_negate(c) for c in tested)
                branches.append(f"{negated} && {rest}" if kind == "elif" else negated)
                if kind == "elif":
                    tested.append(rest)
            elif kind == "endif" and stack:
                stack.pop()
            continue
        conds = [branches[-1] for _, branches in stack]
        if current is None:
            m = _C_TABLE_RE.search(stmt)
            if m:
                current = {"name": m.group(1), "line": lineno, "depth": len(stack),
                           "cond": " && ".join(conds), "members": {}}  # fmt: skip
                stmt = stmt[m.end():]
            else:
                continue
        inner = " && ".join(conds[current["depth"]:])
        for mm in _C_MEMBER_RE.finditer(stmt):
            current["members"].setdefault(mm.group(1), []).append(TableEntry(mm.group(2), inner, lineno))
        if "}" in stmt:
            tables.append(CacheTable(current["name"], rel, current["line"], current["cond"],
                                     {k: tuple(v) for k, v in current["members"].items()}))  # fmt: skip
            current = None
    return tables


# ---------------------------------------------------------------------------------------------------
# The tree: every .S of arch/arm/mm, symbols across files, and the walk


@dataclass(frozen=True)
class Trace:
    """What running one symbol does to the caches (every path, loops once)."""

    symbol: str
    resolved: str  # the code label reached through aliases ("" when unresolved)
    file: str
    line: int
    steps: tuple[CacheOp, ...]
    undecoded: tuple[str, ...]
    via: tuple[str, ...]
    notes: tuple[str, ...]
    alias_conditions: tuple[str, ...] = ()
    fallthroughs: tuple[str, ...] = ()  # "a falls through into b", in the order met


@dataclass
class AsmTree:
    """All assembly files of one ``arch/arm/mm`` directory, read and indexed."""

    root: Path  # the kernel tree root; relative paths are from here
    optable: CacheOpTable
    files: list[AsmFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    tables: list[CacheTable] = field(default_factory=list)
    references: list[TableReference] = field(default_factory=list)
    member_order: tuple[str, ...] = CACHE_MEMBERS
    _cid: int = 0
    _lines: dict[Path, list[tuple[int, str]] | None] = field(default_factory=dict)
    _globals: dict[str, list[tuple[int, int, tuple[str, ...]]]] = field(default_factory=dict)
    _global_aliases: dict[str, list[tuple[int, str, tuple[str, ...]]]] = field(default_factory=dict)
    _traces: dict[str, Trace] = field(default_factory=dict)
    _coverages: dict[tuple[int, int], "Coverage"] = field(default_factory=dict)

    def next_cid(self) -> int:
        self._cid += 1
        return self._cid

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def lines_of(self, path: Path) -> list[tuple[int, str]] | None:
        if path not in self._lines:
            text = _read_text(path, self.root)
            self._lines[path] = None if isinstance(text, tuple) else logical_lines(text)
        return self._lines[path]

    # -- reading -------------------------------------------------------------------------------------
    def read_file(self, path: Path) -> AsmFile | None:
        rel = self.rel(path)
        text = _read_text(path, self.root)
        if isinstance(text, tuple):
            self.skipped.append((rel, text[1]))
            return None
        lines = logical_lines(text)
        self._lines[path] = lines
        asm = AsmFile(rel)
        reader = _Reader(self, asm, path.parent)
        reader.read(lines, rel)
        while reader.frames:
            asm.notes.append(f"{rel}: unterminated conditional at end of file")
            frame = reader.frames[-1]
            reader._close(frame.kind)
        _index(asm)
        self.files.append(asm)
        return asm

    def finish(self) -> None:
        """Build the cross-file symbol tables and find the cache tables and their references."""
        for fi, asm in enumerate(self.files):
            for name in asm.globals:
                if name in asm.labels:
                    idx = asm.labels[name]
                    self._globals.setdefault(name, []).append((fi, idx, asm.items[idx].conds))
                for target, conds in asm.aliases.get(name, ()):
                    self._global_aliases.setdefault(name, []).append((fi, target, conds))
            self._find_tables(asm)

    def _find_tables(self, asm: AsmFile) -> None:
        items = asm.items
        for idx, item in enumerate(items):
            if item.kind == "label" and item.name.endswith("_cache_fns"):
                entries: list[Item] = []
                j = idx + 1
                while j < len(items) and items[j].kind in ("data", "global", "func", "label", "if", "else", "endif"):
                    if items[j].kind == "data" and items[j].name in (".long", ".word", ".4byte", ".int"):
                        entries.append(items[j])
                    elif items[j].kind == "label" and items[j].name != item.name:
                        break
                    j += 1
                if not entries:
                    continue
                members: dict[str, list[TableEntry]] = {}
                values = [(e, v.strip()) for e in entries for v in e.arg.split(",")]
                for member, (entry, value) in zip(self.member_order, values):
                    extra = tuple(c for c in entry.conds if c not in item.conds)
                    members.setdefault(member, []).append(TableEntry(value, " && ".join(extra), entry.line))
                self.tables.append(CacheTable(item.name[: -len("_cache_fns")], item.file, item.line,
                                              " && ".join(item.conds),
                                              {k: tuple(v) for k, v in members.items()}))  # fmt: skip
            elif item.kind == "data" and item.name in (".long", ".word", ".4byte", ".int"):
                for value in item.arg.split(","):
                    value = value.strip()
                    if value.endswith("_cache_fns") and _IDENT_RE.match(value):
                        self.references.append(
                            TableReference(value[: -len("_cache_fns")], item.file, item.line, item.conds)
                        )

    # -- symbols -------------------------------------------------------------------------------------
    def resolve(self, name: str, from_file: int | None = None) -> tuple[int, int, str, tuple[str, ...], list[str]] | None:
        """(file index, item index, label, alias conditions, notes) of the code ``name`` runs."""
        conds: list[str] = []
        notes: list[str] = []
        seen: set[str] = set()
        while name not in seen:
            seen.add(name)
            if from_file is not None and name in self.files[from_file].labels:
                return from_file, self.files[from_file].labels[name], name, tuple(conds), notes
            defs = self._globals.get(name)
            if defs:
                if len(defs) > 1:
                    notes.append(f"{name} is defined {len(defs)} times; the first definition is used")
                fi, idx, _ = defs[0]
                return fi, idx, name, tuple(conds), notes
            if from_file is not None and name in self.files[from_file].aliases:
                alias = self.files[from_file].aliases[name]
                target, aconds = alias[0]
                conds.extend(aconds)
                name = target
                continue
            aliases = self._global_aliases.get(name)
            if aliases:
                fi, target, aconds = aliases[0]
                if len(aliases) > 1:
                    notes.append(f"{name} is aliased {len(aliases)} times; the first alias is used")
                conds.extend(aconds)
                from_file, name = fi, target
                continue
            if from_file is None:
                for fi, asm in enumerate(self.files):
                    if name in asm.labels:
                        notes.append(f"{name} resolves to a file-local label of {asm.rel}")
                        return fi, asm.labels[name], name, tuple(conds), notes
            return None
        notes.append(f"alias loop through {name}")
        return None

    def _target(self, fi: int, idx: int, label: str) -> tuple[int, int] | None:
        asm = self.files[fi]
        m = re.match(r"^(\d+)([bf])$", label)
        if m:
            positions = asm.numeric.get(m.group(1), [])
            if m.group(2) == "b":
                before = [p for p in positions if p <= idx]
                return (fi, before[-1]) if before else None
            after = [p for p in positions if p > idx]
            return (fi, after[0]) if after else None
        found = self.resolve(label, fi)
        return (found[0], found[1]) if found else None

    # -- the walk ------------------------------------------------------------------------------------
    def trace(self, symbol: str) -> Trace:
        if symbol in self._traces:
            return self._traces[symbol]
        self._traces[symbol] = Trace(symbol, "", "", 0, (), (), (), (f"recursive call of {symbol}",))
        found = self.resolve(symbol)
        if found is None:
            trace = Trace(symbol, "", "", 0, (), (), (),
                          (f"{symbol} is not defined in the assembly of arch/arm/mm",))  # fmt: skip
        else:
            fi, idx, label, aconds, notes = found
            trace = self._walk(symbol, fi, idx, label, aconds, notes)
            self._traces[f"@{fi}:{idx}"] = trace
        self._traces[symbol] = trace
        return trace

    def functions(self) -> list[tuple[int, int, str]]:
        """(file index, item index, name) of every function start (ENTRY, SYM_*_START) in the tree.

        ENTRY() also opens data objects (``NAME_cache_fns``, ``NAME_processor_functions``): a start
        whose first item after its label is data is not a function.
        """
        found = []
        for fi, asm in enumerate(self.files):
            for idx, item in enumerate(asm.items):
                if item.kind != "func":
                    continue
                j = idx + 1
                while j < len(asm.items) and asm.items[j].kind in ("label", "global", "if", "else", "endif"):
                    j += 1
                if j < len(asm.items) and asm.items[j].kind == "data":
                    continue
                found.append((fi, idx, item.name))
        return found

    def _trace_at(self, fi: int, idx: int, label: str) -> Trace:
        key = f"@{fi}:{idx}"
        if key not in self._traces:
            self._traces[key] = Trace(label, label, "", 0, (), (), (), (f"recursive call of {label}",))
            self._traces[key] = self._walk(label, fi, idx, label, (), [])
        return self._traces[key]

    def _walk(self, symbol: str, fi: int, idx: int, label: str, aconds: tuple[str, ...],
              notes: list[str]) -> Trace:  # fmt: skip
        start_asm = self.files[fi]
        steps: list[CacheOp] = []
        undecoded: list[str] = []
        via: list[str] = []
        notes = list(notes)
        entry_owner = start_asm.owner[idx] if idx < len(start_asm.owner) else label
        visited: set[tuple[int, int]] = set()
        # A worklist ordered by position (the entry's file first): both arms of a conditional are
        # visited before the code after it, so steps come out in program order; loops appear once.
        heap: list[tuple[int, int, int]] = [(0, fi, idx)]
        optable = self.optable
        start_fi = fi

        class _Push:
            @staticmethod
            def append(pos: tuple[int, int]) -> None:
                heapq.heappush(heap, (0 if pos[0] == start_fi else 1, pos[0], pos[1]))

        stack = _Push()
        fallthroughs: list[str] = []

        def sequential(f: int, i: int) -> None:
            """Continue at the next item; crossing into another function's code is a fall-through."""
            owners = self.files[f].owner
            if i + 1 < len(owners) and owners[i + 1] != owners[i] and owners[i + 1]:
                text = f"{owners[i] or '?'} falls through into {owners[i + 1]}"
                if text not in fallthroughs:
                    fallthroughs.append(text)
            stack.append((f, i + 1))

        def note(text: str) -> None:
            if text not in notes:
                notes.append(text)

        while heap:
            _, pf, pi = heapq.heappop(heap)
            pos = (pf, pi)
            if pos in visited:
                continue
            visited.add(pos)
            f, i = pos
            asm = self.files[f]
            if i >= len(asm.items):
                note(f"flow runs off the end of {asm.rel}")
                continue
            item = asm.items[i]
            owner = asm.owner[i]
            if owner and owner != entry_owner and owner != label and owner not in via:
                via.append(owner)
            kind = item.kind
            if kind in ("label", "func", "endfunc", "global", "alias"):
                sequential(f, i)
                continue
            if kind == "data":
                note(f"flow runs into data ({item.name}) at {item.file}:{item.line}")
                continue
            if kind == "section":
                note(f"flow reaches a section change ({item.name}) at {item.file}:{item.line}")
                continue
            if kind in ("if", "else"):
                for s in reversed(_block_successors(asm, i, item)):
                    stack.append((f, s))
                continue
            if kind == "endif":
                sequential(f, i)
                continue
            # an instruction
            mnem, ops_text = item.name, item.arg
            self._decode(item, asm, i, owner, steps, undecoded, optable)
            flow = _flow(mnem, ops_text)
            if flow is None:
                if not _MNEMONIC_RE.match(mnem) and mnem not in optable.quiet_macros:
                    note(f"unrecognised instruction or macro '{mnem}' at {item.file}:{item.line}")
                sequential(f, i)
                continue
            what, target, conditional = flow
            if what == "return":
                if conditional:
                    sequential(f, i)
                continue
            if what == "indirect":
                note(f"indirect branch '{mnem} {ops_text}' at {item.file}:{item.line} not followed")
                if conditional:
                    sequential(f, i)
                continue
            if what == "call":
                dest = self._target(f, i, target)
                if dest is None:
                    note(f"call to {target} at {item.file}:{item.line}: not defined in the assembly")
                    steps.append(CacheOp("unknown", f"{mnem} {ops_text}", item.file, item.line, owner,
                                         item.conds, conditional, item.macros))  # fmt: skip
                    undecoded.append(f"{item.file}:{item.line}: {mnem} {ops_text} (callee not found)")
                else:
                    callee = self._trace_at(dest[0], dest[1], target)
                    steps.extend(callee.steps)
                    undecoded.extend(u for u in callee.undecoded if u not in undecoded)
                    for v in (callee.resolved or target, *callee.via):
                        if v and v not in via:
                            via.append(v)
                    for n in callee.notes:
                        note(n)
                sequential(f, i)
                continue
            # branch
            dest = self._target(f, i, target)
            if conditional:
                sequential(f, i)
            if dest is None:
                note(f"branch to {target} at {item.file}:{item.line}: target not found")
            else:
                stack.append(dest)
        return Trace(symbol, label, start_asm.items[idx].file, start_asm.items[idx].line, tuple(steps),
                     tuple(undecoded), tuple(via), tuple(notes), aconds, tuple(fallthroughs))  # fmt: skip

    # -- what each operation covers ------------------------------------------------------------------
    def coverage(self, symbol: str) -> Coverage:
        """What the maintenance instructions ``symbol`` runs cover, from the flow of its arguments
        (see "Register flow" below): an extent for every decoded step of ``trace(symbol)``."""
        found = self.resolve(symbol)
        if found is None:
            return Coverage({})
        fi, idx = found[0], found[1]
        if (fi, idx) not in self._coverages:  # symbols of several tables alias one label
            self._coverages[(fi, idx)] = self._coverage_at(symbol, fi, idx)
        return self._coverages[(fi, idx)]

    def _coverage_at(self, symbol: str, fi: int, idx: int) -> Coverage:
        Key = tuple  # (call stack of return positions, file index, item index)
        start = _RegState(tuple(sorted(_ENTRY_ORIGINS.items())))
        states: dict[Key, _RegState] = {((), fi, idx): start}
        work = deque([((), fi, idx)])
        visits = 0
        notes: list[str] = []
        while work:
            visits += 1
            if visits > _MAX_VISITS:
                notes.append(f"{symbol}: register flow not settled after {_MAX_VISITS} steps; extents not read")
                return Coverage({}, (), tuple(notes))
            key = work.popleft()
            ctx, f, i = key
            state = states[key]
            for succ, after in self._register_steps(ctx, f, i, state):
                old = states.get(succ)
                new = after if old is None else old.join(after)
                if new != old:
                    states[succ] = new
                    work.append(succ)
        at: dict[tuple[int, int], _RegState] = {}
        for (_, f, i), state in states.items():
            at[(f, i)] = state if (f, i) not in at else at[(f, i)].join(state)
        extents: dict[tuple[str, int, str, str], str] = {}
        discards: list[tuple[str, bool]] = []
        for (f, i), state in sorted(at.items()):
            asm = self.files[f]
            item = asm.items[i] if i < len(asm.items) else None
            if item is None or item.kind != "insn":
                continue
            for reg, before, after in _transfer(state, item.name, item.arg)[1]:
                if reg == "r1" and "extent" in before and "extent" not in after and "other" not in after:
                    text = (f"{item.file}:{item.line}: {item.name} {item.arg}", "page" in after)
                    if text not in discards:
                        discards.append(text)
            steps: list[CacheOp] = []
            self._decode(item, asm, i, "", steps, [], self.optable)
            for step in steps:
                extent = self._extent(step.op, f, i, item, state, at)
                if not extent:
                    continue
                key4 = (step.file, step.line, step.raw, step.op)
                old = extents.get(key4)
                if old is None or _EXTENT_RANK.get(extent, 0) > _EXTENT_RANK.get(old, 0):
                    extents[key4] = extent
        return Coverage(extents, tuple(discards), tuple(notes))

    def _extent(self, op: str, f: int, i: int, item: Item, state: _RegState,
                at: dict[tuple[int, int], _RegState]) -> str:
        side = "-d-" if "-d-" in op else "-i-" if "-i-" in op else ""
        if not side:
            return ""  # a barrier, a drain, branch-predictor maintenance, unknown
        if op.split(side, 1)[1].startswith("all"):
            return "whole"
        if op.endswith(_RANGE_OPS_SUFFIX):  # the Feroceon form: the instruction writes the top address
            m = _MCR_RE.match(item.arg.strip())
            rt = m["rt"].strip() if m and m["rt"] else ""
            return _classify(state.get(_register(rt))) if _REG_RE.fullmatch(rt) else "range"
        latch = self._latch(f, i)
        if latch is None:
            return "line"
        compare = self.files[f].items[latch]
        ops = _operands(compare.arg)
        if not _COMPARE_RE.match(compare.name):
            ops = ops[:1]  # subs r1, r1, #32 (or cbnz r1, 1b): the counter it leaves
        return _classify(_origins(ops, at.get((f, latch), _RegState(()))))

    def _latch(self, f: int, i: int) -> int | None:
        """The flag-setting instruction whose conditional branch closes the loop around item ``i``
        (a branch back to a label at or before it), or None when the item is in no loop."""
        asm = self.files[f]
        flags = None
        for j in range(i + 1, len(asm.items)):
            item = asm.items[j]
            if item.kind != "insn":
                if item.kind in ("data", "section", "func", "endfunc"):
                    return None
                continue
            if _COMPARE_RE.match(item.name) or _FLAG_SETTING_RE.match(item.name):
                flags = j
                continue
            flow = _flow(item.name, item.arg)
            if flow is None or flow[0] == "call":
                continue
            what, target, conditional = flow
            if what == "branch" and conditional:
                dest = self._target(f, j, target)
                if dest is not None and dest[0] == f and dest[1] <= i:
                    return j if item.name in ("cbz", "cbnz") else flags  # cbnz r2, 1b: r2 is the count
                continue
            if not conditional:
                return None
        return None

    def _register_steps(self, ctx: tuple, f: int, i: int, state: _RegState):
        """(successor key, state there) for the item at (f, i) under the call stack ``ctx``."""
        asm = self.files[f]
        if i >= len(asm.items):
            return
        item = asm.items[i]
        kind = item.kind
        if kind in ("label", "func", "endfunc", "global", "alias", "endif"):
            yield (ctx, f, i + 1), state
            return
        if kind in ("if", "else"):
            for s in _block_successors(asm, i, item):
                yield (ctx, f, s), state
            return
        if kind != "insn":
            return  # data, a section change: the flow stops (the walk notes it)
        flow = _flow(item.name, item.arg)
        after, _ = _transfer(state, item.name, item.arg)
        if flow is None:
            yield (ctx, f, i + 1), after
            return
        what, target, conditional = flow
        if conditional:
            yield (ctx, f, i + 1), after
        if what == "return":
            if ctx:
                yield (ctx[:-1], *ctx[-1]), after
            return
        if what == "indirect":
            return
        dest = self._target(f, i, target)
        if what == "call":
            if dest is None or len(ctx) >= _MAX_CALL_DEPTH:  # a callee not followed: r0-r3 and ip clobbered
                yield (ctx, f, i + 1), after.set({r: _OTHER for r in ("r0", "r1", "r2", "r3", "r12")})
            else:
                yield (ctx + ((f, i + 1),), dest[0], dest[1]), after
            return
        if dest is not None:
            yield (ctx, dest[0], dest[1]), after

    def _decode(self, item: Item, asm: AsmFile, i: int, owner: str, steps: list[CacheOp],
                undecoded: list[str], optable: CacheOpTable) -> None:  # fmt: skip
        mnem = item.name
        conditional = _conditional(mnem)
        raw = f"{mnem} {item.arg}".strip()

        def add(ops: tuple[str, ...], why: str = "") -> None:
            for op in ops:
                steps.append(CacheOp(op, raw, item.file, item.line, owner, item.conds, conditional, item.macros))
                if op == "unknown":
                    undecoded.append(f"{item.file}:{item.line}: {raw}{why}")

        if mnem.startswith("mcrr"):
            parsed = parse_mcrr(item.arg)
            ops = optable.mcrr.get(parsed[0]) if parsed else None
            add(ops if ops is not None else ("unknown",))
        elif mnem == ".inst" or mnem.startswith(".inst."):
            add(("unknown",))
        elif mnem.startswith("mcr"):
            key = parse_encoding(item.arg)
            ops = optable.mcr.get(key) if key else None
            add(ops if ops is not None else ("unknown",))
        elif mnem.startswith("mrc") and not mnem.startswith("mrrc"):
            key = parse_encoding(item.arg)
            ops = optable.mrc.get(key) if key else None
            if ops is not None:
                add(ops)
            elif key is None or key[2] == 7:  # a read of the cache-operation space we cannot name
                add(("unknown",))
        elif mnem.split(".")[0] in optable.mnemonic:
            add(optable.mnemonic[mnem.split(".")[0]])
        elif mnem.startswith("ldr") and "=" in item.arg:
            sym = item.arg.split("=", 1)[1].strip()
            if sym in optable.displacement:
                add(optable.displacement[sym])
        elif mnem.startswith("str"):
            # v7-M: str Rt, [Rx] after movw Rx, #:lower16:BASEADDR_V7M_SCB + REG
            sm = re.match(r"^\s*\w+\s*,\s*\[\s*(\w+)\s*\]\s*$", item.arg)
            if not sm:
                return
            reg = sm.group(1)
            for back in range(i - 1, max(i - 4, -1), -1):
                prev = asm.items[back]
                if prev.kind != "insn":
                    break
                pm = re.match(rf"^\s*{reg}\s*,\s*#:lower16:\s*BASEADDR_V7M_SCB\s*\+\s*(\w+)", prev.arg)
                if prev.name.startswith("movw") and pm:
                    ops = optable.mmio.get(pm.group(1))
                    add(ops if ops is not None else ("unknown",), f" ({pm.group(1)})")
                    return


_SUFFIX_RE = re.compile(rf"^(?:s|ia|ib|da|db|fd|ed|fa|ea|b|h|sb|sh|d|t)*(?P<cc>{_COND})?(?:s|ia|ib|da|db|fd|ed|fa|ea|b|h|sb|sh|d|t)*$")
_STEMS = ("mcr2", "mcr", "ldm", "pop", "movs", "mov", "subs", "sub", "adds", "add", "ldr", "str", "movw", "movt")


def _conditional(mnem: str) -> bool:
    """Whether an instruction carries a condition code (``mcrne``, ``ldmfdeq``, ``movne``...)."""
    stem = mnem.split(".")[0]
    for base in _STEMS:
        if stem.startswith(base):
            m = _SUFFIX_RE.match(stem[len(base):])
            return bool(m and m["cc"] and m["cc"] != "al")
    return False


def _flow(mnem: str, ops: str) -> tuple[str, str, bool] | None:
    """(kind, target, conditional) for control-flow instructions; None for straight-line ones."""
    m = _BRANCH_RE.match(mnem)
    if m:
        cond = bool(m["cc"]) and m["cc"] != "al"
        target = ops.split(",")[0].strip()
        if m["op"] == "bx":
            return ("return", "", cond) if target == "lr" else ("indirect", target, cond)
        if m["op"] == "blx":
            return ("call", target, cond) if _IDENT_RE.match(target) else ("indirect", target, cond)
        if m["op"] == "bl":
            return ("call", target, cond)
        return ("branch", target, cond)
    if mnem in ("cbz", "cbnz"):
        return ("branch", ops.split(",")[-1].strip(), True)
    m = _RET_RE.match(mnem)
    if m:
        return ("return", "", bool(m["cc"]) and m["cc"] != "al")
    if _LDM_RE.match(mnem) and re.search(r"\bpc\b", ops, re.I):
        return ("return", "", _conditional(mnem))
    dest = ops.split(",")[0].strip().lower()
    if dest == "pc":
        src = ops.split(",", 1)[1].strip().lower().replace(" ", "") if "," in ops else ""
        if mnem.startswith("sub") and src == "pc,#4":
            return None  # sub pc, pc, #4: flush the pipeline and continue at the next instruction
        if src.startswith("lr") or mnem.startswith("ldr"):
            return ("return", "", _conditional(mnem))
        return ("indirect", src, _conditional(mnem))
    return None


def _block_successors(asm: AsmFile, i: int, item: Item) -> list[int]:
    """Where control goes from an ``if`` marker (each branch, and past the block unless some branch
    always runs) or an ``else`` marker (past the block: the branch before it is done)."""
    elses, end, exhaustive = asm.blocks.get(item.cid, ([], i, False))
    if item.kind == "else":
        return [end]
    succ = [i + 1] + [e + 1 for e in elses]
    if not exhaustive:
        succ.append(end)
    return succ


def _index(asm: AsmFile) -> None:
    """Labels, conditional blocks and the owning function of every item.

    A named label starts a new owner when it opens a function (ENTRY, SYM_FUNC_START), follows a
    function end, or follows an instruction that never falls through (a return or an unconditional
    branch): the shape of the file-local helpers such as ``v7_dma_inv_range:``.
    """
    owner = ""
    closed = True  # no function is open, or the last instruction does not fall through
    open_blocks: dict[int, tuple[list[int], int]] = {}
    for idx, item in enumerate(asm.items):
        kind = item.kind
        if kind == "label":
            if item.name.isdigit():
                asm.numeric.setdefault(item.name, []).append(idx)
            elif item.name not in asm.labels:
                asm.labels[item.name] = idx
                if closed and not item.name.startswith(".L"):
                    owner = item.name
        elif kind == "func":
            owner = item.name
            closed = False
        elif kind == "endfunc":
            closed = True
        elif kind == "global":
            asm.globals.add(item.name)
        elif kind == "alias":
            asm.aliases.setdefault(item.name, []).append((item.arg, item.conds))
        elif kind == "if":
            open_blocks[item.cid] = ([], idx)
        elif kind == "else":
            if item.cid in open_blocks:
                open_blocks[item.cid][0].append(idx)
        elif kind == "endif":
            elses, _ = open_blocks.pop(item.cid, ([], idx))
            asm.blocks[item.cid] = (elses, idx, item.exhaustive)
        elif kind == "insn":
            flow = _flow(item.name, item.arg)
            closed = bool(flow and not flow[2] and flow[0] in ("return", "branch", "indirect")) and not item.conds
        elif kind in ("data", "section"):
            closed = True
        asm.owner.append(owner)


# ---------------------------------------------------------------------------------------------------
# Register flow: what range each maintenance instruction covers
#
# Every ranged cpu_cache_fns member takes the start address in r0 and the end address or the size in
# r1 (cacheflush.h: flush_user_range, coherent_*_range and dma_flush_range take (start, end);
# flush_kern_dcache_area and dma_*_area take (start, size)).  A forward data flow over the code a
# member runs (the walk's control flow, calls followed with their return address) gives each
# register the set of places its value may come from:
#
#   start   r0 on entry            page    an immediate naming the page size (PAGE_SZ, PAGE_SIZE, 4096)
#   extent  r1 on entry            const   any other immediate
#   other   a load, a coprocessor or status read, a callee outside the assembly, anything not decoded
#
# A Feroceon range operation (c15) covers [its start write, its top write]: its extent is where the
# top register comes from.  A by-line operation inside a loop covers what the loop's compare bounds:
# where the compared registers come from.  `extent` among them: the range given ("range"); only
# start, page and constants, with a page: one page from the start, whatever the size ("page"); only
# start and constants: a fixed length ("fixed"); `other`: not known, read as the range given.  A
# by-line operation outside any loop covers one line ("line"), a whole-cache operation "whole".

_REG_RE = re.compile(r"\b(r1[0-5]|r[0-9]|ip|fp|sl|sb|sp|lr|pc)\b", re.I)
_REG_ALIASES = {"ip": "r12", "fp": "r11", "sl": "r10", "sb": "r9", "sp": "r13", "lr": "r14", "pc": "r15"}
# an immediate that names the page: the kernel's macros, or the 4 KiB of every ARM page spelled out
_PAGE_RE = re.compile(r"\bPAGE_(?:SZ|SIZE|SHIFT|MASK)\b|(?<![\w.])(?:4096|0x1000)(?![\w.])")
_ARITH_RE = re.compile(
    r"^(?P<base>movw|movt|mov|mvn|neg|add|adc|sub|sbc|rsb|rsc|and|orr|orn|eor|bic|lsl|lsr|asr|ror|rrx|mul|mla|mls|"
    r"ubfx|sbfx|bfc|bfi|clz|rbit|rev16|rev|uxtb|uxth|sxtb|sxth|ldrex|ldr|ldm|pop|push|stm|mrc|mrs)(?P<rest>[a-z]*)"
    r"(?:\.w|\.n)?$")
_COMPARE_RE = re.compile(rf"^(?:cmp|cmn|tst|teq)(?:{_COND})?(?:\.w|\.n)?$")
_FLAG_SETTING_RE = re.compile(rf"^(?:adds|subs|ands|orrs|movs|bics|eors|rsbs)(?:{_COND})?(?:\.w|\.n)?$"
                              rf"|^(?:add|sub|and|orr|mov|bic|eor|rsb)(?:{_COND})s(?:\.w|\.n)?$")
_RANGE_OPS_SUFFIX = "-range"
_ENTRY_ORIGINS = {"r0": frozenset({"start"}), "r1": frozenset({"extent"})}
_OTHER = frozenset({"other"})
_KEEP = object()  # _RegState.set: the stack as it was
_EXTENT_RANK = {"range": 4, "page": 3, "fixed": 2, "line": 1}
_MAX_CALL_DEPTH = 8
_MAX_VISITS = 200_000


def _register(name: str) -> str:
    name = name.lower()
    return _REG_ALIASES.get(name, name)


@lru_cache(maxsize=4096)
def _operands(text: str) -> tuple[str, ...]:
    """Top-level comma-separated operands (``[r0, #4]`` and ``{r0, r1}`` stay whole)."""
    if "[" not in text and "{" not in text and "(" not in text:
        return tuple(piece.strip() for piece in text.split(",") if piece.strip())
    pieces = [piece.strip() for piece in _comma_split(text, "[{(", "]})")]
    return tuple(pieces[:-1] + [pieces[-1]] if pieces[-1] else pieces[:-1])


def _register_list(text: str) -> list[str]:
    """``{r0 - r3, lr}`` -> ["r0", "r1", "r2", "r3", "r14"] (ascending, as ldm/stm order them)."""
    regs: set[int] = set()
    for piece in text.strip().strip("{}").split(","):
        ends = [_register(r) for r in _REG_RE.findall(piece)]
        numbers = [int(r[1:]) for r in ends if r[1:].isdigit()]
        if len(numbers) == 2 and "-" in piece:
            regs.update(range(min(numbers), max(numbers) + 1))
        else:
            regs.update(numbers)
    return [f"r{n}" for n in sorted(regs)]


@dataclass(frozen=True)
class _RegState:
    """Origins of each register (absent: `other`), and the origins pushed on the stack (None: unknown)."""

    regs: tuple[tuple[str, frozenset[str]], ...]
    stack: tuple[tuple[frozenset[str], ...], ...] | None = ()
    by_name: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", dict(self.regs))

    def get(self, reg: str) -> frozenset[str]:
        return self.by_name.get(reg, _OTHER)

    def set(self, values: dict[str, frozenset[str]], conditional: bool = False, stack: object = _KEEP) -> "_RegState":
        """Registers written (joined with their old origins when the instruction is conditional),
        and the stack after it (`_KEEP`: unchanged; a conditional push or pop leaves it unknown)."""
        if not values and stack is _KEEP:
            return self
        regs = dict(self.by_name)
        for reg, origins in values.items():
            regs[reg] = origins | regs.get(reg, _OTHER) if conditional else origins
        if stack is _KEEP:
            stack = self.stack
        elif conditional and stack != self.stack:
            stack = None
        return _RegState(tuple(sorted(regs.items())), stack)  # type: ignore[arg-type]

    def join(self, other: "_RegState") -> "_RegState":
        if self == other:
            return self
        regs = dict(self.by_name)
        for reg, origins in other.regs:
            regs[reg] = regs.get(reg, _OTHER) | origins
        for reg in set(regs) - {r for r, _ in other.regs}:
            regs[reg] = regs[reg] | _OTHER
        if self.stack == other.stack:
            stack = self.stack
        elif self.stack is not None and other.stack is not None and len(self.stack) == len(other.stack):
            stack = tuple(tuple(a | b for a, b in zip(x, y)) if len(x) == len(y) else (_OTHER,) * len(x)
                          for x, y in zip(self.stack, other.stack))
        else:
            stack = None
        return _RegState(tuple(sorted(regs.items())), stack)


def _origins(operands: tuple[str, ...] | list[str], state: _RegState) -> frozenset[str]:
    """Where a value computed from these operands may come from."""
    out: set[str] = set()
    for operand in operands:
        for reg in _REG_RE.findall(operand):
            out |= state.get(_register(reg))
        if "#" in operand or operand.startswith("="):
            out.add("page" if _PAGE_RE.search(operand) else "const")
    return frozenset(out)


def _transfer(state: _RegState, mnem: str, arg: str) -> tuple[_RegState, list[tuple[str, frozenset[str], frozenset[str]]]]:
    """The state after one instruction, and its register writes as (register, before, after)."""
    m = _ARITH_RE.match(mnem)
    ops = _operands(arg)
    if m is None:
        no_write = (_flow(mnem, arg) is not None or _COMPARE_RE.match(mnem) or mnem.startswith(
            ("str", "stm", "mcr", "pld", "pli", "dsb", "dmb", "isb", "nop", "msr", "cps", "wf", "sev", "svc",
             "swi", "it", "bkpt", "setend", "udf", "clrex", "dbg", ".inst", "cmp", "cmn", "tst", "teq")))
        if no_write or not ops or not _REG_RE.fullmatch(ops[0].rstrip("!")):
            return state, []
        dest = _register(ops[0])  # an instruction not modelled: its result may come from anything
        value = _origins(ops, state) | _OTHER
        return state.set({dest: value}), [(dest, state.get(dest), value)]
    base, rest = m["base"], m["rest"]
    suffix = _SUFFIX_RE.match(rest)
    conditional = bool(suffix and suffix["cc"] and suffix["cc"] != "al")
    writes: dict[str, frozenset[str]] = {}
    stack: object = _KEEP
    if base in ("push", "stm"):
        if base == "push" or (ops and ops[0].replace(" ", "").lower() in ("sp!", "r13!")):
            regs = _register_list(ops[-1] if ops else "")
            if state.stack is not None:
                stack = state.stack + (tuple(state.get(r) for r in regs),)
        return state.set({}, conditional, stack), []
    if base in ("pop", "ldm"):
        regs = _register_list(ops[-1] if ops else "")
        from_stack = base == "pop" or (ops and ops[0].replace(" ", "").lower() in ("sp!", "r13!"))
        if from_stack and state.stack and len(state.stack[-1]) == len(regs):
            writes = dict(zip(regs, state.stack[-1]))
            stack = state.stack[:-1]
        else:
            writes = {r: _OTHER for r in regs}
            if from_stack:
                stack = None
    elif base in ("mrc", "mrs"):
        dest = _mrc_dest(mnem, arg)
        if dest is None:
            return state, []
        writes = {dest: _OTHER}
    elif not ops or not _REG_RE.fullmatch(ops[0]):
        return state, []
    elif base in ("ldr", "ldrex"):
        source = ops[1] if len(ops) > 1 else ""
        writes = {_register(ops[0]): _origins([source], state) if source.startswith("=") else _OTHER}
    else:
        sources = ops[1:]
        if base in ("movt", "bfi", "bfc") or (len(ops) == 2 and base not in ("mov", "mvn", "neg", "movw", "clz",
                                                                             "rbit", "rev", "rev16", "uxtb",
                                                                             "uxth", "sxtb", "sxth")):
            sources = ops  # the destination is read too (two-operand Thumb forms, movt, bit fields)
        writes = {_register(ops[0]): _origins(sources, state)}
    changes = [(reg, state.get(reg), value) for reg, value in writes.items()]
    return state.set(writes, conditional, stack), changes


def _mrc_dest(mnem: str, arg: str) -> str | None:
    if mnem.startswith("mrc") and not mnem.startswith("mrrc"):
        m = _MCR_RE.match(arg.strip())
        return _register(m["rt"]) if m and m["rt"] and _REG_RE.fullmatch(m["rt"].strip()) else None
    if mnem.startswith("mrs"):
        first = _operands(arg)[:1]
        return _register(first[0]) if first and _REG_RE.fullmatch(first[0]) else None
    return None


@dataclass(frozen=True)
class Coverage:
    """What each maintenance instruction reached from one symbol covers, from its arguments' flow."""

    extents: dict[tuple[str, int, str, str], str]  # (file, line, raw, op) -> extent (see above)
    # (where, page): "file:line: insn" that replaces the end or size in r1 by a value that does not
    # come from it (from the start and constants; `page` when one names the page size)
    discards: tuple[tuple[str, bool], ...] = ()
    notes: tuple[str, ...] = ()

    def extent_of(self, step: CacheOp) -> str:
        return self.extents.get((step.file, step.line, step.raw, step.op), "")


def _classify(bound: frozenset[str]) -> str:
    if "extent" in bound or "other" in bound or not bound:
        return "range"
    if "page" in bound:
        return "page"
    return "fixed"


def _read_text(path: Path, root: Path) -> str | tuple[None, str]:
    """The text of an assembly file inside the kernel tree `root` (a link out of it is refused)."""
    try:
        data = read_regular(path, MAX_FILE_BYTES, root)[0]
    except OSError as exc:
        return (None, f"unreadable: {exc.strerror or exc}")
    return data.decode("utf-8", "replace")  # a stray byte in a comment is no reason to skip the file


_C_STRUCT_RE = re.compile(r"struct\s+cpu_cache_fns\s*\{(?P<body>.*?)\}", re.S)
_C_FNPTR_RE = re.compile(r"\(\s*\*\s*(\w+)\s*\)")


def member_order_from_header(text: str) -> tuple[str, ...] | None:
    """The member order of ``struct cpu_cache_fns`` from asm/cacheflush.h (what ``.long`` lists follow)."""
    m = _C_STRUCT_RE.search(text)
    if not m:
        return None
    names = tuple(_C_FNPTR_RE.findall(m.group("body")))
    return names or None


def read_mm(root: Path, mm_dir: Path, optable: CacheOpTable | None = None) -> AsmTree:
    """Read every ``*.S`` (and the C ``cpu_cache_fns`` tables) of ``mm_dir``; paths relative to ``root``."""
    tree = AsmTree(root=root, optable=optable or load_cache_ops())
    header = root / "arch/arm/include/asm/cacheflush.h"
    if header.is_file():
        text = _read_text(header, root)
        if isinstance(text, str):
            order = member_order_from_header(text)
            if order:
                tree.member_order = order
    for path in sorted(mm_dir.glob("*.S")):
        tree.read_file(path)
    for path in sorted(mm_dir.glob("*.c")):
        text = _read_text(path, root)
        if isinstance(text, tuple):
            tree.skipped.append((tree.rel(path), text[1]))
            continue
        if "cpu_cache_fns" in text:
            tree.tables.extend(read_c_cache_tables(text, tree.rel(path)))
    tree.finish()
    return tree


# ---------------------------------------------------------------------------------------------------
# Summaries


@dataclass(frozen=True)
class Summary:
    """The effect of a list of steps: what CacheFunction records besides the steps themselves."""

    d: str
    i: str
    scope: str
    d_scope: str
    i_scope: str
    ops: tuple[str, ...]


def squash(ops: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Collapse immediate repetitions (``x x x`` -> ``x``, ``x y x y`` -> ``x y``): unrolled loops."""
    seq = list(ops)
    changed = True
    while changed:
        changed = False
        for period in range(1, len(seq) // 2 + 1):
            i = 0
            while i + 2 * period <= len(seq):
                if seq[i : i + period] == seq[i + period : i + 2 * period]:
                    del seq[i + period : i + 2 * period]
                    changed = True
                else:
                    i += 1
    return tuple(seq)


def _extent(rest: str, extent: str) -> str:
    """The scope one step gives its side: whole-cache forms "whole"; a ranged form its `extent`
    ("page" stays "page"; "range", "fixed", "line" and not analysed read as "range")."""
    if rest.startswith("all"):
        return "whole"
    return "page" if extent == "page" else "range"


def summarize(steps: tuple[CacheOp, ...] | list[CacheOp]) -> Summary:
    """D effect (union of every path), I effect, and scopes of a function's decoded steps.

    A side's scope is "range" when some ranged operation of it covers the range given, else "page"
    when one covers only the page from the start, else "whole" or "none"; the function's scope is
    "page" when either side's is (it does not cover a range longer than a page), else as before."""
    d_effects: set[str] = set()
    d_scopes: set[str] = set()
    i_scopes: set[str] = set()
    for step in steps:
        op = step.op
        if "-d-" in op:
            effect, rest = op.split("-d-", 1)
            d_effects.update(effect.split("+"))
            d_scopes.add(_extent(rest, step.extent))
        elif "-i-" in op:
            i_scopes.add(_extent(op.split("-i-", 1)[1], step.extent))
    if {"clean", "invalidate"} <= d_effects:
        d = "clean+invalidate"
    else:
        d = next(iter(d_effects), "none")

    def scope_of(scopes: set[str]) -> str:
        for scope in ("range", "page", "whole"):
            if scope in scopes:
                return scope
        return "none"

    d_scope, i_scope = scope_of(d_scopes), scope_of(i_scopes)
    scope = "page" if "page" in (d_scope, i_scope) else scope_of(d_scopes | i_scopes)
    return Summary(d, "invalidate" if i_scopes else "none", scope, d_scope, i_scope,
                   squash([s.op for s in steps]))  # fmt: skip
