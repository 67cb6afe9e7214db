from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own extraction cache: tests never share or touch the user's cache."""
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def demo_tree() -> Path:
    return FIXTURES / "tree"
