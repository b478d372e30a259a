"""Keyboard teleop: key parsing and mapping, and the real node driven through a pseudo-terminal."""

import os
import pty
import subprocess
import sys
import termios
import time

import pytest
import rclpy

from worldscape_ros.ros.keyboard_teleop import KeyboardMapper, TeleopConfig, split_keys


def test_split_keys_reads_arrows_in_normal_and_application_mode():
    keys, rest = split_keys('w\x1b[Aa\x1bOD\x1b[5~X')
    assert keys == ['w', 'up', 'a', 'left', 'x']  # Page Up skipped, capitals fold to lower case
    assert rest == ''


def test_split_keys_keeps_a_cut_escape_sequence_for_the_next_read():
    keys, rest = split_keys('s\x1b[')
    assert keys == ['s'] and rest == '\x1b['
    keys, rest = split_keys(rest + 'B')
    assert keys == ['down'] and rest == ''


def test_mapper_follows_the_documented_bindings():
    m = KeyboardMapper(TeleopConfig(linear_speed=0.5, turn_speed=0.4, pitch_speed=0.2, hold_timeout=0))
    expected = {'w': (0.5, 0, 0, 0, 0), 's': (-0.5, 0, 0, 0, 0), 'up': (0.5, 0, 0, 0, 0),
                'down': (-0.5, 0, 0, 0, 0), 'a': (0, 0.5, 0, 0, 0), 'd': (0, -0.5, 0, 0, 0),
                'q': (0, 0, 0, 0.4, 0), 'left': (0, 0, 0, 0.4, 0), 'e': (0, 0, 0, -0.4, 0),
                'right': (0, 0, 0, -0.4, 0), 'r': (0, 0, 0, 0, -0.2), 'f': (0, 0, 0, 0, 0.2)}
    for key, cmd in expected.items():
        m.stop()
        assert m.press(key, 0.0)
        assert m.command(0.0) == pytest.approx(cmd), key
    assert not m.press('z', 0.0)


def test_mapper_combines_axes_and_space_stops_all():
    m = KeyboardMapper(TeleopConfig(hold_timeout=0))
    m.press('w', 0.0)
    m.press('q', 0.0)
    m.press('s', 0.0)  # the opposite key replaces the command on its axis
    assert m.command(1e6) == pytest.approx((-0.5, 0, 0, 0.5, 0))
    m.press(' ', 0.0)
    assert m.command(0.0) == (0.0, 0.0, 0.0, 0.0, 0.0)


def test_speed_steps_scale_moving_axes_and_are_capped():
    m = KeyboardMapper(TeleopConfig(speed_step=2.0, max_scale=4.0, hold_timeout=0))
    m.press('w', 0.0)
    m.press('+', 0.0)
    assert m.command(0.0)[0] == pytest.approx(1.0)
    for _ in range(5):
        m.press('=', 0.0)
    assert m.scale == pytest.approx(4.0)
    m.press('-', 0.0)
    m.press('e', 0.0)
    assert m.command(0.0) == pytest.approx((1.0, 0, 0, -1.0, 0))


def test_held_key_expires_after_hold_timeout():
    m = KeyboardMapper(TeleopConfig(hold_timeout=0.5))
    m.press('w', 10.0)
    m.press('w', 10.4)  # terminal key repeat keeps it alive
    assert m.command(10.8)[0] == pytest.approx(0.5)
    assert m.command(10.95)[0] == 0.0


def test_quit_keys_stop_and_quit():
    m = KeyboardMapper()
    m.press('w', 0.0)
    m.press('\x03', 0.0)
    assert m.quit and m.command(0.0) == (0.0, 0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize('field,value,match', [('linear_speed', 0.0, 'linear_speed'),
                                               ('speed_step', 1.0, 'speed_step'),
                                               ('hold_timeout', -1.0, 'hold_timeout')])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        TeleopConfig(**{field: value})


# --- the real node, in a child process whose stdin is a pseudo-terminal -------------------------------------



@pytest.fixture(autouse=True)
def private_ros_domain(monkeypatch):
    """A DDS domain of this test process alone: other test runs on the machine publish on the shared ones."""
    monkeypatch.setenv('ROS_DOMAIN_ID', str(100 + os.getpid() % 120))


class TwistListener:
    def __init__(self):
        from geometry_msgs.msg import Twist
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('teleop_probe', context=self.context)
        self.msgs = []
        self.node.create_subscription(Twist, 'cmd_vel', self.msgs.append, 50)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def wait_for(self, cmd, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
            if self.msgs and _as_tuple(self.msgs[-1]) == pytest.approx(cmd):
                return
        got = _as_tuple(self.msgs[-1]) if self.msgs else None
        raise AssertionError(f'no Twist {cmd} on cmd_vel within {timeout} s (last: {got})')

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _as_tuple(msg):
    return (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.z, msg.angular.y)


@pytest.mark.ros
def test_node_publishes_documented_twists_through_a_pty():
    listener = TwistListener()
    master, slave = pty.openpty()
    attrs_before = termios.tcgetattr(slave)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'worldscape_ros.ros.keyboard_teleop', '--ros-args', '-p', 'hold_timeout:=0.0',
         '-p', 'linear_speed:=0.5', '-p', 'turn_speed:=0.4', '-p', 'pitch_speed:=0.2', '-p', 'speed_step:=2.0'],
        stdin=slave, stdout=slave, stderr=subprocess.PIPE, start_new_session=True)
    try:
        listener.wait_for((0, 0, 0, 0, 0), timeout=20.0)  # idle publishing at the rate
        for keys, cmd in [(b'w', (0.5, 0, 0, 0, 0)), (b'q', (0.5, 0, 0, 0.4, 0)), (b'+', (1.0, 0, 0, 0.8, 0)),
                          (b' ', (0, 0, 0, 0, 0)), (b'\x1b[B', (-1.0, 0, 0, 0, 0)), (b'\x1bOC', (-1.0, 0, 0, -0.8, 0)),
                          (b'-f', (-0.5, 0, 0, -0.4, 0.2)), (b'd', (-0.5, -0.5, 0, -0.4, 0.2))]:
            os.write(master, keys)
            listener.wait_for(cmd)
        os.write(master, b'w')
        listener.wait_for((0.5, -0.5, 0, -0.4, 0.2))
        os.write(master, b'\x03')  # Ctrl-C in raw mode: the node stops the robot and exits
        listener.wait_for((0, 0, 0, 0, 0))
        assert proc.wait(timeout=10) == 0
        assert termios.tcgetattr(slave) == attrs_before, 'the terminal was not restored'
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
        listener.close()


@pytest.mark.ros
def test_node_refuses_a_stdin_that_is_not_a_terminal():
    proc = subprocess.run([sys.executable, '-m', 'worldscape_ros.ros.keyboard_teleop'], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert 'needs an interactive terminal' in proc.stderr + proc.stdout
