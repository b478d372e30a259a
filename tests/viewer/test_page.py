"""The viewer's page in a real browser (headless Chromium through the DevTools protocol): it connects, shows the
imagined frame (the pixels in the screenshot are the frame's), its buttons drive the engine, and values out of
range from the page are clamped with a message in the page."""

import time

import cv2
import msgspec
import numpy as np
import pytest
import viser

from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.synthetic.starts import start_from_scene
from worldscape_ros.tools.rollout import Start
from worldscape_ros.viewer.play import PlaySession
from worldscape_ros.viewer.viewer import RGB_LABEL, WorldViewer

START = Start(kind='room', seed=3)


@pytest.fixture
def viewer():
    v = WorldViewer(port=0, cloud_period=0.0)
    yield v
    v.close()


def wait_until(predicate, timeout=30.0, what='condition'):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.05)


def crop(shot, rect, width, height):
    x0, y0 = int(round(rect['x'])), int(round(rect['y']))
    x1, y1 = int(round(rect['x'] + rect['width'])), int(round(rect['y'] + rect['height']))
    region = shot[y0:y1, x0:x1]
    if region.shape[:2] != (height, width):
        region = cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)
    return region.astype(np.float32)


def test_the_page_connects_and_shows_the_imagined_frame_pixel_for_pixel(engine, viewer, browser, tmp_path):
    session = PlaySession(engine, START, viewer)
    session.begin()
    start_rgb = start_from_scene(engine, 3).rgb  # frame 0: the renderer's view, not imagined
    session.begin()
    session.set_command(NavAction(yaw_rate=1.0))  # turned away: frame 2 shows another view than the start
    session.run(frames=2)
    shown = viewer._latest
    assert shown is not None and shown.index == 2
    browser.navigate(viewer.url)
    browser.wait_for('document.body && document.body.innerText.includes("frame 2")', 30.0, 'the status of frame 2')
    assert viewer.clients() == 1
    rect = browser.wait_for(f'({_image_rect_js()})', 30.0, 'the imagined image to load')
    assert (rect['natural_width'], rect['natural_height']) == (engine.config.width, engine.config.height)
    browser.dismiss_notifications()
    time.sleep(1.0)  # the 3D view draws in software (SwiftShader)
    shot = browser.screenshot()
    cv2.imwrite(str(tmp_path / 'page.png'), shot[..., ::-1])
    rect = browser.image_rect(RGB_LABEL)  # after the screenshot's layout
    region = crop(shot, rect, engine.config.width, engine.config.height)
    err_imagined = float(np.abs(region - shown.rgb.astype(np.float32)).mean())
    err_start = float(np.abs(region - start_rgb.astype(np.float32)).mean())
    assert err_imagined < 3.0, f'the page image differs from the imagined frame by {err_imagined:.1f} levels'
    assert err_start > 5 * max(err_imagined, 1.0)  # it is frame 2, not the start view
    assert len(viewer.cloud) > 1000
    # the 3D view (left of the panel) draws the scene cloud and frustums, not only the background and grid;
    # software rendering on a loaded machine may take several seconds to draw the cloud
    deadline = time.monotonic() + 30.0
    while True:
        scene = shot[:, : int(rect['x']) - 40].astype(np.int16)
        coloured = (scene.max(axis=2) - scene.min(axis=2)) > 30
        if coloured.mean() > 0.02 or time.monotonic() > deadline:
            break
        time.sleep(1.0)
        shot = browser.screenshot()
    assert coloured.mean() > 0.02


def _image_rect_js():
    # the browser's own helper, as a bare expression for wait_for
    from worldscape_ros.viewer.browser import HeadlessBrowser

    captured = {}

    class Probe(HeadlessBrowser):
        def __init__(self):
            pass

        def evaluate(self, expression):
            captured['js'] = expression

    Probe().image_rect(RGB_LABEL)
    return captured['js']


def test_a_click_on_forward_then_step_in_the_page_moves_the_engine_camera(engine, viewer, browser):
    session = PlaySession(engine, START, viewer, paused=True)
    session.begin()
    before = session.pose
    session.start_thread()
    try:
        browser.navigate(viewer.url)
        browser.wait_for('document.body && document.body.innerText.includes("frame 0")', 30.0, 'the page')
        browser.click_button('Forward')
        wait_until(lambda: session.commands_received == 1, what='the Forward command to reach the session')
        browser.click_button('Step')
        wait_until(lambda: session.stats.frames == 1, what='the stepped frame')
        browser.wait_for('document.body.innerText.includes("frame 1")', 30.0, 'the page to show frame 1')
    finally:
        session.stop()
    moved = float((session.pose[:3, 3] - before[:3, 3]) @ before[:3, 2])
    assert moved == pytest.approx(viewer.drive.linear / engine.config.fps, abs=1e-6)
    assert 'stepping 1 frame' in browser.text()


def send_gui_update(viewer, handle, value):
    """The message the page's slider sends, from a second socket client (the page is a client: not trusted)."""
    from websockets.sync.client import connect

    # a page registers as a client with its first camera message; then its GUI updates are handled
    camera = {'type': 'ViewerCameraMessage', 'wxyz': (1.0, 0.0, 0.0, 0.0), 'position': (0.0, 0.0, 3.0), 'fov': 1.0,
              'near': 0.01, 'far': 100.0, 'image_height': 600, 'image_width': 800, 'look_at': (0.0, 0.0, 0.0),
              'up_direction': (0.0, 0.0, 1.0)}
    update = {'type': 'GuiUpdateMessage', 'uuid': handle._impl.uuid, 'updates': {'value': value}}
    with connect(f'ws://127.0.0.1:{viewer.port}', subprotocols=[f'viser-v{viser.__version__}']) as ws:
        ws.send(msgspec.msgpack.encode(camera))
        ws.send(msgspec.msgpack.encode(update))
        time.sleep(0.5)


def test_a_speed_out_of_range_from_the_page_is_clamped_and_said_in_the_page(engine, viewer, browser):
    session = PlaySession(engine, START, viewer, paused=True)
    session.begin()
    browser.navigate(viewer.url)
    browser.wait_for('document.body && document.body.innerText.includes("frame 0")', 30.0, 'the page')
    send_gui_update(viewer, viewer._linear, 7.5)
    wait_until(lambda: viewer.drive.linear == viewer.limits.max_linear, what='the clamped speed')
    browser.wait_for('document.body.innerText.includes("clamped to 1")', 10.0, 'the clamping message in the page')
    send_gui_update(viewer, viewer._linear, float('nan'))
    browser.wait_for('document.body.innerText.includes("not a finite number")', 10.0, 'the refusal in the page')
    assert viewer.drive.linear == viewer.limits.max_linear
