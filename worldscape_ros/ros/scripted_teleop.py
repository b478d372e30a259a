"""Scripted teleop: play an action script (and its hand keypoints) into the simulator node.

Two ways to drive:
  - lock step (default): pause the simulator, then per frame publish the Twist (and HandKeypoints) and call
    `~/step` for one frame, so every generated frame has exactly its scripted action whatever the machine's
    speed; the rollout is then frame for frame the one `worldscape rollout` makes offline with the same start,
    seed and script (the engine is deterministic);
  - timed (`lockstep: false`): publish at the script's rate while the simulator runs on its own clock.

The script is an actions FILE (tools.scripts: .csv/.txt/.npy or a .yaml/.json tour) or a named navigation
script with a frame count. Parameters: see `TeleopParams` below (`ros2 param describe` lists them).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from worldscape_ros.ros.node_main import (
    EXIT_INTERRUPTED,
    companion_node,
    declare_params,
    described,
    node_executor,
    refuse,
)
from worldscape_ros.tools.msg_fields import NUM_HAND_KEYPOINTS, OPTICAL_FRAME
from worldscape_ros.tools.scripts import ActionScript, load_script, nav_script

if TYPE_CHECKING:
    from rclpy.executors import Executor
    from rclpy.node import Node


def script_from_params(actions: str, script: str, frames: int, fps: float, hands: str,
                       scene_seed: int = 0) -> ActionScript:
    """The action script a node's parameters describe (an actions file wins over a named script)."""
    if actions:
        loaded = load_script(actions, fps, scene_seed)
    else:
        if frames < 1:
            raise ValueError(f'frames must be >= 1 for a named script, got {frames}')
        loaded = ActionScript(nav_script(script, frames, fps))
    if hands and loaded.hands is None:
        from worldscape_ros.tools.hand_plans import hand_plan

        points, handedness = hand_plan(hands, len(loaded), scene_seed)
        loaded = ActionScript(loaded.actions, points, handedness)
    return loaded


class ScriptPlayer:
    """Plays an ActionScript through a node's publishers and the simulator's services."""

    def __init__(self, node: Any, script: ActionScript, simulator: str, settle_s: float = 0.05) -> None:
        from geometry_msgs.msg import Twist
        from std_srvs.srv import Trigger
        from worldscape_msgs.msg import HandKeypoints
        from worldscape_msgs.srv import StepFrames

        self.node = node
        self.script = script
        self.settle_s = settle_s
        self._Twist, self._HandKeypoints = Twist, HandKeypoints
        self.cmd_pub = node.create_publisher(Twist, 'cmd_vel', 10)
        self.hands_pub = node.create_publisher(HandKeypoints, 'hand_keypoints', 10)
        sim = simulator.rstrip('/')
        self.pause = node.create_client(Trigger, f'{sim}/pause')
        self.resume = node.create_client(Trigger, f'{sim}/resume')
        self.step = node.create_client(StepFrames, f'{sim}/step')
        self._StepFrames, self._Trigger = StepFrames, Trigger
        self.frames_played = 0

    def publish(self, i: int) -> None:
        a = self.script.actions[i]
        msg = self._Twist()
        msg.linear.x, msg.linear.y, msg.linear.z = float(a[0]), float(a[1]), float(a[2])
        msg.angular.z, msg.angular.y = float(a[3]), float(a[4])
        self.cmd_pub.publish(msg)
        if self.script.hands is not None:
            kp = self._HandKeypoints()
            kp.header.stamp = self.node.get_clock().now().to_msg()
            kp.header.frame_id = OPTICAL_FRAME
            kp.handedness = self.script.handedness
            for point, xyz in zip(kp.points, self.script.hands[i]):
                point.x, point.y, point.z = (float(v) for v in xyz)
            kp.scores = [1.0] * NUM_HAND_KEYPOINTS
            self.hands_pub.publish(kp)

    def stop(self) -> None:
        self.cmd_pub.publish(self._Twist())

    def _call(self, executor: Any, client: Any, request: Any, timeout: float) -> Any:
        import rclpy

        future = client.call_async(request)
        rclpy.spin_until_future_complete(self.node, future, executor=executor, timeout_sec=timeout)
        if not future.done():
            raise TimeoutError(f'service {client.srv_name} did not answer within {timeout} s')
        return future.result()

    def wait_for_simulator(self, timeout: float, listeners: int = 1) -> None:
        """Wait for the simulator's services, then until `listeners` subscriptions (the simulator's, and e.g. a
        recorder's) are matched to each command publisher: a command published before that is not received."""
        deadline = time.monotonic() + timeout
        for client in (self.pause, self.step):
            if not client.wait_for_service(timeout_sec=max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f'service {client.srv_name} is not available after {timeout} s '
                                   '(is the simulator node running and active?)')
        pubs = [self.cmd_pub] + ([self.hands_pub] if self.script.hands is not None else [])
        for pub in pubs:
            while pub.get_subscription_count() < listeners:
                if time.monotonic() > deadline:
                    raise TimeoutError(f'{pub.topic_name} has {pub.get_subscription_count()} matched '
                                       f'subscription(s) after {timeout} s, waiting for {listeners}')
                time.sleep(0.01)

    def play_lockstep(self, executor: Any, step_timeout: float = 120.0) -> int:
        """Pause the simulator, then one publish + `~/step` per frame. Returns frames generated."""
        self._call(executor, self.pause, self._Trigger.Request(), step_timeout)
        for i in range(len(self.script)):
            self.publish(i)
            # let the command reach the simulator's subscription before the step request does
            deadline = time.monotonic() + self.settle_s
            while time.monotonic() < deadline:
                executor.spin_once(timeout_sec=max(0.0, deadline - time.monotonic()))
            result = self._call(executor, self.step, self._StepFrames.Request(frames=1), step_timeout)
            if not result.success:
                raise RuntimeError(f'~/step failed at frame {i + 1}: {result.message}')
            self.frames_played += 1
        self.stop()
        return self.frames_played

    def play_timed(self, executor: Any, fps: float) -> int:
        """Publish one action per 1/fps of wall time while the simulator runs freely."""
        t0 = time.monotonic()
        for i in range(len(self.script)):
            self.publish(i)
            self.frames_played += 1
            target = t0 + (i + 1) / fps
            while (remaining := target - time.monotonic()) > 0:
                executor.spin_once(timeout_sec=remaining)
        self.stop()
        return self.frames_played


