"""Offline rollouts: deterministic, recorded as the simulator publishes, and closed cleanly when cut short."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from worldscape_ros.model.kinematics import NavAction, integrate, state_from_camera_pose
from worldscape_ros.synthetic.starts import start_from_scene
from worldscape_ros.tools import messages as M
from worldscape_ros.tools.bag import bag_topics, read_bag
from worldscape_ros.tools.rollout import RolloutError, Start, offline_rollout, parse_start
from worldscape_ros.tools.scripts import ActionScript
from worldscape_ros.tools.video import read_mp4, write_png

ACTIONS = np.array([[0.5, 0.0, 0.0, 0.3, 0.0], [0.5, 0.1, 0.0, 0.0, 0.1], [0.0, 0.0, 0.0, -0.4, 0.0]])


def _images(bag):
    return [(m.msg.header.stamp, M.image_to_numpy(m.msg)) for m in read_bag(bag, ['/camera/image_raw'])]


def test_rollout_is_deterministic_and_recorded_like_the_simulator(engine, tmp_path):
    script = ActionScript(ACTIONS)
    a = offline_rollout(engine, Start('room', 2), script, tmp_path / 'a')
    b = offline_rollout(engine, Start('room', 2), script, tmp_path / 'b', mp4=False)
    assert a.frames == b.frames == 3 and not a.interrupted
    ia, ib = _images(tmp_path / 'a' / 'bag'), _images(tmp_path / 'b' / 'bag')
    assert len(ia) == 3  # the generated frames only: the start view is the engine's input, not recorded
    for (sa, ra), (sb, rb) in zip(ia, ib):
        np.testing.assert_array_equal(ra, rb)
        assert sa == sb
    # sim time stamps: frame k at k / fps
    fps = engine.config.fps
    assert [M.stamp_ns(s) for s, _ in ia] == [round(k * 1e9 / fps) for k in range(1, 4)]
    topics = bag_topics(tmp_path / 'a' / 'bag')
    assert topics['/cmd_vel'][1] == 3 and topics['/odom'][1] == 3
    # the mount at the start, and again when the second action's pitch rate tilts the camera, as the node sends it
    mounts = [m.msg for m in read_bag(tmp_path / 'a' / 'bag', ['/tf_static'])]
    assert [M.stamp_ns(t.transforms[0].header.stamp) for t in mounts] == [0, round(2e9 / engine.config.fps)]
    assert mounts[0].transforms[0].transform.rotation != mounts[1].transforms[0].transform.rotation
    assert topics['/hand_keypoints'][1] == 0
    # odometry follows the kinematics from the start pose
    odoms = [m.msg for m in read_bag(tmp_path / 'a' / 'bag', ['/odom'])]
    s0 = state_from_camera_pose(start_from_scene(engine, 2, 'room').pose, engine.config.camera_height)
    xs = [s0]
    for act in ACTIONS:
        xs.append(integrate(xs[-1], NavAction.from_array(act), 1 / fps))
    xs = xs[1:]
    for msg, s in zip(odoms, xs):
        assert (msg.pose.pose.position.x, msg.pose.pose.position.y) == pytest.approx((s.x, s.y), abs=1e-6)
    assert [m.msg.angular.z for m in read_bag(tmp_path / 'a' / 'bag', ['/cmd_vel'])] == pytest.approx(
        ACTIONS[:, 3].tolist())
    # the video holds the start view and the same frames, RGB beside depth
    video = read_mp4(tmp_path / 'a' / 'rollout.mp4')
    assert len(video) == 4
    summary = json.loads((tmp_path / 'a' / 'summary.json').read_text())
    assert summary['frames'] == 3 and summary['engine']['config'] == 'ws-tiny'
    assert (tmp_path / 'a' / 'contact_sheet.png').is_file() and not (tmp_path / 'b' / 'rollout.mp4').exists()


def test_rollout_from_an_image_starts_from_that_image(engine, tmp_path):
    start_rgb = start_from_scene(engine, 5, 'room').rgb
    write_png(tmp_path / 'start.png', start_rgb)
    result = offline_rollout(engine, parse_start(str(tmp_path / 'start.png')), ActionScript(ACTIONS[:1]),
                             tmp_path / 'out', bag=False)
    assert result.frames == 1
    # the video opens on the start view, the engine's input (then the imagined frames)
    video = read_mp4(tmp_path / 'out' / 'rollout.mp4')
    scale = video[0].shape[0] // 96
    shown = video[0][::scale, :128 * scale:scale].astype(int)
    assert np.abs(shown - start_rgb).mean() < 6  # H.264 is lossy
    assert np.abs(shown - start_rgb[::-1]).mean() > 4 * np.abs(shown - start_rgb).mean()


def test_start_parsing_and_bad_starts(engine, tmp_path):
    assert parse_start('yard:7') == Start('yard', 7)
    with pytest.raises(ValueError, match='must be an integer'):
        parse_start('room:x')
    with pytest.raises(ValueError, match='neither'):
        parse_start('moon:1')
    small = tmp_path / 'small.png'
    write_png(small, np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match='needs 128x96'):
        offline_rollout(engine, parse_start(str(small)), ActionScript(ACTIONS), tmp_path / 'o', bag=False, mp4=False)


def test_rollout_refuses_an_earlier_run_unless_forced_and_force_replaces_only_its_outputs(engine, tmp_path):
    out = tmp_path / 'out'
    offline_rollout(engine, Start('room', 0), ActionScript(ACTIONS[:1]), out, mp4=False)
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(RolloutError, match=r'holds an earlier run \(bag, summary.json\): pass --force'):
        offline_rollout(engine, Start('room', 0), ActionScript(ACTIONS), out)
    result = offline_rollout(engine, Start('room', 0), ActionScript(ACTIONS), out, mp4=False, force=True)
    assert result.frames == 3 and len(_images(out / 'bag')) == 3
    assert (out / 'notes.txt').read_text() == 'mine'


def test_a_failed_start_leaves_nothing_behind_and_a_rerun_works(engine, tmp_path):
    small = tmp_path / 'small.png'
    write_png(small, np.zeros((10, 10, 3), np.uint8))
    out = tmp_path / 'new' / 'out'
    with pytest.raises(ValueError, match='needs 128x96'):
        offline_rollout(engine, parse_start(str(small)), ActionScript(ACTIONS), out)
    assert not out.exists()
    assert offline_rollout(engine, Start('room', 0), ActionScript(ACTIONS), out, mp4=False).frames == 3


def test_an_empty_script_or_an_unwritable_out_is_refused_before_anything_runs(engine, tmp_path, monkeypatch):
    with pytest.raises(RolloutError, match='holds no frames'):
        offline_rollout(engine, Start('room', 0), ActionScript(np.zeros((0, 5))), tmp_path / 'o')
    assert not (tmp_path / 'o').exists()
    (tmp_path / 'file').write_text('')
    with pytest.raises(RolloutError, match='cannot be written'):
        offline_rollout(engine, Start('room', 0), ActionScript(ACTIONS), tmp_path / 'file' / 'o')

    def read_only(*args, **kwargs):
        raise OSError(30, 'Read-only file system')

    monkeypatch.setattr('tempfile.mkstemp', read_only)
    with pytest.raises(RolloutError, match='--out .* cannot be written: Read-only file system'):
        offline_rollout(engine, Start('room', 0), ActionScript(ACTIONS), tmp_path / 'ro')
    assert not (tmp_path / 'ro').exists()


@pytest.mark.slow
def test_cli_rollout_cut_short_by_sigint_leaves_a_readable_bag(tmp_path):
    actions = tmp_path / 'long.csv'
    np.savetxt(actions, np.tile([0.3, 0.0, 0.0, 0.2, 0.0], (200, 1)), delimiter=',')
    out = tmp_path / 'out'
    proc = subprocess.Popen([sys.executable, '-m', 'worldscape_ros.cli', 'rollout', '--start', 'room:1', '--actions',
                             str(actions), '--out', str(out), '--checkpoint', 'random'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(out.glob('.bag.*.partial/bag/*.mcap')):
            time.sleep(0.2)
        time.sleep(4.0)  # a few frames
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert 'interrupted' in stdout and 'Traceback' not in stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['interrupted'] and summary['frames'] < 200
    images = _images(out / 'bag')
    assert len(images) == summary['frames']
    stamps = [M.stamp_ns(s) for s, _ in images]
    assert stamps == sorted(stamps)
    assert len(read_mp4(out / 'rollout.mp4')) == len(images) + 1  # the start view, then the imagined frames
    assert not list(out.glob('.*')), 'staging files left behind'


@pytest.mark.slow
def test_cli_rollout_killed_by_sigkill_is_recovered_by_bag_recover(tmp_path, capsys):
    from worldscape_ros.cli import main

    actions = tmp_path / 'long.csv'
    np.savetxt(actions, np.tile([0.3, 0.0, 0.0, 0.2, 0.0], (500, 1)), delimiter=',')
    out = tmp_path / 'out'
    proc = subprocess.Popen([sys.executable, '-m', 'worldscape_ros.cli', 'rollout', '--start', 'room:1', '--actions',
                             str(actions), '--out', str(out), '--checkpoint', 'random', '--steps', '1', '--bag'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any(p.stat().st_size > 10_000
                                                      for p in out.glob('.bag.*.partial/bag/*.mcap')):
            time.sleep(0.2)  # the first chunk is on disk
        time.sleep(5.0)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    partials = list(out.glob('.bag.*.partial'))
    assert len(partials) == 1 and not (out / 'bag').exists()
    assert main(['rollout', '--start', 'room:1', '--actions', str(actions), '--out', str(out),
                 '--checkpoint', 'random']) == 2
    assert f'worldscape bag-recover {partials[0]}' in capsys.readouterr().err  # the refusal names the fix
    assert main(['bag-recover', str(partials[0])]) == 0
    topics = bag_topics(out / 'bag')
    images, clocks = topics['/camera/image_raw'][1], topics['/clock'][1]
    assert topics['/tf_static'][1] == 1 and abs(images - clocks) <= 1  # whole frames, at most one cut
    stamps = [M.stamp_ns(s) for s, _ in _images(out / 'bag')]
    assert stamps == sorted(set(stamps))
