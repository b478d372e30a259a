"""What an engine runs with besides its model: where and in what precision, its denoising steps and rolling
window, its sampling seed, and the ablations. One frozen value, checked when made, that WorldEngine,
BatchedEngine and every front (node, envs, eval, tools) pass whole instead of a row of flags."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldscape_ros.errors import ConfigError

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}


@dataclass(frozen=True)
class EngineOptions:
    device: str = 'cpu'  # a torch device: 'cpu', 'cuda', 'cuda:1'
    dtype: str = 'float32'  # precision of the network calls (autocast) and of the cached keys: a key of DTYPES
    steps: int | None = None  # denoising steps per chunk (None: the config's sampler.steps)
    window: int | None = None  # chunks rollout() denoises together (None: the config's sampler.rolling_window)
    seed: int = 0  # sampling seed: every reset starts the noise generator from it
    memory: bool = True  # False: the ablation without the global pool and without imagined scene commits
    pool_bytes: int | None = None  # a byte budget of the global pool, beside its chunk budget
    geometry: bool = True  # False: the ablation without the geometric guess (an empty render, zero coverage)
    carry_depth: bool = True  # the output's depth from the geometric guess where it covers the frame

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f'dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}')
        if self.steps is not None and (not _is_int(self.steps) or self.steps < 1):
            raise ConfigError(f'steps must be an int >= 1 (None: the config\'s), got {self.steps!r}')
        if self.window is not None and (not _is_int(self.window) or self.window < 1):
            raise ConfigError(f'window must be an int >= 1 (1: one chunk at a time), got {self.window!r}')
        if not _is_int(self.seed):
            raise ConfigError(f'seed must be an int, got {self.seed!r}')
        if self.pool_bytes is not None and (not _is_int(self.pool_bytes) or self.pool_bytes < 0):
            raise ConfigError(f'pool_bytes must be None or an int >= 0, got {self.pool_bytes!r}')
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f'device {self.device!r} is not a torch device: {exc}') from None

    def torch_device(self) -> torch.device:
        """The device, refused (ConfigError) when it is a GPU this machine does not have."""
        device = torch.device(self.device)
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise ConfigError(f'device {self.device} requested but no CUDA GPU is available')
        return device

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
