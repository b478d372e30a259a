"""One randomly initialised ws-tiny engine per test session (the real model, not a mock; loading costs ~1 s)."""

import pytest


@pytest.fixture(scope='session')
def engine():
    from worldscape_ros.model.engine import WorldEngine

    return WorldEngine.from_pretrained(checkpoint='random', config='ws-tiny', seed=0)
