import dataclasses

import pytest
import torch

from worldscape_ros.errors import ConfigError
from worldscape_ros.model.config import ModelConfig, load_config
from worldscape_ros.model.frames import GeometricGuess
from worldscape_ros.model.guess import committable
from worldscape_ros.model.scene_memory import IMAGINED, OBSERVED

H, W = 24, 40


def _config(margin: float) -> ModelConfig:
    cfg = load_config('ws-tiny')
    return cfg.replace(scene=dataclasses.replace(cfg.scene, commit_margin_px=margin))


def _strafe_guess() -> GeometricGuess:
    """Observed columns 0-9, a strip imagined before in 10-19, a new hole from 20 on; no hand."""
    mask = torch.zeros(1, H, W, dtype=torch.bool)
    mask[:, :, :20] = True
    trust = torch.zeros(1, H, W)
    trust[:, :, :10], trust[:, :, 10:20] = OBSERVED, IMAGINED
    dynamic = torch.zeros(1, H, W, dtype=torch.bool)
    return GeometricGuess(coverage=torch.zeros(1, 1, 1, 6, 10), depth=mask.float(), mask=mask,
                          rgb=torch.zeros(1, 3, H, W), trust=trust, dynamic=dynamic, hand_area=dynamic.clone(),
                          hand_colour=torch.zeros(1, 3, H, W))


def test_without_a_margin_every_uncovered_pixel_but_the_hands_is_committed():
    g = _strafe_guess()
    assert torch.equal(committable(_config(0.0), g), ~g.mask & ~g.dynamic)


def test_imagined_pixels_near_an_observed_one_are_not_committed_and_imagined_neighbours_do_not_count():
    g = _strafe_guess()
    commit = committable(_config(15.0), g)[0]
    cols = commit.any(0).nonzero()[:, 0]
    # observed pixels end at column 9: columns 10-24 lie within 15 pixels; the imagined strip 10-19 is no
    # observed pixel, so the new hole's far part, 25 on, is committed
    assert int(cols.min()) == 25 and int(cols.max()) == W - 1
    assert not bool((commit & g.dynamic[0]).any())


def test_a_frame_with_a_hand_commits_all_it_imagines_however_near_what_was_observed():
    g = _strafe_guess()
    g.dynamic[:, 20:, 36:] = True  # the hand, at the bottom right
    g.hand_area = g.dynamic.clone()
    assert torch.equal(committable(_config(15.0), g), ~g.mask & ~g.dynamic)
    g.hand_area[:] = False
    assert not torch.equal(committable(_config(15.0), g), ~g.mask & ~g.dynamic)


def test_a_frame_with_nothing_observed_commits_all_it_imagines():
    g = _strafe_guess()
    g.trust = torch.where(g.mask, torch.full_like(g.trust, IMAGINED), g.trust)
    assert torch.equal(committable(_config(15.0), g), ~g.mask & ~g.dynamic)


def test_the_commit_margin_is_checked_and_saved_only_when_set():
    cfg = _config(24.0)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert 'commit_margin_px' not in load_config('ws-tiny').replace(
        scene=dataclasses.replace(cfg.scene, commit_margin_px=0.0)).to_dict().get('scene', {})
    with pytest.raises(ConfigError, match='scene.commit_margin_px must be >= 0, got -1'):
        _config(-1.0)
