"""The refiner trains on the engine's own traces: trace -> fit -> a checkpoint the engine runs with it."""

import numpy as np
import pytest
import torch
from train_clips import forward_poses, write_walk_and_hand

from worldscape_ros.errors import TrainError
from worldscape_ros.model.checkpoint import load_checkpoint
from worldscape_ros.model.config import RefinerConfig
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.options import EngineOptions
from worldscape_ros.model.refiner import IN_CHANNELS, Refiner
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.refiner import FitConfig, Traces, fit_refiner, trace_episodes


@pytest.fixture
def traced(tmp_path, micro_config):
    # turning in place: every step reveals a strip
    eps = write_walk_and_hand(tmp_path / 'eps', 6, micro_config.height, micro_config.width, step=0.0, yaw=0.12)
    torch.manual_seed(0)
    engine = WorldEngine(WorldModel(micro_config.replace(refiner=RefinerConfig())), EngineOptions(seed=0))
    n = trace_episodes(engine, eps, tmp_path / 'traces', frames=6)
    return engine, tmp_path / 'traces', n


def test_tracing_writes_the_engines_refiner_inputs_beside_the_true_frames(traced, micro_config):
    engine, folder, n = traced
    assert n == 2 * 5
    traces = Traces([folder])
    assert traces.inputs.shape == (10, IN_CHANNELS, micro_config.height, micro_config.width)
    assert traces.target.shape == (10, 3, micro_config.height, micro_config.width)
    assert bool((traces.inputs[:, 3] < 128).any()), 'turning should leave holes to fill'
    assert bool(traces.hand[5:].any()) and not bool(traces.hand[:5].any())  # the manipulation episode's hand
    assert engine.trace is None


def test_a_rerun_of_the_trace_keeps_the_shards_already_written(traced):
    engine, folder, _ = traced
    eps = sorted(folder.parent.joinpath('eps').glob('*.episode.npz'))
    assert trace_episodes(engine, eps, folder, frames=6) == 0


def test_the_fit_lowers_the_loss_resumes_and_ships_a_checkpoint_the_engine_runs(traced, tmp_path):
    engine, folder, _ = traced
    traces = Traces([folder])
    cfg = FitConfig(steps=40, batch=4, lr=3e-3, save_every=20, log_every=10, crop=(16, 24))
    out = tmp_path / 'fit'
    fit_refiner(engine, traces, traces, out, cfg.__class__(**{**cfg.__dict__, 'steps': 20}),
                RefinerConfig(enabled=True))
    final = fit_refiner(engine, traces, traces, out, cfg, RefinerConfig(enabled=True))  # resumes at step 20
    rows = (out / 'metrics.csv').read_text().splitlines()[1:]
    steps = [int(r.split(',')[0]) for r in rows]
    assert steps == [10, 20, 30, 40]
    losses = [float(r.split(',')[1]) for r in rows]
    assert losses[-1] < losses[0]
    model, _ = load_checkpoint(final)
    assert model.refiner is not None and model.config.refiner.enabled
    e = WorldEngine(model, EngineOptions(seed=0))
    ep_rgb = (traces.target[0].permute(1, 2, 0).numpy()).astype(np.uint8)
    e.reset(ep_rgb, forward_poses(1)[0], depth=np.full(ep_rgb.shape[:2], 3.0, np.float32))
    assert e.step(forward_poses(2, step=0.0, yaw=0.12)[1]).rgb.shape == ep_rgb.shape


def test_an_empty_trace_folder_is_one_clear_error(tmp_path):
    with pytest.raises(TrainError, match='no \\*.trace.npz'):
        Traces([tmp_path])


