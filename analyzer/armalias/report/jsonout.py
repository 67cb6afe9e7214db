"""JSON renderings (schema 1, CONTRACT.md)."""

from __future__ import annotations

import json
from typing import Any

from armalias import __version__
from armalias.findings import Finding
from armalias.scan import ScanResult

SCHEMA = 1


def finding_to_dict(f: Finding) -> dict[str, Any]:
    d: dict[str, Any] = {
        "rule": f.rule, "category": f.category, "severity": f.severity, "file": f.file,
        "line": f.line, "column": f.column, "function": f.function, "message": f.message,
    }
    if f.write is not None:
        d["write"] = {"line": f.write.line, "expr": f.write.expr, "alias": f.write.alias,
                      **({"file": f.write.file} if f.write.file else {})}
    d["maintenance"] = [
        {"call": m.call, "line": m.line, "target": m.target, "alias": m.alias, **({"guard": m.guard} if m.guard else {}),
         **({"file": m.file} if m.file else {})}
        for m in f.maintenance
    ]
    if f.guard:
        d["guard"] = f.guard
    d["chain"] = list(f.chain)
    d["fingerprint"] = f.fingerprint
    d["model"] = {"verdict": f.model.verdict, "implementations": dict(f.model.implementations),
                  "witness": list(f.model.witness)}
    if f.model.built_under:  # the code is built only under these: the other implementations were not replayed
        d["model"]["built_under"] = list(f.model.built_under)
    confirming = f.model.confirming()
    if confirming:
        d["affects"] = {"implementations": confirming, "configs": list(f.model.configs)}
        if f.model.defconfigs:
            d["affects"]["defconfigs"] = list(f.model.defconfigs)
    return d


def scan_to_dict(result: ScanResult, findings: list[Finding]) -> dict[str, Any]:
    return {
        "tool": "armalias", "version": __version__, "schema": SCHEMA, "root": result.root,
        "stats": {"files": result.files, "parsed": result.parsed, "skipped": len(result.skipped),
                  "functions": result.functions, "seconds": round(result.seconds, 3)},
        "callsites": [
            {"callee": c.callee, "caller": c.caller, "file": c.file, "line": c.line, "column": c.column,
             "via": list(c.via), "args": list(c.args)}
            for c in result.callsites
        ],
        "findings": [finding_to_dict(f) for f in sorted(findings, key=Finding.sort_key)],
        "skipped": [{"file": s.file, "reason": s.reason} for s in result.skipped],
    }


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"
