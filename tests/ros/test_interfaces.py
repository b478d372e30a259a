"""The generated interface package works through real rclpy."""

import threading

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from worldscape_msgs.msg import HandKeypoints


def test_hand_keypoints_round_trip_through_rclpy():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('interface_probe', context=context)
        received: list[HandKeypoints] = []
        got = threading.Event()

        def on_msg(msg: HandKeypoints) -> None:
            received.append(msg)
            got.set()

        node.create_subscription(HandKeypoints, 'hand_keypoints', on_msg, 10)
        pub = node.create_publisher(HandKeypoints, 'hand_keypoints', 10)
        msg = HandKeypoints()
        msg.header.frame_id = 'camera_optical_frame'
        msg.handedness = 'right'
        for i, p in enumerate(msg.points):
            p.x, p.y, p.z = 0.01 * i, -0.02 * i, 0.5 + 0.001 * i
        msg.scores = [1.0 - 0.01 * i for i in range(21)]
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        for _ in range(100):
            pub.publish(msg)
            executor.spin_once(timeout_sec=0.05)
            if got.is_set():
                break
        executor.shutdown()
        assert received, 'no HandKeypoints message arrived'
        out = received[0]
        assert out.handedness == 'right'
        assert out.header.frame_id == 'camera_optical_frame'
        assert len(out.points) == 21
        assert out.points[20].z == pytest.approx(0.52)
        assert list(out.scores) == pytest.approx([1.0 - 0.01 * i for i in range(21)])
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)

