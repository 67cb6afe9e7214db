"""Renderings of the cache-implementation audit: rich table, Markdown, self-contained HTML.

Every renderer takes ``findings``: scan findings as CONTRACT.md dicts. When given, a "confirms" column
lists, per implementation, the findings whose ``model.implementations`` verdict for it is
``confirmed`` (the replay of the finding on that cache model shows the bug).
"""

from __future__ import annotations

import html
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

from armalias.audit import AuditResult
from armalias.cacheimpl import CacheFunction, CacheImpl

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
    return impl.cache_type + (" WT" if impl.write_through else "")


def _summary_line(result: AuditResult) -> str:
    return (f"{len(result.implementations)} implementations from {result.files} files; "
            f"{len(result.undecoded)} undecoded operations; {len(result.skipped)} files skipped; "
            f"{len(result.fallthroughs)} fall-throughs between functions")  # fmt: skip


def render_audit_text(result: AuditResult, console: Console, findings: Iterable[dict[str, Any]] = ()) -> None:
    """A rich table on ``console``, then the undecoded operations and skipped files."""
    findings = list(findings)
    console.print(f"[bold]armalias audit[/bold] {result.root}")
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
        table.add_row(*row)
    console.print(table)
    if result.undecoded:
        console.print("[bold]Undecoded operations[/bold]")
        for u in result.undecoded:
            console.print(f"  {u.implementation}.{u.member}: {u.text}")
    if result.skipped:
        console.print("[bold]Skipped files[/bold]")
        for file, reason in result.skipped:
            console.print(f"  {file}: {reason}")
    for note in result.notes:
        console.print(f"note: {note}")


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
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#f0f0f0}
code,.mono{font-family:ui-monospace,monospace}
.VIVT{background:#fde2e2}.VIPT{background:#e2f0fd}.unknown{background:#eee}
details{margin:.3em 0}
.unk{color:#a00;font-weight:bold}
"""


def render_audit_html(result: AuditResult, findings: Iterable[dict[str, Any]] = ()) -> str:
    """One self-contained HTML page (inline CSS, no scripts, no external assets)."""
    findings = list(findings)
    e = html.escape
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           f"<title>armalias audit: {e(str(result.root))}</title>", f"<style>{_CSS}</style></head><body>",
           f"<h1>armalias audit: <code>{e(str(result.root))}</code></h1>", f"<p>{e(_summary_line(result))}</p>",
           "<table><thead><tr>"]  # fmt: skip
    header = ["implementation", "file", "cache", "configs", *SHOWN_MEMBERS] + (["confirms"] if findings else [])
    out.append("".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for impl in result.implementations:
        cells = [f"<td><a href='#impl-{e(impl.name)}'><code>{e(impl.name)}</code></a></td>",
                 f"<td><code>{e(impl.file)}</code></td>",
                 f"<td class='{e(impl.cache_type)}'>{e(_type(impl))}</td>", f"<td>{e(_configs(impl))}</td>"]  # fmt: skip
        cells += [f"<td>{e(_effect(impl.functions.get(m)))}</td>" for m in SHOWN_MEMBERS]
        if findings:
            cells.append("<td>" + "<br>".join(e(x) for x in confirmed_by(impl, findings)) + "</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
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
                out.append(f"<li class='mono'>{e(step.op)}: {e(step.raw)} "
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
    out.append("</body></html>")
    return "\n".join(out) + "\n"
