import dataclasses

import pytest
import torch

from worldscape_ros.errors import ConfigError
from worldscape_ros.model.config import ModelConfig, load_config
from worldscape_ros.model.frames import GeometricGuess
from worldscape_ros.model.guess import committable, compose
from worldscape_ros.model.refiner import Refiner
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


def _compose_strafe(sigma: float, hand: bool = False) -> tuple[GeometricGuess, torch.Tensor]:
    """The strafe guess with a red observed wall and a green strip imagined before it, formed by a fresh refiner
    (whose output in a hole is its smooth fill) under refiner.anchor_sigma = sigma, at full weight everywhere."""
    cfg = load_config('ws-tiny')
    cfg = cfg.replace(refiner=dataclasses.replace(cfg.refiner, anchor_sigma=sigma, anchor_reach_px=0.0,
                                                  detail_reach_px=0.0))
    g = _strafe_guess()
    g.rgb[:, :, :, :10] = torch.tensor([0.8, 0.1, 0.1])[:, None, None]
    g.rgb[:, :, :, 10:20] = torch.tensor([0.1, 0.8, 0.1])[:, None, None]
    if hand:
        g.dynamic[:, 20:, 36:] = True
        g.hand_area = g.dynamic.clone()
    torch.manual_seed(0)
    out = compose(cfg, g, torch.rand(1, 3, H, W), None, Refiner(cfg.refiner).eval(), None, None, torch.device('cpu'))
    return g, out


def test_anchoring_gives_the_hole_the_colour_the_observed_wall_continues_into_not_the_imagined_strips():
    g, plain = _compose_strafe(0.0)
    _, anchored = _compose_strafe(4.0)
    far = (slice(None), slice(None), slice(None), slice(30, None))  # the hole, away from the imagined strip
    assert plain[far][:, 1].mean() > 0.7 and plain[far][:, 0].mean() < 0.2  # continued from the green strip
    assert anchored[far][:, 0].mean() > 0.7 and anchored[far][:, 1].mean() < 0.2  # the red wall's colour
    # what was seen and what was imagined before is formed as without anchoring, to the bit
    assert torch.equal(anchored[..., :19], plain[..., :19])


def test_anchoring_leaves_a_frame_with_a_hand_as_it_was():
    _, plain = _compose_strafe(0.0, hand=True)
    _, anchored = _compose_strafe(4.0, hand=True)
    assert torch.equal(anchored, plain)


def _compose_unseen(prior: float, colour: tuple[float, float, float] | None) -> tuple[GeometricGuess, torch.Tensor]:
    """A view holding no observed point: a green strip imagined before in columns 10-19, the rest a hole, formed
    by a fresh refiner under the shipped anchor with refiner.anchor_prior = prior; colour: the scene's observed
    mean colour (None: the scene holds no observed point)."""
    cfg = load_config('ws-tiny')
    cfg = cfg.replace(refiner=dataclasses.replace(cfg.refiner, anchor_sigma=4.0, anchor_prior=prior))
    g = _strafe_guess()
    g.mask[:, :, :10] = False
    g.trust[:, :, :10] = 0
    g.rgb[:, :, :, 10:20] = torch.tensor([0.1, 0.8, 0.1])[:, None, None]
    g.scene_colour = torch.tensor([[float('nan')] * 3 if colour is None else colour])
    torch.manual_seed(0)
    with torch.no_grad():
        out = compose(cfg, g, torch.rand(1, 3, H, W), None, Refiner(cfg.refiner).eval(), None, None,
                      torch.device('cpu'))
    return g, out


def test_the_prior_pulls_what_is_imagined_far_from_anything_seen_to_the_scenes_observed_colour():
    g, plain = _compose_unseen(0.0, (0.6, 0.3, 0.5))
    _, pulled = _compose_unseen(1.0, (0.6, 0.3, 0.5))
    far = (slice(None), slice(None), slice(None), slice(30, None))
    assert plain[far][:, 1].mean() > 0.7  # continued from the green strip: nothing observed holds it
    assert abs(float(pulled[far][:, 0].mean()) - 0.6) < 0.05 and abs(float(pulled[far][:, 1].mean()) - 0.3) < 0.05
    assert torch.equal(pulled[g.mask[:, None].expand_as(pulled)], plain[g.mask[:, None].expand_as(plain)])
    _, half = _compose_unseen(0.5, (0.6, 0.3, 0.5))
    assert float(pulled[far][:, 1].mean()) < float(half[far][:, 1].mean()) < float(plain[far][:, 1].mean())


def test_the_prior_does_nothing_without_an_observed_point_in_the_scene():
    _, plain = _compose_unseen(0.0, None)
    _, pulled = _compose_unseen(1.0, None)
    assert torch.equal(pulled, plain)


