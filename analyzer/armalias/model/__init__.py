"""The bundled cache model: replay a finding's scenario on each cache implementation.

    from armalias.model import Scenario, Map, Write, Unmap, Maintain, Fetch, replay_all, summarize
    verdicts = replay_all(scenario, impls)          # {implementation name: Verdict}
    finding_model = summarize(verdicts).to_dict()   # CONTRACT.md findings[].model
"""

from armalias.model.cache import CacheGeometry, ModelConfig, ScenarioError
from armalias.model.explore import DEFAULT_BOUND, Verdict
from armalias.model.scenario import (
    KERNEL_CALLS,
    ExternalRead,
    Fetch,
    Maintain,
    Map,
    ModelSummary,
    Op,
    Read,
    Scenario,
    Unmap,
    Write,
    default_config,
    impl_from_dict,
    load_fixture,
    overall,
    replay,
    replay_all,
    scenario_from_dict,
    summarize,
)

__all__ = [
    "DEFAULT_BOUND", "KERNEL_CALLS", "CacheGeometry", "ExternalRead", "Fetch", "Maintain", "Map",
    "ModelConfig", "ModelSummary", "Op", "Read", "Scenario", "ScenarioError", "Unmap", "Verdict", "Write",
    "default_config", "impl_from_dict", "load_fixture", "overall", "replay", "replay_all",
    "scenario_from_dict", "summarize",
]
