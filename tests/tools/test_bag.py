"""rosbag2 writing: read back by rosbags' AnyReader and by rclpy, QoS kept, and still readable after Ctrl-C."""

import importlib
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rclpy.serialization as rclpy_serialization
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability, QosReliability

from worldscape_ros.model.kinematics import BaseState, NavAction, integrate
from worldscape_ros.tools import messages as M
from worldscape_ros.tools.bag import QOS_SENSOR, SIM_TOPICS, BagWriter, bag_topics, read_bag


def _write_rollout(path, storage='mcap', frames=6):
    state = BaseState()
    action = np.array([0.5, 0.0, 0.0, 0.2, 0.0])
    with BagWriter(path, storage) as bag:
        bag.add_topics(SIM_TOPICS)
        bag.write('/tf_static', 0, M.static_camera_tfs(state, 0))
        for k in range(frames):
            ns = k * 100_000_000
            rgb = np.full((6, 8, 3), k, np.uint8)
            depth = np.full((6, 8), 1.0 + k, np.float32)
            bag.write('/clock', ns, M.clock(ns))
            bag.write('/cmd_vel', ns, M.twist(action))
            bag.write('/camera/image_raw', ns, M.image_rgb8(rgb, ns))
            bag.write('/camera/depth/image_raw', ns, M.image_depth32(depth, ns))
            bag.write('/camera/camera_info', ns, M.camera_info(np.diag([5.0, 5.0, 1.0]), 8, 6, ns))
            bag.write('/odom', ns, M.odometry(state, action, ns))
            bag.write('/tf', ns, M.odom_tf(state, ns))
            bag.write('/hand_keypoints', ns, M.hand_keypoints(np.full((21, 3), 0.1 * k), ns))
            state = integrate(state, NavAction.from_array(action), 0.1)
    return path


@pytest.mark.parametrize('storage,version,suffix', [('mcap', 9, '.mcap'), ('sqlite3', 8, '.db3')])
def test_bag_reads_back_with_types_counts_and_monotonic_stamps(tmp_path, storage, version, suffix):
    path = _write_rollout(tmp_path / 'bag', storage)
    assert (path / f'bag{suffix}').is_file()
    assert f'version: {version}' in (path / 'metadata.yaml').read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')], 'staging folder left behind'
    topics = bag_topics(path)
    assert topics['/camera/image_raw'][:2] == ('sensor_msgs/msg/Image', 6)
    assert topics['/hand_keypoints'][:2] == ('worldscape_msgs/msg/HandKeypoints', 6)
    assert topics['/tf_static'][1] == 1
    msgs = list(read_bag(path, ['/camera/image_raw', '/camera/depth/image_raw']))
    stamps = [m.log_ns for m in msgs]
    assert stamps == sorted(stamps)
    rgbs = [M.image_to_numpy(m.msg) for m in msgs if m.topic == '/camera/image_raw']
    depths = [M.image_to_numpy(m.msg) for m in msgs if m.topic == '/camera/depth/image_raw']
    assert [int(r[0, 0, 0]) for r in rgbs] == list(range(6))
    assert [float(d[0, 0]) for d in depths] == [1.0 + k for k in range(6)]


def test_bag_records_offered_qos_transient_local_for_tf_static(tmp_path):
    with BagWriter(tmp_path / 'b') as bag:
        bag.add_topics(SIM_TOPICS)
        bag.add_topic('/camera/extra', 'sensor_msgs/msg/Image', QOS_SENSOR)
    topics = bag_topics(tmp_path / 'b')
    (static_qos,) = topics['/tf_static'][2]
    assert static_qos.durability == QosDurability.TRANSIENT_LOCAL
    assert static_qos.reliability == QosReliability.RELIABLE and static_qos.depth == 1
    assert topics['/camera/extra'][2][0].reliability == QosReliability.BEST_EFFORT
    assert topics['/odom'][2][0].durability == QosDurability.VOLATILE




def _rclpy_class(msgtype):
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


