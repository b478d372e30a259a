"""The simulator's input topics: cmd_vel, camera_pose and hand_keypoints, each checked where it enters (a working
range for poses, velocity limits, ranges for hands) and left in the latest-wins inbox; what is refused is counted
and said once per warning period, and the previous command holds. Topics: docs/ros_interface.md."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from geometry_msgs.msg import PoseStamped, Twist
from rclpy.node import Node
from worldscape_msgs.msg import HandKeypoints

from worldscape_ros.ros import conversions as conv
from worldscape_ros.ros.inbox import CommandInbox, Throttle
from worldscape_ros.ros.motion import check_working_range, clamp_action
from worldscape_ros.ros.params import SimulatorParams
from worldscape_ros.ros.sim_clock import SimClock


@dataclass
class InputCounts:
    """Over the node's life: messages received per input topic, accepted or not (tests sync on them), and inputs
    refused (for /diagnostics)."""

    received: Counter[str] = field(default_factory=Counter)
    rejected: int = 0


class CommandInputs:
    """The input subscriptions of one configuration of the node."""

    def __init__(self, node: Node, p: SimulatorParams, inbox: CommandInbox, clock: SimClock, warn: Throttle,
                 counts: InputCounts) -> None:
        self._node = node
        self._logger = node.get_logger()
        self._params = p
        self._inbox = inbox
        self._clock = clock
        self._warn = warn
        self._counts = counts
        self._subscriptions = [
            node.create_subscription(Twist, p.cmd_vel_topic, self.on_cmd_vel, 10),
            node.create_subscription(PoseStamped, p.camera_pose_topic, self.on_camera_pose, 10),
            node.create_subscription(HandKeypoints, p.hand_keypoints_topic, self.on_hand_keypoints, 10),
        ]

    def destroy(self) -> None:
        for sub in self._subscriptions:
            self._node.destroy_subscription(sub)
        self._subscriptions = []

    def _reject(self, what: str, reason: str) -> None:
        self._counts.rejected += 1
        if self._warn(f'reject {what}'):
            self._logger.warning(f'ignored {what}: {reason} (keeping the previous command)')

    def on_cmd_vel(self, msg: Twist) -> None:
        self._counts.received['cmd_vel'] += 1
        try:
            action = conv.twist_to_action(msg)
        except ValueError as exc:
            self._reject('cmd_vel', str(exc))
            return
        p = self._params
        applied, clamped = clamp_action(action, p.max_linear_velocity, p.max_angular_velocity)
        if clamped and self._warn('clamp cmd_vel'):
            self._logger.warning(f'cmd_vel {conv.format_action(action)} clamped to {conv.format_action(applied)} '
                                 f'(max_linear_velocity={p.max_linear_velocity:g} m/s, '
                                 f'max_angular_velocity={p.max_angular_velocity:g} rad/s)')
        self._inbox.set_twist(applied, self._clock.now_ns)

    def on_camera_pose(self, msg: PoseStamped) -> None:
        self._counts.received['camera_pose'] += 1
        odom_frame = self._params.odom_frame
        if msg.header.frame_id not in ('', odom_frame):
            self._reject('camera_pose', f'header.frame_id must be {odom_frame!r}, got {msg.header.frame_id!r}')
            return
        try:
            c2w = conv.pose_to_matrix(msg.pose, 'camera_pose.pose')
            check_working_range(c2w, self._params.max_position, 'camera_pose.pose')
        except ValueError as exc:
            self._reject('camera_pose', str(exc))
            return
        self._inbox.set_pose(c2w, self._clock.now_ns)

    def on_hand_keypoints(self, msg: HandKeypoints) -> None:
        self._counts.received['hand_keypoints'] += 1
        if self._params.mode != 'manipulation':
            if self._warn('hands in navigation'):
                self._logger.warning('hand keypoints ignored: mode is navigation (set mode: manipulation)')
            return
        try:
            points, _scores = conv.hand_keypoints_to_numpy(msg, self._params.camera_frame)
        except ValueError as exc:
            self._reject('hand keypoints', str(exc))
            return
        self._inbox.set_hands(points, self._clock.now_ns)
