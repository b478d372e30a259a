import numpy as np
import pytest

from worldscape_ros.synthetic.scenes import ROBOT_RADIUS, make_scene


@pytest.mark.parametrize('kind', ['room', 'yard', 'table'])
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
