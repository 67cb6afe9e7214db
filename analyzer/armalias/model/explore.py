"""Bounded exhaustive exploration of a program on the cache model, against an adversarial environment.

The program is a sequence of `ProgramStep`s (compiled from a scenario for one implementation by
`armalias.model.scenario`). Between any two program steps (and before the first) the environment may
take actions, at most `bound` of them over the whole run:

* evict any D line (a dirty one is written back: an eviction never invents data, it only moves the
  newest copy of that line down a level), any I line, or write back any outer-level line;
* read through any mapped alias at a line the scenario touches (allocating a D line), standing for a
  speculative or earlier access, e.g. the previous text patch through the same fixmap slot;
* prefetch through any mapped executable alias at such a line (filling an I line).

A maintenance call is one program step per decoded operation that changes data (barriers ride along),
each applied over the whole range, in decoded order ("loops appear once": an interleaved per-line loop
and two consecutive loops give the same order per line, which is the order that matters). The
environment may act between two operations of one call, so an I invalidate placed before the D clean
is caught; it does not act between two lines of one operation.

A *hazard* is a consumer step (instruction fetch, data read, external read) whose bytes differ from
what the program last wrote to those physical bytes.

Search: 0-1 breadth-first over (step index, machine state): a program step costs 0, an environment
action 1, so the first hazard popped has the fewest environment actions; each (step, state) is
expanded once (memoized), with the smallest number of environment actions that reaches it. The witness
is rebuilt by replaying its action list with tracing switched on.

The default bound is 2: one action brings a line in at the wrong moment (a prefetch at the
execution alias before the write, the write alias's line present before the write on a cache that
does not allocate on writes), a second one orders write-backs or refills after a maintenance call.
Every acceptance scenario's verdict is the same with bound 3 (the tests check it), and
`test_model_properties` checks the memoized search against a naive enumeration of every schedule.

Cost: each (step, machine state) pair is expanded at most once, so a search's cost follows the
number of distinct states reachable with at most `bound` environment actions (`Verdict.states`
reports it), and a confirmed search stops at its first hazard. The default geometry is tiny (a few
sets and ways), which keeps that number small at the default bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from armalias.model.cache import Machine

DEFAULT_BOUND = 2
VERDICTS = ("confirmed", "refuted", "not-run")


@dataclass(frozen=True)
class ProgramStep:
    """One step of the program. `apply` runs it on the machine, appends its description to `trace`
    when given, and returns True when the step is a consumer that observed stale data."""

    label: str
    apply: Callable[[Machine, list[str] | None], bool]
    unknown: tuple[str, ...] = ()  # unknown/undecoded operations this step involved
    group: str = ""  # the maintenance call this step is one operation of ("" for other steps)
    at: str = ""  # file:line of the code it stands for, shown after its line of the witness


@dataclass(frozen=True)
class Verdict:
    """What the model says about one scenario on one implementation."""

    verdict: str  # "confirmed", "refuted" or "not-run"
    witness: tuple[str, ...] = ()  # shortest trace to a hazard (confirmed only)
    bound: int = DEFAULT_BOUND  # environment actions allowed in total
    unknown_ops: bool = False  # an unknown/undecoded op or missing cache function was involved
    notes: tuple[str, ...] = ()  # which ones, and other caveats
    states: int = 0  # (step, state) pairs expanded
    env_actions: int = 0  # environment actions in the witness

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "witness": list(self.witness), "bound": self.bound,
                "unknown_ops": self.unknown_ops, "notes": list(self.notes), "states": self.states}


def explore(
    steps: Sequence[ProgramStep],
    machine: Machine,
    lines_of_interest: Iterable[tuple[str, int]],
    executable: Iterable[str],
    bound: int = DEFAULT_BOUND,
) -> Verdict:
    """Search every interleaving of `steps` with at most `bound` environment actions."""
    if bound < 0:
        raise ValueError("bound must be >= 0")
    interest = tuple(sorted(set(lines_of_interest)))
    executable = tuple(sorted(set(executable)))
    unknown = tuple(dict.fromkeys(u for step in steps for u in step.unknown))
    root = (0, machine.snapshot())
    best = {root: 0}
    parent: dict[tuple, tuple[tuple, tuple]] = {}
    expanded: set[tuple] = set()
    queue: deque[tuple[tuple, int]] = deque([(root, 0)])

    def push(node: tuple, cost: int, via: tuple[tuple, tuple], front: bool) -> None:
        if cost < best.get(node, bound + 1):
            best[node] = cost
            parent[node] = via
            (queue.appendleft if front else queue.append)((node, cost))

    while queue:
        node, cost = queue.popleft()
        if node in expanded or cost > best[node]:
            continue
        expanded.add(node)
        index, snap = node
        if index == len(steps):
            continue
        machine.restore(snap)
        if steps[index].apply(machine, None):
            actions = _path(parent, node) + [("step", index)]
            witness = _replay(steps, machine, root[1], actions)
            return Verdict("confirmed", witness, bound, bool(unknown), unknown, len(expanded),
                           sum(1 for a in actions if a[0] == "env"))
        push((index + 1, machine.snapshot()), cost, (node, ("step", index)), True)
        if cost == bound:
            continue
        machine.restore(snap)
        for action in machine.env_actions(interest, executable):
            machine.restore(snap)
            machine.env_apply(action, None)
            push((index, machine.snapshot()), cost + 1, (node, ("env", action)), False)
    return Verdict("refuted", (), bound, bool(unknown), unknown, len(expanded))


def _path(parent: dict[tuple, tuple[tuple, tuple]], node: tuple) -> list[tuple]:
    actions = []
    while node in parent:
        node, action = parent[node]
        actions.append(action)
    actions.reverse()
    return actions


def _replay(steps: Sequence[ProgramStep], machine: Machine, start: tuple, actions: list[tuple]) -> tuple[str, ...]:
    machine.restore(start)
    trace: list[str] = []
    open_group = ""  # the call whose operations the last trace line shows
    for kind, arg in ((a[0], a[1]) for a in actions):
        if kind == "env":
            machine.env_apply(arg, trace)
            open_group = ""
            continue
        step = steps[arg]
        where = f" ({step.at})" if step.at else ""
        if not step.group:
            before = len(trace)
            step.apply(machine, trace)
            if where and len(trace) > before:
                trace[before] += where
            open_group = ""
            continue
        parts: list[str] = []
        step.apply(machine, parts)
        if open_group == step.group:
            trace[-1] += "; " + "; ".join(parts)
        else:
            trace.append(f"{step.group}{where}: " + "; ".join(parts))
        open_group = step.group
    return tuple(trace)
