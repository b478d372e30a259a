"""The recorder: a live rosbag2 of the simulator's topics without rosbag2 (which the pip wheels lack).

Subscribes to every input and output topic of the simulator (tools.bag.SIM_TOPICS, or the `topics` parameter)
as raw CDR bytes and writes them unchanged with tools.bag.BagWriter: mcap version 9 by default, sqlite3
version 8 for Humble. Each topic records the QoS its publishers offer (as `ros2 bag record` does), so /tf_static
stays transient-local on replay. Ctrl-C or SIGTERM closes the bag cleanly; so does `stop_after_images`. A SIGKILL
leaves a `.partial` folder whose flushed chunks (at most a second old) `worldscape bag-recover` turns into a bag.

Log times are the node's clock (wall time, or sim time from /clock with `use_sim_time:=true`), never going
backwards; the messages keep their own header stamps (sim time from the simulator).
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldscape_ros.ros.fastdds import use_fastdds_profile
from worldscape_ros.ros.node_main import companion_node, declare_params, described, node_executor, refuse
from worldscape_ros.tools.bag import SIM_TOPICS, BagWriter, TopicSpec, qos

if TYPE_CHECKING:
    from rclpy.executors import Executor
    from rclpy.node import Node

IMAGE_TOPIC = '/camera/image_raw'


def message_class(msgtype: str) -> Any:
    """'sensor_msgs/msg/Image' -> the generated rclpy class."""
    package, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def to_bag_qos(profile: Any) -> Any:
    """rclpy QoSProfile -> rosbags Qos (what the bag's metadata records)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def time_of(duration: Any) -> QosTime:
        ns = int(duration.nanoseconds)
        return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)

    def enum(cls: Any, policy: Any) -> Any:
        return cls[policy.name] if policy.name in cls.__members__ else cls.UNKNOWN

    return Qos(enum(QosHistory, profile.history), int(profile.depth), enum(QosReliability, profile.reliability),
               enum(QosDurability, profile.durability), time_of(profile.deadline), time_of(profile.lifespan),
               enum(QosLiveliness, profile.liveliness), time_of(profile.liveliness_lease_duration),
               bool(profile.avoid_ros_namespace_conventions))


