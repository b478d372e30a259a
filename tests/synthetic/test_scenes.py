import numpy as np
import pytest

from worldscape_ros.synthetic.builder import ROBOT_RADIUS
from worldscape_ros.synthetic.scenes import make_scene


@pytest.mark.parametrize('kind', ['room', 'yard', 'table', 'furnished'])
def test_same_seed_gives_identical_scene_and_different_seeds_differ(kind):
    a, b, c = make_scene(kind, 7), make_scene(kind, 7), make_scene(kind, 8)
    assert a.mjcf == b.mjcf and a.assets == b.assets
    assert a.mjcf != c.mjcf
    model = a.build_model()
    assert model.ngeom > 5 and model.ntex >= 3


def test_unknown_kind_and_negative_seed_are_rejected():
    with pytest.raises(ValueError, match="unknown scene kind 'cave'"):
        make_scene('cave', 0)
    with pytest.raises(ValueError, match='non-negative integer'):
        make_scene('room', -1)


def test_free_space_excludes_walls_and_furniture():
    scene = make_scene('room', 3)
    free = scene.free_space
    rng = np.random.default_rng(0)
    x, y = free.sample(rng)
    assert free.is_free(x, y)
    xmin, xmax, _, _ = free.bounds
    assert not free.is_free(xmax - 0.1, y)  # hugging a wall
    for cx, cy, *_ in np.concatenate([free.boxes[:, :2], free.circles[:, :2]]):
        assert free.clearance(cx, cy) < 0 < ROBOT_RADIUS


def test_table_scene_has_objects_on_the_table():
    scene = make_scene('table', 1)
    assert len(scene.objects) >= 3
    for obj in scene.objects:
        assert obj.position[2] == pytest.approx(scene.table_top + obj.half_height)


@pytest.mark.parametrize('seed', range(6))
def test_a_furnished_room_has_free_starts_and_furniture_on_thin_legs_outside_them(seed):
    scene = make_scene('furnished', seed)
    free = scene.free_space
    x, y = free.sample(np.random.default_rng(seed))
    assert free.is_free(x, y)
    for cx, cy, *_ in np.concatenate([free.boxes[:, :2], free.circles[:, :2]]):
        assert not free.is_free(cx, cy)  # every piece's footprint is an obstacle
    model = scene.build_model()
    assert model.ngeom > 10


def test_furnished_rooms_are_painted_with_built_in_textures_not_procedural_ones():
    import re

    kinds = {m for seed in range(8) for m in re.findall(r'builtin="(\w+)"', make_scene('furnished', seed).mjcf)}
    assert {'flat', 'checker', 'gradient'} <= kinds
    assert not any(make_scene('furnished', seed).assets for seed in range(8))  # no procedural PNG
    thin = [seed for seed in range(8)
            if re.search(r'type="cylinder" pos="[^"]*" size="0\.0[123]\d*', make_scene('furnished', seed).mjcf)]
    assert thin  # a leg or a pole thinner than the room family's furniture ever is


# room 3's MJCF as made before the furnished family was added: the eval suites' held-out rooms are seeds of the
# older kinds, and a new kind must not move their random streams
ROOM_3_MJCF_SHA256 = '7a612528b981'


def test_a_new_scene_family_leaves_the_earlier_kinds_scenes_unchanged():
    import hashlib

    assert hashlib.sha256(make_scene('room', 3).mjcf.encode()).hexdigest()[:12] == ROOM_3_MJCF_SHA256
