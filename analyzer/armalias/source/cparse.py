"""tree-sitter C: the only module that imports tree_sitter.

``extract_c(rel, text)`` turns one C file into FileFacts: function definitions, calls in code,
designated initializers.  Macros and includes come from the directive reader (macros.py), which sees
the real text; tree-sitter sees the neutralized text (same offsets).
"""

from __future__ import annotations

import sys
import time
from bisect import bisect_right
from functools import lru_cache

import tree_sitter_c
from tree_sitter import Language, Node, Parser, Query, QueryCursor, Tree

from armalias.facts import CALLED, Call, FunctionDef, Initializer
from armalias.source.inline_asm import asm_maintenance

_FUNCTIONS = """
(function_definition declarator: (_) @decl body: (compound_statement) @body) @fn
"""
_CALLS = """
(call_expression function: (identifier) @name arguments: (argument_list) @args) @call
(call_expression function: (field_expression field: (field_identifier) @member) arguments: (argument_list) @args) @call
(call_expression function: (parenthesized_expression) @through arguments: (argument_list) @args) @call
(gnu_asm_expression) @asm
(declaration declarator: (init_declarator declarator: (function_declarator declarator:
  (parenthesized_declarator (pointer_declarator declarator: (identifier) @fnptr)))))
(declaration declarator: (function_declarator declarator:
  (parenthesized_declarator (pointer_declarator declarator: (identifier) @fnptr))))
"""
_TYPE_NODES = frozenset({"primitive_type", "type_identifier", "sized_type_specifier", "struct_specifier",
                         "enum_specifier", "union_specifier", "storage_class_specifier", "type_qualifier"})
_INITIALIZERS = """
(init_declarator declarator: (_) @var value: (initializer_list) @list)
"""
# top-level `MACRO(args) { ... }` that defines a function (SYSCALL_DEFINEn and friends) is recognised
# from the tree shape: expression_statement(call) followed by a compound_statement at file scope.


@lru_cache(maxsize=1)
def _language() -> Language:
    return Language(tree_sitter_c.language())


@lru_cache(maxsize=1)
def _queries() -> tuple[Query, Query]:
    """Functions and calls in one query (one walk of the tree instead of two), and the
    designated initializers."""
    lang = _language()
    return Query(lang, _FUNCTIONS + _CALLS), Query(lang, _INITIALIZERS)


def parser() -> Parser:
    return Parser(_language())


class TooSlow(Exception):
    """A file took longer than its time bound to parse (see extract_c)."""


monotonic = time.monotonic  # the clock of the time bound (a test drives one of its own)


def _parse(neutral: bytes, deadline: float | None):
    """The tree of the text; TooSlow when the deadline (a `monotonic()` time) passes first.
    tree-sitter asks a progress callback, every few hundred steps, whether to stop; it takes one
    only when it reads through a callback, which hands it the rest of the text in one piece."""
    if deadline is None:
        return parser().parse(neutral)
    view = memoryview(neutral)
    try:
        return parser().parse(lambda offset, _point: view[offset:],
                              progress_callback=lambda _offset, _error: monotonic() > deadline)
    except ValueError:  # "Parsing failed": halted by the callback
        if monotonic() > deadline:
            raise TooSlow() from None
        raise


def check_deadline(deadline: float | None) -> None:
    if deadline is not None and monotonic() > deadline:
        raise TooSlow()


def _text(src: bytes, node: Node) -> str:
    return src[node.start_byte : node.end_byte].decode("utf-8", "replace")


def squash(text: str) -> str:
    """Collapse whitespace runs: argument and expression text as it reads on one line."""
    return " ".join(text.split())


def function_name(decl: Node) -> tuple[Node | None, Node | None]:
    """The identifier node and the parameter list of a (possibly pointer-returning) declarator."""
    node: Node | None = decl
    while node is not None:
        if node.type == "function_declarator":
            inner = node.child_by_field_name("declarator")
            params = node.child_by_field_name("parameters")
            while inner is not None and inner.type in ("parenthesized_declarator", "pointer_declarator", "attributed_declarator"):
                inner = inner.child_by_field_name("declarator") or (inner.named_children[0] if inner.named_children else None)
            if inner is not None and inner.type == "identifier":
                return inner, params
            return None, params
        if node.type in ("pointer_declarator", "parenthesized_declarator", "attributed_declarator"):
            node = node.child_by_field_name("declarator") or (node.named_children[0] if node.named_children else None)
            continue
        return None, None
    return None, None


def _param_names(src: bytes, params: Node | None) -> tuple[str, ...]:
    if params is None:
        return ()
    names = []
    for p in params.named_children:
        if p.type != "parameter_declaration":
            continue
        d = p.child_by_field_name("declarator")
        while d is not None and d.type not in ("identifier",):
            if d.type == "function_declarator":
                d = d.child_by_field_name("declarator")
                continue
            d = d.child_by_field_name("declarator") or (d.named_children[0] if d.named_children else None)
        if d is not None:
            names.append(_text(src, d))
    return tuple(names)


