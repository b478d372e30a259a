"""What the page's teleop means: drive buttons that set a held velocity command (latest wins, as the simulator's
cmd_vel), speed sliders bounded by the robot's limits, and the session controls (pause, step, reset).

Every value from the page is checked here: a value outside its range is clamped and the page told so; a value
that is not a number is refused with a message. The page is a client on a socket: nothing it sends is trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.viewer import ViewerError

# button label -> (vx, vy, yaw_rate) as multiples of the linear and angular speed
DRIVE_BUTTONS: dict[str, tuple[float, float, float]] = {
    'Forward': (1.0, 0.0, 0.0),
    'Back': (-1.0, 0.0, 0.0),
    'Turn left': (0.0, 0.0, 1.0),
    'Turn right': (0.0, 0.0, -1.0),
    'Strafe left': (0.0, 1.0, 0.0),
    'Strafe right': (0.0, -1.0, 0.0),
    'Stop': (0.0, 0.0, 0.0),
}
MAX_STEP_FRAMES = 100


class Controller(Protocol):
    """What the page drives: the engine in `worldscape play`, the simulator's cmd_vel and services in ROS mode.
    Each session call returns a short message for the page, or raises ViewerError with the reason."""

    def set_command(self, action: NavAction) -> None: ...

    def pause(self) -> str: ...

    def resume(self) -> str: ...

    def step(self, frames: int) -> str: ...

    def reset(self) -> str: ...


@dataclass(frozen=True)
class Limits:
    """The page's ranges: speeds in m/s and rad/s (defaults: the simulator's max_linear/angular_velocity)."""

    max_linear: float = 1.0
    max_angular: float = 1.5

    def __post_init__(self) -> None:
        for name in ('max_linear', 'max_angular'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ViewerError(f'{name} must be a positive number, got {value}')


def checked_value(name: str, value: object, lo: float, hi: float) -> tuple[float, str]:
    """A number from the page brought into [lo, hi]: (value, '') or (clamped value, message).
    Raises ViewerError for what is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ViewerError(f'{name}: {value!r} is not a number; ignored')
    v = float(value)
    if not math.isfinite(v):
        raise ViewerError(f'{name}: {v} is not a finite number; ignored')
    if v < lo or v > hi:
        c = min(max(v, lo), hi)
        return c, f'{name} {v:g} is outside [{lo:g}, {hi:g}]: clamped to {c:g}'
    return v, ''


def checked_frames(value: object) -> int:
    """Frames to step from the page: a whole number in [1, MAX_STEP_FRAMES], else refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ViewerError(f'step frames: {value!r} is not a number; refused')
    if float(value) != int(value) or not 1 <= int(value) <= MAX_STEP_FRAMES:
        raise ViewerError(f'step frames must be a whole number in [1, {MAX_STEP_FRAMES}], got {value}; refused')
    return int(value)


class Drive:
    """The held command: the last drive button pressed, scaled by the speed sliders."""

    def __init__(self, limits: Limits, linear: float | None = None, angular: float | None = None) -> None:
        self.limits = limits
        self.linear = limits.max_linear / 2 if linear is None else linear
        self.angular = limits.max_angular / 2 if angular is None else angular
        self.button = 'Stop'

    def press(self, button: str) -> NavAction:
        if button not in DRIVE_BUTTONS:
            raise ViewerError(f'unknown drive button {button!r} (one of {", ".join(DRIVE_BUTTONS)})')
        self.button = button
        return self.action

    def set_linear(self, value: object) -> str:
        """Linear speed from the slider (clamped to [0, max_linear]); returns the page's message, if any."""
        self.linear, msg = checked_value('linear speed (m/s)', value, 0.0, self.limits.max_linear)
        return msg

    def set_angular(self, value: object) -> str:
        self.angular, msg = checked_value('turn speed (rad/s)', value, 0.0, self.limits.max_angular)
        return msg

    @property
    def action(self) -> NavAction:
        fx, fy, fyaw = DRIVE_BUTTONS[self.button]
        return NavAction(vx=fx * self.linear, vy=fy * self.linear, yaw_rate=fyaw * self.angular)
