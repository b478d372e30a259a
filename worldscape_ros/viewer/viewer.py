"""The web page: a viser server on localhost showing what a frame source produces, with teleop buttons that call
a Controller.

Why viser (1.1.1): its web client ships prebuilt inside the wheel (no network, no npm), it draws point clouds,
camera frustums with their image, line segments and GUI images, and its GUI has buttons, sliders and number
inputs whose callbacks run in Python: the teleop is a few callbacks. rerun-sdk 0.41 draws the same scene but is
a recording viewer (its GUI holds no buttons that call back into the producer) and costs ~790 MB against ~180 MB.

What reaches the page, and how often (the page must not slow the model):
  - every frame, at most `image_rate` a second: the imagined RGB, coloured depth, the pose video, the status
    line, the current camera's frustum (with the frame on it) and the hand keypoints;
  - each keyframe of the trajectory (moved or turned enough): a frustum, and the path line;
  - every `cloud_period` seconds: the voxel cloud of everything seen, and the model memory's frustums.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from worldscape_ros.model.hands import HAND_BONES
from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.tools.video import colorize_depth
from worldscape_ros.viewer import ViewerError
from worldscape_ros.viewer import geometry as geo
from worldscape_ros.viewer.teleop import MAX_STEP_FRAMES, Controller, Drive, Limits, checked_frames

if TYPE_CHECKING:
    from worldscape_ros.model.scene_memory import SceneMemory

log = logging.getLogger(__name__)

RGB_LABEL = 'imagined RGB'
DEPTH_LABEL = 'depth (near warm, far cool)'
POSE_VIDEO_LABEL = 'hand pose video'
CURRENT_COLOR = (255, 120, 0)
TRAIL_COLOR = (90, 90, 90)
MEMORY_COLOR = (30, 90, 255)
HAND_COLOR = (230, 30, 160)
DRIVE_GROUPS = {'move': ('Forward', 'Stop', 'Back'), 'turn': ('Turn left', 'Turn right'),
                'strafe': ('Strafe left', 'Strafe right')}


@dataclass
class MemoryView:
    """What the model's memory holds, where the source can see it (the engine; not over ROS)."""

    poses: list[np.ndarray]  # camera-to-world of each held chunk (sink first)
    sink: int
    pool: int
    window: int
    nbytes: int
    scene: SceneMemory | None = None  # the engine's persistent scene memory, read when drawn


