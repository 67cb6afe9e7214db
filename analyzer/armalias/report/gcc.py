"""gcc-style lines: file:line:col: severity: message [CODE] — what editors and CI logs understand."""

from __future__ import annotations

from armalias.findings import Finding

_LEVEL = {"error": "error", "warning": "warning", "note": "note"}


def render_findings(findings: list[Finding]) -> str:
    lines = []
    for f in sorted(findings, key=Finding.sort_key):
        lines.append(f"{f.file}:{f.line}:{f.column}: {_LEVEL[f.severity]}: {f.message} [{f.rule}]")
    return "\n".join(lines) + ("\n" if lines else "")
