import math

import numpy as np
import pytest
import torch

from worldscape_ros.errors import ConfigError
from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.grasp import GraspConfig, GraspTracker, closure, grasp_point, hand_depth, hand_volume, kabsch
from worldscape_ros.model.kinematics import rot_y, rot_z
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.scene_memory import OBSERVED, SceneMemory, ScenePoints
from worldscape_ros.synthetic.hand import HandPose
from worldscape_ros.synthetic.hand_scripts import CLOSED, OPEN, egocentric_camera, hand_script
from worldscape_ros.synthetic.scenes import make_scene

H, W = 96, 128
K = intrinsics_from_fov(W, H, 60.0)
SEED = 90031
TABLE = make_scene('table', SEED)
CAMERA = egocentric_camera(TABLE)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def in_camera(points_world: np.ndarray, c2w: np.ndarray = CAMERA) -> np.ndarray:
    return (points_world - c2w[:3, 3]) @ c2w[:3, :3]


def hand_holding(centre: np.ndarray, curl: float, yaw: float = 0.5, handedness: str = 'right') -> HandPose:
    """A hand whose grasp point is at `centre` (world)."""
    rotation = rot_z(yaw) @ rot_y(math.radians(10))
    offset = HandPose(np.zeros(3), rotation, curl, handedness).grasp_point_world()
    return HandPose(centre - offset, rotation, curl, handedness)


def table_scene() -> tuple[SceneMemory, dict[str, np.ndarray]]:
    """The seed's table as points: its top (1 cm grid) and each object as a 2.5 cm box of points (5 mm grid)."""
    top = TABLE.table_top
    gx, gy = np.meshgrid(np.arange(-0.4, 0.4, 0.01), np.arange(-0.5, 0.5, 0.01))
    parts = {'table': np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, top)], 1)}
    for o in TABLE.objects:
        s = np.arange(-1.0, 1.0001, 0.2)
        u, v, w = np.meshgrid(s, s, s)
        box = np.stack([u.ravel(), v.ravel(), w.ravel()], 1)
        box = box[np.abs(box).max(1) > 0.99]  # the surface
        parts[o.name] = o.position + box * np.array([0.025, 0.025, o.half_height])
    scene = SceneMemory()
    for i, pts in enumerate(parts.values()):
        n = len(pts)
        scene.put(ScenePoints(torch.from_numpy(pts).float(), torch.full((n, 3), 40 * i, dtype=torch.uint8),
                              torch.full((n,), round(OBSERVED * 255), dtype=torch.uint8),
                              torch.zeros(n, dtype=torch.int32)))
    return scene, parts


def near(scene: SceneMemory, centre: np.ndarray, radius: float = 0.06) -> np.ndarray:
    xyz = scene.xyz.numpy()
    return xyz[(np.linalg.norm(xyz - centre, axis=1) < radius) & (xyz[:, 2] > TABLE.table_top + 0.004)]


# ---- the hand from its keypoints ---------------------------------------------------------------------------
@pytest.mark.parametrize('handedness', ['right', 'left'])
def test_the_scripts_open_and_closed_hands_fall_either_side_of_the_thresholds(handedness):
    cfg = GraspConfig()
    rng = np.random.default_rng(0)
    for _ in range(20):
        R = random_rotation(rng)
        for curl, closed in ((OPEN, False), (OPEN + 0.05, False), (CLOSED, True)):
            kp = HandPose(rng.normal(size=3), R, curl, handedness).landmarks_world()
            c = closure(kp)
            assert (c < cfg.close_below) if closed else (c > cfg.open_above), (curl, c)


def test_closure_falls_as_the_fingers_curl_and_ignores_the_hands_size_and_pose():
    curls = np.linspace(0.0, 1.0, 11)
    values = [closure(HandPose(np.zeros(3), np.eye(3), c).landmarks_world()) for c in curls]
    assert np.all(np.diff(values) < 0)
    kp = HandPose(np.array([0.3, -0.1, 0.5]), random_rotation(np.random.default_rng(1)), 0.5).landmarks_world()
    assert closure(kp * 1.3) == pytest.approx(closure(kp))


@pytest.mark.parametrize('handedness', ['right', 'left'])
def test_the_grasp_point_from_keypoints_is_where_the_synthetic_hand_holds_an_object(handedness):
    rng = np.random.default_rng(2)
    for _ in range(30):
        pose = HandPose(rng.normal(size=3), random_rotation(rng), float(rng.uniform(0.3, 1.0)), handedness)
        assert np.linalg.norm(grasp_point(pose.landmarks_world()) - pose.grasp_point_world()) < 0.002


