"""The WorldScape simulator node: actions in, imagined camera and depth out, in place of Gazebo.

A lifecycle node: configure validates the parameters, loads the world model and sets up the start view;
activate starts one inference thread apart from the executor (callbacks stay responsive, the latest command
wins); deactivate stops it; cleanup frees the model. Each generated frame advances sim time by 1/fps; /clock
and every stamp are sim time. Topics, frames and services: docs/ros_interface.md.

The inference thread is supervised: a step that raises is logged with its cause, its inputs are dropped and the
session stands still for that frame (or, when even that fails, restarts from its start); the counts are on
/diagnostics. Only when a reset to the start fails too does the node leave the active state, through
ErrorProcessing, saying why. Every input is checked where it enters (a working range for poses, ranges for
hands, depth and intrinsics); ~/step waits in its own callback group, so the other services and the lifecycle
transitions are answered while steps run.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from worldscape_msgs.msg import HandKeypoints
from worldscape_msgs.srv import ResetFromImage, StepFrames

from worldscape_ros.data.camera_adapt import fit_start, start_warnings
from worldscape_ros.errors import CheckpointError, ConfigError
from worldscape_ros.model.kinematics import (
    R_LINK_OPTICAL,
    BaseState,
    NavAction,
    base_pose,
    base_to_camera_link,
    camera_pose,
    integrate,
    state_from_camera_pose,
    wrap_angle,
)
from worldscape_ros.ros import conversions as conv
from worldscape_ros.ros.params import SimulatorParams, declare_parameters, read_parameters
from worldscape_ros.ros.qos import CLOCK_QOS, DIAGNOSTICS_QOS, StaticTfBroadcaster, TfBroadcaster, sensor_qos

NODE_NAME = 'simulator'
WARN_PERIOD_S = 2.0  # throttle for repeated warnings about bad input
PAUSE_WAIT_S = 10.0  # ~/pause waits at most this long for the frame in flight
MAX_CONSECUTIVE_FAILURES = 3  # frames in a row that fail outside the engine step before the node gives up
FAILURE_WARN_S = 10.0  # /diagnostics says WARN this long after a recovered failure


class GenerationFailed(Exception):
    """The inference thread cannot go on: a step failed and so did every recovery."""


# ---- commands ------------------------------------------------------------------------------------------------
class CommandInbox:
    """Latest-wins holder of the inputs, written by subscription callbacks and read by the inference thread.

    Times are sim time (ns), as Gazebo's diff drive times out cmd_vel against the sim clock.
    """

    def __init__(self, cmd_timeout_ns: int, hands_timeout_ns: int) -> None:
        self._lock = threading.Lock()
        self._cmd_timeout_ns = cmd_timeout_ns
        self._hands_timeout_ns = hands_timeout_ns
        self._twist: NavAction | None = None
        self._twist_ns = 0
        self._pose: np.ndarray | None = None
        self._pose_ns = 0
        self._hands: np.ndarray | None = None
        self._hands_ns = 0

    def set_twist(self, action: NavAction, now_ns: int) -> None:
        with self._lock:
            self._twist, self._twist_ns = action, now_ns
            self._pose = None  # the newest input decides how the camera moves

    def set_pose(self, c2w: np.ndarray, now_ns: int) -> None:
        with self._lock:
            self._pose, self._pose_ns = c2w, now_ns
            self._twist = None

    def set_hands(self, points: np.ndarray, now_ns: int) -> None:
        with self._lock:
            self._hands, self._hands_ns = points, now_ns

    def clear(self) -> None:
        with self._lock:
            self._twist = self._pose = self._hands = None

    def take(self, now_ns: int) -> tuple[NavAction | np.ndarray, np.ndarray | None]:
        """The motion for the next frame (a pose target is used once) and the current hand keypoints."""
        with self._lock:
            fresh = self._hands is not None and now_ns - self._hands_ns < self._hands_timeout_ns
            hands = self._hands if fresh else None
            if self._pose is not None:
                pose, self._pose = self._pose, None
                return pose, hands
            if self._twist is not None and now_ns - self._twist_ns < self._cmd_timeout_ns:  # holds `timeout` s
                return self._twist, hands
            return NavAction(), hands


@dataclass
class StepWaiter:
    """A ~/step request for `n` frames, which begin once the node has generated `first` frames."""

    first: int
    n: int
    done: threading.Event
    future: Any  # rclpy Future the async service callback awaits, or None without an executor
    cancelled: str = ''  # why the request ended early
    finished_at: int = -1  # the node's frame count when the request ended

    @property
    def target(self) -> int:
        return self.first + self.n

    @property
    def generated(self) -> int:
        return max(0, min(self.finished_at - self.first, self.n))


class Throttle:
    """Allows one message per `period` seconds of wall time per key."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -math.inf) < self._period:
                return False
            self._last[key] = now
            return True


