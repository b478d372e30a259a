"""A SimulatorNode with a probe node in one executor, for the node's tests (not a test module itself)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from worldscape_msgs.srv import StepFrames

from worldscape_ros.ros.simulator_node import SimulatorNode

REPO = Path(__file__).resolve().parents[2]
FPS = 10.0  # ws-tiny's rate
TIMEOUT = 30.0
BASE_PARAMS: dict[str, Any] = {'checkpoint': 'random', 'model_config': 'ws-tiny', 'device': 'cpu',
                               'realtime': False, 'start_paused': True, 'diagnostics_period': 0.05,
                               'denoising_steps': 1}  # one step: the behaviour under test is the node's


class Collector:
    """Messages of one topic, with a wait for a count or a predicate."""

    def __init__(self) -> None:
        self.msgs: list[Any] = []
        self._cond = threading.Condition()

    def __call__(self, msg: Any) -> None:
        with self._cond:
            self.msgs.append(msg)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.msgs) >= count, timeout):
                raise AssertionError(f'{len(self.msgs)} messages arrived, expected {count}')
            return list(self.msgs)

    def clear(self) -> None:
        with self._cond:
            self.msgs.clear()


class Harness:
    """A SimulatorNode and a probe node in one SingleThreadedExecutor spun in a thread, in their own context."""

    def __init__(self, overrides: dict[str, Any] | None = None, cli_args: list[str] | None = None) -> None:
        self.context = rclpy.Context()
        # discovery off: this context talks only to itself, never to simulators other test runs start
        previous = os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE')
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'OFF'
        try:
            rclpy.init(context=self.context)
        finally:
            if previous is None:
                del os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE']
            else:
                os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = previous
        self.node = SimulatorNode(parameter_overrides={**BASE_PARAMS, **(overrides or {})}, context=self.context,
                                  cli_args=cli_args)
        self.probe = rclpy.create_node('probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self._pubs: dict[str, Any] = {}

    def close(self) -> None:
        self.node.stop()
        self.executor.shutdown()  # before rclpy.shutdown: shutting down under a spinning executor aborts
        self.thread.join(timeout=10)
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)

    def start(self) -> None:
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def subscribe(self, msg_type: Any, topic: str, qos: Any = 50) -> Collector:
        """Subscribe and wait until the graph shows the subscription (so the next frame reaches it)."""
        name = topic if topic.startswith('/') else f'/{topic}'
        before = self.probe.count_subscribers(name)
        collector = Collector()
        self.probe.create_subscription(msg_type, topic, collector, qos)
        deadline = time.monotonic() + TIMEOUT
        while self.node.count_subscribers(name) <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # matching follows discovery closely
        return collector

    def call(self, srv_type: Any, name: str, request: Any = None) -> Any:
        client = self.probe.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=TIMEOUT), f'service {name} not available'
            future = client.call_async(request if request is not None else srv_type.Request())
            done = threading.Event()
            future.add_done_callback(lambda _f: done.set())
            assert done.wait(TIMEOUT), f'service {name} did not answer'
            return future.result()
        finally:
            self.probe.destroy_client(client)

    def publish(self, msg_type: Any, topic: str, msg: Any, input_name: str) -> None:
        """Publish and wait until the simulator has taken the message in."""
        if topic not in self._pubs:
            self._pubs[topic] = self.probe.create_publisher(msg_type, topic, 10)
            deadline = time.monotonic() + TIMEOUT
            while self._pubs[topic].get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        before = self.node.inputs_received[input_name]
        self._pubs[topic].publish(msg)
        deadline = time.monotonic() + TIMEOUT
        while self.node.inputs_received[input_name] == before:
            assert time.monotonic() < deadline, f'{input_name} never reached the node'
            time.sleep(0.005)

    def step(self, frames: int) -> StepFrames.Response:
        response = self.call(StepFrames, '/simulator/step', StepFrames.Request(frames=frames))
        assert response.success, response.message
        return response
