"""`make demo`'s run, with its processes, the drive and the video stood in for: what it starts with which
parameters, what it stops and in which order, where the result goes, and what a failure leaves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from worldscape_ros.ros import demo

SIM = 'worldscape_ros.ros.simulator_node'
REC = 'worldscape_ros.ros.recorder_node'


class StandIns:
    """spawn, stop, drive and bag_to_media of the demo, recording how they were called."""

    def __init__(self) -> None:
        self.spawned: list[tuple[str, dict]] = []
        self.stopped: list[str] = []
        self.exit_codes = {SIM: 0, REC: 0}
        self.drive_error: BaseException | None = None
        self.media: list[tuple[Path, bool]] = []

    def spawn(self, module: str, params: dict, log_path: Path, env: dict) -> str:
        log_path.write_text(f'{module} started\n')
        self.spawned.append((module, dict(params)))
        return module

    def stop(self, proc: str, timeout: float = 30.0) -> int:
        self.stopped.append(proc)
        return self.exit_codes[proc]

    def drive(self, script, wait_s: float, recorder_log) -> tuple[int, float]:
        if self.drive_error is not None:
            raise self.drive_error
        return len(script), 4.0

    def bag_to_media(self, bag: Path, out: Path, with_hands: bool) -> dict[str, str]:
        self.media.append((bag, with_hands))
        for name in ('demo.mp4', 'contact_sheet.png'):
            (out / name).write_bytes(b'')
        return {'mp4': str(out / 'demo.mp4'), 'contact_sheet': str(out / 'contact_sheet.png')}


@pytest.fixture
def stand_ins(monkeypatch) -> StandIns:
    fake = StandIns()
    for name in ('spawn', 'stop', 'drive', 'bag_to_media'):
        monkeypatch.setattr(demo, name, getattr(fake, name))
    return fake


@pytest.fixture
def previous_demo(tmp_path) -> Path:
    out = tmp_path / 'runs' / 'demo'
    out.mkdir(parents=True)
    (out / 'previous.txt').write_text('the last demo')
    return out


def test_a_driven_tour_replaces_the_previous_demo_and_says_how_to_replay_it(stand_ins, previous_demo, capsys):
    out = previous_demo
    assert demo.run('nav', out, 3, 'random', 5.0) == 0
    staging = out.with_name('.demo.partial')
    assert stand_ins.spawned == [
        (SIM, {'checkpoint': 'random', 'start_scene': 'room', 'start_seed': 3, 'mode': 'navigation',
               'start_paused': 'true', 'realtime': 'false'}),
        (REC, {'out': staging / 'bag'}),
    ]
    assert stand_ins.stopped == [REC, SIM]  # the recorder first: it closes the bag while frames still come
    assert stand_ins.media == [(staging / 'bag', False)]
    assert not staging.exists() and not (out / 'previous.txt').exists()
    assert yaml.safe_load((out / 'tour.yaml').read_text()) == demo.NAV_TOUR
    assert (out / 'simulator.log').is_file() and (out / 'recorder.log').is_file()
    printed = capsys.readouterr().out
    assert 'worldscape demo (nav): checkpoint random' in printed
    assert '80 frames in 4.0 s: 20.00 frames/s through ROS' in printed
    assert (f'worldscape rollout --start room:3 --actions {out / "tour.yaml"} --checkpoint random '
            '--out runs/replay') in printed


def test_the_manipulation_demo_records_the_hand_conditioning_image(stand_ins, tmp_path):
    out = tmp_path / 'demo-manip'
    assert demo.run('manip', out, 5, 'random', 5.0) == 0
    sim, rec = (params for _, params in stand_ins.spawned)
    assert (sim['start_scene'], sim['start_seed'], sim['mode']) == ('table', 5, 'manipulation')
    topics = yaml.safe_load(rec['topics'])
    assert f'{demo.POSE_VIDEO_TOPIC}:sensor_msgs/msg/Image' in topics
    assert '/camera/image_raw' in topics and '/camera_pose' not in topics
    assert stand_ins.media[0][1] is True


@pytest.mark.parametrize('error', [TimeoutError('service /simulator/step is not available after 5.0 s'),
                                   RuntimeError('~/step failed at frame 3: boom')])
def test_a_failed_drive_stops_both_keeps_the_logs_and_the_previous_demo(stand_ins, previous_demo, capsys, error):
    stand_ins.drive_error = error
    assert demo.run('nav', previous_demo, 3, 'random', 5.0) == 1
    staging = previous_demo.with_name('.demo.partial')
    assert stand_ins.stopped == [REC, SIM]
    assert f'worldscape demo: {error}; logs in {staging}' in capsys.readouterr().err
    assert (staging / 'simulator.log').is_file() and (previous_demo / 'previous.txt').is_file()
    assert stand_ins.media == []


def test_a_recorder_that_failed_fails_the_demo(stand_ins, previous_demo, capsys):
    stand_ins.exit_codes[REC] = 2
    assert demo.run('nav', previous_demo, 3, 'random', 5.0) == 1
    staging = previous_demo.with_name('.demo.partial')
    assert (f'worldscape demo: the recorder exited with 2; see {staging / "recorder.log"}'
            in capsys.readouterr().err)
    assert stand_ins.media == [] and (previous_demo / 'previous.txt').is_file()


def test_ctrl_c_while_driving_stops_both_and_exits_130(stand_ins, tmp_path, capsys):
    stand_ins.drive_error = KeyboardInterrupt()
    assert demo.main(['nav', '--out', str(tmp_path / 'demo'), '--checkpoint', 'random']) == 130
    assert stand_ins.stopped == [REC, SIM]
    assert 'worldscape demo: interrupted' in capsys.readouterr().err


def test_the_drive_waits_for_the_recorders_camera_lines_and_names_its_log_when_they_do_not_come(tmp_path):
    log = tmp_path / 'recorder.log'
    log.write_text('[INFO] /camera/image_raw: matched 1 publisher(s)\n')
    with pytest.raises(TimeoutError, match=f'did not hear the simulator.s cameras within 0.2 s \\(see {log}\\)'):
        demo.wait_for_recording(log, 0.2)
    log.write_text(log.read_text() + '[INFO] /camera/depth/image_raw: matched 1 publisher(s)\n')
    demo.wait_for_recording(log, 0.2)
