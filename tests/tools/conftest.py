"""One randomly initialised ws-tiny engine per test session (the real model, not a mock; loading costs ~1 s)."""

import pytest


@pytest.fixture(scope='session')
def engine():
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.options import EngineOptions

    return WorldEngine.from_pretrained('random', 'ws-tiny', EngineOptions(seed=0))
