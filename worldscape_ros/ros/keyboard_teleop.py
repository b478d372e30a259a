"""Keyboard teleoperation in a raw terminal: keys -> geometry_msgs/Twist on `cmd_vel`.

Works wherever a terminal does (a local console, SSH, tmux, screen): it reads stdin with termios raw mode and
select, no X server or keyboard device needed. Keys (documented in docs/recording.md):

    w / Up      forward  (+linear.x)        s / Down    backward (-linear.x)
    a           strafe left (+linear.y)     d           strafe right (-linear.y)
    q / Left    turn left (+angular.z)      e / Right   turn right (-angular.z)
    r           pitch the camera up (-angular.y: positive pitch looks down, model.kinematics)
    f           pitch the camera down (+angular.y)
    space       stop everything             + / =       all speeds x speed_step;  - / _  all speeds / speed_step
    Ctrl-C, Ctrl-D   quit (a zero Twist is published first)

A movement key commands its axis for `hold_timeout` seconds after the last press (terminal key repeat keeps a
held key alive), then that axis falls back to zero, so a dropped SSH link cannot leave the robot driving;
`hold_timeout: 0` latches commands until space. The opposite key on the same axis replaces the command.
"""

from __future__ import annotations

import math
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from worldscape_ros.ros.node_main import companion_node, declare, refuse

if TYPE_CHECKING:
    from rclpy.node import Node

# Axes of the command, in Twist order used by NavAction: linear.x, linear.y, linear.z, angular.z, angular.y.
AXES = ('vx', 'vy', 'vz', 'yaw_rate', 'pitch_rate')
Command = tuple[float, float, float, float, float]  # one value per axis, in AXES order

# key -> (axis, sign); the magnitude comes from the axis' speed (linear, turn or pitch).
KEY_BINDINGS: dict[str, tuple[str, float]] = {
    'w': ('vx', 1.0), 'up': ('vx', 1.0),
    's': ('vx', -1.0), 'down': ('vx', -1.0),
    'a': ('vy', 1.0), 'd': ('vy', -1.0),
    'q': ('yaw_rate', 1.0), 'left': ('yaw_rate', 1.0),
    'e': ('yaw_rate', -1.0), 'right': ('yaw_rate', -1.0),
    'r': ('pitch_rate', -1.0), 'f': ('pitch_rate', 1.0),
}
STOP_KEYS = {' '}
FASTER_KEYS = {'+', '='}
SLOWER_KEYS = {'-', '_'}
QUIT_KEYS = {'\x03', '\x04'}  # Ctrl-C, Ctrl-D arrive as bytes in raw mode

# ANSI (normal and application cursor mode, as tmux and some SSH clients send) arrow sequences.
ESCAPES = {'\x1b[A': 'up', '\x1b[B': 'down', '\x1b[C': 'right', '\x1b[D': 'left',
           '\x1bOA': 'up', '\x1bOB': 'down', '\x1bOC': 'right', '\x1bOD': 'left'}

HELP = (
    'WorldScape keyboard teleop: w/s or Up/Down forward/back, a/d strafe, q/e or Left/Right turn, r/f pitch,\r\n'
    'space stop, +/- speed, Ctrl-C quit.\r\n'
)


