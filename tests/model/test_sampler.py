import torch

from worldscape_ros.model.sampler import (
    add_noise,
    sample_ode,
    schedule,
    velocity_target,
    x0_from_velocity,
)


def oracle_velocity(x0: torch.Tensor):
    """The exact velocity field of a single data point: v = (x_t - x0) / t."""
    def v(x, t):
        return (x - x0) / t[..., None, None, None].clamp_min(1e-8)
    return v


def test_schedule_runs_from_noise_to_data_monotonically():
    times = schedule(8, 3.0)
    assert times[0] == 1.0 and times[-1] == 0.0
    assert all(a > b for a, b in zip(times, times[1:]))
    assert times[4] > 0.5  # the shift spends more steps at high noise


def test_noise_and_velocity_recover_the_data():
    x0, noise = torch.randn(2, 3, 4, 5, 6), torch.randn(2, 3, 4, 5, 6)
    t = torch.rand(2, 3)
    xt = add_noise(x0, noise, t)
    assert torch.allclose(x0_from_velocity(xt, velocity_target(x0, noise), t), x0, atol=1e-5)


def test_teacher_ode_reaches_the_data_under_the_exact_velocity():
    x0 = torch.randn(1, 2, 3, 4, 4)
    out = sample_ode(oracle_velocity(x0), torch.randn_like(x0), steps=5, shift=2.0)
    assert torch.allclose(out, x0, atol=1e-5)


def test_teacher_ode_keeps_known_frames():
    x0 = torch.randn(1, 2, 3, 4, 4)
    start = torch.randn_like(x0)
    known = torch.tensor([[True, False]])
    out = sample_ode(oracle_velocity(x0), start, steps=4, shift=1.0, known=known)
    assert torch.equal(out[:, 0], start[:, 0])
