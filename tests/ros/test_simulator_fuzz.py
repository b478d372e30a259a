"""A bounded fuzz of a running simulator (issue 19): random messages of the right types, with values from
sensible to absurd (NaN, inf, 1e308, garbage strings, wrong frames), thrown at every input topic and at
~/reset_from_image while the node generates flat out. It must still be active and publishing afterwards.

The figures (inputs per second, images before, during and after) are printed: run with `-s` to see them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist
from lifecycle_msgs.msg import State
from sensor_msgs.msg import Image
from sim_harness import TIMEOUT, Harness
from worldscape_msgs.msg import HandKeypoints
from worldscape_msgs.srv import ResetFromImage

from worldscape_ros.ros import conversions as conv

FUZZ_SECONDS = 3.0
ABSURD = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 1e30, -1e30, 5e-324, 0.0, -0.0])
FRAMES = ['odom', '', 'map', 'camera_optical_frame', '\x00garbage☃', 'x' * 300]
HANDEDNESS = ['left', 'right', '', '\x00garbage☃', 'LEFT']


class Values:
    """Random floats: mostly plausible, often extreme."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, n: int) -> list[float]:
        plausible = self.rng.normal(0.0, 1.0, n)
        extreme = self.rng.choice(ABSURD, n)
        huge = self.rng.normal(0.0, 1.0, n) * 10.0 ** self.rng.uniform(0, 40, n)
        pick = self.rng.integers(0, 3, n)
        return [float(v) for v in np.choose(pick, [plausible, extreme, huge])]

    def choice(self, options: list[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]


def random_twist(v: Values) -> Twist:
    t = Twist()
    t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z = v(6)
    return t


def random_pose(v: Values) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = v.choice(FRAMES)
    p, o = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = v(3)
    q = v(4)
    if v.rng.random() < 0.5:  # a unit quaternion half the time, so some poses get as far as the range check
        q = list(v.rng.normal(size=4) / np.linalg.norm(v.rng.normal(size=4)))
        q = [x / float(np.linalg.norm(q)) for x in q]
    o.x, o.y, o.z, o.w = q
    return msg


def random_hands(v: Values) -> HandKeypoints:
    msg = HandKeypoints()
    msg.header.frame_id = v.choice(FRAMES)
    msg.handedness = v.choice(HANDEDNESS)
    xyz = v(63)
    for i, p in enumerate(msg.points):
        p.x, p.y, p.z = xyz[3 * i:3 * i + 3]
    msg.scores = [float(np.clip(np.nan_to_num(s), -1, 2)) for s in v(21)]
    return msg


def random_start(v: Values, height: int, width: int) -> ResetFromImage.Request:
    request = ResetFromImage.Request()
    h, w = v.choice([(height, width), (height, width), (3, 4)])
    request.image = conv.numpy_to_image(v.rng.integers(0, 255, (h, w, 3), dtype=np.uint8), 'rgb8', 0, 'c')
    with np.errstate(over='ignore'):  # values beyond float32 become inf, which is fair input too
        depth = np.asarray(v(h * w)).astype(np.float32).reshape(h, w)
    request.depth = conv.depth_to_image(depth, 0, 'c')
    request.camera_info.width, request.camera_info.height = width, height
    request.camera_info.k = v(9)
    p = request.pose.position
    p.x, p.y, p.z = v(3)
    request.pose.orientation.w = 1.0
    return request


def test_random_messages_at_every_input_leave_the_node_active_and_publishing():
    h = Harness({'mode': 'manipulation', 'start_paused': False, 'realtime': False})
    try:
        h.start()
        images = h.subscribe(Image, 'camera/image_raw', qos=1000)
        images.wait_for(3)
        t0 = time.monotonic()
        time.sleep(1.0)
        before_rate = len(images.msgs) / (time.monotonic() - t0)

        v = Values(seed=19)
        pubs = {name: h.probe.create_publisher(kind, name, 10)
                for name, kind in (('cmd_vel', Twist), ('camera_pose', PoseStamped),
                                   ('hand_keypoints', HandKeypoints))}
        makers = {'cmd_vel': random_twist, 'camera_pose': random_pose, 'hand_keypoints': random_hands}
        client = h.probe.create_client(ResetFromImage, '/simulator/reset_from_image')
        assert client.wait_for_service(timeout_sec=TIMEOUT)
        cfg = h.node.engine.config
        received0 = sum(h.node.inputs_received.values())
        images_at_start = len(images.msgs)
        sent, calls, futures = 0, 0, []
        start = time.monotonic()
        while time.monotonic() - start < FUZZ_SECONDS:
            name = v.choice(list(makers))
            pubs[name].publish(makers[name](v))
            sent += 1
            if sent % 200 == 0:
                futures.append(client.call_async(random_start(v, cfg.height, cfg.width)))
                calls += 1
        duration = time.monotonic() - start
        images_during = len(images.msgs) - images_at_start
        deadline = time.monotonic() + TIMEOUT
        while not all(f.done() for f in futures):
            assert time.monotonic() < deadline, 'reset_from_image calls went unanswered'
            time.sleep(0.05)
        received = sum(h.node.inputs_received.values()) - received0

        after_start = len(images.msgs)
        images.wait_for(after_start + 5)  # still publishing
        t1 = time.monotonic()
        time.sleep(1.0)
        after_rate = (len(images.msgs) - after_start) / (time.monotonic() - t1)
        print(f'\nfuzz: {sent} messages ({sent / duration:.0f}/s) and {calls} reset_from_image calls in '
              f'{duration:.1f} s; the node took in {received}; rejected {h.node.rejected_inputs}, failed steps '
              f'{h.node._supervisor.failed_steps}; images/s {before_rate:.1f} before, '
              f'{images_during / duration:.1f} during, {after_rate:.1f} after; images in all {len(images.msgs)}')
        assert h.node._state_machine.current_state[0] == State.PRIMARY_STATE_ACTIVE
        assert not h.node._fault
        assert received > 0 and h.node.rejected_inputs > 0
        assert all(f.result() is not None for f in futures)
        assert np.all(np.abs([h.node.engine.state.x, h.node.engine.state.y]) <= h.node.params.max_position)
    finally:
        h.close()
