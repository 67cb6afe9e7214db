"""Renderings of the cache-implementation audit: rich table, Markdown, self-contained HTML.

Every renderer takes ``findings``: scan findings as CONTRACT.md dicts. When given, a "confirms" column
lists, per implementation, the findings whose ``model.implementations`` verdict for it is
``confirmed`` (the replay of the finding on that cache model shows the bug).

Every renderer lists the contract deviations (rule AA006: the member, the contract, the model's
witness, the C callers) after the table.

The HTML page also draws the call graph behind the confirmed findings as inline SVG (no script, no
external asset): each finding's ``chain`` of callers, the maintenance calls it makes, and for every
implementation that confirms it the cpu_cache_fns member's code those calls reach (e.g.
``flush_icache_range`` -> ``feroceon_coherent_kern_range``). The layout is computed here, in layers
by distance from the implementation code (the layout engines of networkx need numpy/scipy).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from armalias.audit import AuditResult, Deviation
from armalias.cacheimpl import CACHE_MEMBERS, CacheFunction, CacheImpl
from armalias.model.scenario import KERNEL_CALLS

# The members shown as columns; the rest are in the JSON and the HTML details.
SHOWN_MEMBERS = ("coherent_kern_range", "flush_kern_dcache_area", "flush_icache_all", "flush_kern_all")


def _effect(fn: CacheFunction | None) -> str:
    """``D clean, I inv, range`` in a few characters."""
    if fn is None:
        return "-"
    if "unknown" in fn.ops and not fn.resolved:
        return "unknown"
    parts = []
    if fn.d != "none":
        parts.append(f"D {fn.d}")
    if fn.i != "none":
        parts.append("I inv")
    text = ", ".join(parts) if parts else "no-op"
    if fn.scope != "none":
        text += f" ({fn.scope})"
    if fn.undecoded:
        text += f" +{len(fn.undecoded)} unknown"
    return text


def _label(finding: dict[str, Any]) -> str:
    rule = finding.get("rule", "?")
    where = f"{finding.get('file', '?')}:{finding.get('line', '?')}"
    return f"{rule} {where}"


def confirmed_by(impl: CacheImpl, findings: Iterable[dict[str, Any]]) -> list[str]:
    """Labels (``AA001 file:line``) of the findings whose model confirms them on ``impl``."""
    out = []
    for finding in findings:
        verdicts = (finding.get("model") or {}).get("implementations") or {}
        if verdicts.get(impl.name) == "confirmed":
            out.append(_label(finding))
    return sorted(out)


def _configs(impl: CacheImpl) -> str:
    return ", ".join(c.removeprefix("CPU_") for c in impl.configs) or "-"


def _type(impl: CacheImpl) -> str:
    """``VIVT WT unified``, ``VIVT no-MMU``, ``none no-MMU``: the cache type and what else it is."""
    extra = [("WT", impl.write_through), ("unified", impl.unified), ("no-MMU", impl.mpu_only)]
    return " ".join([impl.cache_type] + [word for word, on in extra if on])


def _summary_line(result: AuditResult) -> str:
    return (f"{len(result.implementations)} implementations from {result.files} files; "
            f"{len(result.deviations)} contract deviations; "
            f"{len(result.undecoded)} undecoded operations; {len(result.skipped)} files skipped; "
            f"{len(result.fallthroughs)} fall-throughs between functions")  # fmt: skip


def _deviation_title(d: Deviation) -> str:
    return f"{d.rule} {d.implementation}.{d.member} ({d.symbol}, {d.file}:{d.line})"


def _callers_text(d: Deviation) -> list[str]:
    """``file:line in function (callee)`` per caller; one line saying none were given otherwise."""
    if not d.callers:
        return ["callers: not looked up (the scan's call sites were not given)"]
    return [f"{c.file}:{c.line} in {c.function or '?'} ({c.callee})" for c in d.callers]


def render_audit_text(result: AuditResult, console: Console, findings: Iterable[dict[str, Any]] = ()) -> None:
    """A rich table on ``console``, then the undecoded operations and skipped files."""
    findings = list(findings)
    console.print(f"[bold]armalias audit[/bold] {escape(str(result.root))}")
    console.print(_summary_line(result))
    table = Table(show_lines=False)
    table.add_column("implementation", style="cyan", no_wrap=True)
    table.add_column("file")
    table.add_column("cache")
    table.add_column("configs")
    for member in SHOWN_MEMBERS:
        table.add_column(member)
    if findings:
        table.add_column("confirms")
    for impl in result.implementations:
        row = [impl.name, impl.file, _type(impl), _configs(impl)]
        row += [_effect(impl.functions.get(m)) for m in SHOWN_MEMBERS]
        if findings:
            row.append("\n".join(confirmed_by(impl, findings)) or "-")
        table.add_row(*(escape(c) for c in row))
    console.print(table)
    if result.deviations:
        console.print("[bold]Contract deviations[/bold]")
        for d in result.deviations:
            console.print(f"  {_deviation_title(d)}", markup=False, highlight=False)
            console.print(f"    {d.message}", markup=False, highlight=False)
            console.print("    witness:", markup=False)
            for line in d.witness:
                console.print(f"      {line}", markup=False, highlight=False)
            console.print("    callers:" if d.callers else f"    {_callers_text(d)[0]}", markup=False)
            for line in _callers_text(d) if d.callers else ():
                console.print(f"      {line}", markup=False, highlight=False)
    if result.defconfigs:
        console.print("[bold]Defconfigs[/bold] (arch/arm/configs -> the implementations each builds)")
        for name, impls in result.defconfigs.items():
            console.print(f"  {name}: {', '.join(impls)}", markup=False, highlight=False)
    if result.undecoded:
        console.print("[bold]Undecoded operations[/bold]")
        for u in result.undecoded:
            console.print(f"  {u.implementation}.{u.member}: {u.text}", markup=False)
    if result.skipped:
        console.print("[bold]Skipped files[/bold]")
        for file, reason in result.skipped:
            console.print(f"  {file}: {reason}", markup=False)
    for note in (*result.notes, *result.contract_notes):
        console.print(f"note: {note}", markup=False)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def render_audit_markdown(result: AuditResult, findings: Iterable[dict[str, Any]] = ()) -> str:
    findings = list(findings)
    lines = [f"# armalias audit: `{result.root}`", "", _summary_line(result), ""]
    header = ["implementation", "file", "cache", "configs", *SHOWN_MEMBERS] + (["confirms"] if findings else [])
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for impl in result.implementations:
        row = [f"`{impl.name}`", f"`{impl.file}`", _type(impl), _configs(impl)]
        row += [_effect(impl.functions.get(m)) for m in SHOWN_MEMBERS]
        if findings:
            row.append(", ".join(confirmed_by(impl, findings)) or "-")
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    lines.append("")
    if result.defconfigs:
        lines += ["## Defconfigs", "", "| defconfig | implementations |", "|---|---|"]
        lines += [f"| `{_md_cell(name)}` | {_md_cell(', '.join(impls))} |" for name, impls in result.defconfigs.items()]
        lines.append("")
    if result.deviations:
        lines += ["## Contract deviations", ""]
        for d in result.deviations:
            lines += [f"### {_md_cell(_deviation_title(d))}", "", _md_cell(d.message), "",
                      f"Contract: {_md_cell(d.promise)} ({_md_cell(d.source)})", "", "Witness:", "", "```"]
            lines += list(d.witness)
            lines += ["```", ""]
            if d.callers:
                lines += ["Callers:", ""] + [f"- `{_md_cell(t)}`" for t in _callers_text(d)]
            else:
                lines.append(_md_cell(_callers_text(d)[0]))
            lines.append("")
    lines.append("## Operations")
    lines.append("")
    for impl in result.implementations:
        lines.append(f"### `{impl.name}` ({impl.file})")
        lines.append("")
        for member, fn in impl.functions.items():
            sym = fn.symbol if fn.symbol == fn.resolved or not fn.resolved else f"{fn.symbol} = {fn.resolved}"
            lines.append(f"- `{member}` (`{sym}`): {', '.join(fn.ops) or 'no cache operation'}")
        for note in impl.notes:
            lines.append(f"- note: {_md_cell(note)}")
        lines.append("")
    if result.undecoded:
        lines += ["## Undecoded operations", ""]
        lines += [f"- `{u.implementation}.{u.member}`: `{u.text}`" for u in result.undecoded]
        lines.append("")
    if result.skipped:
        lines += ["## Skipped files", ""]
        lines += [f"- `{file}`: {reason}" for file, reason in result.skipped]
        lines.append("")
    if result.contract_notes:
        lines += ["## Notes", ""] + [f"- {_md_cell(n)}" for n in result.contract_notes] + [""]
    return "\n".join(lines)


# -- the call graph behind the confirmed findings ------------------------------------------------------

NODE_KINDS = ("caller", "function", "maintenance", "implementation")
_KIND_TEXT = {
    "caller": "caller on a finding's chain",
    "function": "function holding the write",
    "maintenance": "maintenance call",
    "implementation": "implementation code (confirmed there)",
}


@dataclass
class GraphNode:
    name: str
    kind: str  # one of NODE_KINDS
    findings: list[str] = field(default_factory=list)  # labels of the findings it belongs to
    implementations: list[str] = field(default_factory=list)  # implementation nodes: who runs it
    members: list[str] = field(default_factory=list)  # implementation nodes: the cpu_cache_fns member(s)
    where: str = ""  # implementation nodes: file:line of the code


@dataclass
class FindingsGraph:
    """Nodes and (caller, callee) edges; nodes in first-seen order, edges deduplicated."""

    nodes: dict[str, GraphNode] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def node(self, name: str, kind: str) -> GraphNode:
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = GraphNode(name, kind)
        elif NODE_KINDS.index(kind) > NODE_KINDS.index(node.kind):
            node.kind = kind  # a function that is also a maintenance call shows as the later kind
        return node

    def edge(self, caller: str, callee: str) -> None:
        if caller != callee and (caller, callee) not in self.edges:
            self.edges.append((caller, callee))


def confirmed_findings(findings: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in findings if (f.get("model") or {}).get("verdict") == "confirmed"]


def _member_of(call: str) -> str | None:
    if call in KERNEL_CALLS:
        return KERNEL_CALLS[call][0]
    return call if call in CACHE_MEMBERS else None


def findings_graph(result: AuditResult, findings: Iterable[dict[str, Any]],
                   graph: Iterable[tuple[str, str]] | None = None) -> FindingsGraph:
    """The graph to draw: for each confirmed finding its chain, its maintenance calls, and the code
    of the member each call reaches on every implementation whose model confirms the finding.
    ``graph`` adds (caller, callee) edges, e.g. the macro hops of the scan's call sites; their
    endpoints not already drawn show as callers."""
    impls = {impl.name: impl for impl in result.implementations}
    out = FindingsGraph()
    for finding in confirmed_findings(findings):
        label = _label(finding)
        function = finding.get("function") or "?"
        chain = [str(c) for c in finding.get("chain") or ()]
        if not chain or chain[-1] != function:
            chain.append(function)
        for name in chain[:-1]:
            out.node(name, "caller").findings.append(label)
        out.node(function, "function").findings.append(label)
        for caller, callee in zip(chain, chain[1:]):
            out.edge(caller, callee)
        verdicts = (finding.get("model") or {}).get("implementations") or {}
        confirming = [impls[n] for n, v in sorted(verdicts.items()) if v == "confirmed" and n in impls]
        for m in finding.get("maintenance") or ():
            call = str(m.get("call") or "?")
            out.node(call, "maintenance").findings.append(label)
            out.edge(function, call)
            member = _member_of(call)
            for impl in confirming:
                fn = impl.functions.get(member) if member else None
                if fn is None:
                    continue
                node = out.node(fn.symbol, "implementation")
                for seq, value in ((node.implementations, impl.name), (node.members, member),
                                   (node.findings, label)):
                    if value not in seq:
                        seq.append(value)
                node.where = node.where or (f"{fn.file}:{fn.line}" if fn.file else "")
                out.edge(call, fn.symbol)
    for caller, callee in graph or ():
        out.node(caller, "caller")
        out.node(callee, "caller")
        out.edge(caller, callee)
    for node in out.nodes.values():
        node.findings = list(dict.fromkeys(node.findings))
    return out


def _layers(g: FindingsGraph) -> dict[str, int]:
    """Layer of each node: implementation code in the last one, every other node as far left as its
    longest path down to a sink needs (so a finding's function sits next to its maintenance calls).
    Edges closing a cycle are left out of the ranking."""
    succ: dict[str, list[str]] = {n: [] for n in g.nodes}
    for a, b in g.edges:
        succ[a].append(b)
    forward: dict[str, list[str]] = {n: [] for n in g.nodes}
    state: dict[str, int] = {}  # 1 on the DFS stack, 2 done
    for root in g.nodes:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) != 1:  # a child on the stack closes a cycle
                forward[node].append(child)
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(succ[child])))
    floor = {"implementation": 0, "maintenance": 1, "function": 2, "caller": 2}
    height: dict[str, int] = {}

    def rank(name: str) -> int:
        if name not in height:
            height[name] = floor.get(g.nodes[name].kind, 0)  # placeholder against re-entry
            height[name] = max([floor.get(g.nodes[name].kind, 0)] + [rank(c) + 1 for c in forward[name]])
        return height[name]

    for name in g.nodes:
        rank(name)
    top = max(height.values(), default=0)
    return {name: top - h for name, h in height.items()}


def _order(g: FindingsGraph, layer: dict[str, int]) -> list[list[str]]:
    """Nodes of each layer, ordered to keep edges short: by name first, then sweeps that sort each
    layer by the mean position of its neighbours in the layer before (left to right, then back)."""
    columns: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for name in sorted(g.nodes):
        columns[layer[name]].append(name)
    preds: dict[str, list[str]] = {n: [] for n in g.nodes}
    succs: dict[str, list[str]] = {n: [] for n in g.nodes}
    for a, b in g.edges:
        succs[a].append(b)
        preds[b].append(a)

    def sweep(indices: range, neighbours: dict[str, list[str]]) -> None:
        for i in indices:
            position = {n: k for col in columns for k, n in enumerate(col)}
            def key(name: str) -> tuple[float, str]:
                near = [position[n] for n in neighbours[name] if n in position]
                return (sum(near) / len(near) if near else position[name], name)
            columns[i].sort(key=key)

    for _ in range(2):
        sweep(range(1, len(columns)), preds)
        sweep(range(len(columns) - 2, -1, -1), succs)
    sweep(range(1, len(columns)), preds)
    return columns


_CHAR_W = 7.3  # px per character of the 12px monospace labels (DejaVu Sans Mono: 0.602 em)
_NODE_H, _NODE_H2, _V_GAP, _H_GAP, _PAD, _LEGEND_H = 26, 40, 10, 64, 16, 34


def _slug(name: str) -> str:
    return "cg-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


def render_call_graph_svg(g: FindingsGraph) -> str:
    """The graph as one inline <svg> (layered left to right, Bezier edges, a legend)."""
    e = html.escape
    layer = _layers(g)
    columns = _order(g, layer)

    def height_of(name: str) -> int:
        return _NODE_H2 if g.nodes[name].kind == "implementation" else _NODE_H

    def width_of(name: str) -> float:
        node = g.nodes[name]
        longest = max([len(name)] + ([len(_impl_line(node))] if node.kind == "implementation" else []))
        return longest * _CHAR_W + 2 * 10

    col_w = [max((width_of(n) for n in col), default=0) for col in columns]
    col_h = [sum(height_of(n) for n in col) + _V_GAP * max(len(col) - 1, 0) for col in columns]
    tallest = max(col_h, default=0)
    box: dict[str, tuple[float, float, float, float]] = {}
    x = _PAD
    for col, w, h in zip(columns, col_w, col_h):
        y = _PAD + _LEGEND_H + (tallest - h) / 2
        for name in col:
            box[name] = (x, y, w, height_of(name))
            y += height_of(name) + _V_GAP
        x += w + _H_GAP
    legend_w = sum(len(_KIND_TEXT[k]) * _CHAR_W + 44 for k in NODE_KINDS)
    width = max(x - _H_GAP + _PAD, legend_w + 2 * _PAD)
    height = _PAD + _LEGEND_H + tallest + _PAD
    out = [f"<svg class='callgraph' role='img' "
           f"aria-labelledby='callgraph-title' width='{width:.0f}' height='{height:.0f}' "
           f"viewBox='0 0 {width:.0f} {height:.0f}' data-nodes='{len(g.nodes)}' data-edges='{len(g.edges)}'>",
           "<title id='callgraph-title'>Call graph behind the confirmed findings</title>",
           "<defs><marker id='cg-arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' markerHeight='7' "
           "orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='#667'/></marker></defs>"]  # fmt: skip
    lx = _PAD
    out.append("<g class='legend'>")
    for kind in NODE_KINDS:
        out.append(f"<rect class='n-{kind}' x='{lx:.1f}' y='{_PAD}' width='22' height='14' rx='3'/>"
                   f"<text x='{lx + 28:.1f}' y='{_PAD + 11}'>{e(_KIND_TEXT[kind])}</text>")
        lx += len(_KIND_TEXT[kind]) * _CHAR_W + 44
    out.append("</g><g class='edges'>")
    for a, b in g.edges:
        ax, ay, aw, ah = box[a]
        bx, by, bw, bh = box[b]
        x1, y1 = ax + aw, ay + ah / 2
        x2, y2 = bx, by + bh / 2
        if x2 > x1:
            dx = max((x2 - x1) / 2, 20)
            d = f"M{x1:.1f},{y1:.1f} C{x1 + dx:.1f},{y1:.1f} {x2 - dx:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        else:  # an edge back to the same or an earlier layer: loop below the boxes
            low = max(ay + ah, by + bh) + 18
            d = (f"M{ax + aw / 2:.1f},{ay + ah:.1f} C{ax + aw / 2:.1f},{low:.1f} "
                 f"{bx + bw / 2:.1f},{low:.1f} {bx + bw / 2:.1f},{by + bh:.1f}")
        out.append(f"<path class='edge' data-from='{e(a)}' data-to='{e(b)}' d='{d}' marker-end='url(#cg-arrow)'/>")
    out.append("</g><g class='nodes'>")
    for col in columns:
        for name in col:
            node = g.nodes[name]
            bx, by, bw, bh = box[name]
            tip = [f"{name}: {_KIND_TEXT[node.kind]}"]
            if node.kind == "implementation":
                tip.append(f"{'/'.join(node.members)} of {', '.join(node.implementations)}")
                if node.where:
                    tip.append(node.where)
            tip += node.findings
            out.append(f"<g class='node n-{node.kind}' id='{_slug(name)}' data-name='{e(name)}' "
                       f"data-kind='{node.kind}'><title>{e(chr(10).join(tip))}</title>"
                       f"<rect x='{bx:.1f}' y='{by:.1f}' width='{bw:.1f}' height='{bh}' rx='5'/>")
            ty = by + (17 if node.kind == "implementation" else bh / 2 + 4.5)
            out.append(f"<text x='{bx + 10:.1f}' y='{ty:.1f}'>{e(name)}</text>")
            if node.kind == "implementation":
                out.append(f"<text class='sub' x='{bx + 10:.1f}' y='{by + 32:.1f}'>{e(_impl_line(node))}</text>")
            out.append("</g>")
    out.append("</g></svg>")
    return "\n".join(out)


def _impl_line(node: GraphNode) -> str:
    return "on " + ", ".join(node.implementations)


def _findings_section(result: AuditResult, findings: list[dict[str, Any]],
                      graph: Iterable[tuple[str, str]] | None) -> list[str]:
    e = html.escape
    confirmed = confirmed_findings(findings)
    out = ["<h2 id='findings'>Confirmed findings and the call graph behind them</h2>"]
    if not confirmed:
        out.append(f"<p>None of the {len(findings)} findings is confirmed by the cache model on an "
                   "implementation of this tree: no call graph to draw.</p>")
        return out
    out.append("<table class='findings'><thead><tr><th>rule</th><th>where</th><th>function</th>"
               "<th>chain</th><th>maintenance</th><th>confirmed on</th></tr></thead><tbody>")
    for f in sorted(confirmed, key=lambda f: (str(f.get("file")), f.get("line") or 0, str(f.get("rule")))):
        verdicts = (f.get("model") or {}).get("implementations") or {}
        on = sorted(n for n, v in verdicts.items() if v == "confirmed")
        calls = ", ".join(dict.fromkeys(str(m.get("call")) for m in f.get("maintenance") or ()))
        out.append(f"<tr class='finding'><td>{e(str(f.get('rule', '?')))}</td>"
                   f"<td><code>{e(str(f.get('file', '?')))}:{e(str(f.get('line', '?')))}</code></td>"
                   f"<td><code>{e(str(f.get('function', '?')))}</code></td>"
                   f"<td><code>{e(' → '.join(map(str, f.get('chain') or ())))}</code></td>"
                   f"<td><code>{e(calls) or '-'}</code></td>"
                   f"<td>{e(', '.join(on))} <small>({len(on)} of {len(verdicts)})</small></td></tr>")
    out.append("</tbody></table>")
    out.append("<p>Callers on the left, the code each maintenance call runs on the implementations that "
               "confirm the finding on the right. Hover a box for its findings.</p>")
    out.append("<div class='graph'>" + render_call_graph_svg(findings_graph(result, findings, graph)) + "</div>")
    return out


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#f0f0f0}
code,.mono{font-family:ui-monospace,monospace}
.VIVT{background:#fde2e2}.VIPT{background:#e2f0fd}.PIPT{background:#e2fde8}.none,.unknown{background:#eee}
details{margin:.3em 0}
.unk{color:#a00;font-weight:bold}
.graph{overflow-x:auto;border:1px solid #ddd;background:#fcfcfc;margin:.5em 0 1em}
svg.callgraph{display:block;max-width:100%;height:auto}
td.confirms{font-size:.85em;overflow-wrap:anywhere;min-width:12em}
svg.callgraph text{font:12px ui-monospace,"DejaVu Sans Mono",monospace;fill:#222}
svg.callgraph text.sub{font-size:11px;fill:#555}
svg.callgraph .edge{fill:none;stroke:#889;stroke-width:1.3}
svg.callgraph rect{stroke:#556;stroke-width:1}
svg.callgraph .n-caller rect,svg.callgraph rect.n-caller{fill:#e3eefb}
svg.callgraph .n-function rect,svg.callgraph rect.n-function{fill:#ffe1b3;stroke:#b96b00;stroke-width:1.6}
svg.callgraph .n-maintenance rect,svg.callgraph rect.n-maintenance{fill:#fff6c4}
svg.callgraph .n-implementation rect,svg.callgraph rect.n-implementation{fill:#fbd9d9;stroke:#a33}
svg.callgraph .legend text{font-family:system-ui,sans-serif}
"""


def render_audit_html(result: AuditResult, findings: Iterable[dict[str, Any]] = (),
                      graph: Iterable[tuple[str, str]] | None = None) -> str:
    """One self-contained HTML page (inline CSS and SVG, no scripts, no external assets). With
    findings, a section lists the confirmed ones and draws their call graph (``graph``: extra
    (caller, callee) edges to draw, see ``findings_graph``)."""
    findings = list(findings)
    e = html.escape
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           f"<title>armalias audit: {e(str(result.root))}</title>", f"<style>{_CSS}</style></head><body>",
           f"<h1>armalias audit: <code>{e(str(result.root))}</code></h1>", f"<p>{e(_summary_line(result))}</p>",
           ]  # fmt: skip
    if findings:
        out.append(f"<p><a href='#findings'>{len(confirmed_findings(findings))} of {len(findings)} findings "
                   "confirmed by the cache model, and the call graph behind them</a> (below the table).</p>")
    out.append("<table class='implementations'><thead><tr>")
    header = ["implementation", "file", "cache", "configs", *SHOWN_MEMBERS] + (["confirms"] if findings else [])
    out.append("".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for impl in result.implementations:
        cells = [f"<td><a href='#impl-{e(impl.name)}'><code>{e(impl.name)}</code></a></td>",
                 f"<td><code>{e(impl.file)}</code></td>",
                 f"<td class='{e(impl.cache_type)}'>{e(_type(impl))}</td>", f"<td>{e(_configs(impl))}</td>"]  # fmt: skip
        cells += [f"<td>{e(_effect(impl.functions.get(m)))}</td>" for m in SHOWN_MEMBERS]
        if findings:
            cells.append("<td class='confirms'>" + "<br>".join(e(x) for x in confirmed_by(impl, findings)) + "</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if result.deviations:
        out.append("<h2 id='deviations'>Contract deviations</h2>")
        for d in result.deviations:
            out.append(f"<h3><code>{e(_deviation_title(d))}</code></h3><p>{e(d.message)}</p>"
                       f"<p>Contract: {e(d.promise)} <small>({e(d.source)})</small></p>"
                       "<details open><summary>witness</summary><pre class='mono'>"
                       + e("\n".join(d.witness)) + "</pre></details>")  # fmt: skip
            if d.callers:
                out.append("<details><summary>" + f"{len(d.callers)} callers</summary><ul>"
                           + "".join(f"<li class='mono'>{e(t)}</li>" for t in _callers_text(d)) + "</ul></details>")
            else:
                out.append(f"<p>{e(_callers_text(d)[0])}</p>")
    if findings:
        out += _findings_section(result, findings, graph)
    if result.defconfigs:
        out.append("<h2 id='defconfigs'>Defconfigs</h2><table><thead><tr><th>defconfig</th><th>implementations</th>"
                   "</tr></thead><tbody>" + "".join(f"<tr><td class='mono'>{e(name)}</td><td>{e(', '.join(impls))}</td></tr>"
                                                     for name, impls in result.defconfigs.items()) + "</tbody></table>")
    out.append("<h2>Operations</h2>")
    for impl in result.implementations:
        out.append(f"<h3 id='impl-{e(impl.name)}'><code>{e(impl.name)}</code> "
                   f"<small>{e(impl.file)}, table {e(impl.table_file)}:{impl.table_line}</small></h3>")  # fmt: skip
        for member, fn in impl.functions.items():
            ops = ", ".join(e(op) if op != "unknown" else "<span class='unk'>unknown</span>" for op in fn.ops)
            out.append(f"<details><summary><code>{e(member)}</code> = <code>{e(fn.symbol)}</code>: "
                       f"{e(_effect(fn))} &mdash; {ops or 'no cache operation'}</summary><ul>")  # fmt: skip
            for step in fn.steps:
                cond = f" <i>if {e(' && '.join(step.conditions))}</i>" if step.conditions else ""
                extent = f" [{e(step.extent)}]" if step.extent not in ("", "whole", "range") else ""
                out.append(f"<li class='mono'>{e(step.op)}{extent}: {e(step.raw)} "
                           f"<small>{e(step.file)}:{step.line} in {e(step.function)}</small>{cond}</li>")  # fmt: skip
            for note in fn.notes:
                out.append(f"<li>note: {e(note)}</li>")
            out.append("</ul></details>")
        if impl.notes:
            out.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in impl.notes) + "</ul>")
    if result.undecoded:
        out.append("<h2>Undecoded operations</h2><ul>")
        out += [f"<li><code>{e(u.implementation)}.{e(u.member)}</code>: <code>{e(u.text)}</code></li>"
                for u in result.undecoded]  # fmt: skip
        out.append("</ul>")
    if result.skipped:
        out.append("<h2>Skipped files</h2><ul>")
        out += [f"<li><code>{e(f)}</code>: {e(r)}</li>" for f, r in result.skipped]
        out.append("</ul>")
    if result.contract_notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in result.contract_notes) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
