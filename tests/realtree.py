"""Real kernel trees for tests: fetched through the project's .ci/fetch-kernel, skipped when unavailable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def kernel_tree(version: str) -> Path:
    out = subprocess.run([str(REPO / ".ci" / "fetch-kernel"), version], capture_output=True, text=True,
                         timeout=1800).stdout.strip()
    if not out.startswith(f"{version} /"):
        pytest.skip(f"linux-source-{version} unavailable: {out or 'fetch-kernel printed nothing'}")
    return Path(out.split(" ", 1)[1])
