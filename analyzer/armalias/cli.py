"""Commands only: parse arguments, call the pipeline, pick a reporter (CONTRACT.md)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from armalias import __version__
from armalias.errors import InputError
from armalias.findings import SEVERITIES, severity_rank

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2
        self.exit(EXIT_USAGE, f"armalias: error: {message}\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _jobs(text: str) -> int:
    """--jobs: 0 for the CPUs available, else at most that many worker processes."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of jobs: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--jobs takes 0 (the CPUs available) or a positive number, not {value}")
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return min(value, max(1, cpus))


def _file_timeout(args: argparse.Namespace) -> dict:
    """ScanOptions' file_timeout and config_options, when the flags were given."""
    seconds = getattr(args, "file_timeout", None)
    out: dict = {"file_timeout": seconds} if seconds is not None else {}
    if getattr(args, "kernel_config", None) is not None:
        out["config_options"] = _kernel_config(args.kernel_config)
    return out


def _kernel_config(path: Path) -> tuple[tuple[str, bool], ...]:
    """The settings of a .config the user named (a link is followed: the user named it)."""
    from armalias.source.files import read_named
    from armalias.source.kconfig import read_config_lines
    from armalias.source.text import MAX_FILE_BYTES

    options = read_config_lines(read_named(path, MAX_FILE_BYTES, "kernel config").decode("utf-8", "replace"))
    if not options:
        raise InputError(f"{path}: not a kernel config (no CONFIG_ lines)")
    return tuple(sorted(options.items()))


