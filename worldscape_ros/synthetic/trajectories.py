"""Navigation action scripts: per-frame NavActions integrated at the episode's fps into camera poses.

Families for datagen ('random_walk', 'out_and_back', 'loop', 'turn_in_place', 'strafe') plan against a
scene's free space so the camera never drives through walls or furniture; `script_actions` gives the short
named scripts of the evaluation suites. Action list k leads from frame k to frame k + 1, so an episode of T
frames is driven by T - 1 actions (the episode stores a zero action for frame 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose, integrate
from worldscape_ros.synthetic.builder import ROBOT_RADIUS, FreeSpace

FAMILIES = ('random_walk', 'out_and_back', 'loop', 'turn_in_place', 'strafe')
SCRIPTS = ('straight', 'turn_left', 'turn_right', 'strafe', 'mixed', 'out_and_back', 'loop', 'idle',
           'corner_out_and_back', 'loop_revisit')  # new names go last: a script's index seeds its randomness
MAX_SPEED = 1.0  # m/s
MAX_YAW_RATE = math.radians(45)  # rad/s
HALF_TURN_RATE = math.radians(90)  # rad/s: out_and_back turns around faster, so both returns fit in 64 frames
CAMERA_HEIGHT = 1.0


def rollout(start: BaseState, actions: Sequence[NavAction], fps: float) -> list[BaseState]:
    """Base states for frame 0 (start) and after each action: len(actions) + 1 states."""
    dt = 1.0 / fps
    states = [start]
    for a in actions:
        states.append(integrate(states[-1], a, dt))
    return states


def poses_from_actions(start: BaseState, actions: Sequence[NavAction], fps: float) -> np.ndarray:
    """OpenCV camera-to-world poses (len(actions) + 1, 4, 4)."""
    return np.stack([camera_pose(s) for s in rollout(start, actions, fps)])


def make_safe(free: FreeSpace, start: BaseState, actions: Sequence[NavAction], fps: float,
              margin: float = ROBOT_RADIUS) -> list[NavAction]:
    """Shorten a script safely: from the first step that would leave free space on, the base stops
    translating (rotation and pitch continue), so the frame count is kept and nothing is driven through."""
    dt = 1.0 / fps
    state, out, blocked = start, [], False
    for a in actions:
        if not blocked:
            nxt = integrate(state, a, dt)
            if free.is_free(nxt.x, nxt.y, margin):
                out.append(a)
                state = nxt
                continue
            blocked = True
        a = NavAction(0.0, 0.0, 0.0, a.yaw_rate, a.pitch_rate)
        out.append(a)
        state = integrate(state, a, dt)
    return out


def is_collision_free(free: FreeSpace, start: BaseState, actions: Sequence[NavAction], fps: float,
                      margin: float = ROBOT_RADIUS) -> bool:
    return all(free.is_free(s.x, s.y, margin) for s in rollout(start, actions, fps))


def reverse_drive(actions: Sequence[NavAction]) -> list[NavAction]:
    """Retrace a path driving backwards: the same poses in reverse order (the same views repeat)."""
    return [NavAction(-a.vx, -a.vy, -a.vz, -a.yaw_rate, -a.pitch_rate) for a in reversed(actions)]


def retrace_turned(actions: Sequence[NavAction]) -> list[NavAction]:
    """Retrace a path forwards after a half turn: the same positions in reverse order, heading + pi."""
    return [NavAction(a.vx, a.vy, -a.vz, -a.yaw_rate, -a.pitch_rate) for a in reversed(actions)]


def half_turn(frames: int, fps: float, direction: float = 1.0) -> list[NavAction]:
    """Turn in place by exactly pi over `frames` frames."""
    rate = direction * math.pi * fps / frames
    return [NavAction(yaw_rate=rate) for _ in range(frames)]


def _turn_frames(fps: float) -> int:
    return max(1, math.ceil(math.pi / HALF_TURN_RATE * fps))


# -- named scripts (evaluation suites) ---------------------------------------------------------------------

def script_actions(name: str, frames: int, fps: float = 10.0, seed: int = 0) -> list[NavAction]:
    """`frames` actions for a named script; modest speeds (up to 1 m/s and 45 deg/s); 'idle' is all zero."""
    if name not in SCRIPTS:
        raise ValueError(f'unknown navigation script {name!r}; expected one of {", ".join(SCRIPTS)}')
    if frames < 0:
        raise ValueError(f'frames must be non-negative, got {frames}')
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f'fps must be positive, got {fps}')
    rng = np.random.default_rng([seed, SCRIPTS.index(name)])
    w = MAX_YAW_RATE
    if name == 'idle':
        return [NavAction() for _ in range(frames)]
    if name == 'straight':
        return [NavAction(vx=0.5) for _ in range(frames)]
    if name in ('turn_left', 'turn_right'):
        return [NavAction(yaw_rate=w if name == 'turn_left' else -w) for _ in range(frames)]
    if name == 'strafe':
        half = max(1, frames // 2)
        return [NavAction(vy=0.4 if k < half else -0.4) for k in range(frames)]
    if name == 'mixed':
        out: list[NavAction] = []
        while len(out) < frames:
            hold = int(rng.integers(3, 9))
            a = NavAction(vx=float(rng.uniform(0.0, 0.6)), vy=float(rng.uniform(-0.2, 0.2)),
                          yaw_rate=float(rng.uniform(-w, w)))
            out.extend([a] * hold)
        return out[:frames]
    if name == 'corner_out_and_back':
        return corner_out_and_back(frames, fps, rng)
    if name == 'loop_revisit':  # circles of radius 0.4 m / w, lap after lap: lap 2 revisits lap 1's views
        return [NavAction(vx=0.4, yaw_rate=w) for _ in range(frames)]
    if name == 'loop':  # a full circle of radius v / w, back to the start pose
        v = 0.4
        rate = 2 * math.pi * fps / max(frames, 1)
        rate = min(rate, w)
        return [NavAction(vx=v * rate / w, yaw_rate=rate) for _ in range(frames)]
    # out_and_back: forward for half, then drive backwards along the same path to the start pose
    out_n = frames // 2
    outbound = [NavAction(vx=0.5, yaw_rate=float(rng.uniform(-0.2, 0.2))) for _ in range(out_n)]
    back = reverse_drive(outbound)
    return outbound + back + [NavAction()] * (frames - 2 * out_n)


def corner_out_and_back(frames: int, fps: float, rng: np.random.Generator, speed: float = 0.5) -> list[NavAction]:
    """Around a corner and back: forward, a 90 deg turn (left or right, by the seed) at MAX_YAW_RATE, forward
    into what the start view cannot see, then the same path driven backwards to the start pose (the views
    of the way out return in reverse order); the leftover frame, if any, stands still. Short scripts turn less."""
    out_n = frames // 2
    turn_n = min(round(math.pi / 2 / MAX_YAW_RATE * fps), out_n // 2)
    first = (out_n - turn_n) // 2
    side = 1.0 if rng.random() < 0.5 else -1.0
    outbound = [NavAction(vx=speed)] * first + [NavAction(yaw_rate=side * MAX_YAW_RATE)] * turn_n + \
        [NavAction(vx=speed)] * (out_n - turn_n - first)
    return outbound + reverse_drive(outbound) + [NavAction()] * (frames - 2 * out_n)


# -- families (datagen), planned against free space ---------------------------------------------------------

def _best_heading(free: FreeSpace, state: BaseState, rng: np.random.Generator, reach: float = 2.0) -> float:
    """The yaw (of 16 candidates, randomly offset) with the most free distance ahead."""
    offset = float(rng.uniform(0, 2 * math.pi))
    best, best_d = state.yaw, -1.0
    for k in range(16):
        yaw = offset + k * math.pi / 8
        d = 0.0
        while d < reach and free.is_free(state.x + (d + 0.1) * math.cos(yaw), state.y + (d + 0.1) * math.sin(yaw)):
            d += 0.1
        if d > best_d:
            best, best_d = yaw, d
    return best


def _random_walk(free: FreeSpace, start: BaseState, n: int, fps: float, rng: np.random.Generator) -> list[NavAction]:
    dt = 1.0 / fps
    state, out = start, list[NavAction]()
    while len(out) < n:
        a = NavAction(vx=float(rng.uniform(0.2, MAX_SPEED)), vy=float(rng.uniform(-0.15, 0.15)),
                      yaw_rate=float(rng.uniform(-MAX_YAW_RATE, MAX_YAW_RATE)))
        for _ in range(int(rng.integers(4, 15))):
            if len(out) >= n:
                break
            nxt = integrate(state, a, dt)
            lookahead = integrate(nxt, a, 3 * dt)  # steer away before contact
            if not free.is_free(lookahead.x, lookahead.y) or not free.is_free(nxt.x, nxt.y):
                target = _best_heading(free, state, rng)
                turn = math.copysign(MAX_YAW_RATE, math.remainder(target - state.yaw, 2 * math.pi))
                a = NavAction(yaw_rate=turn)
                nxt = integrate(state, a, dt)
            out.append(a)
            state = nxt
    return out


def _out_and_back(free: FreeSpace, start: BaseState, n: int, fps: float,
                  rng: np.random.Generator) -> list[NavAction]:
    """A to B and back along the same path, ending at the start pose. Two ways back: driving backwards (the
    same poses in reverse, so the same views repeat) and turning around (half turn, drive forwards, half turn).
    Long episodes do both; shorter ones one of them, chosen by the seed, with legs of at least 8 frames."""
    turn = _turn_frames(fps)
    modes: tuple[str, ...]
    if n >= 4 * 16 + 2 * turn:
        modes, leg = ('reverse', 'turn'), (n - 2 * turn) // 4
    elif n >= 2 * 8 + 2 * turn and rng.random() < 0.5:
        modes, leg = ('turn',), (n - 2 * turn) // 2
    else:
        modes, leg = ('reverse',), n // 2
    outbound = make_safe(free, start, _random_walk(free, start, leg, fps, rng), fps)
    actions: list[NavAction] = []
    for mode in modes:
        if mode == 'reverse':
            actions += outbound + reverse_drive(outbound)
        else:
            direction = 1.0 if rng.random() < 0.5 else -1.0
            actions += outbound + half_turn(turn, fps, direction) + retrace_turned(outbound) + \
                half_turn(turn, fps, direction)
    return actions + [NavAction()] * (n - len(actions))  # rest at the start pose


def _loop(free: FreeSpace, start: BaseState, n: int, fps: float, rng: np.random.Generator) -> list[NavAction]:
    """Circles that revisit the start: the largest radius (and side) whose circle is free and closes within
    the episode, repeated."""
    for radius in (2.0, 1.5, 1.0, 0.7, 0.5, 0.3):
        for side in rng.permutation([-1.0, 1.0]):
            v = min(MAX_SPEED * 0.6, MAX_YAW_RATE * radius)
            a = NavAction(vx=v, yaw_rate=float(side) * v / radius)
            lap = max(1, round(2 * math.pi * radius / v * fps))
            if lap > n and radius > 0.3:
                continue  # a loop should close within the episode
            if is_collision_free(free, start, [a] * lap, fps):
                return [a] * n
    return [NavAction(yaw_rate=MAX_YAW_RATE)] * n  # nowhere to circle: turn in place, also a loop of views


def _turn_in_place(free: FreeSpace, start: BaseState, n: int, fps: float,
                   rng: np.random.Generator) -> list[NavAction]:
    rate = float(rng.uniform(0.4, 1.0)) * MAX_YAW_RATE * (1 if rng.random() < 0.5 else -1)
    return [NavAction(yaw_rate=rate)] * n


def _strafe(free: FreeSpace, start: BaseState, n: int, fps: float, rng: np.random.Generator) -> list[NavAction]:
    """Sideways with a little forward drift, bouncing back when the next step would be blocked."""
    dt = 1.0 / fps
    vy = float(rng.uniform(0.3, 0.6)) * (1 if rng.random() < 0.5 else -1)
    vx = float(rng.uniform(-0.1, 0.2))
    state, out = start, []
    for _ in range(n):
        a = NavAction(vx=vx, vy=vy)
        nxt = integrate(state, a, dt)
        if not free.is_free(nxt.x, nxt.y):
            vy, vx = -vy, -vx
            a = NavAction(vx=vx, vy=vy)
            nxt = integrate(state, a, dt)
            if not free.is_free(nxt.x, nxt.y):
                a, nxt = NavAction(), state
        out.append(a)
        state = nxt
    return out


_FAMILY_PLANNERS: dict[str, Callable[[FreeSpace, BaseState, int, float, np.random.Generator], list[NavAction]]] = {
    'random_walk': _random_walk, 'out_and_back': _out_and_back, 'loop': _loop,
    'turn_in_place': _turn_in_place, 'strafe': _strafe,
}


def family_actions(family: str, free: FreeSpace, start: BaseState, n: int, fps: float = 10.0,
                   seed: int = 0) -> list[NavAction]:
    """`n` collision-free actions of a datagen family from `start` in `free` space."""
    if family not in FAMILIES:
        raise ValueError(f'unknown trajectory family {family!r}; expected one of {", ".join(FAMILIES)}')
    if n < 0:
        raise ValueError(f'action count must be non-negative, got {n}')
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    actions = _FAMILY_PLANNERS[family](free, start, n, fps, rng)[:n]
    return make_safe(free, start, actions, fps)


def start_state(free: FreeSpace, rng: np.random.Generator, height: float = CAMERA_HEIGHT) -> BaseState:
    """A start pose in open free space, facing the most open direction."""
    x, y = free.sample(rng)
    state = BaseState(x=x, y=y, yaw=0.0, pitch=0.0, height=height)
    return BaseState(x=x, y=y, yaw=_best_heading(free, state, rng, reach=4.0), pitch=0.0, height=height)