def test_kabsch_recovers_a_rigid_transform_and_never_reflects():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(5, 3))
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = random_rotation(rng), rng.normal(size=3)
    assert np.allclose(kabsch(src, src @ T[:3, :3].T + T[:3, 3]), T, atol=1e-9)
    mirrored = kabsch(src, src * np.array([1.0, 1.0, -1.0]))
    assert np.linalg.det(mirrored[:3, :3]) == pytest.approx(1.0)


def test_the_hands_depth_is_in_front_of_its_keypoints_and_empty_away_from_it():
    kp = in_camera(hand_holding(TABLE.objects[0].position, CLOSED).landmarks_world())
    depth = hand_depth(kp, K, H, W)
    u = np.floor(K[0, 0] * kp[9, 0] / kp[9, 2] + K[0, 2]).astype(int)
    v = np.floor(K[1, 1] * kp[9, 1] / kp[9, 2] + K[1, 2]).astype(int)
    assert float(depth[v, u]) < kp[9, 2]
    assert bool(torch.isinf(depth).any()) and not bool(torch.isinf(depth[v, u]))
    centres, radii = hand_volume(kp)
    assert len(centres) == len(radii) and centres.shape[1] == 3


# ---- the tracker -----------------------------------------------------------------------------------------
def test_the_script_keypoints_close_the_hand_exactly_while_it_can_hold_the_object():
    plan = hand_script('pick_and_place', TABLE, 60, seed=SEED)
    tracker = GraspTracker()
    scene = SceneMemory()
    states = []
    for step in plan:
        tracker.update(scene, CAMERA, in_camera(step.hand.landmarks_world()))
        states.append(tracker.closed)
    curls = np.array([s.hand.curl for s in plan])
    states_a = np.array(states)
    assert states_a[curls >= CLOSED - 1e-9].all() and not states_a[curls <= OPEN + 0.05 + 1e-9].any()
    assert np.count_nonzero(np.diff(states_a.astype(int))) == 2  # one grasp, one release: no flicker


def test_a_picked_object_rides_rigidly_with_the_hand_and_stays_where_it_was_put_down():
    plan = hand_script('pick_and_place', TABLE, 60, seed=SEED)
    start, end = plan[0].objects, plan[-1].objects
    target = next(n for n in start if not np.allclose(start[n], end[n]))
    place = plan[-1].hand.grasp_point_world() - np.array([0.0, 0.0, 0.1])  # the script lifts the open hand 10 cm
    scene, parts = table_scene()
    held = parts[target][parts[target][:, 2] > TABLE.table_top + GraspConfig().above_support_m]  # the box's sides
    tracker = GraspTracker()
    riding = 0
    for before, step in zip(plan, plan[1:]):
        tracker.update(scene, CAMERA, in_camera(step.hand.landmarks_world()))
        if not np.array_equal(step.objects[target], before.objects[target]):  # the script moves it with the hand
            riding += 1
            moved = tracker.held.points.points().moved(torch.from_numpy(tracker.held.motion).float())
            assert np.allclose(moved.xyz.double().mean(0).numpy() - step.objects[target],
                               held.mean(0) - start[target], atol=1e-4)
    assert riding > 10 and not tracker.closed and tracker.holding == 0
    placed = near(scene, place)
    expected = held - start[target] + place
    assert len(placed) == len(expected)
    assert np.abs(np.sort(placed, 0) - np.sort(expected, 0)).max() < 1e-4  # the same box, moved rigidly
    left = near(scene, start[target], 0.07)  # where it was: only the rim the support test leaves on the table
    assert len(left) and np.all(left[:, 2] <= TABLE.table_top + GraspConfig().above_support_m)
    for name, pts in parts.items():  # the table and every other object did not move
        if name not in ('table', target):
            assert len(near(scene, start[name])) == len(pts[pts[:, 2] > TABLE.table_top + 0.004])


def test_nothing_moves_without_a_grasp():
    plan = hand_script('reach', TABLE, 30, seed=SEED)
    scene, _ = table_scene()
    before = scene.xyz.clone()
    tracker = GraspTracker()
    for step in plan:
        view = tracker.look(scene, CAMERA, in_camera(step.hand.landmarks_world()), K, H, W)
        assert not bool(view.held.any()) and not bool(view.moving.any())
    assert not tracker.closed and torch.equal(scene.xyz, before)


def test_a_closure_between_the_thresholds_keeps_the_state():
    cfg = GraspConfig()
    centre = TABLE.objects[0].position
    mid = next(c for c in np.linspace(OPEN, CLOSED, 200)
               if cfg.close_below < closure(HandPose(np.zeros(3), np.eye(3), c).landmarks_world()) < cfg.open_above)
    scene, _ = table_scene()
    tracker = GraspTracker(cfg)
    tracker.update(scene, CAMERA, in_camera(hand_holding(centre, mid).landmarks_world()))
    assert not tracker.closed
    tracker.update(scene, CAMERA, in_camera(hand_holding(centre, CLOSED).landmarks_world()))
    assert tracker.closed and tracker.holding > 0
    tracker.update(scene, CAMERA, in_camera(hand_holding(centre, mid).landmarks_world()))
    assert tracker.closed and tracker.holding > 0


