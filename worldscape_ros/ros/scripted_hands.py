"""The scripted_hands node: plays a hand plan (tools/hand_plans.py) on `hand_keypoints` for manipulation without a
hand tracker: worldscape_msgs/HandKeypoints (the MediaPipe landmarks in the camera optical frame, metres), one per
frame at the model's frame rate or in lock step with the simulator's `~/step` service.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from worldscape_ros.ros.node_main import companion_node, declare_params, described, refuse, spin_until_interrupted
from worldscape_ros.tools.hand_plans import SCRIPT_NAMES, hand_plan
from worldscape_ros.tools.msg_fields import NUM_HAND_KEYPOINTS, OPTICAL_FRAME

if TYPE_CHECKING:
    from rclpy.node import Node


@dataclass(frozen=True)
class HandsParams:
    """The node's parameters (`ros2 param describe` shows these descriptions)."""

    script: str = described('pick_and_place', f'hand script: {", ".join(SCRIPT_NAMES)}')
    frames: int = described(60, 'frames the script spans')
    fps: float = described(10.0, 'publishing rate, Hz')
    handedness: str = described('', "'left', 'right', or '' for the script's own hand")
    scene_seed: int = described(0, "seed of the table scene the hand acts in (the simulator's start_seed)")
    loop: bool = described(False, 'start over after the last frame')
    wait: float = described(10.0, 's to wait for a subscriber (the simulator) before playing; 0 = play at once')
    frame_id: str = described(OPTICAL_FRAME, 'the optical frame the keypoints are in')


def planned_hand(params: HandsParams) -> tuple[np.ndarray, str]:
    """The keypoint trajectory (frames, 21, 3) and the hand that plays it; ValueError names a bad parameter."""
    if not (params.fps > 0):
        raise ValueError(f'fps must be positive, got {params.fps}')
    return hand_plan(params.script, params.frames, params.scene_seed, params.handedness or None)


class HandScriptPlayer:
    """Plays the trajectory on `hand_keypoints`, a frame per tick, once a subscriber listens (or `wait` has
    passed); after the last frame it starts over (`loop`) or ends the node with SystemExit(0)."""

    def __init__(self, node: Node, params: HandsParams, trajectory: np.ndarray, handedness: str) -> None:
        from worldscape_msgs.msg import HandKeypoints

        self.node = node
        self.params = params
        self.trajectory = trajectory
        self.handedness = handedness
        self._message = HandKeypoints
        self._pub = node.create_publisher(HandKeypoints, 'hand_keypoints', 10)
        self._next = 0
        self._started = time.monotonic()

    def tick(self) -> None:
        if (self._next == 0 and self._pub.get_subscription_count() == 0
                and time.monotonic() - self._started < self.params.wait):
            return  # nobody listens yet: do not play the script into the void
        k = self._next
        if k >= len(self.trajectory):
            if not self.params.loop:
                self.node.get_logger().info(f'hand script {self.params.script} done ({len(self.trajectory)} frames)')
                raise SystemExit(0)
            k = 0
        self._pub.publish(self.message(k))
        self._next = k + 1

    def message(self, k: int) -> Any:
        """Frame k of the trajectory as HandKeypoints, stamped now, every landmark scored 1."""
        msg = self._message()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = self.params.frame_id
        msg.handedness = self.handedness
        for point, xyz in zip(msg.points, self.trajectory[k]):
            point.x, point.y, point.z = (float(v) for v in xyz)
        msg.scores = [1.0] * NUM_HAND_KEYPOINTS
        return msg


def main(argv: list[str] | None = None) -> int:
    """Node: publish a hand script on `hand_keypoints`, paced at `fps` or in lock step with `~/step`."""
    with companion_node('scripted_hands', argv) as node:
        params = declare_params(node, HandsParams)
        try:
            trajectory, handedness = planned_hand(params)
        except ValueError as exc:
            return refuse(node, exc)
        player = HandScriptPlayer(node, params, trajectory, handedness)
        node.create_timer(1.0 / params.fps, player.tick)
        spin_until_interrupted(node, SystemExit)
    return 0


if __name__ == '__main__':
    sys.exit(main())
