"""The live recorder: bags read back by AnyReader and rclpy, cut short by SIGINT, and the same frames as offline."""

import importlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from node_output import wait_for_output
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability

from worldscape_ros.model.options import EngineOptions
from worldscape_ros.tools import messages as M
from worldscape_ros.tools.bag import bag_topics, read_bag

pytestmark = pytest.mark.ros


@pytest.fixture(autouse=True)
def private_ros_domain(monkeypatch):
    """A DDS domain of this test process alone: other test runs on the machine publish on the shared ones."""
    monkeypatch.setenv('ROS_DOMAIN_ID', str(100 + os.getpid() % 120))


def _rclpy_class(msgtype):
    package, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def _spawn(module, *params, **kwargs):
    args = [sys.executable, '-m', module, '--ros-args']
    for p in params:
        args += ['-p', p]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _stop(proc, sig=signal.SIGINT, timeout=30):
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


def _check_bag_with_rclpy(path):
    """Every message deserialises with rclpy's generated class; log times never go backwards."""
    stamps = []
    with AnyReader([path]) as reader:
        for conn, log_ns, raw in reader.messages():
            deserialize_message(raw, _rclpy_class(conn.msgtype))
            stamps.append(log_ns)
    assert stamps == sorted(stamps)
    return stamps


