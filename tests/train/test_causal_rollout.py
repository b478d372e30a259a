import pytest
import torch
from train_clips import clip_batch

from worldscape_ros.model.attention import block_causal_mask
from worldscape_ros.model.context import context_kv, memory_config, memory_entry
from worldscape_ros.model.dit import Conditioning, LayerKV
from worldscape_ros.model.memory import HierarchicalMemory
from worldscape_ros.model.sampler import add_noise, schedule, x0_from_velocity
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import prepare_batch, randn, sample_generator
from worldscape_ros.train.rollout import self_rollout


def _randomize(module: torch.nn.Module) -> None:
    """Break the zero initialisation so every path carries signal."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _setup(micro_config, frames=3):
    torch.manual_seed(0)
    model = WorldModel(micro_config.replace(conditioning=micro_config.conditioning.__class__(geometry=False)))
    _randomize(model.dit)
    with torch.no_grad():
        clip = prepare_batch(model, clip_batch(2, frames, 32, 48), torch.device('cpu'), 6)
    return model, clip


def _one_step_rollout(model, clip):
    """A one-step rollout, and the noise it drew for chunks 1 and 2 (drawn again from the same generators)."""
    gens = lambda: [sample_generator(0, 0, i) for i in range(2)]  # noqa: E731
    roll = self_rollout(model, clip, gens(), torch.Generator().manual_seed(1), steps=1)
    g = gens()
    noise = [torch.stack([torch.randn(1, 4, 8, 12, generator=gg) for gg in g]) for _ in range(2)]
    return roll, noise


def test_rollout_keeps_the_given_frame_and_gradients_reach_the_student_through_generated_frames(micro_config):
    model, clip = _setup(micro_config)
    roll = self_rollout(model, clip, [sample_generator(0, 0, i) for i in range(2)], torch.Generator().manual_seed(1))
    assert roll.x0.shape == clip.x0.shape and roll.context == 1
    assert torch.equal(roll.x0[:, 0], clip.x0[:, 0])
    assert len(roll.exit_steps) == 2 and all(0 <= s < micro_config.sampler.steps for s in roll.exit_steps)
    roll.x0[:, 1:].square().mean().backward()
    assert model.dit.blocks[0].qkv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.codec.parameters())


def test_one_step_rollout_with_the_kv_cache_equals_the_block_causal_forward_on_its_own_frames(micro_config):
    """With one step, chunk c is x0 predicted from pure noise attending to the clean pass of chunks < c: the same
    as one block-causal teacher-forcing forward over [clean frames so far, noise] (what Self-Forcing trains)."""
    model, clip = _setup(micro_config.replace(memory=micro_config.memory.__class__(sink_chunks=1, window_chunks=2)))
    with torch.no_grad():
        roll, noise = _one_step_rollout(model, clip)
        dit = model.dit
        ids = dit.chunk_ids(3)
        mask = block_causal_mask(ids, ids)
        # Frame 2 attends to the clean frames 0 and 1 (keys from their t = 0 passes) and to its own noise.
        x = torch.cat([roll.x0[:, :2], noise[1]], dim=1)
        t = torch.tensor([[0.0, 0.0, 1.0]]).expand(2, 3)
        v = dit(x, t, clip.cond, mask=mask).velocity[:, 2:]
        expected = x[:, 2:] - v
    assert torch.allclose(roll.x0[:, 2:], expected, atol=1e-4)


def test_without_a_window_a_chunk_attends_to_the_sink_alone(micro_config):
    """window_chunks 0: chunk 2 sees the given frame (the sink) and itself, not chunk 1: the same as a block-causal
    forward over [clean frame 0, noise] with chunk 2's conditioning."""
    cfg = micro_config.replace(memory=micro_config.memory.__class__(sink_chunks=1, window_chunks=0))
    model, clip = _setup(cfg)
    with torch.no_grad():
        roll, noise = _one_step_rollout(model, clip)
        dit = model.dit
        ids = dit.chunk_ids(2)
        cond = clip.cond.map(lambda c: c[:, [0, 2]])
        x = torch.cat([roll.x0[:, :1], noise[1]], dim=1)
        t = torch.tensor([[0.0, 1.0]]).expand(2, 2)
        v = dit(x, t, cond, mask=block_causal_mask(ids, ids)).velocity[:, 1:]
        expected = x[:, 1:] - v
    assert torch.allclose(roll.x0[:, 2:], expected, atol=1e-4)


def _rolling_setup(micro_config):
    """Two steps, no local window (each chunk's context is the sink), three latent frames: one given, two made."""
    cfg = micro_config.replace(memory=micro_config.memory.__class__(sink_chunks=1, window_chunks=0),
                               sampler=micro_config.sampler.__class__(steps=2, shift=2.0))
    return _setup(cfg)


def _shared_with_first_exit(exit_step: int) -> int:
    """A seed of the shared generator whose first exit draw (the first generated chunk's) is exit_step."""
    return next(s for s in range(100) if int(torch.randint(2, (1,), generator=torch.Generator().manual_seed(s)))
                == exit_step)


