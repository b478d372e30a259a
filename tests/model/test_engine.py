import dataclasses

import numpy as np
import pytest
import torch

from worldscape_ros.errors import ConfigError
from worldscape_ros.model import hands
from worldscape_ros.model.config import IMAGINED_MODES
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.kinematics import BaseState, NavAction, camera_pose, integrate
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.scene_memory import IMAGINED
from worldscape_ros.model.world_model import WorldModel


@pytest.fixture
def engine(micro_config, randomize):
    torch.manual_seed(0)
    return WorldEngine(randomize(WorldModel(micro_config), seed=3), EngineOptions(seed=7))


def start(engine: WorldEngine, seed: int = 0):
    cfg = engine.config
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (cfg.height, cfg.width, 3), dtype=np.uint8)
    return engine.reset(img, camera_pose(BaseState(height=cfg.camera_height)),
                        depth=np.full((cfg.height, cfg.width), 2.5, np.float32))


def test_step_returns_a_frame_of_the_config_shape(engine):
    f0 = start(engine)
    assert f0.index == 0
    f = engine.step(NavAction(vx=0.5))
    cfg = engine.config
    assert f.rgb.shape == (cfg.height, cfg.width, 3) and f.rgb.dtype == np.uint8
    assert f.depth.shape == (cfg.height, cfg.width) and f.depth.dtype == np.float32
    assert np.all(f.depth > 0)
    assert f.index == 1 and f.pose.shape == (4, 4)


def test_actions_integrate_into_the_pose_like_the_kinematics(engine):
    start(engine)
    state = BaseState(height=engine.config.camera_height)
    for a in [NavAction(vx=1.0), NavAction(yaw_rate=0.5), NavAction(vx=0.3, vy=-0.2)]:
        frame = engine.step(a)
        state = integrate(state, a, 1.0 / engine.config.fps)
        assert np.allclose(frame.pose, camera_pose(state))


def test_a_target_pose_is_followed_exactly(engine):
    start(engine)
    target = camera_pose(BaseState(x=0.4, y=0.1, yaw=0.3, height=engine.config.camera_height))
    assert np.allclose(engine.step(target).pose, target)


def test_same_seed_same_start_same_actions_give_identical_frames(micro_config, randomize):
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        e = WorldEngine(randomize(WorldModel(micro_config), seed=3), EngineOptions(seed=11))
        start(e)
        runs.append([e.step(NavAction(vx=0.4, yaw_rate=0.2)).rgb for _ in range(3)])
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b)


def test_memory_stays_within_budget_and_keeps_the_sink(engine):
    start(engine)
    m = engine.config.memory
    for i in range(m.sink_chunks + m.window_chunks + m.pool_chunks + 8):
        engine.step(NavAction(vx=0.8, yaw_rate=0.9 * np.sin(i)))
        assert len(engine.memory.pool) <= m.pool_chunks
        assert len(engine.memory.window) <= m.window_chunks
        assert engine.memory.sink[0].chunk_id == 0
    sizes = {e.nbytes for e in engine.memory.window}
    bound = m.sink_chunks + m.window_chunks + m.pool_chunks
    assert engine.cache_bytes <= bound * max(sizes)


def test_memory_off_holds_no_pool(micro_config):
    e = WorldEngine(WorldModel(micro_config), EngineOptions(memory=False))
    start(e)
    for _ in range(micro_config.memory.window_chunks + 3):
        e.step(NavAction(vx=0.5))
    assert len(e.memory.pool) == 0


def test_hand_keypoints_draw_a_pose_video(engine):
    start(engine)
    kp = np.zeros((21, 3))
    kp[:, 0] = np.linspace(-0.1, 0.1, 21)
    kp[:, 2] = 0.5
    frame = engine.step(None, hand_keypoints=kp)
    assert frame.pose_video is not None and frame.pose_video.max() > 0
    assert engine.step(None).pose_video is None


