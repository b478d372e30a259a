"""Furnished rooms: the generator's second indoor family, built from what real rooms are made of.

The 'room' family paints every surface with tinted procedural noise and fills it with plain boxes, cylinders
and spheres; a model trained on it learns that prior (a strongly tinted, busy wall) and imagines it wherever it
cannot see. A furnished room is painted in muted interior colours with MuJoCo's built-in flat, checker and
gradient textures, may be L-shaped or hold a pillar, and holds furniture on thin legs (tables, chairs, a floor
lamp, a coat stand), shelves of books, sofas, plants, pictures and a rug, with doorways onto darker rooms.
Every random choice is drawn from the builder's one Generator, so a seed gives the same scene byte for byte.
"""

from __future__ import annotations

import math

import numpy as np

from worldscape_ros.synthetic.builder import SHELL_GAP, FreeSpace, SceneBuilder, SceneSpec, fmt

# Interior palettes (RGB in [0, 1]); each colour is jittered a little per scene.
WALL_PAINTS = np.array([[0.92, 0.91, 0.88], [0.85, 0.83, 0.78], [0.88, 0.82, 0.66], [0.75, 0.76, 0.74],
                        [0.70, 0.78, 0.80], [0.80, 0.72, 0.70], [0.76, 0.80, 0.68], [0.60, 0.62, 0.65],
                        [0.62, 0.28, 0.20], [0.95, 0.93, 0.85]])
FLOORS = np.array([[0.55, 0.38, 0.22], [0.66, 0.50, 0.33], [0.40, 0.28, 0.18], [0.60, 0.61, 0.60],
                   [0.35, 0.36, 0.40], [0.75, 0.72, 0.66], [0.50, 0.45, 0.40]])
WOODS = np.array([[0.55, 0.38, 0.22], [0.70, 0.55, 0.38], [0.35, 0.22, 0.13], [0.85, 0.85, 0.82],
                  [0.20, 0.20, 0.22]])
FABRICS = np.array([[0.15, 0.25, 0.55], [0.55, 0.15, 0.15], [0.35, 0.45, 0.30], [0.55, 0.55, 0.58],
                    [0.80, 0.70, 0.50], [0.25, 0.25, 0.28], [0.60, 0.40, 0.55]])
THIN = (0.012, 0.03)  # radius of a leg, a pole (m): thinner than the generator's furniture ever is


def _untinted() -> np.ndarray:
    return np.ones(4)