def test_a_fit_with_a_patch_critic_saves_and_resumes_the_critic_too(traced, tmp_path):
    from safetensors import safe_open

    engine, folder, _ = traced
    traces = Traces([folder])
    cfg = FitConfig(steps=4, batch=2, lr=1e-3, save_every=2, log_every=2, crop=(16, 24), adversarial_weight=0.1,
                    adversarial_region='all')
    out = tmp_path / 'adv'
    fit_refiner(engine, traces, traces, out, cfg.__class__(**{**cfg.__dict__, 'steps': 2}), RefinerConfig(enabled=True))
    with safe_open(str(out / 'refiner_state.safetensors'), framework='pt') as f:
        saved = {k: f.get_tensor(k) for k in f.keys() if k.startswith('critic.')}
        assert any(k.startswith('critic_optim.') for k in f.keys())
    fit_refiner(engine, traces, traces, out, cfg, RefinerConfig(enabled=True))  # resumes at step 2
    header, *rows = (out / 'metrics.csv').read_text().splitlines()
    assert header.split(',')[-2:] == ['adversarial', 'critic'] and [int(r.split(',')[0]) for r in rows] == [2, 4]
    with safe_open(str(out / 'refiner_state.safetensors'), framework='pt') as f:
        assert f.metadata()['step'] == '4'
        assert any(not torch.equal(saved[k], f.get_tensor(k)) for k in saved)  # the critic trained on


def test_the_critic_scores_only_patches_that_hold_pixels_the_refiner_writes():
    from worldscape_ros.train.patch_critic import PatchCritic, generator_loss

    torch.manual_seed(0)
    critic = PatchCritic()
    img, coverage = torch.rand(1, 3, 32, 32), torch.ones(1, 1, 32, 32)
    focus = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    focus[..., :8, :8] = True
    img.requires_grad_(True)
    generator_loss(critic, img, coverage, focus).backward()
    assert img.grad is not None
    assert float(img.grad[..., 24:, 24:].abs().sum()) == 0  # far from the hole: out of every scored patch
    assert float(img.grad[..., :8, :8].abs().sum()) > 0


def test_an_unknown_adversarial_region_is_one_clear_error(traced, tmp_path):
    engine, folder, _ = traced
    cfg = FitConfig(steps=1, adversarial_weight=0.1, adversarial_region='sky')
    with pytest.raises(TrainError, match="adversarial region must be one of hand, all, got 'sky'"):
        fit_refiner(engine, Traces([folder]), None, tmp_path / 'x', cfg, RefinerConfig(enabled=True))
    assert not (tmp_path / 'x').exists()


def test_a_warm_start_begins_from_the_checkpoints_refiner_and_needs_one(traced, tmp_path, micro_config):
    engine, folder, _ = traced
    traces = Traces([folder])
    cfg = FitConfig(steps=0)
    with pytest.raises(TrainError, match='the checkpoint has no refiner to start from'):
        fit_refiner(engine, traces, None, tmp_path / 'cold', cfg, RefinerConfig(enabled=True), warm_start=True)
    torch.manual_seed(5)
    own = WorldEngine(WorldModel(micro_config.replace(refiner=RefinerConfig(enabled=True))), EngineOptions(seed=0))
    for p in own.model.refiner.parameters():
        torch.nn.init.normal_(p, std=0.1)  # unlike a fresh refiner, whose last layer is zero
    before = {k: v.clone() for k, v in own.model.refiner.state_dict().items()}
    final = fit_refiner(own, traces, None, tmp_path / 'warm', cfg, RefinerConfig(enabled=True), warm_start=True)
    model, _ = load_checkpoint(final)
    assert model.refiner is not None
    saved = model.refiner.state_dict()
    assert saved.keys() == before.keys() and all(torch.equal(saved[k], before[k]) for k in before)


def test_a_fresh_residual_starts_from_the_smooth_fill_with_the_checkpoints_features(traced, tmp_path, micro_config):
    engine, folder, _ = traced
    traces = Traces([folder])
    torch.manual_seed(5)
    own = WorldEngine(WorldModel(micro_config.replace(refiner=RefinerConfig(enabled=True))), EngineOptions(seed=0))
    for p in own.model.refiner.parameters():
        torch.nn.init.normal_(p, std=0.1)
    before = {k: v.clone() for k, v in own.model.refiner.state_dict().items()}
    final = fit_refiner(own, traces, None, tmp_path / 'fresh', FitConfig(steps=0, fresh_residual=True),
                        RefinerConfig(enabled=True), warm_start=True)
    model, _ = load_checkpoint(final)
    saved = model.refiner.state_dict()
    last = {k for k in saved if k.startswith('out.')}
    assert last and all(not saved[k].any() for k in last)  # the residual: zero
    assert all(torch.equal(saved[k], before[k]) for k in before if k not in last)  # the features: kept
    x, _, hand = traces.batch(torch.arange(4))
    hole = (x[:, 3] < 0.5)[:, None].expand(-1, 3, -1, -1)
    with torch.no_grad():
        assert torch.equal(model.refiner(x)[hole], x[:, 5:8][hole])  # the smooth fill, exactly
    with pytest.raises(TrainError, match='a fresh residual is for a warm start'):
        fit_refiner(own, traces, None, tmp_path / 'cold', FitConfig(steps=0, fresh_residual=True),
                    RefinerConfig(enabled=True))


