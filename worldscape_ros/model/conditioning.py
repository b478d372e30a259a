"""A chunk's conditioning made from its cameras and the hand, before any network runs: the Plücker rays of its
cameras relative to the session's reference camera, and the hand's pose video."""

from __future__ import annotations

import numpy as np
import torch

from worldscape_ros.model import hands
from worldscape_ros.model.camera import plucker_rays
from worldscape_ros.model.config import ModelConfig


def chunk_plucker(cfg: ModelConfig, reference: np.ndarray, poses: list[np.ndarray], intrinsics: np.ndarray,
                  device: torch.device) -> torch.Tensor:
    """(1, F, 6, H, W) rays of the last video frame of each latent frame, relative to `reference` (so the world
    origin does not leak in)."""
    per_latent = poses[cfg.codec.temporal_down - 1::cfg.codec.temporal_down]
    rel = np.linalg.inv(reference) @ np.stack(per_latent)  # (F, 4, 4)
    c2w = torch.from_numpy(rel).float().to(device)
    K = torch.from_numpy(intrinsics).float().to(device).expand(len(per_latent), 3, 3)
    with torch.autocast(device.type, enabled=False):  # ray geometry stays in float32
        return plucker_rays(c2w, K, cfg.height, cfg.width)[None]


def hand_pose_video(cfg: ModelConfig, kps: list[np.ndarray | None], intrinsics: np.ndarray, device: torch.device
                    ) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """The hand's pose video (Fv, 3, H, W) of one (21, 3) keypoint set per frame (None: no hand in that frame)
    and its uint8 drawing (Fv, H, W, 3); (None, None) when no frame has a hand."""
    if all(kp is None for kp in kps):
        return None, None
    kp = np.stack([np.zeros((21, 3)) if k is None else k for k in kps])  # (Fv, 21, 3)
    visible = torch.from_numpy(kp[..., 2] > 1e-3)  # (Fv, 21): in front of the camera (absent: z = 0)
    uv = torch.as_tensor(hands.project_keypoints(kp, intrinsics)).float()
    video = hands.pose_video(uv, visible, cfg.height, cfg.width).to(device)  # (Fv, 3, H, W)
    drawn = (video.clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).cpu().numpy()
    return video, drawn
