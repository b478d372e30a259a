"""Scenes written by hand, outside the scene generator: the held-out scenes of `worldscape eval --suite lroom`
and `--suite office` (MJCF in eval/scenes/). A model trained on the generator's rooms meets here textures, shapes
and layouts it has never seen; the generator's seeds cannot reach them."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from worldscape_ros.errors import EvalError

if TYPE_CHECKING:  # MuJoCo is imported only to render
    from worldscape_ros.synthetic.builder import SceneSpec

# name -> (free-space bounds xmin, xmax, ymin, ymax; obstacle boxes [cx, cy, hx, hy, yaw]; circles [cx, cy, r];
# the farthest depth any view can hold, m)
_LAYOUTS: dict[str, tuple[tuple[float, float, float, float], list[list[float]], list[list[float]], float]] = {
    'l_room': ((-3.0, 3.0, -2.5, 2.5),
               [[1.8, 1.45, 1.2, 1.05, 0.0],  # the L's solid corner
                [-2.55, 0.6, 0.45, 1.08, 0.0],  # sofa with its arms
                [-1.2, -1.5, 0.55, 0.35, 0.0],  # table
                [1.7, -2.3, 0.7, 0.18, 0.0]],  # shelf
               [[2.6, 0.0, 0.32], [0.35, 0.15, 0.16]],  # plant, lamp
               12.0),
    'office': ((-2.5, 2.5, -2.0, 2.0),
               [[0.2, 0.1, 0.2, 0.2, 0.0],  # pillar
                [-1.9, -0.6, 0.4, 0.8, 0.0],  # desk
                [-1.18, -0.5, 0.24, 0.24, 0.0],  # chair
                [2.15, -1.7, 0.3, 0.25, 0.0]],  # cabinet
               [[-2.1, 1.6, 0.15]],  # coat stand
               12.0),
}
HANDMADE_SCENES = tuple(_LAYOUTS)


def handmade_scene(name: str, seed: int = 0) -> SceneSpec:
    """The SceneSpec of the hand-written scene `name`; `seed` is recorded only (the scene is one scene: the seed
    picks the start in it)."""
    from worldscape_ros.synthetic.builder import FreeSpace, SceneSpec

    if name not in _LAYOUTS:
        raise EvalError(f'unknown hand-made scene {name!r}; expected one of {", ".join(HANDMADE_SCENES)}')
    bounds, boxes, circles, max_depth = _LAYOUTS[name]
    mjcf = (resources.files('worldscape_ros.eval') / 'scenes' / f'{name}.xml').read_text()
    free = FreeSpace(bounds, np.array(boxes, np.float64).reshape(-1, 5), np.array(circles, np.float64).reshape(-1, 3))
    return SceneSpec(name, int(seed), mjcf, {}, free, max_depth=max_depth)
