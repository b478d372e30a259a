"""`worldscape play`: an engine driven from a web page (the page beside a running ROS 2 simulator, `worldscape
view`, is in ros/commands.py)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldscape_ros.model.engine_args import add_engine_arguments, engine_from_args

if TYPE_CHECKING:
    import numpy as np

    from worldscape_ros.model.engine import Frame
    from worldscape_ros.model.protocol import ViewedEngine
    from worldscape_ros.viewer.browser import HeadlessBrowser
    from worldscape_ros.viewer.play import PlaySession
    from worldscape_ros.viewer.viewer import WorldViewer

log = logging.getLogger(__name__)

# counts the page's updates of the imagined image in the browser itself (what reaches the screen)
PAGE_COUNTER_JS = '''(() => {
  const label = [...document.querySelectorAll("*")].find(
    e => e.childElementCount === 0 && e.textContent.trim() === LABEL);
  let n = label; let img = null;
  while (n && !img) { img = n.querySelector("img"); n = n.parentElement; }
  if (!img) return false;
  window.__wsPage = {count: 0, first: 0, last: 0};
  new MutationObserver(() => {
    const p = window.__wsPage; const t = performance.now();
    if (p.count === 0) p.first = t;
    p.count += 1; p.last = t;
  }).observe(img, {attributes: true, attributeFilter: ["src"]});
  return true;
})()'''


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--host', default='127.0.0.1', help='address to serve the page on (default: this machine only)')
    p.add_argument('--port', type=int, default=8080, help='port of the page (0: a free one; default 8080)')
    p.add_argument('--max-linear', type=float, default=1.0, help='top of the page\'s linear speed slider (m/s)')
    p.add_argument('--max-angular', type=float, default=1.5, help='top of the page\'s turn speed slider (rad/s)')


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        'play', help='drive the world model from a local web page: live RGB, depth, trajectory, scene cloud',
        description='Load the engine, start from a scene view or an image, and serve a page (http://HOST:PORT/) '
        'that shows the imagined RGB and depth, the trajectory as camera frustums, the scene as a coloured point '
        'cloud, the model memory\'s views and the hand keypoints, with buttons to drive, pause, step and reset. '
        'Runs until Ctrl-C, or --frames frames. --no-viewer runs the same loop unseen (the viewer\'s cost).')
    p.add_argument('--start', default='room:0', help="'room:SEED', 'yard:SEED', 'table:SEED' or an RGB image path")
    p.add_argument('--actions', default=None, metavar='FILE',
                   help='drive by this script first (formats: docs/recording.md); then the page\'s commands')
    p.add_argument('--frames', type=int, default=0, help='stop after this many frames (0: run until Ctrl-C)')
    p.add_argument('--no-viewer', action='store_true', help='no page: measure the loop alone')
    p.add_argument('--paused', action='store_true', help='start paused (Step or Resume in the page)')
    p.add_argument('--realtime', action='store_true', help='no faster than the model\'s frame rate')
    p.add_argument('--wait-client', type=float, default=0.0, metavar='S',
                   help='wait up to S seconds for a page to connect before generating')
    p.add_argument('--browser', action='store_true',
                   help='open the page in a headless Chromium (measures the page\'s update rate)')
    p.add_argument('--screenshot', default=None, metavar='PNG', help='with --browser: the page at the end')
    p.add_argument('--json', default=None, metavar='FILE', help='write the figures printed as JSON')
    add_server_arguments(p)
    add_engine_arguments(p)
    p.set_defaults(func=run_play)


def page_limits(args: argparse.Namespace) -> Any:
    from worldscape_ros.viewer.teleop import Limits

    return Limits(max_linear=args.max_linear, max_angular=args.max_angular)


def run_play(args: argparse.Namespace) -> int:
    from worldscape_ros.tools.rollout import parse_start
    from worldscape_ros.tools.scripts import load_script
    from worldscape_ros.viewer.play import PlaySession
    from worldscape_ros.viewer.viewer import WorldViewer

    start = parse_start(args.start)
    _check_play_arguments(args)
    limits = page_limits(args)
    engine = engine_from_args(args, start.seed)
    script = load_script(args.actions, float(engine.config.fps), scene_seed=start.seed) if args.actions else None
    viewer = None if args.no_viewer else WorldViewer(args.host, args.port, limits=limits)
    session = PlaySession(engine, start, viewer, script=script, paused=args.paused, realtime=args.realtime)
    browser = None
    figures: dict[str, Any] = {'start': str(start), 'viewer': viewer is not None,
                               'config': engine.config.name}
    try:
        session.begin()
        if viewer is not None:
            print(f'viewer: {viewer.url} (Ctrl-C stops)', flush=True)
            browser = _open_browser(viewer) if args.browser else None
            _wait_for_page(viewer, args.wait_client)
        _generate(session, args.frames)
        figures.update(_loop_figures(session, engine.config.name, viewer))
        if browser is not None:
            figures.update(_page_figures(browser, viewer, args.screenshot))
    finally:
        session.stop()
        if browser is not None:
            browser.close()
        if viewer is not None:
            viewer.close()
    if args.json:
        _write_figures(Path(args.json), figures)
    return 0


def _check_play_arguments(args: argparse.Namespace) -> None:
    from worldscape_ros.viewer import ViewerError

    if args.frames < 0:
        raise ValueError(f'--frames must be >= 0, got {args.frames}')
    if args.threads < 0:
        raise ValueError(f'--threads must be >= 0, got {args.threads}')
    if (args.browser or args.screenshot) and args.no_viewer:
        raise ViewerError('--browser and --screenshot need the viewer: drop --no-viewer')
    if args.screenshot and not args.browser:
        raise ViewerError('--screenshot takes the page from the headless browser: add --browser')


def _wait_for_page(viewer: WorldViewer, seconds: float) -> None:
    """Give a page up to `seconds` to connect before generating (0: do not wait)."""
    if seconds > 0 and not viewer.wait_for_client(seconds):
        log.warning('no page connected in %.0f s; generating anyway', seconds)


def _generate(session: PlaySession, frames: int) -> None:
    """Run the session's loop until it has made `frames` frames (0: no end), Ctrl-C or SIGTERM; an error in the
    loop is raised here."""
    session.start_thread(frames)
    try:
        with _terminate_as_interrupt():
            while session.alive:
                session.join(0.5)
    except KeyboardInterrupt:
        pass
    session.stop()
    if session.error is not None:
        raise session.error


def _loop_figures(session: PlaySession, config: str, viewer: WorldViewer | None) -> dict[str, Any]:
    """The generation loop's rate and CPU time a frame, and the viewer's share of it; printed and returned."""
    stats = session.stats
    cpu_ms = 1e3 * stats.cpu_seconds / max(stats.frames, 1)
    figures: dict[str, Any] = dict(frames=stats.frames, seconds=round(stats.seconds, 3),
                                   frames_per_second=round(stats.fps, 3), cpu_ms_per_frame=round(cpu_ms, 2))
    print(f'{stats.frames} frames in {stats.seconds:.1f} s of generation ({stats.fps:.2f} frames/s, '
          f'{cpu_ms:.0f} ms of CPU a frame) with {config}' + ('' if viewer is None else ', viewer on'))
    if viewer is not None:
        figures['viewer_pushes_per_second'] = round(viewer.stats.pushes_total / max(stats.seconds, 1e-9), 3)
        per_frame = 1e3 * stats.viewer_seconds / max(stats.frames, 1)
        figures['viewer_ms_per_frame'] = round(per_frame, 3)
        figures['viewer_share'] = round(stats.viewer_seconds / max(stats.seconds, 1e-9), 4)
        print(f'viewer: {per_frame:.1f} ms a frame in the generation loop '
              f'({100 * figures["viewer_share"]:.1f}% of its time)')
    return figures


def _page_figures(browser: HeadlessBrowser, viewer: WorldViewer | None, screenshot: str | None) -> dict[str, Any]:
    """The page's image update rate as the browser counted it (printed and returned); the screenshot, if asked."""
    figures: dict[str, Any] = {}
    page = browser.evaluate('window.__wsPage || null')
    if page and page['count'] > 1:
        rate = (page['count'] - 1) / ((page['last'] - page['first']) / 1e3)
        figures['page_updates_per_second'] = round(rate, 3)
        print(f'page: {page["count"]} image updates, {rate:.2f} a second (counted in the browser)')
    if screenshot:
        time.sleep(max(0.0, (viewer.cloud_period if viewer else 0.0)))
        _save_screenshot(browser, screenshot)
        print(f'screenshot: {screenshot}')
    return figures