@dataclass
class TeleopConfig:
    """Speeds at level 1 and how the speed steps and hold timeout behave."""

    linear_speed: float = 0.5  # m/s
    turn_speed: float = 0.5  # rad/s
    pitch_speed: float = 0.3  # rad/s
    speed_step: float = 1.25  # factor per + or - press
    max_scale: float = 4.0  # speeds never exceed max_scale x the configured speeds
    hold_timeout: float = 0.6  # s an axis stays commanded after its last key press; 0 latches

    def __post_init__(self) -> None:
        for name in ('linear_speed', 'turn_speed', 'pitch_speed', 'max_scale'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be positive and finite, got {value}')
        if not (math.isfinite(self.speed_step) and self.speed_step > 1.0):
            raise ValueError(f'speed_step must be a finite factor above 1, got {self.speed_step}')
        if not (math.isfinite(self.hold_timeout) and self.hold_timeout >= 0):
            raise ValueError(f'hold_timeout must be >= 0 seconds, got {self.hold_timeout}')


def split_keys(buffer: str) -> tuple[list[str], str]:
    """Split terminal input into key names; returns (keys, an incomplete escape sequence left over)."""
    keys: list[str] = []
    i = 0
    while i < len(buffer):
        if buffer[i] == '\x1b':
            rest = buffer[i:]
            if len(rest) == 1 or (len(rest) == 2 and rest[1] in '[O'):
                return keys, rest  # the rest of the sequence is still on its way
            if rest[1] not in '[O':
                keys.append('escape')
                i += 1
                continue
            if rest[:3] in ESCAPES:
                keys.append(ESCAPES[rest[:3]])
                i += 3
                continue
            # another control sequence (e.g. Page Up '\x1b[5~'): skip to its final byte
            j = i + 2
            while j < len(buffer) and not ('@' <= buffer[j] <= '~'):
                j += 1
            if j >= len(buffer):
                return keys, rest
            i = j + 1
            continue
        ch = buffer[i]
        keys.append(ch.lower() if ch.isalpha() else ch)
        i += 1
    return keys, ''


@dataclass
class KeyboardMapper:
    """Key presses -> the commanded velocity, with per-axis hold timeouts and speed steps (no ROS)."""

    config: TeleopConfig = field(default_factory=TeleopConfig)
    scale: float = 1.0
    quit: bool = False
    _command: dict[str, float] = field(default_factory=lambda: dict.fromkeys(AXES, 0.0))
    _deadline: dict[str, float] = field(default_factory=lambda: dict.fromkeys(AXES, math.inf))

    def axis_speed(self, axis: str) -> float:
        base = {'vx': self.config.linear_speed, 'vy': self.config.linear_speed, 'vz': self.config.linear_speed,
                'yaw_rate': self.config.turn_speed, 'pitch_rate': self.config.pitch_speed}[axis]
        return base * self.scale

    def press(self, key: str, now: float) -> bool:
        """Apply one key at time `now` (seconds); returns whether the key meant anything."""
        if key in QUIT_KEYS:
            self.stop()
            self.quit = True
        elif key in STOP_KEYS:
            self.stop()
        elif key in FASTER_KEYS or key in SLOWER_KEYS:
            factor = self.config.speed_step if key in FASTER_KEYS else 1.0 / self.config.speed_step
            new_scale = min(max(self.scale * factor, 1.0 / self.config.max_scale), self.config.max_scale)
            ratio = new_scale / self.scale
            self.scale = new_scale
            for axis in AXES:  # the axes already moving change speed at once
                self._command[axis] *= ratio
        elif key in KEY_BINDINGS:
            axis, sign = KEY_BINDINGS[key]
            self._command[axis] = sign * self.axis_speed(axis)
            timeout = self.config.hold_timeout
            self._deadline[axis] = now + timeout if timeout > 0 else math.inf
        else:
            return False
        return True

    def stop(self) -> None:
        for axis in AXES:
            self._command[axis] = 0.0
            self._deadline[axis] = math.inf

    def command(self, now: float) -> Command:
        """(vx, vy, vz, yaw_rate, pitch_rate) commanded at time `now`; expired axes fall back to zero."""
        for axis in AXES:
            if now > self._deadline[axis]:
                self._command[axis] = 0.0
                self._deadline[axis] = math.inf
        vx, vy, vz, wz, wy = (self._command[a] for a in AXES)
        return vx, vy, vz, wz, wy


class RawTerminal:
    """stdin in raw mode for the lifetime of the context (restored on exit, also after errors)."""

    def __init__(self, fd: int) -> None:
        if not os.isatty(fd):
            raise RuntimeError('keyboard_teleop needs an interactive terminal on stdin (run it in a terminal, '
                               'over SSH with -t, or in tmux; not through ros2 launch without a prefix)')
        self.fd = fd
        self._saved: list | None = None

    def __enter__(self) -> RawTerminal:
        self._saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read(self, timeout: float) -> str:
        """Whatever keys arrived within `timeout` seconds ('' if none)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return ''
        data = os.read(self.fd, 1024)
        if not data:
            return '\x04'  # end of input behaves as Ctrl-D
        return data.decode('utf-8', errors='ignore')


def declare_parameters(node: Node) -> dict[str, float]:
    """The node's parameters by name, declared with descriptions: TeleopConfig's fields and `rate` (Hz)."""
    defaults = TeleopConfig()
    described = {
        'linear_speed': (defaults.linear_speed, 'forward/strafe speed at level 1, m/s'),
        'turn_speed': (defaults.turn_speed, 'yaw rate at level 1, rad/s'),
        'pitch_speed': (defaults.pitch_speed, 'camera pitch rate at level 1, rad/s'),
        'speed_step': (defaults.speed_step, 'factor applied by each + or - press'),
        'max_scale': (defaults.max_scale, 'largest speed multiple reachable with +'),
        'hold_timeout': (defaults.hold_timeout, 's an axis stays commanded after its last key press; 0 latches'),
        'rate': (20.0, 'Twist publishing rate, Hz'),
    }
    return {name: float(declare(node, name, value, text)) for name, (value, text) in described.items()}


def mapper_and_rate(parameters: dict[str, float]) -> tuple[KeyboardMapper, float]:
    """The key mapper and the publishing rate (Hz) the parameters describe; ValueError names a bad value."""
    values = dict(parameters)
    rate = values.pop('rate')
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f'rate must be positive, got {rate}')
    return KeyboardMapper(TeleopConfig(**values)), rate


class TwistPublisher:
    """Commands (in AXES order) as geometry_msgs/Twist on `cmd_vel`."""

    def __init__(self, node: Node) -> None:
        from geometry_msgs.msg import Twist

        self._twist = Twist
        self._publisher = node.create_publisher(Twist, 'cmd_vel', 10)

    def publish(self, cmd: Command) -> None:
        msg = self._twist()
        msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.z, msg.angular.y = cmd
        self._publisher.publish(msg)

    def stop(self) -> None:
        """Publish a zero Twist, so the robot is never left driving, and see it delivered."""
        from rclpy.duration import Duration

        self.publish((0.0, 0.0, 0.0, 0.0, 0.0))
        # Exiting right after publishing can drop the stop; wait (bounded) until subscribers acknowledged it.
        self._publisher.wait_for_all_acked(Duration(seconds=1.0))


def show(text: str) -> None:
    """Write `text` to the terminal at once (in raw mode a line must end in CR LF: a bare LF does not return)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def teleop_loop(terminal: RawTerminal, mapper: KeyboardMapper, publish: Callable[[Command], None],
                period: float) -> None:
    """Until a quit key or rclpy's shutdown: apply keys as they arrive, publish the command at each key and at
    least every `period` seconds, and show it on the terminal when it changes."""
    import rclpy

    clock = time.monotonic
    pending = ''
    last_shown: Command | None = None
    next_pub = clock()
    while not mapper.quit and rclpy.ok():
        text = terminal.read(max(0.0, next_pub - clock()))
        keys, pending = split_keys(pending + text)
        if not text and pending:
            pending = ''  # a lone Esc (or a cut sequence) with nothing after it: ignore it
        now = clock()
        for key in keys:
            mapper.press(key, now)
            if mapper.quit:
                break
        cmd = mapper.command(now)
        if keys or now >= next_pub:
            publish(cmd)
            next_pub = now + period
        if cmd != last_shown:
            show(f'\rvx {cmd[0]:+.2f} vy {cmd[1]:+.2f} yaw {cmd[3]:+.2f} pitch {cmd[4]:+.2f} (x{mapper.scale:.2f})   ')
            last_shown = cmd


def main(argv: list[str] | None = None) -> int:
    """Node: keys on stdin -> Twist on `cmd_vel`; exit code 2 for a bad parameter or a stdin that is no terminal."""
    with companion_node('keyboard_teleop', argv) as node:
        parameters = declare_parameters(node)
        try:
            mapper, rate = mapper_and_rate(parameters)
            terminal = RawTerminal(sys.stdin.fileno())
        except (ValueError, RuntimeError) as exc:
            return refuse(node, exc)
        cmd_vel = TwistPublisher(node)
        try:
            with terminal:
                show(HELP)
                teleop_loop(terminal, mapper, cmd_vel.publish, 1.0 / rate)
        except KeyboardInterrupt:
            pass
        finally:
            cmd_vel.stop()
            show('\r\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
