"""The WorldScape simulator node: actions in, imagined camera and depth out, in place of Gazebo.

A lifecycle node: configure validates the parameters, loads the world model and sets up the start view;
activate starts one inference thread apart from the executor (callbacks stay responsive, the latest command
wins); deactivate stops it; cleanup frees the model. Each generated frame advances sim time by 1/fps; /clock
and every stamp are sim time. Topics, frames and services: docs/ros_interface.md.

The inference thread is supervised: a step that raises is logged with its cause, its inputs are dropped and the
session stands still for that frame (or, when even that fails, restarts from its start); the counts are on
/diagnostics. Only when a reset to the start fails too does the node leave the active state, through
ErrorProcessing, saying why.

The parts, each in its own module: the input topics, each checked where it enters (inputs), the command inbox
and warning throttle (inbox), motion limits (motion), the services (services), sim time (sim_clock), the
inference thread with pause and step (generation), recovery from failed steps (supervision), the engine and its
start view (start), the per-frame publishers (outputs) and /diagnostics (diagnostics). This module makes them at
configure, destroys them at cleanup, and runs one engine step for the inference thread.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from worldscape_ros.errors import CheckpointError, ConfigError
from worldscape_ros.model.kinematics import BaseState, NavAction, state_from_camera_pose
from worldscape_ros.model.protocol import LiveEngine
from worldscape_ros.model.stale import FrameAbandoned
from worldscape_ros.ros.diagnostics import FrameStats, diagnostic_array, health
from worldscape_ros.ros.fastdds import use_fastdds_profile
from worldscape_ros.ros.generation import GenerationLoop
from worldscape_ros.ros.inbox import CommandInbox, Throttle
from worldscape_ros.ros.inputs import CommandInputs, InputCounts
from worldscape_ros.ros.motion import scale_action, stays_in_working_range, twist_between
from worldscape_ros.ros.outputs import FrameOutputs
from worldscape_ros.ros.params import SimulatorParams, declare_parameters, read_parameters
from worldscape_ros.ros.qos import DIAGNOSTICS_QOS
from worldscape_ros.ros.services import SimulatorServices
from worldscape_ros.ros.sim_clock import SimClock
from worldscape_ros.ros.start import StartView, load_engine, resolve_device, start_view
from worldscape_ros.ros.supervision import StepSupervisor
from worldscape_ros.ros.torch_threads import executor_thread_single, inference_thread_threads

if TYPE_CHECKING:
    from worldscape_ros.model.frames import Frame

NODE_NAME = 'simulator'
WARN_PERIOD_S = 2.0  # throttle for repeated warnings about bad input


class SimulatorNode(LifecycleNode):
    """ROS 2 front of WorldEngine: see the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, parameter_overrides: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, parameter_overrides)
        self.params = SimulatorParams()
        self.engine: LiveEngine | None = None
        self.device = 'cpu'
        self._engine_fps = 10.0
        self._engine_lock = threading.Lock()  # engine calls from the thread and from services
        self._sim_clock = SimClock()
        self._inbox = CommandInbox(0, 0)
        self._warn = Throttle(WARN_PERIOD_S)
        self._supervisor = StepSupervisor(self.get_logger(), self._warn)
        self._loop = GenerationLoop(self._generate_one, self._sim_clock, self._supervisor, self.get_logger(),
                                    idle=self._publish_diagnostics, fail=self._fail, begin=self._begin_inference)
        self._fatal_signal: Any = None  # guard condition: the executor takes the node through ErrorProcessing
        self._fault = ''
        self._stats = FrameStats()
        self._last_diag = 0.0
        self._input_counts = InputCounts()
        self._inputs: CommandInputs | None = None
        self._control: SimulatorServices | None = None
        self._outputs: FrameOutputs | None = None
        self._pub_diag: Any = None
        self._cache_bytes = 0
        self._pool_bytes = 0
        self._stale_frames = 0
        self._start: StartView | None = None

    # ---- time --------------------------------------------------------------------------------------------
    @property
    def sim_time_ns(self) -> int:
        return self._sim_clock.now_ns

    @property
    def frames_generated(self) -> int:
        return self._sim_clock.frames

    @property
    def paused(self) -> bool:
        return self._loop.paused

    @property
    def inputs_received(self) -> Counter[str]:
        """Messages per input topic, accepted or not (tests sync on them)."""
        return self._input_counts.received

    @property
    def rejected_inputs(self) -> int:
        """Inputs refused where they enter (messages and ~/reset_from_image requests)."""
        return self._input_counts.rejected

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._fault = ''
        try:
            self.params = read_parameters(self)
            executor_thread_single()  # the inference thread's OpenMP team stays the only one (torch_threads)
            self._load_engine()
            self._set_up_start()
        except (ConfigError, CheckpointError, ValueError, OSError, RuntimeError) as exc:
            # RuntimeError: torch refusing weights (shape mismatch, bad dtype for the device)
            self.get_logger().error(f'configure failed: {exc}')
            self.engine = None
            return TransitionCallbackReturn.FAILURE
        self._create_interfaces()
        self._loop.realtime = self.params.realtime
        self._loop.set_paused(self.params.start_paused)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._publish_mount()
        self._loop.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._loop.stop('the node was deactivated')
        if self._fault:
            return TransitionCallbackReturn.ERROR  # generation failed for good: on to ErrorProcessing
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._loop.stop('the node was cleaned up')
        self._destroy_interfaces()
        self.engine = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._loop.stop('the node was shut down')
        self._destroy_interfaces()
        self.engine = None
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """ErrorProcessing: stop and free the model; the node goes back to unconfigured, from where configure and
        activate start it afresh. The services stay, so requests in flight get their answer and later ones hear
        that the node is not configured (configure replaces them)."""
        self._loop.stop('the node is in error processing')
        self.engine = None
        self.get_logger().error(f'error processing: {self._fault or "a transition failed"}; the node is '
                                'unconfigured now (configure and activate it to start again)')
        return TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Stop generating (for shutdown paths that bypass the lifecycle)."""
        self._loop.stop('the node is stopping')

    # ---- configure helpers -------------------------------------------------------------------------------
    def _load_engine(self) -> None:
        p = self.params
        self.device = resolve_device(p.device)
        if p.device == 'auto':
            self.get_logger().info(f'device auto -> {self.device}')
        engine = self.engine = load_engine(p, self.device)
        cfg = engine.config
        self._engine_fps = float(cfg.fps)
        self._sim_clock.set_fps(p.fps or self._engine_fps)  # a new fps continues from the current sim time
        if p.fps and p.fps != self._engine_fps:
            self.get_logger().warning(f'fps {p.fps} differs from the model\'s {self._engine_fps}: commands are '
                                      'scaled so motion per sim second is right, but per-frame motion leaves '
                                      'the training distribution')
        self._inbox = CommandInbox(int(p.cmd_vel_timeout * 1e9), int(p.hand_keypoints_timeout * 1e9))
        self.get_logger().info(f'model {cfg.name} {cfg.width}x{cfg.height} at {self._sim_clock.fps:g} fps on '
                               f'{self.device} ({p.dtype}), weights sha256 {engine.sha256[:12]}')

    def _set_up_start(self) -> None:
        self._start, notes = start_view(self.params, self._loaded().config)
        for note in notes:
            self.get_logger().warning(f'start_image: {note}')
        self._reset_engine()

    def _reset_engine(self) -> None:
        """Back to the configured start (the engine's state and memory are replaced, and its camera: intrinsics
        a reset_from_image brought do not outlive it)."""
        engine, start = self._loaded(), self._start
        if start is not None:
            engine.reset(start.rgb, start.pose, start.K, start.depth)
        else:
            from worldscape_ros.synthetic.starts import start_from_scene  # MuJoCo only for a synthetic start

            start_from_scene(engine, self.params.start_seed, self.params.start_scene)

    def _loaded(self) -> LiveEngine:
        if self.engine is None:
            raise RuntimeError('no engine: the node is not configured')
        return self.engine

    def _create_interfaces(self) -> None:
        self._destroy_interfaces()  # those an error left behind
        p = self.params
        self._outputs = FrameOutputs(self, p)
        self._pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
        self._inputs = CommandInputs(self, p, self._inbox, self._sim_clock, self._warn, self._input_counts)
        self._control = SimulatorServices(
            self, p, self._loop, self._sim_clock, engine=lambda: self.engine, engine_lock=self._engine_lock,
            inbox=self._inbox, reset_engine=self._reset_engine, restart_if_stopped=self._restart_if_stopped,
            counts=self._input_counts)
        self._fatal_signal = self.create_guard_condition(self._on_fatal)

    def _destroy_interfaces(self) -> None:
        if self._inputs is not None:
            self._inputs.destroy()
            self._inputs = None
        if self._control is not None:
            self._control.destroy()
            self._control = None
        if self._pub_diag is not None:
            self.destroy_publisher(self._pub_diag)
            self._pub_diag = None
        if self._fatal_signal is not None:
            self.destroy_guard_condition(self._fatal_signal)
            self._fatal_signal = None
        if self._outputs is not None:
            self._outputs.destroy()
            self._outputs = None

    def _restart_if_stopped(self) -> bool:
        """Start the inference thread again when the node is active but the thread is gone."""
        if self._state_machine.current_state[1] != 'active' or self._loop.running:
            return False
        self._fault = ''
        self._loop.start()
        return True

    # ---- generation (in the inference thread) ------------------------------------------------------------
    def _begin_inference(self) -> None:
        threads = inference_thread_threads(self.params.threads)
        self.get_logger().info(f'inference thread: {threads} torch CPU thread{"s" if threads > 1 else ""}')

    def _fail(self, cause: str) -> None:
        """Generation cannot go on: say so on the log and /diagnostics, end the ~/step requests, and have the
        executor take the node through ErrorProcessing."""
        self._fault = cause
        self.get_logger().error(f'{cause}; leaving the active state through error processing')
        self._publish_diagnostics(force=True)
        self._loop.finish_steps(cancel=f'cancelled: {cause}')
        if self._fatal_signal is not None:
            self._fatal_signal.trigger()

    def _on_fatal(self) -> None:
        """In the executor: a fault the supervisor could not recover from deactivates the node with an error,
        which rclpy's lifecycle turns into ErrorProcessing (on_error)."""
        if self._fault and self._state_machine.current_state[1] == 'active':
            self.trigger_deactivate()

    def _generate_one(self) -> None:
        """One engine step (a chunk: one frame for ws-tiny) from the latest command; publish its frames. A frame
        that a different command makes stale while it is made is given up once and made again from the newer
        command (drop_stale_frames), so a command waits for one frame, not for the one in flight and then its own."""
        t0 = time.perf_counter()
        with self._engine_lock:
            engine = self._loaded()
            k = engine.config.frames_per_chunk
            prev = engine.state
            try:
                stale = self._inbox.superseded if self.params.drop_stale_frames else None
                frames, motion = self._step_latest(engine, k, stale)
            except FrameAbandoned:
                self._stale_frames += 1
                frames, motion = self._step_latest(engine, k, None)
            last_state = engine.state
            self._cache_bytes = engine.cache_bytes
            self._pool_bytes = engine.memory.pool_nbytes
            K, width, height = engine.intrinsics, engine.config.width, engine.config.height
        outputs = self._outputs
        if outputs is None:
            raise RuntimeError('frames made with no publishers (the node is not configured)')
        for i, frame in enumerate(frames):
            state = last_state if i == k - 1 else state_from_camera_pose(frame.pose, last_state.height)
            twist = motion if isinstance(motion, NavAction) else twist_between(prev, state, 1.0 / self._sim_clock.fps)
            outputs.publish(frame, state, twist, self._sim_clock.tick(), K, width, height)
            prev = state
        e2e_ms = (time.perf_counter() - t0) * 1e3 / k
        self._stats.add(self._sim_clock.frames, float(frames[-1].latency_ms), e2e_ms)
        self._publish_diagnostics()

    def _step_latest(self, engine: LiveEngine, k: int, stale: Callable[[], bool] | None
                     ) -> tuple[list[Frame], NavAction | np.ndarray]:
        """One engine step from the latest command (a step that fails is recovered from: it stands still); the
        frames and the motion they show. FrameAbandoned passes through."""
        motion, hands = self._inbox.take(self.sim_time_ns)
        if self.params.mode != 'manipulation':
            hands = None
        fps = self._sim_clock.fps
        prev = engine.state
        if isinstance(motion, NavAction):
            motion = self._within_working_range(prev, motion)
        engine_motion: NavAction | np.ndarray = motion
        if isinstance(motion, NavAction) and fps != self._engine_fps:
            engine_motion = scale_action(motion, self._engine_fps / fps)  # engine integrates 1/its fps
        try:
            return self._supervisor.step(engine, engine_motion, hands, k, stale), motion
        except FrameAbandoned:
            raise
        except Exception as exc:  # the supervisor: any failure of a step is recovered from
            return self._supervisor.recover(engine, exc, prev, k, reset=self._reset_engine,
                                            drop_inputs=self._inbox.clear), NavAction()

    def _within_working_range(self, state: BaseState, motion: NavAction) -> NavAction:
        """Stand still instead of driving past max_position (velocity commands stop at the working range's edge)."""
        limit = self.params.max_position
        if stays_in_working_range(state, motion, 1.0 / self._sim_clock.fps, limit):
            return motion
        if self._warn('working range'):
            self.get_logger().warning(f'cmd_vel stopped at the edge of the working range (max_position={limit:g} m)')
        return NavAction()

    # ---- outputs -----------------------------------------------------------------------------------------
    def _publish_mount(self) -> None:
        outputs, engine = self._outputs, self.engine
        if outputs is not None and engine is not None:
            outputs.publish_mount(engine.state, self.sim_time_ns)

    def diagnostics_snapshot(self) -> dict[str, float]:
        """Real-time factor, latencies (ms, p50 over the recent frames) and frames/s of wall time."""
        return self._stats.snapshot(self._sim_clock.fps)

    def _publish_diagnostics(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_diag < self.params.diagnostics_period:
            return
        self._last_diag = now
        engine = self.engine
        if self._pub_diag is None or engine is None:
            return
        snap = self.diagnostics_snapshot()
        paused, sup = self._loop.paused, self._supervisor
        level, message = health(self._fault, sup.last_failure, self.params.realtime, paused,
                                snap['real_time_factor'], now)
        values = {
            'real_time_factor': f'{snap["real_time_factor"]:.3f}',
            'frames_per_second': f'{snap["frames_per_second"]:.2f}',
            'frame_latency_ms': f'{snap["frame_latency_ms"]:.2f}',
            'engine_latency_ms': f'{snap["engine_latency_ms"]:.2f}',
            'cache_bytes': str(self._cache_bytes),  # sink + window + pool
            'pool_bytes': str(self._pool_bytes),  # what memory_budget_mb bounds
            'device': self.device,
            'dtype': self.params.dtype,
            'model': engine.config.name,
            'fps': f'{self._sim_clock.fps:g}',
            'frames': str(self._sim_clock.frames),
            'sim_time': f'{self.sim_time_ns / 1e9:.3f}',
            'paused': str(paused).lower(),
            'rejected_inputs': str(self._input_counts.rejected),
            'failed_steps': str(sup.failed_steps),
            'recovered_steps': str(sup.recovered_steps),
            'resets_after_failure': str(sup.resets_after_failure),
            'stale_frames_dropped': str(self._stale_frames),  # given up for a newer command, then made again
        }
        self._pub_diag.publish(diagnostic_array(f'{self.get_name()}: world model', self.device, level, message,
                                                values, self.sim_time_ns))


# ---- console script ------------------------------------------------------------------------------------------
def main(args: list[str] | None = None) -> int:
    """`worldscape-sim` / `ros2 run worldscape_ros simulator`: run the node until SIGINT or SIGTERM."""
    import signal

    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    use_fastdds_profile()  # large images across processes
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


if __name__ == '__main__':
    raise SystemExit(main())
