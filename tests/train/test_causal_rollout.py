import torch
from train_clips import clip_batch

from worldscape_ros.model.attention import block_causal_mask
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import prepare_batch, sample_generator
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
