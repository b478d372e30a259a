import torch
from train_clips import clip_batch, micro_train_config

from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import sample_generator
from worldscape_ros.train.codec import CodecObjective
from worldscape_ros.train.config import CodecLossConfig
from worldscape_ros.train.loop import build_model
from worldscape_ros.train.runtime import setup_runtime
from worldscape_ros.train.stages import CodecStage


def test_codec_reconstruction_loss_falls_on_a_fixed_batch_within_20_steps(micro_config):
    torch.manual_seed(0)
    model = WorldModel(micro_config)
    video = clip_batch(2, 2, 32, 48)['rgb']
    objective = CodecObjective(model, CodecLossConfig())
    opt = torch.optim.AdamW(model.codec.parameters(), lr=3e-3)
    history = []
    for _ in range(20):
        loss, parts = objective(video, [])
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(parts)
    assert history[-1]['loss'] < 0.7 * history[0]['loss']
    assert history[-1]['psnr'] > history[0]['psnr'] + 3


def _one_codec_step(tmp_path, model, **codec):
    """One CodecStage step on `model`; returns its state dicts before and after."""
    cfg = micro_train_config(tmp_path, tmp_path / 'run', stage='codec', codec=codec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stage = CodecStage(model, cfg, setup_runtime(cfg.run))
    stage.step(clip_batch(2, 2, 32, 48), 0, [sample_generator(0, 0, i) for i in range(2)])
    return before, model.state_dict()


def _codec_model(tmp_path):
    return build_model(micro_train_config(tmp_path, tmp_path / 'run', stage='codec'))


def test_codec_stage_updates_the_codec_only(tmp_path):
    before, after = _one_codec_step(tmp_path, _codec_model(tmp_path))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith('codec.'))
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith('codec.'))


def test_decoder_only_codec_stage_keeps_the_latent_space(tmp_path):
    model = _codec_model(tmp_path)
    video = clip_batch(2, 2, 32, 48)['rgb']
    with torch.no_grad():
        latent_before = model.codec.encode(video)
    before, after = _one_codec_step(tmp_path, model, train_encoder=False)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith('codec.decoder.'))
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith('codec.decoder.'))
    with torch.no_grad():
        assert torch.equal(model.codec.encode(video), latent_before)