@dataclass
class FrameView:
    """One frame as the viewer draws it: any source (engine, ROS topics, a rollout) fills this."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres
    pose: np.ndarray  # (4, 4) camera-to-world, OpenCV axes, odom frame
    K: np.ndarray  # (3, 3)
    index: int
    sim_time: float  # seconds
    pose_video: np.ndarray | None = None  # (H, W, 3) uint8
    hand_keypoints: np.ndarray | None = None  # (21, 3) camera optical frame, metres
    memory: MemoryView | None = None


@dataclass
class ViewerStats:
    """Rates the status line shows: frames shown per second (the source's rate as the viewer sees it) and
    page updates per second (image pushes to the page), each over the last few seconds."""

    frames: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    pushes: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    frames_total: int = 0
    pushes_total: int = 0

    @staticmethod
    def rate(times: deque[float]) -> float:
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_bind(host: str, port: int) -> None:
    """Refuse a port out of range or already taken, naming it (viser would otherwise move to another port)."""
    if not 0 <= port <= 65535:
        raise ViewerError(f'port must be in [0, 65535] (0: a free one), got {port}')
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ViewerError(f'cannot serve the viewer on {host}:{port}: {exc.strerror}') from None


class WorldViewer:
    """A viser page: `show(FrameView)` from the source's thread; the page's buttons call `controller`."""

    def __init__(self, host: str = '127.0.0.1', port: int = 8080, controller: Controller | None = None,
                 limits: Limits | None = None, title: str = 'WorldScape', image_rate: float = 30.0,
                 cloud_period: float = 1.0, max_depth: float = 10.0, voxel: float = 0.05,
                 max_points: int = 200_000, frustum_scale: float | None = None) -> None:
        import viser

        if not image_rate > 0:
            raise ViewerError(f'image_rate must be positive, got {image_rate}')
        if not cloud_period >= 0:
            raise ViewerError(f'cloud_period must be >= 0 s, got {cloud_period}')
        check_bind(host, port)
        self.host = host
        self.port = port or free_port(host)
        self.controller = controller
        self.limits = limits or Limits()
        self.drive = Drive(self.limits)
        self.image_period = 1.0 / image_rate
        self.cloud_period = cloud_period
        self.max_depth = max_depth
        self._given_scale = frustum_scale  # None: sized by the first frame's depth
        self.frustum_scale = frustum_scale or 0.25
        self._framed = False
        self.cloud = geo.VoxelCloud(voxel, max_points)
        self.trail = geo.KeyframeTrail()
        self.stats = ViewerStats()
        self.message = ''
        self.state = 'running'
        self._writing_back = False
        self._lock = threading.Lock()
        self._last_push = 0.0
        self._last_cloud = 0.0
        self._path: list[np.ndarray] = []
        self._latest: FrameView | None = None
        self._memory_nodes: list[Any] = []
        self._trail_nodes: deque[Any] = deque()

        self.server = viser.ViserServer(host=host, port=self.port, label=title, verbose=False)
        self.server.scene.set_up_direction('+z')  # REP-103 odom: z up
        self.server.scene.add_grid('/grid', width=20.0, height=20.0, cell_size=1.0, plane='xy')
        self._build_gui(title)
        self._current: Any = None
        self._cloud_node: Any = None
        self._path_node: Any = None
        self._hand_points: Any = None
        self._hand_bones: Any = None

    @property
    def url(self) -> str:
        return f'http://{self.host}:{self.port}/'

    def clients(self) -> int:
        return len(self.server.get_clients())

    def wait_for_client(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.clients():
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.server.stop()

    # ---- page layout -----------------------------------------------------------------------------------------
    def _build_gui(self, title: str) -> None:
        gui = self.server.gui
        blank = np.zeros((8, 8, 3), np.uint8)
        self._status = gui.add_markdown(f'**{title}**: waiting for the first frame')
        self._rgb = gui.add_image(blank, label=RGB_LABEL, format='png')
        self._depth = gui.add_image(blank, label=DEPTH_LABEL, format='png')
        self._pose_video = gui.add_image(blank, label=POSE_VIDEO_LABEL, format='png', visible=False)
        self._memory_md = gui.add_markdown('memory: -')
        with gui.add_folder('Drive'):
            for label, options in DRIVE_GROUPS.items():
                group = gui.add_button_group(label, options)
                group.on_click(lambda e: self._on_drive(str(e.target.value)))
            self._linear = gui.add_slider('linear speed (m/s)', 0.0, self.limits.max_linear, 0.05,
                                          self.drive.linear)
            self._angular = gui.add_slider('turn speed (rad/s)', 0.0, self.limits.max_angular, 0.05,
                                           self.drive.angular)
            self._linear.on_update(lambda _e: self._on_speed(self._linear, self.drive.set_linear))
            self._angular.on_update(lambda _e: self._on_speed(self._angular, self.drive.set_angular))
        with gui.add_folder('Session'):
            gui.add_button('Pause').on_click(lambda _e: self._on_pause())
            gui.add_button('Resume').on_click(lambda _e: self._on_resume())
            gui.add_button('Reset').on_click(lambda _e: self._on_reset())
            self._step_frames: Any = gui.add_number('frames to step', 1, min=1, max=MAX_STEP_FRAMES, step=1)
            gui.add_button('Step').on_click(lambda _e: self._on_step())
        self._message_md = gui.add_markdown('')

    # ---- page -> controller ----------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.message = text
        self._message_md.content = f'_{text}_' if text else ''
        if text:
            log.info('page: %s', text)

    def _call(self, what: str, fn: Any, *args: Any) -> str | None:
        if self.controller is None:
            self._say(f'{what}: this viewer drives nothing (no controller)')
            return None
        try:
            result = fn(*args)
        except ViewerError as exc:
            self._say(str(exc))
            return None
        return str(result) if result is not None else ''

    def _on_drive(self, name: str) -> None:
        action = self.drive.press(name)
        if self._call(name, lambda a: self.controller.set_command(a) if self.controller else None, action) is not None:
            self._say(f'{name}: {self._describe(action)}')

    def _on_speed(self, slider: Any, setter: Any) -> None:
        if self._writing_back:
            return  # our own correction of the slider echoing back (viser calls on_update for it too)
        try:
            msg = setter(slider.value)
        except ViewerError as exc:
            self._write_back(slider)
            self._say(str(exc))
            return
        if msg:
            self._write_back(slider)
        if self.drive.button != 'Stop' and self.controller is not None:
            self.controller.set_command(self.drive.action)  # the held command follows the new speed
        self._say(msg or f'{self._describe(self.drive.action)}')

    def _write_back(self, slider: Any) -> None:
        """Show the speed in force on the page's slider (after a clamp or a refusal)."""
        self._writing_back = True
        try:
            slider.value = self.drive.linear if slider is self._linear else self.drive.angular
        finally:
            self._writing_back = False

    def _on_pause(self) -> None:
        msg = self._call('Pause', lambda: self.controller.pause() if self.controller else None)
        if msg is not None:
            self.state = 'paused'
            self._say(msg)

    def _on_resume(self) -> None:
        msg = self._call('Resume', lambda: self.controller.resume() if self.controller else None)
        if msg is not None:
            self.state = 'running'
            self._say(msg)

    def _on_reset(self) -> None:
        msg = self._call('Reset', lambda: self.controller.reset() if self.controller else None)
        if msg is not None:
            with self._lock:
                self.clear()
            self._say(msg)

    def _on_step(self) -> None:
        try:
            frames = checked_frames(self._step_frames.value)
        except ViewerError as exc:
            self._step_frames.value = 1
            self._say(str(exc))
            return
        msg = self._call('Step', lambda: self.controller.step(frames) if self.controller else None)
        if msg is not None:
            self._say(msg)

    @staticmethod
    def _describe(a: NavAction) -> str:
        return f'driving vx {a.vx:+.2f} m/s, vy {a.vy:+.2f} m/s, yaw {a.yaw_rate:+.2f} rad/s'

    # ---- source -> page --------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget the trajectory and the cloud (a reset starts a new scene)."""
        self.cloud.clear()
        self.trail.clear()
        self._framed = False
        self._path.clear()
        while self._trail_nodes:
            self._trail_nodes.popleft().remove()
        for node in (self._cloud_node, self._path_node):
            if node is not None:
                node.visible = False
        self._last_cloud = 0.0

    def show(self, view: FrameView) -> None:
        """Draw a frame (called by the source for each frame it makes; cheap unless an update is due)."""
        now = time.monotonic()
        with self._lock:
            if not self._framed:
                self._frame_scene(view)
            self._latest = view
            self.stats.frames.append(now)
            self.stats.frames_total += 1
            self._path.append(view.pose[:3, 3].astype(np.float32))
            if len(self._path) > 10_000:
                self._path = self._path[::2]  # a long session keeps an even sampling of its path
            points, colors = geo.backproject(view.rgb, view.depth, view.pose, view.K, stride=2,
                                             max_depth=self.max_depth)
            self.cloud.add(points, colors)
            if self.trail.offer(view.pose, view.index):
                self._add_keyframe(view)
            if now - self._last_push >= self.image_period:
                self._last_push = now
                self._push_frame(view, now)
            if now - self._last_cloud >= self.cloud_period:
                self._last_cloud = now
                self._push_cloud(view)

    def _frame_scene(self, view: FrameView) -> None:
        """Size the frustums and place the page's camera (behind, above and beside the robot) by how deep the
        first frame's scene is: a room and a table top both fill the view."""
        valid = view.depth[np.isfinite(view.depth) & (view.depth > 0)]
        d = float(np.clip(np.median(valid), 0.3, self.max_depth)) if valid.size else 3.0
        if self._given_scale is None:
            self.frustum_scale = float(np.clip(0.08 * d, 0.03, 0.25))
        pos, fwd = view.pose[:3, 3], view.pose[:3, 2]
        left = np.cross(np.array([0.0, 0.0, 1.0]), fwd)
        self.server.initial_camera.look_at = pos + fwd * 0.6 * d
        self.server.initial_camera.position = pos - fwd * d + left * 0.5 * d + np.array([0.0, 0.0, 1.4 * d])
        self._framed = True

    def _push_frame(self, view: FrameView, now: float) -> None:
        scene = self.server.scene
        with self.server.atomic():
            self._rgb.image = view.rgb
            self._depth.image = colorize_depth(view.depth, self.max_depth)
            if view.pose_video is not None:
                self._pose_video.image = view.pose_video
                self._pose_video.visible = True
            wxyz, pos = geo.wxyz_position(view.pose)
            h, w = view.rgb.shape[:2]
            if self._current is None:
                self._current = scene.add_camera_frustum(
                    '/camera/current', fov=geo.vertical_fov(view.K, h), aspect=w / h, scale=self.frustum_scale * 2,
                    color=CURRENT_COLOR, image=view.rgb, format='png', wxyz=wxyz, position=pos,
                    thickness=0.015)
            else:
                self._current.wxyz, self._current.position = wxyz, pos
                self._current.image = view.rgb
            self._push_hand(view)
            self.stats.pushes.append(now)
            self.stats.pushes_total += 1
            s = self.stats
            self._status.content = (
                f'**frame {view.index}** · sim {view.sim_time:.1f} s · {s.rate(s.frames):.1f} frames/s · '
                f'page {s.rate(s.pushes):.1f} updates/s · {self.state}')

    def _push_hand(self, view: FrameView) -> None:
        scene = self.server.scene
        if view.hand_keypoints is None:
            for node in (self._hand_points, self._hand_bones):
                if node is not None:
                    node.visible = False
            return
        pts, segs = geo.hand_in_world(view.hand_keypoints, view.pose, HAND_BONES)
        self._hand_points = scene.add_point_cloud('/hand/keypoints', pts, HAND_COLOR, point_size=0.02,
                                                  point_shape='circle')
        if len(segs):
            self._hand_bones = scene.add_line_segments('/hand/bones', segs, HAND_COLOR, thickness=0.006)

    def _add_keyframe(self, view: FrameView) -> None:
        wxyz, pos = geo.wxyz_position(view.pose)
        h, w = view.rgb.shape[:2]
        node = self.server.scene.add_camera_frustum(
            f'/trajectory/k{view.index}', fov=geo.vertical_fov(view.K, h), aspect=w / h, scale=self.frustum_scale,
            color=TRAIL_COLOR, wxyz=wxyz, position=pos, thickness=0.012)
        self._trail_nodes.append(node)
        while len(self._trail_nodes) > self.trail.max_keyframes:
            self._trail_nodes.popleft().remove()
        if len(self._path) >= 2:
            self._path_node = self.server.scene.add_line_segments(
                '/trajectory/path', geo.path_segments(np.stack(self._path)), CURRENT_COLOR, thickness=0.02)

    def _push_cloud(self, view: FrameView) -> None:
        self.cloud.merge()
        scene = self.server.scene
        mem = view.memory
        store = mem.scene if mem is not None else None
        with self.server.atomic():
            if store is not None and len(store):
                # the world model's own 3D memory: every point it has seen or imagined, coloured
                xyz, rgb = store.xyz, store.rgb  # one snapshot (a commit replaces both tensors)
                n = min(len(xyz), len(rgb))
                step = max(1, n // self.cloud.max_points)
                pts = xyz[:n:step].cpu().numpy().astype(np.float32)
                self._cloud_node = scene.add_point_cloud('/scene/cloud', pts, rgb[:n:step].cpu().numpy(),
                                                         point_size=0.02, point_shape='square', point_shading='flat')
            elif len(self.cloud):
                self._cloud_node = scene.add_point_cloud('/scene/cloud', self.cloud.points, self.cloud.colors,
                                                         point_size=self.cloud.voxel * 0.8, point_shape='square',
                                                         point_shading='flat')
            if store is not None:
                text = (f'scene memory: {len(store):,} points (seen and imagined), '
                        f'{store.nbytes / 2**20:.1f} MiB')
            else:
                text = f'scene cloud: {len(self.cloud):,} points ({self.cloud.voxel * 100:g} cm voxels)'
            if mem is not None:
                for node in self._memory_nodes:
                    node.remove()
                h, w = view.rgb.shape[:2]
                self._memory_nodes = []
                for i, pose in enumerate(mem.poses):
                    wxyz, pos = geo.wxyz_position(pose)
                    self._memory_nodes.append(scene.add_camera_frustum(
                        f'/memory/m{i}', fov=geo.vertical_fov(view.K, h), aspect=w / h,
                        scale=self.frustum_scale * 1.2, color=MEMORY_COLOR, wxyz=wxyz, position=pos,
                        thickness=0.012))
                text += (f'  \nmodel memory: sink {mem.sink} + pool {mem.pool} + window {mem.window} chunks '
                         f'(blue frustums), {mem.nbytes / 2**20:.1f} MiB')
            self._memory_md.content = text