def subscription_qos(spec: TopicSpec) -> Any:
    """Reliable (matches reliable and best-effort publishers' data we can get), transient-local where latched."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    latched = spec.qos.durability.name == 'TRANSIENT_LOCAL'
    reliable = spec.qos.reliability.name == 'RELIABLE'
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(spec.qos.depth, 50),
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class Recorder:
    """Topic subscriptions writing raw CDR into a BagWriter (single-threaded: callbacks run in the executor)."""

    def __init__(self, node: Any, bag: BagWriter, specs: list[TopicSpec], stop_after_images: int = 0) -> None:
        self.node = node
        self.bag = bag
        self.specs = {s.name: s for s in specs}
        self.stop_after_images = stop_after_images
        self.done = threading.Event()
        self._subs = [node.create_subscription(message_class(s.msgtype), s.name, self._callback(s),
                                               subscription_qos(s), raw=True) for s in specs]
        self._matched: set[str] = set()

    def report_matches(self) -> None:
        """Log each topic the first time a publisher of it is matched: what it publishes from then on is
        recorded (a script that steps the simulator can wait for this line)."""
        if len(self._matched) == len(self._subs):
            return
        for spec, sub in zip(self.specs.values(), self._subs, strict=True):
            if spec.name not in self._matched and (n := sub.get_publisher_count()) > 0:
                self._matched.add(spec.name)
                self.node.get_logger().info(f'{spec.name}: matched {n} publisher(s)')

    def _offered_qos(self, spec: TopicSpec) -> list[Any]:
        infos = self.node.get_publishers_info_by_topic(spec.name)
        return [to_bag_qos(i.qos_profile) for i in infos] or [spec.qos]

    def _callback(self, spec: TopicSpec) -> Any:
        def on_message(data: bytes) -> None:
            if self.done.is_set():
                return
            if spec.name not in self.bag.counts:  # first message: record the QoS its publishers offer
                self.bag.add_topic(spec.name, spec.msgtype, self._offered_qos(spec))
            self.bag.write_cdr(spec.name, self.node.get_clock().now().nanoseconds, data)
            if (spec.name == IMAGE_TOPIC and self.stop_after_images
                    and self.bag.counts[spec.name] >= self.stop_after_images):
                self.done.set()

        return on_message


def resolve_topics(names: list[str]) -> list[TopicSpec]:
    """Topic specs for the given absolute names (empty: all of the simulator's)."""
    known = {s.name: s for s in SIM_TOPICS}
    if not names:
        return list(SIM_TOPICS)
    specs = []
    for name in names:
        if ':' in name:  # '/extra/topic:sensor_msgs/msg/Image' for topics outside the simulator's set
            topic, msgtype = name.split(':', 1)
            parts = msgtype.split('/')
            if not topic.startswith('/') or len(parts) != 3 or parts[1] != 'msg' or not all(parts):
                raise ValueError(f'topic {name!r} is not NAME:package/msg/Type with an absolute NAME '
                                 '(e.g. /extra/image:sensor_msgs/msg/Image)')
            specs.append(TopicSpec(topic, msgtype, qos()))
        elif name in known:
            specs.append(known[name])
        else:
            raise ValueError(f'unknown topic {name!r}: use one of {", ".join(known)} or NAME:package/msg/Type')
    return specs


@dataclass(frozen=True)
class RecorderParams:
    """The node's parameters (`ros2 param describe` shows these descriptions)."""

    out: str = described('', 'bag folder to create (must not exist)')
    storage: str = described('mcap', 'mcap (rosbag2 version 9) or sqlite3 (version 8, Humble)')
    # [''], not []: rclpy declares an empty list a byte array, which then refuses a list of topic names
    topics: list[str] = described([''], "absolute topic names to record; empty: all of the simulator's")
    stop_after_images: int = described(0, f'close after this many {IMAGE_TOPIC} messages; 0 = never')


def record(node: Node, executor: Executor, params: RecorderParams, stop: threading.Event) -> int:
    """Record into a new bag until `stop` is set or `stop_after_images` have come; the bag is closed however it
    ends. Exit code 2 for a missing `out`, an unknown topic or a bag that exists already."""
    bag = None
    try:
        if not params.out:
            raise ValueError('parameter out (the bag folder) is required')
        specs = resolve_topics([t for t in params.topics if t])
        bag = BagWriter(Path(params.out), params.storage)
        recorder = Recorder(node, bag, specs, params.stop_after_images)
        node.get_logger().info(f'recording {len(specs)} topics into {params.out} ({params.storage})')
        while not stop.is_set() and not recorder.done.is_set():
            executor.spin_once(timeout_sec=0.1)
            recorder.report_matches()
            bag.flush(force=False)  # quiet topics too: what was recorded a second ago survives a SIGKILL
    except (ValueError, FileExistsError) as exc:
        return refuse(node, exc)
    finally:
        if bag is not None:
            bag.close()
            total = sum(bag.counts.values())
            node.get_logger().info(f'bag {params.out} closed: {total} messages ' +
                                   ', '.join(f'{t} {n}' for t, n in bag.counts.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Node: record the simulator's topics into the bag `out` until SIGINT, SIGTERM or `stop_after_images`."""
    use_fastdds_profile()  # images across processes need the simulator's shared-memory segment size
    # our own handlers: the bag must be closed by the thread that writes it, after the last callback
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with companion_node('recorder', argv, rclpy_signals=False) as node:
        params = declare_params(node, RecorderParams)
        with node_executor(node) as executor:
            return record(node, executor, params, stop)


if __name__ == '__main__':
    sys.exit(main())
