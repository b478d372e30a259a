"""The scripted_hands node plays a hand plan on hand_keypoints, in order."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from worldscape_ros.tools.hand_plans import hand_plan


@pytest.fixture(autouse=True)
def private_ros_domain(monkeypatch):
    """A DDS domain of this test process alone: other test runs on the machine publish on the shared ones."""
    monkeypatch.setenv('ROS_DOMAIN_ID', str(100 + os.getpid() % 120))


@pytest.mark.ros
def test_node_publishes_the_trajectory_in_order():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from worldscape_msgs.msg import HandKeypoints

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('hands_probe', context=context)
    got = []
    node.create_subscription(HandKeypoints, 'hand_keypoints', got.append, 50)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    proc = subprocess.Popen([sys.executable, '-m', 'worldscape_ros.ros.scripted_hands', '--ros-args', '-p',
                             'script:=grasp', '-p', 'frames:=12', '-p', 'fps:=20.0'], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        for _ in range(10):
            executor.spin_once(timeout_sec=0.02)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    expected, handedness = hand_plan('grasp', 12)
    assert len(got) == 12  # the node waits for a subscriber before it plays
    pts = np.array([[(p.x, p.y, p.z) for p in m.points] for m in got])
    np.testing.assert_allclose(pts, expected, atol=1e-9)
    assert got[-1].handedness == handedness and got[-1].header.frame_id == 'camera_optical_frame'
