import pytest
import torch
from train_clips import clip_batch

from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import prepare_batch, sample_generator
from worldscape_ros.train.config import TeacherLossConfig
from worldscape_ros.train.teacher import TeacherObjective, render_loss, sample_times


@pytest.mark.parametrize('causal', [False, True], ids=['bidirectional', 'causal_teacher_forcing'])
def test_teacher_loss_falls_on_a_fixed_batch_within_20_steps(micro_config, causal):
    torch.manual_seed(0)
    model = WorldModel(micro_config)
    for p in model.codec.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        clip = prepare_batch(model, clip_batch(2, 4, 32, 48), torch.device('cpu'), 6)
    objective = TeacherObjective(model, TeacherLossConfig(render_weight=0.0, depth_weight=0.1, cond_dropout=0.0,
                                                                 causal=causal))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    gens = lambda: [sample_generator(0, 0, i) for i in range(2)]  # noqa: E731  same noise each step
    losses = []
    for _ in range(20):
        loss, parts = objective(clip, gens())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(parts)
    assert losses[-1]['loss'] < 0.8 * losses[0]['loss']
    assert losses[-1]['fm'] < losses[0]['fm']
    assert losses[-1]['depth'] < losses[0]['depth']


def test_context_frames_are_clean_and_other_times_lie_in_the_unit_interval():
    gens = [sample_generator(1, 2, i) for i in range(3)]
    t = sample_times(gens, 5, 2, TeacherLossConfig(), shift=2.0, device=torch.device('cpu'))
    assert t.shape == (3, 5)
    assert torch.all(t[:, :2] == 0)
    assert torch.all((t[:, 2:] > 0) & (t[:, 2:] < 1))


def test_teacher_loss_ignores_the_clean_context_frame(micro_config):
    torch.manual_seed(0)
    model = WorldModel(micro_config)
    with torch.no_grad():
        clip = prepare_batch(model, clip_batch(1, 3, 32, 48), torch.device('cpu'), 6)
    objective = TeacherObjective(model, TeacherLossConfig(render_weight=0.0, depth_weight=0.0, cond_dropout=0.0))
    gens = lambda: [sample_generator(0, 0, 0)]  # noqa: E731
    with torch.no_grad():
        a, _ = objective(clip, gens())
        clip.x0[:, 0] += 0.5  # the first frame enters only as context: its own error is not counted
        b, _ = objective(clip, gens())
    # Zero-initialised output layers make every velocity zero, so the loss sees the target frames only.
    assert torch.equal(a, b)


def test_render_loss_gradients_reach_the_gaussian_head_through_the_rasteriser(micro_config):
    torch.manual_seed(0)
    model = WorldModel(micro_config)
    with torch.no_grad():
        clip = prepare_batch(model, clip_batch(1, 3, 32, 48), torch.device('cpu'), 6)
    features = torch.randn(1, 3, micro_config.tokens_per_frame, micro_config.dit.dim, requires_grad=True)
    loss = render_loss(model, clip, features, 1, TeacherLossConfig(render_scale=1.0, render_targets=2),
                       [sample_generator(0, 0, 0)])
    assert loss.shape == (1,) and loss.item() > 0
    loss.sum().backward()
    head = model.gaussian_head
    assert head.proj.weight.grad is not None and head.proj.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.aggregator.parameters())
    assert features.grad is not None and features.grad[:, 0].abs().sum() > 0  # back to the DiT's features
    assert features.grad[:, 1:].abs().sum() == 0  # only the clean context frame makes the Gaussians