@dataclass(frozen=True)
class TeleopParams:
    """The node's parameters (`ros2 param describe` shows these descriptions)."""

    actions: str = described('', 'actions FILE (.csv/.txt/.npy or a .yaml/.json tour); wins over script')
    script: str = described('out_and_back', 'named navigation script when no actions file is given')
    frames: int = described(40, 'frames of the named script')
    fps: float = described(10.0, "the model's frame rate (named scripts, tours, timed playback)")
    hands: str = described('', "hand script to play alongside ('' none; e.g. pick_and_place)")
    scene_seed: int = described(0, "table scene the hand script acts in (the simulator's start_seed)")
    lockstep: bool = described(True, 'pause the simulator and step it one frame per action')
    simulator: str = described('/simulator', 'the simulator node whose ~/pause and ~/step to call')
    settle: float = described(0.05, 's between publishing a command and stepping (lock step)')
    wait: float = described(60.0, 's to wait for the simulator services and the listeners')
    listeners: int = described(1, 'matched subscriptions to the commands to wait for before playing (lock step): '
                               'the simulator, plus a recorder that must hold every command')


def play(node: Node, executor: Executor, params: TeleopParams) -> None:
    """Play the script the parameters describe, in lock step or timed, and log how fast it went."""
    script = script_from_params(params.actions, params.script, params.frames, params.fps, params.hands,
                                params.scene_seed)
    player = ScriptPlayer(node, script, params.simulator, params.settle)
    if params.lockstep:
        player.wait_for_simulator(params.wait, params.listeners)
        t0 = time.monotonic()
        n = player.play_lockstep(executor)
    else:
        t0 = time.monotonic()
        n = player.play_timed(executor, params.fps)
    dt = time.monotonic() - t0
    node.get_logger().info(f'played {n} frames in {dt:.1f} s ({n / max(dt, 1e-9):.1f} frames/s)')


def main(argv: list[str] | None = None) -> int:
    """Node: play the script into the simulator; exit code 2 for a bad script or a simulator that does not answer."""
    from rclpy.executors import ExternalShutdownException

    with companion_node('scripted_teleop', argv) as node:
        params = declare_params(node, TeleopParams)
        with node_executor(node) as executor:
            try:
                play(node, executor, params)
            except (ValueError, FileNotFoundError, TimeoutError, RuntimeError) as exc:
                return refuse(node, exc)
            except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C, whichever way rclpy reports it
                return EXIT_INTERRUPTED
    return 0


if __name__ == '__main__':
    sys.exit(main())
