"""The scripted_hands node: plays a hand plan (tools/hand_plans.py) on `hand_keypoints` for manipulation without a
hand tracker: worldscape_msgs/HandKeypoints (the MediaPipe landmarks in the camera optical frame, metres), one per
frame at the model's frame rate or in lock step with the simulator's `~/step` service.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from worldscape_ros.tools.hand_plans import SCRIPT_NAMES, hand_plan
from worldscape_ros.tools.msg_fields import NUM_HAND_KEYPOINTS, OPTICAL_FRAME


def main(argv: list[str] | None = None) -> int:
    """Node: publish a hand script on `hand_keypoints`, paced at `fps` or in lock step with `~/step`."""
    import rclpy
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.node import Node
    from worldscape_msgs.msg import HandKeypoints

    rclpy.init(args=argv)
    node = Node('scripted_hands')
    p: dict[str, Any] = {
        'script': node.declare_parameter('script', 'pick_and_place', ParameterDescriptor(
            description=f'hand script: {", ".join(SCRIPT_NAMES)}')).value,
        'frames': node.declare_parameter('frames', 60, ParameterDescriptor(
            description='frames the script spans')).value,
        'fps': node.declare_parameter('fps', 10.0, ParameterDescriptor(description='publishing rate, Hz')).value,
        'handedness': node.declare_parameter('handedness', '', ParameterDescriptor(
            description="'left', 'right', or '' for the script's own hand")).value,
        'scene_seed': node.declare_parameter('scene_seed', 0, ParameterDescriptor(
            description="seed of the table scene the hand acts in (the simulator's start_seed)")).value,
        'loop': node.declare_parameter('loop', False, ParameterDescriptor(
            description='start over after the last frame')).value,
        'wait': node.declare_parameter('wait', 10.0, ParameterDescriptor(
            description='s to wait for a subscriber (the simulator) before playing; 0 = play at once')).value,
        'frame_id': node.declare_parameter('frame_id', OPTICAL_FRAME, ParameterDescriptor(
            description='the optical frame the keypoints are in')).value,
    }
    try:
        if not (float(p['fps']) > 0):
            raise ValueError(f'fps must be positive, got {p["fps"]}')
        trajectory, handedness = hand_plan(str(p['script']), int(p['frames']), int(p['scene_seed']),
                                           str(p['handedness']) or None)
    except ValueError as exc:
        node.get_logger().error(str(exc))
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    pub = node.create_publisher(HandKeypoints, 'hand_keypoints', 10)
    state = {'k': 0}
    started = time.monotonic()

    def tick() -> None:
        if state['k'] == 0 and pub.get_subscription_count() == 0 and time.monotonic() - started < float(p['wait']):
            return  # nobody listens yet: do not play the script into the void
        k = state['k']
        if k >= len(trajectory):
            if not p['loop']:
                node.get_logger().info(f'hand script {p["script"]} done ({len(trajectory)} frames)')
                raise SystemExit(0)
            k = 0
        msg = HandKeypoints()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = str(p['frame_id'])
        msg.handedness = handedness
        for point, xyz in zip(msg.points, trajectory[k]):
            point.x, point.y, point.z = (float(v) for v in xyz)
        msg.scores = [1.0] * NUM_HAND_KEYPOINTS
        pub.publish(msg)
        state['k'] = k + 1

    node.create_timer(1.0 / float(p['fps']), tick)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
