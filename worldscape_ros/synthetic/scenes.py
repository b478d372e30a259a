"""Procedural MuJoCo scenes from an integer seed: indoor rooms, outdoor yards, a manipulation table, and
furnished rooms (furnished.py).

A SceneSpec (builder.py) holds the MJCF text and its in-memory texture assets (both a pure function of kind and
seed, so re-rendering a seed is byte-identical), the free space a ground robot may drive in, and for the table the
objects a hand can pick up. World frame REP-103: x forward, y left, z up, metres.
"""

from __future__ import annotations

import math

import numpy as np

from worldscape_ros.synthetic.builder import FreeSpace, SceneBuilder, SceneSpec, TableObject, fmt
from worldscape_ros.synthetic.furnished import FurnishedBuilder
from worldscape_ros.synthetic.hand import hand_mjcf
from worldscape_ros.synthetic.kinds import SCENE_KINDS


def make_scene(kind: str, seed: int) -> SceneSpec:
    """A procedural scene of `kind` ('room', 'yard', 'table' or 'furnished': synthetic/furnished.py) from an
    integer seed."""
    if kind not in SCENE_KINDS:
        raise ValueError(f'unknown scene kind {kind!r}; expected one of {", ".join(SCENE_KINDS)}')
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f'scene seed must be a non-negative integer, got {seed!r}')
    rng = np.random.default_rng([int(seed), SCENE_KINDS.index(kind)])
    if kind == 'furnished':
        return FurnishedBuilder(rng).furnished(seed)
    builder = _KindBuilder(rng)
    if kind == 'room':
        return builder.room(seed)
    if kind == 'yard':
        return builder.yard(seed)
    return builder.table(seed)


class _KindBuilder(SceneBuilder):
    """The builder with the generator's first three kinds."""

    # -- kinds -------------------------------------------------------------------------------------------
    def room(self, seed: int) -> SceneSpec:
        hx, hy = self.rng.uniform(2.5, 4.0, 2)
        height = float(self.rng.uniform(2.6, 3.2))
        self.walled_room(hx, hy, height, openings=int(self.rng.integers(1, 3)))
        boxes, circles = self.scatter(int(self.rng.integers(4, 8)), (hx - 0.4, hy - 0.4), (0.25, 0.6), (0.4, 1.6),
                                      keep_clear=[(0.0, 0.0, 0.6)])
        self.lights(int(self.rng.integers(2, 5)), height - 0.1, (hx * 0.8, hy * 0.8))
        extent = float(math.hypot(hx + 2.4, hy + 2.4) * 2)
        free = FreeSpace((-hx, hx, -hy, hy), np.array(boxes).reshape(-1, 5), np.array(circles).reshape(-1, 3))
        return SceneSpec('room', seed, self.document(extent), self.assets, free, max_depth=extent)

    def yard(self, seed: int) -> SceneSpec:
        half = 20.0
        ground = self.material(repeat=0.25, shapes=120, contrast=0.6)
        self.geom('box', (0, 0, -0.05), (half, half, 0.05), ground, name='ground')
        boxes, circles = self.scatter(int(self.rng.integers(30, 45)), (12.0, 12.0), (0.3, 1.2), (0.5, 2.5),
                                      keep_clear=[(0.0, 0.0, 1.0)])
        # fences/sheds at the edge so the horizon is not empty
        fence = self.object_materials()[0]
        for _ in range(int(self.rng.integers(3, 7))):
            a = self.rng.uniform(0, 2 * math.pi)
            d = self.rng.uniform(15.0, 18.0)
            w, h = self.rng.uniform(1.0, 4.0), self.rng.uniform(1.0, 3.5)
            self.geom('box', (d * math.cos(a), d * math.sin(a), h / 2), (0.3, w, h / 2), fence, euler=(0, 0, a),
                      tint=True)
        self.lights(1, 30.0, (5.0, 5.0), directional=True)
        extent = 2 * half * math.sqrt(2)
        bound = 13.0
        free = FreeSpace((-bound, bound, -bound, bound), np.array(boxes).reshape(-1, 5),
                         np.array(circles).reshape(-1, 3))
        return SceneSpec('yard', seed, self.document(extent, skybox=True), self.assets, free, max_depth=extent)

    def table(self, seed: int) -> SceneSpec:
        hx, hy = self.rng.uniform(1.8, 2.5, 2)
        height = float(self.rng.uniform(2.6, 3.0))
        self.walled_room(hx, hy, height, openings=0)
        top = float(self.rng.uniform(0.72, 0.8))
        tx, ty = 0.45, 0.6  # table half extents (m)
        table_mat = self.material(repeat=0.4, shapes=60, contrast=0.35)
        self.geom('box', (0.0, 0.0, top - 0.02), (tx, ty, 0.02), table_mat, name='table_top')
        leg_mat = self.object_materials()[0]
        for sx in (-1, 1):
            for sy in (-1, 1):
                self.geom('box', (sx * (tx - 0.05), sy * (ty - 0.05), (top - 0.04) / 2), (0.03, 0.03, (top - 0.04) / 2),
                          leg_mat)
        objects = []
        spots: list[tuple[float, float]] = []
        for i in range(int(self.rng.integers(3, 6))):
            shape = str(self.rng.choice(['box', 'cylinder', 'sphere']))
            r = float(self.rng.uniform(0.022, 0.032))
            hh = r if shape == 'sphere' else float(self.rng.uniform(0.025, 0.045))
            for _ in range(50):
                x, y = float(self.rng.uniform(-0.12, 0.15)), float(self.rng.uniform(-0.22, 0.22))
                if all(math.hypot(x - a, y - b) > 0.11 for a, b in spots):
                    break
            spots.append((x, y))
            pos = np.array([x, y, top + hh])
            rgba = fmt(*self.rng.uniform(0.1, 0.95, 3), 1.0)
            size = {'box': fmt(r, r, hh), 'cylinder': fmt(r, hh), 'sphere': fmt(r)}[shape]
            name = f'object{i}'
            self.body_xml.append(f'<body name="{name}" mocap="true" pos="{fmt(*pos)}"><geom name="{name}_geom" '
                                 f'type="{shape}" size="{size}" rgba="{rgba}" contype="0" conaffinity="0"/></body>')
            objects.append(TableObject(name, shape, pos, hh))
        self.body_xml.append(hand_mjcf(rgba=fmt(*self._hand_colour(table_mat), 1.0)))
        self.lights(int(self.rng.integers(2, 4)), height - 0.1, (1.0, 1.0))
        extent = float(math.hypot(hx, hy) * 2 + 1)
        free = FreeSpace((-hx, hx, -hy, hy), np.array([[0.0, 0.0, tx, ty, 0.0]]), np.zeros((0, 3)))
        return SceneSpec('table', seed, self.document(extent), self.assets, free, max_depth=extent, table_top=top,
                         objects=tuple(objects))
