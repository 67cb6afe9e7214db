"""SARIF 2.1.0 (OASIS), the format code-scanning services read.

One run; the driver lists every rule with its docs.  Each result carries the finding's fingerprint as
`partialFingerprints["armalias/v1"]` (rule, file, function, normalized expressions: no line number),
so a service tracks an alert across unrelated edits; its location is relative to `%SRCROOT%`, the
root that was scanned; the write and the maintenance calls the rule weighed are related locations.
`check` marks its results `baselineState: "new"` and lists what it compared in the run's properties.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from armalias import __version__
from armalias.findings import Finding
from armalias.rules import RuleSpec, load_rules

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT_KEY = "armalias/v1"
ROOT_ID = "SRCROOT"
_PRECISION = {"high": "high", "medium": "medium", "low": "low"}


def _text(value: object) -> str:
    return str(value).strip() if value is not None else ""


def rule_descriptor(rule: RuleSpec) -> dict[str, Any]:
    docs = dict(rule.docs)
    what = _text(docs.get("what")) or rule.slug
    parts = [what]
    if docs.get("why"):
        parts.append(_text(docs["why"]))
    markdown = list(parts)
    for key, title in (("bad", "Bad"), ("good", "Good")):
        if docs.get(key):
            parts.append(f"{title}:\n{_text(docs[key])}")
            markdown.append(f"**{title}**\n\n```c\n{_text(docs[key])}\n```")
    refs = [str(r) for r in docs.get("references") or ()]
    if refs:
        parts.append("References: " + "; ".join(refs))
        markdown.append("**References**\n\n" + "\n".join(f"- {r}" for r in refs))
    return {
        "id": rule.code,
        "name": rule.slug,
        "shortDescription": {"text": what.split(". ")[0].rstrip(".") + "."},
        "fullDescription": {"text": what},
        "help": {"text": "\n\n".join(parts), "markdown": "\n\n".join(markdown)},
        "defaultConfiguration": {"level": rule.severity},
        "properties": {"category": rule.category, "precision": _PRECISION.get(rule.confidence, "medium"),
                       "tags": ["cache-alias", rule.category]},
    }


def _location(file: str, line: int, column: int = 0, message: str = "") -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": max(1, line)}
    if column >= 1:
        region["startColumn"] = column
    loc: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": quote(file), "uriBaseId": ROOT_ID},
                                                "region": region}}
    if message:
        loc["message"] = {"text": message}
    return loc


def result_for(f: Finding, rule_index: dict[str, int], baseline_state: str | None = None) -> dict[str, Any]:
    location = _location(f.file, f.line, f.column)
    if f.function:
        location["logicalLocations"] = [{"name": f.function, "kind": "function"}]
    related = []
    if f.write is not None:
        related.append(_location(f.write.file or f.file, f.write.line, 0,
                                 f"written through the {f.write.alias} alias: {f.write.expr}"))
    for m in f.maintenance:
        guard = f" (when {m.guard})" if m.guard else ""
        related.append(_location(m.file or f.file, m.line, 0, f"{m.call}({m.target}) maintains the {m.alias} alias{guard}"))
    for i, loc in enumerate(related, 1):
        loc["id"] = i
    out: dict[str, Any] = {
        "ruleId": f.rule,
        "level": f.severity,
        "message": {"text": f.message},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: f.fingerprint},
        "properties": {"category": f.category, "function": f.function, "chain": list(f.chain),
                       "model": {"verdict": f.model.verdict, "implementations": dict(f.model.implementations)}},
    }
    if f.rule in rule_index:
        out["ruleIndex"] = rule_index[f.rule]
    if related:
        out["relatedLocations"] = related
    if baseline_state:
        out["baselineState"] = baseline_state
    return out


def sarif_log(findings: list[Finding], root: str, baseline_state: str | None = None,
              properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """A SARIF log of one run over the tree at `root` (every result path is relative to it)."""
    rules = load_rules()
    codes = sorted(rules)
    rule_index = {c: i for i, c in enumerate(codes)}
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "armalias", "version": __version__, "semanticVersion": __version__,
                            "rules": [rule_descriptor(rules[c]) for c in codes]}},
        "originalUriBaseIds": {ROOT_ID: {"uri": Path(root).resolve().as_uri().rstrip("/") + "/"}},
        "results": [result_for(f, rule_index, baseline_state) for f in sorted(findings, key=Finding.sort_key)],
        "invocations": [{"executionSuccessful": True}],
    }
    if properties:
        run["properties"] = properties
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def dumps(log: dict[str, Any]) -> str:
    return json.dumps(log, indent=2) + "\n"
