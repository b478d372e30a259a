"""The viewer as a ROS 2 node, like rviz beside any running simulator: it subscribes to the simulator's camera,
depth, camera_info, odom, TF and (manipulation) hand topics, draws each frame, and its page publishes cmd_vel
and calls the simulator's services (~/pause, ~/resume, ~/step, ~/reset). The page itself is `viewer/`, which
imports no ROS. Topic and service names: docs/ros_interface.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from worldscape_msgs.msg import HandKeypoints
from worldscape_msgs.srv import StepFrames

from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.model.pixel_convention import k_from_ros
from worldscape_ros.ros import conversions as conv
from worldscape_ros.ros.qos import TF_QOS, TF_STATIC_QOS, sensor_qos
from worldscape_ros.viewer import ViewerError
from worldscape_ros.viewer.teleop import Limits
from worldscape_ros.viewer.viewer import FrameView, WorldViewer

log = logging.getLogger(__name__)

NODE_NAME = 'viewer'
COMMAND_PERIOD_S = 0.2  # a held command is re-sent: the simulator stops after cmd_vel_timeout without one
MAX_PENDING = 8  # frames (by stamp) waiting for their other half (image or depth)
HANDS_STALE_NS = 500_000_000  # hand keypoints older than this at a frame are not drawn with it


@dataclass
class ViewerParams:
    host: str = '127.0.0.1'
    port: int = 8080
    max_linear: float = 1.0
    max_angular: float = 1.5
    simulator: str = 'simulator'
    odom_frame: str = 'odom'
    image_topic: str = 'camera/image_raw'
    depth_topic: str = 'camera/depth/image_raw'
    camera_info_topic: str = 'camera/camera_info'
    odom_topic: str = 'odom'
    pose_video_topic: str = 'debug/pose_video'
    hand_keypoints_topic: str = 'hand_keypoints'
    cmd_vel_topic: str = 'cmd_vel'


class TfTree:
    """Transforms from /tf (a short history per child frame, looked up at a stamp) and /tf_static (the latest);
    a frame's pose in a root frame is the chain of its parents."""

    def __init__(self, history: int = 64, tolerance_ns: int = 50_000_000) -> None:
        self._static: dict[str, tuple[str, np.ndarray]] = {}
        self._dynamic: dict[str, tuple[str, dict[int, np.ndarray]]] = {}
        self._history = history
        self._tolerance_ns = tolerance_ns
        self._lock = threading.Lock()

    def add(self, msg: TFMessage, static: bool = False) -> None:
        with self._lock:
            for tf in msg.transforms:
                child, parent = tf.child_frame_id.lstrip('/'), tf.header.frame_id.lstrip('/')
                T = conv.transform_to_matrix(tf.transform)
                if static:
                    self._static[child] = (parent, T)
                    continue
                _, hist = self._dynamic.setdefault(child, (parent, {}))
                hist[conv.ns_from_stamp(tf.header.stamp)] = T
                self._dynamic[child] = (parent, hist)
                for old in sorted(hist)[:-self._history]:
                    del hist[old]

    def add_static(self, msg: TFMessage) -> None:
        self.add(msg, static=True)

    def lookup(self, root: str, frame: str, stamp_ns: int) -> np.ndarray | None:
        """Pose of `frame` in `root` (4x4) at the stamp, or None while a link of the chain is missing there
        (dynamic links: the transform nearest the stamp within the tolerance)."""
        T = np.eye(4)
        seen = set()
        with self._lock:
            while frame != root:
                if frame in seen:
                    return None
                seen.add(frame)
                if frame in self._static:
                    parent, T_link = self._static[frame]
                elif frame in self._dynamic:
                    parent, hist = self._dynamic[frame]
                    nearest = min(hist, key=lambda s: abs(s - stamp_ns), default=None)
                    if nearest is None or abs(nearest - stamp_ns) > self._tolerance_ns:
                        return None
                    T_link = hist[nearest]
                else:
                    return None
                T = T_link @ T
                frame = parent
        return T


