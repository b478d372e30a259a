import pytest
import torch

from worldscape_ros.model.config import RefinerConfig
from worldscape_ros.model.refiner import (
    IN_CHANNELS,
    Refiner,
    anchor_low_frequencies,
    edit_region,
    hand_weight,
    refine,
    refiner_inputs,
    smooth_fill,
)

H, W = 32, 48


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    render = torch.rand(3, H, W, generator=g)
    cover = torch.ones(H, W, dtype=torch.bool)
    cover[:, 30:] = False  # a revealed strip
    render = render * cover
    x = refiner_inputs(render, cover, cover.float(), torch.rand(3, H, W, generator=g), None, 3.0)
    return x, cover


def test_inputs_have_the_channels_the_refiner_takes():
    x, _ = inputs()
    assert x.shape == (IN_CHANNELS, H, W)


def test_a_fresh_refiner_gives_the_render_where_covered_and_the_smooth_fill_elsewhere():
    x, cover = inputs()
    out = Refiner(RefinerConfig(enabled=True))(x[None])[0]
    assert torch.allclose(out, x[5:8].clamp(0, 1), atol=1e-6)  # the fill equals the render where covered
    assert torch.equal(out[:, cover], x[0:3][:, cover])


def test_a_trained_refiner_never_changes_covered_pixels_beyond_the_edge_band():
    torch.manual_seed(0)
    r = Refiner(RefinerConfig(enabled=True, edge_band=1))
    for p in r.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x, cover = inputs(1)
    out = r(x[None])[0]
    keep = ~edit_region(~cover, 1)
    assert torch.equal(out[:, keep], x[0:3][:, keep])
    assert not torch.equal(out[:, ~cover], x[5:8][:, ~cover])  # it writes the holes


def test_the_smooth_fill_leaves_covered_pixels_and_fills_holes():
    render = torch.zeros(3, H, W)
    render[0] = 0.8
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[10:14, 10:14] = True
    filled = smooth_fill(render * ~hole, hole, 3.0)
    assert torch.equal(filled[:, ~hole], (render * ~hole)[:, ~hole])
    assert float(filled[0, hole].min()) > 0.7  # filled from the red surroundings


def test_the_far_side_fill_continues_the_background_a_near_object_uncovers():
    render = torch.zeros(3, H, W)
    render[2] = 0.9  # a far blue wall
    render[:, :, 17:20] = torch.tensor([0.9, 0.0, 0.0])[:, None, None]  # a thin near red pole in front of it
    depth = torch.full((H, W), 4.0)
    depth[:, 17:20] = 1.0
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[:, 20:24] = True  # what the pole uncovered as the camera moved
    telea = smooth_fill(render * ~hole, hole, 3.0)
    far = smooth_fill(render * ~hole, hole, 3.0, depth * ~hole)
    assert float(telea[0, :, 20].mean()) > 0.3  # Telea smears the pole into the uncovered strip
    assert float(far[0, hole].max()) < 0.05 and float(far[2, hole].min()) > 0.85  # the wall behind it continues
    assert torch.equal(far[:, ~hole], render[:, ~hole])  # the pole itself stays as rendered


def test_the_refiner_accepts_frames_of_the_config_size_only_by_its_strides():
    r = Refiner(RefinerConfig(enabled=True))
    assert r(torch.rand(2, IN_CHANNELS, 96, 128)).shape == (2, 3, 96, 128)


def test_an_imagined_pixel_the_refiner_may_rewrite_starts_from_its_rendered_colour():
    g = torch.Generator().manual_seed(2)
    render = torch.rand(3, H, W, generator=g)
    trust = torch.full((H, W), 1.0)
    trust[:, 20:30] = 0.5  # imagined earlier
    trust[:, 30:] = 0.0  # no point: a hole
    render = render * (trust > 0)
    observed = trust >= 1.0
    x = refiner_inputs(render, observed, trust, torch.rand(3, H, W, generator=g), None, 3.0)
    imagined = (trust > 0) & ~observed
    assert torch.equal(x[5:8][:, imagined], render[:, imagined])  # kept as the start of the rewrite
    assert torch.equal(x[3][imagined], torch.zeros(int(imagined.sum())))  # not covered: the refiner writes it
    hole_fill = x[5:8][:, trust <= 0]
    assert float(hole_fill.abs().sum()) > 0  # the hole starts from the smooth fill, not black
    out = Refiner(RefinerConfig(enabled=True, imagined='propose'))(x[None])[0]
    assert torch.equal(out[:, observed & ~edit_region(~observed, 1)], render[:, observed & ~edit_region(~observed, 1)])


def test_a_refiner_reading_the_hand_colour_takes_three_channels_more_and_refuses_fewer():
    x, cover = inputs()
    colour = torch.zeros(3, H, W)
    colour[:, :8, :8] = torch.tensor([0.9, 0.7, 0.6])[:, None, None]
    with_colour = refiner_inputs(x[0:3], cover, cover.float(), x[8:11], None, 3.0, colour)
    assert torch.equal(with_colour[:IN_CHANNELS], x) and torch.equal(with_colour[IN_CHANNELS:], colour)
    r = Refiner(RefinerConfig(enabled=True, hand_colour=True))
    assert r(with_colour[None]).shape == (1, 3, H, W)
    with pytest.raises(ValueError, match='input channels'):
        r(x[None])


