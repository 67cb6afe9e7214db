"""SARIF 2.1.0 output, validated against the OASIS schema (fixtures/check/sarif-schema-2.1.0.json)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from armalias.cli import main
from armalias.report.sarif import FINGERPRINT_KEY, sarif_log
from armalias.rules import load_rules
from armalias.scan import ScanOptions, scan
from conftest import FIXTURES, POKE, UNCLEAN, edit, make_repo

SCHEMA = json.loads((FIXTURES / "check" / "sarif-schema-2.1.0.json").read_text())


def validate(log: dict) -> None:
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER).validate(log)


def test_schema_is_the_sarif_2_1_0_schema_and_rejects_broken_logs():
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    assert SCHEMA["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    good = sarif_log([], "/tmp")
    validate(good)
    for broken in ({**good, "version": "2.0.0"}, {"runs": good["runs"]},
                   {**good, "runs": [{**good["runs"][0], "results": [{"ruleId": "AA001"}]}]}):  # result without message
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_check_sarif_is_valid_and_carries_fingerprints(tmp_path: Path, capsys):
    root = make_repo(tmp_path)
    edit(root, POKE, *UNCLEAN)
    assert main(["check", "--tree", str(root), "--format", "json"]) == 1
    as_json = json.loads(capsys.readouterr().out)
    out = tmp_path / "check.sarif"
    assert main(["check", "--tree", str(root), "--format", "sarif", "--output", str(out)]) == 1
    log = json.loads(out.read_text())
    validate(log)
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(load_rules())
    (result,) = run["results"]
    (finding,) = as_json["new"]
    assert result["partialFingerprints"] == {FINGERPRINT_KEY: finding["fingerprint"]}
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "AA001"
    assert result["baselineState"] == "new" and result["level"] == finding["severity"]
    loc = result["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"] == {"uri": POKE, "uriBaseId": "SRCROOT"}
    assert loc["physicalLocation"]["region"]["startLine"] == finding["line"]
    assert loc["logicalLocations"] == [{"name": "poke_insn", "kind": "function"}]
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == root.resolve().as_uri() + "/"
    related = {r["physicalLocation"]["region"]["startLine"] for r in result["relatedLocations"]}
    assert finding["write"]["line"] in related
    assert run["properties"]["unchanged"] == as_json["unchanged"] and run["properties"]["fixed"] == []


def test_scan_findings_render_as_valid_sarif(demo_tree: Path, tmp_path: Path):
    findings = scan([demo_tree], ScanOptions(jobs=1)).findings
    assert findings
    log = sarif_log(findings, str(demo_tree))
    validate(log)
    results = log["runs"][0]["results"]
    assert [r["partialFingerprints"][FINGERPRINT_KEY] for r in results] == [
        f.fingerprint for f in sorted(findings, key=lambda f: f.sort_key())]
    # a path with a space is a valid uri-reference once escaped
    from dataclasses import replace

    spaced = sarif_log([replace(findings[0], file="arch/arm/my dir/x.c")], str(tmp_path))
    validate(spaced)
    assert spaced["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "arch/arm/my%20dir/x.c"


def test_scan_command_sarif_output(tmp_path: Path, capsys):
    fixture = FIXTURES / "rules" / "AA001-alias-write.c"
    assert main(["scan", str(fixture), "--format", "sarif"]) == 1
    log = json.loads(capsys.readouterr().out)
    validate(log)
    assert {r["ruleId"] for r in log["runs"][0]["results"]} == {"AA001", "AA002"}