def test_a_frame_without_a_hand_leaves_a_held_object_where_it_was_carried():
    centre = TABLE.objects[0].position
    scene, _ = table_scene()
    tracker = GraspTracker()
    tracker.update(scene, CAMERA, in_camera(hand_holding(centre, CLOSED).landmarks_world()))
    up = centre + np.array([0.0, 0.0, 0.1])
    tracker.update(scene, CAMERA, in_camera(hand_holding(up, CLOSED).landmarks_world()))
    motion = tracker.held.motion.copy()
    tracker.update(scene, CAMERA, None)
    behind = in_camera(hand_holding(up, CLOSED).landmarks_world())
    behind[:, 2] = 0.0  # every keypoint absent
    tracker.update(scene, CAMERA, behind)
    assert tracker.closed and np.array_equal(tracker.held.motion, motion)
    assert motion[:3, 3] == pytest.approx([0.0, 0.0, 0.1], abs=1e-6)


def test_the_held_object_renders_where_the_hand_carries_it_and_is_not_static_scene():
    obj = TABLE.objects[0]
    scene, parts = table_scene()
    tracker = GraspTracker()
    tracker.look(scene, CAMERA, in_camera(hand_holding(obj.position, CLOSED).landmarks_world()), K, H, W)
    lift = np.array([0.05, 0.1, 0.12])
    view = tracker.look(scene, CAMERA, in_camera(hand_holding(obj.position + lift, CLOSED).landmarks_world()), K, H, W)
    assert view.held.sum() > 20 and bool((view.moving | ~view.held).all())
    v, u = np.nonzero(view.held.numpy())
    centre = in_camera(parts[obj.name].mean(0) + lift)
    assert np.hypot(u.mean() + 0.5 - (K[0, 0] * centre[0] / centre[2] + K[0, 2]),
                    v.mean() + 0.5 - (K[1, 1] * centre[1] / centre[2] + K[1, 2])) < 3.0
    assert bool(view.render.mask[view.held].all())
    static = scene.render(CAMERA, K, H, W)
    assert torch.equal(view.render.rgb[:, ~view.held], static.rgb[:, ~view.held])


def test_a_closed_hand_at_the_start_holds_the_object_in_it_from_the_frames_pixels():
    obj = TABLE.objects[0]
    scene, parts = table_scene()
    box = parts[obj.name]
    lifted = obj.position + np.array([0.0, 0.0, 0.1])
    # the start frame: a depth image of the lifted box's points (what the scene memory left out as the hand's)
    cam = in_camera(box - obj.position + lifted)
    u = np.floor(K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2]).astype(int)
    v = np.floor(K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]).astype(int)
    depth = torch.zeros(H, W)
    region = torch.zeros(H, W, dtype=torch.bool)
    for uu, vv, z in zip(u, v, cam[:, 2]):
        if depth[vv, uu] == 0 or z < depth[vv, uu]:
            depth[vv, uu] = float(z)
        region[vv, uu] = True
    rgb = torch.full((3, H, W), 0.5)
    tracker = GraspTracker()
    tracker.start(scene, rgb, depth, CAMERA, K, in_camera(hand_holding(lifted, CLOSED).landmarks_world()), region)
    assert tracker.closed and tracker.holding > 0.5 * int(region.sum())
    assert len(near(scene, obj.position)) == len(box[box[:, 2] > TABLE.table_top + 0.004])  # the table's one stays
    tracker.start(scene, rgb, depth, CAMERA, K, in_camera(hand_holding(lifted, OPEN).landmarks_world()), region)
    assert not tracker.closed and tracker.holding == 0


# ---- bad input -------------------------------------------------------------------------------------------
def test_bad_keypoints_and_configs_are_refused_by_name():
    with pytest.raises(ValueError, match=r'hand_keypoints must have shape \(21, 3\)'):
        closure(np.zeros((20, 3)))
    with pytest.raises(ValueError, match='zero length'):
        closure(np.zeros((21, 3)))
    with pytest.raises(ValueError, match='must be finite'):
        GraspTracker().update(SceneMemory(), CAMERA, np.full((21, 3), np.nan))
    with pytest.raises(ValueError, match='c2w'):
        GraspTracker().look(SceneMemory(), np.eye(3), None, K, H, W)
    with pytest.raises(ConfigError, match='close_below < open_above'):
        GraspConfig(close_below=1.7, open_above=1.6)
    with pytest.raises(ConfigError, match='radius_m'):
        GraspConfig(radius_m=0.0)
    with pytest.raises(ValueError, match='kabsch'):
        kabsch(np.zeros((2, 3)), np.zeros((2, 3)))


