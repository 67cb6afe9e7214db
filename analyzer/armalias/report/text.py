"""Terminal renderings with rich: the only place (with its siblings in report/) that imports rich.
Every text that comes from the input (a path, a name, a message quoting code) is escaped: a file
named `a[red]b.c` is printed as it is, not read as markup."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from armalias.findings import Finding

if TYPE_CHECKING:
    from armalias.callgraph import Reach
    from armalias.scan import ScanResult


def console_for(stream: TextIO, force_terminal: bool | None = None) -> Console:
    interactive = stream.isatty() if force_terminal is None else force_terminal
    # Off a terminal (a pipe, a file, a CI log) lines are never cut at 80 columns.
    return Console(file=stream, force_terminal=force_terminal, highlight=False, soft_wrap=True,
                   width=None if interactive else 240)


def render_scan(result: ScanResult, findings: list[Finding], console: Console, verbose: bool = False) -> None:
    s = result
    console.print(f"[bold]armalias scan[/bold] {escape(str(s.root))}")
    console.print(
        f"files {s.files}  parsed {s.parsed}  skipped {len(s.skipped)}  functions {s.functions}  "
        f"time {s.seconds:.2f}s  (files with parse errors {s.error_files}, functions with errors {s.error_functions})"
    )
    by_callee: dict[str, list] = defaultdict(list)
    for c in s.callsites:
        by_callee[c.callee].append(c)
    if by_callee:
        console.print()
        console.print("[bold]Call sites of watched functions[/bold]")
        for callee in sorted(by_callee):
            sites = by_callee[callee]
            tree = Tree(f"[cyan]{escape(callee)}[/cyan] ({len(sites)})")
            for c in sites:
                via = f"  via {' -> '.join(c.via)}" if c.via else ""
                tree.add(escape(f"{c.file}:{c.line}  in {c.caller or '<file scope>'}{via}"))
            console.print(tree)
    if findings:
        console.print()
        render_findings_table(findings, console)
    if s.skipped:
        console.print()
        console.print(f"[bold]Skipped[/bold] ({len(s.skipped)})")
        for sk in s.skipped if verbose or len(s.skipped) <= 20 else s.skipped[:20]:
            console.print(f"  {sk.file}: {sk.reason}", markup=False)
        if not verbose and len(s.skipped) > 20:
            console.print(f"  … {len(s.skipped) - 20} more (--verbose lists all)")


def render_findings_table(findings: list[Finding], console: Console) -> None:
    table = Table(title="Findings", show_lines=False)
    for col in ("location", "code", "severity", "function", "message", "model"):
        table.add_column(col)
    for f in sorted(findings, key=Finding.sort_key):
        table.add_row(*(escape(str(x)) for x in (f"{f.file}:{f.line}:{f.column}", f.rule, f.severity, f.function,
                                                 f.message, f.model.verdict)))
    console.print(table)


def render_reach(reach: Reach, console: Console) -> None:
    """Who reaches the target, as a tree growing from the target up to its callers."""
    callers: dict[str, list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
    for a, b, sites in reach.edges:
        callers[b].append((a, sites))
    kinds = {n: k for n, k, _ in reach.nodes}

    def label(name: str, sites: tuple[str, ...]) -> str:
        kind = kinds.get(name, "")
        where = f"  [dim]{escape(', '.join(sites[:3]))}{' …' if len(sites) > 3 else ''}[/dim]" if sites else ""
        return f"{escape(name)} [dim]({escape(kind)})[/dim]{where}"

    root = Tree(f"[bold cyan]{escape(reach.target)}[/bold cyan]")
    seen: set[str] = {reach.target}
    stack = [(reach.target, root)]
    while stack:
        name, node = stack.pop()
        for caller, sites in sorted(callers.get(name, ())):
            if caller in seen:
                node.add(label(caller, sites) + " [dim](shown above)[/dim]")
                continue
            seen.add(caller)
            child = node.add(label(caller, sites))
            stack.append((caller, child))
    console.print(root)
