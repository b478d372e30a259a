import torch

from worldscape_ros.model.attention import block_causal_mask
from worldscape_ros.model.dit import CausalDiT, Conditioning, LayerKV
from worldscape_ros.model.world_model import WorldModel


def make_inputs(cfg, frames: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    C, h, w = cfg.codec.latent_channels, cfg.latent_height, cfg.latent_width
    x = torch.randn(1, frames, C, h, w, generator=g)
    t = torch.rand(1, frames, generator=g)
    cond = Conditioning(plucker=torch.randn(1, frames, 6, cfg.height, cfg.width, generator=g),
                        pose=torch.randn(1, frames, C, h, w, generator=g),
                        geometry=torch.randn(1, frames, C, h, w, generator=g),
                        coverage=torch.rand(1, frames, 1, h, w, generator=g))
    return x, t, cond


def slice_cond(cond: Conditioning, a: int, b: int) -> Conditioning:
    return cond.map(lambda v: v[:, a:b])


def full_block_causal(dit: CausalDiT, x, t, cond):
    ids = dit.chunk_ids(x.shape[1])
    return dit(x, t, cond, mask=block_causal_mask(ids, ids))


def test_streaming_with_cache_equals_full_block_causal_forward(micro_config, randomize):
    dit = randomize(CausalDiT(micro_config)).eval()
    frames = 4
    x, t, cond = make_inputs(micro_config, frames)
    with torch.no_grad():
        full = full_block_causal(dit, x, t, cond).velocity
        cache: list[list[LayerKV]] = []
        outs = []
        for i in range(frames):
            positions = dit.token_positions(i) if i else None
            context = None
            if cache:
                merged = [LayerKV(torch.cat([c[layer].k for c in cache], 2), torch.cat([c[layer].v for c in cache], 2))
                          for layer in range(len(dit.blocks))]
                context = dit.rotate_context(merged, positions)
            out = dit(x[:, i:i + 1], t[:, i:i + 1], slice_cond(cond, i, i + 1), context=context, first_frame=i,
                      return_kv=True)
            cache.append(out.kv)
            outs.append(out.velocity)
    streamed = torch.cat(outs, dim=1)
    assert (streamed - full).abs().max().item() <= 1e-4


def test_changing_a_future_frame_leaves_earlier_outputs_bit_identical(micro_config, randomize):
    dit = randomize(CausalDiT(micro_config)).eval()
    x, t, cond = make_inputs(micro_config, 3)
    x2 = x.clone()
    x2[:, 2] += 1.0
    with torch.no_grad():
        a = full_block_causal(dit, x, t, cond).velocity
        b = full_block_causal(dit, x2, t, cond).velocity
    assert torch.equal(a[:, :2], b[:, :2])
    assert not torch.equal(a[:, 2], b[:, 2])


def test_bidirectional_teacher_sees_the_future(micro_config, randomize):
    dit = randomize(CausalDiT(micro_config)).eval()
    x, t, cond = make_inputs(micro_config, 2)
    x2 = x.clone()
    x2[:, 1] += 1.0
    with torch.no_grad():
        assert not torch.equal(dit(x, t, cond).velocity[:, 0], dit(x2, t, cond).velocity[:, 0])


def test_zero_initialised_conditioning_paths_start_silent(micro_config):
    dit = CausalDiT(micro_config).eval()
    x, t, cond = make_inputs(micro_config, 1)
    with torch.no_grad():
        with_cond = dit(x, t, cond).velocity
        without = dit(x, t, Conditioning()).velocity
    assert torch.equal(with_cond, without)


def test_heads_give_metric_depth_and_gaussians_of_the_config_shape(micro_config):
    model = WorldModel(micro_config)
    x, t, cond = make_inputs(micro_config, 2)
    out = model.dit(x, t, cond)
    depth = model.predict_depth(out.features)
    assert depth.shape == (1, 2, micro_config.height, micro_config.width)
    assert torch.allclose(depth, torch.full_like(depth, 2.0))
    c2w = torch.eye(4).expand(1, 2, 4, 4)
    K = torch.tensor([[[40.0, 0, 24], [0, 40.0, 16], [0, 0, 1]]])
    assert model.gaussian_head is not None
    g = model.gaussian_head(out.features, c2w, K)
    cells = (micro_config.height // 4) * (micro_config.width // 4)
    assert g.means.shape == (1, 2, cells, 3)
    assert torch.allclose(g.means[..., 2], torch.full_like(g.means[..., 2], 2.0), atol=0.1)


def test_teacher_forcing_with_clean_context_equals_streaming_over_clean_passes(micro_config, randomize):
    """The causal training forward over [clean; noisy] frames gives, for each noisy frame, exactly what the
    engine computes: that frame attending to the cached clean passes of the earlier frames."""
    dit = randomize(CausalDiT(micro_config)).eval()
    frames = 3
    x0, _, cond = make_inputs(micro_config, frames, seed=2)
    xt, t, _ = make_inputs(micro_config, frames, seed=3)
    both = cond.map(lambda v: torch.cat([v, v], dim=1))
    index = torch.cat([torch.arange(frames), torch.arange(frames)])
    with torch.no_grad():
        tf = dit(torch.cat([x0, xt], 1), torch.cat([torch.zeros_like(t), t], 1), both,
                 mask=dit.teacher_forcing_mask(frames), frame_index=index).velocity[:, frames:]
        cache: list[list[LayerKV]] = []
        outs = []
        for i in range(frames):
            context = None
            if cache:
                merged = [LayerKV(torch.cat([c[layer].k for c in cache], 2), torch.cat([c[layer].v for c in cache], 2))
                          for layer in range(len(dit.blocks))]
                context = dit.rotate_context(merged, dit.token_positions(i))
            c_i = slice_cond(cond, i, i + 1)
            outs.append(dit(xt[:, i:i + 1], t[:, i:i + 1], c_i, context=context, first_frame=i).velocity)
            clean = dit(x0[:, i:i + 1], torch.zeros(1, 1), c_i, context=context, first_frame=i, return_kv=True)
            cache.append(clean.kv)
    assert (torch.cat(outs, 1) - tf).abs().max().item() <= 1e-4
