"""Statement-order events of one C function, with the conditions each runs under.

Built on demand for the few functions the alias analysis looks at (re-parsing their file is cheap),
from the neutralized text so lines and columns are the real ones.  Plain data out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from armalias.facts import CALLED, positional_pickle
from armalias.source.cparse import function_name, parser, squash
from armalias.source.inline_asm import asm_maintenance
from armalias.source.text import at_line_start, blanked, comment_spans, neutralize

if TYPE_CHECKING:  # tree-sitter is imported by source/cparse.py alone
    from tree_sitter import Node

LOOP = "<loop>"


@positional_pickle
@dataclass(frozen=True, slots=True)
class Guard:
    cond: str  # the condition text, squashed; LOOP for a loop body
    holds: bool  # True: inside the then-branch / loop body; False: the else-branch
    # the code after `if (cond) { ...; return; }`: reached only when cond is false, but always
    # then, so an assignment there is no conditional one
    exit: bool = False


FIELD_STORE = "<field>"  # Event.width of a store to a struct member
DECLARATION = "<decl>"  # Event.width of the assignment a local's declaration makes


@positional_pickle
@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # "assign" | "store" | "call" | "return" | "declare" (a local with no value)
    line: int
    column: int
    target: str  # assign: the variable; store: the lvalue text; call: the callee (".member" for fn pointers)
    expr: str = ""  # assign: the value; store: the pointer written through; return: the value
    args: tuple[str, ...] = ()
    guards: tuple[Guard, ...] = ()
    width: str = ""  # store: the type written when a cast states it


@positional_pickle
@dataclass(frozen=True, slots=True)
class FunctionBody:
    name: str
    file: str
    line: int
    params: tuple[str, ...]
    events: tuple[Event, ...]


def _t(src: bytes, n: Node) -> str:
    return squash(src[n.start_byte:n.end_byte].decode("utf-8", "replace"))


class _Walker:
    def __init__(self, src: bytes):
        self.src = src
        self.events: list[Event] = []

    def stmt(self, node: Node, guards: tuple[Guard, ...]) -> None:
        t = node.type
        if t == "if_statement":
            cond = node.child_by_field_name("condition")
            ctext = _t(self.src, cond) if cond is not None else ""
            if ctext.startswith("(") and ctext.endswith(")"):
                ctext = ctext[1:-1].strip()
            if cond is not None:
                self.expr(cond, guards)
            cons = node.child_by_field_name("consequence")
            if cons is not None:
                self.stmt(cons, guards + (Guard(ctext, True),))
            alt = node.child_by_field_name("alternative")
            if alt is not None:
                self.stmt(alt, guards + (Guard(ctext, False),))
            return
        if t in ("for_statement", "while_statement", "do_statement", "switch_statement"):
            for child in node.named_children:
                if child.type in ("compound_statement",) or child.type.endswith("_statement"):
                    self.stmt(child, guards + (Guard(LOOP, True),))
                else:
                    self.expr(child, guards)
            return
        if t in ("compound_statement", "else_clause", "labeled_statement", "case_statement",
                 "preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "ERROR"):
            for child in node.named_children:
                if child.type in ("comment",):
                    continue
                if child.type.endswith("statement") or child.type in (
                        "declaration", "compound_statement", "else_clause", "preproc_if", "preproc_ifdef",
                        "preproc_else", "preproc_elif", "ERROR"):
                    self.stmt(child, guards)
                    if t == "compound_statement" and (cond := self._exits_when(child)) is not None:
                        guards = guards + (Guard(cond, False, True),)
                else:
                    self.expr(child, guards)
            return
        if t == "return_statement":
            for child in node.named_children:
                self.expr(child, guards)
                self.events.append(Event("return", node.start_point[0] + 1, node.start_point[1] + 1, "",
                                         _t(self.src, child), (), guards))
            return
        self.expr(node, guards)

    def _exits_when(self, node: Node) -> str | None:
        """The condition of `if (cond) return ...;` or `if (cond) { ...; return; }` with no else:
        what follows runs only when it is false.  None for any other statement."""
        if node.type != "if_statement" or node.child_by_field_name("alternative") is not None:
            return None
        cons = node.child_by_field_name("consequence")
        while cons is not None and cons.type == "compound_statement":
            body = [c for c in cons.named_children if c.type != "comment"]
            cons = body[-1] if body else None
        cond = node.child_by_field_name("condition")
        if cons is None or cons.type != "return_statement" or cond is None:
            return None
        ctext = _t(self.src, cond)
        return ctext[1:-1].strip() if ctext.startswith("(") and ctext.endswith(")") else ctext

    def expr(self, node: Node, guards: tuple[Guard, ...]) -> None:
        """Events inside an expression or declaration, in evaluation order (operands first)."""
        t = node.type
        if t == "declaration":  # a local declared without a value: a "declare" event names it
            for decl in node.children_by_field_name("declarator"):
                if decl.type == "init_declarator":
                    continue
                while decl is not None and decl.type != "identifier":
                    decl = decl.child_by_field_name("declarator")
                if decl is not None:
                    self.events.append(Event("declare", decl.start_point[0] + 1, decl.start_point[1] + 1,
                                             _t(self.src, decl), "", (), guards))
        if t == "call_expression":
            fn = node.child_by_field_name("function")
            args = node.child_by_field_name("arguments")
            if args is not None:
                for a in args.named_children:
                    self.expr(a, guards)
            callee = ""
            if fn is not None and fn.type == "identifier":
                callee = _t(self.src, fn)
            elif fn is not None and fn.type == "field_expression":
                field = fn.child_by_field_name("field")
                callee = "." + _t(self.src, field) if field is not None else ""
            arg_texts = tuple(_t(self.src, a) for a in args.named_children if a.type != "comment") if args else ()
            if callee:
                self.events.append(Event("call", node.start_point[0] + 1, node.start_point[1] + 1, callee, "",
                                         arg_texts, guards))
            elif fn is not None and fn.type == "parenthesized_expression":  # through an expression: what it names runs
                self.events.append(Event("call", node.start_point[0] + 1, node.start_point[1] + 1, CALLED,
                                         _t(self.src, fn), arg_texts, guards))
            return
        if t == "assignment_expression":
            left = node.child_by_field_name("left")
            right = node.child_by_field_name("right")
            if right is not None:
                self.expr(right, guards)
            if left is None:
                return
            rtext = _t(self.src, right) if right is not None else ""
            if left.type == "identifier":
                op = node.child_by_field_name("operator")
                optext = _t(self.src, op) if op is not None else "="
                value = rtext if optext == "=" else f"{_t(self.src, left)} {optext[:-1]} {rtext}"
                self.events.append(Event("assign", node.start_point[0] + 1, node.start_point[1] + 1,
                                         _t(self.src, left), value, (), guards))
            else:
                self.store(left, guards, rtext)
            return
        if t == "init_declarator":
            decl = node.child_by_field_name("declarator")
            value = node.child_by_field_name("value")
            if value is not None:
                self.expr(value, guards)
            while decl is not None and decl.type != "identifier":  # through `(*fn)(int)` too
                inner = decl.child_by_field_name("declarator")
                if inner is None and decl.type == "parenthesized_declarator" and decl.named_children:
                    inner = decl.named_children[0]
                decl = inner
            if decl is not None and value is not None and value.type != "initializer_list":
                self.events.append(Event("assign", node.start_point[0] + 1, node.start_point[1] + 1,
                                         _t(self.src, decl), _t(self.src, value), (), guards, DECLARATION))
            elif decl is not None:
                self.events.append(Event("declare", node.start_point[0] + 1, node.start_point[1] + 1,
                                         _t(self.src, decl), "", (), guards))
            return
        if t == "gnu_asm_expression":  # cache maintenance in inline assembly: calls (source.inline_asm)
            for child in node.named_children:
                if child.type in ("gnu_asm_output_operand_list", "gnu_asm_input_operand_list"):
                    self.expr(child, guards)
            outputs = node.child_by_field_name("output_operands")
            for op in outputs.named_children if outputs is not None else ():
                value = op.child_by_field_name("value")
                if value is None:
                    continue
                # an output operand is assigned by the assembly (`"=r" (g_diag_reg)`: an mrc's value
                # stored to a variable), with a value no expression names
                if value.type == "identifier":
                    self.events.append(Event("assign", value.start_point[0] + 1, value.start_point[1] + 1,
                                             _t(self.src, value), "", (), guards))
                else:
                    self.store(value, guards)
            for m in asm_maintenance(self.src, node):
                self.events.append(Event("call", node.start_point[0] + 1, node.start_point[1] + 1, m.call, "",
                                         m.args, guards))
            return
        if t == "update_expression":  # p++, --n: the variable changes
            arg = node.child_by_field_name("argument")
            if arg is not None and arg.type == "identifier":
                name = _t(self.src, arg)
                self.events.append(Event("assign", node.start_point[0] + 1, node.start_point[1] + 1, name,
                                         f"{name} + 1", (), guards))
            return
        for child in node.named_children:
            self.expr(child, guards)

    def store(self, left: Node, guards: tuple[Guard, ...], value: str = "") -> None:
        """A store through a pointer: `*(u32 *)p = v`, `p[i] = v`; a store to a struct member
        (`s.f = v`, `p->f = v`) is data, never code: its width is FIELD_STORE."""
        node = left
        while node.type == "parenthesized_expression" and node.named_children:
            node = node.named_children[0]
        width = ""
        if node.type == "pointer_expression":
            ptr = node.child_by_field_name("argument")
            if ptr is None:
                return
            inner = ptr
            while inner.type == "parenthesized_expression" and inner.named_children:
                inner = inner.named_children[0]
            if inner.type == "cast_expression":
                ty = inner.child_by_field_name("type")
                width = _t(self.src, ty).rstrip("* ").strip() if ty is not None else ""
            base = _t(self.src, ptr)
        elif node.type == "subscript_expression":
            arr = node.child_by_field_name("argument")
            if arr is None:
                return
            self.expr(node.child_by_field_name("index") or arr, guards)
            base = _t(self.src, arr)
        elif node.type == "field_expression":
            obj = node.child_by_field_name("argument")
            if obj is None:
                return
            op = node.child_by_field_name("operator")
            arrow = op is not None and _t(self.src, op) == "->"
            base = _t(self.src, obj) if arrow else "&" + _t(self.src, obj)  # the object's address either way
            width = FIELD_STORE
        else:
            return
        self.events.append(Event("store", left.start_point[0] + 1, left.start_point[1] + 1,
                                 _t(self.src, left), base, (value,) if width == FIELD_STORE and value else (),
                                 guards, width))


# a preprocessor line, as keep_lines reads one: `#` after blanks (what bytes.lstrip() strips) at its
# start, and the lines it continues (ending in a backslash, carriage returns after it aside)
_DIRECTIVE_LINES = re.compile(rb"#(?:[^\n]*\\\r*\n)*[^\n]*")


def keep_lines(data: bytes, ranges: list[tuple[int, int]]) -> bytes:
    """The text with the code of every line outside the (first, last) line ranges blanked:
    preprocessor lines (with their continuations) and comments stay, so conditionals stay balanced
    and a comment begun on a kept line still ends.  Offsets, lines and columns are unchanged.
    The kept spans (lines asked for, directives, comments) are merged and the gaps between them
    blanked whole, not line by line: most of a file's lines lie in the gaps, and the flow reads the
    bodies of every file it analyses through this."""
    starts = [0]  # the offset of each line's first byte, only as far as the last line kept
    last = max((b for _, b in ranges), default=0)
    pos = 0
    while len(starts) <= last:
        pos = data.find(b"\n", pos) + 1
        if pos == 0:
            break
        starts.append(pos)
    n = len(data)
    spans = [(starts[a - 1], starts[b] if b < len(starts) else n)
             for a, b in ((max(a, 1), b) for a, b in ranges) if a <= b and a - 1 < len(starts)]
    spans.extend(comment_spans(data))
    spans.extend((line, m.end()) for line, m in at_line_start(_DIRECTIVE_LINES, data, b" \t\r\x0b\x0c"))
    spans.sort()
    out = []
    at = 0
    for a, b in spans:
        if b <= at:
            continue
        if a > at:
            out.append(blanked(data[at:a]))
            at = a
        out.append(data[at:b])
        at = b
    if at < n:
        out.append(blanked(data[at:]))
    return b"".join(out)


def body_ranges(functions, wanted: set[str], error_lines=()) -> list[tuple[int, int]] | None:
    """The lines function_bodies needs for the functions named in wanted, from a file's facts
    (FunctionDef: line of the name, end_line): each such function from just after the function
    before it, so its return type and attributes come along.  None when the facts cannot say: spans
    out of order, a function asked for, or the one before it, recovered from a parse error (its
    span may be wrong), a name asked for defined more than once (a macro that defines functions,
    whose parse depends on what surrounds it), or a part of the file parsed with an error
    (`error_lines`, FileFacts) among the lines kept: tree-sitter's recovery from it depends on
    what comes before.  Then the whole file is parsed."""
    fns = sorted(functions, key=lambda f: (f.line, f.end_line))
    defined = [f.name for f in fns if f.name in wanted]
    if len(defined) != len(set(defined)):  # one name defined again and again: BPF_CALL_1(...) { }
        return None
    out = []
    prev = None
    for f in fns:
        prev_end = prev.end_line if prev is not None else 0
        if f.line <= prev_end or f.end_line < f.line:
            return None
        if f.name in wanted:
            if f.has_error or (prev is not None and prev.has_error):
                return None
            first = prev_end + 1
            if any(a <= f.end_line and b >= first for a, b in error_lines):
                return None
            out.append((first, f.end_line))
        prev = f
    return out


def function_bodies(rel: str, data: bytes, wanted: set[str] | None, keep: bool = False) -> list[FunctionBody]:
    """Events of the functions named in wanted that this file defines.  `keep`: the text is a
    whole file, whose tree is kept for the next call (_kept)."""
    if keep:
        neutral, tree = _kept(data)
    else:
        neutral = neutralize(data)
        tree = parser().parse(neutral)
    return bodies_in_tree(rel, neutral, tree.root_node, wanted)


@lru_cache(maxsize=16)
def _kept(data: bytes):
    """The neutralized text and its tree, kept for the flow's next round: a file parsed whole (its
    functions' lines cannot be cut out, cflow.body_ranges) is often asked again for the callers the
    round's summaries make interesting, and neutralizing and parsing a large file again costs as
    much as the first time.  The text is the key, so a file read anew after a change is not
    taken for the one kept.  16 whole files: a whole-6.12 scan parses 17 files whole in process."""
    neutral = neutralize(data)
    return neutral, parser().parse(neutral)


def bodies_in_tree(rel: str, neutral: bytes, root: Node, wanted: set[str] | None) -> list[FunctionBody]:
    """function_bodies over a tree parsed already (extraction's: armalias.source.extract).
    `wanted` None: every function the file defines."""
    out = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "function_definition":
            decl = node.child_by_field_name("declarator")
            ident, params = function_name(decl) if decl is not None else (None, None)
            if ident is None:
                continue
            name = _t(neutral, ident)
            if wanted is not None and name not in wanted:
                continue
            body = node.child_by_field_name("body")
            w = _Walker(neutral)
            if body is not None:
                w.stmt(body, ())
            pnames = []
            if params is not None:
                for p in params.named_children:
                    d = p.child_by_field_name("declarator")
                    while d is not None and d.type != "identifier":
                        d = d.child_by_field_name("declarator") or (d.named_children[0] if d.named_children else None)
                    if d is not None:
                        pnames.append(_t(neutral, d))
            out.append(FunctionBody(name, rel, ident.start_point[0] + 1, tuple(pnames), tuple(w.events)))
            continue
        stack.extend(node.named_children)
    return out
