"""Killed recordings: the writer flushes bounded mcap chunks as it goes, and recover_bag rebuilds a complete rosbag2
from what a SIGKILL left (the `.partial` folder with an mcap that has no footer and no metadata.yaml)."""

import logging
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from rosbags.interfaces import QosDurability

from worldscape_ros.model.kinematics import BaseState
from worldscape_ros.tools import messages as M
from worldscape_ros.tools.bag import SIM_TOPICS, BagError, BagWriter, bag_topics, read_bag, recover_bag

FRAME_TOPICS = ('/clock', '/camera/image_raw', '/camera/depth/image_raw')


def _frame(bag: BagWriter, k: int) -> None:
    ns = k * 100_000_000
    bag.write('/clock', ns, M.clock(ns))
    bag.write('/camera/image_raw', ns, M.image_rgb8(np.full((48, 64, 3), k % 256, np.uint8), ns))
    bag.write('/camera/depth/image_raw', ns, M.image_depth32(np.full((48, 64), 1.0 + k, np.float32), ns))


def _snapshot(bag: BagWriter, dest):
    """What a kill at this moment leaves on disk: the staging folder as the operating system has it."""
    return shutil.copytree(bag._staging, dest / bag._staging.name)


def test_a_kill_loses_at_most_the_open_chunk_and_recovery_rebuilds_a_complete_bag(tmp_path):
    killed = tmp_path / 'killed'
    killed.mkdir()
    bag = BagWriter(tmp_path / 'rec' / 'bag', flush_period=3600.0)  # flushed by size and by hand only
    bag.add_topics(SIM_TOPICS)
    bag.write('/tf_static', 0, M.static_camera_tfs(BaseState(), 0))
    for k in range(40):
        _frame(bag, k)
    bag.flush()
    flushed = dict(bag.counts)
    for k in range(40, 45):
        _frame(bag, k)  # in the open chunk: lost by a kill now
    partial = _snapshot(bag, killed)
    bag.close()
    assert not (partial / 'bag' / 'metadata.yaml').exists()

    report = recover_bag(partial)
    assert report.bag == killed / 'bag' and not partial.exists()  # the partial folder is replaced by the bag
    assert not report.complete and report.lost_bytes == 0  # the cut fell between chunks
    assert report.counts['/camera/image_raw'] == flushed['/camera/image_raw'] == 40
    topics = bag_topics(report.bag)  # opens through the bag's own index and metadata.yaml
    assert topics['/camera/image_raw'][:2] == ('sensor_msgs/msg/Image', 40)
    assert topics['/tf_static'][2][0].durability == QosDurability.TRANSIENT_LOCAL  # offered QoS kept
    images = list(read_bag(report.bag, ['/camera/image_raw']))
    assert [int(M.image_to_numpy(m.msg)[0, 0, 0]) for m in images] == list(range(40))
    assert [m.log_ns for m in images] == [k * 100_000_000 for k in range(40)]


def test_chunks_close_at_their_size_bound_so_a_cut_anywhere_loses_at_most_one(tmp_path):
    bag = BagWriter(tmp_path / 'bag', chunk_bytes=64 * 1024, flush_period=3600.0)
    bag.add_topics(SIM_TOPICS)
    for k in range(60):  # about 22 KiB a frame: a chunk every three frames
        _frame(bag, k)
    mcap = next(bag._staging.rglob('*.mcap'))
    data = mcap.read_bytes()
    bag.close()
    per_chunk = 3
    for cut in np.linspace(len(data) // 4, len(data) - 1, 7).astype(int):
        copy = tmp_path / f'cut{cut}' / '.bag.x.partial' / 'bag'
        copy.mkdir(parents=True)
        (copy / 'bag.mcap').write_bytes(data[:cut])
        report = recover_bag(copy.parent)
        images = report.counts.get('/camera/image_raw', 0)
        # frames whose chunk ended before the cut are all there: the cut costs one chunk (and its index) at most
        assert int(cut / len(data) * 60) - 2 * per_chunk <= images <= int(cut / len(data) * 60)


def test_the_time_bound_flushes_a_quiet_recording(tmp_path):
    killed = tmp_path / 'killed'
    killed.mkdir()
    bag = BagWriter(tmp_path / 'bag', flush_period=0.0)  # every write: as a quiet topic after FLUSH_PERIOD_S
    bag.add_topics(SIM_TOPICS)
    for k in range(3):
        _frame(bag, k)
    partial = _snapshot(bag, killed)
    bag.close()
    recovered = {topic: n for topic, n in recover_bag(partial).counts.items() if n}
    assert recovered == {'/clock': 3, '/camera/image_raw': 3, '/camera/depth/image_raw': 3}


CHILD = textwrap.dedent('''
    import sys, time
    import numpy as np
    from worldscape_ros.tools import messages as M
    from worldscape_ros.tools.bag import SIM_TOPICS, BagWriter
    bag = BagWriter(sys.argv[1], flush_period=0.2)
    bag.add_topics(SIM_TOPICS)
    for k in range(100000):
        ns = k * 100_000_000
        bag.write('/camera/image_raw', ns, M.image_rgb8(np.full((96, 128, 3), k % 256, np.uint8), ns))
        print(k + 1, flush=True)
        time.sleep(0.01)
''')


def test_a_sigkilled_recording_process_is_recovered(tmp_path, caplog):
    proc = subprocess.Popen([sys.executable, '-c', CHILD, str(tmp_path / 'bag')], stdout=subprocess.PIPE, text=True)
    try:
        written = 0
        while written < 60:
            written = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    partials = list(tmp_path.glob('.bag.*.partial'))
    assert len(partials) == 1 and not (tmp_path / 'bag').exists()
    with caplog.at_level(logging.WARNING):
        BagWriter(tmp_path / 'bag').close()  # a later recording says where the stale partial is
    assert f'worldscape bag-recover {partials[0]}' in caplog.text
    shutil.rmtree(tmp_path / 'bag')
    report = recover_bag(partials[0])
    images = report.counts['/camera/image_raw']
    assert 0 < images <= written
    msgs = list(read_bag(report.bag, ['/camera/image_raw']))
    assert [int(M.image_to_numpy(m.msg)[0, 0, 0]) for m in msgs] == [k % 256 for k in range(images)]


def test_recovery_refuses_what_it_cannot_or_need_not_do(tmp_path):
    with pytest.raises(BagError, match='does not exist'):
        recover_bag(tmp_path / 'none')
    with BagWriter(tmp_path / 'done') as bag:
        bag.add_topics(SIM_TOPICS)
    with pytest.raises(BagError, match='it is a complete rosbag2 already'):
        recover_bag(tmp_path / 'done')
    partial = tmp_path / '.done.abc.partial' / 'done'
    partial.mkdir(parents=True)
    (partial / 'done.mcap').write_bytes(b'\x89MCAP0\r\n')
    with pytest.raises(BagError, match='exists already'):
        recover_bag(partial.parent)  # would overwrite the finished bag
