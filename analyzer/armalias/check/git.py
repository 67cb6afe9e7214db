"""git as a reader of data only.

Every git command armalias runs goes through here.  The scanned repository is a stranger's: its
`.git/config` may name programs (core.fsmonitor, filter drivers, diff drivers, a pager, hooks) that
git would run on its behalf.  Each call therefore gets a minimal environment (no system config, no
pager, no prompt, no optional locks) and command-line settings that override every key of the
repository's config that names a program, so git reads objects, the index and the working tree and
runs nothing.  Reading the config itself (`git config --list`) runs nothing either.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path

from armalias.errors import InputError

# Variables that say where the repository is (a hook runs with them set) are kept; every other GIT_*
# variable (GIT_EXTERNAL_DIFF, GIT_PAGER, GIT_SSH_COMMAND, GIT_CONFIG_PARAMETERS ...) is dropped.
KEPT_GIT_VARIABLES = frozenset({"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                                "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE"})

# Settings that run nothing, whatever the repository says.
FIXED_SETTINGS = (
    "core.fsmonitor=false", "core.hooksPath=/dev/null", "core.pager=cat", "core.askPass=",
    "core.sshCommand=", "diff.external=", "gc.auto=0", "maintenance.auto=false", "core.untrackedCache=false",
    "protocol.allow=never", "credential.helper=",
)

# Keys whose value is a program: `filter.<driver>.clean` and the like; each one the repository sets is
# overridden with an empty value, which git takes as "no program".
_PROGRAM_KEY = re.compile(r"^(filter\.(.+)\.(clean|smudge|process)|diff\.(.+)\.(textconv|command)|merge\.(.+)\.driver)$",
                          re.I)


def git_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in KEPT_GIT_VARIABLES}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat",
               PAGER="cat", LC_ALL="C", GIT_NO_REPLACE_OBJECTS="1")
    env.pop("GIT_ASKPASS", None)
    env.pop("SSH_ASKPASS", None)
    return env


@lru_cache(maxsize=16)
def _program_keys(repo: str) -> tuple[str, ...]:
    """The keys of the repository's config (every scope git reads) that name a program."""
    try:
        res = subprocess.run(["git", "-C", repo, "config", "--list", "--name-only", "-z"], capture_output=True,
                             env=git_environment(), stdin=subprocess.DEVNULL)
    except OSError:
        return ()
    keys = {k for k in res.stdout.decode("utf-8", "surrogateescape").split("\0") if _PROGRAM_KEY.match(k)}
    return tuple(sorted(keys))


def git_command(repo: Path, *args: str) -> list[str]:
    """The argument vector of a read-only git command in repo."""
    settings = [*FIXED_SETTINGS]
    for key in _program_keys(str(repo)):
        settings.append(f"{key}=")
        if key.lower().startswith("filter."):  # a driver without its program must not be an error
            settings.append(key.rsplit(".", 1)[0] + ".required=false")
    head = ["git", "--no-pager", "--no-replace-objects"]
    for s in settings:
        head += ["-c", s]
    return [*head, "-C", str(repo), *args]


def run_git(repo: Path, *args: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a read-only git command in repo; InputError when git cannot run, or (check) when it fails."""
    try:
        res = subprocess.run(git_command(repo, *args), capture_output=True, env=git_environment(),
                             input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
    except OSError as exc:
        raise InputError(f"cannot run git: {exc.strerror or exc}") from None
    if check and res.returncode != 0:
        err = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(f"{repo}: git {args[0]} failed: {err[-1] if err else f'exit {res.returncode}'}")
    return res


def start_git(repo: Path, *args: str) -> subprocess.Popen:
    """A read-only git command in repo, with pipes to its standard input and output."""
    return subprocess.Popen(git_command(repo, *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=git_environment())
