"""`worldscape play` and `worldscape view` from the command line: figures printed, screenshots written, user
mistakes in one line (exit 2)."""

import json

import cv2
import pytest

from worldscape_ros.cli import main

RANDOM = ['--checkpoint', 'random', '--config', 'ws-tiny', '--steps', '1']


def test_play_without_the_viewer_prints_its_frame_rate(capsys, tmp_path):
    out = tmp_path / 'figures.json'
    assert main(['play', '--no-viewer', '--frames', '2', '--json', str(out), *RANDOM]) == 0
    assert '2 frames in' in capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert figures['frames'] == 2 and figures['viewer'] is False and figures['frames_per_second'] > 0


@pytest.mark.parametrize('args, message', [
    (['--screenshot', 'x.png'], '--screenshot takes the page from the headless browser: add --browser'),
    (['--browser', '--no-viewer'], '--browser and --screenshot need the viewer'),
    (['--frames', '-1'], '--frames must be >= 0'),
    (['--port', '70000'], 'port must be in [0, 65535]'),
    (['--max-linear', '0'], 'max_linear must be a positive number'),
    (['--start', 'moon:1'], "start 'moon:1' is neither"),
])
def test_play_mistakes_are_one_line_and_exit_2(capsys, args, message):
    assert main(['play', '--frames', '1', *args, *RANDOM]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_play_refuses_a_port_in_use_naming_it(capsys):
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(['play', '--frames', '1', '--port', str(port), *RANDOM]) == 2
    assert f'cannot serve the viewer on 127.0.0.1:{port}' in capsys.readouterr().err


def test_play_with_the_browser_writes_the_page_screenshot(capsys, tmp_path):
    shot, out = tmp_path / 'page.png', tmp_path / 'figures.json'
    assert main(['play', '--frames', '3', '--port', '0', '--browser', '--screenshot', str(shot), '--json', str(out),
                 *RANDOM]) == 0
    image = cv2.imread(str(shot))
    assert image is not None and image.shape == (800, 1280, 3)
    figures = json.loads(out.read_text())
    assert figures['frames'] == 3 and figures['viewer'] is True
    assert 'screenshot:' in capsys.readouterr().out


def test_view_is_registered_with_its_ros_options(capsys):
    with pytest.raises(SystemExit):
        main(['view', '--help'])
    text = capsys.readouterr().out
    assert '--simulator' in text and '--port' in text and '--namespace' in text
