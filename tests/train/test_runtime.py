import torch
from train_clips import clip_batch

from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import prepare_batch, sample_generator
from worldscape_ros.train.config import TeacherLossConfig
from worldscape_ros.train.runtime import enable_activation_checkpointing
from worldscape_ros.train.teacher import TeacherObjective


def _grads(model: WorldModel, clip, dtype=None) -> dict[str, torch.Tensor]:
    objective = TeacherObjective(model, TeacherLossConfig(render_weight=0.0, cond_dropout=0.0))
    model.zero_grad()
    with torch.autocast('cpu', dtype=dtype, enabled=dtype is not None):
        loss, _ = objective(clip, [sample_generator(0, 0, i) for i in range(2)])
    loss.backward()
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_activation_checkpointing_gives_the_same_gradients_and_keeps_parameter_names(micro_config):
    torch.manual_seed(0)
    model = WorldModel(micro_config)
    names = list(model.state_dict())
    with torch.no_grad():
        for p in model.dit.parameters():
            p.add_(0.05 * torch.randn_like(p))  # break the zero init so every block carries gradient
        clip = prepare_batch(model, clip_batch(2, 3, 32, 48), torch.device('cpu'), 6)
    plain = _grads(model, clip)
    enable_activation_checkpointing(model.dit.blocks)
    recomputed = _grads(model, clip)
    assert list(model.state_dict()) == names
    assert plain.keys() == recomputed.keys()
    for k in plain:
        assert torch.allclose(plain[k], recomputed[k], atol=1e-6), k


def test_bf16_autocast_step_gives_finite_gradients(micro_config):
    torch.manual_seed(0)
    model = WorldModel(micro_config)
    with torch.no_grad():
        clip = prepare_batch(model, clip_batch(2, 3, 32, 48), torch.device('cpu'), 6)
    grads = _grads(model, clip, torch.bfloat16)
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
