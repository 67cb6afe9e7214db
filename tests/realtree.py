"""Real kernel trees for tests marked ``realtree``: obtained only through the project script
``.ci/fetch-kernel`` (which installs Debian's linux-source-VERSION and extracts it once into
$ARMALIAS_KERNELS, default ~/.cache/armalias/kernels).  A test that cannot get its tree is skipped
with the script's reason."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FETCH = REPO / ".ci" / "fetch-kernel"


@lru_cache(maxsize=None)
def _fetch(version: str) -> tuple[Path | None, str]:
    if not FETCH.is_file():
        return None, f"{FETCH} is missing"
    try:
        res = subprocess.run([str(FETCH), version], capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f".ci/fetch-kernel {version} failed to run: {exc}"
    for line in res.stdout.splitlines():
        head, _, rest = line.partition(" ")
        if head != version:
            continue
        if rest.startswith("unavailable"):
            return None, rest.removeprefix("unavailable").lstrip(": ") or "no reason given"
        path = Path(rest.strip())
        if (path / "arch" / "arm").is_dir():
            return path, ""
        return None, f"{path} has no arch/arm"
    err = (res.stderr or "").strip().splitlines()
    return None, f".ci/fetch-kernel {version} printed no line for it (exit {res.returncode}" + (
        f": {err[-1]})" if err else ")")


def kernel_tree(version: str) -> Path:
    """The extracted linux-source-VERSION tree, or pytest.skip with the reason it is unavailable."""
    path, why = _fetch(version)
    if path is None:
        pytest.skip(f"linux-source-{version} unavailable: {why}")
    return path