@pytest.mark.parametrize('field, value, bad, message', [
    ('anchor_prior', 0.5, 1.5, r'refiner.anchor_prior must be within \[0, 1\], got 1.5'),
    ('fill_fade_px', 16.0, -1.0, 'refiner.fill_fade_px must be >= 0, got -1'),
])
def test_the_prior_and_the_fade_are_checked_and_saved_only_when_set(field, value, bad, message):
    cfg = load_config('ws-tiny')
    off = cfg.replace(refiner=dataclasses.replace(cfg.refiner, **{field: 0.0}))
    assert field not in off.to_dict()['refiner']  # files made before it read the same
    set_ = cfg.replace(refiner=dataclasses.replace(cfg.refiner, **{field: value}))
    assert ModelConfig.from_dict(set_.to_dict()) == set_
    with pytest.raises(ConfigError, match=message):
        cfg.replace(refiner=dataclasses.replace(cfg.refiner, **{field: bad}))


def _compose_faded(reach: float, hand: bool = False, colour: tuple[float, float, float] | None = (0.2, 0.2, 0.9)
                   ) -> tuple[GeometricGuess, torch.Tensor]:
    """The strafe view (a red observed wall, a green strip imagined before, a hole from column 20), formed by a
    fresh refiner (its output: the smooth fill exactly) with refiner.fill_fade_px = reach."""
    cfg = load_config('ws-tiny')
    cfg = cfg.replace(refiner=dataclasses.replace(cfg.refiner, anchor_sigma=0.0, anchor_prior=0.0,
                                                  detail_reach_px=0.0, fill_fade_px=reach))
    g = _strafe_guess()
    g.rgb[:, :, :, :10] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
    g.rgb[:, :, :, 10:20] = torch.tensor([0.1, 0.8, 0.1])[:, None, None]
    g.scene_colour = torch.tensor([[float('nan')] * 3 if colour is None else colour])
    return g, _formed(cfg, g, hand)


def _formed(cfg: ModelConfig, g: GeometricGuess, hand: bool) -> torch.Tensor:
    """The frame compose makes of g with a fresh refiner; hand: a hand at the bottom right first."""
    if hand:
        g.dynamic[:, 20:, 36:] = True
        g.hand_area = g.dynamic.clone()
    with torch.no_grad():
        return compose(cfg, g, torch.rand(1, 3, H, W), None, Refiner(cfg.refiner).eval(), None, None,
                       torch.device('cpu'))


def test_the_fill_fades_into_the_scenes_colour_with_the_distance_from_what_was_observed():
    g, plain = _compose_faded(0.0)
    _, faded = _compose_faded(4.0)
    d = torch.arange(W) - 9.0  # distance of each column from the last observed one (the wall is 10 wide)
    share = torch.exp(-d / 4.0)
    hole = slice(21, None)  # the hole, past the refiner's edge band
    expected = share[hole] * plain[0, :, :, hole] + (1 - share[hole]) * torch.tensor([0.2, 0.2, 0.9])[:, None, None]
    torch.testing.assert_close(faded[0, :, :, hole], expected, atol=0.02, rtol=0)
    assert faded[0, 2, :, 36:].mean() > 0.85  # far from the wall: the scene's blue, not the imagined green
    # what was seen and what was imagined before is formed as without the fade, to the bit
    assert torch.equal(faded[..., :19], plain[..., :19])


def test_the_fade_leaves_a_frame_with_a_hand_or_a_scene_without_observed_points_as_it_was():
    assert torch.equal(_compose_faded(4.0, hand=True)[1], _compose_faded(0.0, hand=True)[1])
    assert torch.equal(_compose_faded(4.0, colour=None)[1], _compose_faded(0.0, colour=None)[1])


def _compose_streaked(detail_reach: float, hand: bool = False) -> tuple[GeometricGuess, torch.Tensor]:
    """The strafe view with a strip imagined before in horizontal stripes (bands of 4 rows, dark and light), formed
    by a fresh refiner, whose smooth fill carries each row on into the new hole, under the shipped anchor with
    refiner.detail_reach_px = detail_reach."""
    cfg = load_config('ws-tiny')
    cfg = cfg.replace(refiner=dataclasses.replace(cfg.refiner, anchor_sigma=4.0, anchor_prior=0.0,
                                                  detail_reach_px=detail_reach))
    g = _strafe_guess()
    g.rgb[:, :, :, :10] = 0.5
    light = (torch.arange(H) // 4 % 2 == 1)[:, None]  # (H, 1)
    g.rgb[:, :, :, 10:20] = torch.where(light, 0.7, 0.3)
    return g, _formed(cfg, g, hand)


def test_imagined_streaks_fade_away_from_what_was_seen_and_what_is_kept_stays():
    g, plain = _compose_streaked(0.0)
    _, faded = _compose_streaked(4.0)

    light = (torch.arange(H) // 4 % 2 == 1)

    def streak(out: torch.Tensor) -> float:  # light bands over dark ones in the new hole, 10-19 px from the seen
        far = out[0, :, :, 20:30]
        return float(far[:, light].mean() - far[:, ~light].mean())

    assert streak(plain) > 0.1  # the fill carried the stripes on, row by row
    assert streak(faded) < 0.2 * streak(plain)
    assert torch.equal(faded[:, :, :, :20], plain[:, :, :, :20])  # observed and kept imagined pixels as rendered
    _, with_hand = _compose_streaked(4.0, hand=True)
    _, plain_hand = _compose_streaked(0.0, hand=True)
    assert torch.equal(with_hand, plain_hand)  # a frame with a hand is not anchored
