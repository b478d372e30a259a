"""The scene builder every procedural scene kind is made with: MJCF assets and geoms accumulated while every
random choice is drawn from one numpy Generator (so a kind and seed give the same scene byte for byte), the walled
room shell, furniture scattering, lights, and what a scene is (SceneSpec: MJCF, textures, free space). The kinds
themselves are in scenes.py (room, yard, table) and furnished.py. World frame REP-103: x forward, y left, z up,
metres.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import mujoco
import numpy as np

from worldscape_ros.synthetic.textures import texture_png

SHELL_GAP = 2.0  # m between a room's walls and the outer shell seen through its doorways
ROBOT_RADIUS = 0.35  # clearance the navigation camera keeps from walls and furniture (m)
# Skin tones and gloves for the hand (RGB in [0, 1]).
HAND_COLOURS = np.array([[0.86, 0.66, 0.52], [0.55, 0.37, 0.26], [0.96, 0.82, 0.70], [0.15, 0.35, 0.85],
                         [0.92, 0.92, 0.92], [0.20, 0.70, 0.30], [0.95, 0.60, 0.10], [0.10, 0.10, 0.12]])


@dataclass(frozen=True)
class FreeSpace:
    """Where a ground robot may stand: inside an axis-aligned rectangle, outside every obstacle footprint.

    boxes: (N, 5) rows [cx, cy, hx, hy, yaw] (rotated rectangles); circles: (M, 3) rows [cx, cy, r].
    """

    bounds: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax
    boxes: np.ndarray
    circles: np.ndarray

    def clearance(self, x: float, y: float) -> float:
        """Signed distance (m) from (x, y) to the nearest wall or obstacle; negative inside one."""
        xmin, xmax, ymin, ymax = self.bounds
        d = min(x - xmin, xmax - x, y - ymin, ymax - y)
        if len(self.circles):
            d = min(d, float(np.min(np.hypot(self.circles[:, 0] - x, self.circles[:, 1] - y) - self.circles[:, 2])))
        if len(self.boxes):
            b = self.boxes
            dx, dy = x - b[:, 0], y - b[:, 1]
            c, s = np.cos(b[:, 4]), np.sin(b[:, 4])
            qx = np.abs(c * dx + s * dy) - b[:, 2]  # point in each box's frame, minus half extents
            qy = np.abs(-s * dx + c * dy) - b[:, 3]
            outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
            d = min(d, float(outside.min()))
        return float(d)

    def is_free(self, x: float, y: float, margin: float = ROBOT_RADIUS) -> bool:
        return self.clearance(x, y) >= margin

    def sample(self, rng: np.random.Generator, margin: float = ROBOT_RADIUS, tries: int = 2000) -> tuple[float, float]:
        """A free point, preferring the most open of a few candidates."""
        xmin, xmax, ymin, ymax = self.bounds
        best, best_c = None, -math.inf
        found = 0
        for _ in range(tries):
            x, y = float(rng.uniform(xmin, xmax)), float(rng.uniform(ymin, ymax))
            c = self.clearance(x, y)
            if c >= margin:
                found += 1
                if c > best_c:
                    best, best_c = (x, y), c
                if found >= 8:
                    break
        if best is None:
            raise ValueError(f'no free space with margin {margin} m in this scene')
        return best


@dataclass(frozen=True)
class TableObject:
    """An object on the manipulation table (a mocap body, so a hand can carry it kinematically)."""

    name: str
    shape: str  # box | cylinder | sphere
    position: np.ndarray  # centre at rest on the table (world, m)
    half_height: float


@dataclass(frozen=True)
class SceneSpec:
    kind: str
    seed: int
    mjcf: str
    assets: dict[str, bytes]
    free_space: FreeSpace
    max_depth: float  # depth beyond this (sky, seams) is clamped to it (m)
    table_top: float = 0.0
    objects: tuple[TableObject, ...] = field(default_factory=tuple)

    def build_model(self) -> mujoco.MjModel:
        """The MuJoCo model (deterministic: same kind and seed give the same model)."""
        return mujoco.MjModel.from_xml_string(self.mjcf, dict(self.assets))


def fmt(*values: float) -> str:
    """Numbers as the MJCF attributes hold them: '0.1000 2.0000'."""
    return ' '.join(f'{v:.4f}' for v in values)


class SceneBuilder:
    """Accumulates MJCF assets and geoms while drawing every random choice from one Generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.assets: dict[str, bytes] = {}
        self.asset_xml: list[str] = []
        self.body_xml: list[str] = []
        self.n_geoms = 0
        self._object_mats: list[str] = []

    # -- materials ---------------------------------------------------------------------------------------
    def material(self, repeat: float = 1.0, shapes: int = 80, contrast: float = 0.5, cube: bool = False) -> str:
        """A textured material. 2D textures are projected along the geom's z, so they suit horizontal surfaces
        (floor, ceiling, table top); walls and furniture take cube textures (the image on every face)."""
        name = f'mat{len(self.asset_xml)}'
        png = f'{name}.png'
        # Each texture costs about 20 ms of MjrContext set-up under osmesa whatever its size, so scenes use
        # few textures and geoms tint them with their own rgba.
        self.assets[png] = texture_png(self.rng, 256, shapes, contrast)
        mapping = '' if cube else f' texrepeat="{fmt(repeat, repeat)}" texuniform="true"'
        self.asset_xml.append(f'<texture name="{name}_tex" type="{"cube" if cube else "2d"}" file="{png}"/>')
        self.asset_xml.append(f'<material name="{name}" texture="{name}_tex"{mapping} '
                              f'specular="{self.rng.uniform(0.05, 0.4):.3f}" '
                              f'shininess="{self.rng.uniform(0.1, 0.6):.3f}"/>')
        return name

    def _hand_colour(self, table_material: str) -> np.ndarray:
        """A skin tone or glove colour far from the table's mean colour, so the hand stands out against it."""
        bgr = cv2.imdecode(np.frombuffer(self.assets[f'{table_material}.png'], np.uint8), cv2.IMREAD_COLOR)
        assert bgr is not None  # we encoded it ourselves
        table = bgr.reshape(-1, 3).mean(axis=0)[::-1] / 255.0
        distance = np.linalg.norm(HAND_COLOURS - table, axis=1)
        best_two = np.argsort(distance)[-2:]
        return HAND_COLOURS[int(best_two[int(self.rng.integers(2))])]

    def _tint(self) -> np.ndarray:
        return np.append(0.5 + 0.5 * self.rng.random(3), 1.0)

    def object_materials(self) -> list[str]:
        """Two cube-textured materials shared by every piece of furniture (tinted per geom)."""
        if not self._object_mats:
            self._object_mats = [self.material(cube=True) for _ in range(2)]
        return self._object_mats

    def geom(self, gtype: str, pos: tuple[float, ...], size: tuple[float, ...], material: str,
             euler: tuple[float, float, float] | None = None, name: str | None = None,
             tint: bool | np.ndarray = False) -> None:
        name = name or f'g{self.n_geoms}'
        self.n_geoms += 1
        rot = f' euler="{fmt(*euler)}"' if euler is not None else ''  # radians (compiler angle="radian")
        if isinstance(tint, np.ndarray):
            rgba = f' rgba="{fmt(*tint)}"'
        else:
            rgba = f' rgba="{fmt(*self._tint())}"' if tint else ''
        self.body_xml.append(f'<geom name="{name}" type="{gtype}" pos="{fmt(*pos)}" size="{fmt(*size)}" '
                             f'material="{material}"{rot}{rgba}/>')

    def lights(self, count: int, z: float, span: tuple[float, float], directional: bool = False) -> None:
        for i in range(count):
            x, y = self.rng.uniform(-span[0], span[0]), self.rng.uniform(-span[1], span[1])
            tint = 0.75 + 0.25 * self.rng.random(3)
            diffuse = tint * self.rng.uniform(0.45, 0.8)
            kind = f'directional="true" dir="{fmt(*self.rng.uniform(-0.4, 0.4, 2), -1.0)}"' if directional \
                else 'dir="0 0 -1"'
            self.body_xml.append(f'<light name="light{i}" pos="{fmt(x, y, z)}" {kind} diffuse="{fmt(*diffuse)}" '
                                 f'specular="0.1 0.1 0.1" castshadow="false" attenuation="1 0.02 0.01"/>')

    def document(self, extent: float, skybox: bool = False) -> str:
        ambient = self.rng.uniform(0.25, 0.4)
        sky = ''
        if skybox:
            top, bottom = 0.35 + 0.3 * self.rng.random(3), 0.75 + 0.2 * self.rng.random(3)
            top[2] = max(top[2], 0.8)
            sky = (f'<texture name="sky" type="skybox" builtin="gradient" rgb1="{fmt(*top)}" rgb2="{fmt(*bottom)}" '
                   f'width="256" height="256"/>')
        return f"""<mujoco model="worldscape_scene">
  <compiler texturedir="." angle="radian"/>
  <statistic extent="{extent:.3f}" center="0 0 1"/>
  <visual>
    <global offwidth="1024" offheight="1024"/>
    <headlight ambient="{fmt(ambient, ambient, ambient)}" diffuse="0.25 0.25 0.25" specular="0 0 0"/>
    <map znear="{0.02 / extent:.6f}" zfar="1.2"/>
    <quality shadowsize="0" numslices="12" numstacks="6"/>
  </visual>
  <asset>
    {sky}
    {chr(10).join('    ' + a for a in self.asset_xml)}
  </asset>
  <worldbody>
{chr(10).join('    ' + b for b in self.body_xml)}
  </worldbody>
</mujoco>
"""

    # -- shells ------------------------------------------------------------------------------------------
    def walled_room(self, hx: float, hy: float, height: float, openings: int) -> None:
        """Floor, ceiling and four walls, with doorways. Walls are vertical planes facing the room, so their
        2D textures map without stretching; each runs past the corners and into floor and ceiling, so no seam
        between them leaks the void. Behind doorways an outer shell closes the view.
        """
        floor, ceiling = self.material(repeat=0.5), self.material(repeat=0.5, contrast=0.3)
        self.slabs(hx + SHELL_GAP, hy + SHELL_GAP, height, floor, ceiling)
        doors = set(self.rng.choice(4, size=openings, replace=False).tolist()) if openings else set()
        mat = self.material(repeat=0.7)  # one texture for every wall, tinted per wall: each texture costs time
        for side in range(4):
            self.side_wall(side, hx, hy, height, mat, self._tint, (0.9, 1.4) if side in doors else None)
        if doors:  # the outer shell seen through doorways
            for side in range(4):
                self.side_wall(side, hx + SHELL_GAP, hy + SHELL_GAP, height, mat, self._tint)

    def slabs(self, hx: float, hy: float, height: float, floor: str, ceiling: str) -> None:
        """The floor and the ceiling, reaching a little past walls at hx, hy."""
        self.geom('box', (0, 0, -0.05), (hx + 0.2, hy + 0.2, 0.05), floor, name='floor')
        self.geom('box', (0, 0, height + 0.05), (hx + 0.2, hy + 0.2, 0.05), ceiling, name='ceiling')

    def side_wall(self, side: int, hx: float, hy: float, height: float, mat: str, tint: Callable[[], np.ndarray],
                  door_width: tuple[float, float] | None = None) -> None:
        """The wall on `side` of a room of half extents hx, hy (see _wall), floor to ceiling; with door_width (m,
        the range its width is drawn from), a doorway in it: the wall either side and a lintel over it."""
        along = hx if side >= 2 else hy  # half length of this wall
        if door_width is None:
            self._wall(side, hx, hy, (-along - 0.05, along + 0.05), (-0.05, height + 0.05), mat, tint())
            return
        width = self.rng.uniform(*door_width)
        centre = self.rng.uniform(-along + width, along - width)
        lintel = self.rng.uniform(2.0, min(2.3, height - 0.2))
        colour = tint()
        self._wall(side, hx, hy, (-along - 0.05, centre - width / 2), (-0.05, height + 0.05), mat, colour)
        self._wall(side, hx, hy, (centre + width / 2, along + 0.05), (-0.05, height + 0.05), mat, colour)
        self._wall(side, hx, hy, (centre - width / 2, centre + width / 2), (lintel, height + 0.05), mat, colour)

    def _wall(self, side: int, hx: float, hy: float, span: tuple[float, float], z: tuple[float, float],
              mat: str, tint: np.ndarray) -> None:
        """A wall plane on side 0 (x = +hx), 1 (x = -hx), 2 (y = +hy) or 3 (y = -hy), facing the centre.

        span runs along the wall (y for sides 0 and 1, x for 2 and 3); z is its bottom and top.
        """
        mid, half = 0.5 * (span[0] + span[1]), 0.5 * (span[1] - span[0])
        zc, zh = 0.5 * (z[0] + z[1]), 0.5 * (z[1] - z[0])
        half_pi = 0.5 * math.pi
        if side == 0:  # plane normal (local z) -> -x; local x -> up, local y -> y
            self.geom('plane', (hx, mid, zc), (zh, half, 1.0), mat, euler=(0.0, -half_pi, 0.0), tint=tint)
        elif side == 1:
            self.geom('plane', (-hx, mid, zc), (zh, half, 1.0), mat, euler=(0.0, half_pi, 0.0), tint=tint)
        elif side == 2:  # normal -> -y; local x -> x, local y -> up
            self.geom('plane', (mid, hy, zc), (half, zh, 1.0), mat, euler=(half_pi, 0.0, 0.0), tint=tint)
        else:
            self.geom('plane', (mid, -hy, zc), (half, zh, 1.0), mat, euler=(-half_pi, 0.0, 0.0), tint=tint)

    def scatter(self, count: int, region: tuple[float, float], sizes: tuple[float, float], heights: tuple[float, float],
                keep_clear: list[tuple[float, float, float]]) -> tuple[list[list[float]], list[list[float]]]:
        """Furniture-like boxes, cylinders and spheres on the floor, not overlapping each other.

        Returns their footprints (boxes [cx, cy, hx, hy, yaw], circles [cx, cy, r]) for the free space.
        """
        boxes: list[list[float]] = []
        circles: list[list[float]] = []
        placed: list[tuple[float, float, float]] = list(keep_clear)
        mats = self.object_materials()
        for _ in range(count):
            for _attempt in range(30):
                shape = self.rng.choice(['box', 'box', 'cylinder', 'sphere'])
                r = float(self.rng.uniform(*sizes))
                x, y = float(self.rng.uniform(-region[0], region[0])), float(self.rng.uniform(-region[1], region[1]))
                if all(math.hypot(x - px, y - py) > r + pr + 0.1 for px, py, pr in placed):
                    break
            else:
                continue
            placed.append((x, y, r * 1.42))
            mat = mats[int(self.rng.integers(len(mats)))]
            h = float(self.rng.uniform(*heights))
            if shape == 'box':
                hx, hy = r, float(self.rng.uniform(0.5, 1.0)) * r
                yaw = float(self.rng.uniform(0, math.pi))
                self.geom('box', (x, y, h / 2), (hx, hy, h / 2), mat, euler=(0, 0, yaw), tint=True)
                boxes.append([x, y, hx, hy, yaw])
                if self.rng.random() < 0.4:  # something standing on it
                    rs = min(hx, hy) * 0.5
                    self.geom('sphere', (x, y, h + rs), (rs,), mats[int(self.rng.integers(len(mats)))], tint=True)
            elif shape == 'cylinder':
                rc = r * 0.6
                self.geom('cylinder', (x, y, h / 2), (rc, h / 2), mat, tint=True)
                circles.append([x, y, rc])
            else:
                rs = min(r, 0.5)
                self.geom('sphere', (x, y, rs), (rs,), mat, tint=True)
                circles.append([x, y, rs])
        return boxes, circles