def test_in_a_rolling_window_a_chunk_takes_its_last_step_jointly_with_the_next_chunk(micro_config):
    """Window 2, two steps: chunk 1 enters alone at pure noise, then steps from level 1 together with chunk 2
    entering at level 0, both after the sink's cached keys: its output is that joint prediction."""
    model, clip = _rolling_setup(micro_config)
    dit, seed = model.dit, _shared_with_first_exit(1)
    gens = lambda: [sample_generator(0, 0, i) for i in range(2)]  # noqa: E731
    with torch.no_grad():
        roll = self_rollout(model, clip, gens(), torch.Generator().manual_seed(seed), window=2)
        assert roll.exit_steps[0] == 1
        times = schedule(2, 2.0)
        g = gens()
        x1, fresh1, x2 = (randn(g, (1, 4, 8, 12), torch.device('cpu')) for _ in range(3))
        cond = [clip.cond.map(lambda c, i=i: c[:, i:i + 1]) for i in range(3)]
        sink = dit(clip.x0[:, :1], torch.zeros(2, 1), cond[0], return_kv=True).kv
        context = dit.rotate_context(sink, dit.token_positions(1, 0))
        t0, t1 = torch.full((2, 1), times[0]), torch.full((2, 1), times[1])
        alone = x0_from_velocity(x1, dit(x1, t0, cond[1], context=context, first_frame=1).velocity, t0)
        x1 = add_noise(alone, fresh1, t1)
        x, t = torch.cat([x1, x2], 1), torch.cat([t1, t0], 1)
        joint = Conditioning.cat(cond[1:])
        expected = x0_from_velocity(x, dit(x, t, joint, context=context, first_frame=1).velocity, t)[:, :1]
    assert torch.allclose(roll.x0[:, 1:2], expected, atol=1e-4)


def test_a_rolling_window_of_one_chunk_is_chunk_by_chunk_generation(micro_config):
    """The default (sampler.rolling_window 0) is a window of one; a window of two changes what chunk 1 saw at
    its last step (chunk 2 beside it), and so its output."""
    model, clip = _rolling_setup(micro_config)
    gens = lambda: [sample_generator(0, 0, i) for i in range(2)]  # noqa: E731
    seed = _shared_with_first_exit(1)
    with torch.no_grad():
        default = self_rollout(model, clip, gens(), torch.Generator().manual_seed(seed))
        one = self_rollout(model, clip, gens(), torch.Generator().manual_seed(seed), window=1)
        two = self_rollout(model, clip, gens(), torch.Generator().manual_seed(seed), window=2)
    assert torch.equal(default.x0, one.x0)
    assert one.exit_steps == two.exit_steps and one.exit_steps[0] == 1
    assert not torch.allclose(one.x0[:, 1:2], two.x0[:, 1:2], atol=1e-3)


def test_rolling_window_gradients_reach_the_student_from_every_generated_chunk(micro_config):
    model, clip = _rolling_setup(micro_config)
    roll = self_rollout(model, clip, [sample_generator(0, 0, i) for i in range(2)],
                        torch.Generator().manual_seed(_shared_with_first_exit(1)), window=2)
    assert roll.x0.shape == clip.x0.shape and torch.equal(roll.x0[:, 0], clip.x0[:, 0])
    for chunk in (1, 2):
        model.zero_grad()
        roll.x0[:, chunk].square().mean().backward(retain_graph=True)
        assert model.dit.blocks[0].qkv.weight.grad.abs().sum() > 0, chunk


@pytest.mark.parametrize('window', [1, 2])
def test_every_pass_of_the_rollout_attends_to_the_engines_context_over_the_chunks_cached_so_far(micro_config,
                                                                                                 monkeypatch, window):
    """Each denoiser call of the rollout (window ticks and clean passes) gets the context the engine builds: each
    clip as a session of the engine's KV memory (its memory config, the pool not attended) holding the clean
    passes so far, joined and rotated by context_kv. A local window of 4 after one sink chunk: chunk 3 attends
    to chunks 0-2, all of them."""
    cfg = micro_config.replace(memory=micro_config.memory.__class__(sink_chunks=1, window_chunks=4),
                               sampler=micro_config.sampler.__class__(steps=2, shift=2.0))
    model, clip = _setup(cfg, frames=6)
    dit, cf = model.dit, cfg.chunk_frames
    calls = []
    forward = dit.forward

    def spy(x, t, cond, **kw):
        out = forward(x, t, cond, **kw)
        calls.append((x.detach(), kw.get('context'), kw.get('first_frame', 0), out.kv if kw.get('return_kv') else None))
        return out

    monkeypatch.setattr(dit, 'forward', spy)
    with torch.no_grad():
        self_rollout(model, clip, [sample_generator(0, 0, i) for i in range(2)], torch.Generator().manual_seed(1),
                     window=window)
    B, cams = clip.x0.shape[0], clip.video_c2w.double().numpy()
    sessions = [HierarchicalMemory(memory_config(cfg, memory=True)) for _ in range(B)]
    attended, cached = [], 0
    for x, context, first, kv in calls:
        entries = [m.context(cams[b, 0], retrieve=False) for b, m in enumerate(sessions)]
        attended.append(len(entries[0]))
        assert first == len(entries[0]) * cf
        expected = context_kv(dit, entries, x.shape[1] // cf, torch.device('cpu'))
        if expected is None:
            assert context is None
        else:
            M = context[0].k.shape[2]
            assert M == len(entries[0]) * cfg.tokens_per_chunk
            for got, want in zip(context, expected, strict=True):
                assert torch.equal(got.k, want.k[:, :, :M]) and torch.equal(got.v, want.v[:, :, :M])
        if kv is not None:  # a clean pass: its chunk joins every session's memory
            for b, m in enumerate(sessions):
                m.append(memory_entry(cached, cams[b, (cached + 1) * cf - 1],
                                      [LayerKV(layer.k[b:b + 1], layer.v[b:b + 1]) for layer in kv], x[b:b + 1]))
            cached += 1
    assert cached == 6 and attended[-1] == 5  # the last chunk: the sink and the window's four
    assert [n for n, (_, _, _, kv) in zip(attended, calls, strict=True) if kv is not None] == [0, 1, 2, 3, 4, 5]