@pytest.mark.ros
@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_rclpy_deserialises_every_recorded_message_with_the_same_type_hash(tmp_path, storage):
    path = _write_rollout(tmp_path / 'bag', storage)
    seen = set()
    with AnyReader([path]) as reader:
        for conn, _, raw in reader.messages():
            cls = _rclpy_class(conn.msgtype)
            msg = rclpy_serialization.deserialize_message(raw, cls)
            seen.add(conn.topic)
            if conn.topic == '/hand_keypoints':
                assert len(msg.points) == 21 and msg.handedness == 'right'
            if conn.topic == '/camera/image_raw':
                assert (msg.encoding, msg.width, msg.height, msg.step) == ('rgb8', 8, 6, 24)
            if conn.topic == '/tf_static':
                assert [t.child_frame_id for t in msg.transforms] == ['camera_link', 'camera_optical_frame']
    assert {'/hand_keypoints', '/tf', '/tf_static', '/odom', '/clock', '/cmd_vel'} <= seen
    # the hash the bag carries is the one the generated interface package has
    share = Path(sys.prefix) / 'share' / 'worldscape_msgs' / 'msg' / 'HandKeypoints.json'
    if share.is_file():
        with AnyReader([path]) as reader:
            digest = next(c.digest for c in reader.connections if c.topic == '/hand_keypoints')
        assert digest in share.read_text()


CHILD = textwrap.dedent('''
    import sys, time
    import numpy as np
    from worldscape_ros.tools import messages as M
    from worldscape_ros.tools.bag import SIM_TOPICS, BagWriter, stop_on_signals
    k = 0
    try:
        with BagWriter(sys.argv[1]) as bag, stop_on_signals(bag):
            bag.add_topics(SIM_TOPICS)
            while True:
                ns = k * 33_000_000
                bag.write('/camera/image_raw', ns, M.image_rgb8(np.full((48, 64, 3), k % 256, np.uint8), ns))
                bag.write('/clock', ns, M.clock(ns))
                k += 1
                if k == 20:
                    print('recording', flush=True)
                time.sleep(0.002)
    except KeyboardInterrupt:
        print(f'closed after {k}', flush=True)
''')


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_bag_cut_short_by_a_signal_stays_readable(tmp_path, sig):
    path = tmp_path / 'cut'
    proc = subprocess.Popen([sys.executable, '-c', CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'recording'
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    written = int(out.strip().split()[-1])
    msgs = list(read_bag(path, ['/camera/image_raw']))
    assert len(msgs) >= 20 and len(msgs) in (written, written + 1)
    stamps = [m.log_ns for m in msgs]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert [int(M.image_to_numpy(m.msg)[0, 0, 0]) for m in msgs] == [k % 256 for k in range(len(msgs))]


def test_writer_refuses_an_existing_bag_and_unknown_topics(tmp_path):
    (tmp_path / 'taken').mkdir()
    with pytest.raises(FileExistsError, match='exists already'):
        BagWriter(tmp_path / 'taken')
    with pytest.raises(ValueError, match='storage must be one of'):
        BagWriter(tmp_path / 'x', storage='rosbag1')
    with BagWriter(tmp_path / 'ok') as bag:
        with pytest.raises(ValueError, match='was not added'):
            bag.write('/nowhere', 0, M.clock(0))
        with pytest.raises(ValueError, match='unknown message type'):
            bag.add_topic('/x', 'no_msgs/msg/Nothing')
        bag.add_topic('/c', 'rosgraph_msgs/msg/Clock')
        with pytest.raises(ValueError, match='already recorded with type'):
            bag.add_topic('/c', 'sensor_msgs/msg/Image')
    with pytest.raises(ValueError, match='closed'):
        bag.write_cdr('/c', 0, b'')


def test_reading_topics_a_bag_does_not_hold_gives_no_messages(tmp_path):
    with BagWriter(tmp_path / 'b') as bag:
        bag.add_topic('/cmd_vel', 'geometry_msgs/msg/Twist')
        bag.write('/cmd_vel', 1, M.twist(np.zeros(5)))
    assert list(read_bag(tmp_path / 'b', ['/camera/image_raw'])) == []
    assert [m.topic for m in read_bag(tmp_path / 'b', ['/camera/image_raw', '/cmd_vel'])] == ['/cmd_vel']


def test_log_times_never_go_backwards(tmp_path):
    with BagWriter(tmp_path / 'b') as bag:
        bag.add_topic('/clock', 'rosgraph_msgs/msg/Clock')
        for ns in (5, 3, 9, 1):
            bag.write('/clock', ns, M.clock(ns))
    stamps = [m.log_ns for m in read_bag(tmp_path / 'b')]
    assert stamps == [5, 5, 9, 9]
    assert [M.stamp_ns(m.msg.clock) for m in read_bag(tmp_path / 'b')] == [5, 3, 9, 1]
