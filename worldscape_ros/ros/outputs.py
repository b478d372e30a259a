"""The simulator's per-frame outputs: colour and depth images with their camera info, odometry, /clock, the
odom -> base_link transform, the camera mount on /tf_static, and (in manipulation) the hand pose video.
Topics and frames: docs/ros_interface.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image

from worldscape_ros.model.kinematics import BaseState, NavAction, base_pose
from worldscape_ros.ros import conversions as conv
from worldscape_ros.ros.params import SimulatorParams
from worldscape_ros.ros.qos import CLOCK_QOS, StaticTfBroadcaster, TfBroadcaster, sensor_qos
from worldscape_ros.tools.msg_fields import camera_mount

if TYPE_CHECKING:
    from worldscape_ros.model.engine import Frame


class FrameOutputs:
    """The publishers and TF broadcasters of one configuration of the node."""

    def __init__(self, node: Node, p: SimulatorParams) -> None:
        self._node = node
        self._params = p
        q = sensor_qos(p.qos_depth)
        self._image = node.create_publisher(Image, p.image_topic, q)
        self._info = node.create_publisher(CameraInfo, p.camera_info_topic, q)
        self._depth = node.create_publisher(Image, p.depth_topic, q)
        self._depth_info = node.create_publisher(CameraInfo, p.depth_info_topic, q)
        self._odom = node.create_publisher(Odometry, p.odom_topic, q)
        self._clock = node.create_publisher(Clock, '/clock', CLOCK_QOS) if p.publish_clock else None
        self._pose_video = (node.create_publisher(Image, p.pose_video_topic, q)
                            if p.mode == 'manipulation' else None)
        self._tf: TfBroadcaster | None = TfBroadcaster(node) if p.publish_tf else None
        self._tf_static: StaticTfBroadcaster | None = StaticTfBroadcaster(node) if p.publish_tf else None
        self._static_mount: tuple[float, float] | None = None  # (pitch, height) last sent on /tf_static

    def publish(self, frame: Frame, state: BaseState, twist: NavAction, stamp: int, K: np.ndarray, width: int,
                height: int) -> None:
        """One frame at sim time `stamp` (ns): the base at `state` moving with `twist`, seen through `K`."""
        p = self._params
        if self._clock is not None:
            self._clock.publish(Clock(clock=conv.stamp_from_ns(stamp)))
        if self._tf is not None:
            self._tf.send([conv.matrix_to_transform(base_pose(state), stamp, p.odom_frame, p.base_frame)])
            if self._static_mount != (state.pitch, state.height):
                self.publish_mount(state, stamp)  # the mount changed (pitch commands, a reset at another height)
        self._odom.publish(conv.odometry(state, twist, stamp, p.odom_frame, p.base_frame))
        self._image.publish(conv.rgb_to_image(frame.rgb, stamp, p.camera_frame))
        self._info.publish(conv.camera_info(K, width, height, stamp, p.camera_frame))
        self._depth.publish(conv.depth_to_image(frame.depth, stamp, p.camera_frame))
        self._depth_info.publish(conv.camera_info(K, width, height, stamp, p.camera_frame))
        if self._pose_video is not None and frame.pose_video is not None:
            self._pose_video.publish(conv.rgb_to_image(frame.pose_video, stamp, p.camera_frame))

    def publish_mount(self, state: BaseState, stamp: int) -> None:
        """base_link -> camera_link -> the optical frame on /tf_static."""
        if self._tf_static is None:
            return
        p = self._params
        mount = camera_mount(state, p.base_frame, p.camera_link_frame, p.camera_frame)
        self._tf_static.send([conv.matrix_to_transform(T, stamp, parent, child) for T, parent, child in mount])
        self._static_mount = (state.pitch, state.height)

    def destroy(self) -> None:
        for pub in (self._image, self._info, self._depth, self._depth_info, self._odom, self._clock,
                    self._pose_video):
            if pub is not None:
                self._node.destroy_publisher(pub)
        for tf in (self._tf, self._tf_static):
            if tf is not None:
                tf.destroy()
        self._tf = self._tf_static = None
