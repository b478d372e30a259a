"""Scripted hands: reach / grasp / carry / place trajectories are real hands, and the node plays them."""

import subprocess
import sys
import time

import numpy as np
import pytest

from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.ros.scripted_hands import OBJECT, REST, SCRIPTS, TARGET, hand_states, hand_trajectory
from worldscape_ros.synthetic.hand import HAND_CONNECTIONS, bone_lengths


@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_every_script_keeps_bone_lengths_and_stays_in_view(script):
    traj = hand_trajectory(script, 30)
    assert traj.shape == (30, 21, 3)
    bones = np.linalg.norm(traj[:, [b for _, b in HAND_CONNECTIONS]] - traj[:, [a for a, _ in HAND_CONNECTIONS]],
                           axis=-1)
    np.testing.assert_allclose(bones, np.broadcast_to(bone_lengths(), bones.shape), atol=1e-9)
    K = intrinsics_from_fov(128, 96, 60.0)
    uv = traj @ K.T
    uv = uv[..., :2] / uv[..., 2:]
    assert (traj[..., 2] > 0.2).all()
    assert (uv >= 0).all() and (uv[..., 0] <= 128).all() and (uv[..., 1] <= 96).all()


def test_pick_and_place_reaches_grasps_carries_places_and_returns():
    states = hand_states('pick_and_place', 100)
    curls = np.array([s.curl for s in states])
    wrists = np.array([s.wrist for s in states])
    closest_to_object = int(np.argmin(np.linalg.norm(wrists - OBJECT, axis=1)))
    assert curls[closest_to_object] < 0.2  # arrives open
    assert curls.max() == pytest.approx(1.0)  # grasps
    closed = np.flatnonzero(curls > 0.99)
    assert np.linalg.norm(wrists[closed[-1]] - TARGET) < 0.02  # carried to the target while closed
    assert curls[-1] == pytest.approx(0.0) and np.allclose(wrists[-1], REST)  # released, back to rest
    assert np.linalg.norm(np.diff(wrists, axis=0), axis=1).max() < 0.04  # no jumps: under 4 cm a frame


def test_left_hand_is_the_mirror_image():
    right = hand_trajectory('reach', 5, handedness='right')
    left = hand_trajectory('reach', 5, handedness='left')
    np.testing.assert_allclose(left[..., 0], -right[..., 0], atol=1e-12)
    np.testing.assert_allclose(left[..., 1:], right[..., 1:], atol=1e-12)


def test_bad_script_arguments_are_named():
    with pytest.raises(ValueError, match='unknown hand script'):
        hand_trajectory('juggle', 10)
    with pytest.raises(ValueError, match='frames must be'):
        hand_trajectory('reach', 0)
    with pytest.raises(ValueError, match='handedness'):
        hand_trajectory('reach', 3, handedness='both')


@pytest.mark.ros
def test_node_publishes_the_trajectory_in_order():
    rclpy = pytest.importorskip('rclpy')
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
    expected = hand_trajectory('grasp', 12)
    assert 1 <= len(got) <= 12
    # late joiners miss the first frames; what arrived is the tail of the trajectory, in order
    pts = np.array([[(p.x, p.y, p.z) for p in m.points] for m in got])
    np.testing.assert_allclose(pts, expected[12 - len(got):], atol=1e-9)
    assert got[-1].handedness == 'right' and got[-1].header.frame_id == 'camera_optical_frame'