class Publisher:
    """A test node that publishes images, clock and a latched /tf_static, as the simulator does."""

    def __init__(self):
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image
        from tf2_msgs.msg import TFMessage

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('fake_sim', context=self.context)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.static = self.node.create_publisher(TFMessage, '/tf_static', latched)
        self.image = self.node.create_publisher(Image, '/camera/image_raw', 10)
        self.clock = self.node.create_publisher(Clock, '/clock', 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.Image, self.Clock, self.TFMessage = Image, Clock, TFMessage

    def wait_for_subscriber(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.image.get_subscription_count() and self.clock.get_subscription_count():
                return
            self.executor.spin_once(timeout_sec=0.05)
        raise AssertionError('the recorder did not subscribe')

    def publish(self, k):
        from builtin_interfaces.msg import Time

        stamp = Time(sec=k // 10, nanosec=(k % 10) * 100_000_000)
        msg = self.Image(height=4, width=6, encoding='rgb8', step=18, data=bytes([k % 256]) * 72)
        msg.header.stamp = stamp
        self.image.publish(msg)
        self.clock.publish(self.Clock(clock=stamp))

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.mark.parametrize('storage', ['sqlite3'])  # the Humble format; mcap is the live test's below
def test_recorder_cut_short_by_sigint_leaves_a_readable_bag(tmp_path, storage):
    bag = tmp_path / 'live'
    pub = Publisher()
    rec = _spawn('worldscape_ros.ros.recorder_node', f'out:={bag}', f'storage:={storage}')
    try:
        pub.static.publish(pub.TFMessage())  # latched before the recorder subscribes: it still gets it
        pub.wait_for_subscriber()
        wait_for_output(rec, ['/camera/image_raw: matched 1 publisher(s)'])  # the recorder's side of the match
        for k in range(40):
            pub.publish(k)
            pub.executor.spin_once(timeout_sec=0.005)
        time.sleep(0.5)
        for k in range(40, 400):  # still streaming when SIGINT arrives
            pub.publish(k)
            if k == 60:
                rec.send_signal(signal.SIGINT)
            pub.executor.spin_once(timeout_sec=0.001)
        code, out = _stop(rec)
    finally:
        if rec.poll() is None:
            rec.kill()
        pub.close()
    assert code == 0, out
    assert 'closed' in out
    topics = bag_topics(bag)
    assert topics['/camera/image_raw'][0] == 'sensor_msgs/msg/Image'
    n = topics['/camera/image_raw'][1]
    assert 40 <= n < 400
    assert topics['/tf_static'][1] == 1
    assert topics['/tf_static'][2][0].durability == QosDurability.TRANSIENT_LOCAL  # the offered QoS is kept
    _check_bag_with_rclpy(bag)
    images = [m.msg for m in read_bag(bag, ['/camera/image_raw'])]
    assert [int(np.asarray(m.data)[0]) for m in images] == list(range(n))  # nothing lost, in order
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]


def test_recorder_refuses_an_existing_bag_and_a_missing_out(tmp_path):
    (tmp_path / 'taken').mkdir()
    for params, message in (([f'out:={tmp_path / "taken"}'], 'exists already'),
                            ([], 'out (the bag folder) is required')):
        proc = _spawn('worldscape_ros.ros.recorder_node', *params)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 2 and message in out


@pytest.mark.slow
def test_live_recording_holds_the_same_frames_as_the_offline_rollout(tmp_path):
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.tools.rollout import Start, offline_rollout
    from worldscape_ros.tools.scripts import load_script

    actions = tmp_path / 'script.csv'
    actions.write_text('0.5 0 0 0.2 0\n0.4 0.1 0 0 0.1\n0 0 0 -0.3 0\n')
    live = tmp_path / 'live'
    env = dict(os.environ)
    sim = _spawn('worldscape_ros.ros.simulator_node', 'checkpoint:=random', 'start_seed:=2', 'start_paused:=true',
                 'realtime:=false', env=env)
    rec = _spawn('worldscape_ros.ros.recorder_node', f'out:={live}', env=env)
    try:
        # step the simulator only once the recorder hears its cameras: a frame published before both ends of
        # the match are made is not recorded
        wait_for_output(rec, ['/camera/image_raw: matched', '/camera/depth/image_raw: matched'], timeout=120)
        teleop = subprocess.run([sys.executable, '-m', 'worldscape_ros.ros.scripted_teleop', '--ros-args', '-p',
                                 f'actions:={actions}', '-p', 'wait:=90.0',
                                 '-p', 'listeners:=2'], capture_output=True, text=True,
                                timeout=180, env=env)
        assert teleop.returncode == 0, teleop.stderr
        assert 'played 3 frames' in teleop.stderr + teleop.stdout
        time.sleep(1.0)  # the last frame's messages reach the recorder
        code, out = _stop(rec)
        assert code == 0, out
    finally:
        sim_log = ''
        for proc in (rec, sim):
            if proc.poll() is None:
                sim_log = _stop(proc)[1]
    # offline: the same start (room:2, sampling seed 2) and the same actions, no ROS
    engine = WorldEngine.from_pretrained('random', options=EngineOptions(seed=2))
    offline_rollout(engine, Start('room', 2), load_script(actions, engine.config.fps), tmp_path / 'off', mp4=False)

    def frames(bag, topic):
        return {M.stamp_ns(m.msg.header.stamp): M.image_to_numpy(m.msg) for m in read_bag(bag, [topic])}

    for topic in ('/camera/image_raw', '/camera/depth/image_raw'):
        got, want = frames(live, topic), frames(tmp_path / 'off' / 'bag', topic)
        assert sorted(got) == [100_000_000, 200_000_000, 300_000_000], (sorted(got), sim_log)
        assert sorted(want) == sorted(got)
        for stamp, image in got.items():
            np.testing.assert_array_equal(image, want[stamp])
    topics = bag_topics(live)
    for name in ('/camera/camera_info', '/odom', '/tf', '/clock', '/camera/depth/camera_info'):
        assert topics[name][1] == 3, name
    assert topics['/cmd_vel'][1] >= 3 and topics['/tf_static'][1] >= 1
    _check_bag_with_rclpy(live)
    odom = [(m.msg.pose.pose.position.x, m.msg.pose.pose.position.y) for m in read_bag(live, ['/odom'])]
    odom_off = [(m.msg.pose.pose.position.x, m.msg.pose.pose.position.y)
                for m in read_bag(tmp_path / 'off' / 'bag', ['/odom'])]
    np.testing.assert_allclose(odom, odom_off, atol=1e-9)


@pytest.mark.parametrize('name', ['/x:bad', 'x:sensor_msgs/msg/Image', '/x:sensor_msgs/srv/Image', '/x:/msg/Image',
                                  '/x:sensor_msgs/msg/Image/extra'])
def test_an_extra_topic_not_written_name_colon_message_type_is_refused_naming_the_form(name):
    from worldscape_ros.ros.recorder_node import resolve_topics

    with pytest.raises(ValueError, match=r'not NAME:package/msg/Type'):
        resolve_topics([name])
    assert resolve_topics(['/x:sensor_msgs/msg/Image'])[0].msgtype == 'sensor_msgs/msg/Image'
