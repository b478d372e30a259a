"""One randomly initialised ws-tiny engine per test session (the real model, untrained; one denoising step: the
behaviour under test is the viewer's), and a headless Chromium (make setup installs it)."""

import pytest


@pytest.fixture(scope='session')
def engine():
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.model.options import EngineOptions

    return WorldEngine.from_pretrained('random', 'ws-tiny', EngineOptions(seed=0, steps=1))


@pytest.fixture
def browser():
    from worldscape_ros.viewer.browser import HeadlessBrowser, find_chromium

    assert find_chromium() is not None, 'no headless Chromium: make setup installs chromium-headless-shell'
    with HeadlessBrowser(width=1024, height=700) as b:
        yield b