@pytest.mark.parametrize('call,match', [
    (lambda e: e.step(NavAction.from_array([1.0, 0, 0, 0])), '5 values'),
    (lambda e: e.step([float('nan'), 0, 0, 0, 0]), 'finite'),
    (lambda e: e.step(np.diag([1.0, 1.0, -1.0, 1.0])), 'determinant'),
    (lambda e: e.step(None, hand_keypoints=np.zeros((20, 3))), 'hand_keypoints'),
    (lambda e: e.step(None, hand_keypoints=np.full((21, 3), np.inf)), 'hand_keypoints'),
    (lambda e: e.reset(np.zeros((5, 5, 3), np.uint8), np.eye(4)), 'first_frame must have shape'),
    (lambda e: e.reset(np.zeros((e.config.height, e.config.width, 3), np.float32), np.eye(4)), 'uint8'),
])
def test_bad_input_is_one_clear_value_error(engine, call, match):
    start(engine)
    with pytest.raises(ValueError, match=match):
        call(engine)


@pytest.mark.parametrize('bad,match', [
    ({'depth': np.ones((3, 3), np.float32)}, 'depth must have shape'),
    ({'hand_keypoints': np.zeros((20, 3))}, 'hand_keypoints'),
])
def test_a_refused_start_leaves_the_session_as_it_was(engine, bad, match):
    start(engine)
    engine.step(NavAction(vx=0.5))
    before = (engine.intrinsics.copy(), engine.frame_index, len(engine.memory), len(engine.scene))
    cfg = engine.config
    K = engine.intrinsics * np.array([[2.0], [2.0], [1.0]])  # valid, other than the engine's
    img = np.zeros((cfg.height, cfg.width, 3), np.uint8)
    with pytest.raises(ValueError, match=match):
        engine.reset(img, camera_pose(BaseState(height=cfg.camera_height)), K, **bad)
    after = (engine.intrinsics, engine.frame_index, len(engine.memory), len(engine.scene))
    assert np.array_equal(after[0], before[0]) and after[1:] == before[1:]


def test_step_before_reset_is_refused(engine):
    with pytest.raises(ValueError, match='reset'):
        engine.step(NavAction())


def test_depth_is_carried_forward_from_the_start_where_the_scene_was_seen(engine):
    start(engine)  # a fronto-parallel wall at 2.5 m
    frame = engine.step(NavAction())  # standing still: the start view covers every pixel
    assert np.allclose(frame.depth, 2.5, atol=1e-2)
    moved = engine.step(NavAction(vx=0.5))  # 5 cm closer to the wall
    assert engine._guess is not None
    covered = engine._guess.mask[0].numpy()
    assert covered.mean() > 0.9
    assert np.allclose(moved.depth[covered], 2.45, atol=2e-2)


def test_geometry_ablation_leaves_the_guess_empty_and_changes_the_frames(micro_config, randomize):
    frames = {}
    for geometry in (True, False):
        torch.manual_seed(0)
        e = WorldEngine(randomize(WorldModel(micro_config), seed=3), EngineOptions(seed=7, geometry=geometry))
        start(e)
        frames[geometry] = [e.step(NavAction(vx=0.5)).rgb for _ in range(2)]
        assert (e._guess is not None) == geometry
    assert not np.array_equal(frames[True][1], frames[False][1])


def test_without_a_window_the_next_chunk_attends_to_the_sink_and_the_gated_pool_only(micro_config, randomize):
    cfg = micro_config.replace(memory=micro_config.memory.__class__(sink_chunks=1, window_chunks=0))
    e = WorldEngine(randomize(WorldModel(cfg), seed=3), EngineOptions(seed=7))
    f0 = start(e)
    for _ in range(4):
        e.step(NavAction())
    assert len(e.memory.window) == 0
    pooled = {m.chunk_id for m in e.memory.pool}
    context = [m.chunk_id for m in e.memory.context(f0.pose, e.intrinsics)]
    assert context[0] == 0 and set(context[1:]) <= pooled


def test_bfloat16_engine_streams_with_the_geometric_guess(micro_config, randomize):
    e = WorldEngine(randomize(WorldModel(micro_config), seed=3), EngineOptions(seed=7, dtype='bfloat16'))
    start(e)
    frames = [e.step(NavAction(vx=0.5, yaw_rate=0.3)) for _ in range(3)]
    assert e._guess is not None
    assert all(f.rgb.shape == (micro_config.height, micro_config.width, 3) for f in frames)


