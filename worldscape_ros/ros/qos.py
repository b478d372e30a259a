"""QoS of the simulator's topics, and TF broadcasting (whose contract is a QoS: /tf_static is transient-local).

TF goes through tf2_ros when it is importable (a real ROS install); otherwise (the PyPI wheels have no tf2_ros)
through plain TFMessage publishers with the QoS tf2_ros uses, so listeners cannot tell the difference.
"""

from __future__ import annotations

from collections.abc import Iterable

from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


# Reliable keeps rviz and recorders (which default to reliable) matched; a short history drops old frames
# instead of queueing them when a subscriber falls behind.
def sensor_qos(depth: int = 5) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)
DIAGNOSTICS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


class TfBroadcaster:
    """Dynamic transforms on /tf."""

    def __init__(self, node: Node) -> None:
        self._node = node
        try:
            import tf2_ros

            self._impl = tf2_ros.TransformBroadcaster(node, qos=TF_QOS)
            self._pub = None
        except ImportError:
            from tf2_msgs.msg import TFMessage

            self._impl = None
            self._pub = node.create_publisher(TFMessage, '/tf', TF_QOS)

    def send(self, transforms: Iterable[TransformStamped]) -> None:
        tfs = list(transforms)
        if self._impl is not None:
            self._impl.sendTransform(tfs)
        else:
            from tf2_msgs.msg import TFMessage

            assert self._pub is not None
            self._pub.publish(TFMessage(transforms=tfs))

    def destroy(self) -> None:
        if self._pub is not None:
            self._node.destroy_publisher(self._pub)
            self._pub = None


class StaticTfBroadcaster:
    """Static transforms on /tf_static, latched: late subscribers get every static transform sent so far."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._latched: dict[str, TransformStamped] = {}  # child frame -> transform, as tf2_ros keeps them
        try:
            import tf2_ros

            self._impl = tf2_ros.StaticTransformBroadcaster(node, qos=TF_STATIC_QOS)
            self._pub = None
        except ImportError:
            from tf2_msgs.msg import TFMessage

            self._impl = None
            self._pub = node.create_publisher(TFMessage, '/tf_static', TF_STATIC_QOS)

    def send(self, transforms: Iterable[TransformStamped]) -> None:
        tfs = list(transforms)
        if self._impl is not None:
            self._impl.sendTransform(tfs)
            return
        from tf2_msgs.msg import TFMessage

        for tf in tfs:
            self._latched[tf.child_frame_id] = tf
        assert self._pub is not None
        self._pub.publish(TFMessage(transforms=list(self._latched.values())))

    def destroy(self) -> None:
        if self._pub is not None:
            self._node.destroy_publisher(self._pub)
            self._pub = None