class FurnishedBuilder(SceneBuilder):
    """The scene builder with built-in textures and compound furniture."""

    def colour(self, palette: np.ndarray, jitter: float = 0.04) -> np.ndarray:
        c = palette[int(self.rng.integers(len(palette)))] + self.rng.uniform(-jitter, jitter, 3)
        return np.clip(c, 0.02, 0.98)

    def builtin(self, rgb1: np.ndarray, cube: bool, repeat: float = 1.0) -> str:
        """A material with a MuJoCo built-in texture around rgb1: flat paint (with a faint speckle), a checker
        of two near shades (tiles, boards) or a gradient."""
        name = f'mat{len(self.asset_xml)}'
        kind = str(self.rng.choice(['flat', 'flat', 'checker', 'gradient']))
        rgb2 = np.clip(rgb1 * self.rng.uniform(0.8, 0.95), 0, 1)
        mark = ''
        if kind == 'flat':
            mark = f' mark="random" random="{self.rng.uniform(0.0, 0.03):.3f}" markrgb="{fmt(*rgb2)}"'
        elif kind == 'checker' and self.rng.random() < 0.6:
            mark = f' mark="edge" markrgb="{fmt(*(rgb2 * 0.7))}"'
        self.asset_xml.append(f'<texture name="{name}_tex" type="{"cube" if cube else "2d"}" builtin="{kind}" '
                              f'rgb1="{fmt(*rgb1)}" rgb2="{fmt(*rgb2)}" width="128" height="128"{mark}/>')
        mapping = f' texrepeat="{fmt(repeat, repeat)}"' + ('' if cube else ' texuniform="true"')
        self.asset_xml.append(f'<material name="{name}" texture="{name}_tex"{mapping} '
                              f'specular="{self.rng.uniform(0.02, 0.3):.3f}"/>')
        return name

    def plain(self, rgb: np.ndarray, specular: float | None = None) -> str:
        """A material of one colour, no texture (free to make: no texture to upload)."""
        name = f'mat{len(self.asset_xml)}'
        spec = self.rng.uniform(0.05, 0.4) if specular is None else specular
        self.asset_xml.append(f'<material name="{name}" rgba="{fmt(*rgb, 1.0)}" specular="{spec:.3f}"/>')
        return name

    # -- the shell -------------------------------------------------------------------------------------
    def shell(self, hx: float, hy: float, height: float) -> list[list[float]]:
        """Floor, ceiling, four painted walls (one may be an accent wall), a doorway or two onto a darker room,
        and maybe an L's solid corner or a pillar. Returns the obstacle boxes the shell adds."""
        floor = self.builtin(self.colour(FLOORS), cube=False, repeat=float(self.rng.uniform(0.3, 1.2)))
        ceiling = self.plain(self.colour(WALL_PAINTS[:3], 0.03), specular=0.0)
        self.slabs(hx + SHELL_GAP, hy + SHELL_GAP, height, floor, ceiling)
        paint = self.builtin(self.colour(WALL_PAINTS), cube=False, repeat=float(self.rng.uniform(0.5, 2.0)))
        accent_side = int(self.rng.integers(6))  # 4 or 5: no accent wall
        accent = self.builtin(self.colour(WALL_PAINTS), cube=False, repeat=float(self.rng.uniform(0.5, 2.0)))
        doors = set(self.rng.choice(4, size=int(self.rng.integers(1, 3)), replace=False).tolist())
        for side in range(4):  # painted, not tinted
            self.side_wall(side, hx, hy, height, accent if side == accent_side else paint, _untinted,
                           (0.8, 1.3) if side in doors else None)
        beyond = self.plain(self.colour(WALL_PAINTS) * self.rng.uniform(0.3, 0.7), specular=0.0)
        for side in range(4):  # the darker room seen through the doorways
            self.side_wall(side, hx + SHELL_GAP, hy + SHELL_GAP, height, beyond, _untinted)
        boxes: list[list[float]] = []
        shape = self.rng.random()
        if shape < 0.4:  # an L: one corner is solid, painted like the walls
            cx, cy = self.rng.uniform(0.3, 0.45) * hx, self.rng.uniform(0.3, 0.45) * hy
            sx, sy = self.rng.choice([-1.0, 1.0], 2)
            corner = (float(sx * (hx - cx)), float(sy * (hy - cy)))
            self.geom('box', (*corner, height / 2), (cx, cy, height / 2 + 0.05), paint)
            boxes.append([*corner, cx, cy, 0.0])
        elif shape < 0.65:  # a pillar
            r = float(self.rng.uniform(0.15, 0.3))
            spot = (float(self.rng.uniform(-0.5, 0.5) * hx), float(self.rng.uniform(-0.5, 0.5) * hy))
            self.geom('box', (*spot, height / 2), (r, r, height / 2 + 0.05), self.plain(self.colour(WALL_PAINTS)))
            boxes.append([*spot, r, r, 0.0])
        return boxes

    # -- furniture: each returns its footprint (a box row or a circle row) -----------------------------
    def legged(self, x: float, y: float, yaw: float, chair: bool = False) -> list[float]:
        """A table, or a chair with a back, on four thin legs."""
        hx, hy = (0.25, 0.25) if chair else (self.rng.uniform(0.3, 0.8), self.rng.uniform(0.3, 0.5))
        top = 0.45 if chair else float(self.rng.uniform(0.45, 0.78))
        c, s = math.cos(yaw), math.sin(yaw)
        wood = self.plain(self.colour(FABRICS if chair else WOODS))
        legs = self.plain(self.colour(WOODS), specular=0.5)
        self.geom('box', (x, y, top), (hx, hy, 0.02), wood, euler=(0, 0, yaw))
        r = float(self.rng.uniform(*THIN))
        for sx in (-1, 1):
            for sy in (-1, 1):
                lx, ly = sx * (hx - 0.04), sy * (hy - 0.04)
                self.geom('cylinder', (x + c * lx - s * ly, y + s * lx + c * ly, top / 2), (r, top / 2), legs)
        if chair:  # a back on one side
            bx, by = -0.23 * c, -0.23 * s
            self.geom('box', (x + bx, y + by, top + 0.25), (0.02, 0.22, 0.22), wood, euler=(0, 0, yaw))
        return [x, y, hx, hy, yaw]

    def against_wall(self, hx: float, hy: float, depth: float, width: float) -> tuple[float, float, float]:
        """A spot (x, y, yaw) with a piece's back against a random wall; local x points into the room."""
        side = int(self.rng.integers(4))
        along = (hy if side < 2 else hx) - width - 0.1
        t = float(self.rng.uniform(-along, along)) if along > 0 else 0.0
        if side == 0:
            return hx - depth, t, math.pi
        if side == 1:
            return -hx + depth, t, 0.0
        if side == 2:
            return t, hy - depth, -math.pi / 2
        return t, -hy + depth, math.pi / 2

    def shelf(self, x: float, y: float, yaw: float, depth: float, width: float) -> list[float]:
        height = float(self.rng.uniform(1.2, 2.0))
        frame = self.plain(self.colour(WOODS))
        self.geom('box', (x, y, height / 2), (depth, width, height / 2), frame, euler=(0, 0, yaw))
        c, s = math.cos(yaw), math.sin(yaw)
        rows = int(height / 0.35)
        for row in range(rows):  # books: runs of thin coloured boxes on the front face
            z = 0.2 + row * 0.35
            t = -width + 0.05
            while t < width - 0.08:
                w = float(self.rng.uniform(0.02, 0.05))
                h = float(self.rng.uniform(0.1, 0.14))
                px, py = depth + 0.01, t + w
                self.geom('box', (x + c * px - s * py, y + s * px + c * py, z + h), (0.01, w, h),
                          self.plain(self.colour(FABRICS, 0.1)), euler=(0, 0, yaw))
                t += 2 * w + 0.005
        return [x, y, depth, width, yaw]

    def sofa(self, x: float, y: float, yaw: float, depth: float, width: float) -> list[float]:
        cloth = self.plain(self.colour(FABRICS), specular=0.05)
        c, s = math.cos(yaw), math.sin(yaw)

        def part(px: float, py: float, z: float, size: tuple[float, float, float]) -> None:
            self.geom('box', (x + c * px - s * py, y + s * px + c * py, z), size, cloth, euler=(0, 0, yaw))

        part(0.0, 0.0, 0.22, (depth, width, 0.22))  # seat
        part(-depth + 0.1, 0.0, 0.55, (0.1, width, 0.35))  # back
        for sy in (-1, 1):
            part(0.0, sy * (width - 0.08), 0.4, (depth, 0.08, 0.18))  # arms
        return [x, y, depth, width, yaw]

    def pole(self, x: float, y: float) -> list[float]:
        """A floor lamp (a shade on a thin pole) or a coat stand (hooks on one)."""
        height = float(self.rng.uniform(1.5, 1.9))
        r = float(self.rng.uniform(*THIN))
        metal = self.plain(self.colour(WOODS), specular=0.6)
        self.geom('cylinder', (x, y, 0.02), (0.15, 0.02), metal)
        self.geom('cylinder', (x, y, height / 2), (r, height / 2), metal)
        if self.rng.random() < 0.6:
            self.geom('cylinder', (x, y, height), (0.18, 0.12), self.plain(self.colour(WALL_PAINTS[:3])))
        else:
            for k in range(3):
                a = 2 * math.pi * k / 3
                self.geom('capsule', (x + 0.08 * math.cos(a), y + 0.08 * math.sin(a), height - 0.1),
                          (0.012, 0.06), metal, euler=(0.0, 1.0, a))
        return [x, y, 0.15]

    def plant(self, x: float, y: float) -> list[float]:
        r = float(self.rng.uniform(0.12, 0.25))
        self.geom('cylinder', (x, y, r), (r * 0.8, r), self.plain(self.colour(FABRICS)))
        green = np.clip(np.array([0.2, 0.45, 0.2]) + self.rng.uniform(-0.08, 0.08, 3), 0, 1)
        self.geom('ellipsoid', (x, y, 2 * r + 0.35), (r * 1.5, r * 1.5, 0.4), self.plain(green, 0.05))
        return [x, y, r * 1.5]

    def decor(self, hx: float, hy: float, height: float) -> None:
        """Pictures and boards on the walls, a rug on the floor: nothing a robot bumps into."""
        for _ in range(int(self.rng.integers(1, 4))):
            side = int(self.rng.integers(4))
            along = (hy if side < 2 else hx) - 0.8
            t = float(self.rng.uniform(-along, along))
            w, h = float(self.rng.uniform(0.2, 0.7)), float(self.rng.uniform(0.2, 0.5))
            z = float(self.rng.uniform(1.3, min(1.9, height - h - 0.2)))
            mat = self.builtin(self.colour(FABRICS, 0.15), cube=True) if self.rng.random() < 0.5 else \
                self.plain(self.colour(FABRICS, 0.15))
            pos = {0: (hx - 0.02, t, z), 1: (-hx + 0.02, t, z), 2: (t, hy - 0.02, z), 3: (t, -hy + 0.02, z)}[side]
            size = (0.015, w, h) if side < 2 else (w, 0.015, h)
            self.geom('box', pos, size, mat)
        if self.rng.random() < 0.6:
            rug = self.builtin(self.colour(FABRICS), cube=False, repeat=float(self.rng.uniform(1.0, 3.0)))
            self.geom('box', (float(self.rng.uniform(-0.3, 0.3) * hx), float(self.rng.uniform(-0.3, 0.3) * hy),
                              0.003), (float(self.rng.uniform(0.6, 1.2)), float(self.rng.uniform(0.5, 1.0)), 0.003),
                      rug)

    def furnished(self, seed: int) -> SceneSpec:
        hx, hy = self.rng.uniform(2.2, 3.8, 2)
        height = float(self.rng.uniform(2.5, 3.0))
        boxes = self.shell(hx, hy, height)
        circles: list[list[float]] = []
        free = FreeSpace((-hx, hx, -hy, hy), np.array(boxes).reshape(-1, 5), np.zeros((0, 3)))
        taken: list[tuple[float, float, float]] = [(0.0, 0.0, 0.5)]  # keep the middle open for starts

        def fits(x: float, y: float, r: float) -> bool:
            return free.clearance(x, y) > r * 0.5 and all(math.hypot(x - a, y - b) > r + q for a, b, q in taken)

        for _ in range(int(self.rng.integers(1, 3))):  # pieces against the walls
            depth, width = float(self.rng.uniform(0.18, 0.45)), float(self.rng.uniform(0.4, 1.0))
            x, y, yaw = self.against_wall(hx, hy, depth, width)
            if not fits(x, y, max(depth, width)):
                continue
            row = self.shelf(x, y, yaw, depth, width) if self.rng.random() < 0.5 else \
                self.sofa(x, y, yaw, max(depth, 0.35), max(width, 0.7))
            boxes.append(row)
            taken.append((x, y, max(row[2], row[3])))
        for _ in range(int(self.rng.integers(2, 6))):  # free-standing pieces
            r = 0.6
            for _attempt in range(30):
                x, y = float(self.rng.uniform(-hx + 0.5, hx - 0.5)), float(self.rng.uniform(-hy + 0.5, hy - 0.5))
                if fits(x, y, r):
                    break
            else:
                continue
            pick = self.rng.random()
            if pick < 0.35:
                boxes.append(self.legged(x, y, float(self.rng.uniform(0, math.pi))))
            elif pick < 0.55:
                boxes.append(self.legged(x, y, float(self.rng.uniform(0, 2 * math.pi)), chair=True))
            elif pick < 0.8:
                circles.append(self.pole(x, y))
            else:
                circles.append(self.plant(x, y))
            taken.append((x, y, r))
        self.decor(hx, hy, height)
        self.lights(int(self.rng.integers(2, 4)), height - 0.1, (hx * 0.7, hy * 0.7))
        extent = float(math.hypot(hx + 2.4, hy + 2.4) * 2)
        free = FreeSpace((-hx, hx, -hy, hy), np.array(boxes).reshape(-1, 5), np.array(circles).reshape(-1, 3))
        return SceneSpec('furnished', seed, self.document(extent), self.assets, free, max_depth=extent)