def _common(p: argparse.ArgumentParser, formats: tuple[str, ...]) -> None:
    p.add_argument("--format", choices=formats, default=formats[0], help="output format")
    p.add_argument("--output", "-o", type=Path, help="write the report to FILE instead of stdout")
    p.add_argument("--jobs", "-j", type=_jobs, default=0,
                   help="worker processes (default: the CPUs available, and never more)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the per-file extraction cache")
    p.add_argument("--whole-tree", action="store_true", help="scan every architecture and driver, not only arch/arm")
    p.add_argument("--verbose", "-v", action="store_true", help="list every skipped file")
    p.add_argument("--no-prefilter", action="store_true",
                   help="parse every file in scope, not only those that mention a word of the rules")
    p.add_argument("--file-timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="skip, with the reason, a file that takes longer to parse (default 30)")
    p.add_argument("--config", type=Path, metavar="FILE", dest="kernel_config",
                   help="a kernel .config (or defconfig): replay findings only on the cache implementations it builds")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="armalias", description="Find cache-alias bugs in the ARM Linux kernel.")
    parser.add_argument("--version", action="version", version=f"armalias {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    scan = sub.add_parser("scan", help="analyse a tree: call sites of watched functions, findings")
    scan.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    _common(scan, ("text", "json", "gcc", "sarif"))
    scan.add_argument("--fail-on", choices=SEVERITIES, default="warning")
    scan.add_argument("--baseline", type=Path, help="do not report findings whose fingerprints are in this file")
    scan.add_argument("--write-baseline", type=Path, metavar="FILE", help="write the fingerprints of this scan's findings to FILE")

    check = sub.add_parser("check", help="pre-submit: the findings a change introduces or fixes",
                           description="Compare the findings before and after a change, by fingerprint (never by "
                                       "line). Nothing given: the working tree against HEAD.")
    change = check.add_mutually_exclusive_group()
    change.add_argument("--git-range", metavar="BASE..HEAD", help="two revisions (BASE...HEAD: from their merge base)")
    change.add_argument("--staged", action="store_true", help="the index against HEAD (what git commit records)")
    change.add_argument("--patch", type=Path, metavar="FILE",
                        help="a unified diff, format-patch file or mbox series ('-': stdin), applied in memory")
    check.add_argument("--tree", type=Path, metavar="PATH", help="the kernel tree (default: the git work tree of the cwd)")
    check.add_argument("-p", "--strip", type=int, default=1, metavar="N", help="leading path components stripped from patch paths (default 1)")
    _common(check, ("text", "gcc", "json", "sarif"))
    check.set_defaults(format=None)  # text on a terminal, gcc lines elsewhere
    check.add_argument("--fail-on", choices=SEVERITIES, default=None, help="exit 1 when a new finding is at or above it (default warning)")
    check.add_argument("--select", metavar="CODES", help="report only these rule codes (comma-separated)")
    check.add_argument("--ignore", metavar="CODES", help="never report these rule codes")
    check.add_argument("--baseline", type=Path, help="never report as new the findings whose fingerprints are in this file")

    graph = sub.add_parser("graph", help="who reaches a watched function")
    graph.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    graph.add_argument("--function", "-f", action="append", help="the function to draw callers of (repeatable; default: every watched function)")
    _common(graph, ("text", "dot", "graphml", "json"))
    audit = sub.add_parser("audit", help="audit report of the cache implementations under arch/arm/mm")
    audit.add_argument("path", type=Path, metavar="PATH")
    audit.add_argument("--format", choices=("text", "markdown", "html", "json"), default="text")
    audit.add_argument("--output", "-o", type=Path, help="write the report to FILE instead of stdout")
    audit.add_argument("--no-findings", action="store_true", help="do not scan the tree for the findings each implementation confirms")
    audit.add_argument("--jobs", "-j", type=_jobs, default=0)
    audit.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    audit.add_argument("--no-cache", action="store_true")

    explain = sub.add_parser("explain", help="what a rule means, why it matters, how to fix it")
    explain.add_argument("code", metavar="CODE")
    explain.add_argument("--tree", type=Path, metavar="PATH",
                         help="say what the cache implementations of the kernel tree at PATH do where the rule's claim turns")
    explain.add_argument("--no-cache", action="store_true")
    return parser


def cmd_audit(args: argparse.Namespace) -> int:
    from armalias.audit import audit_tree, to_json, with_callers
    from armalias.report import audit as audit_report
    from armalias.report.jsonout import finding_to_dict

    result = audit_tree(args.path)
    findings: list[dict] = []
    if not args.no_findings:
        from armalias.scan import ScanOptions, scan

        scanned = scan([args.path], ScanOptions(jobs=args.jobs, use_cache=not args.no_cache))
        findings = [finding_to_dict(f) for f in scanned.findings]
        result = with_callers(result, scanned.callsites)  # the C callers that reach each deviation
    if args.format == "json":
        data = to_json(result, str(args.path))
        if findings:
            data["findings"] = findings
        _write(args, json.dumps(data, indent=2) + "\n")
    elif args.format == "markdown":
        _write(args, audit_report.render_audit_markdown(result, findings))
    elif args.format == "html":
        _write(args, audit_report.render_audit_html(result, findings))
    else:
        _render_text(args, lambda console: audit_report.render_audit_text(result, console, findings))
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from armalias.explain import explain
    from armalias.rules import load_rules

    rules = load_rules()
    code = args.code.upper()
    if code not in rules:
        raise InputError(f"unknown rule code {args.code!r} (known: {', '.join(sorted(rules))})")
    cache_dir = None
    if args.tree is not None and not args.no_cache:
        from armalias.scan import ScanOptions, cache_dir_for, trusted_options

        cache_dir = cache_dir_for(trusted_options(ScanOptions()))
    sys.stdout.write(explain(rules[code], args.tree, cache_dir))
    return EXIT_OK


def _write(args: argparse.Namespace, text: str) -> None:
    if args.output:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{args.output}: cannot write: {exc.strerror}") from None
    else:
        sys.stdout.write(text)


# run() sets this list: the commands' results go into it and are left to os._exit, never freed one
# object at a time (a whole-tree check holds millions); main() called as a function frees them as usual
_LEFT_TO_EXIT: list | None = None


def _keep(result):
    if _LEFT_TO_EXIT is not None:
        _LEFT_TO_EXIT.append(result)
    return result


def _run_scan(args: argparse.Namespace, reuse: bool = False):
    from armalias.report.progress import progress_bar
    from armalias.scan import ScanOptions, scan

    options = ScanOptions(whole_tree=args.whole_tree, jobs=args.jobs, use_cache=not args.no_cache,
                          prefilter=not getattr(args, "no_prefilter", False), reuse=reuse, **_file_timeout(args))
    with progress_bar("parsing", enabled=True) as update:
        return _keep(scan(list(args.paths), options, update, root_label=str(args.paths[0])))


def cmd_scan(args: argparse.Namespace) -> int:
    from armalias.report import gcc, jsonout

    from armalias.suppress import apply_suppressions, load_baseline, write_baseline

    result = _run_scan(args, reuse=True)
    findings, suppressed, unused = apply_suppressions(list(result.findings), result.facts)
    baselined = 0
    if args.baseline:
        known = load_baseline(args.baseline)
        baselined = sum(1 for f in findings if f.fingerprint in known)
        findings = [f for f in findings if f.fingerprint not in known]
    if args.write_baseline:
        write_baseline(args.write_baseline, findings)
    for s in unused:
        print(f"{s.file}:{s.line}: warning: unused suppression armalias: ignore[{','.join(s.codes)}]", file=sys.stderr)
    if args.format == "json":
        data = jsonout.scan_to_dict(result, findings)
        data["suppressed"] = [jsonout.finding_to_dict(f) for f in suppressed]
        data["unused_suppressions"] = [{"file": s.file, "line": s.line, "codes": list(s.codes), "reason": s.reason}
                                       for s in unused]
        data["stats"]["baselined"] = baselined
        _write(args, jsonout.dumps(data))
    elif args.format == "gcc":
        _write(args, gcc.render_findings(findings))
    elif args.format == "sarif":
        from armalias.report import sarif

        _write(args, sarif.dumps(sarif.sarif_log(findings, result.root)))
    else:
        from armalias.report.text import render_scan

        _render_text(args, lambda console: render_scan(result, findings, console, args.verbose))
    threshold = severity_rank(args.fail_on)
    return EXIT_FINDINGS if any(severity_rank(f.severity) >= threshold for f in findings) else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from armalias.config import load_config, merge_vocabulary, settings
    from armalias.check.changes import change_for
    from armalias.check.run import CheckOptions, run_check
    from armalias.report import gcc, jsonout, sarif
    from armalias.report.progress import progress_bar
    from armalias.rules import load_rules, load_vocabulary
    from armalias.scan import ScanOptions
    from armalias.suppress import load_baseline

    if args.strip < 0:
        raise InputError("--strip must be 0 or more")
    root, change = change_for(args.tree, args.git_range, args.staged, args.patch, args.strip)
    root_label = str(args.tree) if args.tree is not None else str(root)
    try:
        config = load_config(change.head)
        opts = settings(config, set(load_rules()), args.select, args.ignore,
                        str(args.baseline) if args.baseline else None, args.fail_on)
        baseline: frozenset[str] = frozenset()
        if opts.baseline:  # a path from .armalias.toml is relative to the tree root, one from the flag to the cwd
            path = Path(opts.baseline) if args.baseline else root / opts.baseline
            baseline = frozenset(load_baseline(path))
        vocab = merge_vocabulary(load_vocabulary(), config) if config.extends_vocabulary else None
        options = CheckOptions(ScanOptions(whole_tree=args.whole_tree, jobs=args.jobs, use_cache=not args.no_cache,
                                           **_file_timeout(args)),
                               opts.codes, baseline, vocab)
        with progress_bar("parsing", enabled=True) as update:
            result = _keep(run_check(change, options, update, root_label))
    finally:
        change.close()
    for note in change.notes:
        print(f"armalias: note: {note}", file=sys.stderr)
    unknown = (f", {len(result.unknown)} unknown (a file one side could not analyse: see skipped)"
               if result.unknown else "")
    summary = (f"{len(result.new)} new, {len(result.fixed)} fixed, {result.unchanged} unchanged{unknown} "
               f"({change.base_label} -> {change.head_label}; {len(change.changed)} files changed)")
    fmt = args.format or ("text" if args.output is None and sys.stdout.isatty() else "gcc")
    if fmt == "json":
        data = jsonout.scan_to_dict(result.head, result.new)
        data["stats"].update(seconds=round(result.seconds, 3), changed=len(change.changed),
                             suppressed=result.suppressed, baselined=result.baselined, base_from=result.base_from,
                             head_from=result.head_from)
        data.update(base=change.base_label, head=change.head_label,
                    new=[jsonout.finding_to_dict(f) for f in result.new],
                    fixed=[jsonout.finding_to_dict(f) for f in result.fixed], unchanged=result.unchanged,
                    unknown=[jsonout.finding_to_dict(f) for f in result.unknown],
                    skipped={side: [{"file": sk.file, "reason": sk.reason} for sk in skipped]
                             for side, skipped in (("base", result.skipped_base), ("head", result.head.skipped))},
                    changed=list(change.changed), renamed=dict(change.renames), notes=list(change.notes))
        _write(args, jsonout.dumps(data))
    elif fmt == "sarif":
        props = {"base": change.base_label, "head": change.head_label, "unchanged": result.unchanged,
                 "fixed": [{"rule": f.rule, "file": f.file, "line": f.line, "function": f.function,
                            "fingerprint": f.fingerprint} for f in result.fixed]}
        _write(args, sarif.dumps(sarif.sarif_log(result.new, str(root), "new", props)))
    elif fmt == "gcc":
        _write(args, gcc.render_findings(result.new))
        print(f"armalias check: {summary}", file=sys.stderr)
        for side, skipped in (("base", result.skipped_base), ("head", result.head.skipped)):
            for sk in skipped:
                if any(f.file == sk.file for f in result.unknown):
                    print(f"armalias check: {sk.file}: skipped on the {side} side: {sk.reason}", file=sys.stderr)
    else:
        from armalias.report.text import escape, render_findings_table

        def draw(console) -> None:
            console.print(f"[bold]armalias check[/bold] {escape(root_label)}")
            console.print(summary + f"  time {result.seconds:.2f}s", markup=False)
            for note in change.notes:
                console.print(f"note: {note}", markup=False)
            for title, found in (("New findings", result.new), ("Fixed findings", result.fixed),
                                 ("Unknown (the other side could not analyse the file)", result.unknown)):
                if found:
                    console.print()
                    console.print(f"[bold]{title}[/bold]")
                    render_findings_table(found, console)

        _render_text(args, draw)
    if result.unknown:
        return EXIT_USAGE  # CONTRACT.md: a file the verdict depends on could not be analysed
    return EXIT_FINDINGS if result.fails(opts.fail_on) else EXIT_OK


def _render_text(args: argparse.Namespace, draw: Callable) -> None:
    from armalias.report.text import console_for

    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                draw(console_for(fh, force_terminal=False))
        except OSError as exc:
            raise InputError(f"{args.output}: cannot write: {exc.strerror}") from None
    else:
        draw(console_for(sys.stdout))


def cmd_graph(args: argparse.Namespace) -> int:
    from armalias.callgraph import reach_to_dot, reach_to_graphml
    from armalias.rules import load_watched

    result = _run_scan(args)
    graph = result.graph
    targets = args.function or [n for n in load_watched().names if n in graph]
    missing = [t for t in targets if t not in graph]
    if missing:
        raise InputError(f"not in the call graph of {args.paths[0]}: {', '.join(missing)}")
    reaches = [graph.reach(t) for t in targets]
    if args.format == "dot":
        _write(args, "".join(reach_to_dot(r) for r in reaches))
    elif args.format == "graphml":
        if len(reaches) != 1:
            raise InputError("--format graphml draws one function: give exactly one --function")
        _write(args, reach_to_graphml(reaches[0]))
    elif args.format == "json":
        data = {"tool": "armalias", "version": __version__, "schema": 1, "root": str(args.paths[0]),
                "graphs": [{"function": r.target,
                            "nodes": [{"name": n, "kind": k, "defs": list(d)} for n, k, d in r.nodes],
                            "edges": [{"caller": a, "callee": b, "sites": list(s)} for a, b, s in r.edges]}
                           for r in reaches]}
        _write(args, json.dumps(data, indent=2) + "\n")
    else:
        from armalias.report.text import render_reach

        _render_text(args, lambda console: [render_reach(r, console) for r in reaches])
    return EXIT_OK


COMMANDS = {"scan": cmd_scan, "check": cmd_check, "graph": cmd_graph, "audit": cmd_audit, "explain": cmd_explain}


@contextmanager
def paused_gc() -> Iterator[None]:
    """No automatic cyclic garbage collection meanwhile; the collector's state before is restored
    after.  A command's objects (facts, index, graph, flows) live until it ends and form almost no
    cycles: a whole-tree scan of 6.12 leaves 1,441 objects for the collector, while its automatic
    passes go over the hundreds of thousands held, again and again as they grow.  The worker
    processes forked meanwhile inherit the pause.  (Here, not in armalias.workers: a warm scan
    imports no process pool.)"""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with paused_gc():
            return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"armalias: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("armalias: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug in armalias: never exit 1, which means "findings"
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"armalias: internal error: {type(exc).__name__}: {exc}"
              + ("" if getattr(args, "debug", False) else " (run again with --debug for the traceback)"),
              file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:
    """The command's entry point: main, then out at once.  Everything armalias writes (the output
    file, the caches, the remembered state) is complete and closed when main returns, and its worker
    processes are done or on their way out; the streams are flushed here.  The interpreter's own
    teardown (joining the pools' threads, freeing the analysis' objects one by one) is skipped: the
    command's results are left to os._exit too (_LEFT_TO_EXIT), and the collector stays off:
    turned on again, its first pass would go over every object made while it was paused."""
    global _LEFT_TO_EXIT
    _LEFT_TO_EXIT = []
    gc.disable()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader gone (| head), or a stream closed
            pass
    os._exit(code or 0)


if __name__ == "__main__":
    run()