def test_an_l2_fit_lowers_its_loss_and_an_unknown_pixel_loss_is_one_clear_error(traced, tmp_path):
    engine, folder, _ = traced
    traces = Traces([folder])
    cfg = FitConfig(steps=40, batch=4, lr=3e-3, log_every=10, crop=(16, 24), pixel_loss='l2', gradient_weight=0.0)
    fit_refiner(engine, traces, None, tmp_path / 'l2', cfg, RefinerConfig(enabled=True))
    losses = [float(r.split(',')[1]) for r in (tmp_path / 'l2' / 'metrics.csv').read_text().splitlines()[1:]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    with pytest.raises(TrainError, match="pixel loss must be one of l1, l2, got 'l3'"):
        fit_refiner(engine, traces, None, tmp_path / 'x', FitConfig(steps=1, pixel_loss='l3'),
                    RefinerConfig(enabled=True))


def test_outside_the_hand_an_anchored_fit_learns_the_anchors_output_not_the_truth(traced, tmp_path, micro_config):
    import copy

    _, folder, _ = traced
    traces = Traces([folder])
    traces.hand[:] = False  # no hand anywhere: the anchor is the whole target
    torch.manual_seed(5)
    own = WorldEngine(WorldModel(micro_config.replace(refiner=RefinerConfig(enabled=True))), EngineOptions(seed=0))
    for p in own.model.refiner.parameters():
        torch.nn.init.normal_(p, std=0.05)
    anchor = copy.deepcopy(own.model.refiner).eval().requires_grad_(False)
    cfg = FitConfig(steps=1, batch=4, log_every=1, crop=(16, 24))
    fit_refiner(own, traces, None, tmp_path / 'a', cfg, RefinerConfig(enabled=True), warm_start=True, anchor=anchor)
    loss = float((tmp_path / 'a' / 'metrics.csv').read_text().splitlines()[1].split(',')[1])
    assert loss == 0.0  # the refiner starts as the anchor: nothing to learn
    fit_refiner(own, traces, None, tmp_path / 'b', cfg, RefinerConfig(enabled=True), warm_start=True)
    assert float((tmp_path / 'b' / 'metrics.csv').read_text().splitlines()[1].split(',')[1]) > 0  # the truth


def _random_scene_engine(micro_config, seed: int = 5) -> WorldEngine:
    torch.manual_seed(seed)
    own = WorldEngine(WorldModel(micro_config.replace(refiner=RefinerConfig(enabled=True))), EngineOptions(seed=0))
    for p in own.model.refiner.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return own


def test_a_hand_fit_trains_the_hand_refiner_and_ships_the_scene_refiner_unchanged(traced, tmp_path, micro_config):
    _, folder, _ = traced
    own = _random_scene_engine(micro_config)
    scene = {k: v.clone() for k, v in own.model.refiner.state_dict().items()}
    cfg = FitConfig(steps=4, batch=4, lr=3e-3, log_every=2, crop=(16, 24))
    final = fit_refiner(own, Traces([folder]), None, tmp_path / 'h', cfg, RefinerConfig(enabled=True),
                        warm_start=True, scene=own.model.refiner)
    model, _ = load_checkpoint(final)
    assert model.config.refiner.hand_refiner and model.hand_refiner is not None and model.refiner is not None
    assert all(torch.equal(model.refiner.state_dict()[k], v) for k, v in scene.items())
    hand = model.hand_refiner.state_dict()
    assert any(not torch.equal(hand[k], v) for k, v in scene.items())  # started from the scene refiner, moved


def test_a_hand_refiner_equal_to_the_scene_refiner_changes_no_frame(traced, tmp_path, micro_config):
    from worldscape_ros.data.episode import read_episode
    from worldscape_ros.train.engine_traces import replay

    _, folder, _ = traced
    own = _random_scene_engine(micro_config)
    final = fit_refiner(own, Traces([folder]), None, tmp_path / 'h', FitConfig(steps=0),
                        RefinerConfig(enabled=True), warm_start=True, scene=own.model.refiner)
    both = WorldEngine(load_checkpoint(final)[0], EngineOptions(seed=0))
    assert both.model.hand_refiner is not None
    hand_episode = read_episode(sorted(folder.parent.joinpath('eps').glob('*.episode.npz'))[1])
    alone = replay(own, hand_episode, 4)
    for a, b in zip(alone, replay(both, hand_episode, 4), strict=True):
        assert np.abs(a.rgb.astype(int) - b.rgb.astype(int)).max() <= 1  # w * x + (1 - w) * x, rounded
    for p in both.model.hand_refiner.parameters():
        torch.nn.init.normal_(p, std=0.05)
    assert any(not np.array_equal(a.rgb, b.rgb) for a, b in zip(alone, replay(both, hand_episode, 4)))


def test_a_hand_fit_takes_no_anchor(traced, tmp_path, micro_config):
    _, folder, _ = traced
    own = _random_scene_engine(micro_config)
    with pytest.raises(TrainError, match='needs no anchor'):
        fit_refiner(own, Traces([folder]), None, tmp_path / 'h', FitConfig(steps=0), RefinerConfig(enabled=True),
                    anchor=own.model.refiner, scene=own.model.refiner)


def test_a_scene_fit_beside_a_hand_refiner_learns_nothing_where_the_hand_refiner_writes(traced, tmp_path,
                                                                                         micro_config):
    _, folder, _ = traced
    torch.manual_seed(5)
    cfg = micro_config.replace(refiner=RefinerConfig(enabled=True, hand_refiner=True))
    both = WorldEngine(WorldModel(cfg), EngineOptions(seed=0))
    for p in both.model.hand_refiner.parameters():
        torch.nn.init.normal_(p, std=0.05)
    hand = {k: v.clone() for k, v in both.model.hand_refiner.state_dict().items()}
    traces = Traces([folder])
    traces.hand[:] = True  # the hand refiner writes every pixel: the scene refiner's output never shows
    fit = FitConfig(steps=3, batch=4, log_every=1, crop=None)
    model, _ = load_checkpoint(fit_refiner(both, traces, None, tmp_path / 's', fit, cfg.refiner))
    assert all(torch.equal(model.hand_refiner.state_dict()[k], v) for k, v in hand.items())
    torch.manual_seed(fit.seed)
    start = Refiner(cfg.refiner).state_dict()  # the fit's fresh start
    moved = max(float((model.refiner.state_dict()[k] - v).abs().max()) for k, v in start.items())
    assert moved < 1e-5  # weight decay alone
    traces.hand[:] = False  # and where it does not write, the scene refiner learns
    model, _ = load_checkpoint(fit_refiner(both, traces, None, tmp_path / 't', fit, cfg.refiner))
    assert max(float((model.refiner.state_dict()[k] - v).abs().max()) for k, v in start.items()) > 1e-3


def test_a_hand_fit_on_batches_without_a_hand_leaves_the_hand_refiner_as_it_started(traced, tmp_path, micro_config):
    _, folder, _ = traced
    own = _random_scene_engine(micro_config)
    traces = Traces([folder])
    traces.hand[:] = False  # nothing the hand refiner writes
    start = {k: v.clone() for k, v in own.model.refiner.state_dict().items()}
    final = fit_refiner(own, traces, None, tmp_path / 'h', FitConfig(steps=3, batch=4, log_every=1, crop=(16, 24)),
                        RefinerConfig(enabled=True), warm_start=True, scene=own.model.refiner)
    hand = load_checkpoint(final)[0].hand_refiner.state_dict()
    assert all(torch.equal(hand[k], v) for k, v in start.items())