def clamp_action(action: NavAction, max_linear: float, max_angular: float) -> tuple[NavAction, bool]:
    """Clip each axis to its limit (finite in, finite out: np.clip never overflows, even at 1e308)."""
    clamped = action.clamped(max_linear, max_angular)
    return clamped, clamped != action


def check_working_range(c2w: np.ndarray, max_position: float, name: str) -> None:
    """Refuse a camera pose farther than `max_position` metres from the odom origin on any axis: the model's
    rays, geometry and memory are only meaningful where a robot can be (finite is not enough: 1e30 m turns the
    ray embedding into NaN)."""
    position = np.asarray(c2w, dtype=np.float64)[:3, 3]
    if np.abs(position).max() > max_position:
        raise ValueError(f'{name}.position {conv._fmt(position)} is outside the working range '
                         f'(|x|, |y|, |z| <= max_position={max_position:g} m)')


def scale_action(action: NavAction, factor: float) -> NavAction:
    return NavAction.from_array(action.to_array() * factor)


def resolve_device(device: str) -> str:
    """auto -> cuda when available, else cpu; cuda when absent -> ConfigError (configure fails)."""
    import torch

    has_cuda = torch.cuda.is_available()
    if device == 'auto':
        return 'cuda' if has_cuda else 'cpu'
    if device == 'cuda' and not has_cuda:
        raise ConfigError("device='cuda' but CUDA is not available on this machine; set device to 'auto' or 'cpu'")
    return device


