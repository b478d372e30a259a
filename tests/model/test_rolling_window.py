from dataclasses import dataclass

import pytest
import torch

from worldscape_ros.model.dit import Conditioning
from worldscape_ros.model.rolling_window import chunk_x0s, chunks_leaving, renoise, window_inputs
from worldscape_ros.model.sampler import add_noise, schedule, velocity_target

B, F, C, h, w = 2, 3, 4, 5, 6


@dataclass
class Chunk:
    x: torch.Tensor
    level: int
    cond: Conditioning
    name: int = 0


def _chunk(level: int, name: int = 0, plucker: bool = True) -> Chunk:
    cond = Conditioning(plucker=torch.full((B, F, 6, 8, 8), float(name)) if plucker else None,
                        geometry=torch.full((B, F, C, h, w), float(name)))
    return Chunk(torch.randn(B, F, C, h, w), level, cond, name)


def _counting_noise(draws: list[tuple[int, ...]]):
    def noise(like: torch.Tensor) -> torch.Tensor:
        draws.append(tuple(like.shape))
        return torch.full_like(like, float(len(draws)))
    return noise


def test_the_window_steps_as_one_sequence_each_chunk_at_its_own_noise_level():
    times = schedule(3, 2.0)
    window = [_chunk(2, name=0), _chunk(1, name=1), _chunk(0, name=2)]
    x, t, cond = window_inputs(window, times)
    assert x.shape == (B, 3 * F, C, h, w) and t.shape == (B, 3 * F)
    assert torch.equal(x, torch.cat([c.x for c in window], dim=1))
    for j, c in enumerate(window):
        assert torch.all(t[:, j * F:(j + 1) * F] == times[c.level])
        assert cond.geometry is not None and torch.all(cond.geometry[:, j * F:(j + 1) * F] == j)
    assert cond.pose is None  # a stream no chunk has stays absent


def test_a_stream_absent_from_one_chunk_is_absent_from_the_window():
    _, _, cond = window_inputs([_chunk(1), _chunk(0, plucker=False)], schedule(2, 2.0))
    assert cond.plucker is None and cond.geometry is not None


def test_each_chunk_gets_the_x0_its_own_frames_predict():
    x0, noise = torch.randn(B, 2 * F, C, h, w), torch.randn(B, 2 * F, C, h, w)
    t = torch.cat([torch.full((B, F), 0.8), torch.full((B, F), 0.3)], dim=1)
    xt = add_noise(x0, noise, t)
    parts = chunk_x0s(xt, velocity_target(x0, noise).half(), t, 2)  # the velocity is read in float32
    assert [p.shape for p in parts] == [(B, F, C, h, w)] * 2 and all(p.dtype == torch.float32 for p in parts)
    assert torch.allclose(torch.cat(parts, dim=1), x0, atol=1e-2)


@pytest.mark.parametrize('levels, exits, expected', [
    ([1, 0], [1, 1], 1),  # the oldest reached its exit
    ([0, 0], [1, 0], 0),  # the next one reached its exit, but chunks leave in order
    ([2, 1, 0], [2, 1, 2], 2),  # two reached their exits in order: both leave
    ([0], [0], 1),  # an exit at the first step: the chunk leaves after one pass
    ([1, 0], [2, 2], 0),  # none has reached its exit
])
def test_the_oldest_chunks_leave_in_order_once_their_level_reaches_their_exit(levels, exits, expected):
    window = [_chunk(level) for level in levels]
    assert chunks_leaving(window, exits) == expected


def test_staying_chunks_move_one_level_down_with_fresh_noise_drawn_oldest_first():
    times = schedule(3, 2.0)
    window = [_chunk(1, name=0), _chunk(0, name=1)]
    x0 = [torch.randn(B, F, C, h, w, requires_grad=True) for _ in window]
    draws: list[tuple[int, ...]] = []
    renoise(window, x0, times, _counting_noise(draws))
    assert draws == [(B, F, C, h, w)] * 2
    assert [c.level for c in window] == [2, 1]
    for j, c in enumerate(window):
        expected = add_noise(x0[j].detach(), torch.full((B, F, C, h, w), float(j + 1)),
                             torch.full((B, F), times[c.level]))
        assert torch.equal(c.x, expected)
        assert not c.x.requires_grad  # the next step starts afresh: gradients reach only the leaving step


def test_renoising_no_chunk_draws_no_noise():
    draws: list[tuple[int, ...]] = []
    renoise([], [], schedule(2, 2.0), _counting_noise(draws))
    assert draws == []


@pytest.mark.parametrize('steps, size', [(1, 1), (2, 1), (3, 2), (3, 3), (2, 4)])
def test_through_the_rolling_window_every_chunk_leaves_in_order_after_its_steps_with_its_prediction(steps, size):
    """An exact denoiser (the velocity towards each chunk's target): every chunk leaves with its target, in the
    order it entered, after `steps` joint passes, and the window never holds more than `size` chunks."""
    times = schedule(steps, 2.0)
    targets = [torch.full((B, F, C, h, w), float(i)) for i in range(5)]
    waiting, window, left, passes = list(range(5)), [], [], [0] * 5
    g = torch.Generator().manual_seed(0)
    while waiting or window:
        if waiting and len(window) < size:  # one chunk enters per tick, at pure noise
            window.append(_chunk(0, name=waiting.pop(0)))
            window[-1].x = torch.randn(B, F, C, h, w, generator=g)
        assert len(window) <= size
        assert [c.level for c in window] == sorted({c.level for c in window}, reverse=True)  # staggered
        x, t, _ = window_inputs(window, times)
        target = torch.cat([targets[c.name] for c in window], dim=1)
        velocity = (x - target) / t[..., None, None, None]
        x0 = chunk_x0s(x, velocity, t, len(window))
        for c in window:
            passes[c.name] += 1
        n = chunks_leaving(window, [steps - 1] * len(window))
        left += [(c.name, p) for c, p in zip(window[:n], x0[:n], strict=True)]
        renoise(window[n:], x0[n:], times, lambda like: torch.randn(like.shape, generator=g))
        window = window[n:]
    assert [name for name, _ in left] == list(range(5))
    assert all(torch.allclose(p, targets[name], atol=1e-5) for name, p in left)
    assert passes == [steps] * 5