def test_bfloat16_reaches_the_networks_only_the_scene_renders_as_in_float32(micro_config, randomize):
    """Autocast wraps the DiT and the codec; the scene memory's geometry stays float32, so the first step's render
    of the start frame (made before any network output reaches the scene) is the float32 engine's, bit for bit,
    while the cache holds bfloat16 keys."""
    guesses, frames = {}, {}
    for dtype in ('float32', 'bfloat16'):
        e = WorldEngine(randomize(WorldModel(micro_config), seed=3), EngineOptions(seed=7, dtype=dtype))
        start(e)
        frames[dtype] = e.step(NavAction(vx=0.3, yaw_rate=0.4))
        assert e._guess is not None
        guesses[dtype] = e._guess
        assert e.memory.sink[0].payload.kv[0].k.dtype == getattr(torch, dtype)
    for name in ('rgb', 'depth', 'mask', 'trust'):
        assert torch.equal(getattr(guesses['float32'], name), getattr(guesses['bfloat16'], name)), name
    assert frames['bfloat16'].depth.dtype == np.float32
    seen = guesses['float32'].mask[0].numpy()
    assert np.abs(frames['float32'].rgb[seen].astype(int) - frames['bfloat16'].rgb[seen].astype(int)).max() <= 1


def _tour(n: int) -> list[NavAction]:
    return [NavAction(vx=0.4, yaw_rate=0.3 * (-1) ** (i // 3)) for i in range(n)]


def test_a_rolling_window_of_one_is_stepping_frame_by_frame(micro_config, randomize):
    frames = {}
    for how in ('step', 'rollout'):
        e = WorldEngine(randomize(WorldModel(micro_config), seed=3), EngineOptions(seed=7))
        start(e)
        frames[how] = [e.step(a) for a in _tour(5)] if how == 'step' else e.rollout(_tour(5), window=1)
    for a, b in zip(frames['step'], frames['rollout'], strict=True):
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth) and a.index == b.index


def test_a_rolling_window_refines_chunks_together_and_the_cache_advances_in_order(micro_config, randomize):
    """Window 2 (two steps): each chunk takes its last step beside the next one, so the frames differ from a
    window of 1; the poses do not, and memory receives every chunk once, in order."""
    cfg = micro_config.replace(sampler=micro_config.sampler.__class__(steps=2, shift=2.0, rolling_window=2))
    runs = {}
    for window in (1, 2):
        e = WorldEngine(randomize(WorldModel(cfg), seed=3), EngineOptions(seed=7))
        start(e)
        appended: list[int] = []
        append = e.memory.append
        e.memory.append = lambda entry, _a=append, _l=appended: (_l.append(entry.chunk_id), _a(entry))[1]
        runs[window] = (e.rollout(_tour(5), window=window), appended)
    (one, _), (two, appended) = runs[1], runs[2]
    assert [f.index for f in two] == [1, 2, 3, 4, 5]
    assert all(np.array_equal(a.pose, b.pose) for a, b in zip(one, two, strict=True))
    assert not np.array_equal(one[0].rgb, two[0].rgb)
    assert appended == [1, 2, 3, 4, 5]
    # the config's window is the default
    e2 = WorldEngine(randomize(WorldModel(cfg), seed=3), EngineOptions(seed=7))
    start(e2)
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(e2.rollout(_tour(5)), two, strict=True))


def test_rollout_refuses_mismatched_hand_keypoints_with_one_clear_error(engine):
    start(engine)
    with pytest.raises(ValueError, match='hand_keypoints must hold one entry per action'):
        engine.rollout(_tour(3), hand_keypoints=[None, None])


@pytest.mark.parametrize('attend_pool', [True, False])
def test_retrieved_pool_chunks_join_attention_only_when_attend_pool(micro_config, randomize, attend_pool):
    memory = micro_config.memory.__class__(sink_chunks=1, window_chunks=0, retrieve_chunks=2,
                                           attend_pool=attend_pool)
    e = WorldEngine(randomize(WorldModel(micro_config.replace(memory=memory)), seed=3), EngineOptions(seed=7))
    start(e)
    seen: list[set[int]] = []
    context_kv = e._context_kv
    e._context_kv = lambda entries, chunks=1: (seen.append({m.chunk_id for m in entries}),  # type: ignore
                                               context_kv(entries, chunks))[1]
    for a in _tour(8):
        e.step(a)
    assert e.memory.pool, 'the tour should pool chunks'
    attention_pool = set().union(*seen) - {0}
    assert bool(attention_pool) == attend_pool


def test_standing_still_returns_the_start_frame_exactly(engine):
    f0 = start(engine)
    for _ in range(5):
        f = engine.step(NavAction())
        assert np.array_equal(f.rgb, f0.rgb)  # the scene render covers the view: nothing to imagine, no shimmer


def test_an_imagined_place_looks_the_same_when_seen_again(micro_config, randomize):
    cfg = micro_config.replace(refiner=dataclasses.replace(micro_config.refiner, imagined='keep'))
    engine = WorldEngine(randomize(WorldModel(cfg), seed=3), EngineOptions(seed=7))
    start(engine)
    turn, back = [NavAction(yaw_rate=1.5)] * 4, [NavAction(yaw_rate=-1.5)] * 4
    first = [engine.step(a).rgb for a in turn]  # into the unseen: imagined, then committed to the scene
    looks = []
    for _ in range(2):
        for a in back:
            engine.step(a)
        looks.append([engine.step(a) for a in turn])
    second, third = looks
    for a, b in zip(second, third, strict=True):
        assert np.array_equal(a.rgb, b.rgb)  # once imagined, every later look is the same
    cfg = engine.config
    trust = engine.scene.render(second[-1].pose, engine.intrinsics, cfg.height, cfg.width).trust.numpy()
    imagined = np.isclose(trust, IMAGINED, atol=0.01)
    assert imagined.mean() > 0.1, 'the turn should look at imagined content'
    # the first look wrote these pixels; only the refiner's one-pixel band around that look's holes can differ
    same = (first[-1] == second[-1].rgb).all(-1)[imagined]
    assert same.mean() > 0.8


@pytest.mark.parametrize('mode', IMAGINED_MODES)
def test_the_refiner_is_shown_imagined_points_as_its_mode_says(micro_config, randomize, mode):
    cfg = micro_config.replace(refiner=dataclasses.replace(micro_config.refiner, imagined=mode))
    e = WorldEngine(randomize(WorldModel(cfg), seed=3), EngineOptions(seed=7))
    start(e)
    for a in [NavAction(yaw_rate=1.5)] * 4:  # into the unseen: imagined, then committed to the scene
        e.step(a)
    shown: list[torch.Tensor] = []
    e.trace = lambda inputs, dynamic: shown.append(inputs)
    for a in [NavAction(yaw_rate=-1.5)] * 2:  # back across what was imagined
        e.step(a)
    x = torch.cat(shown)
    kept, imagined = x[:, 3] > 0.5, torch.isclose(x[:, 4], torch.tensor(IMAGINED), atol=0.01)
    if mode == 'hide':
        assert not imagined.any()  # only observed points reach the refiner
    else:
        assert imagined.any()
        assert bool(kept[imagined].all()) == (mode == 'keep')  # 'propose': each is the refiner's to rewrite


def test_an_unknown_imagined_mode_is_one_config_error(micro_config):
    with pytest.raises(ConfigError, match='refiner.imagined'):
        micro_config.replace(refiner=dataclasses.replace(micro_config.refiner, imagined='blend'))


@pytest.mark.parametrize('margin', [0.0, 1000.0])
def test_a_commit_margin_wider_than_the_view_commits_nothing_imagined(micro_config, randomize, margin):
    cfg = micro_config.replace(scene=dataclasses.replace(micro_config.scene, commit_margin_px=margin))
    e = WorldEngine(randomize(WorldModel(cfg), seed=3), EngineOptions(seed=7))
    start(e)
    held = len(e.scene)
    for a in [NavAction(yaw_rate=1.5)] * 3:
        e.step(a)
    assert (len(e.scene) == held) == (margin > 0)


def test_memory_off_commits_nothing_imagined(micro_config, randomize):
    e = WorldEngine(randomize(WorldModel(micro_config), seed=3), EngineOptions(seed=7, memory=False))
    start(e)
    held = len(e.scene)
    for a in [NavAction(yaw_rate=1.5)] * 3:
        e.step(a)
    assert len(e.scene) == held


def test_the_start_hand_stays_out_of_the_scene_memory(engine):
    cfg = engine.config
    K = engine.intrinsics
    # a hand 0.4 m in front of the camera, around the image centre
    kp = np.zeros((21, 3))
    kp[:, 0] = np.linspace(-0.05, 0.05, 21)
    kp[:, 1] = np.linspace(-0.04, 0.04, 21)[::-1]
    kp[:, 2] = 0.4
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (cfg.height, cfg.width, 3), dtype=np.uint8)
    engine.reset(img, camera_pose(BaseState(height=cfg.camera_height)),
                 depth=np.full((cfg.height, cfg.width), 2.5, np.float32), hand_keypoints=kp)
    render = engine.scene.render(engine._reference, K, cfg.height, cfg.width)
    centre = (cfg.height // 2, cfg.width // 2)
    assert not render.mask[centre] and render.mask[0, 0]


@pytest.mark.parametrize('start_hand', ['region', 'silhouette'])
def test_the_scene_memory_keeps_the_start_frame_around_the_hand_but_not_the_hand(micro_config, randomize,
                                                                                   start_hand):
    refiner = dataclasses.replace(micro_config.refiner, start_hand=start_hand, start_hand_margin_px=1)
    cfg = micro_config.replace(refiner=refiner)
    e = WorldEngine(randomize(WorldModel(cfg), seed=3), EngineOptions(seed=7))
    kp = np.zeros((21, 3))
    kp[:, 0] = np.linspace(-0.08, 0.08, 21)
    kp[:, 1] = np.tile([-0.06, 0.0, 0.06], 7)
    kp[:, 2] = 0.5  # spread over the view: gaps between the bones
    e.reset(np.full((cfg.height, cfg.width, 3), 60, np.uint8), camera_pose(BaseState(height=cfg.camera_height)),
            e.intrinsics, np.full((cfg.height, cfg.width), 2.0, np.float32), hand_keypoints=kp)
    seen = e.scene.render(e._reference, e.intrinsics, cfg.height, cfg.width).mask.numpy()
    region = hands.hand_region(kp, e.intrinsics, cfg.height, cfg.width, cfg.refiner.hand_margin)
    grown = hands.hand_silhouette(kp, e.intrinsics, cfg.height, cfg.width, margin_px=1)
    assert not (seen & grown).any()  # the hand is never static scene
    assert seen[~region].all()
    if start_hand == 'region':
        assert not (seen & region).any()
    else:
        assert seen[region & ~grown].all() and (region & ~grown).any()  # the table between the fingers is seen


@pytest.mark.parametrize('reuse, passes', [(False, 3), (True, 2)])
def test_caching_from_the_last_step_saves_the_clean_pass(micro_config, randomize, reuse, passes):
    sampler = micro_config.sampler.__class__(steps=2, cache_from_last_step=reuse)
    net = randomize(WorldModel(micro_config.replace(sampler=sampler)), seed=3)
    e = WorldEngine(net, EngineOptions(seed=7, window=1))
    start(e)
    calls = []
    forward = e.model.dit.forward
    e.model.dit.forward = lambda *a, **k: (calls.append(1), forward(*a, **k))[1]  # type: ignore[method-assign]
    frames = [e.step(NavAction(vx=0.3, yaw_rate=0.5)) for _ in range(3)]
    assert len(calls) == 3 * passes
    assert len(e.memory) >= 2 and all(f.rgb.shape == (micro_config.height, micro_config.width, 3) for f in frames)


def test_the_refiner_reads_the_start_hands_colour_over_where_the_hand_is_now(micro_config, randomize):
    cfg = micro_config.replace(refiner=dataclasses.replace(micro_config.refiner, hand_colour=True, hand_paint='region',
                                                           show_under_hand=False))
    e = WorldEngine(randomize(WorldModel(cfg), seed=3), EngineOptions(seed=7))
    kp = np.zeros((21, 3))
    kp[:, 0] = np.linspace(-0.08, 0.08, 21)
    kp[:, 1] = np.tile([-0.06, 0.0, 0.06], 7)
    kp[:, 2] = 0.5  # a flat hand half a metre in front of the camera
    img = np.full((cfg.height, cfg.width, 3), 30, np.uint8)
    img[hands.hand_region(kp, e.intrinsics, cfg.height, cfg.width, margin=0.0)] = (200, 150, 120)
    e.reset(img, camera_pose(BaseState(height=cfg.camera_height)), e.intrinsics,
            np.full((cfg.height, cfg.width), 2.0, np.float32), hand_keypoints=kp)
    shown: list[tuple[torch.Tensor, torch.Tensor]] = []
    e.trace = lambda inputs, dynamic: shown.append((inputs, dynamic))
    e.step(None, kp + np.array([0.03, 0.0, 0.0]))  # the hand moved right
    x, dynamic = shown[0]
    plane = x[0, -3:]
    assert torch.allclose(plane[:, dynamic[0]], torch.tensor([200, 150, 120.0])[:, None] / 255)
    assert float(plane[:, ~dynamic[0]].abs().sum()) == 0


def test_the_refiner_sees_the_scene_behind_the_hand_to_draw_over_and_the_colour_on_its_silhouette(micro_config,
                                                                                                   randomize):
    refiner = dataclasses.replace(micro_config.refiner, hand_colour=True, hand_paint='silhouette',
                                  show_under_hand=True)
    cfg = micro_config.replace(refiner=refiner)
    e = WorldEngine(randomize(WorldModel(cfg), seed=3), EngineOptions(seed=7))
    kp = np.zeros((21, 3))
    kp[:, 0] = np.linspace(-0.08, 0.08, 21)
    kp[:, 1] = np.tile([-0.06, 0.0, 0.06], 7)
    kp[:, 2] = 0.5
    img = np.full((cfg.height, cfg.width, 3), 30, np.uint8)
    img[:, cfg.width // 2:] = 90  # a table of two halves, so the scene behind the hand is not one colour
    e.reset(img, camera_pose(BaseState(height=cfg.camera_height)), e.intrinsics,
            np.full((cfg.height, cfg.width), 2.0, np.float32), hand_keypoints=kp)
    shown: list[tuple[torch.Tensor, torch.Tensor]] = []
    e.trace = lambda inputs, dynamic: shown.append((inputs, dynamic))
    moved = kp + np.array([0.06, 0.0, 0.0])
    e.step(None, moved)  # the hand moved right, off part of where it began
    x, dynamic = shown[0]
    region = dynamic[0]
    render, coverage, trust = x[0, :3], x[0, 3] > 0.5, x[0, 4]
    behind = region & (trust > 0)  # the scene memory holds these: the hand was never there
    assert behind.any() and not coverage[region].any()  # shown, yet the refiner's to write
    expected = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    assert torch.allclose(render[:, behind], expected[:, behind], atol=1 / 255)
    sil = torch.from_numpy(hands.hand_silhouette(moved, e.intrinsics, cfg.height, cfg.width))
    plane = x[0, -3:]
    assert (plane.abs().sum(0) > 0).eq(sil).all()  # the colour exactly on the silhouette


def test_a_start_with_its_depth_holds_normals_to_relight_by_and_one_without_holds_its_colours_as_seen(engine):
    assert engine.config.scene.headlight > 0  # the shipped config's, which micro_config keeps
    start(engine)
    lit = engine.scene.points().lighting
    assert lit is not None and bool((lit[:, 3] == 127).all())  # a wall at one depth faces the camera head-on
    cfg = engine.config
    img = np.random.default_rng(0).integers(0, 256, (cfg.height, cfg.width, 3), dtype=np.uint8)
    engine.reset(img, camera_pose(BaseState(height=cfg.camera_height)))  # the model guesses the depth
    guessed = engine.scene.points().lighting
    assert guessed is not None and len(guessed) > 0 and bool((guessed == 0).all())