class ViewerNode(Node):
    """Subscribes to a simulator, feeds a WorldViewer, and is the page's Controller."""

    def __init__(self, params: ViewerParams | None = None, viewer: WorldViewer | None = None,
                 **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        p = params or self._read_parameters()
        self.params = p
        self.viewer = viewer or WorldViewer(p.host, p.port, limits=Limits(p.max_linear, p.max_angular),
                                            title='WorldScape (ROS)')
        self.viewer.controller = self
        self.tf = TfTree()
        self.frames_shown = 0
        self._lock = threading.Lock()
        self._show_lock = threading.Lock()
        self._K: np.ndarray | None = None
        self._rgb: dict[int, tuple[np.ndarray, str]] = {}
        self._depth: dict[int, np.ndarray] = {}
        self._pose_video: np.ndarray | None = None
        self._hands: tuple[int, np.ndarray] | None = None  # (stamp ns, (21, 3) optical frame; hidden: z = 0)
        self._command: NavAction | None = None
        self.commands_sent = 0
        qos = sensor_qos()
        self.create_subscription(Image, p.image_topic, self._on_image, qos)
        self.create_subscription(Image, p.depth_topic, self._on_depth, qos)
        self.create_subscription(CameraInfo, p.camera_info_topic, self._on_info, qos)
        self.create_subscription(Odometry, p.odom_topic, self._on_odom, qos)
        self.create_subscription(Image, p.pose_video_topic, self._on_pose_video, qos)
        self.create_subscription(HandKeypoints, p.hand_keypoints_topic, self._on_hand_keypoints, qos)
        self.create_subscription(TFMessage, '/tf', self._on_tf, TF_QOS)
        self.create_subscription(TFMessage, '/tf_static', self._on_tf_static, TF_STATIC_QOS)
        self._cmd_pub = self.create_publisher(Twist, p.cmd_vel_topic, QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE))
        self._sim_clients: dict[str, Any] = {name: self.create_client(Trigger, f'{p.simulator}/{name}')
                         for name in ('pause', 'resume', 'reset')}
        self._step_client: Any = self.create_client(StepFrames, f'{p.simulator}/step')
        self.create_timer(COMMAND_PERIOD_S, self._resend_command)

    def _read_parameters(self) -> ViewerParams:
        """ViewerParams from ROS parameters (ros2 run/launch), each declared with its default."""
        from dataclasses import fields

        defaults = ViewerParams()
        values: dict[str, Any] = {}
        for f in fields(ViewerParams):
            values[f.name] = self.declare_parameter(f.name, getattr(defaults, f.name)).value
        try:
            return ViewerParams(**values)
        except (TypeError, ValueError) as exc:
            raise ViewerError(f'viewer parameters: {exc}') from None

    # ---- topics -> page --------------------------------------------------------------------------------------
    def _on_info(self, msg: CameraInfo) -> None:
        K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        if K[0, 0] > 0 and K[1, 1] > 0:
            self._K = k_from_ros(K)  # the back-projection's pixel centres are at +0.5
            self._flush()

    def _on_tf(self, msg: TFMessage) -> None:
        self.tf.add(msg)
        self._flush()

    def _on_tf_static(self, msg: TFMessage) -> None:
        self.tf.add_static(msg)
        self._flush()

    def _on_odom(self, msg: Odometry) -> None:
        # odom -> base_link from Odometry too, for simulators whose TF this node does not receive
        T = conv.pose_to_matrix(msg.pose.pose)
        tf = conv.matrix_to_transform(T, conv.ns_from_stamp(msg.header.stamp), msg.header.frame_id,
                                      msg.child_frame_id)
        self._on_tf(TFMessage(transforms=[tf]))

    def _on_pose_video(self, msg: Image) -> None:
        try:
            self._pose_video = conv.image_to_rgb(msg)
        except ValueError as exc:
            self.get_logger().warning(f'pose video ignored: {exc}', throttle_duration_sec=5.0)

    def _on_hand_keypoints(self, msg: HandKeypoints) -> None:
        try:
            points, scores = conv.hand_keypoints_to_numpy(msg)
        except ValueError as exc:
            self.get_logger().warning(f'hand keypoints ignored: {exc}', throttle_duration_sec=5.0)
            return
        points[scores <= 0] = 0.0  # not seen: the viewer draws only points in front of the camera
        self._hands = conv.ns_from_stamp(msg.header.stamp), points

    def _hands_at(self, stamp_ns: int) -> np.ndarray | None:
        """The hand keypoints of a frame: the latest ones, unless older than HANDS_STALE_NS at the frame."""
        hands = self._hands
        if hands is None or stamp_ns - hands[0] > HANDS_STALE_NS:
            return None
        return hands[1]

    def _decoded(self, msg: Image, decode: Callable[[Image], np.ndarray], what: str) -> np.ndarray | None:
        """The message's pixels, or None (logged, throttled) when they cannot be read."""
        try:
            return decode(msg)
        except ValueError as exc:
            self.get_logger().warning(f'{what} ignored: {exc}', throttle_duration_sec=5.0)
            return None

    def _on_image(self, msg: Image) -> None:
        rgb = self._decoded(msg, conv.image_to_rgb, 'image')
        if rgb is None:
            return
        with self._lock:
            self._rgb[conv.ns_from_stamp(msg.header.stamp)] = (rgb, msg.header.frame_id.lstrip('/'))
        self._flush()

    def _on_depth(self, msg: Image) -> None:
        depth = self._decoded(msg, conv.image_to_depth, 'depth')
        if depth is None:
            return
        with self._lock:
            self._depth[conv.ns_from_stamp(msg.header.stamp)] = depth
        self._flush()

    def _flush(self) -> None:
        """Draw, oldest first, each frame whose image, depth, camera_info and TF chain have all arrived (the
        callbacks come in any order); at most MAX_PENDING frames wait."""
        while True:
            with self._lock:
                ready = None
                for stamp in sorted(set(self._rgb) & set(self._depth)):
                    if self._K is None:
                        break
                    pose = self.tf.lookup(self.params.odom_frame, self._rgb[stamp][1], stamp)
                    if pose is not None:
                        ready = stamp, pose
                        break
                for pending in (self._rgb, self._depth):
                    for old in sorted(pending)[:-MAX_PENDING]:
                        del pending[old]
                if ready is None:
                    return
                stamp, pose = ready
                for pending in (self._rgb, self._depth):  # older frames would be drawn out of order
                    for old in [s for s in pending if s < stamp]:
                        del pending[old]
                rgb, _ = self._rgb.pop(stamp)
                depth = self._depth.pop(stamp)
                K = self._K
                assert K is not None
            if depth.shape != rgb.shape[:2]:
                self.get_logger().warning(f'depth {depth.shape} and image {rgb.shape[:2]} differ in size: frame '
                                          'skipped', throttle_duration_sec=5.0)
                continue
            with self._show_lock:  # frames reach the page one at a time, in order
                self.viewer.show(FrameView(rgb=rgb, depth=depth, pose=pose, K=K, index=self.frames_shown + 1,
                                           sim_time=stamp / 1e9, pose_video=self._pose_video,
                                           hand_keypoints=self._hands_at(stamp)))
                self.frames_shown += 1

    # ---- page -> simulator (Controller) ----------------------------------------------------------------------
    def set_command(self, action: NavAction) -> None:
        stop = action == NavAction()
        self._command = None if stop else action  # Stop is sent once: other teleops may drive afterwards
        self._cmd_pub.publish(conv.action_to_twist(action))
        self.commands_sent += 1

    def _resend_command(self) -> None:
        if self._command is not None:
            self._cmd_pub.publish(conv.action_to_twist(self._command))
            self.commands_sent += 1

    def _call(self, client: Any, request: Any, what: str) -> str:
        if not client.service_is_ready():
            raise ViewerError(f'{what}: the service {client.srv_name} is not available (is the simulator running?)')
        future = client.call_async(request)

        def done(f: Any) -> None:
            result = f.result()
            text = getattr(result, 'message', '') or ('done' if getattr(result, 'success', False) else 'failed')
            self.viewer._say(f'{what}: {text}')

        future.add_done_callback(done)
        return f'{what}: requested'

    def pause(self) -> str:
        return self._call(self._sim_clients['pause'], Trigger.Request(), 'pause')

    def resume(self) -> str:
        return self._call(self._sim_clients['resume'], Trigger.Request(), 'resume')

    def reset(self) -> str:
        self._command = None
        return self._call(self._sim_clients['reset'], Trigger.Request(), 'reset')

    def step(self, frames: int) -> str:
        return self._call(self._step_client, StepFrames.Request(frames=frames), f'step {frames}')


