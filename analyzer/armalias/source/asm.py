"""A line-based reader of the assembly files in arch/arm/mm, one file at a time.

Reads GNU-as-with-cpp assembly (``*.S``) without a grammar: comments, ``\\`` continuations, ``#if``
families and ``.if`` families (conditions are kept, not dropped: an instruction under ``#ifdef
CONFIG_X`` is recorded with that condition and the control flow has a path with and a path without
it), ``.macro`` / ``.irp`` / ``.rept`` expansion of the macros a file defines or includes (such as
``proc-macros.S``), the kernel's wrappers (``ALT_SMP``/``ALT_UP``, ``USER``, ``W``, ``ARM``/``THUMB``),
both symbol styles (``ENTRY``/``ENDPROC`` and ``SYM_*FUNC_START``/``SYM_FUNC_END``) and the aliases
(``.equ``, ``.set``, ``SYM_FUNC_ALIAS``).  Each file becomes an `AsmFile`: the `Item` of every
statement that matters for control flow, symbols or tables, with its conditions.

It also holds the table that decodes cache maintenance instructions (``rules/cache-ops.toml``),
which source/inline_asm.py uses too, and the lexing (`logical_lines`) that the C table reader shares.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from armalias.cacheimpl import CACHE_OPS
from armalias.source.files import read_regular, within
from armalias.source.text import MAX_FILE_BYTES

if TYPE_CHECKING:  # the reader reads into a tree; source/asmtree.py imports this module
    from armalias.source.asmtree import AsmTree

# ---------------------------------------------------------------------------------------------------
# The decoding table (rules/cache-ops.toml)

MCR_RE = re.compile(
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
    m = MCR_RE.match(text.strip())
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
LABEL_RE = re.compile(r"^(?P<name>[A-Za-z_.$][\w.$]*|\d+)\s*:(?!:)\s*(?P<rest>.*)$")
_CALLLIKE_RE = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)\s*\((?P<args>.*)\)\s*$")
IDENT_RE = re.compile(r"^[A-Za-z_.$][\w.$]*$")


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
    # computed by asmflow.index(): the matching else/endif markers of every conditional block
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


def negate(cond: str) -> str:
    cond = cond.strip()
    if cond.startswith("!") and IDENT_RE.match(cond[1:]):
        return cond[1:]
    if IDENT_RE.match(cond):
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
        negated = " && ".join(negate(p) for p in frame.prior)
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
            m = LABEL_RE.match(text)
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
            if IDENT_RE.match(b.strip()):
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


def comma_split(text: str, opens: str, closes: str) -> list[str]:
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
    pieces = comma_split(text, "([", ")]")
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
# Files


def read_text(path: Path, root: Path) -> str | tuple[None, str]:
    """The text of an assembly file inside the kernel tree `root` (a link out of it is refused)."""
    try:
        data = read_regular(path, MAX_FILE_BYTES, root)[0]
    except OSError as exc:
        return (None, f"unreadable: {exc.strerror or exc}")
    return data.decode("utf-8", "replace")  # a stray byte in a comment is no reason to skip the file


def read_items(tree: AsmTree, rel: str, lines: list[tuple[int, str]], directory: Path) -> AsmFile:
    """The items of one file (its logical `lines`, and what it includes from `directory`)."""
    asm = AsmFile(rel)
    reader = _Reader(tree, asm, directory)
    reader.read(lines, rel)
    while reader.frames:
        asm.notes.append(f"{rel}: unterminated conditional at end of file")
        frame = reader.frames[-1]
        reader._close(frame.kind)
    return asm