def _write_figures(path: Path, figures: dict[str, Any]) -> None:
    """The printed figures as JSON (a NaN, a figure not measured, as null)."""
    from worldscape_ros.fileio import atomic_write_json

    atomic_write_json(path, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in figures.items()})


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the session as Ctrl-C does (the figures are still printed and written)."""
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _open_browser(viewer: Any) -> Any:
    from worldscape_ros.viewer.browser import HeadlessBrowser
    from worldscape_ros.viewer.viewer import RGB_LABEL

    browser = HeadlessBrowser()
    browser.start()
    browser.navigate(viewer.url)
    browser.wait_for(f'({PAGE_COUNTER_JS.replace("LABEL", json.dumps(RGB_LABEL))})', 30.0,
                     'the page to show the imagined image')
    return browser


def _save_screenshot(browser: Any, path: str) -> None:
    from worldscape_ros.tools.video import write_png

    browser.dismiss_notifications()
    time.sleep(0.5)
    write_png(Path(path), browser.screenshot())


# ---- `worldscape rollout --view` -------------------------------------------------------------------------------
class RolloutView:
    """The page beside an offline rollout (no teleop: the script drives): offline_rollout calls it with each
    frame (and its hand keypoints); hold() keeps the page up after the rollout until Ctrl-C."""

    def __init__(self, engine: ViewedEngine, host: str = '127.0.0.1', port: int = 8080) -> None:
        from worldscape_ros.viewer.viewer import WorldViewer

        self.engine = engine
        self.viewer = WorldViewer(host, port, title='WorldScape rollout')
        print(f'viewer: {self.viewer.url}', flush=True)

    def __call__(self, frame: Frame, keypoints: np.ndarray | None = None) -> None:
        from worldscape_ros.viewer.play import frame_view

        self.viewer.show(frame_view(self.engine, frame, keypoints))

    def hold(self) -> None:
        print(f'viewer: the rollout stays on {self.viewer.url} until Ctrl-C', flush=True)
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.viewer.close()
