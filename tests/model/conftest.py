import pytest
import torch

from worldscape_ros.model.config import ModelConfig, load_config


@pytest.fixture
def micro_config() -> ModelConfig:
    """A very small config with the shipped tiny config's structure (hands, geometry, heads)."""
    cfg = load_config('ws-tiny')
    return ModelConfig.from_dict({
        **{k: v for k, v in cfg.to_dict().items() if k not in ('codec', 'dit', 'heads')},
        'name': 'micro', 'height': 32, 'width': 48,
        'codec': {'latent_channels': 4, 'spatial_down': 4, 'temporal_down': 1, 'width': 8},
        'dit': {'dim': 48, 'depth': 2, 'heads': 2, 'ffn': 96, 'patch': [1, 2, 2], 'camera_width': 16,
                'qk_norm': True},
        'heads': {'depth': True, 'gaussians': True, 'gaussian_layers': 1, 'gaussian_stride': 4},
        # all three memory levels, whatever the shipped tiny config chooses
        'memory': {**cfg.to_dict()['memory'], 'window_chunks': 2},
    })


def _randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Break the zero initialisation (adaLN-Zero, zero projections) so every path carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return module


@pytest.fixture
def randomize():
    return _randomize
