"""Clips, episodes and configs for the training tests (imported by tests and conftest)."""

import math
from pathlib import Path

import numpy as np
import torch

from worldscape_ros.data.episode import Episode, write_episode
from worldscape_ros.model.camera import intrinsics_from_fov
from worldscape_ros.model.config import ModelConfig, load_config
from worldscape_ros.train.config import TrainConfig, config_from_dict

MICRO = {
    'name': 'micro', 'height': 32, 'width': 48,
    'codec': {'latent_channels': 4, 'spatial_down': 4, 'temporal_down': 1, 'width': 8},
    'dit': {'dim': 48, 'depth': 2, 'heads': 2, 'ffn': 96, 'patch': [1, 2, 2], 'camera_width': 16, 'qk_norm': True},
    # the step depth head is fitted after training (worldscape depth-fit), not trained with the DiT
    'heads': {'depth': True, 'gaussians': True, 'gaussian_layers': 1, 'gaussian_stride': 4, 'step_depth_hidden': 0,
              'start_depth_channels': 0, 'step_image_depth_channels': 0},
    # all three memory levels, whatever the shipped tiny config chooses
    'memory': {'sink_chunks': 1, 'window_chunks': 2, 'pool_chunks': 16, 'retrieve_chunks': 2, 'geometry_views': 6},
}


def forward_poses(frames: int, step: float = 0.05, yaw: float = 0.03) -> np.ndarray:
    """OpenCV camera-to-world poses of a camera moving forward (+z) and turning slowly."""
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        a = yaw * i
        poses[i, :3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
        poses[i, :3, 3] = [0.0, 0.0, step * i]
    return poses


def make_episode(seed: int, frames: int, height: int, width: int, hands: bool = False) -> Episode:
    """A textured wall 3 m away seen by a camera moving towards it: smooth colours, true depth and poses."""
    rng = np.random.default_rng(seed)
    poses = forward_poses(frames, yaw=0.0)
    K = intrinsics_from_fov(width, height, 60.0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.uniform(0.2, 0.8, 3)
    freq = rng.uniform(0.1, 0.4, 2)
    rgb, depth = [], []
    for i in range(frames):
        z = 3.0 - poses[i, 2, 3]
        zoom = 3.0 / z
        u, v = (xx - width / 2) / zoom, (yy - height / 2) / zoom
        img = base + 0.2 * np.stack([np.sin(freq[0] * u), np.cos(freq[1] * v), np.sin(freq[0] * (u + v))], -1)
        rgb.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
        depth.append(np.full((height, width), z, np.float32))
    kp3d = kp2d = vis = None
    if hands:
        kp3d = np.zeros((frames, 21, 3), np.float32)
        kp3d[..., 2] = 0.5
        kp3d[..., 0] = np.linspace(-0.1, 0.1, 21)
        kp2d = np.zeros((frames, 21, 2), np.float32)
        vis = np.ones((frames, 21), bool)
    return Episode(rgb=np.stack(rgb), depth=np.stack(depth), poses=poses, intrinsics=K,
                   actions=np.zeros((frames, 5), np.float32), keypoints3d=kp3d, keypoints2d=kp2d, visibility=vis,
                   meta={'kind': 'manip' if hands else 'nav'})


def write_walk_and_hand(folder: Path, frames: int, height: int, width: int, step: float = 0.05,
                        yaw: float = 0.1) -> list[Path]:
    """Two episodes a trace replays: a walk without a hand (seed 0) and one with a hand (seed 1), both on the
    cameras forward_poses(frames, step, yaw)."""
    paths = []
    for seed, hands in ((0, False), (1, True)):
        ep = make_episode(seed, frames, height, width, hands=hands)
        ep.poses = forward_poses(frames, step=step, yaw=yaw)
        paths.append(write_episode(folder / f'ep{seed}.episode.npz', ep))
    return paths


def write_dataset(root: Path, episodes: int, frames: int, height: int, width: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(episodes):
        write_episode(root / f'ep{i:03d}.episode.npz', make_episode(i, frames, height, width))
    return root


def clip_batch(batch: int, frames: int, height: int, width: int, seed: int = 0) -> dict:
    """A collated batch as the ClipDataset and the loop's collate give it."""
    eps = [make_episode(seed + b, frames, height, width) for b in range(batch)]
    return {
        'rgb': torch.stack([torch.from_numpy(e.rgb).permute(0, 3, 1, 2).float() / 255 for e in eps]),
        'depth': torch.stack([torch.from_numpy(e.depth)[:, None] for e in eps]),
        'poses': torch.stack([torch.from_numpy(e.poses).float() for e in eps]),
        'intrinsics': torch.stack([torch.from_numpy(e.intrinsics).float() for e in eps]),
        'actions': torch.zeros(batch, frames, 5),
        'keypoints': torch.zeros(batch, frames, 21, 3),
        'has_hands': torch.zeros(batch, dtype=torch.bool),
        'kind': ['nav'] * batch,
    }


def micro_train_config(root: Path, out: Path, **sections: dict) -> TrainConfig:
    d = {'stage': 'teacher', 'model': 'ws-tiny', 'model_overrides': MICRO,
         'data': {'root': str(root), 'clip_len': 4, 'batch_size': 2},
         'optim': {'lr': 1e-3, 'warmup_steps': 0},
         'teacher': {'render_weight': 0.0, 'depth_weight': 0.1},
         'run': {'out': str(out), 'steps': 4, 'log_every': 1, 'save_every': 0, 'progress': False, 'ema_decay': 0.9}}
    for key, value in sections.items():
        d[key] = {**d.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(d)


def micro_model_config() -> ModelConfig:
    """A very small config with the shipped tiny config's structure (hands, geometry, heads)."""
    cfg = load_config('ws-tiny')
    return ModelConfig.from_dict({**{k: v for k, v in cfg.to_dict().items() if k not in ('codec', 'dit', 'heads')},
                                  **MICRO})

