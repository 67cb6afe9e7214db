"""`armalias explain CODE [--tree PATH]`: what a rule means, from its file in rules/, and which cache
implementations of a tree do what the rule's claim turns on, from that tree's decoded assembly.

A rule's `[docs] members` names the cpu_cache_fns members its claim depends on (AA002: what
coherent_kern_range does to the D-cache at the address it is given).  Without a tree, explain says
no more than the rule does and tells how to ask of one; with `--tree`, it reads that tree's
implementations as the audit decodes them (model.validate.tree_implementations) and groups them by what
each member does there, naming the tree and its kernel version.
"""

from __future__ import annotations

import re
from pathlib import Path

from armalias.cacheimpl import CacheImpl
from armalias.errors import InputError
from armalias.rules import RuleSpec
from armalias.source.files import read_regular
from armalias.source.text import MAX_FILE_BYTES

_MAKE_VAR = re.compile(rb"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)\s*$", re.M)


def kernel_release(root: Path) -> str:
    """The kernel version its top Makefile states (`6.12.57`), or "" when it cannot be read."""
    try:
        data, _ = read_regular(root / "Makefile", MAX_FILE_BYTES, root)
    except OSError:
        return ""
    values = {k.decode(): v.decode("ascii", "replace") for k, v in _MAKE_VAR.findall(data[:8192])}
    if not values.get("VERSION"):
        return ""
    release = ".".join(values[k] for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL") if values.get(k))
    return release + values.get("EXTRAVERSION", "")


def rule_text(rule: RuleSpec) -> list[str]:
    docs = dict(rule.docs)
    out = [f"{rule.code} {rule.slug}  [category {rule.category}, severity {rule.severity}, confidence {rule.confidence}]", ""]
    for key, title in (("what", "What"), ("why", "Why it matters"), ("bad", "Bad"), ("good", "Good")):
        if key in docs:
            body = str(docs[key]).rstrip()
            if key in ("bad", "good"):
                body = "\n".join("    " + line for line in body.splitlines())
            out += [f"{title}:", body, ""]
    refs = docs.get("references") or []
    if refs:
        out += ["References:"] + [f"  - {ref}" for ref in refs] + [""]
    return out


def _effect(impl: CacheImpl, member: str) -> str:
    fn = impl.functions.get(member)
    if fn is None:
        return "not provided"
    parts = [f"D {fn.d}", f"I {fn.i}", f"over {fn.scope}" if fn.scope not in ("none", "range") else ""]
    if fn.scope == "page":
        parts[2] = "over one page whatever the size"
    if fn.undecoded:
        parts.append(f"{len(fn.undecoded)} instruction(s) not decoded")
    return ", ".join(p for p in parts if p)


def members_text(rule: RuleSpec, impls: tuple[CacheImpl, ...], where: str) -> list[str]:
    """For each member the rule names, the implementations grouped by what it does."""
    members = list(dict(rule.docs).get("members") or ())
    if not members:
        return [f"{rule.code} turns on no one member of the cache implementations; `armalias audit` lists them all."]
    out = [f"What its claim turns on, in {where}:"]
    for member in members:
        out.append(f"  {member}:")
        groups: dict[str, list[CacheImpl]] = {}
        for impl in impls:
            groups.setdefault(_effect(impl, member), []).append(impl)
        for effect, group in sorted(groups.items()):
            names = ", ".join(f"{i.name} ({i.cache_type}{': ' + ' '.join(i.configs) if i.configs else ''})"
                              for i in sorted(group, key=lambda i: i.name))
            out.append(f"    {effect}: {names}")
    return out


def explain(rule: RuleSpec, tree: Path | None, cache_dir: Path | None) -> str:
    """The text of `armalias explain`: the rule, and with a tree what its implementations do."""
    out = rule_text(rule)
    members = dict(rule.docs).get("members") or ()
    if tree is None:
        if members:
            out.append(f"What {', '.join(members)} does depends on the cache implementation: "
                       f"`armalias explain {rule.code} --tree PATH` says it for the kernel tree at PATH.")
        return "\n".join(out).rstrip() + "\n"
    if not (tree / "arch" / "arm" / "mm").is_dir():
        raise InputError(f"{tree}: not an ARM kernel tree (no arch/arm/mm directory)")
    from armalias.model.validate import tree_implementations

    from armalias.model.validate import reference_implementations

    impls = tree_implementations(tree, cache_dir)
    release = kernel_release(tree)
    where = f"{tree}" + (f" (Linux {release}, decoded from arch/arm/mm)" if release else " (decoded from arch/arm/mm)")
    if impls == reference_implementations():  # its arch/arm/mm could not be decoded
        where = f"rules/reference-impls.toml, as {tree}'s arch/arm/mm could not be decoded"
    out += members_text(rule, impls, where)
    return "\n".join(out).rstrip() + "\n"
