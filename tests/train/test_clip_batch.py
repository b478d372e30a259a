import pytest
import torch
from train_clips import clip_batch

from worldscape_ros.errors import TrainError
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.clip_batch import dropout_conditioning, prepare_batch, sample_generator


def test_first_frame_has_no_geometric_guess_and_later_frames_are_covered(micro_config):
    model = WorldModel(micro_config)
    with torch.no_grad():
        clip = prepare_batch(model, clip_batch(2, 3, 32, 48), torch.device('cpu'), 6)
    cov = clip.cond.coverage  # (B, F, 1, h, w)
    assert cov.shape == (2, 3, 1, 8, 12)
    assert torch.all(cov[:, 0] == 0)
    assert cov[:, 1:].mean() > 0.9  # moving towards a wall: earlier frames cover the later view
    assert torch.allclose(clip.c2w[:, 0], torch.eye(4).expand(2, 4, 4), atol=1e-6)  # relative to the first camera


def test_clips_of_another_size_than_the_model_raise_a_clear_error(micro_config):
    model = WorldModel(micro_config)
    with pytest.raises(TrainError, match='clips are 64x32 but model'):
        prepare_batch(model, clip_batch(1, 2, 32, 64), torch.device('cpu'), 6)


def test_conditioning_dropout_is_the_same_for_the_same_sample_generators(micro_config):
    model = WorldModel(micro_config)
    with torch.no_grad():
        clip = prepare_batch(model, clip_batch(4, 2, 32, 48), torch.device('cpu'), 6)
    gens = lambda: [sample_generator(3, 0, i) for i in range(4)]  # noqa: E731
    a = dropout_conditioning(clip.cond, 0.5, gens())
    b = dropout_conditioning(clip.cond, 0.5, gens())
    assert torch.equal(a.plucker, b.plucker)
    dropped = [bool((a.plucker[i] == 0).all()) for i in range(4)]
    assert all((a.plucker[i] == clip.cond.plucker[i]).all() for i in range(4) if not dropped[i])


def test_clips_with_hands_get_a_drawn_pose_video_and_clips_without_get_the_empty_one(micro_config):
    from worldscape_ros.train.clip_batch import pose_latent

    model = WorldModel(micro_config)
    batch = clip_batch(2, 2, 32, 48)
    kp = torch.zeros(2, 2, 21, 3)
    kp[..., 0] = torch.linspace(-0.1, 0.1, 21)
    kp[..., 2] = 0.5  # half a metre in front of the camera
    K = batch['intrinsics']
    lat = pose_latent(model, kp, torch.tensor([True, False]), K)
    empty = pose_latent(model, kp, torch.tensor([False, False]), K)
    assert lat.shape == (2, 2, 4, 8, 12)
    assert torch.equal(lat[1], empty[1])
    assert not torch.allclose(lat[0], empty[0])