def _random_refiner(seed: int) -> Refiner:
    torch.manual_seed(seed)
    r = Refiner(RefinerConfig(enabled=True))
    for p in r.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return r


class _Counting(torch.nn.Module):
    def __init__(self, inner: Refiner) -> None:
        super().__init__()
        self.inner, self.frames = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.frames += x.shape[0]
        return self.inner(x)


def test_the_hand_weight_is_one_on_the_hand_and_fades_to_zero_over_twice_the_feather():
    dynamic = torch.zeros(1, H, W, dtype=torch.bool)
    dynamic[0, 10:14, 20:26] = True
    w = hand_weight(dynamic, 2)[0, 0]
    assert float(w.min()) >= 0 and float(w.max()) <= 1
    assert bool((w[dynamic[0]] == 1).all())
    assert [round(float(v), 3) for v in w[12, 25:31]] == [1, 0.8, 0.6, 0.4, 0.2, 0]  # a seam of 2 x feather
    far = torch.ones(H, W, dtype=torch.bool)
    far[6:18, 16:30] = False
    assert bool((w[far] == 0).all())
    assert torch.equal(hand_weight(dynamic, 0), dynamic[:, None].float())


def test_frames_without_a_hand_are_formed_by_the_scene_refiner_alone_and_never_run_the_hand_refiner():
    x = torch.stack([inputs(0)[0], inputs(1)[0]])
    scene, hand = _random_refiner(0), _Counting(_random_refiner(1))
    none = torch.zeros(2, H, W, dtype=torch.bool)
    assert torch.equal(refine(scene, hand, x, none, 2), scene(x))  # type: ignore[arg-type]
    assert hand.frames == 0
    assert torch.equal(refine(scene, None, x, none | True, 2), scene(x))


def test_the_hand_refiner_writes_the_hand_and_the_scene_refiner_the_rest():
    x = torch.stack([inputs(0)[0], inputs(1)[0]])
    scene, hand = _random_refiner(0), _Counting(_random_refiner(1))
    dynamic = torch.zeros(2, H, W, dtype=torch.bool)
    dynamic[1, 8:16, 28:40] = True  # a hand over the revealed strip of the second frame only
    out = refine(scene, hand, x, dynamic, 2)  # type: ignore[arg-type]
    assert hand.frames == 1
    s_out, h_out = scene(x), hand.inner(x)
    assert torch.equal(out[0], s_out[0])
    assert torch.allclose(out[1][:, dynamic[1]], h_out[1][:, dynamic[1]], atol=1e-6)
    w = hand_weight(dynamic, 2)[1, 0]
    assert torch.allclose(out[1][:, w == 0], s_out[1][:, w == 0])
    assert not torch.allclose(out[1], s_out[1])


def test_anchoring_swaps_low_frequencies_keeps_detail_and_touches_only_where_told():
    detail = 0.1 * (torch.arange(W) % 2).float().expand(3, H, W)  # a one-pixel stripe: above any blur's reach
    out = torch.tensor([0.1, 0.7, 0.1])[:, None, None] + detail  # green, striped
    fill = torch.tensor([0.6, 0.2, 0.2])[:, None, None].expand(3, H, W)  # red, smooth
    where = torch.zeros(H, W, dtype=torch.bool)
    where[:, 24:] = True
    anchored = anchor_low_frequencies(out, fill, where, sigma=3.0)
    assert torch.equal(anchored[..., :24], out[..., :24])
    inner = anchored[..., 36:44]  # away from where's edge, whose blur still sees the green side
    stripe = inner[:, :, 1::2].mean() - inner[:, :, 0::2].mean()
    assert abs(float(stripe) - 0.1) < 0.02  # the detail kept
    assert abs(float(inner[0].mean()) - 0.6) < 0.01 and abs(float(inner[1].mean()) - 0.2) < 0.01  # red's colour
    near_and_far = anchor_low_frequencies(out, fill, where, 3.0, source=~where, reach=4.0)
    near, far = near_and_far[1, :, 24].mean(), near_and_far[1, :, W - 1].mean()
    assert float(near) < 0.6 < float(far)  # next to the source it takes the fill's colour, far off it keeps its own


def test_imagined_detail_fades_with_the_distance_from_what_was_seen():
    detail = 0.1 * (torch.arange(W) % 2).float().expand(3, H, W)  # a one-pixel stripe: above any blur's reach
    out = torch.tensor([0.3, 0.5, 0.3])[:, None, None] + detail
    where = torch.zeros(H, W, dtype=torch.bool)
    where[:, 8:] = True  # the refiner wrote all but the first 8 columns, which were seen
    kept = anchor_low_frequencies(out, None, where, 3.0, source=~where)
    faded = anchor_low_frequencies(out, None, where, 3.0, source=~where, detail_reach=4.0)
    assert torch.equal(kept, out.clamp(0, 1))  # no fill, no prior, no fade: as written

    def stripe(frame: torch.Tensor, cols: slice) -> float:
        part = frame[1, :, cols]
        return float(part[:, 1::2].mean() - part[:, 0::2].mean())

    assert torch.equal(faded[..., :8], out[..., :8])  # what was seen is not touched
    assert abs(stripe(faded, slice(8, 10)) - 0.1) < 0.05  # beside the seen pixels most of the detail stays
    assert abs(stripe(faded, slice(W - 16, W))) < 0.005  # far from them, none
    assert abs(float(faded[1, :, W - 16:].mean()) - float(out[1, :, W - 16:].mean())) < 0.01  # colour kept