def load_start_image(path: str, height: int, width: int) -> np.ndarray:
    """An RGB start image of any size (fitted to the model's height x width by data.camera_adapt), from PNG/JPEG
    or .npy (uint8 HxWx3)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f'start_image {path!r} does not exist')
    try:
        if p.suffix == '.npy':
            img = np.load(p, allow_pickle=False)
        else:
            import imageio.v3 as iio

            img = np.asarray(iio.imread(p))
    except (OSError, ValueError) as exc:
        raise ConfigError(f'start_image {path!r} could not be read: {exc}') from None
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ConfigError(f'start_image {path!r} must be 8-bit RGB, got dtype {img.dtype} shape {img.shape}')
    return np.ascontiguousarray(img[..., :3])


def load_start_depth(path: str, height: int, width: int) -> np.ndarray:
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f'start_depth {path!r} could not be read: {exc}') from None
    if depth.shape != (height, width) or not np.issubdtype(depth.dtype, np.floating):
        raise ConfigError(f'start_depth {path!r} must be float HxW = {height}x{width}, got {depth.dtype} {depth.shape}')
    return depth.astype(np.float32)


# ---- the node ------------------------------------------------------------------------------------------------
class SimulatorNode(LifecycleNode):
    """ROS 2 front of WorldEngine: see the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, parameter_overrides: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, parameter_overrides)
        self.params = SimulatorParams()
        self.engine: Any = None
        self.device = 'cpu'
        self._fps = 10.0
        self._engine_fps = 10.0
        self._engine_lock = threading.Lock()  # engine calls from the thread and from services
        self._cond = threading.Condition()  # pause / step / stop
        self._thread: threading.Thread | None = None
        self._stop = False
        self._paused = False
        self._steps_pending = 0
        self._generating = False  # a frame is being generated or published
        self._step_waiters: list[StepWaiter] = []
        self._step_group = ReentrantCallbackGroup()  # ~/step awaits here without holding the other services
        self._step_failures = 0  # engine steps that raised
        self._recoveries = 0  # ... after which a stand-still frame went out
        self._failure_resets = 0  # ... after which the session restarted from its start
        self._last_failure: tuple[float, str] = (-math.inf, '')
        self._fatal_signal: Any = None  # guard condition: the executor takes the node through ErrorProcessing
        self._frames = 0  # frames generated over the node's life
        self._sim_base = (0, 0)  # (sim time ns, frame count) when fps was last set: the clock never runs back
        self._inbox = CommandInbox(0, 0)
        self._warn = Throttle(WARN_PERIOD_S)
        self._stats: deque[tuple[float, int, float, float]] = deque(maxlen=512)  # wall, frame, engine ms, e2e ms
        self._last_diag = 0.0
        self._rejected_inputs = 0
        self.inputs_received: Counter[str] = Counter()  # per input topic, accepted or not (tests sync on it)
        self._fault = ''
        self._publishers_: list[Any] = []
        self._subscriptions_: list[Any] = []
        self._services_: list[Any] = []
        self._pub_clock: Any = None
        self._pub_diag: Any = None
        self._pub_pose_video: Any = None
        self._cache_bytes = 0
        self._pool_bytes = 0
        self._static_mount: tuple[float, float] | None = None  # (pitch, height) last sent on /tf_static
        self._tf: TfBroadcaster | None = None
        self._tf_static: StaticTfBroadcaster | None = None
        self._start_rgb: np.ndarray | None = None
        self._start_depth: np.ndarray | None = None
        self._start_pose: np.ndarray | None = None
        self._start_K: np.ndarray | None = None  # the start image's camera after fitting it to the model

    # ---- time --------------------------------------------------------------------------------------------
    @property
    def sim_time_ns(self) -> int:
        base_ns, base_frames = self._sim_base
        return base_ns + int(round((self._frames - base_frames) * 1e9 / self._fps))

    @property
    def frames_generated(self) -> int:
        return self._frames

    @property
    def paused(self) -> bool:
        return self._paused

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._sim_base = (self.sim_time_ns, self._frames)  # a new fps continues from the current sim time
        self._fault = ''
        try:
            self.params = read_parameters(self)
            self._load_engine()
            self._set_up_start()
        except (ConfigError, CheckpointError, ValueError, OSError, RuntimeError) as exc:
            # RuntimeError: torch refusing weights (shape mismatch, bad dtype for the device)
            self.get_logger().error(f'configure failed: {exc}')
            self.engine = None
            return TransitionCallbackReturn.FAILURE
        self._create_interfaces()
        self._paused = self.params.start_paused
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._publish_static_tf()
        self._start_thread()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_thread('the node was deactivated')
        if self._fault:
            return TransitionCallbackReturn.ERROR  # generation failed for good: on to ErrorProcessing
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_thread('the node was cleaned up')
        self._destroy_interfaces()
        self.engine = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_thread('the node was shut down')
        self._destroy_interfaces()
        self.engine = None
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """ErrorProcessing: stop and free the model; the node goes back to unconfigured, from where configure and
        activate start it afresh. The services stay, so requests in flight get their answer and later ones hear
        that the node is not configured (configure replaces them)."""
        self._stop_thread('the node is in error processing')
        self.engine = None
        self.get_logger().error(f'error processing: {self._fault or "a transition failed"}; the node is '
                                'unconfigured now (configure and activate it to start again)')
        return TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Stop generating (for shutdown paths that bypass the lifecycle)."""
        self._stop_thread('the node is stopping')

    # ---- configure helpers -------------------------------------------------------------------------------
    def _load_engine(self) -> None:
        from worldscape_ros.model.engine import WorldEngine

        p = self.params
        self.device = resolve_device(p.device)
        if p.device == 'auto':
            self.get_logger().info(f'device auto -> {self.device}')
        ckpt = p.checkpoint_arg
        if ckpt not in (None, 'random') and Path(ckpt).is_dir():
            raise CheckpointError(f'checkpoint {ckpt!r} is a directory: give the path of its .safetensors file')
        if ckpt not in (None, 'random') and not Path(ckpt).is_file():
            raise CheckpointError(f'checkpoint {ckpt!r} does not exist')
        try:
            self.engine = WorldEngine.from_pretrained(
                checkpoint=ckpt, config=p.model_config or None, device=self.device, dtype=p.dtype,
                memory=p.memory, steps=p.denoising_steps or None, seed=p.start_seed,
                pool_bytes=int(p.memory_budget_mb * 2**20) if p.memory_budget_mb else None)
        except CheckpointError as exc:
            raise CheckpointError(f'checkpoint {p.checkpoint!r} could not be loaded: {exc}') from None
        cfg = self.engine.config
        self._engine_fps = float(cfg.fps)
        self._fps = p.fps or self._engine_fps
        if p.fps and p.fps != self._engine_fps:
            self.get_logger().warning(f'fps {p.fps} differs from the model\'s {self._engine_fps}: commands are '
                                      'scaled so motion per sim second is right, but per-frame motion leaves '
                                      'the training distribution')
        self._inbox = CommandInbox(int(p.cmd_vel_timeout * 1e9), int(p.hand_keypoints_timeout * 1e9))
        self.get_logger().info(f'model {cfg.name} {cfg.width}x{cfg.height} at {self._fps:g} fps on {self.device} '
                               f'({p.dtype}), weights sha256 {str(self.engine.sha256)[:12]}')

    def _set_up_start(self) -> None:
        p, cfg = self.params, self.engine.config
        if p.start_image:
            rgb = load_start_image(p.start_image, cfg.height, cfg.width)
            depth = load_start_depth(p.start_depth, *rgb.shape[:2]) if p.start_depth else None
            try:
                start = fit_start(rgb, cfg.width, cfg.height, cfg.vfov_deg, depth=depth)
            except ValueError as exc:
                raise ConfigError(f'start_image {p.start_image!r}: {exc}') from None
            self._start_rgb, self._start_depth, self._start_K = start.rgb, start.depth, start.K
            for note in start.notes + start_warnings(start.fit, start.K, cfg.vfov_deg):
                self.get_logger().warning(f'start_image: {note}')
            height = p.camera_height or cfg.camera_height
            self._start_pose = camera_pose(BaseState(pitch=p.camera_pitch, height=height))
        else:
            self._start_rgb = self._start_depth = self._start_pose = self._start_K = None
        self._reset_engine()

    def _reset_engine(self) -> None:
        """Back to the configured start (the engine's state and memory are replaced, and its camera: intrinsics
        a reset_from_image brought do not outlive it)."""
        p = self.params
        if self._start_rgb is not None:
            self.engine.reset(self._start_rgb, self._start_pose, self._start_K, self._start_depth)
        else:
            self.engine.start_from_scene(p.start_seed, p.start_scene)

    def _create_interfaces(self) -> None:
        self._destroy_interfaces()  # those an error left behind
        p = self.params
        q = sensor_qos(p.qos_depth)
        self._pub_image = self.create_publisher(Image, p.image_topic, q)
        self._pub_info = self.create_publisher(CameraInfo, p.camera_info_topic, q)
        self._pub_depth = self.create_publisher(Image, p.depth_topic, q)
        self._pub_depth_info = self.create_publisher(CameraInfo, p.depth_info_topic, q)
        self._pub_odom = self.create_publisher(Odometry, p.odom_topic, q)
        self._pub_clock = self.create_publisher(Clock, '/clock', CLOCK_QOS) if p.publish_clock else None
        self._pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
        self._pub_pose_video = (self.create_publisher(Image, p.pose_video_topic, q)
                                if p.mode == 'manipulation' else None)
        self._publishers_ = [e for e in (self._pub_image, self._pub_info, self._pub_depth, self._pub_depth_info,
                                         self._pub_odom, self._pub_clock, self._pub_diag, self._pub_pose_video)
                              if e is not None]
        if p.publish_tf:
            self._tf, self._tf_static = TfBroadcaster(self), StaticTfBroadcaster(self)
        self._subscriptions_ = [
            self.create_subscription(Twist, p.cmd_vel_topic, self._on_cmd_vel, 10),
            self.create_subscription(PoseStamped, p.camera_pose_topic, self._on_camera_pose, 10),
            self.create_subscription(HandKeypoints, p.hand_keypoints_topic, self._on_hand_keypoints, 10),
        ]
        self._services_ = [
            self.create_service(Trigger, '~/reset', self._on_reset),
            self.create_service(ResetFromImage, '~/reset_from_image', self._on_reset_from_image),
            self.create_service(Trigger, '~/pause', self._on_pause),
            self.create_service(Trigger, '~/resume', self._on_resume),
            self.create_service(StepFrames, '~/step', self._on_step, callback_group=self._step_group),
        ]
        self._fatal_signal = self.create_guard_condition(self._on_fatal)

    def _destroy_interfaces(self) -> None:
        for sub in self._subscriptions_:
            self.destroy_subscription(sub)
        for srv in self._services_:
            self.destroy_service(srv)
        for pub in self._publishers_:
            self.destroy_publisher(pub)
        self._subscriptions_, self._services_, self._publishers_ = [], [], []
        if self._fatal_signal is not None:
            self.destroy_guard_condition(self._fatal_signal)
            self._fatal_signal = None
        self._pub_clock = self._pub_diag = self._pub_pose_video = None
        for tf in (self._tf, self._tf_static):
            if tf is not None:
                tf.destroy()
        self._tf = self._tf_static = None
        self._static_mount = None

    # ---- inputs ------------------------------------------------------------------------------------------
    def _reject(self, what: str, reason: str) -> None:
        self._rejected_inputs += 1
        if self._warn(f'reject {what}'):
            self.get_logger().warning(f'ignored {what}: {reason} (keeping the previous command)')

    def _on_cmd_vel(self, msg: Twist) -> None:
        self.inputs_received['cmd_vel'] += 1
        try:
            action = conv.twist_to_action(msg)
        except ValueError as exc:
            self._reject('cmd_vel', str(exc))
            return
        p = self.params
        applied, clamped = clamp_action(action, p.max_linear_velocity, p.max_angular_velocity)
        if clamped and self._warn('clamp cmd_vel'):
            self.get_logger().warning(f'cmd_vel {conv.format_action(action)} clamped to '
                                      f'{conv.format_action(applied)} (max_linear_velocity='
                                      f'{p.max_linear_velocity:g} m/s, max_angular_velocity='
                                      f'{p.max_angular_velocity:g} rad/s)')
        self._inbox.set_twist(applied, self.sim_time_ns)

    def _on_camera_pose(self, msg: PoseStamped) -> None:
        self.inputs_received['camera_pose'] += 1
        if msg.header.frame_id not in ('', self.params.odom_frame):
            self._reject('camera_pose', f'header.frame_id must be {self.params.odom_frame!r}, '
                                        f'got {msg.header.frame_id!r}')
            return
        try:
            c2w = conv.pose_to_matrix(msg.pose, 'camera_pose.pose')
            check_working_range(c2w, self.params.max_position, 'camera_pose.pose')
        except ValueError as exc:
            self._reject('camera_pose', str(exc))
            return
        self._inbox.set_pose(c2w, self.sim_time_ns)

    def _on_hand_keypoints(self, msg: HandKeypoints) -> None:
        self.inputs_received['hand_keypoints'] += 1
        if self.params.mode != 'manipulation':
            if self._warn('hands in navigation'):
                self.get_logger().warning('hand keypoints ignored: mode is navigation (set mode: manipulation)')
            return
        try:
            points, _scores = conv.hand_keypoints_to_numpy(msg, self.params.camera_frame)
        except ValueError as exc:
            self._reject('hand keypoints', str(exc))
            return
        self._inbox.set_hands(points, self.sim_time_ns)

    # ---- services ----------------------------------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Back to the start; cancels ~/step requests in flight and restarts generation if it had stopped."""
        if self.engine is None:
            response.success, response.message = False, 'not configured'
            return response
        try:
            with self._engine_lock:
                self._inbox.clear()
                self._reset_engine()
        except (ValueError, RuntimeError) as exc:
            response.success, response.message = False, f'reset failed: {exc}'
            self.get_logger().error(response.message)
            return response
        self._finish_steps(cancel='cancelled by ~/reset')
        restarted = self._restart_if_stopped()
        response.success = True
        response.message = (f'reset to the start at sim time {self.sim_time_ns / 1e9:.3f} s'
                            + ('; generation restarted' if restarted else ''))
        self.get_logger().info(response.message)
        return response

    def _restart_if_stopped(self) -> bool:
        """Start the inference thread again when the node is active but the thread is gone."""
        active = self._state_machine.current_state[1] == 'active'
        thread = self._thread
        if not active or (thread is not None and thread.is_alive()):
            return False
        if thread is not None:
            thread.join()
            self._thread = None
        self._fault = ''
        self._start_thread()
        return True

    def _on_reset_from_image(self, request: ResetFromImage.Request,
                             response: ResetFromImage.Response) -> ResetFromImage.Response:
        if self.engine is None:
            response.success, response.message = False, 'not configured'
            return response
        cfg = self.engine.config
        try:
            rgb = conv.image_to_rgb(request.image)  # any size: fitted to the model's below
            h, w = rgb.shape[:2]
            depth = None
            if request.depth.width or request.depth.height or request.depth.encoding:
                depth = conv.check_depth(conv.image_to_depth(request.depth, h, w))
            c2w = conv.pose_to_matrix(request.pose, 'pose')
            check_working_range(c2w, self.params.max_position, 'pose')
            K = conv.camera_info_to_intrinsics(request.camera_info, w, h)
            info = request.camera_info
            if K is not None and (info.width, info.height) != (w, h):
                raise ValueError(f'camera_info is {info.width}x{info.height}, the image {w}x{h}')
            # no camera_info: the model's own field of view, not whatever an earlier request brought
            start = fit_start(rgb, cfg.width, cfg.height, cfg.vfov_deg, K=K, depth=depth)
            with self._engine_lock:
                frame = self.engine.reset(start.rgb, c2w, start.K, start.depth)
                self._inbox.clear()
            notes = start.notes + start_warnings(start.fit, start.K, cfg.vfov_deg, getattr(frame, 'depth', None))
            for note in notes:
                self.get_logger().warning(f'reset_from_image: {note}')
        except ValueError as exc:
            self._rejected_inputs += 1
            response.success, response.message = False, f'reset_from_image rejected: {exc}'
            self.get_logger().warning(response.message)
            return response
        self._finish_steps(cancel='cancelled by ~/reset_from_image')
        restarted = self._restart_if_stopped()
        response.success = True
        response.message = ('reset from the given image' + ('; generation restarted' if restarted else '')
                            + ''.join(f'; {note}' for note in notes))
        return response

    def _on_pause(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Stop generating; ~/step requests in flight end with the frames made so far."""
        with self._cond:
            self._paused = True
            self._steps_pending = 0
            self._cond.notify_all()
            # answer once the frame in flight is out, so no frame follows the acknowledgement
            idle = self._cond.wait_for(lambda: not self._generating, timeout=PAUSE_WAIT_S)
        self._finish_steps(cancel='cancelled by ~/pause')
        response.success = True
        response.message = f'paused at frame {self._frames}' + ('' if idle else ' (a frame is still in flight)')
        return response

    def _on_resume(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._cond:
            self._paused = False
            self._cond.notify_all()
        response.success, response.message = True, f'resumed at frame {self._frames}'
        return response

    async def _on_step(self, request: StepFrames.Request, response: StepFrames.Response) -> StepFrames.Response:
        """Generate `frames` frames while paused. Awaits them in its own callback group, so pause, resume, reset,
        the lifecycle services and other steps are answered meanwhile; ~/pause, ~/reset, deactivation or
        step_timeout end it early with the frames made so far."""
        n = int(request.frames)
        cap = self.params.max_step_frames
        with self._cond:
            if self._thread is None:
                response.success, response.message = False, 'not active: activate the node first'
                return response
            if not self._paused:
                response.success, response.message = False, 'not paused: call ~/pause first'
                return response
            if not 1 <= n <= cap:
                response.success = False
                response.message = f'frames={n} must be in [1, max_step_frames={cap}]'
                return response
            waiter = StepWaiter(self._frames + self._steps_pending, n, threading.Event(),
                                self.executor.create_future() if self.executor is not None else None)
            if waiter.future is not None:
                waiter.future.add_done_callback(lambda _f: None)  # its scheduling wakes the executor
            self._steps_pending += n
            self._step_waiters.append(waiter)
            self._cond.notify_all()
        self._finish_steps()
        timeout = self.params.step_timeout
        if waiter.future is not None:
            timer = self.create_timer(timeout, lambda: self._finish_steps(
                cancel=f'timed out after step_timeout={timeout:g} s'), callback_group=self._step_group)
            try:
                await waiter.future
            finally:
                self.destroy_timer(timer)
        elif not waiter.done.wait(timeout):
            self._finish_steps(cancel=f'timed out after step_timeout={timeout:g} s')
        response.frames_generated = waiter.generated
        response.success = response.frames_generated == n and not waiter.cancelled
        response.message = f'generated {response.frames_generated} of {n} frames'
        if waiter.cancelled:
            response.message += f' ({waiter.cancelled})'
        return response

    # ---- the inference thread ----------------------------------------------------------------------------
    def _start_thread(self) -> None:
        with self._cond:
            self._stop = False
        self._thread = threading.Thread(target=self._run, name='worldscape-inference', daemon=True)
        self._thread.start()

    def _stop_thread(self, reason: str = 'generation stopped') -> None:
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if thread is not threading.current_thread():
            thread.join()
        self._thread = None
        self._finish_steps(cancel=f'cancelled: {reason}')

    def _finish_steps(self, cancel: str = '') -> None:
        """Complete the ~/step requests whose frames are generated, or all of them with `cancel` as the reason
        (and no frames left pending)."""
        with self._cond:
            if cancel:
                finished, self._step_waiters = self._step_waiters, []
                self._steps_pending = 0
            else:
                finished = [w for w in self._step_waiters if self._frames >= w.target]
                self._step_waiters = [w for w in self._step_waiters if w not in finished]
            for w in finished:
                w.finished_at = self._frames
                w.cancelled = cancel if self._frames < w.target else ''
        for w in finished:
            w.done.set()
            if w.future is not None and not w.future.done():
                w.future.set_result(True)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # whatever ends the thread must reach the log and the lifecycle
            cause = exc.args[0] if isinstance(exc, GenerationFailed) else f'inference thread stopped: {exc!r}'
            self._fail(cause)

    def _loop(self) -> None:
        wall0, frame0 = time.monotonic(), self._frames
        failures = 0
        while True:
            with self._cond:
                while not self._stop and self._paused and self._steps_pending == 0:
                    self._cond.wait(0.5)
                    self._publish_diagnostics()
                if self._stop:
                    return
                stepping = self._paused
                if stepping:
                    self._steps_pending -= 1
                elif self._steps_pending:
                    self._steps_pending = 0  # resumed: pending steps are absorbed by free running
                self._generating = True
            try:
                self._generate_one()
                failures = 0
            except GenerationFailed:
                raise
            except Exception as exc:  # publishing or bookkeeping after the step; bounded below
                failures += 1
                self._last_failure = (time.monotonic(), f'frame failed: {exc!r}')
                self.get_logger().error(f'frame {self._frames + 1} failed after the engine step ({exc!r}); '
                                        f'{failures} in a row')
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise GenerationFailed(f'{failures} frames in a row failed, the last with {exc!r}') from exc
            finally:
                with self._cond:
                    self._generating = False
                    self._cond.notify_all()
            self._finish_steps()
            if self.params.realtime and not stepping:
                # pace to fps against a wall clock anchor; after falling behind, re-anchor instead of bursting
                target = wall0 + (self._frames - frame0) / self._fps
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -1.0 / self._fps:
                    wall0, frame0 = time.monotonic(), self._frames
            else:
                wall0, frame0 = time.monotonic(), self._frames

    def _fail(self, cause: str) -> None:
        """Generation cannot go on: say so on the log and /diagnostics, end the ~/step requests, and have the
        executor take the node through ErrorProcessing."""
        self._fault = cause
        self.get_logger().error(f'{cause}; leaving the active state through error processing')
        self._publish_diagnostics(force=True)
        self._finish_steps(cancel=f'cancelled: {cause}')
        if self._fatal_signal is not None:
            self._fatal_signal.trigger()

    def _on_fatal(self) -> None:
        """In the executor: a fault the supervisor could not recover from deactivates the node with an error,
        which rclpy's lifecycle turns into ErrorProcessing (on_error)."""
        if self._fault and self._state_machine.current_state[1] == 'active':
            self.trigger_deactivate()

    def _generate_one(self) -> None:
        """One engine step (a chunk: one frame for ws-tiny) from the latest command; publish its frames."""
        t0 = time.perf_counter()
        motion, hands = self._inbox.take(self.sim_time_ns)
        if self.params.mode != 'manipulation':
            hands = None
        with self._engine_lock:
            k = int(getattr(self.engine.config, 'frames_per_chunk', 1))
            prev = self.engine.state
            if isinstance(motion, NavAction):
                motion = self._within_working_range(prev, motion)
            engine_motion: NavAction | np.ndarray = motion
            if isinstance(motion, NavAction) and self._fps != self._engine_fps:
                engine_motion = scale_action(motion, self._engine_fps / self._fps)  # engine integrates 1/its fps
            try:
                frames = self._engine_step(engine_motion, hands, k)
            except Exception as exc:  # the supervisor: any failure of a step is recovered from
                frames = self._recover(exc, prev, k)
                motion = NavAction()
            last_state = self.engine.state
            self._cache_bytes = int(self.engine.cache_bytes)
            self._pool_bytes = int(getattr(self.engine.memory, 'pool_nbytes', 0))
        for i, frame in enumerate(frames):
            state = last_state if i == k - 1 else state_from_camera_pose(frame.pose, last_state.height)
            twist = motion if isinstance(motion, NavAction) else self._twist_between(prev, state)
            self._frames += 1
            self._publish_frame(frame, state, twist)
            prev = state
        e2e_ms = (time.perf_counter() - t0) * 1e3 / k
        self._stats.append((time.monotonic(), self._frames, float(frames[-1].latency_ms), e2e_ms))
        self._publish_diagnostics()

    def _within_working_range(self, state: BaseState, motion: NavAction) -> NavAction:
        """Stand still instead of driving past max_position (velocity commands stop at the working range's edge)."""
        limit = self.params.max_position
        after = integrate(state, motion, 1.0 / self._fps)
        if max(abs(after.x), abs(after.y), abs(after.z)) <= limit:
            return motion
        if self._warn('working range'):
            self.get_logger().warning(f'cmd_vel stopped at the edge of the working range (max_position={limit:g} m)')
        return NavAction()

    def _recover(self, exc: Exception, prev: BaseState, k: int) -> list[Any]:
        """A step raised: drop the inputs, undo its motion and stand still for this frame; if even that fails,
        restart the session from its start. Logged once per WARN_PERIOD_S with the cause; counted."""
        self._step_failures += 1
        self._inbox.clear()
        cause = f'{type(exc).__name__}: {exc}'
        try:
            self.engine.state = prev
            frames = self._engine_step(NavAction(), None, k)
            self._recoveries += 1
            outcome = 'dropped the inputs and stood still for this frame'
        except Exception as again:  # the session's state is corrupt: back to its start
            try:
                self._reset_engine()
                frames = self._engine_step(NavAction(), None, k)
            except Exception as last:
                raise GenerationFailed(f'step failed ({cause}); standing still failed ({again!r}) and so did a '
                                       f'reset to the start ({last!r})') from last
            self._failure_resets += 1
            outcome = f'standing still failed too ({type(again).__name__}: {again}); reset to the start'
        message = f'step failed ({cause}): {outcome}'
        self._last_failure = (time.monotonic(), message)
        reset = 'reset to the start' in outcome
        if reset or self._warn('step failed'):  # a restart of the session is always said; stand-stills throttled
            self.get_logger().error(f'{message} [{self._step_failures} failed steps so far]')
        return frames

    def _engine_step(self, motion: NavAction | np.ndarray, hands: np.ndarray | None, k: int) -> list[Any]:
        if k == 1:
            return [self.engine.step(motion, hands)]
        return list(self.engine.step_chunk([motion] * k, [hands] * k))  # a command holds over the chunk

    def _twist_between(self, a: BaseState, b: BaseState) -> NavAction:
        """Velocity in the base frame that moves `a` to `b` in one frame (for pose following)."""
        dt = 1.0 / self._fps
        c, s = math.cos(a.yaw), math.sin(a.yaw)
        dx, dy = b.x - a.x, b.y - a.y
        return NavAction(vx=(c * dx + s * dy) / dt, vy=(-s * dx + c * dy) / dt, vz=(b.z - a.z) / dt,
                         yaw_rate=wrap_angle(b.yaw - a.yaw) / dt, pitch_rate=(b.pitch - a.pitch) / dt)

    # ---- outputs -----------------------------------------------------------------------------------------
    def _publish_frame(self, frame: Any, state: BaseState, twist: NavAction) -> None:
        p, stamp = self.params, self.sim_time_ns
        if self._pub_clock is not None:
            self._pub_clock.publish(Clock(clock=conv.stamp_from_ns(stamp)))
        if self._tf is not None:
            self._tf.send([conv.matrix_to_transform(base_pose(state), stamp, p.odom_frame, p.base_frame)])
            if self._static_mount != (state.pitch, state.height):
                self._publish_static_tf(state)  # the mount changed (pitch commands, a reset at another height)
        self._pub_odom.publish(conv.odometry(state, twist, stamp, p.odom_frame, p.base_frame))
        cfg = self.engine.config
        K = self.engine.intrinsics
        self._pub_image.publish(conv.rgb_to_image(frame.rgb, stamp, p.camera_frame))
        self._pub_info.publish(conv.camera_info(K, cfg.width, cfg.height, stamp, p.camera_frame))
        self._pub_depth.publish(conv.depth_to_image(frame.depth, stamp, p.camera_frame))
        self._pub_depth_info.publish(conv.camera_info(K, cfg.width, cfg.height, stamp, p.camera_frame))
        if self._pub_pose_video is not None and frame.pose_video is not None:
            self._pub_pose_video.publish(conv.rgb_to_image(frame.pose_video, stamp, p.camera_frame))

    def _publish_static_tf(self, state: BaseState | None = None) -> None:
        if self._tf_static is None or self.engine is None:
            return
        p = self.params
        state = state or self.engine.state
        T_link_opt = np.eye(4)
        T_link_opt[:3, :3] = R_LINK_OPTICAL
        stamp = self.sim_time_ns
        self._tf_static.send([
            conv.matrix_to_transform(base_to_camera_link(state), stamp, p.base_frame, p.camera_link_frame),
            conv.matrix_to_transform(T_link_opt, stamp, p.camera_link_frame, p.camera_frame),
        ])
        self._static_mount = (state.pitch, state.height)

    def diagnostics_snapshot(self) -> dict[str, float]:
        """Real-time factor, latencies (ms, p50 over the recent frames) and frames/s of wall time."""
        stats = list(self._stats)
        if len(stats) < 2:
            last = stats[-1] if stats else (0.0, 0, 0.0, 0.0)
            return {'real_time_factor': 0.0, 'frames_per_second': 0.0,
                    'engine_latency_ms': last[2], 'frame_latency_ms': last[3]}
        wall = stats[-1][0] - stats[0][0]
        frames = stats[-1][1] - stats[0][1]
        fps = frames / wall if wall > 0 else 0.0
        return {'real_time_factor': fps / self._fps, 'frames_per_second': fps,
                'engine_latency_ms': float(np.median([s[2] for s in stats])),
                'frame_latency_ms': float(np.median([s[3] for s in stats]))}

    def _publish_diagnostics(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_diag < self.params.diagnostics_period:
            return
        self._last_diag = now
        if self._pub_diag is None or self.engine is None:
            return
        snap = self.diagnostics_snapshot()
        status = DiagnosticStatus(name=f'{self.get_name()}: world model', hardware_id=self.device)
        if self._fault:
            status.level, status.message = DiagnosticStatus.ERROR, self._fault
        elif now - self._last_failure[0] < FAILURE_WARN_S:
            status.level, status.message = DiagnosticStatus.WARN, f'recovered: {self._last_failure[1]}'
        elif self.params.realtime and not self._paused and 0 < snap['real_time_factor'] < 0.9:
            status.level, status.message = DiagnosticStatus.WARN, 'slower than real time'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'paused' if self._paused else 'running'
        values = {
            'real_time_factor': f'{snap["real_time_factor"]:.3f}',
            'frames_per_second': f'{snap["frames_per_second"]:.2f}',
            'frame_latency_ms': f'{snap["frame_latency_ms"]:.2f}',
            'engine_latency_ms': f'{snap["engine_latency_ms"]:.2f}',
            'cache_bytes': str(self._cache_bytes),  # sink + window + pool
            'pool_bytes': str(self._pool_bytes),  # what memory_budget_mb bounds
            'device': self.device,
            'dtype': self.params.dtype,
            'model': str(self.engine.config.name),
            'fps': f'{self._fps:g}',
            'frames': str(self._frames),
            'sim_time': f'{self.sim_time_ns / 1e9:.3f}',
            'paused': str(self._paused).lower(),
            'rejected_inputs': str(self._rejected_inputs),
            'failed_steps': str(self._step_failures),
            'recovered_steps': str(self._recoveries),
            'resets_after_failure': str(self._failure_resets),
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = conv.stamp_from_ns(self.sim_time_ns)
        self._pub_diag.publish(msg)


# ---- console script ------------------------------------------------------------------------------------------
def main(args: list[str] | None = None) -> int:
    """`worldscape-sim` / `ros2 run worldscape_ros simulator`: run the node until SIGINT or SIGTERM."""
    import signal

    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    # large images across processes need the bigger shared-memory segments of this profile (FACTS.md)
    os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(default_fastdds_profile()))
    # our own handlers: rclpy's would shut the context down under the inference thread's feet
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = SimulatorNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        if node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error('could not configure (see above); exiting')
                code = 1
            else:
                node.trigger_activate()
        while code == 0 and not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.stop()  # join the inference thread before anything below tears ROS down
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


def default_fastdds_profile() -> Path:
    """config/fastdds.xml from a source checkout, or share/worldscape_ros/config/ of an install."""
    here = Path(__file__).resolve()
    source = here.parents[2] / 'config' / 'fastdds.xml'
    if source.is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory('worldscape_ros')) / 'config' / 'fastdds.xml'
    except (ImportError, LookupError):
        return source


if __name__ == '__main__':
    raise SystemExit(main())