def spin(node: ViewerNode) -> int:
    """Spin until SIGINT/SIGTERM, then close the page and the node."""
    import signal

    from rclpy.executors import MultiThreadedExecutor

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f'viewer: {node.viewer.url}', flush=True)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.viewer.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _init(args: list[str] | None) -> None:
    from rclpy.signals import SignalHandlerOptions

    from worldscape_ros.ros.fastdds import use_fastdds_profile

    use_fastdds_profile()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def run_viewer_node(host: str = '127.0.0.1', port: int = 8080, limits: Limits | None = None, namespace: str = '',
                    simulator: str = 'simulator') -> int:
    """`worldscape view`: the node with these settings, until SIGINT/SIGTERM."""
    lim = limits or Limits()
    params = ViewerParams(host=host, port=port, max_linear=lim.max_linear, max_angular=lim.max_angular,
                          simulator=simulator)
    _init(None)
    try:
        node = ViewerNode(params, namespace=namespace) if namespace else ViewerNode(params)
    except BaseException:
        rclpy.try_shutdown()
        raise
    return spin(node)


def main(args: list[str] | None = None) -> int:
    """`ros2 run worldscape_ros viewer` (or `viewer` from the venv): ROS parameters host, port, max_linear,
    max_angular, simulator, topic names (e.g. `--ros-args -p port:=8081`)."""
    import sys

    _init(args)
    try:
        node = ViewerNode()
    except ViewerError as exc:
        print(f'viewer: error: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    return spin(node)


if __name__ == '__main__':
    raise SystemExit(main())
