"""A headless Chromium driven through the DevTools protocol: load the viewer's page, wait for it, read its DOM,
click its buttons with real mouse events, and screenshot it. For the browser tests and for screenshots and
page-rate measurements (`worldscape play --browser`); no Node, no Selenium, no browser download: Debian's
`chromium-headless-shell` (or `chromium`), which `make setup` installs.

WebGL runs in software (SwiftShader); the background-networking flags keep Chromium from calling out of a
machine with no network.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from worldscape_ros.viewer import ViewerError

log = logging.getLogger(__name__)

CANDIDATES = ('chromium-headless-shell', 'chromium', 'chromium-browser', 'google-chrome')
FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
         '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
         '--disable-quic', '--disable-default-apps', '--mute-audio', '--hide-scrollbars')


def find_chromium() -> str | None:
    """$WORLDSCAPE_CHROMIUM, else the first Chromium on PATH (None when there is none)."""
    given = os.environ.get('WORLDSCAPE_CHROMIUM')
    if given:
        return given if shutil.which(given) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class HeadlessBrowser:
    """One Chromium with one page. Use as a context manager."""

    def __init__(self, width: int = 1280, height: int = 800, executable: str | None = None,
                 timeout: float = 30.0) -> None:
        exe = executable or find_chromium()
        if exe is None:
            raise ViewerError(f'no headless Chromium found (looked for {", ".join(CANDIDATES)}; set '
                              'WORLDSCAPE_CHROMIUM or run make setup, which installs chromium-headless-shell)')
        self.executable = exe
        self.width, self.height = width, height
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix='worldscape-chromium-')
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: Any = None
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> HeadlessBrowser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- process and protocol --------------------------------------------------------------------------------
    def start(self) -> None:
        from websockets.sync.client import connect

        args = [self.executable, *FLAGS, f'--user-data-dir={self._profile}',
                f'--window-size={self.width},{self.height}', '--remote-debugging-port=0', 'about:blank']
        # its own process group: Debian's /usr/bin/chromium* are shell scripts that run the real browser as a
        # child, so ending the script alone would leave the browser (and its software GL) running
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
        atexit.register(self.close)
        port_file = Path(self._profile) / 'DevToolsActivePort'
        deadline = time.monotonic() + self.timeout
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if self._proc.poll() is not None:
                raise ViewerError(f'{self.executable} exited with code {self._proc.returncode} at start')
            if time.monotonic() > deadline:
                self.close()
                raise ViewerError(f'{self.executable} did not open its DevTools port in {self.timeout:g} s')
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=self.timeout) as r:
            targets = json.load(r)
        page = next((t for t in targets if t.get('type') == 'page'), None)
        if page is None:
            raise ViewerError('Chromium opened no page target')
        self._ws = connect(page['webSocketDebuggerUrl'], max_size=None, open_timeout=self.timeout)
        self.send('Page.enable')
        self.send('Runtime.enable')
        self.send('Emulation.setDeviceMetricsOverride',
                  {'width': self.width, 'height': self.height, 'deviceScaleFactor': 1, 'mobile': False})

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One DevTools command; its result (events that arrive meanwhile are kept in `events`)."""
        if self._ws is None:
            raise ViewerError('the browser is not started')
        self._id += 1
        self._ws.send(json.dumps({'id': self._id, 'method': method, 'params': params or {}}))
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ViewerError(f'DevTools {method}: no answer in {self.timeout:g} s')
            msg = json.loads(self._ws.recv(timeout=remaining))
            if msg.get('id') == self._id:
                if 'error' in msg:
                    raise ViewerError(f'DevTools {method}: {msg["error"].get("message")}')
                return dict(msg.get('result', {}))
            self.events.append(msg)
            del self.events[:-200]

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except OSError:
                pass
            self._ws = None
        if self._proc is not None:
            self._kill_group(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._kill_group(signal.SIGKILL)
                self._proc.wait(10)
            self._proc = None
            atexit.unregister(self.close)
        shutil.rmtree(self._profile, ignore_errors=True)

    def _kill_group(self, sig: int) -> None:
        assert self._proc is not None
        try:
            os.killpg(self._proc.pid, sig)  # the session's group id is the leader's pid
        except ProcessLookupError:
            pass

    # ---- page ------------------------------------------------------------------------------------------------
    def navigate(self, url: str) -> None:
        self.send('Page.navigate', {'url': url})

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value in the page (promises awaited)."""
        result = self.send('Runtime.evaluate', {'expression': expression, 'returnByValue': True,
                                                'awaitPromise': True})
        if 'exceptionDetails' in result:
            raise ViewerError(f'page script failed: {result["exceptionDetails"].get("text")}: {expression[:80]}')
        return result.get('result', {}).get('value')

    def wait_for(self, expression: str, timeout: float = 30.0, what: str | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise ViewerError(f'timed out after {timeout:g} s waiting for {what or expression}')
            time.sleep(0.1)

    def text(self) -> str:
        return str(self.evaluate('document.body ? document.body.innerText : ""'))

    def screenshot(self) -> np.ndarray:
        """The page as (H, W, 3) uint8 RGB."""
        import base64

        import cv2

        data = base64.b64decode(self.send('Page.captureScreenshot', {'format': 'png'})['data'])
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ViewerError('the screenshot could not be decoded')
        return np.ascontiguousarray(bgr[..., ::-1])

    def click(self, x: float, y: float) -> None:
        """A left click at page coordinates, through the input pipeline (as a user's mouse)."""
        for kind in ('mouseMoved', 'mousePressed', 'mouseReleased'):
            self.send('Input.dispatchMouseEvent', {'type': kind, 'x': x, 'y': y, 'button': 'left',
                                                   'buttons': 1 if kind == 'mousePressed' else 0, 'clickCount': 1})

    def button_rect(self, label: str) -> dict[str, float] | None:
        """The bounding box of the visible button whose text is `label` (None if there is none)."""
        value = self.evaluate(self._rect_js(label))
        return dict(value) if value else None

    def click_button(self, label: str, timeout: float = 10.0) -> None:
        """Click the button labelled `label` once the page's layout has settled (images that load late push
        the panel down) and the button is the element under its own centre."""
        deadline = time.monotonic() + timeout
        previous = None
        while True:
            rect = self.button_rect(label)
            if rect is not None and rect == previous:
                x, y = rect['x'] + rect['width'] / 2, rect['y'] + rect['height'] / 2
                if self.evaluate(f'(() => {{ const e = document.elementFromPoint({x}, {y});'
                                 f' return !!e && !!e.closest("button") && e.closest("button").innerText.trim()'
                                 f' === {json.dumps(label)}; }})()'):
                    self.click(x, y)
                    return
            if time.monotonic() > deadline:
                raise ViewerError(f'no clickable button {label!r} in the page after {timeout:g} s')
            previous = rect
            time.sleep(0.1)

    def _rect_js(self, label: str) -> str:
        return (f'(() => {{ const b = [...document.querySelectorAll("button")].find('
                f'e => e.innerText.trim() === {json.dumps(label)} && e.offsetParent !== null);'
                ' if (!b) return null; b.scrollIntoView({block: "center"}); const r = b.getBoundingClientRect();'
                ' return {x: r.x, y: r.y, width: r.width, height: r.height}; })()')

    def image_rect(self, label: str) -> dict[str, float] | None:
        """Box and natural size of the GUI image under the label `label` (None until it has loaded)."""
        return self.evaluate(
            '(() => { const l = [...document.querySelectorAll("*")].find('
            f'e => e.childElementCount === 0 && e.textContent.trim() === {json.dumps(label)});'
            ' if (!l) return null; let n = l; let img = null;'
            ' while (n && !img) { img = n.querySelector("img"); n = n.parentElement; }'
            ' if (!img || !img.complete || img.naturalWidth <= 8) return null;'
            ' img.scrollIntoView({block: "center"}); const r = img.getBoundingClientRect();'
            ' return {x: r.x, y: r.y, width: r.width, height: r.height, natural_width: img.naturalWidth,'
            ' natural_height: img.naturalHeight, src: img.src}; })()')

    def dismiss_notifications(self) -> int:
        """Close the page's notifications (viser warns that WebGL runs in software); how many were closed."""
        return int(self.evaluate(
            '(() => { const bs = [...document.querySelectorAll(".mantine-Notification-root button,'
            ' .mantine-Notification-closeButton")]; bs.forEach(b => b.click()); return bs.length; })()') or 0)