def _is_static(src: bytes, fn: Node) -> bool:
    for c in fn.children:
        if c.type == "storage_class_specifier" and _text(src, c) == "static":
            return True
        if c.type in ("function_declarator", "pointer_declarator", "compound_statement"):
            break
    return False


def _arguments(src: bytes, args: Node) -> tuple[str, ...]:
    # squash(_text(...)) written out: this runs for every argument of every call (400,000 on a
    # whole-tree scan)
    return tuple(" ".join(src[a.start_byte:a.end_byte].decode("utf-8", "replace").split())
                 for a in args.named_children if a.type != "comment")


def _definer_functions(src: bytes, root: Node, rel: str, definers: dict[str, tuple[str, int]]
                       ) -> list[tuple[int, int, FunctionDef]]:
    """`SYSCALL_DEFINE3(name, ...) { ... }` at file scope: a function named after its first argument."""
    out = []
    children = root.named_children
    for i, node in enumerate(children[:-1]):
        if node.type != "expression_statement" or not node.named_children:
            continue
        call = node.named_children[0]
        nxt = children[i + 1]
        if call.type != "call_expression" or nxt.type != "compound_statement":
            continue
        fn = call.child_by_field_name("function")
        if fn is None or fn.type != "identifier":
            continue
        macro = _text(src, fn)
        rule = definers.get(macro)
        if rule is None:
            continue
        prefix, arg_index = rule
        args = call.child_by_field_name("arguments")
        named = [a for a in args.named_children] if args is not None else []
        if len(named) <= arg_index:
            continue
        name = prefix + squash(_text(src, named[arg_index]))
        out.append((call.start_byte, nxt.end_byte,
                    FunctionDef(name, rel, fn.start_point[0] + 1, nxt.end_point[0] + 1, (), False, nxt.has_error)))
    return out


def _recovered_functions(src: bytes, root: Node, rel: str,
                         known: list[tuple[int, int, FunctionDef]]) -> list[tuple[int, int, FunctionDef]]:
    """Function headers that tree-sitter's error recovery left inside ERROR nodes.

    A header is a function_declarator directly in an ERROR, or `type name(args)` parsed as a type
    followed by a call and a compound statement.  It spans until the next header or the end of the
    outermost ERROR; only calls not already inside a real function_definition are affected.
    """
    covered = [(a, b) for a, b, _ in known]
    # the top-level ones (a query walked the whole tree for them); none when the whole file is one
    if root.type != "translation_unit":
        return []
    outer = [n for n in root.children if n.type == "ERROR"]
    out = []
    for err in outer:
        headers: list[tuple[Node, Node]] = []  # (header node, identifier)
        stack = [err]
        while stack:
            node = stack.pop()
            kids = node.named_children
            for i, child in enumerate(kids):
                if child.type == "function_declarator" and node.type == "ERROR":
                    ident, _ = function_name(child)
                    if ident is not None:
                        headers.append((child, ident))
                elif (child.type == "call_expression" and node.type == "ERROR" and i > 0
                      and kids[i - 1].type in _TYPE_NODES
                      and src[child.end_byte:child.end_byte + 64].lstrip()[:1] == b"{"):
                    fn = child.child_by_field_name("function")
                    if fn is not None and fn.type == "identifier":
                        headers.append((child, fn))
                if child.type in ("ERROR", "compound_statement") or child.has_error:
                    stack.append(child)
        headers.sort(key=lambda h: h[0].start_byte)
        for j, (header, ident) in enumerate(headers):
            start = header.start_byte
            if any(a <= start < b for a, b in covered):
                continue
            end = headers[j + 1][0].start_byte if j + 1 < len(headers) else err.end_byte
            end_line = src.count(b"\n", 0, end) + 1
            out.append((start, end, FunctionDef(_text(src, ident), rel, ident.start_point[0] + 1, end_line,
                                                (), False, True)))
    return out


