"""The viewer's ROS 2 node beside a real simulator node (in-process, random ws-tiny, paused): it draws each
published frame at the pose of the TF chain, its Forward button publishes cmd_vel that the simulator applies, and
its Step button calls the simulator's ~/step service."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sim_harness import Harness

from worldscape_ros.model.kinematics import camera_pose
from worldscape_ros.ros.viewer_node import ViewerNode, ViewerParams


@pytest.fixture
def sim_and_viewer(request):
    sim = Harness(getattr(request, 'param', None))
    sim.start()
    node = ViewerNode(ViewerParams(port=0), context=sim.context)
    sim.executor.add_node(node)
    try:
        assert node._step_client.wait_for_service(timeout_sec=30.0)
        deadline = time.monotonic() + 30.0
        while sim.node.count_subscribers('/camera/image_raw') < 1 or node.count_publishers('/cmd_vel') < 1:
            assert time.monotonic() < deadline, 'the viewer node never matched the simulator'
            time.sleep(0.02)
        time.sleep(0.2)  # /tf_static (transient local) reaches the late subscriber
        yield sim, node
    finally:
        sim.executor.remove_node(node)
        node.viewer.close()
        node.destroy_node()
        sim.close()


def wait_until(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.02)


def test_the_node_draws_each_published_frame_at_the_camera_pose_of_the_tf_chain(sim_and_viewer):
    sim, node = sim_and_viewer
    sim.step(2)
    wait_until(lambda: node.frames_shown == 2, 'two frames drawn')
    latest = node.viewer._latest
    assert latest is not None
    np.testing.assert_allclose(latest.pose, camera_pose(sim.node.engine.state), atol=1e-6)
    np.testing.assert_allclose(latest.K, sim.node.engine.intrinsics)
    assert latest.rgb.shape == (96, 128, 3) and latest.depth.shape == (96, 128)


def test_forward_in_the_page_publishes_cmd_vel_that_moves_the_simulated_camera(sim_and_viewer):
    sim, node = sim_and_viewer
    sim.step(1)
    wait_until(lambda: node.frames_shown == 1, 'the first frame')
    before = node.viewer._latest.pose.copy()
    received = sim.node.inputs_received['cmd_vel']
    node.viewer._on_drive('Forward')  # what the page's button calls
    wait_until(lambda: sim.node.inputs_received['cmd_vel'] > received, 'cmd_vel at the simulator')
    node.viewer._on_step()  # the page's Step button: the simulator's ~/step service
    wait_until(lambda: node.frames_shown == 2, 'the stepped frame drawn')
    moved = float((node.viewer._latest.pose[:3, 3] - before[:3, 3]) @ before[:3, 2])
    assert moved == pytest.approx(node.viewer.drive.linear / 10.0, abs=1e-4)
    wait_until(lambda: 'step 1: ' in node.viewer.message and 'requested' not in node.viewer.message,
               'the service answer in the page')


def test_a_service_that_is_not_there_is_said_in_the_page(sim_and_viewer):
    sim, node = sim_and_viewer
    other = ViewerNode(ViewerParams(port=0, simulator='no_such_simulator'), context=sim.context)
    try:
        other.viewer._on_pause()
        assert 'no_such_simulator/pause is not available' in other.viewer.message
    finally:
        other.viewer.close()
        other.destroy_node()


@pytest.mark.parametrize('sim_and_viewer', [{'mode': 'manipulation'}], indirect=True)
def test_in_manipulation_the_node_draws_the_hand_keypoints_and_the_pose_video(sim_and_viewer):
    from worldscape_msgs.msg import HandKeypoints

    sim, node = sim_and_viewer
    msg = HandKeypoints()
    msg.header.frame_id = 'camera_optical_frame'
    msg.handedness = 'right'
    for i, p in enumerate(msg.points):
        p.x, p.y, p.z = 0.01 * (i % 5) - 0.02, 0.01 * (i // 5) - 0.02, 0.5
    msg.scores = [1.0] * 20 + [0.0]  # the last point not seen
    sim.publish(HandKeypoints, 'hand_keypoints', msg, 'hand_keypoints')
    deadline = time.monotonic() + 10.0
    while node._hands is None:  # the viewer's own subscription, beside the simulator's
        assert time.monotonic() < deadline, 'the viewer never received the hand keypoints'
        time.sleep(0.02)
    sim.step(1)
    wait_until(lambda: node.frames_shown == 1 and node._pose_video is not None, 'the frame with its pose video')
    drawn = node.viewer._latest
    assert drawn.hand_keypoints is not None
    assert drawn.hand_keypoints[0, 2] == pytest.approx(0.5) and drawn.hand_keypoints[20, 2] == 0.0
