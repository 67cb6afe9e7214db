"""What ARM instructions and the reader's conditional blocks do to control flow.

Classifies an instruction (a branch, a call, a return, an indirect jump; whether it carries a
condition; whether its mnemonic is known) and indexes a read `AsmFile`: its labels, where each
conditional block goes, and the function that owns each item.  The walk (source/asmtree.py) and the
register flow (source/asmregs.py) follow the code with it.
"""

from __future__ import annotations

import re

from armalias.source.asm import IDENT_RE, AsmFile, Item

COND = "eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al"
_BASES = (
    "adc|add|adr|adrl|and|asr|bic|bfc|bfi|clz|cmn|cmp|cps|cpsid|cpsie|dbg|dmb|dsb|eor|isb|ldc|ldm|ldr|"
    "lsl|lsr|mcr|mcr2|mcrr|mla|mls|mov|movw|movt|mrc|mrc2|mrrc|mrs|msr|mul|mvn|nop|orn|orr|pld|pldw|pli|"
    "pop|push|rev|rev16|rbit|ror|rrx|rsb|rsc|sbc|sbfx|sev|smull|smlal|stc|stm|str|sub|svc|swi|swp|teq|"
    "tst|ubfx|udf|umull|umlal|uxtb|uxth|sxtb|sxth|wfe|wfi|yield|clrex|bkpt|setend|it[te]{0,3}|tbb|tbh|"
    "cbz|cbnz|neg|ret|b|bl|blx|bx|bxj|smc|hvc|eret|ssat|usat|pkhbt|sel|uadd8|ldrex|strex"
)
MNEMONIC_RE = re.compile(
    rf"^(?:{_BASES})(?:{COND}|s|ia|ib|da|db|fd|ed|fa|ea|b|h|sb|sh|d|t|bt|ex|exd)*(?:\.w|\.n)?$"
)
_BRANCH_RE = re.compile(rf"^(?P<op>blx|bl|bx|b)(?P<cc>{COND})?(?:\.w|\.n)?$")
_RET_RE = re.compile(rf"^ret(?P<cc>{COND})?$")
_MOV_RE = re.compile(rf"^(?:mov|movs|mov(?:{COND})s?)(?:\.w)?$")
_LDM_RE = re.compile(rf"^(?:ldm|pop)(?:{COND}|ia|ib|da|db|fd|ed|fa|ea)*(?:\.w)?$")


SUFFIX_RE = re.compile(rf"^(?:s|ia|ib|da|db|fd|ed|fa|ea|b|h|sb|sh|d|t)*(?P<cc>{COND})?(?:s|ia|ib|da|db|fd|ed|fa|ea|b|h|sb|sh|d|t)*$")
_STEMS = ("mcr2", "mcr", "ldm", "pop", "movs", "mov", "subs", "sub", "adds", "add", "ldr", "str", "movw", "movt")


def has_condition(mnem: str) -> bool:
    """Whether an instruction carries a condition code (``mcrne``, ``ldmfdeq``, ``movne``...)."""
    stem = mnem.split(".")[0]
    for base in _STEMS:
        if stem.startswith(base):
            m = SUFFIX_RE.match(stem[len(base):])
            return bool(m and m["cc"] and m["cc"] != "al")
    return False


def control_flow(mnem: str, ops: str) -> tuple[str, str, bool] | None:
    """(kind, target, conditional) for control-flow instructions; None for straight-line ones."""
    m = _BRANCH_RE.match(mnem)
    if m:
        cond = bool(m["cc"]) and m["cc"] != "al"
        target = ops.split(",")[0].strip()
        if m["op"] == "bx":
            return ("return", "", cond) if target == "lr" else ("indirect", target, cond)
        if m["op"] == "blx":
            return ("call", target, cond) if IDENT_RE.match(target) else ("indirect", target, cond)
        if m["op"] == "bl":
            return ("call", target, cond)
        return ("branch", target, cond)
    if mnem in ("cbz", "cbnz"):
        return ("branch", ops.split(",")[-1].strip(), True)
    m = _RET_RE.match(mnem)
    if m:
        return ("return", "", bool(m["cc"]) and m["cc"] != "al")
    if _LDM_RE.match(mnem) and re.search(r"\bpc\b", ops, re.I):
        return ("return", "", has_condition(mnem))
    dest = ops.split(",")[0].strip().lower()
    if dest == "pc":
        src = ops.split(",", 1)[1].strip().lower().replace(" ", "") if "," in ops else ""
        if mnem.startswith("sub") and src == "pc,#4":
            return None  # sub pc, pc, #4: flush the pipeline and continue at the next instruction
        if src.startswith("lr") or mnem.startswith("ldr"):
            return ("return", "", has_condition(mnem))
        return ("indirect", src, has_condition(mnem))
    return None


def block_successors(asm: AsmFile, i: int, item: Item) -> list[int]:
    """Where control goes from an ``if`` marker (each branch, and past the block unless some branch
    always runs) or an ``else`` marker (past the block: the branch before it is done)."""
    elses, end, exhaustive = asm.blocks.get(item.cid, ([], i, False))
    if item.kind == "else":
        return [end]
    succ = [i + 1] + [e + 1 for e in elses]
    if not exhaustive:
        succ.append(end)
    return succ


def index(asm: AsmFile) -> None:
    """Labels, conditional blocks and the owning function of every item.

    A named label starts a new owner when it opens a function (ENTRY, SYM_FUNC_START), follows a
    function end, or follows an instruction that never falls through (a return or an unconditional
    branch): the shape of the file-local helpers such as ``v7_dma_inv_range:``.
    """
    owner = ""
    closed = True  # no function is open, or the last instruction does not fall through
    open_blocks: dict[int, tuple[list[int], int]] = {}
    for idx, item in enumerate(asm.items):
        kind = item.kind
        if kind == "label":
            if item.name.isdigit():
                asm.numeric.setdefault(item.name, []).append(idx)
            elif item.name not in asm.labels:
                asm.labels[item.name] = idx
                if closed and not item.name.startswith(".L"):
                    owner = item.name
        elif kind == "func":
            owner = item.name
            closed = False
        elif kind == "endfunc":
            closed = True
        elif kind == "global":
            asm.globals.add(item.name)
        elif kind == "alias":
            asm.aliases.setdefault(item.name, []).append((item.arg, item.conds))
        elif kind == "if":
            open_blocks[item.cid] = ([], idx)
        elif kind == "else":
            if item.cid in open_blocks:
                open_blocks[item.cid][0].append(idx)
        elif kind == "endif":
            elses, _ = open_blocks.pop(item.cid, ([], idx))
            asm.blocks[item.cid] = (elses, idx, item.exhaustive)
        elif kind == "insn":
            flow = control_flow(item.name, item.arg)
            closed = bool(flow and not flow[2] and flow[0] in ("return", "branch", "indirect")) and not item.conds
        elif kind in ("data", "section"):
            closed = True
        asm.owner.append(owner)