def extract_c(rel: str, real: bytes, neutral: bytes, definers: dict[str, tuple[str, int]] | None = None,
              members: tuple[str, ...] | None = None, deadline: float | None = None,
              ) -> tuple[tuple[FunctionDef, ...], tuple[Call, ...], tuple[Initializer, ...], bool,
                         tuple[tuple[int, int], ...], Tree]:
    """Functions, calls and designated initializers of one C file (real and neutralized bytes),
    whether it parsed with an error, the lines of the top-level parts that did, and the tree.  `members`: the
    designated initializers are read only from a file that names one of these (the index reads
    initializers for the cpu_cache_fns members only); None: from every file.  `deadline`: a
    `monotonic()` time past which TooSlow is raised (tree-sitter stops parsing there)."""
    tree = _parse(neutral, deadline)
    root = tree.root_node
    q_main, q_init = _queries()

    spans: list[tuple[int, int, FunctionDef]] = []
    call_caps = []
    # The match is not given the deadline: py-tree-sitter 0.26.1 crashes (SIGSEGV) in a match
    # with a progress callback over a tree with parse errors.  It takes a fraction of the parse's
    # time, linear in the tree's size; the deadline is checked when it is done.
    found = QueryCursor(q_main).matches(root)
    check_deadline(deadline)
    pointers: list[tuple[int, str]] = []  # (where, name) of function-pointer variables declared
    for _, caps in found:
        if "fnptr" in caps:
            node = caps["fnptr"][0]
            pointers.append((node.start_byte, _text(neutral, node)))
            continue
        if "fn" not in caps:
            call_caps.append(caps)
            continue
        fn = caps["fn"][0]
        ident, params = function_name(caps["decl"][0])
        if ident is None:
            continue
        name = _text(neutral, ident)
        spans.append((fn.start_byte, fn.end_byte, FunctionDef(
            name, rel, ident.start_point[0] + 1, fn.end_point[0] + 1,
            _param_names(real, params), _is_static(neutral, fn), caps["body"][0].has_error)))
    headers: set[int] = set()  # where a definer's `SYSCALL_DEFINE3(...)` stands: a header, not a call
    if definers:
        defined = _definer_functions(neutral, root, rel, definers)
        spans.extend(defined)
        headers = {start for start, _, _ in defined}
    if root.has_error:
        spans.extend(_recovered_functions(neutral, root, rel, spans))
    spans.sort(key=lambda s: s[0])
    starts = [s[0] for s in spans]

    def enclosing(pos: int) -> str:
        i = bisect_right(starts, pos) - 1
        if i >= 0 and spans[i][0] <= pos < spans[i][1]:
            return spans[i][2].name
        return ""

    # a function's own function-pointer variables: a call of one runs what it was given (CALLED)
    local_pointers = {(enclosing(at), name) for at, name in pointers}
    local_pointers.discard(("", ""))
    calls = []
    for caps in call_caps:
        if "asm" in caps:  # cache maintenance in inline assembly: calls named asm:<operation>
            node = caps["asm"][0]
            for m in asm_maintenance(real, node):
                calls.append(Call(sys.intern(m.call), enclosing(node.start_byte), rel, node.start_point[0] + 1,
                                  node.start_point[1] + 1, m.args))
            continue
        call = caps["call"][0]
        if call.start_byte in headers:
            continue
        caller = enclosing(call.start_byte)
        if "name" in caps:
            callee = _text(neutral, caps["name"][0])
            if caller and (caller, callee) in local_pointers:
                callee = CALLED
        elif "member" in caps:
            callee = "." + _text(neutral, caps["member"][0])
        else:
            callee = CALLED
        calls.append(Call(sys.intern(callee), caller, rel, call.start_point[0] + 1,
                          call.start_point[1] + 1, _arguments(real, caps["args"][0])))
    calls.sort(key=lambda c: (c.line, c.column, c.callee))

    inits = []
    wanted_inits = members is None or any(m.encode() in neutral for m in members)
    for _, caps in (QueryCursor(q_init).matches(root) if wanted_inits else ()):
        var_node = caps["var"][0]
        while var_node.type != "identifier" and var_node.named_children:
            var_node = var_node.child_by_field_name("declarator") or var_node.named_children[0]
        variable = _text(neutral, var_node)
        struct = ""
        decl = caps["list"][0].parent.parent if caps["list"][0].parent is not None else None
        if decl is not None and decl.type == "declaration":
            t = decl.child_by_field_name("type")
            if t is not None and t.type == "struct_specifier":
                n = t.child_by_field_name("name")
                struct = _text(neutral, n) if n is not None else ""
        stack = [caps["list"][0]]
        while stack:
            node = stack.pop()
            for child in node.named_children:
                if child.type == "initializer_pair":
                    des = child.child_by_field_name("designator")
                    val = child.child_by_field_name("value")
                    if des is not None and des.type == "field_designator" and val is not None:
                        inits.append(Initializer(struct, variable, _text(neutral, des).lstrip(".").strip(),
                                                 squash(_text(real, val)), rel, child.start_point[0] + 1))
                    if val is not None and val.type == "initializer_list":
                        stack.append(val)
                elif child.type == "initializer_list":
                    stack.append(child)
    inits.sort(key=lambda i: (i.line, i.member))
    functions = tuple(s[2] for s in spans)
    error_lines = tuple((n.start_point[0] + 1, n.end_point[0] + 1) for n in root.children if n.has_error) \
        if root.has_error else ()
    return functions, tuple(calls), tuple(inits), root.has_error, error_lines, tree