def test_the_scene_memory_gives_back_exactly_what_was_taken():
    scene, _ = table_scene()
    before = {k: v.clone() for k, v in scene.state().items()}
    select = scene.xyz[:, 2] > TABLE.table_top + 0.01
    taken = scene.take(select)
    assert len(taken) == int(select.sum()) and len(scene) == len(select) - len(taken)
    assert scene.put(taken) == len(taken)
    after = scene.state()
    for k in before:  # the store is kept in voxel order: the same points come back in the same places
        assert torch.equal(after[k], before[k])
    with pytest.raises(ValueError, match='select must be'):
        scene.take(torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match='disagree in shape'):
        scene.put(ScenePoints(torch.zeros(2, 3), torch.zeros(3, 3, dtype=torch.uint8), torch.zeros(2), torch.zeros(2)))
    with pytest.raises(ValueError, match='finite'):
        scene.put(ScenePoints(torch.full((1, 3), math.inf), torch.zeros(1, 3, dtype=torch.uint8),
                              torch.zeros(1), torch.zeros(1)))


# ---- in the engine ---------------------------------------------------------------------------------------
def engine_carry(grasp: GraspConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random ws-tiny carrying the seed's object (the hand holds it from the start): its frames, the truth's,
    and the truth's object and hand pixels."""
    from worldscape_ros.eval.ground_truth import manip_masks
    from worldscape_ros.model.engine import WorldEngine
    from worldscape_ros.synthetic.episodes import manip_episode

    frames = 6
    ep = manip_episode(SEED, 'carry', frames, W, H)
    hand, obj = manip_masks(SEED, 'carry', frames, W, H)
    engine = WorldEngine.from_pretrained('random', options=EngineOptions(steps=1))
    engine.model.refiner = None  # the render where it covers, the DiT's (random) imagination elsewhere
    engine.grasp = GraspTracker(grasp, engine.config.scene)
    engine.reset(ep.rgb[0], ep.poses[0], ep.intrinsics, ep.depth[0], hand_keypoints=ep.keypoints3d[0])
    out = [ep.rgb[0]] + [engine.step(ep.poses[t], ep.keypoints3d[t]).rgb for t in range(1, frames)]
    return np.stack(out), ep.rgb, obj, hand


def test_the_engine_draws_a_carried_object_where_the_hand_carries_it():
    from worldscape_ros.eval.objects import object_position_error

    carried, truth, obj, hand = engine_carry(GraspConfig())
    left = engine_carry(GraspConfig(close_below=1e-3, open_above=2e-3))  # a hand that never closes
    err = object_position_error(carried, truth[0], obj, hand)['object_error_px'][1:]
    err_left = object_position_error(left[0], truth[0], obj, hand)['object_error_px'][1:]
    # a random network draws nothing like the object: only the carried points can be found where the truth is
    assert np.nanmax(err) < 3.0 and not np.nanmin(np.nan_to_num(err_left, nan=np.inf)) < 3.0


def test_the_place_a_held_object_left_is_vacated_and_uncovered_and_nothing_is_vacated_without_a_grasp():
    obj = TABLE.objects[0]
    scene, parts = table_scene()
    xyz = scene.xyz
    unseen = (torch.linalg.norm(xyz[:, :2] - torch.from_numpy(obj.position[:2]).float(), dim=1) < 0.05) & (
        xyz[:, 2] <= TABLE.table_top + 1e-4)
    scene.take(unseen)  # the table under the object, which a start frame never sees
    tracker = GraspTracker()
    tracker.look(scene, CAMERA, in_camera(hand_holding(obj.position, CLOSED).landmarks_world()), K, H, W)
    lift = np.array([0.05, 0.1, 0.12])
    view = tracker.look(scene, CAMERA, in_camera(hand_holding(obj.position + lift, CLOSED).landmarks_world()), K, H, W)
    hole = view.vacated & ~view.render.mask
    assert hole.sum() > 10
    v, u = np.nonzero(hole.numpy())
    was = in_camera(parts[obj.name].mean(0))
    assert np.hypot(u.mean() + 0.5 - (K[0, 0] * was[0] / was[2] + K[0, 2]),
                    v.mean() + 0.5 - (K[1, 1] * was[1] / was[2] + K[1, 2])) < 6.0  # where it stood
    assert not bool((view.vacated & view.held).any())
    for step in hand_script('reach', TABLE, 10, seed=SEED):
        reach = GraspTracker().look(scene, CAMERA, in_camera(step.hand.landmarks_world()), K, H, W)
        assert not bool(reach.vacated.any())
